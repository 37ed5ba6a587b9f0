//! Set-up shared by the restart and liveness tests: one coherent region
//! holding both rings, the master's pool and the two session words.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure; not every test uses every helper"
)]

use core::ptr::NonNull;

use ipc_traits::cache::Coherent;
use ipc_traits::mailbox::{ErrorType, Notify, QueueId};
use ipc_traits::shm::RawRegion;
use rpmsg::link::Link;
use rpmsg::rings::{MasterConfig, MasterRings, QueueIds, RemoteConfig, RemoteRings};
use rpmsg::session::{PeerWatch, SessionWord};
use vring::{BufferArea, Layout, Legacy, Suppression};

/// Ring tables for the test's life.
fn remote_tables<const N: usize>() -> &'static rpmsg::rings::RemoteTables<N> {
    Box::leak(Box::default())
}

pub const NUM: usize = 4;
pub const BUF: usize = 512;
const V1: usize = 512;
pub const POOL: usize = 1024;
pub const MASTER_WORD: usize = POOL + 2 * NUM * BUF;
pub const REMOTE_WORD: usize = MASTER_WORD + 64;
/// A resource table (for tests of a Linux-style master), after the words.
pub const TABLE: usize = REMOTE_WORD + 64;
pub const SIZE: usize = TABLE + 256;

/// A doorbell nobody listens to.
#[derive(Clone, Copy, Default)]
pub struct Quiet;
impl ErrorType for Quiet {
    type Error = core::convert::Infallible;
}
impl Notify for Quiet {
    fn notify(&mut self, _: QueueId) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[repr(align(4096))]
pub struct Backing(pub [u8; SIZE]);

pub type M = RawRegion<Coherent>;
pub type Master<'m, N = Quiet> = Link<'m, MasterRings<'m, M, Legacy, NUM>, N>;
pub type Remote<'m, N = Quiet> = Link<'m, RemoteRings<'m, M, Legacy, NUM>, N>;

/// Window offset of vring1 (vring0 is at 0).
pub const VRING1: usize = V1;

pub fn layouts() -> (Layout, Layout) {
    (
        Layout::legacy_at(0, NUM as u16, 64),
        Layout::legacy_at(V1, NUM as u16, 64),
    )
}

/// Fresh master rings over the pool (no session step).
pub fn lay_out_rings(shm: &M) -> MasterRings<'_, M, Legacy, NUM> {
    let (vring0, vring1) = layouts();
    let cfg = MasterConfig {
        vring0,
        vring1,
        pool: POOL,
        buf_size: BUF,
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
        rpmsg_lite_compat: false,
    };
    // SAFETY: the pool belongs to the master; the buffers of an earlier
    // session are gone with it (its link restarted or its core rebooted).
    unsafe { MasterRings::new(shm, cfg) }.unwrap()
}

/// A master (re)start: a new session, then fresh rings (the rings are laid
/// out under the new session only).
pub fn master_rings(shm: &M, seed: u32) -> (u32, MasterRings<'_, M, Legacy, NUM>) {
    let session = SessionWord::at(MASTER_WORD).begin(shm, seed).unwrap();
    (session, lay_out_rings(shm))
}

/// A remote attach: waits for a valid master session (here: it must be
/// there), records it, attaches to the rings.
pub fn remote_rings(shm: &M) -> (PeerWatch, RemoteRings<'_, M, Legacy, NUM>) {
    let master = SessionWord::at(MASTER_WORD)
        .read(shm)
        .unwrap()
        .expect("master session");
    SessionWord::at(REMOTE_WORD)
        .attach(shm, master.session)
        .unwrap();
    let (vring0, vring1) = layouts();
    let cfg = RemoteConfig {
        vring0,
        vring1,
        vring0_buffers: BufferArea::new(POOL, NUM * BUF),
        vring1_buffers: BufferArea::new(POOL + NUM * BUF, NUM * BUF),
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
    };
    // SAFETY: disjoint areas reached only through the rings.
    (
        PeerWatch::new(SessionWord::at(MASTER_WORD), master.session),
        unsafe { RemoteRings::new(shm, cfg, remote_tables()) }.unwrap(),
    )
}

pub fn region(b: &mut Backing) -> M {
    let base = NonNull::new(b.0.as_mut_ptr()).unwrap();
    // SAFETY: the backing outlives the region; only regions use it.
    unsafe { RawRegion::new(base, SIZE, 0x4000_0000, Coherent) }.unwrap()
}
