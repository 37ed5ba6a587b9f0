//! Misuse: adding a buffer state of one's own (a `Flushed` state with its
//! own rules would bypass the clean/invalidate discipline). `BufState` is
//! sealed: its supertrait cannot be implemented outside the crate (E0277).

use ipc_traits::buf::BufState;

struct Flushed;

impl BufState for Flushed {}

fn main() {}
