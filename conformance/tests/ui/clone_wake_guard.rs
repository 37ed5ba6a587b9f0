//! Misuse: duplicating a wake guard, so that one release would leave a second
//! holder nobody accounts for (or, with a counted clone, two releases for one
//! reason). `WakeGuard` is not `Clone` (E0599).

use ipc_traits::power::WakeLock;

static TX_WAKE: WakeLock = WakeLock::new();

fn main() {
    let in_flight = TX_WAKE.hold();
    let second = in_flight.clone();
    drop(in_flight);
    drop(second);
}
