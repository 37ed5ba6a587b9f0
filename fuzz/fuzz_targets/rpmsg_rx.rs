//! The rpmsg receive path of both roles over memory a hostile peer writes.
//!
//! A master and a remote link are set up over one window (both ours, so the
//! start state is the one the tests use); then the input is a program: the
//! peer overwrites bytes it could own (ring entries, indices, buffer
//! contents: headers and name-service messages included) and our sides send,
//! poll, service, receive (copying and held), tick the liveness watch and
//! restart (the master-restart handshake: `release_session` reads what the
//! old rings still hold) in between. The library must never panic, never
//! hang, never hand out a payload longer than a buffer, and never report
//! more messages lost at a restart than the link and its ring can hold.
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ptr::NonNull;

use ipc_traits::cache::Coherent;
use ipc_traits::mailbox::{ErrorType, Notify, QueueId};
use ipc_traits::shm::{RawRegion, SharedMemory};
use libfuzzer_sys::fuzz_target;
use rpmsg::link::{Link, RxMode};
use rpmsg::rings::{MasterConfig, MasterRings, QueueIds, RemoteConfig, RemoteRings};
use vring::{BufferArea, Layout, Legacy, Suppression};

const NUM: usize = 4;
const BUF: usize = 512;
const POOL: usize = 1024;
const SIZE: usize = POOL + 2 * NUM * BUF;

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
    (Layout::legacy_at(0, NUM as u16, 64), Layout::legacy_at(512, NUM as u16, 64))
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
    // SAFETY: the pool belongs to the master; the remote's areas are its
    // halves, reached only through the rings.
    let master = Link::<_, _, 2, 2, 2>::new(unsafe { MasterRings::<_, Legacy, NUM>::new(&shm, mc) }.unwrap(), Quiet);
    // SAFETY: as above.
    let remote = Link::<_, _, 2, 2, 2>::new(unsafe { RemoteRings::<_, Legacy, NUM>::new(&shm, rc) }.unwrap(), Quiet);
    let mep = master.create_endpoint(1024, RxMode::Queue).unwrap();
    let rep = remote.create_endpoint(40, RxMode::Queue).unwrap();
    let _ = remote.announce(&rep, "fuzz");
    master.set_unresponsive_after(2).unwrap();
    remote.set_unresponsive_after(2).unwrap();
    // Ring entries + endpoint queues (2 endpoints x 2) + one stalled.
    let most_lost = NUM as u32 + 2 * 2 + 1;
    let mut out = [0u8; BUF];
    let mut ops = data.chunks(4);
    while let Some(op) = ops.next() {
        let arg = op.get(1..).unwrap_or(&[]);
        match op[0] % 11 {
            // The peer writes up to 3 bytes anywhere in the window.
            0 => {
                let at = usize::from(u16::from_le_bytes([*arg.first().unwrap_or(&0), *arg.get(1).unwrap_or(&0)])) % SIZE;
                let _ = shm.write(at, &arg[arg.len().min(2)..]);
            }
            1 => {
                let _ = master.try_send(&mep, 40, arg);
            }
            2 => {
                let _ = remote.try_send(&rep, 1024, arg);
            }
            3 => {
                let _ = remote.poll(|m| assert!(m.payload.len() <= BUF - 16));
            }
            4 => {
                if let Ok(r) = remote.try_recv(&rep, &mut out) {
                    assert!(r.len <= BUF - 16);
                }
            }
            5 => {
                if let Ok(r) = master.try_recv(&mep, &mut out) {
                    assert!(r.len <= BUF - 16);
                }
            }
            6 => {
                if let Ok(h) = remote.try_recv_held(&rep) {
                    // The zero-copy view: every accessor copies or compares,
                    // each within the checked length.
                    if let Ok(p) = h.payload() {
                        let n = p.copy_to(&mut out);
                        assert!(n == p.len() && n <= BUF - 16);
                        assert!(p == out[..n]);
                        assert_eq!(p.bytes().count(), n);
                        assert_eq!(p.get(n), None);
                        let (at, len) = (usize::from(*arg.first().unwrap_or(&0)), usize::from(*arg.get(1).unwrap_or(&0)) % 8);
                        let _ = p.read_at(at, &mut out[..len]);
                    }
                }
            }
            7 => {
                let _ = master.service();
                while master.try_ns_event().is_some() {}
            }
            9 => {
                let _ = master.tick();
                let _ = remote.tick();
            }
            10 => {
                // The master restarts (handshake): the remote lets go,
                // counting what it had not taken from the old rings; both
                // restart over rings laid out again.
                if let Ok(r) = remote.release_session() {
                    assert!(r.lost <= most_lost, "{r:?}");
                }
                if let Ok(r) = master.release_session() {
                    assert!(r.lost <= most_lost, "{r:?}");
                }
                // SAFETY: as above; the old session's buffers are stale
                // (no held message or lent buffer outlives an op).
                let _ = master.restart(unsafe { MasterRings::<_, Legacy, NUM>::new(&shm, mc) }.unwrap());
                // SAFETY: as above.
                let _ = remote.restart(unsafe { RemoteRings::<_, Legacy, NUM>::new(&shm, rc) }.unwrap());
            }
            _ => {
                // A header or name-service message of the peer's choosing in
                // a transmit buffer the master is about to send.
                // Through the zero-copy writer view when the first byte is
                // odd.
                if let Ok(mut tx) = master.try_alloc_tx() {
                    if arg.first().is_some_and(|b| b & 1 == 1) {
                        if let Ok(mut p) = tx.payload_mut(arg.len() + 1) {
                            let _ = p.write_at(1, arg);
                            assert!(p.write_at(1, &[0; BUF]).is_err());
                        }
                    } else {
                        let _ = tx.write(0, arg);
                    }
                    let _ = tx.send(&mep, u32::from(*arg.first().unwrap_or(&53)));
                }
            }
        }
    }
    let _ = (master.stats(), remote.stats(), remote.ring_stats());
});
