//! A hostile or broken peer: every bad input is a typed, counted event; the
//! bad message is dropped and its buffer returned; nothing else is lost.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

use core::ptr::NonNull;

use ipc_traits::cache::Coherent;
use ipc_traits::mailbox::{ErrorType, Notify, QueueId, Spins};
use ipc_traits::shm::{RawRegion, SharedMemory};
use rpmsg::link::{Error, Link, NsEvent, RxMode};
use rpmsg::rings::{MasterConfig, MasterRings, QueueIds, RemoteConfig, RemoteRings};
use rpmsg::wire::{
    Header, Name, NsAction, NsMessage, ADDR_ANY, HEADER_LEN, NAME_LEN, NS_ADDR, NS_CREATE,
    NS_DESTROY, NS_MSG_LEN,
};
use vring::{BufferArea, Layout, Legacy, Suppression};

const NUM: usize = 4;
const BUF: usize = 512;
const ALIGN: usize = 64;
const V1: usize = 512;
const POOL: usize = 1024;
const SIZE: usize = POOL + 2 * NUM * BUF;

#[derive(Clone, Copy, Default)]
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

type M = RawRegion<Coherent>;
type Master<'m> = Link<'m, MasterRings<'m, M, Legacy, NUM>, Quiet, 2, 2, 2>;
type Remote<'m> = Link<'m, RemoteRings<'m, M, Legacy, NUM>, Quiet, 2, 2, 2>;

fn with_pair(f: impl FnOnce(&M, &Master<'_>, &Remote<'_>)) {
    let mut b = Box::new(Backing([0; SIZE]));
    let base = NonNull::new(b.0.as_mut_ptr()).unwrap();
    // SAFETY: the backing outlives the region and is only used through it.
    let shm = unsafe { RawRegion::new(base, SIZE, 0x4000_0000, Coherent) }.unwrap();
    let v0 = Layout::legacy_at(0, NUM as u16, ALIGN);
    let v1 = Layout::legacy_at(V1, NUM as u16, ALIGN);
    let mc = MasterConfig {
        vring0: v0,
        vring1: v1,
        pool: POOL,
        buf_size: BUF,
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
        rpmsg_lite_compat: false,
    };
    let rc = RemoteConfig {
        vring0: v0,
        vring1: v1,
        vring0_buffers: BufferArea::new(POOL, NUM * BUF),
        vring1_buffers: BufferArea::new(POOL + NUM * BUF, NUM * BUF),
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
    };
    // SAFETY: the pool belongs to the master link; the remote's areas are
    // the pool halves, only reached through the rings.
    let master: Master<'_> = Link::new(unsafe { MasterRings::new(&shm, mc) }.unwrap(), Quiet);
    // SAFETY: as above.
    let remote: Remote<'_> = Link::new(unsafe { RemoteRings::new(&shm, rc) }.unwrap(), Quiet);
    f(&shm, &master, &remote);
}

/// Offset of the transmit buffer the master's `n`-th send uses (its spare
/// list hands them out in pool order, then recycles).
fn master_tx_buf(n: usize) -> usize {
    POOL + (NUM + n % NUM) * BUF
}

fn rewrite_header(shm: &M, at: usize, h: Header) {
    shm.write(at, &h.encode::<Legacy>()).unwrap();
}

#[test]
fn header_length_beyond_the_buffer_is_dropped_and_counted() {
    with_pair(|shm, master, remote| {
        let rep = remote.create_endpoint(40, RxMode::Queue).unwrap();
        let mep = master.create_endpoint(ADDR_ANY, RxMode::Queue).unwrap();
        master.try_send(&mep, 40, b"good").unwrap();
        master.try_send(&mep, 40, b"evil").unwrap();
        master.try_send(&mep, 40, b"after").unwrap();
        rewrite_header(
            shm,
            master_tx_buf(1),
            Header {
                src: mep.addr(),
                dst: 40,
                len: 497,
                flags: 0,
            },
        );
        let mut out = [0u8; 496];
        let texts: Vec<_> = (0..2)
            .map(|_| {
                let r = remote.try_recv(&rep, &mut out).unwrap();
                out[..r.len].to_vec()
            })
            .collect();
        assert_eq!(texts, [b"good".to_vec(), b"after".to_vec()]);
        assert_eq!(remote.stats().rx_bad_header, 1);
        assert_eq!(remote.try_recv(&rep, &mut out), Err(Error::WouldBlock));
        // Every buffer came back: the master can fill the whole ring again.
        for k in 0..NUM {
            master.try_send(&mep, 40, &[k as u8]).unwrap();
        }
    });
}

#[test]
fn used_length_shorter_than_header_is_rejected() {
    with_pair(|shm, master, remote| {
        let mep = master.create_endpoint(ADDR_ANY, RxMode::Queue).unwrap();
        let rep = remote.create_endpoint(40, RxMode::Queue).unwrap();
        // The remote sends; the "remote" then lies in the used ring: the
        // used length (written after the header) claims 8 bytes.
        remote.try_send(&rep, mep.addr(), b"hello").unwrap();
        let used_elem = Layout::legacy_at(0, NUM as u16, ALIGN).used_entry_offset(0) + 4;
        shm.write(used_elem, &8u32.to_ne_bytes()).unwrap();
        let mut out = [0u8; 496];
        assert_eq!(master.try_recv(&mep, &mut out), Err(Error::WouldBlock));
        assert_eq!(master.stats().rx_bad_header, 1);
        remote.try_send(&rep, mep.addr(), b"fine").unwrap();
        let r = master.try_recv(&mep, &mut out).unwrap();
        assert_eq!(&out[..r.len], b"fine");
    });
}

#[test]
fn malformed_name_service_messages_are_counted() {
    with_pair(|shm, master, remote| {
        let mep = master.create_endpoint(ADDR_ANY, RxMode::Queue).unwrap();
        let good = NsMessage {
            name: Name::new("svc").unwrap(),
            addr: 77,
            action: NsAction::Create,
        }
        .encode::<Legacy>();
        // Wrong size.
        master.try_send(&mep, NS_ADDR, &good[..39]).unwrap();
        // Name that is not UTF-8.
        let mut garbled = good;
        garbled[..3].fill(0xFF);
        master.try_send(&mep, NS_ADDR, &garbled).unwrap();
        // Unknown flags.
        let mut flags = good;
        flags[36] = 9;
        master.try_send(&mep, NS_ADDR, &flags).unwrap();
        // Destroy of a service never announced.
        let destroy = NsMessage {
            name: Name::new("ghost").unwrap(),
            addr: 5,
            action: NsAction::Destroy,
        };
        remote.service().unwrap();
        master
            .try_send(&mep, NS_ADDR, &destroy.encode::<Legacy>())
            .unwrap();
        remote.service().unwrap();
        let s = remote.stats();
        assert_eq!((s.ns_malformed, s.ns_unknown_destroy), (3, 1));
        assert_eq!(remote.try_ns_event(), None);
        // A good one still works.
        master.try_send(&mep, NS_ADDR, &good).unwrap();
        remote.service().unwrap();
        assert!(matches!(remote.try_ns_event(), Some(NsEvent::Created(s)) if s.addr == 77));
        let _ = shm;
    });
}

/// rpmsg-lite's `rpmsg_ns_announce` `strncpy`s the name into the 32-byte
/// field, so a 32-character name arrives without a NUL; Linux forces
/// `name[31] = 0` and accepts the first 31 characters. So do we, counted.
#[test]
fn ns_name_of_32_chars_truncated_like_linux() {
    with_pair(|_, master, remote| {
        let rep = remote.create_endpoint(40, RxMode::Queue).unwrap();
        let name = "rpmsg-lite-announces-32-chr-name";
        assert_eq!(name.len(), NAME_LEN);
        let ns = |flags: u32| {
            let mut raw = [0u8; NS_MSG_LEN];
            raw[..NAME_LEN].copy_from_slice(name.as_bytes());
            raw[32..36].copy_from_slice(&rep.addr().to_ne_bytes());
            raw[36..40].copy_from_slice(&flags.to_ne_bytes());
            raw
        };
        remote.try_send(&rep, NS_ADDR, &ns(NS_CREATE)).unwrap();
        master.service().unwrap();
        let s = master.stats();
        assert_eq!(
            (s.ns_malformed, s.ns_name_truncated),
            (0, 1),
            "accepted and counted as truncated"
        );
        let cut = &name[..NAME_LEN - 1];
        assert_eq!(master.lookup_service(cut), Some(40));
        assert!(matches!(
            master.try_ns_event(),
            Some(NsEvent::Created(s)) if s.addr == 40 && s.name.as_str() == cut
        ));
        // The destroy carries the same 32 bytes and finds the service.
        remote.try_send(&rep, NS_ADDR, &ns(NS_DESTROY)).unwrap();
        master.service().unwrap();
        assert_eq!(master.lookup_service(cut), None);
        assert!(matches!(master.try_ns_event(), Some(NsEvent::Destroyed(s)) if s.addr == 40));
        // A 31-character name with its NUL is not a truncation.
        remote.announce(&rep, cut).unwrap();
        master.service().unwrap();
        assert_eq!(master.lookup_service(cut), Some(40));
        let s = master.stats();
        assert_eq!(
            (s.ns_malformed, s.ns_name_truncated, s.ns_unknown_destroy),
            (0, 2, 0)
        );
    });
}

#[test]
fn announcement_flood_keeps_known_services_and_counts_the_rest() {
    with_pair(|_, master, remote| {
        let mep = master.create_endpoint(ADDR_ANY, RxMode::Queue).unwrap();
        for k in 0..6u32 {
            let name = format!("svc{k}");
            let msg = NsMessage {
                name: Name::new(&name).unwrap(),
                addr: 100 + k,
                action: NsAction::Create,
            };
            master
                .blocking_send(&mep, NS_ADDR, &msg.encode::<Legacy>(), Spins::new(10))
                .unwrap();
            remote.service().unwrap();
        }
        // The directory holds 2 services, the event queue 8 events.
        assert_eq!(remote.lookup_service("svc0"), Some(100));
        assert_eq!(remote.lookup_service("svc1"), Some(101));
        assert_eq!(remote.lookup_service("svc5"), None);
        assert_eq!(remote.stats().ns_directory_full, 4);
    });
}

#[test]
fn peer_that_never_returns_tx_buffers_gives_would_block_not_a_hang() {
    with_pair(|_, master, remote| {
        let mep = master.create_endpoint(ADDR_ANY, RxMode::Queue).unwrap();
        let _rep = remote.create_endpoint(40, RxMode::Queue).unwrap();
        for _ in 0..NUM {
            master.try_send(&mep, 40, b"x").unwrap();
        }
        // The remote never polls: every further send is WouldBlock, bounded.
        assert_eq!(master.try_send(&mep, 40, b"y"), Err(Error::WouldBlock));
        assert_eq!(
            master.blocking_send(&mep, 40, b"y", Spins::new(1000)),
            Err(Error::WouldBlock)
        );
        assert!(master.try_alloc_tx().is_err());
        assert!(master.stats().tx_buffer_waits >= 3);
        assert_eq!(
            master.stats().peer_unresponsive,
            1,
            "the bounded wait that ran out is counted"
        );
    });
}

#[test]
fn unsent_zero_copy_buffer_returns_on_drop_and_held_message_on_drop() {
    with_pair(|_, master, remote| {
        let mep = master.create_endpoint(ADDR_ANY, RxMode::Queue).unwrap();
        let rep = remote.create_endpoint(40, RxMode::Queue).unwrap();
        for _ in 0..3 {
            let mut tx = master.try_alloc_tx().unwrap();
            tx.write(0, b"never sent").unwrap();
            drop(tx);
        }
        for k in 0..NUM {
            let mut tx = master.try_alloc_tx().unwrap();
            tx.payload_mut(2)
                .unwrap()
                .copy_from(&[k as u8, 0xAB])
                .unwrap();
            tx.send(&mep, 40).unwrap();
        }
        for k in 0..NUM {
            let held = remote.try_recv_held(&rep).unwrap();
            assert_eq!(held.payload().unwrap(), &[k as u8, 0xAB]);
            assert_eq!(held.src(), mep.addr());
        }
        // Dropping the held messages gave every buffer back.
        master.service().unwrap();
        for _ in 0..NUM {
            master.try_send(&mep, 40, b"again").unwrap();
        }
        assert_eq!((master.leaked_buffers(), remote.leaked_buffers()), (0, 0));
    });
}

/// A received buffer that cannot go back to the peer (here: the peer broke
/// the ring while the application held the message) is never dropped
/// silently: it is counted and the link says it is broken.
#[test]
fn a_buffer_that_cannot_go_back_is_counted() {
    with_pair(|shm, master, remote| {
        let mep = master.create_endpoint(ADDR_ANY, RxMode::Queue).unwrap();
        let rep = remote.create_endpoint(40, RxMode::Queue).unwrap();
        master.try_send(&mep, 40, b"held").unwrap();
        let held = remote.try_recv_held(&rep).unwrap();
        assert_eq!(held.payload().unwrap(), b"held");
        // The "master" claims far more available entries than the ring has.
        let avail_idx = Layout::legacy_at(V1, NUM as u16, ALIGN).avail_offset() + 2;
        shm.write(avail_idx, &100u16.to_ne_bytes()).unwrap();
        assert!(remote.service().is_err());
        assert_eq!(remote.stats().rx_return_failures, 0);
        drop(held);
        assert_eq!(remote.stats().rx_return_failures, 1);
        assert_eq!(remote.leaked_buffers(), 1);
        assert!(remote.is_broken());
    });
}

#[test]
fn destroying_an_endpoint_returns_its_queued_buffers() {
    with_pair(|_, master, remote| {
        let mep = master.create_endpoint(ADDR_ANY, RxMode::Queue).unwrap();
        let rep = remote.create_endpoint(40, RxMode::Queue).unwrap();
        master.try_send(&mep, 40, b"1").unwrap();
        master.try_send(&mep, 40, b"2").unwrap();
        remote.service().unwrap();
        remote.destroy_endpoint(rep).unwrap();
        for _ in 0..NUM {
            master.try_send(&mep, 40, b"x").unwrap();
            remote.service().unwrap();
        }
        assert_eq!(remote.stats().rx_unbound, NUM as u32);
    });
}

#[test]
fn payload_too_long_is_refused_without_consuming_a_buffer() {
    with_pair(|_, master, _| {
        let mep = master.create_endpoint(ADDR_ANY, RxMode::Queue).unwrap();
        assert_eq!(
            master.try_send(&mep, 40, &[0; 497]),
            Err(Error::TooLong { len: 497, max: 496 })
        );
        for _ in 0..NUM {
            master.try_send(&mep, 40, &[0; 496]).unwrap();
        }
        assert_eq!(HEADER_LEN + 496, BUF);
    });
}

/// Sends through every way of filling a lent transmit buffer from `tx` to
/// `rx`, over buffers that each carried another endpoint's secret just
/// before, and checks what arrives byte for byte: bytes the sender did not
/// write arrive as 0, never as the secret.
fn lent_buffers_carry_only_this_send<'t, 'r, RT, RR>(
    tx: &Link<'t, RT, Quiet, 2, 2, 2>,
    rx: &Link<'r, RR, Quiet, 2, 2, 2>,
) where
    RT: rpmsg::rings::Rings<'t>,
    RR: rpmsg::rings::Rings<'r>,
    RT::Mem: ipc_traits::shm::DirectMemory,
{
    const SECRET: u8 = 0xA5;
    let other = tx.create_endpoint(ADDR_ANY, RxMode::Queue).unwrap();
    let ep = tx.create_endpoint(ADDR_ANY, RxMode::Queue).unwrap();
    let rep = rx.create_endpoint(40, RxMode::Queue).unwrap();
    let mut out = [0u8; 496];
    let mut recv = || {
        let r = rx.try_recv(&rep, &mut out).unwrap();
        out[..r.len].to_vec()
    };
    let cat = |parts: &[&[u8]]| parts.concat();
    for _ in 0..3 {
        // Every buffer of the ring carries the other endpoint's secret.
        for _ in 0..NUM {
            tx.try_send(&other, 40, &[SECRET; 496]).unwrap();
            assert_eq!(recv(), [SECRET; 496]);
        }
        // A short write, then a longer length.
        let mut b = tx.try_alloc_tx().unwrap();
        b.write(0, b"hi").unwrap();
        b.set_len(100).unwrap();
        b.send(&ep, 40).unwrap();
        assert_eq!(recv(), cat(&[b"hi", &[0; 98]]));
        // A write at an offset: the bytes before it.
        let mut b = tx.try_alloc_tx().unwrap();
        b.write(50, b"x").unwrap();
        b.send(&ep, 40).unwrap();
        assert_eq!(recv(), cat(&[&[0; 50], b"x"]));
        // Zero-copy, partly filled.
        let mut b = tx.try_alloc_tx().unwrap();
        b.payload_mut(64).unwrap().write_at(0, b"zero").unwrap();
        b.send(&ep, 40).unwrap();
        assert_eq!(recv(), cat(&[b"zero", &[0; 60]]));
        // Zero-copy, then a longer length: up to the whole buffer.
        let mut b = tx.try_alloc_tx().unwrap();
        b.payload_mut(8).unwrap().fill(1);
        b.set_len(496).unwrap();
        b.send(&ep, 40).unwrap();
        assert_eq!(recv(), cat(&[&[1; 8], &[0; 488]]));
        // Shrinking and growing again keeps what this send wrote.
        let mut b = tx.try_alloc_tx().unwrap();
        b.write(0, &[7; 200]).unwrap();
        b.set_len(10).unwrap();
        b.set_len(200).unwrap();
        b.send(&ep, 40).unwrap();
        assert_eq!(recv(), [7; 200]);
    }
    assert_eq!(rx.try_recv(&rep, &mut out), Err(Error::WouldBlock));
}

#[test]
fn tx_buffer_never_publishes_stale_bytes() {
    with_pair(|_, master, remote| lent_buffers_carry_only_this_send(master, remote));
    with_pair(|_, master, remote| lent_buffers_carry_only_this_send(remote, master));
}
