//! The end-to-end link suite: a master and a remote `rpmsg` link on two
//! threads (two simulated cores), each behind its own non-coherent
//! write-back cache over one [`SimMemory`], notifying each other through a
//! backend's simulated mailbox.
//!
//! Backends plug in through their [`DoorbellLink`] fixture (side A is the
//! master, side B the remote); [`link_suite!`](crate::link_suite) expands the suite into named
//! `#[test]`s.
//!
//! The master's core has 64-byte lines (a Cortex-A), the remote's 32-byte
//! lines (a Cortex-M7 or E907), both evicting lines at random: a missing
//! clean or invalidate anywhere in `vring` or `rpmsg` shows up as a corrupted
//! or lost message.

use std::thread;

use ipc_traits::buf::{Dirty, ShmBuf};
use ipc_traits::mailbox::{blocking_notify, Budget, Notify, NotifyRx, QueueId, Spins};
use rpmsg::link::{Endpoint, Link, LinkStats, NsEvent, RxMode};
use rpmsg::rings::{MasterConfig, MasterRings, QueueIds, RemoteConfig, RemoteRings};
use rpmsg::wire::ADDR_ANY;
use vring::{BufferArea, Driver, DriverConfig, Layout, Legacy, Suppression};

use crate::mailbox::{DoorbellFixture, DoorbellLink, PATIENCE};
use crate::rng::SplitMix64;
use crate::sim::{CacheConfig, SimCore, SimMemory, WeakOrder, WeakStats};

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
pub type MasterLink<'m, N> =
    Link<'m, MasterRings<'m, SimCore<MASTER_LINE>, Legacy, NUM>, N, 4, 8, 4>;
/// The remote link type of the suite.
pub type RemoteLink<'m, N> =
    Link<'m, RemoteRings<'m, SimCore<REMOTE_LINE>, Legacy, NUM>, N, 4, 8, 4>;

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

/// Takes every pending doorbell (so word FIFOs drain) and tells the link.
fn drain<T: NotifyRx>(take: &mut T) -> ipc_traits::mailbox::QueueSet {
    take.take_pending().unwrap_or_default()
}

fn q(i: u8) -> QueueId {
    QueueId::new(i).unwrap_or_else(|| panic!("queue {i}"))
}

/// Validation counters that must stay at zero in a clean exchange.
fn assert_clean(who: &str, s: &LinkStats, rings: (vring::Stats, vring::Stats)) {
    assert_eq!(
        (
            s.rx_bad_header,
            s.rx_unbound,
            s.ns_malformed,
            s.ns_unknown_destroy,
            s.ns_directory_full
        ),
        (0, 0, 0, 0, 0),
        "{who}: validation errors {s:?}"
    );
    assert_eq!(
        rings.0.failures.total() + rings.1.failures.total(),
        0,
        "{who}: ring failures {rings:?}"
    );
}

/// How the remote echoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    /// Copy in, copy out.
    Copy,
    /// Hold the received buffer, fill a lent transmit buffer.
    ZeroCopy,
}

/// What one side saw, for assertions after the threads end.
#[derive(Debug, Default, Clone, Copy)]
pub struct Report {
    /// Link counters.
    pub stats: LinkStats,
    /// Lines this core cleaned.
    pub lines_cleaned: u64,
    /// Lines this core invalidated.
    pub lines_invalidated: u64,
    /// What weak ordering did on this core (`None`: sequentially
    /// consistent).
    pub weak: Option<WeakStats>,
}

/// Runs the remote side: waits for the master's first kick, announces
/// `rpmsg-echo`, then echoes `count` messages.
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
    while drain(&mut take).is_empty() {
        assert!(budget.next(), "remote: the master never kicked");
    }
    // SAFETY: the buffer areas are the master's pool halves, disjoint; this
    // core builds no other buffer over them.
    let rings = unsafe { RemoteRings::<_, Legacy, NUM>::new(&core, remote_config()) }
        .unwrap_or_else(|e| panic!("remote rings: {e}"));
    let link: RemoteLink<'_, L::Ring> = Link::new(rings, ring);
    let ep = link
        .create_endpoint(ADDR_ANY, RxMode::Queue)
        .unwrap_or_else(|e| panic!("{e}"));
    retry("announce", &mut take, &link, |l| {
        l.announce(&ep, "rpmsg-echo")
    });
    let mut scratch = [0u8; MAX_PAYLOAD];
    let mut echoed = 0;
    let mut budget = PATIENCE;
    while echoed < count {
        let set = drain(&mut take);
        link.on_notify(set);
        let got = match mode {
            Echo::Copy => match link.try_recv(&ep, &mut scratch) {
                Ok(r) => {
                    retry("echo", &mut take, &link, |l| {
                        l.try_send(&ep, r.src, &scratch[..r.len])
                    });
                    true
                }
                Err(rpmsg::link::Error::WouldBlock) => false,
                Err(e) => panic!("remote recv: {e}"),
            },
            Echo::ZeroCopy => match link.try_recv_held(&ep) {
                Ok(held) => {
                    let mut tx = loop {
                        match link.try_alloc_tx() {
                            Ok(tx) => break tx,
                            Err(rpmsg::link::Error::WouldBlock) => {
                                link.on_notify(drain(&mut take));
                                assert!(budget.next(), "remote: no tx buffer");
                            }
                            Err(e) => panic!("remote alloc: {e}"),
                        }
                    };
                    let n = held.len();
                    held.read(0, &mut scratch[..n])
                        .unwrap_or_else(|e| panic!("{e}"));
                    tx.write(0, &scratch[..n]).unwrap_or_else(|e| panic!("{e}"));
                    let src = held.src();
                    drop(held);
                    tx.send(&ep, src)
                        .unwrap_or_else(|e| panic!("remote send: {e}"));
                    true
                }
                Err(rpmsg::link::Error::WouldBlock) => false,
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
    let stats = link.stats();
    assert_clean("remote", &stats, link.ring_stats());
    assert_eq!(link.leaked_buffers(), 0);
    let cache = core.stats();
    Report {
        stats,
        lines_cleaned: cache.lines_cleaned,
        lines_invalidated: cache.lines_invalidated,
        weak: core.weak_stats(),
    }
}

/// Retries `op` while it would block, draining doorbells between attempts.
fn retry<'m, R, N, T>(
    what: &str,
    take: &mut T,
    link: &Link<'m, R, N, 4, 8, 4>,
    mut op: impl FnMut(&Link<'m, R, N, 4, 8, 4>) -> Result<(), rpmsg::link::Error>,
) where
    R: rpmsg::rings::Rings<'m>,
    N: ipc_traits::mailbox::Notify,
    T: NotifyRx,
{
    let mut budget = PATIENCE;
    loop {
        match op(link) {
            Ok(()) => return,
            Err(rpmsg::link::Error::WouldBlock) => {
                link.on_notify(drain(take));
                link.service().unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(budget.next(), "{what}: no transmit buffer came back");
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// Opens a master link over `core` and kicks vring0 once (Linux's
/// start-up order, §2.1), handing back the link.
fn open_master<'m, L: DoorbellLink>(
    core: &'m SimCore<MASTER_LINE>,
    mut ring: L::Ring,
) -> MasterLink<'m, L::Ring> {
    // SAFETY: the pool belongs to this link alone.
    let rings = unsafe { MasterRings::<_, Legacy, NUM>::new(core, master_config()) }
        .unwrap_or_else(|e| panic!("master rings: {e}"));
    blocking_notify(&mut ring, q(0), PATIENCE).unwrap_or_else(|e| panic!("first kick: {e:?}"));
    Link::new(rings, ring)
}

/// Waits for the remote's announcement of `name`; returns its address.
fn await_service<'m, R, N, T>(link: &Link<'m, R, N, 4, 8, 4>, take: &mut T, name: &str) -> u32
where
    R: rpmsg::rings::Rings<'m>,
    N: ipc_traits::mailbox::Notify,
    T: NotifyRx,
{
    let mut budget = PATIENCE;
    loop {
        link.on_notify(drain(take));
        link.service().unwrap_or_else(|e| panic!("{e}"));
        if let Some(NsEvent::Created(s)) = link.try_ns_event() {
            assert_eq!(s.name.as_str(), name);
            assert_eq!(link.lookup_service(name), Some(s.addr));
            return s.addr;
        }
        assert!(budget.next(), "the {name} announcement never arrived");
    }
}

/// The master sends `count` messages of random sizes 0..=496 (at most
/// `window` outstanding) and checks every echo for loss, duplication, order
/// and content.
fn master_echo(
    link: &MasterLink<'_, impl ipc_traits::mailbox::Notify>,
    take: &mut impl NotifyRx,
    ep: &Endpoint,
    peer: u32,
    count: u32,
    window: u32,
) {
    let (mut sent, mut got) = (0u32, 0u32);
    let mut out = [0u8; MAX_PAYLOAD];
    let mut want = [0u8; MAX_PAYLOAD];
    let mut budget = PATIENCE;
    while got < count {
        link.on_notify(drain(take));
        let mut progressed = false;
        if sent < count && sent - got < window {
            let n = payload(sent, &mut out);
            match link.try_send(ep, peer, &out[..n]) {
                Ok(()) => {
                    sent += 1;
                    progressed = true;
                }
                Err(rpmsg::link::Error::WouldBlock) => {}
                Err(e) => panic!("master send {sent}: {e}"),
            }
        }
        match link.try_recv(ep, &mut out) {
            Ok(r) => {
                let n = payload(got, &mut want);
                assert_eq!(r.src, peer);
                assert_eq!(
                    r.len, n,
                    "echo {got}: length (lost, duplicated or reordered)"
                );
                assert_eq!(&out[..n], &want[..n], "echo {got}: content corrupted");
                got += 1;
                progressed = true;
            }
            Err(rpmsg::link::Error::WouldBlock) => {}
            Err(e) => panic!("master recv {got}: {e}"),
        }
        if progressed {
            budget = PATIENCE;
        } else {
            assert!(budget.next(), "master: stuck at sent {sent}, echoed {got}");
        }
    }
}

/// Name-service handshake both ways, then an echo of `count` messages.
/// Returns the (master, remote) reports.
pub fn echo<L: DoorbellLink>(count: u32, mode: Echo, seed: u64) -> (Report, Report) {
    echo_in::<L>(count, mode, seed, None)
}

/// [`echo`] over memory ordered as `order` says (`None`: sequentially
/// consistent).
pub fn echo_in<L: DoorbellLink>(
    count: u32,
    mode: Echo,
    seed: u64,
    order: Option<WeakOrder>,
) -> (Report, Report) {
    let DoorbellFixture {
        ring_b,
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
    let master = open_master::<L>(&core, ring_b);
    let peer = await_service(&master, &mut take_a, "rpmsg-echo");
    assert!(
        peer >= rpmsg::wire::RESERVED_ADDRESSES,
        "dynamic address {peer}"
    );
    let ep = master
        .create_endpoint(ADDR_ANY, RxMode::Queue)
        .unwrap_or_else(|e| panic!("{e}"));
    // The master announces too: the handshake goes both ways.
    retry("master announce", &mut take_a, &master, |l| {
        l.announce(&ep, "rpmsg-master")
    });
    master_echo(&master, &mut take_a, &ep, peer, count, 8);
    let stats = master.stats();
    assert_clean("master", &stats, master.ring_stats());
    assert_eq!(master.leaked_buffers(), 0);
    let cache = core.stats();
    let remote = remote
        .join()
        .unwrap_or_else(|_| panic!("remote thread failed"));
    assert_eq!(stats.messages_sent, count + 1, "echoes + announcement");
    assert_eq!(remote.stats.messages_received, count);
    (
        Report {
            stats,
            lines_cleaned: cache.lines_cleaned,
            lines_invalidated: cache.lines_invalidated,
            weak: core.weak_stats(),
        },
        remote,
    )
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

/// With the remote not servicing, the master runs out of transmit buffers:
/// `WouldBlock`, counted, and no hang; once the remote drains, sending
/// resumes.
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
    let master = open_master::<L>(&mcore, ring_b);
    drain(&mut take_b);
    // SAFETY: as in the echo test; single thread, disjoint areas.
    let rings = unsafe { RemoteRings::<_, Legacy, NUM>::new(&rcore, remote_config()) }
        .unwrap_or_else(|e| panic!("{e}"));
    let remote: RemoteLink<'_, L::Ring> = Link::new(rings, ring_a);
    let rep = remote
        .create_endpoint(40, RxMode::Queue)
        .unwrap_or_else(|e| panic!("{e}"));
    let mep = master
        .create_endpoint(ADDR_ANY, RxMode::Queue)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sent = 0;
    loop {
        drain(&mut take_b);
        match master.try_send(&mep, 40, &[sent as u8; 32]) {
            Ok(()) => sent += 1,
            Err(rpmsg::link::Error::WouldBlock) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(sent <= NUM, "more sends than transmit buffers");
    }
    assert_eq!(sent, NUM, "every transmit buffer is usable");
    assert!(master.stats().tx_buffer_waits >= 1);
    assert!(matches!(
        master.blocking_send(&mep, 40, b"x", Spins::new(100)),
        Err(rpmsg::link::Error::WouldBlock)
    ));
    // The remote drains; its releases return the buffers.
    let mut buf = [0u8; MAX_PAYLOAD];
    for k in 0..NUM {
        drain(&mut take_b);
        let r = remote
            .try_recv(&rep, &mut buf)
            .unwrap_or_else(|e| panic!("message {k}: {e}"));
        assert_eq!(&buf[..r.len], &[k as u8; 32]);
    }
    drain(&mut take_a);
    master
        .try_send(&mep, 40, b"again")
        .unwrap_or_else(|e| panic!("after recovery: {e}"));
    drain(&mut take_b);
    let r = remote
        .try_recv(&rep, &mut buf)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&buf[..r.len], b"again");
}

/// Several endpoints on each side and two independent links at once: each
/// message arrives at the endpoint it was addressed to, on its own link.
pub fn several_endpoints_two_links<L: DoorbellLink>() {
    let run = |seed: u64| {
        let DoorbellFixture {
            ring_b,
            mut take_b,
            ring_a,
            mut take_a,
            ..
        } = L::open();
        let mem = SimMemory::new(GEOMETRY.size, PEER_BASE);
        thread::spawn(move || {
            let mcore = mem.core::<MASTER_LINE>(CacheConfig::write_back(seed));
            let rcore = mem.core::<REMOTE_LINE>(CacheConfig::write_back(seed + 1));
            let master = open_master::<L>(&mcore, ring_b);
            drain(&mut take_b);
            // SAFETY: as above.
            let rings = unsafe { RemoteRings::<_, Legacy, NUM>::new(&rcore, remote_config()) }
                .unwrap_or_else(|e| panic!("{e}"));
            let remote: RemoteLink<'_, L::Ring> = Link::new(rings, ring_a);
            let r_eps: Vec<_> = (0..3)
                .map(|k| {
                    remote
                        .create_endpoint(100 + k, RxMode::Queue)
                        .unwrap_or_else(|e| panic!("{e}"))
                })
                .collect();
            let m_eps: Vec<_> = (0..3)
                .map(|_| {
                    master
                        .create_endpoint(ADDR_ANY, RxMode::Queue)
                        .unwrap_or_else(|e| panic!("{e}"))
                })
                .collect();
            let mut buf = [0u8; MAX_PAYLOAD];
            for round in 0..20u8 {
                for (k, m) in m_eps.iter().enumerate() {
                    let dst = 100 + k as u32;
                    retry("send", &mut take_a, &master, |l| {
                        l.try_send(m, dst, &[round, k as u8, seed as u8])
                    });
                }
                for (k, r) in r_eps.iter().enumerate() {
                    drain(&mut take_b);
                    let got = remote
                        .try_recv(r, &mut buf)
                        .unwrap_or_else(|e| panic!("round {round} ep {k}: {e}"));
                    assert_eq!(&buf[..got.len], &[round, k as u8, seed as u8]);
                    assert_eq!(got.src, m_eps[k].addr());
                    retry("reply", &mut take_b, &remote, |l| {
                        l.try_send(r, got.src, &[round, 0xEE, k as u8])
                    });
                }
                for (k, m) in m_eps.iter().enumerate() {
                    drain(&mut take_a);
                    let got = master
                        .try_recv(m, &mut buf)
                        .unwrap_or_else(|e| panic!("reply {round}/{k}: {e}"));
                    assert_eq!(&buf[..got.len], &[round, 0xEE, k as u8]);
                }
            }
        })
    };
    let (a, b) = (run(21), run(42));
    a.join().unwrap_or_else(|_| panic!("link 1 failed"));
    b.join().unwrap_or_else(|_| panic!("link 2 failed"));
}

/// A message to an address nobody bound is counted and its buffer returned,
/// and the link keeps working.
pub fn unbound_destination_is_counted<L: DoorbellLink>() {
    let DoorbellFixture {
        ring_b,
        mut take_b,
        ring_a,
        ..
    } = L::open();
    let mem = SimMemory::new(GEOMETRY.size, PEER_BASE);
    let mcore = mem.core::<MASTER_LINE>(CacheConfig::write_back(3));
    let rcore = mem.core::<REMOTE_LINE>(CacheConfig::write_back(4));
    let master = open_master::<L>(&mcore, ring_b);
    // SAFETY: as above.
    let rings = unsafe { RemoteRings::<_, Legacy, NUM>::new(&rcore, remote_config()) }
        .unwrap_or_else(|e| panic!("{e}"));
    let remote: RemoteLink<'_, L::Ring> = Link::new(rings, ring_a);
    let rep = remote
        .create_endpoint(40, RxMode::Queue)
        .unwrap_or_else(|e| panic!("{e}"));
    let mep = master
        .create_endpoint(ADDR_ANY, RxMode::Queue)
        .unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..(2 * NUM) {
        drain(&mut take_b);
        master
            .try_send(&mep, 41, b"nobody")
            .unwrap_or_else(|e| panic!("{e}"));
        remote.service().unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(
        remote.stats().rx_unbound,
        2 * NUM as u32,
        "every stray message counted, every buffer returned"
    );
    master
        .try_send(&mep, 40, b"somebody")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut buf = [0u8; 16];
    let r = remote
        .try_recv(&rep, &mut buf)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&buf[..r.len], b"somebody");
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
    // SAFETY: the buffer areas are the master's pool halves, disjoint; this
    // core builds no other buffer over them.
    let rings = unsafe { RemoteRings::<_, Legacy, NUM>::new(&rcore, remote_config()) }
        .unwrap_or_else(|e| panic!("remote rings: {e}"));
    let remote: Link<'_, RemoteRings<'_, SimCore<LINE>, Legacy, NUM>, L::Ring, 4, 8, 4> =
        Link::new(rings, ring_a);
    let ep = remote
        .create_endpoint(40, RxMode::Queue)
        .unwrap_or_else(|e| panic!("{e}"));
    const MASTER_ADDR: u32 = 0x400;
    let mut rng = SplitMix64::new(seed);
    let (mut sent, mut got) = (0u32, 0u32);
    let mut owed_kick = false;
    let mut out = [0u8; MAX_PAYLOAD];
    let mut want = [0u8; MAX_PAYLOAD];
    let mut idle = 0u32;
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
        remote.on_notify(drain(&mut take_b));
        // The remote takes some of what is there, copying or holding.
        for _ in 0..=rng.below(NUM as u64) {
            let len = if rng.below(2) == 0 {
                match remote.try_recv(&ep, &mut out) {
                    Ok(r) => {
                        assert_eq!(r.src, MASTER_ADDR);
                        r.len
                    }
                    Err(rpmsg::link::Error::WouldBlock) => break,
                    Err(e) => panic!("remote recv {got}: {e}"),
                }
            } else {
                match remote.try_recv_held(&ep) {
                    Ok(held) => {
                        let n = held.len();
                        held.read(0, &mut out[..n])
                            .unwrap_or_else(|e| panic!("{e}"));
                        n
                    }
                    Err(rpmsg::link::Error::WouldBlock) => break,
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
                 remote broken {}, {:?}, rx ring {:?}",
                master.free.len(),
                master.tx.in_flight(),
                remote.is_broken(),
                remote.stats(),
                remote.ring_stats().1
            );
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
    let stats = remote.stats();
    let (rtx, rrx) = remote.ring_stats();
    assert_eq!((rrx.completed, rrx.published), (count, count), "{rrx:?}");
    assert_eq!(stats.messages_received, count);
    assert_eq!(stats.rx_return_failures, 0, "{stats:?}");
    assert!(!remote.is_broken());
    assert_eq!(remote.leaked_buffers(), 0);
    assert_clean("remote", &stats, (rtx, rrx));
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
