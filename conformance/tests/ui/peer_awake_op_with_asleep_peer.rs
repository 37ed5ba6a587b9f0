//! Misuse: calling an operation that needs the peer awake (it reads memory
//! the peer owns) with a peer that was never woken. The operation takes
//! `&Peer<Awake, W>` as a witness; a `Peer<Asleep, W>` is a different type
//! (E0308).

use ipc_traits::mailbox::{ErrorKind, ErrorType};
use ipc_traits::power::{Asleep, Awake, Peer, WakePeer};

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

/// Reads a word from the peer's tightly coupled memory: only valid while the
/// peer is awake, so it asks for the witness.
fn read_peer_tcm<W: WakePeer>(_awake: &Peer<Awake, W>, offset: usize) -> u32 {
    offset as u32
}

fn main() {
    let peer: Peer<Asleep, Gpi> = Peer::new(Gpi { awake: false });
    let _word = read_peer_tcm(&peer, 0x40);
}
