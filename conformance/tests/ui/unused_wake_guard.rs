//! Misuse: taking the wake lock and discarding the guard, which releases the
//! lock at once: the core may then deep-sleep with a buffer in flight.
//! `WakeGuard` is `#[must_use]`; the workspace denies `unused_must_use`,
//! repeated here because trybuild builds this file as its own crate.
#![deny(unused_must_use)]

use ipc_traits::power::WakeLock;

static TX_WAKE: WakeLock = WakeLock::new();

fn main() {
    TX_WAKE.hold();
    assert!(!TX_WAKE.deep_sleep_allowed());
}
