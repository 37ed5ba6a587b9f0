//! Misuse: forging a buffer state marker outside `ipc-traits` (for example
//! to name a `Clean` value in a user-defined transition). The markers have a
//! private field (E0451).

use ipc_traits::buf::Clean;

fn main() {
    let _forged = Clean { _private: () };
}
