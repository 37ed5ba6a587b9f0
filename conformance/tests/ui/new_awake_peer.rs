//! Misuse: skipping the wake-up by constructing an awake peer directly.
//! `new` exists only for `Peer<Asleep, W>`; `Peer<Awake, W>` is reached only
//! through `Peer::wake` (E0599).

use ipc_traits::mailbox::{ErrorKind, ErrorType};
use ipc_traits::power::{Awake, Peer, WakePeer};

/// A wake channel: a general-purpose interrupt plus a power-mode flag.
struct Gpi {
    awake: bool,
}

impl ErrorType for Gpi {
    type Error = ErrorKind;
}

impl WakePeer for Gpi {
    fn request_wake(&mut self) -> Result<(), ErrorKind> {
        self.awake = true;
        Ok(())
    }
    fn peer_awake(&mut self) -> Result<bool, ErrorKind> {
        Ok(self.awake)
    }
}

fn main() {
    let _peer = Peer::<Awake, Gpi>::new(Gpi { awake: false });
}
