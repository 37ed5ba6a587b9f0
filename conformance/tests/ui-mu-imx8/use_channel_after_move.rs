//! A channel moved into an interrupt handler (here: a thread) cannot be used
//! by the code that gave it away.
use ipc_traits::regs::Regs32;
use mu_imx8::Mu;

fn misuse<R: Regs32 + Send + 'static>(regs: R) {
    let mut parts = Mu::new(regs).split();
    let tx1 = parts.tx1;
    std::thread::spawn(move || {
        let mut tx1 = tx1;
        let _ = tx1.try_send(1);
    });
    let _ = parts.tx1.try_send(2);
}

fn main() {}
