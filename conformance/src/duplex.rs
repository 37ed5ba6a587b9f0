//! The end-to-end suite of the split link ([`rpmsg::duplex`]): a master and
//! a remote on two threads (two simulated cores with non-coherent
//! write-back caches that evict at random, as in [`crate::link`]), each
//! driving its link through its transmit and receive halves, ringing each
//! other through a backend's simulated mailbox.
//!
//! [`duplex_suite!`](crate::duplex_suite) expands it into named `#[test]`s
//! for one backend's [`DoorbellLink`] fixture.

use std::thread;

use ipc_traits::mailbox::{blocking_notify, Budget, NotifyRx, QueueId};
use rpmsg::duplex::ns::{NsDirectory, NsEvent};
use rpmsg::duplex::queues::{Endpoints, Queues};
use rpmsg::duplex::restart::Announcements;
use rpmsg::duplex::watch::Watchdog;
use rpmsg::duplex::{Link, Sent, Storage};
use rpmsg::rings::{MasterRings, RemoteRings};
use rpmsg::wire::{NsAction, NsMessage, ADDR_ANY, NS_ADDR, NS_MSG_LEN};
use vring::Legacy;

use crate::link::{payload, Echo, GEOMETRY, MASTER_LINE, MAX_PAYLOAD, NUM, REMOTE_LINE};
use crate::mailbox::{DoorbellFixture, DoorbellLink, PATIENCE};
use crate::sim::{CacheConfig, SimCore, SimMemory};

const PEER_BASE: u64 = 0x4000_0000;

/// The master link of the suite.
pub type MasterLink<'m, N> = Link<'m, MasterRings<'m, SimCore<MASTER_LINE>, Legacy, NUM>, N>;
/// The remote link of the suite.
pub type RemoteLink<'m, N> = Link<'m, RemoteRings<'m, SimCore<REMOTE_LINE>, Legacy, NUM>, N>;

fn q(i: u8) -> QueueId {
    QueueId::new(i).unwrap_or_else(|| panic!("queue {i}"))
}

pub(crate) fn remote_rings(
    core: &SimCore<REMOTE_LINE>,
) -> RemoteRings<'_, SimCore<REMOTE_LINE>, Legacy, NUM> {
    // SAFETY: the buffer areas are the master's pool halves, disjoint; this
    // core builds no other buffer over them.
    unsafe { RemoteRings::<_, Legacy, NUM>::new(core, crate::link::remote_config()) }
        .unwrap_or_else(|e| panic!("remote rings: {e}"))
}

pub(crate) fn master_rings(
    core: &SimCore<MASTER_LINE>,
) -> MasterRings<'_, SimCore<MASTER_LINE>, Legacy, NUM> {
    // SAFETY: the pool belongs to this link alone.
    unsafe { MasterRings::<_, Legacy, NUM>::new(core, crate::link::master_config()) }
        .unwrap_or_else(|e| panic!("master rings: {e}"))
}

/// Takes every pending doorbell (so word FIFOs drain); the virtio rings
/// need nothing more (the halves read the rings themselves).
pub(crate) fn drain<T: NotifyRx>(take: &mut T) {
    let _rang = take.take_pending().unwrap_or_default();
}

/// Remote: waits for the first kick, announces `rpmsg-echo`, echoes
/// `count` messages; returns (messages received, lines invalidated).
fn run_remote<L: DoorbellLink>(
    mem: SimMemory,
    seed: u64,
    mut take: L::Take,
    ring: L::Ring,
    count: u32,
    mode: Echo,
) -> (u32, u64) {
    let core = mem.core::<REMOTE_LINE>(CacheConfig::write_back(seed));
    let mut budget = PATIENCE;
    while take.take_pending().unwrap_or_default().is_empty() {
        assert!(budget.next(), "remote: the master never kicked");
    }
    let mut storage = Storage::<2>::new();
    let mut link: RemoteLink<'_, L::Ring> = Link::new(remote_rings(&core), ring, &mut storage);
    let ep = link.bind(ADDR_ANY).unwrap_or_else(|e| panic!("{e}"));
    let (mut tx, mut rx) = link.split();
    let mut budget = PATIENCE;
    while tx
        .announce(&ep, "rpmsg-echo")
        .unwrap_or_else(|e| panic!("announce: {e}"))
        == Sent::NoBuffer
    {
        drain(&mut take);
        assert!(budget.next(), "remote: no buffer to announce");
    }
    let mut scratch = [0u8; MAX_PAYLOAD];
    let mut echoed = 0;
    let mut budget = PATIENCE;
    while echoed < count {
        drain(&mut take);
        let got = match mode {
            Echo::Copy => match rx.try_recv(&mut scratch) {
                Ok(Some(r)) => {
                    assert_eq!(r.dst, ep.addr());
                    let mut wait = PATIENCE;
                    while tx
                        .try_send(&ep, r.src, &scratch[..r.len])
                        .unwrap_or_else(|e| panic!("echo: {e}"))
                        == Sent::NoBuffer
                    {
                        drain(&mut take);
                        assert!(wait.next(), "remote: no transmit buffer came back");
                    }
                    true
                }
                Ok(None) => false,
                Err(e) => panic!("remote recv: {e}"),
            },
            Echo::ZeroCopy => match rx.try_recv_held() {
                Ok(Some(held)) => {
                    let mut wait = PATIENCE;
                    let mut buf = loop {
                        match tx.try_alloc() {
                            Ok(Some(b)) => break b,
                            Ok(None) => {
                                drain(&mut take);
                                assert!(wait.next(), "remote: no transmit buffer");
                            }
                            Err(e) => panic!("remote alloc: {e}"),
                        }
                    };
                    let n = held.len();
                    held.read(0, &mut scratch[..n])
                        .unwrap_or_else(|e| panic!("{e}"));
                    buf.write(0, &scratch[..n])
                        .unwrap_or_else(|e| panic!("{e}"));
                    let src = held.src();
                    // The received buffer is still held while the echo goes
                    // out: both directions' buffers in flight at once.
                    buf.send(&ep, src)
                        .unwrap_or_else(|e| panic!("remote send: {e}"));
                    drop(held);
                    true
                }
                Ok(None) => false,
                Err(e) => panic!("remote recv: {e}"),
            },
        };
        if got {
            echoed += 1;
            budget = PATIENCE;
        } else {
            assert!(budget.next(), "remote: message {echoed} never arrived");
        }
    }
    let rs = rx.stats();
    assert_clean("remote", &link);
    (rs.messages, core.stats().lines_invalidated)
}

fn assert_clean<'m, R: rpmsg::rings::Halves<'m>, N: ipc_traits::mailbox::Notify>(
    who: &str,
    link: &Link<'m, R, N>,
) {
    let s = link.rx_stats();
    assert_eq!(
        (s.bad_header, s.unbound, s.return_failures),
        (0, 0, 0),
        "{who}: {s:?}"
    );
    let (t, r) = link.ring_stats();
    assert_eq!(
        t.failures.total() + r.failures.total(),
        0,
        "{who}: ring failures {t:?} {r:?}"
    );
    assert!(!link.is_broken(), "{who}: broken");
}

/// Name-service announcement, then `count` messages of random sizes
/// 0..=496 echoed (at most 8 outstanding), each checked for loss,
/// duplication, order and content; both sides over the split API. Returns
/// (lines the master cleaned, lines the remote invalidated).
pub fn echo<L: DoorbellLink>(count: u32, mode: Echo, seed: u64) -> (u64, u64) {
    let DoorbellFixture {
        mut ring_b,
        take_b,
        ring_a,
        mut take_a,
        ..
    } = L::open();
    let mem = SimMemory::new(GEOMETRY.size, PEER_BASE);
    let remote_mem = mem.clone();
    let remote =
        thread::spawn(move || run_remote::<L>(remote_mem, seed ^ 0xB, take_b, ring_a, count, mode));
    let core = mem.core::<MASTER_LINE>(CacheConfig::write_back(seed));
    let rings = master_rings(&core);
    // Linux's start-up order: the rings laid out, then the first kick.
    blocking_notify(&mut ring_b, q(0), PATIENCE).unwrap_or_else(|e| panic!("first kick: {e:?}"));
    let mut storage = Storage::<2>::new();
    let mut link: MasterLink<'_, L::Ring> = Link::new(rings, ring_b, &mut storage);
    // Name-service messages are delivered raw to whoever binds 53.
    let ns = link.bind(NS_ADDR).unwrap_or_else(|e| panic!("{e}"));
    let ep = link.bind(ADDR_ANY).unwrap_or_else(|e| panic!("{e}"));
    let (mut tx, mut rx) = link.split();
    let mut out = [0u8; MAX_PAYLOAD];
    let mut budget = PATIENCE;
    let peer = loop {
        drain(&mut take_a);
        if let Some(r) = rx.try_recv(&mut out).unwrap_or_else(|e| panic!("{e}")) {
            assert_eq!((r.dst, r.len), (ns.addr(), NS_MSG_LEN));
            let m = NsMessage::decode::<Legacy>(&out[..r.len]).unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!(
                (m.name.as_str(), m.action),
                ("rpmsg-echo", NsAction::Create)
            );
            assert_eq!(r.src, m.addr);
            break m.addr;
        }
        assert!(budget.next(), "the announcement never arrived");
    };
    let (mut sent, mut got) = (0u32, 0u32);
    let mut want = [0u8; MAX_PAYLOAD];
    let mut budget = PATIENCE;
    while got < count {
        drain(&mut take_a);
        let mut progressed = false;
        if sent < count && sent - got < 8 {
            let n = payload(sent, &mut out);
            match tx.try_send(&ep, peer, &out[..n]) {
                Ok(Sent::Sent) => {
                    sent += 1;
                    progressed = true;
                }
                Ok(Sent::NoBuffer) => {}
                Err(e) => panic!("master send {sent}: {e}"),
            }
        }
        match rx.try_recv(&mut out) {
            Ok(Some(r)) => {
                let n = payload(got, &mut want);
                assert_eq!((r.src, r.dst), (peer, ep.addr()));
                assert_eq!(
                    r.len, n,
                    "echo {got}: length (lost, duplicated or reordered)"
                );
                assert_eq!(&out[..n], &want[..n], "echo {got}: content corrupted");
                got += 1;
                progressed = true;
            }
            Ok(None) => {}
            Err(e) => panic!("master recv {got}: {e}"),
        }
        if progressed {
            budget = PATIENCE;
        } else {
            assert!(budget.next(), "master: stuck at sent {sent}, echoed {got}");
        }
    }
    let (ts, rs) = (tx.stats(), rx.stats());
    assert_clean("master", &link);
    assert_eq!(ts.messages, count, "every echo request sent once");
    assert_eq!(rs.messages, count + 1, "every echo and the announcement");
    let (received, invalidated) = remote
        .join()
        .unwrap_or_else(|_| panic!("remote thread failed"));
    assert_eq!(received, count, "the remote received every message once");
    (core.stats().lines_cleaned, invalidated)
}

/// How many messages the echo tests move.
pub const fn echo_count() -> u32 {
    crate::link::echo_count()
}

/// Back-pressure: while the remote holds every message (received, not
/// given back), the master runs out of transmit buffers: `NoBuffer`,
/// counted, no hang, no loss; once the remote lets go, sending resumes.
/// Also: a message to an address nobody bound is counted, given back and
/// never delivered.
pub fn back_pressure_and_unbound<L: DoorbellLink>() {
    let DoorbellFixture {
        ring_b,
        mut take_b,
        ring_a,
        mut take_a,
        ..
    } = L::open();
    let mem = SimMemory::new(GEOMETRY.size, PEER_BASE);
    let mcore = mem.core::<MASTER_LINE>(CacheConfig::write_back(7));
    let rcore = mem.core::<REMOTE_LINE>(CacheConfig::write_back(8));
    let mut ms = Storage::<1>::new();
    let mut master: MasterLink<'_, L::Ring> = Link::new(master_rings(&mcore), ring_b, &mut ms);
    let mut rs = Storage::<1>::new();
    let mut remote: RemoteLink<'_, L::Ring> = Link::new(remote_rings(&rcore), ring_a, &mut rs);
    let rep = remote.bind(40).unwrap_or_else(|e| panic!("{e}"));
    let mep = master.bind(ADDR_ANY).unwrap_or_else(|e| panic!("{e}"));
    {
        let (mut mtx, _) = master.split();
        let (_, mut rrx) = remote.split();
        // One stray message first: counted, given back, not delivered.
        assert_eq!(mtx.try_send(&mep, 41, b"nobody"), Ok(Sent::Sent));
        let mut sent = 1;
        loop {
            drain(&mut take_b);
            match mtx.try_send(&mep, 40, &[sent as u8; 32]) {
                Ok(Sent::Sent) => sent += 1,
                Ok(Sent::NoBuffer) => break,
                Err(e) => panic!("{e}"),
            }
            assert!(sent <= 2 * NUM, "more sends than transmit buffers");
        }
        assert_eq!(sent, NUM, "every transmit buffer is usable");
        assert!(mtx.stats().buffer_waits >= 1);
        // The remote holds them all (not read yet): still no buffer.
        drain(&mut take_b);
        assert_eq!(mtx.try_send(&mep, 40, b"x"), Ok(Sent::NoBuffer));
        // It reads half: the stray one is skipped (counted, given back).
        let mut out = [0u8; MAX_PAYLOAD];
        let mut got = Vec::new();
        for _ in 0..NUM / 2 {
            drain(&mut take_a);
            let r = rrx
                .try_recv(&mut out)
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("a message is missing"));
            assert_eq!((r.dst, r.len), (rep.addr(), 32));
            got.push(out[0]);
        }
        assert_eq!(rrx.stats().unbound, 1, "the stray message is counted");
        // Exactly the buffers given back are free again.
        drain(&mut take_b);
        let mut again = 0;
        while mtx
            .try_send(&mep, 40, &[0xA0 + again as u8; 32])
            .unwrap_or_else(|e| panic!("{e}"))
            == Sent::Sent
        {
            again += 1;
            assert!(again <= NUM, "more buffers than were given back");
        }
        assert_eq!(again, NUM / 2 + 1, "the stray one's and those read");
        loop {
            drain(&mut take_a);
            match rrx.try_recv(&mut out).unwrap_or_else(|e| panic!("{e}")) {
                Some(r) => {
                    assert_eq!(r.len, 32);
                    got.push(out[0]);
                }
                None => break,
            }
        }
        let want: Vec<u8> = (1..NUM as u8)
            .chain((0..again as u8).map(|k| 0xA0 + k))
            .collect();
        assert_eq!(got, want, "every message exactly once, in order");
        assert_eq!(rrx.stats().unbound, 1);
    }
}

/// The payload of message `seq` for endpoint `tag` in the queue test:
/// `[tag, seq (LE u32), filler...]`, length 5..=100 by `seq`.
fn tagged(tag: u8, seq: u32, out: &mut [u8; MAX_PAYLOAD]) -> usize {
    let n = 5 + (seq.wrapping_mul(37) % 96) as usize;
    out[0] = tag;
    out[1..5].copy_from_slice(&seq.to_le_bytes());
    for (k, b) in out[5..n].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_add(k as u8) ^ tag;
    }
    n
}

/// The remote's queue layer and doorbell reader, shared by its tasks.
type SharedQueues<'l, 'm, N, T> = std::sync::Mutex<(
    Endpoints<'l, 'm, RemoteRings<'m, SimCore<REMOTE_LINE>, Legacy, NUM>, N>,
    T,
)>;

/// One task of [`queues_across_tasks`]: takes `per_ep` messages for `ep`,
/// checking each.
fn consume<N: ipc_traits::mailbox::Notify, T: NotifyRx>(
    shared: &SharedQueues<'_, '_, N, T>,
    ep: &rpmsg::duplex::Endpoint,
    tag: u8,
    per_ep: u32,
) {
    let mut got = 0u32;
    let (mut out, mut want) = ([0u8; MAX_PAYLOAD], [0u8; MAX_PAYLOAD]);
    let mut budget = PATIENCE;
    while got < per_ep {
        let r = {
            let mut g = shared.lock().unwrap_or_else(|_| panic!("poisoned"));
            drain(&mut g.1);
            g.0.try_recv(ep, &mut out)
                .unwrap_or_else(|e| panic!("endpoint {tag}: {e}"))
        };
        match r {
            Some(r) => {
                let n = tagged(tag, got, &mut want);
                assert_eq!(r.dst, ep.addr());
                assert_eq!(
                    &out[..r.len],
                    &want[..n],
                    "endpoint {tag}, message {got}: lost, reordered or corrupted"
                );
                got += 1;
                budget = PATIENCE;
            }
            None => assert!(budget.next(), "endpoint {tag} stuck at {got}"),
        }
    }
}

/// Endpoint queues across tasks: the master sends `per_ep` messages to
/// each of two remote endpoints, interleaved at random; on the remote two
/// threads (two tasks) each consume one endpoint through the queue layer,
/// shared under a mutex, with queues of 2. Each endpoint gets its own
/// messages, in order, once; reception stalls on a full queue and resumes
/// (back-pressure), nothing is lost.
pub fn queues_across_tasks<L: DoorbellLink>(per_ep: u32, seed: u64) {
    use std::sync::Mutex;
    let DoorbellFixture {
        ring_b,
        take_b,
        ring_a,
        mut take_a,
        ..
    } = L::open();
    let mem = SimMemory::new(GEOMETRY.size, PEER_BASE);
    let mcore = mem.core::<MASTER_LINE>(CacheConfig::write_back(seed));
    let rcore = mem.core::<REMOTE_LINE>(CacheConfig::write_back(seed ^ 0x51));
    let mut ms = Storage::<1>::new();
    let mut master: MasterLink<'_, L::Ring> = Link::new(master_rings(&mcore), ring_b, &mut ms);
    let mut rs = Storage::<2>::new();
    let mut remote: RemoteLink<'_, L::Ring> = Link::new(remote_rings(&rcore), ring_a, &mut rs);
    let (ea, eb) = (
        remote.bind(30).unwrap_or_else(|e| panic!("{e}")),
        remote.bind(31).unwrap_or_else(|e| panic!("{e}")),
    );
    let mep = master.bind(ADDR_ANY).unwrap_or_else(|e| panic!("{e}"));
    let (mut mtx, _mrx) = master.split();
    let (_rtx, rrx) = remote.split();
    let mut queues = Queues::<'_, SimCore<REMOTE_LINE>, 2, 2>::new();
    let eps = Endpoints::new(rrx, &mut queues).unwrap_or_else(|e| panic!("{e}"));
    let shared = Mutex::new((eps, take_b));
    let stalls = thread::scope(|s| {
        let ta = s.spawn(|| consume(&shared, &ea, b'a', per_ep));
        let tb = s.spawn(|| consume(&shared, &eb, b'b', per_ep));
        // The master, on this thread: random interleaving.
        let mut rng = crate::rng::SplitMix64::new(seed);
        let (mut sa, mut sb) = (0u32, 0u32);
        let mut out = [0u8; MAX_PAYLOAD];
        let mut budget = PATIENCE;
        while sa < per_ep || sb < per_ep {
            drain(&mut take_a);
            let to_a = sb == per_ep || (sa < per_ep && rng.next_u64() & 1 == 0);
            let (dst, tag, seq) = if to_a { (30, b'a', sa) } else { (31, b'b', sb) };
            let n = tagged(tag, seq, &mut out);
            match mtx.try_send(&mep, dst, &out[..n]) {
                Ok(Sent::Sent) => {
                    if to_a {
                        sa += 1;
                    } else {
                        sb += 1;
                    }
                    budget = PATIENCE;
                }
                Ok(Sent::NoBuffer) => assert!(budget.next(), "master: no buffer came back"),
                Err(e) => panic!("master send: {e}"),
            }
        }
        ta.join().unwrap_or_else(|_| panic!("consumer a failed"));
        tb.join().unwrap_or_else(|_| panic!("consumer b failed"));
        let g = shared.lock().unwrap_or_else(|_| panic!("poisoned"));
        assert_eq!(g.0.rx_stats().messages, 2 * per_ep);
        assert_eq!((g.0.rx_stats().unbound, g.0.rx_stats().bad_header), (0, 0));
        assert!(!g.0.is_stalled());
        g.0.stats().stalls
    });
    assert!(stalls > 0, "queues of 2 must have filled at least once");
}

/// A name-service payload with raw fields (little-endian host order:
/// the suite's rings are legacy, native order).
fn ns_payload(name: &[u8], addr: u32, flags: u32) -> [u8; NS_MSG_LEN] {
    let mut b = [0u8; NS_MSG_LEN];
    b[..name.len()].copy_from_slice(name);
    b[32..36].copy_from_slice(&addr.to_ne_bytes());
    b[36..40].copy_from_slice(&flags.to_ne_bytes());
    b
}

/// Name-service reception over the backend, caches and all: the remote
/// announces and the master's directory learns it (held message); a
/// hostile master sends the remote's address 53 every kind of bad
/// announcement, each counted and none changing the directory beyond what
/// Linux would (a 32-byte name cut to 31).
pub fn name_service_hostile<L: DoorbellLink>() {
    let DoorbellFixture {
        ring_b,
        mut take_b,
        ring_a,
        mut take_a,
        ..
    } = L::open();
    let mem = SimMemory::new(GEOMETRY.size, PEER_BASE);
    let mcore = mem.core::<MASTER_LINE>(CacheConfig::write_back(21));
    let rcore = mem.core::<REMOTE_LINE>(CacheConfig::write_back(22));
    let mut ms = Storage::<2>::new();
    let mut master: MasterLink<'_, L::Ring> = Link::new(master_rings(&mcore), ring_b, &mut ms);
    let mut rs = Storage::<2>::new();
    let mut remote: RemoteLink<'_, L::Ring> = Link::new(remote_rings(&rcore), ring_a, &mut rs);
    let rep = remote.bind(30).unwrap_or_else(|e| panic!("{e}"));
    let _rns = remote.bind(NS_ADDR).unwrap_or_else(|e| panic!("{e}"));
    let _mns = master.bind(NS_ADDR).unwrap_or_else(|e| panic!("{e}"));
    let mep = master.bind(0x400).unwrap_or_else(|e| panic!("{e}"));
    let (mut mtx, mut mrx) = master.split();
    let (mut rtx, mut rrx) = remote.split();
    // The remote announces; the master's directory takes it held.
    let mut mdir = NsDirectory::<2>::new();
    assert_eq!(rtx.announce(&rep, "rpmsg-echo"), Ok(Sent::Sent));
    drain(&mut take_a);
    let held = mrx
        .try_recv_held()
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the announcement is missing"));
    assert!(matches!(mdir.on_held(&held), Some(NsEvent::Created(s)) if s.addr == 30));
    drop(held);
    assert_eq!(mdir.lookup_service("rpmsg-echo"), Some(30));
    // The hostile master.
    let long = [b'z'; 32];
    let hostile: [&[u8]; 9] = [
        &[0u8; 12],
        &[0u8; 41],
        &ns_payload(b"svc", 0x401, 2),
        &ns_payload(&[0xC3, 0x28], 0x401, 0),
        &ns_payload(b"ghost", 0x401, 1),
        &ns_payload(&long, 0x402, 0),
        &ns_payload(b"two", 0x403, 0),
        &ns_payload(b"three", 0x404, 0),
        &ns_payload(b"two", 0x403, 0),
    ];
    let mut rdir = NsDirectory::<2>::new();
    let mut out = [0u8; MAX_PAYLOAD];
    let mut events = Vec::new();
    for payload in hostile {
        assert_eq!(mtx.try_send(&mep, NS_ADDR, payload), Ok(Sent::Sent));
        drain(&mut take_b);
        let r = rrx
            .try_recv(&mut out)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("a name-service message is missing"));
        assert_eq!((r.dst, r.len), (NS_ADDR, payload.len()));
        events.push(rdir.on_message::<Legacy>(&out[..r.len]));
    }
    let st = rdir.stats();
    assert_eq!(
        (
            st.messages,
            st.malformed,
            st.unknown_destroy,
            st.name_truncated,
            st.directory_full
        ),
        (9, 4, 1, 1, 1)
    );
    let created = events.iter().flatten().count();
    assert_eq!(created, 2, "the cut name and `two`: {events:?}");
    assert_eq!(rdir.lookup_service("three"), None, "the directory was full");
    assert_eq!(rdir.lookup_service("two"), Some(0x403));
    let cut = core::str::from_utf8(&long[..31]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rdir.lookup_service(cut), Some(0x402));
    assert_eq!(rrx.try_recv(&mut out), Ok(None));
}

/// A restart over the backend, caches and all: the master sends, the
/// remote reads part, both sessions end (the master counts the
/// unconfirmed, the remote the lost, while the old rings are intact), the
/// master lays the rings out again in the same memory, both restart, the
/// remote announces again; nothing of the old session arrives in the new
/// one, and every old message is delivered or counted on both sides.
pub fn restart_accounts_for_every_message<L: DoorbellLink>() {
    let DoorbellFixture {
        ring_b,
        mut take_b,
        ring_a,
        mut take_a,
        ..
    } = L::open();
    let mem = SimMemory::new(GEOMETRY.size, PEER_BASE);
    let mcore = mem.core::<MASTER_LINE>(CacheConfig::write_back(31));
    let rcore = mem.core::<REMOTE_LINE>(CacheConfig::write_back(32));
    let mut ms = Storage::<2>::new();
    let mut master: MasterLink<'_, L::Ring> = Link::new(master_rings(&mcore), ring_b, &mut ms);
    let mut rs = Storage::<1>::new();
    let mut remote: RemoteLink<'_, L::Ring> = Link::new(remote_rings(&rcore), ring_a, &mut rs);
    let rep = remote.bind(30).unwrap_or_else(|e| panic!("{e}"));
    let mns = master.bind(NS_ADDR).unwrap_or_else(|e| panic!("{e}"));
    let mep = master.bind(0x400).unwrap_or_else(|e| panic!("{e}"));
    let mut ann = Announcements::<1>::new();
    let mut out = [0u8; MAX_PAYLOAD];
    let (sent, delivered) = {
        let (mut rtx, mut rrx) = remote.split();
        assert_eq!(ann.announce(&mut rtx, &rep, "rpmsg-echo"), Ok(Sent::Sent));
        let (mut mtx, mut mrx) = master.split();
        drain(&mut take_a);
        let r = mrx
            .try_recv(&mut out)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no announcement"));
        assert_eq!(r.dst, mns.addr());
        let mut sent = 0u32;
        let mut data = [0u8; MAX_PAYLOAD];
        while sent < 10 {
            let n = payload(sent, &mut data);
            assert_eq!(mtx.try_send(&mep, 30, &data[..n]), Ok(Sent::Sent));
            sent += 1;
        }
        let mut delivered = 0u32;
        for _ in 0..4 {
            drain(&mut take_b);
            let r = rrx
                .try_recv(&mut out)
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("message {delivered} missing"));
            let n = payload(delivered, &mut data);
            assert_eq!(&out[..r.len], &data[..n]);
            delivered += 1;
        }
        (sent, delivered)
    };
    let (ended_m, mrep) = master.end_session();
    let (ended_r, rrep) = remote.release_session();
    assert_eq!(mrep.unconfirmed, sent - delivered, "master: not given back");
    assert_eq!(rrep.lost, sent - delivered, "remote: not taken");
    // The master lays out the rings again over the same memory.
    let mut master = ended_m.restart(master_rings(&mcore));
    let mut remote = ended_r.restart(remote_rings(&rcore));
    assert_eq!(ann.on_restart(), 1);
    let (mut rtx, mut rrx) = remote.split();
    assert_eq!(ann.reannounce(&mut rtx), Ok(0));
    let (mut mtx, mut mrx) = master.split();
    drain(&mut take_a);
    let r = mrx
        .try_recv(&mut out)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no announcement after the restart"));
    let m = NsMessage::decode::<Legacy>(&out[..r.len]).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        (r.dst, m.name.as_str(), m.addr),
        (mns.addr(), "rpmsg-echo", 30)
    );
    assert_eq!(mtx.try_send(&mep, 30, b"session two"), Ok(Sent::Sent));
    drain(&mut take_b);
    let r = rrx
        .try_recv(&mut out)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the new session's message is missing"));
    assert_eq!(&out[..r.len], b"session two");
    assert_eq!(
        rrx.try_recv(&mut out),
        Ok(None),
        "nothing of the old session"
    );
}

/// Liveness over the backend: a remote that stops reading starves the
/// master; its watchdog counts the peer unresponsive after the bound,
/// once; when the remote reads again the watch re-arms.
pub fn watchdog_bounds_a_silent_peer<L: DoorbellLink>() {
    let DoorbellFixture {
        ring_b,
        mut take_b,
        ring_a,
        mut take_a,
        ..
    } = L::open();
    let mem = SimMemory::new(GEOMETRY.size, PEER_BASE);
    let mcore = mem.core::<MASTER_LINE>(CacheConfig::write_back(41));
    let rcore = mem.core::<REMOTE_LINE>(CacheConfig::write_back(42));
    let mut ms = Storage::<1>::new();
    let mut master: MasterLink<'_, L::Ring> = Link::new(master_rings(&mcore), ring_b, &mut ms);
    let mut rs = Storage::<1>::new();
    let mut remote: RemoteLink<'_, L::Ring> = Link::new(remote_rings(&rcore), ring_a, &mut rs);
    let _rep = remote.bind(30).unwrap_or_else(|e| panic!("{e}"));
    let mep = master.bind(0x400).unwrap_or_else(|e| panic!("{e}"));
    let (mut mtx, _) = master.split();
    let (_, mut rrx) = remote.split();
    let mut dog = Watchdog::new(8);
    let mut sent = 0;
    // The remote's mailbox is read (its interrupt runs), its ring is not.
    while mtx
        .try_send(&mep, 30, b"ping")
        .unwrap_or_else(|e| panic!("{e}"))
        == Sent::Sent
    {
        sent += 1;
        drain(&mut take_b);
        assert!(!dog.tick(&mut mtx), "sending freely is no silence");
    }
    assert_eq!(sent, NUM);
    let found: Vec<usize> = (0..20).filter(|_| dog.tick(&mut mtx)).collect();
    assert_eq!(found.len(), 1, "once per episode");
    assert_eq!(dog.unresponsive(), 1);
    drain(&mut take_b);
    let mut out = [0u8; 8];
    assert!(rrx
        .try_recv(&mut out)
        .unwrap_or_else(|e| panic!("{e}"))
        .is_some());
    drain(&mut take_a);
    assert!(!dog.tick(&mut mtx), "a buffer came back");
    assert_eq!(mtx.try_send(&mep, 30, b"pong"), Ok(Sent::Sent));
    assert_eq!(mtx.try_send(&mep, 30, b"pong"), Ok(Sent::NoBuffer));
    let again = (0..20).filter(|_| dog.tick(&mut mtx)).count();
    assert_eq!((again, dog.unresponsive()), (1, 2), "a second episode");
}

/// Expands the split-link suite into named `#[test]`s for one backend's
/// doorbell fixture.
#[macro_export]
macro_rules! duplex_suite {
    ($link:ty) => {
        #[test]
        fn duplex_echo_20k_copying_both_ways() {
            let (cleaned, invalidated) = $crate::duplex::echo::<$link>(
                $crate::duplex::echo_count(),
                $crate::link::Echo::Copy,
                11,
            );
            assert!(cleaned > 0 && invalidated > 0, "the caches were exercised");
        }
        #[test]
        fn duplex_echo_20k_zero_copy() {
            $crate::duplex::echo::<$link>(
                $crate::duplex::echo_count(),
                $crate::link::Echo::ZeroCopy,
                12,
            );
        }
        #[test]
        fn duplex_back_pressure_and_unbound() {
            $crate::duplex::back_pressure_and_unbound::<$link>();
        }
        #[test]
        fn duplex_queues_across_tasks() {
            $crate::duplex::queues_across_tasks::<$link>(2_000, 13);
        }
        #[test]
        fn duplex_name_service_hostile() {
            $crate::duplex::name_service_hostile::<$link>();
        }
        #[test]
        fn duplex_restart_accounts_for_every_message() {
            $crate::duplex::restart_accounts_for_every_message::<$link>();
        }
        #[test]
        fn duplex_watchdog_bounds_a_silent_peer() {
            $crate::duplex::watchdog_bounds_a_silent_peer::<$link>();
        }
    };
}
