//! A hostile or broken peer, through the link's halves (`rpmsg::link`):
//! every bad input is a typed, counted event; the bad message is dropped
//! and its buffer returned; nothing else is lost.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

use core::ptr::NonNull;

use ipc_traits::cache::Coherent;
use ipc_traits::mailbox::{ErrorType, Notify, QueueId, Spins};
use ipc_traits::shm::{RawRegion, SharedMemory};
use rpmsg::link::ns::{NsDirectory, NsEvent};
use rpmsg::link::queues::{Endpoints, Queues};
use rpmsg::link::watch::Watchdog;
use rpmsg::link::{Link, Rx, Sent, Storage, Tx};
use rpmsg::rings::Halves;
use rpmsg::rings::{MasterConfig, MasterRings, QueueIds, RemoteConfig, RemoteRings};
use rpmsg::wire::{
    Header, Name, NsAction, NsMessage, ADDR_ANY, HEADER_LEN, NAME_LEN, NS_ADDR, NS_CREATE,
    NS_DESTROY, NS_MSG_LEN,
};
use rpmsg::Error;
use vring::{BufferArea, Layout, Legacy, Suppression};

/// Ring tables for the test's life.
fn remote_tables<const N: usize>() -> &'static rpmsg::rings::RemoteTables<N> {
    Box::leak(Box::default())
}

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
type Master<'m> = Link<'m, MasterRings<'m, M, Legacy, NUM>, Quiet>;
type Remote<'m> = Link<'m, RemoteRings<'m, M, Legacy, NUM>, Quiet>;

fn with_pair(f: impl FnOnce(&M, &mut Master<'_>, &mut Remote<'_>)) {
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
    let (mut ms, mut rs) = (Storage::<2>::new(), Storage::<2>::new());
    // SAFETY: the pool belongs to the master link; the remote's areas are
    // the pool halves, only reached through the rings.
    let mut master: Master<'_> = Link::new(
        unsafe { MasterRings::new(&shm, mc) }.unwrap(),
        Quiet,
        &mut ms,
    );
    // SAFETY: as above.
    let mut remote: Remote<'_> = Link::new(
        unsafe { RemoteRings::new(&shm, rc, remote_tables()) }.unwrap(),
        Quiet,
        &mut rs,
    );
    f(&shm, &mut master, &mut remote);
}

/// Every message waiting, copied, in order.
fn drain<'a, R: Halves<'a>>(rx: &mut Rx<'_, 'a, R, Quiet>) -> Vec<Vec<u8>> {
    let mut out = [0u8; 496];
    let mut got = Vec::new();
    while let Some(r) = rx.try_recv(&mut out).unwrap() {
        got.push(out[..r.len].to_vec());
    }
    got
}

/// Feeds every name-service message waiting to `dir`; returns the events.
fn ns_pump<'a, R: Halves<'a>>(
    rx: &mut Rx<'_, 'a, R, Quiet>,
    dir: &mut NsDirectory<2>,
) -> Vec<NsEvent> {
    drain(rx)
        .iter()
        .filter_map(|m| dir.on_message::<Legacy>(m))
        .collect()
}

fn sent<'a, R: Halves<'a>>(
    tx: &mut Tx<'_, 'a, R, Quiet>,
    ep: &rpmsg::link::Endpoint,
    dst: u32,
    data: &[u8],
) {
    assert_eq!(tx.try_send(ep, dst, data), Ok(Sent::Sent));
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
        remote.bind(40).unwrap();
        let mep = master.bind(ADDR_ANY).unwrap();
        let (mut mtx, _) = master.split();
        let (_, mut rrx) = remote.split();
        sent(&mut mtx, &mep, 40, b"good");
        sent(&mut mtx, &mep, 40, b"evil");
        sent(&mut mtx, &mep, 40, b"after");
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
        assert_eq!(drain(&mut rrx), [b"good".to_vec(), b"after".to_vec()]);
        assert_eq!(rrx.stats().bad_header, 1);
        // Every buffer came back: the master can fill the whole ring again.
        for k in 0..NUM {
            sent(&mut mtx, &mep, 40, &[k as u8]);
        }
    });
}

#[test]
fn used_length_shorter_than_header_is_rejected() {
    with_pair(|shm, master, remote| {
        let mep = master.bind(ADDR_ANY).unwrap();
        let rep = remote.bind(40).unwrap();
        let (_, mut mrx) = master.split();
        let (mut rtx, _) = remote.split();
        // The remote sends; the "remote" then lies in the used ring: the
        // used length (written after the header) claims 8 bytes.
        sent(&mut rtx, &rep, mep.addr(), b"hello");
        let used_elem = Layout::legacy_at(0, NUM as u16, ALIGN).used_entry_offset(0) + 4;
        shm.write(used_elem, &8u32.to_ne_bytes()).unwrap();
        let mut out = [0u8; 496];
        assert_eq!(mrx.try_recv(&mut out), Ok(None));
        assert_eq!(mrx.stats().bad_header, 1);
        sent(&mut rtx, &rep, mep.addr(), b"fine");
        assert_eq!(drain(&mut mrx), [b"fine".to_vec()]);
    });
}

#[test]
fn malformed_name_service_messages_are_counted() {
    with_pair(|_, master, remote| {
        let mep = master.bind(ADDR_ANY).unwrap();
        remote.bind(NS_ADDR).unwrap();
        let (mut mtx, _) = master.split();
        let (_, mut rrx) = remote.split();
        let mut dir = NsDirectory::<2>::new();
        let good = NsMessage {
            name: Name::new("svc").unwrap(),
            addr: 77,
            action: NsAction::Create,
        }
        .encode::<Legacy>();
        // Wrong size.
        sent(&mut mtx, &mep, NS_ADDR, &good[..39]);
        // Name that is not UTF-8.
        let mut garbled = good;
        garbled[..3].fill(0xFF);
        sent(&mut mtx, &mep, NS_ADDR, &garbled);
        // Unknown flags.
        let mut flags = good;
        flags[36] = 9;
        sent(&mut mtx, &mep, NS_ADDR, &flags);
        // Destroy of a service never announced.
        let destroy = NsMessage {
            name: Name::new("ghost").unwrap(),
            addr: 5,
            action: NsAction::Destroy,
        };
        assert!(ns_pump(&mut rrx, &mut dir).is_empty());
        sent(&mut mtx, &mep, NS_ADDR, &destroy.encode::<Legacy>());
        assert!(ns_pump(&mut rrx, &mut dir).is_empty());
        let s = dir.stats();
        assert_eq!((s.malformed, s.unknown_destroy), (3, 1));
        // A good one still works.
        sent(&mut mtx, &mep, NS_ADDR, &good);
        assert!(matches!(ns_pump(&mut rrx, &mut dir)[..], [NsEvent::Created(s)] if s.addr == 77));
    });
}

/// rpmsg-lite's `rpmsg_ns_announce` `strncpy`s the name into the 32-byte
/// field, so a 32-character name arrives without a NUL; Linux forces
/// `name[31] = 0` and accepts the first 31 characters. So do we, counted.
#[test]
fn ns_name_of_32_chars_truncated_like_linux() {
    with_pair(|_, master, remote| {
        let rep = remote.bind(40).unwrap();
        master.bind(NS_ADDR).unwrap();
        let (mut rtx, _) = remote.split();
        let (_, mut mrx) = master.split();
        let mut dir = NsDirectory::<2>::new();
        let name = "rpmsg-lite-announces-32-chr-name";
        assert_eq!(name.len(), NAME_LEN);
        let ns = |flags: u32| {
            let mut raw = [0u8; NS_MSG_LEN];
            raw[..NAME_LEN].copy_from_slice(name.as_bytes());
            raw[32..36].copy_from_slice(&rep.addr().to_ne_bytes());
            raw[36..40].copy_from_slice(&flags.to_ne_bytes());
            raw
        };
        sent(&mut rtx, &rep, NS_ADDR, &ns(NS_CREATE));
        let events = ns_pump(&mut mrx, &mut dir);
        let s = dir.stats();
        assert_eq!(
            (s.malformed, s.name_truncated),
            (0, 1),
            "accepted and counted as truncated"
        );
        let cut = &name[..NAME_LEN - 1];
        assert_eq!(dir.lookup_service(cut), Some(40));
        assert!(matches!(
            &events[..],
            [NsEvent::Created(s)] if s.addr == 40 && s.name.as_str() == cut
        ));
        // The destroy carries the same 32 bytes and finds the service.
        sent(&mut rtx, &rep, NS_ADDR, &ns(NS_DESTROY));
        let events = ns_pump(&mut mrx, &mut dir);
        assert_eq!(dir.lookup_service(cut), None);
        assert!(matches!(&events[..], [NsEvent::Destroyed(s)] if s.addr == 40));
        // A 31-character name with its NUL is not a truncation.
        assert_eq!(rtx.announce(&rep, cut), Ok(Sent::Sent));
        ns_pump(&mut mrx, &mut dir);
        assert_eq!(dir.lookup_service(cut), Some(40));
        let s = dir.stats();
        assert_eq!(
            (s.malformed, s.name_truncated, s.unknown_destroy),
            (0, 2, 0)
        );
    });
}

#[test]
fn announcement_flood_keeps_known_services_and_counts_the_rest() {
    with_pair(|_, master, remote| {
        let mep = master.bind(ADDR_ANY).unwrap();
        remote.bind(NS_ADDR).unwrap();
        let (mut mtx, _) = master.split();
        let (_, mut rrx) = remote.split();
        let mut dir = NsDirectory::<2>::new();
        for k in 0..6u32 {
            let name = format!("svc{k}");
            let msg = NsMessage {
                name: Name::new(&name).unwrap(),
                addr: 100 + k,
                action: NsAction::Create,
            };
            assert_eq!(
                mtx.blocking_send(&mep, NS_ADDR, &msg.encode::<Legacy>(), Spins::new(10)),
                Ok(Sent::Sent)
            );
            ns_pump(&mut rrx, &mut dir);
        }
        // The directory holds 2 services.
        assert_eq!(dir.lookup_service("svc0"), Some(100));
        assert_eq!(dir.lookup_service("svc1"), Some(101));
        assert_eq!(dir.lookup_service("svc5"), None);
        assert_eq!(dir.stats().directory_full, 4);
    });
}

#[test]
fn peer_that_never_returns_tx_buffers_gives_would_block_not_a_hang() {
    with_pair(|_, master, remote| {
        let mep = master.bind(ADDR_ANY).unwrap();
        let _rep = remote.bind(40).unwrap();
        let (mut mtx, _) = master.split();
        for _ in 0..NUM {
            sent(&mut mtx, &mep, 40, b"x");
        }
        // The remote never reads: every further send finds no buffer,
        // bounded.
        assert_eq!(mtx.try_send(&mep, 40, b"y"), Ok(Sent::NoBuffer));
        assert_eq!(
            mtx.blocking_send(&mep, 40, b"y", Spins::new(1000)),
            Ok(Sent::NoBuffer)
        );
        assert!(mtx.try_alloc().unwrap().is_none());
        assert!(mtx.stats().buffer_waits >= 3);
        // The watchdog counts the peer that keeps them, once.
        let mut dog = Watchdog::new(10);
        assert_eq!((0..100).filter(|_| dog.tick(&mut mtx)).count(), 1);
        assert_eq!(dog.unresponsive(), 1);
    });
}

#[test]
fn unsent_zero_copy_buffer_returns_on_drop_and_held_message_on_drop() {
    with_pair(|_, master, remote| {
        let mep = master.bind(ADDR_ANY).unwrap();
        remote.bind(40).unwrap();
        let (mut mtx, _) = master.split();
        let (_, mut rrx) = remote.split();
        for _ in 0..3 {
            let mut tx = mtx.try_alloc().unwrap().unwrap();
            tx.write(0, b"never sent").unwrap();
            drop(tx);
        }
        for k in 0..NUM {
            let mut tx = mtx.try_alloc().unwrap().unwrap();
            tx.payload_mut(2)
                .unwrap()
                .copy_from(&[k as u8, 0xAB])
                .unwrap();
            tx.send(&mep, 40).unwrap();
        }
        for k in 0..NUM {
            let held = rrx.try_recv_held().unwrap().unwrap();
            assert_eq!(held.payload().unwrap(), &[k as u8, 0xAB]);
            assert_eq!(held.src(), mep.addr());
        }
        // Dropping the held messages gave every buffer back.
        for _ in 0..NUM {
            sent(&mut mtx, &mep, 40, b"again");
        }
        assert_eq!(rrx.stats().return_failures, 0);
    });
}

/// A received buffer that cannot go back to the peer (here: the peer broke
/// the ring while the application held the message) is never dropped
/// silently: it is counted and the link says it is broken.
#[test]
fn a_buffer_that_cannot_go_back_is_counted() {
    with_pair(|shm, master, remote| {
        let mep = master.bind(ADDR_ANY).unwrap();
        let rep = remote.bind(40).unwrap();
        sent(&mut master.split().0, &mep, 40, b"held");
        let mut queues: Queues<'_, M, 2, 2> = Queues::new();
        {
            // The queue layer holds the message for its consumer.
            let mut eps = Endpoints::new(remote.split().1, &mut queues).unwrap();
            assert!(eps.pump().unwrap());
            assert_eq!(eps.queued(&rep), 1);
            // The "master" claims far more available entries than the ring
            // has, while the message is held.
            let avail_idx = Layout::legacy_at(V1, NUM as u16, ALIGN).avail_offset() + 2;
            shm.write(avail_idx, &100u16.to_ne_bytes()).unwrap();
            assert!(matches!(eps.pump(), Err(Error::Ring(_))));
            assert_eq!(eps.rx_stats().return_failures, 0);
            // Delivered all the same; its buffer cannot go back: counted.
            let mut out = [0u8; 8];
            let r = eps.try_recv(&rep, &mut out).unwrap().unwrap();
            assert_eq!(&out[..r.len], b"held");
            assert_eq!(eps.rx_stats().return_failures, 1);
        }
        assert!(remote.is_broken());
    });
}

#[test]
fn destroying_an_endpoint_returns_its_queued_buffers() {
    with_pair(|_, master, remote| {
        let mep = master.bind(ADDR_ANY).unwrap();
        let rep = remote.bind(40).unwrap();
        sent(&mut master.split().0, &mep, 40, b"1");
        sent(&mut master.split().0, &mep, 40, b"2");
        let mut queues: Queues<'_, M, 2, 2> = Queues::new();
        {
            let mut eps = Endpoints::new(remote.split().1, &mut queues).unwrap();
            assert!(eps.pump().unwrap());
            assert_eq!(eps.discard(&rep), Ok(2));
        }
        remote.unbind(rep);
        let (mut mtx, _) = master.split();
        let (_, mut rrx) = remote.split();
        for _ in 0..NUM {
            sent(&mut mtx, &mep, 40, b"x");
            assert!(drain(&mut rrx).is_empty());
        }
        assert_eq!(rrx.stats().unbound, NUM as u32);
    });
}

/// A message to `ADDR_ANY` (0xFFFF_FFFF, the value that marks a free
/// endpoint slot in the storage) is for nobody: counted as unbound and
/// given back, on the plain receive path and through the queue layer, even
/// while a storage slot is free.
#[test]
fn a_message_to_addr_any_is_unbound_not_delivered() {
    with_pair(|_, master, remote| {
        let mep = master.bind(ADDR_ANY).unwrap();
        let rep = remote.bind(40).unwrap();
        // One of the remote's two endpoint slots is still free.
        sent(&mut master.split().0, &mep, ADDR_ANY, b"to nobody");
        {
            let (_, mut rrx) = remote.split();
            assert!(drain(&mut rrx).is_empty());
            assert_eq!(rrx.stats().unbound, 1);
            assert_eq!(rrx.stats().messages, 0);
        }
        sent(&mut master.split().0, &mep, ADDR_ANY, b"to nobody");
        sent(&mut master.split().0, &mep, 40, b"to 40");
        let mut queues: Queues<'_, M, 2, 2> = Queues::new();
        {
            let mut eps = Endpoints::new(remote.split().1, &mut queues).unwrap();
            assert!(eps.pump().unwrap());
            let mut out = [0u8; 16];
            let got = eps.try_recv(&rep, &mut out).unwrap().unwrap();
            assert_eq!(&out[..got.len], b"to 40");
            assert!(eps.try_recv(&rep, &mut out).unwrap().is_none());
        }
        assert_eq!(remote.split().1.stats().unbound, 2);
    });
}

#[test]
fn payload_too_long_is_refused_without_consuming_a_buffer() {
    with_pair(|_, master, _| {
        let mep = master.bind(ADDR_ANY).unwrap();
        let (mut mtx, _) = master.split();
        assert_eq!(mtx.try_send(&mep, 40, &[0; 497]), Err(Error::TooLong));
        for _ in 0..NUM {
            sent(&mut mtx, &mep, 40, &[0; 496]);
        }
        assert_eq!(HEADER_LEN + 496, BUF);
    });
}

/// Sends through every way of filling a lent transmit buffer from `tx` to
/// `rx`, over buffers that each carried another endpoint's secret just
/// before, and checks what arrives byte for byte: bytes the sender did not
/// write arrive as 0, never as the secret.
fn lent_buffers_carry_only_this_send<'t, 'r, RT, RR>(
    tx: &mut Link<'t, RT, Quiet>,
    rx: &mut Link<'r, RR, Quiet>,
) where
    RT: Halves<'t>,
    RR: Halves<'r>,
    RT::Mem: ipc_traits::shm::DirectMemory,
{
    const SECRET: u8 = 0xA5;
    let other = tx.bind(ADDR_ANY).unwrap();
    let ep = tx.bind(ADDR_ANY).unwrap();
    rx.bind(40).unwrap();
    let (mut tx, _) = tx.split();
    let (_, mut rx) = rx.split();
    let mut out = [0u8; 496];
    let mut recv = || {
        let r = rx.try_recv(&mut out).unwrap().unwrap();
        out[..r.len].to_vec()
    };
    let cat = |parts: &[&[u8]]| parts.concat();
    for _ in 0..3 {
        // Every buffer of the ring carries the other endpoint's secret.
        for _ in 0..NUM {
            assert_eq!(tx.try_send(&other, 40, &[SECRET; 496]), Ok(Sent::Sent));
            assert_eq!(recv(), [SECRET; 496]);
        }
        // A short write, then a longer length.
        let mut b = tx.try_alloc().unwrap().unwrap();
        b.write(0, b"hi").unwrap();
        b.set_len(100).unwrap();
        b.send(&ep, 40).unwrap();
        assert_eq!(recv(), cat(&[b"hi", &[0; 98]]));
        // A write at an offset: the bytes before it.
        let mut b = tx.try_alloc().unwrap().unwrap();
        b.write(50, b"x").unwrap();
        b.send(&ep, 40).unwrap();
        assert_eq!(recv(), cat(&[&[0; 50], b"x"]));
        // Zero-copy, partly filled.
        let mut b = tx.try_alloc().unwrap().unwrap();
        b.payload_mut(64).unwrap().write_at(0, b"zero").unwrap();
        b.send(&ep, 40).unwrap();
        assert_eq!(recv(), cat(&[b"zero", &[0; 60]]));
        // Zero-copy, then a longer length: up to the whole buffer.
        let mut b = tx.try_alloc().unwrap().unwrap();
        b.payload_mut(8).unwrap().fill(1);
        b.set_len(496).unwrap();
        b.send(&ep, 40).unwrap();
        assert_eq!(recv(), cat(&[&[1; 8], &[0; 488]]));
        // Shrinking and growing again keeps what this send wrote.
        let mut b = tx.try_alloc().unwrap().unwrap();
        b.write(0, &[7; 200]).unwrap();
        b.set_len(10).unwrap();
        b.set_len(200).unwrap();
        b.send(&ep, 40).unwrap();
        assert_eq!(recv(), [7; 200]);
    }
    assert_eq!(rx.try_recv(&mut out), Ok(None));
}

#[test]
fn tx_buffer_never_publishes_stale_bytes() {
    with_pair(|_, master, remote| lent_buffers_carry_only_this_send(master, remote));
    with_pair(|_, master, remote| lent_buffers_carry_only_this_send(remote, master));
}
