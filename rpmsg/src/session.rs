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
//! Protocol (the restart handshake): the master's `peer_session` says
//! whether the rings are laid out and for which remote session; the
//! remote's says which master session it attached to.
//! 1. The master starts (at boot or after a crash) with
//!    [`SessionWord::begin`]: a new session, `peer_session` 0, meaning "the
//!    old rings are untouched, new ones are not laid out yet".
//! 2. It waits, bounded, for the remote to attach to the new session
//!    ([`PeerWatch::attached_to`]). A remote that still had a link first
//!    counts what it had not taken from the old rings
//!    ([`crate::link::Link::release_session`], only when
//!    [`PeerWatch::rings_intact`] says the master has not laid them out).
//!    The bound must be longer than the remote's check interval; when it
//!    passes (a dead remote), the master goes on.
//! 3. The master lays out the rings and attaches to the remote's session
//!    (`peer_session` = that session: "laid out for it").
//! 4. The remote, once attached, waits until the master's word is attached
//!    to its own session ([`PeerWatch::attached_to`]), then builds its
//!    rings ([`crate::link::Link::restart`] if it had a link).
//! 5. A remote that restarts starts a new session of its own and attaches
//!    to the master's current one; the master sees the new remote session
//!    ([`PeerWatch::check`]), ends its link's session (it owns the ring
//!    memory, so [`crate::link::Link::release_session`] counts what the
//!    remote had sent and the master had not taken), lays the rings out
//!    again, attaches to the new remote session and restarts its link.
//!
//! Each side checks the other's word from time to time (a few loads: on
//! every doorbell, or every N polls). An invalid word means the peer is
//! down or starting.
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

    /// The peer's session if the peer's word is valid and attached to
    /// `own` (this side's session): for the master, the remote let go of
    /// the old rings; for the remote, the master laid the rings out for it.
    ///
    /// # Errors
    ///
    /// A shared-memory error.
    pub fn attached_to<M: SharedMemory + ?Sized>(
        &self,
        mem: &M,
        own: u32,
    ) -> Result<Option<u32>, M::Error> {
        Ok(self
            .word
            .read(mem)?
            .filter(|s| own != 0 && s.peer_session == own)
            .map(|s| s.session))
    }

    /// Whether the peer (a master) has started a session and not yet laid
    /// out its rings: its word is valid with `peer_session` 0, so the old
    /// rings are still as the old session left them and the remote may
    /// count what it had not taken ([`crate::link::Link::release_session`]).
    ///
    /// # Errors
    ///
    /// A shared-memory error.
    pub fn rings_intact<M: SharedMemory + ?Sized>(&self, mem: &M) -> Result<bool, M::Error> {
        Ok(self.word.read(mem)?.is_some_and(|s| s.peer_session == 0))
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

    #[test]
    fn handshake_words_say_who_let_go_and_for_whom_rings_are_laid_out() {
        let mut b = Backing([0; 128]);
        let base = core::ptr::NonNull::new(b.0.as_mut_ptr()).unwrap();
        // SAFETY: the backing outlives the region; only the region uses it.
        let shm = unsafe { RawRegion::new(base, 128, 0, Coherent) }.unwrap();
        let (mw, rw) = (SessionWord::at(0), SessionWord::at(64));
        let r = rw.begin(&shm, 40).unwrap();
        let m = mw.begin(&shm, 10).unwrap();
        let on_master = PeerWatch::new(rw, r);
        let on_remote = PeerWatch::new(mw, m);
        // 1. A new master session: old rings intact, nobody attached.
        assert_eq!(on_remote.rings_intact(&shm), Ok(true));
        assert_eq!(on_master.attached_to(&shm, m), Ok(None));
        // 2. The remote lets go and attaches.
        rw.attach(&shm, m).unwrap();
        assert_eq!(on_master.attached_to(&shm, m), Ok(Some(r)));
        assert_eq!(on_remote.attached_to(&shm, r), Ok(None), "not laid out");
        // 3. The master lays out for that remote.
        mw.attach(&shm, r).unwrap();
        assert_eq!(on_remote.rings_intact(&shm), Ok(false));
        assert_eq!(on_remote.attached_to(&shm, r), Ok(Some(m)));
        // Another remote session is not served by these rings.
        assert_eq!(on_remote.attached_to(&shm, r + 1), Ok(None));
        // An invalid word attaches nobody; own session 0 never matches.
        assert_eq!(on_master.attached_to(&shm, 0), Ok(None));
        mw.end(&shm).unwrap();
        assert_eq!(on_remote.rings_intact(&shm), Ok(false));
        assert_eq!(on_remote.attached_to(&shm, r), Ok(None));
    }
}
