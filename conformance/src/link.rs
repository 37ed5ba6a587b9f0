//! The end-to-end link suite: a master and a remote `rpmsg` link
//! ([`rpmsg::link`]) on two threads (two simulated cores), each behind its
//! own non-coherent write-back cache over one [`SimMemory`], each driving
//! its link through its transmit and receive halves and ringing the other
//! through a backend's simulated mailbox.
//!
//! Backends plug in through their [`DoorbellLink`] fixture (side A is the
//! master, side B the remote); [`link_suite!`](crate::link_suite) expands
//! the suite into named `#[test]`s: the echo (copying and zero-copy,
//! sequentially consistent and weakly ordered), `EVENT_IDX` interrupt-driven
//! exchange ([`crate::interrupt_driven`]), back-pressure, several endpoints
//! and links, unbound destinations, the layers (endpoint queues across
//! tasks, name service against a hostile peer, restart, liveness) and
//! exact-length receive buffers as Linux posts them.
//!
//! The master's core has 64-byte lines (a Cortex-A), the remote's 32-byte
//! lines (a Cortex-M7 or E907), both evicting lines at random: a missing
//! clean or invalidate anywhere in `vring` or `rpmsg` shows up as a corrupted
//! or lost message.

use std::thread;

use ipc_traits::buf::{Dirty, ShmBuf};
use ipc_traits::mailbox::{blocking_notify, Budget, Notify, NotifyRx, QueueId, Spins};
use rpmsg::link::ns::{NsDirectory, NsEvent};
use rpmsg::link::queues::{Endpoints, Queues};
use rpmsg::link::restart::Announcements;
use rpmsg::link::watch::Watchdog;
use rpmsg::link::{Link, RxStats, Sent, Storage, TxStats};
use rpmsg::rings::{Halves, MasterConfig, MasterRings, QueueIds, RemoteConfig, RemoteRings};
use rpmsg::wire::{NsAction, NsMessage, ADDR_ANY, NS_ADDR, NS_MSG_LEN};
use vring::{BufferArea, Driver, DriverConfig, Layout, Legacy, Suppression};

use crate::mailbox::{DoorbellFixture, DoorbellLink, PATIENCE};
use crate::rng::SplitMix64;
use crate::sim::{CacheConfig, SimCore, SimMemory, WeakOrder, WeakStats};

/// Ring tables, leaked: they live as long as the process.
fn remote_tables<const N: usize>() -> &'static rpmsg::rings::RemoteTables<N> {
    Box::leak(Box::default())
}

/// Entries per ring.
pub const NUM: usize = 16;
/// Bytes per buffer.
pub const BUF: usize = 512;
/// Largest payload.
pub const MAX_PAYLOAD: usize = BUF - rpmsg::wire::HEADER_LEN;
/// The master core's cache line.
pub const MASTER_LINE: usize = 64;
/// The remote core's cache line.
pub const REMOTE_LINE: usize = 32;
const ALIGN: usize = 64;
const PEER_BASE: u64 = 0x4000_0000;

/// Where the rings and buffers of a test link sit.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    /// vring0.
    pub vring0: Layout,
    /// vring1.
    pub vring1: Layout,
    /// Buffer pool offset.
    pub pool: usize,
    /// Window size.
    pub size: usize,
}

const fn up(v: usize) -> usize {
    (v + ALIGN - 1) & !(ALIGN - 1)
}

/// The test geometry: vring0 at 0, vring1 and the pool after it, all
/// 64-byte aligned.
pub const GEOMETRY: Geometry = {
    let vring0 = Layout::legacy_at(0, NUM as u16, ALIGN);
    let vring1 = Layout::legacy_at(up(vring0.end()), NUM as u16, ALIGN);
    let pool = up(vring1.end());
    Geometry {
        vring0,
        vring1,
        pool,
        size: pool + 2 * NUM * BUF,
    }
};

/// The suite's master configuration (flags suppression, default queues).
pub fn master_config() -> MasterConfig {
    MasterConfig {
        vring0: GEOMETRY.vring0,
        vring1: GEOMETRY.vring1,
        pool: GEOMETRY.pool,
        buf_size: BUF,
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
        rpmsg_lite_compat: false,
    }
}

/// The suite's remote configuration (the master's pool halves).
pub fn remote_config() -> RemoteConfig {
    RemoteConfig {
        vring0: GEOMETRY.vring0,
        vring1: GEOMETRY.vring1,
        vring0_buffers: BufferArea::new(GEOMETRY.pool, NUM * BUF),
        vring1_buffers: BufferArea::new(GEOMETRY.pool + NUM * BUF, NUM * BUF),
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
    }
}

/// The master link type of the suite.
pub type MasterLink<'m, N> = Link<'m, MasterRings<'m, SimCore<MASTER_LINE>, Legacy, NUM>, N>;
/// The remote link type of the suite.
pub type RemoteLink<'m, N> = Link<'m, RemoteRings<'m, SimCore<REMOTE_LINE>, Legacy, NUM>, N>;

/// The suite's remote rings over `core` ([`remote_config`]).
///
/// # Panics
///
/// If the configuration does not fit the window.
pub fn remote_rings<const LINE: usize>(
    core: &SimCore<LINE>,
) -> RemoteRings<'_, SimCore<LINE>, Legacy, NUM> {
    // SAFETY: the buffer areas are the master's pool halves, disjoint; the
    // caller's core builds no other buffer over them (one link per core
    // and session in every test).
    unsafe { RemoteRings::<_, Legacy, NUM>::new(core, remote_config(), remote_tables()) }
        .unwrap_or_else(|e| panic!("remote rings: {e}"))
}

/// The suite's master rings over `core` ([`master_config`]), laid out
/// afresh.
///
/// # Panics
///
/// If the configuration does not fit the window.
pub fn master_rings(
    core: &SimCore<MASTER_LINE>,
) -> MasterRings<'_, SimCore<MASTER_LINE>, Legacy, NUM> {
    // SAFETY: the pool belongs to the caller's link alone; buffers of an
    // earlier layout over it are stale and never used again.
    unsafe { MasterRings::<_, Legacy, NUM>::new(core, master_config()) }
        .unwrap_or_else(|e| panic!("master rings: {e}"))
}

/// The deterministic payload of message `seq` (its length and bytes).
pub fn payload(seq: u32, out: &mut [u8; MAX_PAYLOAD]) -> usize {
    let mut rng = SplitMix64::new(u64::from(seq) ^ 0xA5A5_0000);
    let len = rng.below(MAX_PAYLOAD as u64 + 1) as usize;
    for (j, b) in out[..len].iter_mut().enumerate() {
        *b = (seq.wrapping_mul(31) as usize).wrapping_add(j * 7) as u8;
    }
    if len >= 4 {
        out[..4].copy_from_slice(&seq.to_le_bytes());
    }
    len
}

/// Takes every pending doorbell (so word FIFOs drain); the rings need
/// nothing more (the halves read them themselves).
pub(crate) fn drain<T: NotifyRx>(take: &mut T) {
    let _rang = take.take_pending().unwrap_or_default();
}

fn q(i: u8) -> QueueId {
    QueueId::new(i).unwrap_or_else(|| panic!("queue {i}"))
}

/// Validation counters that must stay at zero in a clean exchange: bad
/// headers, unbound destinations, buffers the ring refused back, ring
/// failures, a broken link.
fn assert_clean<'m, R: Halves<'m>, N: Notify>(who: &str, link: &Link<'m, R, N>) {
    let s = link.rx_stats();
    assert_eq!(
        (s.bad_header, s.unbound, s.return_failures),
        (0, 0, 0),
        "{who}: validation errors {s:?}"
    );
    let (t, r) = link.ring_stats();
    assert_eq!(
        t.failures.total() + r.failures.total(),
        0,
        "{who}: ring failures {t:?} {r:?}"
    );
    assert!(!link.is_broken(), "{who}: broken");
}

/// Name-service counters that must stay at zero in a clean exchange.
fn assert_ns_clean<const SVC: usize>(who: &str, dir: &NsDirectory<SVC>) {
    let s = dir.stats();
    assert_eq!(
        (
            s.malformed,
            s.unknown_destroy,
            s.directory_full,
            s.name_truncated
        ),
        (0, 0, 0, 0),
        "{who}: name-service errors {s:?}"
    );
}

/// Sends with `op` until it goes out, draining doorbells between attempts.
fn until_sent<T: NotifyRx>(
    what: &str,
    take: &mut T,
    mut op: impl FnMut() -> Result<Sent, rpmsg::Error>,
) {
    let mut budget = PATIENCE;
    while op().unwrap_or_else(|e| panic!("{what}: {e}")) == Sent::NoBuffer {
        drain(take);
        assert!(budget.next(), "{what}: no transmit buffer came back");
    }
}

/// How the remote echoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    /// Copy in, copy out.
    Copy,
    /// Hold the received buffer, fill a lent transmit buffer, send the echo
    /// while the received buffer is still held.
    ZeroCopy,
}

/// What one side saw, for assertions after the threads end.
#[derive(Debug, Default, Clone, Copy)]
pub struct Report {
    /// Transmit-half counters.
    pub tx: TxStats,
    /// Receive-half counters.
    pub rx: RxStats,
    /// Lines this core cleaned.
    pub lines_cleaned: u64,
    /// Lines this core invalidated.
    pub lines_invalidated: u64,
    /// What weak ordering did on this core (`None`: sequentially
    /// consistent).
    pub weak: Option<WeakStats>,
}

impl Report {
    fn of<'m, R: Halves<'m>, N: Notify, const LINE: usize>(
        link: &Link<'m, R, N>,
        core: &SimCore<LINE>,
    ) -> Self {
        let cache = core.stats();
        Self {
            tx: link.tx_stats(),
            rx: link.rx_stats(),
            lines_cleaned: cache.lines_cleaned,
            lines_invalidated: cache.lines_invalidated,
            weak: core.weak_stats(),
        }
    }
}

/// The remote side of [`echo_in`]: waits for the master's first kick,
/// announces `rpmsg-echo`, then echoes `count` messages; messages for
/// address 53 (the master's announcement) go to its directory, dispatched
/// by destination.
fn run_remote<L: DoorbellLink>(
    mem: SimMemory,
    seed: u64,
    mut take: L::Take,
    ring: L::Ring,
    count: u32,
    mode: Echo,
) -> Report {
    let core = mem.core::<REMOTE_LINE>(CacheConfig::write_back(seed));
    let mut budget = PATIENCE;
    while take.take_pending().unwrap_or_default().is_empty() {
        assert!(budget.next(), "remote: the master never kicked");
    }
    let mut storage = Storage::<2>::new();
    let mut link: RemoteLink<'_, L::Ring> = Link::new(remote_rings(&core), ring, &mut storage);
    let ep = link.bind(ADDR_ANY).unwrap_or_else(|e| panic!("{e}"));
    let ns = link.bind(NS_ADDR).unwrap_or_else(|e| panic!("{e}"));
    let mut dir = NsDirectory::<2>::new();
    let (mut tx, mut rx) = link.split();
    until_sent("announce", &mut take, || tx.announce(&ep, "rpmsg-echo"));
    let mut scratch = [0u8; MAX_PAYLOAD];
    let mut echoed = 0;
    let mut budget = PATIENCE;
    while echoed < count {
        drain(&mut take);
        let got = match mode {
            Echo::Copy => match rx.try_recv(&mut scratch) {
                Ok(Some(r)) if r.dst == ns.addr() => {
                    let _event = dir.on_message::<Legacy>(&scratch[..r.len]);
                    false
                }
                Ok(Some(r)) => {
                    assert_eq!(r.dst, ep.addr());
                    until_sent("echo", &mut take, || {
                        tx.try_send(&ep, r.src, &scratch[..r.len])
                    });
                    true
                }
                Ok(None) => false,
                Err(e) => panic!("remote recv: {e}"),
            },
            Echo::ZeroCopy => match rx.try_recv_held() {
                Ok(Some(held)) if held.dst() == ns.addr() => {
                    let _event = dir.on_held(&held);
                    false
                }
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
    // The master announced before its first message: the directory has it.
    assert_eq!(
        dir.lookup_service("rpmsg-master"),
        Some(0x400),
        "the master's announcement"
    );
    assert_ns_clean("remote", &dir);
    assert_clean("remote", &link);
    Report::of(&link, &core)
}

/// Name-service handshake both ways, then an echo of `count` messages.
/// Returns the (master, remote) reports.
pub fn echo<L: DoorbellLink>(count: u32, mode: Echo, seed: u64) -> (Report, Report) {
    echo_in::<L>(count, mode, seed, None)
}

/// [`echo`] over memory ordered as `order` says (`None`: sequentially
/// consistent).
///
/// The remote announces `rpmsg-echo` (dynamic address); the master's
/// directory learns it, and the master announces `rpmsg-master` at 0x400
/// (learnt by the remote's directory). Then `count` messages of random
/// sizes 0..=496 are echoed (at most 8 outstanding), each checked for
/// loss, duplication, order and content.
pub fn echo_in<L: DoorbellLink>(
    count: u32,
    mode: Echo,
    seed: u64,
    order: Option<WeakOrder>,
) -> (Report, Report) {
    let DoorbellFixture {
        mut ring_b,
        take_b,
        ring_a,
        mut take_a,
        ..
    } = L::open();
    let mem = SimMemory::new(GEOMETRY.size, PEER_BASE).with_order(order);
    let remote_mem = mem.clone();
    let remote =
        thread::spawn(move || run_remote::<L>(remote_mem, seed ^ 0xB, take_b, ring_a, count, mode));
    let core = mem.core::<MASTER_LINE>(CacheConfig::write_back(seed));
    let rings = master_rings(&core);
    // Linux's start-up order (§2.1): the rings laid out, then the first kick.
    blocking_notify(&mut ring_b, q(0), PATIENCE).unwrap_or_else(|e| panic!("first kick: {e:?}"));
    let mut storage = Storage::<2>::new();
    let mut link: MasterLink<'_, L::Ring> = Link::new(rings, ring_b, &mut storage);
    // Name-service messages are delivered raw to whoever binds 53.
    let ns = link.bind(NS_ADDR).unwrap_or_else(|e| panic!("{e}"));
    let ep = link.bind(0x400).unwrap_or_else(|e| panic!("{e}"));
    let (mut tx, mut rx) = link.split();
    let mut dir = NsDirectory::<2>::new();
    let mut out = [0u8; MAX_PAYLOAD];
    let mut budget = PATIENCE;
    let peer = loop {
        drain(&mut take_a);
        if let Some(r) = rx.try_recv(&mut out).unwrap_or_else(|e| panic!("{e}")) {
            assert_eq!((r.dst, r.len), (ns.addr(), NS_MSG_LEN));
            let m = NsMessage::decode::<Legacy>(&out[..r.len]).unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!(r.src, m.addr);
            match dir.on_message::<Legacy>(&out[..r.len]) {
                Some(NsEvent::Created(s)) => {
                    assert_eq!(
                        (s.name.as_str(), m.action),
                        ("rpmsg-echo", NsAction::Create)
                    );
                    assert_eq!(dir.lookup_service("rpmsg-echo"), Some(s.addr));
                    break s.addr;
                }
                other => panic!("not the announcement: {other:?}"),
            }
        }
        assert!(budget.next(), "the announcement never arrived");
    };
    assert!(
        peer >= rpmsg::wire::RESERVED_ADDRESSES,
        "dynamic address {peer}"
    );
    // The master announces too: the handshake goes both ways.
    until_sent("master announce", &mut take_a, || {
        tx.announce(&ep, "rpmsg-master")
    });
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
    assert_ns_clean("master", &dir);
    assert_clean("master", &link);
    let master = Report::of(&link, &core);
    let remote = remote
        .join()
        .unwrap_or_else(|_| panic!("remote thread failed"));
    assert_eq!(
        master.tx.messages,
        count + 1,
        "echo requests + announcement"
    );
    assert_eq!(master.rx.messages, count + 1, "echoes + announcement");
    assert_eq!(
        (remote.tx.messages, remote.rx.messages),
        (count + 1, count + 1),
        "the remote received every message once, and the announcement"
    );
    (master, remote)
}

/// How many messages the weak-mode tests move.
pub const fn weak_count() -> u32 {
    if cfg!(miri) {
        20
    } else {
        2_000
    }
}

/// The weak ordering of the weak-mode tests with seed `seed`: cached
/// (`uncached` false, the caches as the suite sets them) or an uncached
/// window.
pub const fn weak_order(seed: u64, uncached: bool) -> Option<WeakOrder> {
    let order = WeakOrder::arm_like(seed);
    Some(if uncached { order.uncached() } else { order })
}

/// Asserts that weak ordering was exercised on every core in `weak`:
/// stores landed out of program order and loads ran early.
///
/// # Panics
///
/// When a core was sequentially consistent or never reordered.
pub fn assert_weakly_ordered(weak: &[Option<WeakStats>]) {
    for (i, w) in weak.iter().enumerate() {
        let w = w.unwrap_or_else(|| panic!("core {i} is not weakly ordered"));
        assert!(
            w.drained_out_of_order > 0 && w.early_loads > 0,
            "core {i} was never reordered: {w:?}"
        );
    }
}

/// How many messages the echo tests move.
pub const fn echo_count() -> u32 {
    if cfg!(miri) {
        50
    } else {
        20_000
    }
}

/// Back-pressure: with the remote not reading (it holds every message,
/// received, not given back) the master runs out of transmit buffers:
/// `NoBuffer`, counted, no hang, no loss, and a bounded `blocking_send`
/// gives up with `NoBuffer`. Once the remote reads, exactly the buffers it
/// gave back are free again and sending resumes. A stray message to an
/// address nobody bound, sent first, is skipped on the way: counted, given
/// back, never delivered.
pub fn tx_exhaustion_recovers<L: DoorbellLink>() {
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
    assert_eq!(
        mtx.blocking_send(&mep, 40, b"x", Spins::new(100)),
        Ok(Sent::NoBuffer),
        "a bounded wait gives up"
    );
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
        assert_eq!(&out[1..32], &[out[0]; 31], "content");
        got.push(out[0]);
    }
    assert_eq!(rrx.stats().unbound, 1, "the stray message is counted");
    // Exactly the buffers given back are free again.
    drain(&mut take_b);
    let mut again = 0;
    while mtx
        .try_send(&mep, 40, &[0xA0 + again as u8; 32])
        .unwrap_or_else(|e| panic!("after recovery: {e}"))
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

/// Several endpoints on each side and two independent links at once: each
/// message arrives at the endpoint it was addressed to (the receive half's
/// `dst`), on its own link, and each reply at the master endpoint it
/// answers.
pub fn several_endpoints_two_links<L: DoorbellLink>() {
    let run = |seed: u64| {
        let DoorbellFixture {
            mut ring_b,
            mut take_b,
            ring_a,
            mut take_a,
            ..
        } = L::open();
        let mem = SimMemory::new(GEOMETRY.size, PEER_BASE);
        thread::spawn(move || {
            let mcore = mem.core::<MASTER_LINE>(CacheConfig::write_back(seed));
            let rcore = mem.core::<REMOTE_LINE>(CacheConfig::write_back(seed + 1));
            let rings = master_rings(&mcore);
            blocking_notify(&mut ring_b, q(0), PATIENCE)
                .unwrap_or_else(|e| panic!("first kick: {e:?}"));
            let mut ms = Storage::<3>::new();
            let mut master: MasterLink<'_, L::Ring> = Link::new(rings, ring_b, &mut ms);
            drain(&mut take_b);
            let mut rs = Storage::<3>::new();
            let mut remote: RemoteLink<'_, L::Ring> =
                Link::new(remote_rings(&rcore), ring_a, &mut rs);
            let r_eps: Vec<_> = (0..3)
                .map(|k| remote.bind(100 + k).unwrap_or_else(|e| panic!("{e}")))
                .collect();
            let m_eps: Vec<_> = (0..3)
                .map(|_| master.bind(ADDR_ANY).unwrap_or_else(|e| panic!("{e}")))
                .collect();
            let (mut mtx, mut mrx) = master.split();
            let (mut rtx, mut rrx) = remote.split();
            let mut buf = [0u8; MAX_PAYLOAD];
            for round in 0..20u8 {
                // Sent in reverse endpoint order, so the receiver's dispatch
                // (not the order of arrival) has to say whose it is.
                for (k, m) in m_eps.iter().enumerate().rev() {
                    let dst = 100 + k as u32;
                    until_sent("send", &mut take_a, || {
                        mtx.try_send(m, dst, &[round, k as u8, seed as u8])
                    });
                }
                for _ in 0..r_eps.len() {
                    drain(&mut take_b);
                    let got = rrx
                        .try_recv(&mut buf)
                        .unwrap_or_else(|e| panic!("round {round}: {e}"))
                        .unwrap_or_else(|| panic!("round {round}: a message is missing"));
                    let k = r_eps
                        .iter()
                        .position(|r| r.addr() == got.dst)
                        .unwrap_or_else(|| panic!("to an endpoint nobody bound: {got:?}"));
                    assert_eq!(&buf[..got.len], &[round, k as u8, seed as u8]);
                    assert_eq!(got.src, m_eps[k].addr());
                    until_sent("reply", &mut take_b, || {
                        rtx.try_send(&r_eps[k], got.src, &[round, 0xEE, k as u8])
                    });
                }
                for _ in 0..m_eps.len() {
                    drain(&mut take_a);
                    let got = mrx
                        .try_recv(&mut buf)
                        .unwrap_or_else(|e| panic!("reply {round}: {e}"))
                        .unwrap_or_else(|| panic!("reply {round}: missing"));
                    let k = m_eps
                        .iter()
                        .position(|m| m.addr() == got.dst)
                        .unwrap_or_else(|| panic!("reply to nobody: {got:?}"));
                    assert_eq!(&buf[..got.len], &[round, 0xEE, k as u8]);
                    assert_eq!(got.src, r_eps[k].addr());
                }
            }
            assert_eq!(rrx.stats().messages, 60);
            assert_eq!(mrx.stats().messages, 60);
        })
    };
    let (a, b) = (run(21), run(42));
    a.join().unwrap_or_else(|_| panic!("link 1 failed"));
    b.join().unwrap_or_else(|_| panic!("link 2 failed"));
}

/// Messages to an address nobody bound are counted and their buffers given
/// back (two rings' worth: a lost buffer would starve the master), and the
/// link keeps working.
pub fn unbound_destination_is_counted<L: DoorbellLink>() {
    let DoorbellFixture {
        ring_b,
        mut take_b,
        ring_a,
        mut take_a,
        ..
    } = L::open();
    let mem = SimMemory::new(GEOMETRY.size, PEER_BASE);
    let mcore = mem.core::<MASTER_LINE>(CacheConfig::write_back(3));
    let rcore = mem.core::<REMOTE_LINE>(CacheConfig::write_back(4));
    let mut ms = Storage::<1>::new();
    let mut master: MasterLink<'_, L::Ring> = Link::new(master_rings(&mcore), ring_b, &mut ms);
    let mut rs = Storage::<1>::new();
    let mut remote: RemoteLink<'_, L::Ring> = Link::new(remote_rings(&rcore), ring_a, &mut rs);
    let rep = remote.bind(40).unwrap_or_else(|e| panic!("{e}"));
    let mep = master.bind(ADDR_ANY).unwrap_or_else(|e| panic!("{e}"));
    let (mut mtx, _) = master.split();
    let (_, mut rrx) = remote.split();
    let mut buf = [0u8; 16];
    for k in 0..(2 * NUM) {
        drain(&mut take_a);
        assert_eq!(
            mtx.try_send(&mep, 41, b"nobody"),
            Ok(Sent::Sent),
            "stray {k}: its buffer came back"
        );
        drain(&mut take_b);
        assert_eq!(rrx.try_recv(&mut buf), Ok(None), "nothing delivered");
    }
    assert_eq!(
        rrx.stats().unbound,
        2 * NUM as u32,
        "every stray message counted, every buffer returned"
    );
    assert_eq!(mtx.try_send(&mep, 40, b"somebody"), Ok(Sent::Sent));
    drain(&mut take_b);
    let r = rrx
        .try_recv(&mut buf)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the bound endpoint's message is missing"));
    assert_eq!((r.dst, &buf[..r.len]), (rep.addr(), &b"somebody"[..]));
    assert_eq!(rrx.stats().messages, 1);
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
    ep: &rpmsg::link::Endpoint,
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

/// A master that posts its messages as Linux's `virtio_rpmsg_bus` does,
/// for [`exact_length_rx_buffers_are_returned`].
///
/// It is built on [`vring::Driver`] directly, not on
/// [`MasterRings`]: our master keeps every transmit descriptor at the
/// buffer size, as rpmsg-lite's master does (vectors 01 and 03 pin 512),
/// and no user of ours needs anything else. The exact length is a property
/// of the peer under test, so it lives in the test, on the same ring code
/// [`MasterRings`] uses, with Linux's choices:
///
/// - the receive pool (vring0): `NUM` writable 512-byte buffers, posted
///   before the first kick (`rpmsg_probe`);
/// - a send (`rpmsg_send_offchannel_raw`): a free buffer (fresh ones first,
///   then those the remote gave back: `get_a_tx_buf`), the header and the
///   payload written, and a device-readable descriptor of exactly
///   `sizeof(*msg) + len` bytes (`sg_init_one`), no `VRING_DESC_F_WRITE`;
/// - a returned buffer's used length is accepted up to the descriptor's
///   length and checked against it here.
pub struct LinuxLikeMaster<'m> {
    /// vring0: the receive buffers (the remote sends nothing in the test).
    pub rx: Driver<'m, SimCore<MASTER_LINE>, Legacy, NUM>,
    /// vring1: the messages to the remote.
    pub tx: Driver<'m, SimCore<MASTER_LINE>, Legacy, NUM>,
    /// Transmit buffers not lent to the remote, lowest first.
    pub free: Vec<ShmBuf<'m, SimCore<MASTER_LINE>, Dirty>>,
    /// The descriptor length posted under each transmit id.
    posted: [u32; NUM],
}

impl<'m> LinuxLikeMaster<'m> {
    /// Lays out both rings over `core` and posts the receive pool.
    pub fn new(core: &'m SimCore<MASTER_LINE>) -> Self {
        let cfg = DriverConfig {
            suppression: Suppression::Flags,
            write_flag_on_readable: false,
        };
        // SAFETY: every buffer handed to these rings is built over `core`
        // below, from the pool this master alone owns.
        let mut rx = unsafe { Driver::new(core, GEOMETRY.vring0, cfg) }
            .unwrap_or_else(|e| panic!("vring0: {e}"));
        // SAFETY: as above.
        let tx = unsafe { Driver::new(core, GEOMETRY.vring1, cfg) }
            .unwrap_or_else(|e| panic!("vring1: {e}"));
        let slot = |k: usize| {
            // SAFETY: slot k of the pool, built once.
            unsafe { ShmBuf::<_, Dirty>::new_unchecked(core, GEOMETRY.pool + k * BUF, BUF) }
                .unwrap_or_else(|e| panic!("slot {k}: {e}"))
        };
        for k in 0..NUM {
            let clean = slot(k).clean().unwrap_or_else(|(_, e)| panic!("{e}"));
            rx.add_writable(clean)
                .unwrap_or_else(|(_, e)| panic!("post {k}: {e}"));
        }
        let _posted: bool = rx.publish().unwrap_or_else(|e| panic!("{e}"));
        Self {
            rx,
            tx,
            free: (NUM..2 * NUM).rev().map(slot).collect(),
            posted: [0; NUM],
        }
    }

    /// Takes back every buffer the remote returned, checking each used
    /// length against the descriptor it answers.
    pub fn reap(&mut self) {
        loop {
            match self.tx.pop_used() {
                Ok(Some(used)) => {
                    let id = usize::from(used.id);
                    let posted = std::mem::take(&mut self.posted[id]);
                    assert!(
                        used.len <= posted,
                        "buffer {id}: used length {} beyond the descriptor's {posted}",
                        used.len
                    );
                    self.free.push(used.buf.recycle());
                }
                Ok(None) => return,
                Err(e) => panic!("master reap: {e}"),
            }
        }
    }

    /// Sends message `seq` (payload [`payload`]) from `src` to `dst` with
    /// an exact-length descriptor. Returns whether the remote asked for a
    /// notification, or `None` when no transmit buffer is free.
    pub fn send(&mut self, seq: u32, src: u32, dst: u32) -> Option<bool> {
        self.reap();
        let mut buf = self.free.pop()?;
        let mut out = [0u8; MAX_PAYLOAD];
        let n = payload(seq, &mut out);
        let header = rpmsg::wire::Header {
            src,
            dst,
            len: n as u16,
            flags: 0,
        };
        let total = rpmsg::wire::HEADER_LEN + n;
        buf.write(0, &header.encode::<Legacy>())
            .and_then(|()| buf.write(rpmsg::wire::HEADER_LEN, &out[..n]))
            .unwrap_or_else(|e| panic!("{e}"));
        buf.set_len(total).unwrap_or_else(|e| panic!("{e}"));
        let clean = buf.clean().unwrap_or_else(|(_, e)| panic!("{e}"));
        let id = self
            .tx
            .add_readable(clean)
            .unwrap_or_else(|(_, e)| panic!("send {seq}: {e}"));
        self.posted[usize::from(id)] = total as u32;
        Some(self.tx.publish().unwrap_or_else(|e| panic!("{e}")))
    }
}

/// Defect 1 of issue 14: a remote whose core has `LINE`-byte cache lines,
/// facing a master that posts exact-length descriptors as Linux does,
/// returns every receive buffer. `count` messages of random sizes, in
/// bursts of random length, received at random through copies and held
/// buffers; every one is delivered in order and intact, every buffer comes
/// back with a used length within its descriptor, and nothing is counted
/// as lost.
pub fn exact_length_rx_buffers_are_returned<L: DoorbellLink, const LINE: usize>(
    count: u32,
    seed: u64,
) {
    let DoorbellFixture {
        mut ring_b,
        mut take_b,
        ring_a,
        mut take_a,
        ..
    } = L::open();
    let mem = SimMemory::new(GEOMETRY.size, PEER_BASE);
    let mcore = mem.core::<MASTER_LINE>(CacheConfig::write_back(seed));
    let rcore = mem.core::<LINE>(CacheConfig::write_back(seed ^ 0xB));
    let mut master = LinuxLikeMaster::new(&mcore);
    let mut storage = Storage::<1>::new();
    let mut remote: Link<'_, RemoteRings<'_, SimCore<LINE>, Legacy, NUM>, L::Ring> =
        Link::new(remote_rings(&rcore), ring_a, &mut storage);
    let ep = remote.bind(40).unwrap_or_else(|e| panic!("{e}"));
    const MASTER_ADDR: u32 = 0x400;
    let mut rng = SplitMix64::new(seed);
    let (mut sent, mut got) = (0u32, 0u32);
    let mut owed_kick = false;
    let mut out = [0u8; MAX_PAYLOAD];
    let mut want = [0u8; MAX_PAYLOAD];
    let mut idle = 0u32;
    {
        let (_, mut rx) = remote.split();
        while got < count {
            let mut progressed = false;
            // The remote's doorbells carry nothing the master needs here.
            drain(&mut take_a);
            // A burst from the master, up to a full ring.
            for _ in 0..=rng.below(NUM as u64) {
                if sent == count {
                    break;
                }
                match master.send(sent, MASTER_ADDR, ep.addr()) {
                    Some(kick) => {
                        owed_kick |= kick;
                        sent += 1;
                        progressed = true;
                    }
                    None => break,
                }
            }
            if owed_kick {
                // A full doorbell FIFO keeps the kick for the next round.
                owed_kick = ring_b.notify(q(1)).is_err();
            }
            drain(&mut take_b);
            // The remote takes some of what is there, copying or holding.
            for _ in 0..=rng.below(NUM as u64) {
                let len = if rng.below(2) == 0 {
                    match rx.try_recv(&mut out) {
                        Ok(Some(r)) => {
                            assert_eq!((r.src, r.dst), (MASTER_ADDR, ep.addr()));
                            r.len
                        }
                        Ok(None) => break,
                        Err(e) => panic!("remote recv {got}: {e}"),
                    }
                } else {
                    match rx.try_recv_held() {
                        Ok(Some(held)) => {
                            let n = held.len();
                            held.read(0, &mut out[..n])
                                .unwrap_or_else(|e| panic!("{e}"));
                            n
                        }
                        Ok(None) => break,
                        Err(e) => panic!("remote recv held {got}: {e}"),
                    }
                };
                let n = payload(got, &mut want);
                assert_eq!(
                    len, n,
                    "message {got}: length (lost, duplicated or reordered)"
                );
                assert_eq!(&out[..n], &want[..n], "message {got}: content corrupted");
                got += 1;
                progressed = true;
            }
            if progressed {
                idle = 0;
            } else {
                idle += 1;
                assert!(
                    idle < 1000,
                    "stuck at sent {sent}, delivered {got}: master has {} free, {} in flight; \
                     remote {:?}",
                    master.free.len(),
                    master.tx.in_flight(),
                    rx.stats(),
                );
            }
        }
    }
    master.reap();
    // Every transmit buffer is back with the master; the receive pool is
    // still posted (the remote sent nothing).
    assert_eq!(
        (
            master.free.len(),
            master.tx.in_flight(),
            master.rx.in_flight()
        ),
        (NUM, 0, NUM as u16),
        "buffers returned"
    );
    let tx_stats = *master.tx.stats();
    assert_eq!((tx_stats.published, tx_stats.completed), (count, count));
    assert_eq!(tx_stats.failures.total(), 0, "master: {tx_stats:?}");
    // The remote popped and returned every message: it holds none.
    let (_, rrx) = remote.ring_stats();
    assert_eq!((rrx.completed, rrx.published), (count, count), "{rrx:?}");
    assert_eq!(remote.rx_stats().messages, count);
    assert_clean("remote", &remote);
    assert!(
        rcore.stats().lines_invalidated > 0 && mcore.stats().lines_cleaned > 0,
        "the caches were exercised"
    );
}

/// Expands the link suite into named `#[test]`s for one backend's doorbell
/// fixture.
#[macro_export]
macro_rules! link_suite {
    ($link:ty) => {
        #[test]
        fn event_idx_interrupt_driven_both_ways() {
            $crate::interrupt_driven::event_idx_interrupt_driven_both_ways::<$link>(
                $crate::interrupt_driven::message_count(),
                14,
            );
        }
        #[test]
        fn echo_20k_copying_ns_both_ways() {
            let (m, r) = $crate::link::echo::<$link>(
                $crate::link::echo_count(),
                $crate::link::Echo::Copy,
                1,
            );
            assert!(
                m.lines_cleaned > 0 && r.lines_invalidated > 0,
                "the caches were exercised"
            );
        }
        #[test]
        fn echo_20k_zero_copy() {
            $crate::link::echo::<$link>(
                $crate::link::echo_count(),
                $crate::link::Echo::ZeroCopy,
                2,
            );
        }
        #[test]
        fn tx_exhaustion_would_block_then_recovers() {
            $crate::link::tx_exhaustion_recovers::<$link>();
        }
        #[test]
        fn several_endpoints_two_links() {
            $crate::link::several_endpoints_two_links::<$link>();
        }
        #[test]
        fn unbound_destination_is_counted() {
            $crate::link::unbound_destination_is_counted::<$link>();
        }
        #[test]
        fn queues_across_tasks() {
            $crate::link::queues_across_tasks::<$link>(2_000, 13);
        }
        #[test]
        fn name_service_hostile() {
            $crate::link::name_service_hostile::<$link>();
        }
        #[test]
        fn restart_accounts_for_every_message() {
            $crate::link::restart_accounts_for_every_message::<$link>();
        }
        #[test]
        fn watchdog_bounds_a_silent_peer() {
            $crate::link::watchdog_bounds_a_silent_peer::<$link>();
        }
        #[test]
        fn weak_echo_copying() {
            let (m, r) = $crate::link::echo_in::<$link>(
                $crate::link::weak_count(),
                $crate::link::Echo::Copy,
                31,
                $crate::link::weak_order(31, false),
            );
            $crate::link::assert_weakly_ordered(&[m.weak, r.weak]);
        }
        #[test]
        fn weak_uncached_echo_zero_copy() {
            let (m, r) = $crate::link::echo_in::<$link>(
                $crate::link::weak_count(),
                $crate::link::Echo::ZeroCopy,
                32,
                $crate::link::weak_order(32, true),
            );
            $crate::link::assert_weakly_ordered(&[m.weak, r.weak]);
        }
        #[test]
        fn weak_uncached_event_idx_interrupt_driven() {
            let weak = $crate::interrupt_driven::event_idx_interrupt_driven_in::<$link>(
                $crate::link::weak_count(),
                33,
                $crate::link::weak_order(33, true),
            );
            $crate::link::assert_weakly_ordered(&weak);
        }
        #[test]
        fn exact_length_rx_buffers_are_returned() {
            let count = $crate::link::echo_count();
            $crate::link::exact_length_rx_buffers_are_returned::<$link, 32>(count, 5);
            $crate::link::exact_length_rx_buffers_are_returned::<$link, 64>(count, 6);
        }
    };
}
