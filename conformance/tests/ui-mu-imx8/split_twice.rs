//! Splitting the same MU side twice would hand out two owners per channel.
use ipc_traits::regs::Regs32;
use mu_imx8::Mu;

fn misuse<R: Regs32>(regs: R) {
    let mu = Mu::new(regs);
    let first = mu.split();
    let second = mu.split();
    drop((first, second));
}

fn main() {}
