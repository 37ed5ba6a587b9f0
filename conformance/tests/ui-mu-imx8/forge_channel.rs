//! Building a second handle for a channel outside `split`.
use ipc_traits::regs::Regs32;
use mu_imx8::TxChannel;

fn misuse<R: Regs32>(regs: R) {
    let _second_owner: TxChannel<R, 1> = TxChannel::<R, 1>::new(regs);
}

fn main() {}
