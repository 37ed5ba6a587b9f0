//! The rpmsg receive path of both roles over memory a hostile peer writes.
//!
//! A master and a remote link (`rpmsg::link`) are set up over one window
//! (both ours, so the start state is the one the tests use); then the input
//! is a program: the peer overwrites bytes it could own (ring entries,
//! indices, buffer contents: headers and name-service messages included)
//! and our sides send, receive (copying, held, through the remote's
//! endpoint queues, the master's name-service directory), tick the liveness
//! watchdogs and restart (the master-restart handshake: `release_session`
//! reads what the old rings still hold, the remote announces again) in
//! between. The library must never panic, never hang, never hand out a
//! payload longer than a buffer or than the caller's, and never report more
//! messages lost at a restart than the link, its queues and its ring can
//! hold.
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ptr::NonNull;

use ipc_traits::cache::Coherent;
use ipc_traits::mailbox::{ErrorType, Notify, QueueId};
use ipc_traits::shm::{RawRegion, SharedMemory};
use libfuzzer_sys::fuzz_target;
use rpmsg::link::ns::NsDirectory;
use rpmsg::link::queues::{Endpoints, Queues};
use rpmsg::link::restart::Announcements;
use rpmsg::link::watch::Watchdog;
use rpmsg::link::{Link, Storage};
use rpmsg::rings::{MasterConfig, MasterRings, QueueIds, RemoteConfig, RemoteRings, RemoteTables};
use rpmsg::wire::NS_ADDR;
use vring::{BufferArea, Layout, Legacy, Suppression};

const NUM: usize = 4;
const BUF: usize = 512;
const POOL: usize = 1024;
const SIZE: usize = POOL + 2 * NUM * BUF;
/// Largest payload.
const MAX: usize = BUF - 16;
/// Messages each remote endpoint's queue holds.
const Q: usize = 2;

#[derive(Clone, Copy)]
struct Quiet;
impl ErrorType for Quiet {
    type Error = core::convert::Infallible;
}
impl Notify for Quiet {
    fn notify(&mut self, _: QueueId) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[repr(align(4096))]
struct Backing([u8; SIZE]);

fn layouts() -> (Layout, Layout) {
    (
        Layout::legacy_at(0, NUM as u16, 64),
        Layout::legacy_at(512, NUM as u16, 64),
    )
}

fuzz_target!(|data: &[u8]| {
    let mut backing = Box::new(Backing([0; SIZE]));
    let base = NonNull::new(backing.0.as_mut_ptr()).unwrap();
    // SAFETY: the backing outlives the region; only regions use it.
    let shm = unsafe { RawRegion::new(base, SIZE, 0x4000_0000, Coherent) }.unwrap();
    let (vring0, vring1) = layouts();
    let mc = MasterConfig {
        vring0,
        vring1,
        pool: POOL,
        buf_size: BUF,
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
        rpmsg_lite_compat: false,
    };
    let rc = RemoteConfig {
        vring0,
        vring1,
        vring0_buffers: BufferArea::new(POOL, NUM * BUF),
        vring1_buffers: BufferArea::new(POOL + NUM * BUF, NUM * BUF),
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
    };
    let (mut mstore, mut rstore) = (Storage::<2>::new(), Storage::<2>::new());
    // The remote's ring tables: free again once a session's rings are
    // dropped (`release_session`), so the restart reuses them.
    let rtables = RemoteTables::new();
    let mut queues = Queues::<_, 2, Q>::new();
    // SAFETY: the pool belongs to the master; the remote's areas are its
    // halves, reached only through the rings.
    let mut master = Link::new(
        unsafe { MasterRings::<_, Legacy, NUM>::new(&shm, mc) }.unwrap(),
        Quiet,
        &mut mstore,
    );
    // SAFETY: as above.
    let mut remote = Link::new(
        unsafe { RemoteRings::<_, Legacy, NUM>::new(&shm, rc, &rtables) }.unwrap(),
        Quiet,
        &mut rstore,
    );
    let mep = master.bind(1024).unwrap();
    let _ns = master.bind(NS_ADDR).unwrap();
    let reps = [remote.bind(40).unwrap(), remote.bind(41).unwrap()];
    let mut dir = NsDirectory::<2>::new();
    let mut ann = Announcements::<1>::new();
    let _ = ann.announce(&mut remote.split().0, &reps[0], "fuzz");
    let (mut mdog, mut rdog) = (Watchdog::new(2), Watchdog::new(2));
    // The remote: ring entries + endpoint queues (2 endpoints x Q) + the
    // one reception stalled at. The master: ring entries + one kept by a
    // short receive.
    let (remote_most_lost, master_most_lost) = (NUM as u32 + 2 * Q as u32 + 1, NUM as u32 + 1);
    let mut out = [0u8; BUF];
    for op in data.chunks(4) {
        let arg = op.get(1..).unwrap_or(&[]);
        let bit = |b: u8| arg.first().is_some_and(|a| a & b != 0);
        match op[0] % 11 {
            // The peer writes up to 3 bytes anywhere in the window.
            0 => {
                let at = usize::from(u16::from_le_bytes([
                    *arg.first().unwrap_or(&0),
                    *arg.get(1).unwrap_or(&0),
                ])) % SIZE;
                let _ = shm.write(at, &arg[arg.len().min(2)..]);
            }
            1 => {
                let _ = master.split().0.try_send(&mep, 40 + u32::from(bit(2)), arg);
            }
            2 => {
                let (mut tx, _) = remote.split();
                let _ = ann.reannounce(&mut tx);
                let _ = tx.try_send(&reps[0], 1024, arg);
            }
            3 => {
                let (_, rx) = remote.split();
                let mut eps = Endpoints::new(rx, &mut queues).unwrap();
                let _ = eps.pump();
            }
            4 => {
                let (_, rx) = remote.split();
                let mut eps = Endpoints::new(rx, &mut queues).unwrap();
                let ep = &reps[usize::from(bit(1))];
                if let Ok(Some(r)) = eps.try_recv(ep, &mut out) {
                    assert!(r.len <= MAX && r.dst == ep.addr());
                }
                assert!(eps.queued(ep) <= Q + 1);
            }
            5 => {
                // Into a buffer of the input's length: a short one keeps
                // the message for the next call.
                let n = arg.first().map_or(BUF, |b| usize::from(*b) * 2).min(BUF);
                let (_, mut rx) = master.split();
                if let Ok(Some(r)) = rx.try_recv(&mut out[..n]) {
                    assert!(r.len <= MAX && r.len <= n);
                    assert!(r.dst == mep.addr() || r.dst == NS_ADDR);
                    if r.dst == NS_ADDR {
                        let _ = dir.on_message::<Legacy>(&out[..r.len]);
                    }
                }
            }
            6 => {
                let (_, rx) = remote.split();
                let mut eps = Endpoints::new(rx, &mut queues).unwrap();
                if let Ok(Some(h)) = eps.try_recv_held(&reps[usize::from(bit(1))]) {
                    // The zero-copy view: every accessor copies or compares,
                    // each within the checked length.
                    if let Ok(p) = h.payload() {
                        let n = p.copy_to(&mut out);
                        assert!(n == p.len() && n <= MAX);
                        assert!(p == out[..n]);
                        assert_eq!(p.bytes().count(), n);
                        assert_eq!(p.get(n), None);
                        let (at, len) = (
                            usize::from(*arg.first().unwrap_or(&0)),
                            usize::from(*arg.get(1).unwrap_or(&0)) % 8,
                        );
                        let _ = p.read_at(at, &mut out[..len]);
                    }
                };
            }
            7 => {
                // The master's name service, held in place.
                let (_, mut rx) = master.split();
                for _ in 0..=NUM {
                    match rx.try_recv_held() {
                        Ok(Some(h)) if h.dst() == NS_ADDR => {
                            let _ = dir.on_held(&h);
                        }
                        Ok(Some(h)) => assert!(h.len() <= MAX),
                        _ => break,
                    }
                }
                assert!(dir.services().count() <= 2);
                let _ = dir.lookup_service("fuzz");
            }
            9 => {
                let _ = mdog.tick(&mut master.split().0);
                let _ = rdog.tick(&mut remote.split().0);
            }
            10 => {
                // The master restarts (handshake): the remote lets go,
                // counting what it had not taken from the old rings and
                // what its queues held; both restart over rings laid out
                // again.
                let (ended_remote, r) = remote.release_session();
                let lost = r.lost + queues.forget_session();
                assert!(lost <= remote_most_lost, "{r:?} + queued: {lost}");
                let (ended_master, r) = master.release_session();
                assert!(r.lost <= master_most_lost, "{r:?}");
                // SAFETY: as above; the old session's buffers are stale
                // (no held message or lent buffer outlives an op, the
                // queues were emptied).
                master = ended_master
                    .restart(unsafe { MasterRings::<_, Legacy, NUM>::new(&shm, mc) }.unwrap());
                // SAFETY: as above.
                remote = ended_remote.restart(
                    unsafe { RemoteRings::<_, Legacy, NUM>::new(&shm, rc, &rtables) }.unwrap(),
                );
                dir.on_peer_reset();
                ann.on_restart();
                mdog.on_restart();
                rdog.on_restart();
            }
            _ => {
                // A header or name-service message of the peer's choosing in
                // a transmit buffer the master is about to send.
                // Through the zero-copy writer view when the first byte is
                // odd.
                let (mut tx, _) = master.split();
                if let Ok(Some(mut b)) = tx.try_alloc() {
                    if bit(1) {
                        if let Ok(mut p) = b.payload_mut(arg.len() + 1) {
                            let _ = p.write_at(1, arg);
                            assert!(p.write_at(1, &[0; BUF]).is_err());
                        }
                    } else {
                        let _ = b.write(0, arg);
                    }
                    assert!(b.len() <= b.capacity() && b.capacity() <= MAX);
                    let _ = b.send(&mep, u32::from(*arg.first().unwrap_or(&53)));
                };
            }
        }
    }
    let _ = (
        master.tx_stats(),
        master.rx_stats(),
        remote.rx_stats(),
        remote.ring_stats(),
        dir.stats(),
        queues.stats(),
    );
    let _ = (mdog.unresponsive(), rdog.unresponsive());
});
