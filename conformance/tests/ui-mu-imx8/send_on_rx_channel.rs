//! Sending on a receive channel: `try_send` exists only for transmit channels.
use ipc_traits::regs::Regs32;
use mu_imx8::Mu;

fn misuse<R: Regs32>(regs: R) {
    let mut parts = Mu::new(regs).split();
    let _ = parts.rx1.try_send(0x0001_0000);
}

fn main() {}
