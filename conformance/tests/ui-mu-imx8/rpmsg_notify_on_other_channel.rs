//! The rpmsg doorbell is channel 1 (imx8-mu.md §5, §6); channel 0 cannot be
//! wrapped as one.
use ipc_traits::regs::Regs32;
use mu_imx8::Mu;

fn misuse<R: Regs32>(regs: R) {
    let parts = Mu::new(regs).split();
    let _kick = parts.tx0.into_rpmsg_notify();
}

fn main() {}
