//! Session control words: how two bare-metal peers notice that the other
//! restarted.
//!
//! Each side owns one 16-byte word in shared memory (placed by the
//! application, line-aligned, outside the rings and buffers):
//!
//! | offset | field | meaning |
//! |---|---|---|
//! | 0 | `magic` | [`MAGIC`] while the word is valid |
//! | 4 | `session` | this side's session number, new at every start |
//! | 8 | `peer_session` | the peer's session this side attached to (0: none) |
//! | 12 | `check` | `magic ^ session ^ peer_session ^ CHECK_SALT` |
//!
//! A side that starts reads its own old word: if it is valid, the new
//! session is the old one plus one, otherwise it is derived from a seed
//! (for example a hardware random number or a boot counter). Random RAM
//! after a cold boot fails the check word, and a warm reboot always moves
//! the number, so a rebooted peer cannot be confused with stale memory.
//!
//! Protocol:
//! 1. The master starts a session, lays out the rings, rings the doorbell.
//! 2. The remote starts its own session, waits (bounded) for a valid master
//!    word, attaches to the rings and records the master's session as its
//!    `peer_session`.
//! 3. Each side checks the other's word from time to time (a few loads: on
//!    every doorbell, or every N polls). A different session, or an invalid
//!    word, means the peer restarted: call
//!    [`crate::link::Link::restart`] with fresh rings. The master re-lays out
//!    the rings under a new session of its own; the remote waits for that
//!    new master session before attaching again, so it never reads rings the
//!    master has not re-initialised.
//!
//! For a Linux master the resource table plays this role: the vdev status
//! drops to 0 and comes back to `DRIVER_OK`
//! ([`crate::rsc_table::VdevView`]).
#![deny(unsafe_code)]

use ipc_traits::shm::{SharedMemory, ShmError};

/// Marks a valid word ("RPMS").
pub const MAGIC: u32 = 0x5250_4D53;
/// Mixed into the check word so that an all-zero word is invalid.
pub const CHECK_SALT: u32 = 0xA5C3_5A3C;
/// Bytes per word.
pub const WORD_LEN: usize = 16;

/// What a valid word says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// The owner's session number (never 0).
    pub session: u32,
    /// The peer session the owner attached to (0: none yet).
    pub peer_session: u32,
}

/// One side's session word at a window offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWord {
    offset: usize,
}

fn check(session: u32, peer: u32) -> u32 {
    MAGIC ^ session ^ peer ^ CHECK_SALT
}

impl SessionWord {
    /// The word at `offset` (4-aligned; align it to the cache line and keep
    /// it alone on its line on non-coherent systems).
    pub const fn at(offset: usize) -> Self {
        Self { offset }
    }

    /// Reads the word fresh from memory; `None` if it is not valid.
    ///
    /// # Errors
    ///
    /// A shared-memory error.
    pub fn read<M: SharedMemory + ?Sized>(&self, mem: &M) -> Result<Option<Session>, M::Error> {
        let (start, len) = mem.covering_lines(self.offset, WORD_LEN)?;
        mem.invalidate(start, len)?;
        let mut b = [0u8; WORD_LEN];
        mem.read(self.offset, &mut b)?;
        let w = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let (magic, session, peer, chk) = (w(0), w(4), w(8), w(12));
        Ok(
            (magic == MAGIC && session != 0 && chk == check(session, peer)).then_some(Session {
                session,
                peer_session: peer,
            }),
        )
    }

    fn write<M: SharedMemory + ?Sized>(&self, mem: &M, s: Session) -> Result<(), M::Error> {
        let mut b = [0u8; WORD_LEN];
        for (i, v) in [
            MAGIC,
            s.session,
            s.peer_session,
            check(s.session, s.peer_session),
        ]
        .iter()
        .enumerate()
        {
            b[4 * i..4 * i + 4].copy_from_slice(&v.to_ne_bytes());
        }
        mem.write(self.offset, &b)?;
        let (start, len) = mem.covering_lines(self.offset, WORD_LEN)?;
        mem.clean(start, len)
    }

    /// Starts a new session of this side: the old number plus one when the
    /// old word is valid, else `seed` (0 is replaced by 1). Clears the peer
    /// session. Returns the new number.
    ///
    /// # Errors
    ///
    /// A shared-memory error.
    pub fn begin<M: SharedMemory + ?Sized>(&self, mem: &M, seed: u32) -> Result<u32, M::Error> {
        let next = match self.read(mem)? {
            Some(old) => old.session.wrapping_add(1),
            None => seed,
        };
        let session = if next == 0 { 1 } else { next };
        self.write(
            mem,
            Session {
                session,
                peer_session: 0,
            },
        )?;
        Ok(session)
    }

    /// Records that this side attached to the peer's `peer_session`.
    ///
    /// # Errors
    ///
    /// [`ShmError::Unavailable`] (as `M::Error`) if this side's word is not
    /// valid (call [`SessionWord::begin`] first); a shared-memory error.
    pub fn attach<M: SharedMemory + ?Sized>(
        &self,
        mem: &M,
        peer_session: u32,
    ) -> Result<(), M::Error> {
        let own = self.read(mem)?.ok_or(ShmError::Unavailable)?;
        self.write(
            mem,
            Session {
                session: own.session,
                peer_session,
            },
        )
    }

    /// Invalidates the word (orderly shutdown).
    ///
    /// # Errors
    ///
    /// A shared-memory error.
    pub fn end<M: SharedMemory + ?Sized>(&self, mem: &M) -> Result<(), M::Error> {
        mem.write(self.offset, &[0u8; WORD_LEN])?;
        let (start, len) = mem.covering_lines(self.offset, WORD_LEN)?;
        mem.clean(start, len)
    }
}

/// Watches the peer's word for a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerWatch {
    word: SessionWord,
    seen: u32,
}

/// What the peer's word says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Same session as when we attached.
    Same,
    /// A different valid session: the peer restarted.
    Restarted(u32),
    /// No valid word: the peer is down or starting.
    Down,
}

impl PeerWatch {
    /// Watches `word`, starting from the peer session `seen`.
    pub const fn new(word: SessionWord, seen: u32) -> Self {
        Self { word, seen }
    }

    /// The peer session attached to.
    pub const fn seen(&self) -> u32 {
        self.seen
    }

    /// Reads the peer's word now.
    ///
    /// # Errors
    ///
    /// A shared-memory error.
    pub fn check<M: SharedMemory + ?Sized>(&self, mem: &M) -> Result<PeerState, M::Error> {
        Ok(match self.word.read(mem)? {
            Some(s) if s.session == self.seen => PeerState::Same,
            Some(s) => PeerState::Restarted(s.session),
            None => PeerState::Down,
        })
    }

    /// Follows the peer into its new session.
    pub fn follow(&mut self, session: u32) {
        self.seen = session;
    }
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;
    use ipc_traits::cache::Coherent;
    use ipc_traits::shm::RawRegion;

    #[repr(align(64))]
    struct Backing([u8; 128]);

    #[test]
    fn sessions_move_on_every_start_and_stale_ram_is_invalid() {
        let mut b = Backing([0x5A; 128]);
        let base = core::ptr::NonNull::new(b.0.as_mut_ptr()).unwrap();
        // SAFETY: the backing outlives the region; only the region uses it.
        let shm = unsafe { RawRegion::new(base, 128, 0, Coherent) }.unwrap();
        let master = SessionWord::at(0);
        let remote = SessionWord::at(64);
        assert_eq!(master.read(&shm), Ok(None), "random RAM is not a session");
        assert_eq!(master.begin(&shm, 0), Ok(1), "seed 0 becomes 1");
        let mut watch = PeerWatch::new(master, 1);
        assert_eq!(watch.check(&shm), Ok(PeerState::Same));
        // The master reboots warm: the old word is valid, the number moves.
        assert_eq!(master.begin(&shm, 77), Ok(2));
        assert_eq!(watch.check(&shm), Ok(PeerState::Restarted(2)));
        watch.follow(2);
        assert_eq!(watch.check(&shm), Ok(PeerState::Same));
        // A torn or corrupted word is "down", never a session.
        shm.write(4, &[9]).unwrap();
        assert_eq!(watch.check(&shm), Ok(PeerState::Down));
        assert_eq!(master.begin(&shm, 500), Ok(500), "invalid old word: seed");
        assert_eq!(remote.attach(&shm, 500), Err(ShmError::Unavailable));
        assert_eq!(remote.begin(&shm, 9), Ok(9));
        remote.attach(&shm, 500).unwrap();
        assert_eq!(
            remote.read(&shm),
            Ok(Some(Session {
                session: 9,
                peer_session: 500
            }))
        );
        master.end(&shm).unwrap();
        assert_eq!(watch.check(&shm), Ok(PeerState::Down));
    }
}
