//! A receive channel handed to code that needs a word sender.
use ipc_traits::mailbox::WordTx;
use ipc_traits::regs::Regs32;
use mu_imx8::Mu;

fn kick(mut tx: impl WordTx) {
    let _ = tx.try_send(1 << 16);
}

fn misuse<R: Regs32>(regs: R) {
    let parts = Mu::new(regs).split();
    kick(parts.rx1);
}

fn main() {}
