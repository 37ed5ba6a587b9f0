//! The network device ([`rpmsg::net`]) end to end: each of two simulated
//! cores runs smoltcp over its own [`NetDevice`] on one endpoint of a split
//! link ([`rpmsg::link`]), ringing the other through a backend's
//! simulated mailbox. The master pings the remote (ICMP echo, answered by
//! the remote's interface) and sends a stream through the remote's TCP echo
//! server, checking every echoed byte.
//!
//! [`exchange`] takes both cores' doorbells, so the demo (`two-cores
//! --net`, with each SoC's wiring, line sizes and caches) and the tests
//! (with a [`DoorbellLink`] fixture, [`net_exchange`]) run the same code.
//! Addresses are fixed: both devices bind [`NET_ADDR`] and send to the
//! peer's [`NET_ADDR`] (a real system would announce the device through the
//! name service).

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant as WallInstant};

use ipc_traits::mailbox::{blocking_notify, ErrorType, Notify, NotifyRx, QueueId};
use rpmsg::link::{Link, Sent, Storage};
use rpmsg::net::{NetDevice, NetStats, DEFAULT_FRAME};
use rpmsg::rings::{Halves, MasterConfig, MasterRings, QueueIds, RemoteConfig, RemoteRings};
use smoltcp::iface::{Config, Interface, PollResult, SocketSet, SocketStorage};
use smoltcp::phy::{ChecksumCapabilities, Device, RxToken as _};
use smoltcp::socket::{icmp, tcp};
use smoltcp::time::Instant;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Icmpv4Packet, Icmpv4Repr, IpAddress, IpCidr, Ipv4Address,
};
use vring::{BufferArea, Layout, Legacy, Suppression};

use crate::mailbox::{DoorbellFixture, DoorbellLink, PATIENCE};
use crate::rng::SplitMix64;
use crate::sim::{CacheConfig, SimCore, SimMemory};

/// Ring tables, leaked: they live as long as the process.
fn remote_tables<const N: usize>() -> &'static rpmsg::rings::RemoteTables<N> {
    Box::leak(Box::default())
}

/// The rpmsg address both devices bind.
pub const NET_ADDR: u32 = 1024;
/// The master's IPv4 address.
pub const MASTER_IP: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
/// The remote's IPv4 address.
pub const REMOTE_IP: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);
/// The remote's TCP echo port.
pub const ECHO_PORT: u16 = 7;
const MASTER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
const REMOTE_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 2]);
const PING_IDENT: u16 = 0x22b;
const PING_DATA: usize = 56;
/// TCP socket buffers (each way, each core).
const TCP_BUF: usize = 16 * 1024;
/// Polls without progress before a core gives up (never a hang).
const IDLE_POLLS: u64 = 20_000_000;

/// The tests' master cache line (an A53's).
const MASTER_LINE: usize = 64;
/// The tests' remote cache line.
const REMOTE_LINE: usize = 32;
/// Entries per vring.
const NUM: usize = 16;
/// Bytes per buffer (the rpmsg default).
const BUF: usize = 512;
/// Ring parts on their own page, so every line size up to OCTEON's 128
/// bytes keeps the driver's and the device's fields apart.
const ALIGN: usize = 0x1000;

const fn page_up(v: usize) -> usize {
    (v + ALIGN - 1) & !(ALIGN - 1)
}

const VRING0: Layout = Layout::legacy_at(0, NUM as u16, ALIGN);
const VRING1: Layout = Layout::legacy_at(page_up(VRING0.end()), NUM as u16, ALIGN);
const POOL: usize = page_up(VRING1.end());
/// The shared window: both vrings, then `2 * NUM` buffers.
const WINDOW: usize = POOL + 2 * NUM * BUF;

fn master_config() -> MasterConfig {
    MasterConfig {
        vring0: VRING0,
        vring1: VRING1,
        pool: POOL,
        buf_size: BUF,
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
        rpmsg_lite_compat: false,
    }
}

fn remote_config() -> RemoteConfig {
    RemoteConfig {
        vring0: VRING0,
        vring1: VRING1,
        vring0_buffers: BufferArea::new(POOL, NUM * BUF),
        vring1_buffers: BufferArea::new(POOL + NUM * BUF, NUM * BUF),
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
    }
}

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct NetConfig {
    /// ICMP echo requests, one at a time.
    pub pings: u16,
    /// Bytes sent through the TCP echo (and checked on the way back).
    pub tcp_bytes: usize,
    /// Seed of the TCP stream's bytes.
    pub seed: u64,
}

/// What one exchange measured (wall-clock times on the host).
#[derive(Debug, Clone)]
pub struct NetReport {
    /// Every ping's round trip, in order (the first includes ARP).
    pub ping_rtts: Vec<Duration>,
    /// Bytes echoed and checked.
    pub tcp_bytes: usize,
    /// From the TCP connect to the last echoed byte.
    pub tcp_time: Duration,
    /// The master's device counters.
    pub master: NetStats,
    /// The remote's device counters.
    pub remote: NetStats,
}

impl NetReport {
    /// The median ping round trip.
    pub fn ping_median(&self) -> Duration {
        let mut r = self.ping_rtts.clone();
        r.sort_unstable();
        r.get(r.len() / 2).copied().unwrap_or_default()
    }

    /// Echo throughput: bytes echoed per second of wall time (each byte
    /// crossed the link twice).
    pub fn tcp_bytes_per_sec(&self) -> f64 {
        self.tcp_bytes as f64 / self.tcp_time.as_secs_f64().max(1e-9)
    }
}

fn q(i: u8) -> QueueId {
    QueueId::new(i).unwrap_or_else(|| panic!("queue {i}"))
}

fn master_rings<const L: usize>(core: &SimCore<L>) -> MasterRings<'_, SimCore<L>, Legacy, NUM> {
    // SAFETY: the pool belongs to this link alone.
    unsafe { MasterRings::<_, Legacy, NUM>::new(core, master_config()) }
        .unwrap_or_else(|e| panic!("master rings: {e}"))
}

fn remote_rings<const L: usize>(core: &SimCore<L>) -> RemoteRings<'_, SimCore<L>, Legacy, NUM> {
    // SAFETY: the buffer areas are the master's pool halves, disjoint; this
    // core builds no other buffer over them.
    unsafe { RemoteRings::<_, Legacy, NUM>::new(core, remote_config(), remote_tables()) }
        .unwrap_or_else(|e| panic!("remote rings: {e}"))
}

fn now(start: WallInstant) -> Instant {
    Instant::from_micros(i64::try_from(start.elapsed().as_micros()).unwrap_or(i64::MAX))
}

fn interface<D: Device>(dev: &mut D, mac: EthernetAddress, ip: Ipv4Address) -> Interface {
    let mut iface = Interface::new(Config::new(mac.into()), dev, Instant::ZERO);
    iface.update_ip_addrs(|a| {
        a.push(IpCidr::new(IpAddress::Ipv4(ip), 24))
            .unwrap_or_else(|_| panic!("address table full"));
    });
    iface
}

/// Stops the peer's wait when one side fails.
#[derive(Debug, Default)]
struct Control {
    failed: AtomicBool,
    done: AtomicBool,
}

/// Counts polls without progress; `Err` once the budget is gone or the
/// peer failed.
struct Idle<'c> {
    polls: u64,
    control: &'c Control,
}

impl Idle<'_> {
    fn tick(&mut self, progressed: bool, what: &dyn Fn() -> String) -> Result<(), String> {
        if progressed {
            self.polls = 0;
            return Ok(());
        }
        self.polls += 1;
        if self.control.failed.load(Ordering::SeqCst) {
            return Err("the peer failed".into());
        }
        if self.polls > IDLE_POLLS {
            return Err(format!("no progress while {}", what()));
        }
        if self.polls.is_multiple_of(64) {
            thread::yield_now();
        }
        Ok(())
    }
}

/// The stream byte at `i`.
fn stream_byte(seed: u64, i: usize) -> u8 {
    let block = SplitMix64::new(seed ^ (i as u64 / 8)).next_u64();
    block.to_le_bytes()[i % 8]
}

/// The master's side: pings, then the TCP echo. Returns (ping round
/// trips, TCP time).
fn master_app<D: Device>(
    dev: &mut D,
    take: &mut impl NotifyRx,
    cfg: &NetConfig,
    control: &Control,
) -> Result<(Vec<Duration>, Duration), String> {
    let start = WallInstant::now();
    let mut iface = interface(dev, MASTER_MAC, MASTER_IP);
    let (mut icmp_rx_meta, mut icmp_rx) = ([icmp::PacketMetadata::EMPTY; 4], [0u8; 1024]);
    let (mut icmp_tx_meta, mut icmp_tx) = ([icmp::PacketMetadata::EMPTY; 4], [0u8; 1024]);
    let mut tcp_rx = vec![0u8; TCP_BUF];
    let mut tcp_tx = vec![0u8; TCP_BUF];
    let mut storage: [SocketStorage; 2] = Default::default();
    let mut sockets = SocketSet::new(&mut storage[..]);
    let ping = sockets.add(icmp::Socket::new(
        icmp::PacketBuffer::new(&mut icmp_rx_meta[..], &mut icmp_rx[..]),
        icmp::PacketBuffer::new(&mut icmp_tx_meta[..], &mut icmp_tx[..]),
    ));
    let stream = sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(&mut tcp_rx[..]),
        tcp::SocketBuffer::new(&mut tcp_tx[..]),
    ));
    sockets
        .get_mut::<icmp::Socket>(ping)
        .bind(icmp::Endpoint::Ident(PING_IDENT))
        .map_err(|e| format!("icmp bind: {e}"))?;
    let mut idle = Idle { polls: 0, control };
    let checksums = ChecksumCapabilities::default();

    // Pings, one at a time.
    let mut rtts = Vec::new();
    let data = [0xA5u8; PING_DATA];
    for seq in 0..cfg.pings {
        let sent = WallInstant::now();
        let mut requested = false;
        loop {
            let _kicked = take.take_pending();
            let moved = iface.poll(now(start), dev, &mut sockets) != PollResult::None;
            let s = sockets.get_mut::<icmp::Socket>(ping);
            let mut progressed = moved;
            if !requested && s.can_send() {
                let repr = Icmpv4Repr::EchoRequest {
                    ident: PING_IDENT,
                    seq_no: seq,
                    data: &data,
                };
                let buf = s
                    .send(repr.buffer_len(), IpAddress::Ipv4(REMOTE_IP))
                    .map_err(|e| format!("ping send: {e}"))?;
                repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &checksums);
                requested = true;
                progressed = true;
            }
            if s.can_recv() {
                let (bytes, from) = s.recv().map_err(|e| format!("ping recv: {e}"))?;
                let packet = Icmpv4Packet::new_checked(bytes)
                    .map_err(|e| format!("ping reply malformed: {e}"))?;
                let reply = Icmpv4Repr::parse(&packet, &checksums)
                    .map_err(|e| format!("ping reply malformed: {e}"))?;
                match reply {
                    Icmpv4Repr::EchoReply {
                        ident: PING_IDENT,
                        seq_no,
                        data: d,
                    } if seq_no == seq && d == data && from == IpAddress::Ipv4(REMOTE_IP) => {
                        rtts.push(sent.elapsed());
                        break;
                    }
                    other => return Err(format!("unexpected ICMP {other:?} from {from}")),
                }
            }
            idle.tick(progressed, &|| {
                format!("waiting for the echo of ping {seq}")
            })?;
        }
    }

    // TCP echo: send the stream, check every byte that comes back.
    let t0 = WallInstant::now();
    let (mut sent, mut checked) = (0usize, 0usize);
    sockets
        .get_mut::<tcp::Socket>(stream)
        .connect(
            iface.context(),
            (IpAddress::Ipv4(REMOTE_IP), ECHO_PORT),
            49152,
        )
        .map_err(|e| format!("connect: {e}"))?;
    let mut chunk = vec![0u8; TCP_BUF];
    while checked < cfg.tcp_bytes {
        let _kicked = take.take_pending();
        let moved = iface.poll(now(start), dev, &mut sockets) != PollResult::None;
        let s = sockets.get_mut::<tcp::Socket>(stream);
        let mut progressed = moved;
        if s.can_send() && sent < cfg.tcp_bytes {
            let n = (cfg.tcp_bytes - sent).min(chunk.len());
            for (k, b) in chunk[..n].iter_mut().enumerate() {
                *b = stream_byte(cfg.seed, sent + k);
            }
            let took = s
                .send_slice(&chunk[..n])
                .map_err(|e| format!("tcp send: {e}"))?;
            sent += took;
            progressed |= took > 0;
        }
        if s.can_recv() {
            let got = s
                .recv_slice(&mut chunk)
                .map_err(|e| format!("tcp recv: {e}"))?;
            for (k, &b) in chunk[..got].iter().enumerate() {
                let want = stream_byte(cfg.seed, checked + k);
                if b != want {
                    return Err(format!(
                        "echoed byte {} is {b:#04x}, sent {want:#04x}",
                        checked + k
                    ));
                }
            }
            checked += got;
            progressed |= got > 0;
        }
        if !s.is_open() {
            return Err(format!("the connection closed after {checked} bytes"));
        }
        idle.tick(progressed, &|| {
            format!("echoing: {sent} bytes sent, {checked} checked")
        })?;
    }
    let tcp_time = t0.elapsed();
    sockets.get_mut::<tcp::Socket>(stream).close();
    Ok((rtts, tcp_time))
}

/// The remote's side: answers pings (the interface does) and echoes TCP
/// until the master is done.
fn remote_app<D: Device>(
    dev: &mut D,
    take: &mut impl NotifyRx,
    control: &Control,
) -> Result<(), String> {
    let start = WallInstant::now();
    let mut iface = interface(dev, REMOTE_MAC, REMOTE_IP);
    let mut tcp_rx = vec![0u8; TCP_BUF];
    let mut tcp_tx = vec![0u8; TCP_BUF];
    let mut storage: [SocketStorage; 1] = Default::default();
    let mut sockets = SocketSet::new(&mut storage[..]);
    let echo = sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(&mut tcp_rx[..]),
        tcp::SocketBuffer::new(&mut tcp_tx[..]),
    ));
    let mut idle = Idle { polls: 0, control };
    let mut chunk = vec![0u8; TCP_BUF];
    while !control.done.load(Ordering::SeqCst) {
        let _kicked = take.take_pending();
        let moved = iface.poll(now(start), dev, &mut sockets) != PollResult::None;
        let s = sockets.get_mut::<tcp::Socket>(echo);
        let mut progressed = moved;
        if !s.is_open() {
            s.listen(ECHO_PORT).map_err(|e| format!("listen: {e}"))?;
        }
        // Echo what fits in the send buffer, no more (nothing is lost).
        let room = s.send_capacity() - s.send_queue();
        if s.can_recv() && room > 0 {
            let n = room.min(chunk.len());
            let got = s
                .recv_slice(&mut chunk[..n])
                .map_err(|e| format!("echo recv: {e}"))?;
            let put = s
                .send_slice(&chunk[..got])
                .map_err(|e| format!("echo send: {e}"))?;
            if put != got {
                return Err(format!("echo lost {} bytes", got - put));
            }
            progressed |= got > 0;
        }
        idle.tick(progressed, &|| "serving".into())?;
    }
    Ok(())
}

/// Runs `f`; a failure or a panic tells the other core to stop waiting.
fn guarded<T>(control: &Control, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let why = p
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(format!("panicked: {why}"))
    });
    if out.is_err() {
        control.failed.store(true, Ordering::SeqCst);
    }
    out
}

/// The link's own counters must not have moved, nor the device's bad-input
/// ones.
fn check_clean<'m, R: Halves<'m>, N: Notify>(
    link: &Link<'m, R, N>,
    stats: &NetStats,
) -> Result<(), String> {
    let s = link.rx_stats();
    let (t, r) = link.ring_stats();
    if s.bad_header + s.unbound + s.return_failures != 0 || link.is_broken() {
        return Err(format!("link {s:?}"));
    }
    if t.failures.total() + r.failures.total() != 0 {
        return Err(format!("ring failures {t:?} {r:?}"));
    }
    let bad = stats.rx_oversized
        + stats.rx_runt
        + stats.rx_foreign
        + stats.rx_errors
        + stats.tx_oversized
        + stats.tx_errors;
    if bad != 0 {
        return Err(format!("device {stats:?}"));
    }
    Ok(())
}

/// One core's doorbells: `ring` kicks the peer, `take` learns of the
/// peer's kicks.
#[derive(Debug)]
pub struct Bells<N, T> {
    /// The doorbell towards the peer.
    pub ring: N,
    /// This core's pending notifications.
    pub take: T,
}

/// The master (this thread) and the remote (another) over one shared
/// window at `shm_base`: the master lays out the rings and kicks; the
/// remote attaches on that kick. `ML`/`RL` are the cores' cache lines,
/// `master_cache`/`remote_cache` their caches.
///
/// # Errors
///
/// What failed, on which core: a stall, a wrong echo, a counter that moved.
pub fn exchange<const ML: usize, const RL: usize, MN, MT, RN, RT>(
    shm_base: u64,
    master_cache: CacheConfig,
    remote_cache: CacheConfig,
    master: Bells<MN, MT>,
    remote: Bells<RN, RT>,
    cfg: &NetConfig,
) -> Result<NetReport, String>
where
    MN: Notify + Send,
    MT: NotifyRx + Send,
    RN: Notify + Send,
    RT: NotifyRx + Send,
{
    let mem = SimMemory::new(WINDOW, shm_base);
    let control = Control::default();
    let (m, r) = thread::scope(|s| {
        let (mem, control) = (&mem, &control);
        let remote = s.spawn(move || {
            guarded(control, || {
                run_remote::<RL, _, _>(mem, remote_cache, remote, control)
            })
        });
        let m = guarded(control, || {
            run_master::<ML, _, _>(mem, master_cache, master, cfg, control)
        });
        control.done.store(true, Ordering::SeqCst);
        let r = remote
            .join()
            .unwrap_or_else(|_| Err("the remote thread died".into()));
        (m, r)
    });
    match (m, r) {
        (Ok((ping_rtts, tcp_time, master)), Ok(remote)) => Ok(NetReport {
            ping_rtts,
            tcp_bytes: cfg.tcp_bytes,
            tcp_time,
            master,
            remote,
        }),
        (Err(m), Err(r)) => Err(format!("master: {m}; remote: {r}")),
        (Err(m), _) => Err(format!("master: {m}")),
        (_, Err(r)) => Err(format!("remote: {r}")),
    }
}

type MasterOut = (Vec<Duration>, Duration, NetStats);

fn run_master<const L: usize, N: Notify, T: NotifyRx>(
    mem: &SimMemory,
    cache: CacheConfig,
    bells: Bells<N, T>,
    cfg: &NetConfig,
    control: &Control,
) -> Result<MasterOut, String> {
    let Bells { mut ring, mut take } = bells;
    let core = mem.core::<L>(cache);
    let rings = master_rings(&core);
    // Linux's start-up order: the rings laid out, then the first kick.
    blocking_notify(&mut ring, q(0), PATIENCE).map_err(|e| format!("first kick: {e:?}"))?;
    let mut storage = Storage::<1>::new();
    let mut link = Link::new(rings, ring, &mut storage);
    let ep = link.bind(NET_ADDR).map_err(|e| e.to_string())?;
    let (tx, rx) = link.split();
    let mut dev: NetDevice<'_, '_, _, _> = NetDevice::new(tx, rx, ep, NET_ADDR);
    let (rtts, tcp_time) = master_app(&mut dev, &mut take, cfg, control)?;
    let stats = dev.stats();
    check_clean(&link, &stats)?;
    Ok((rtts, tcp_time, stats))
}

fn run_remote<const L: usize, N: Notify, T: NotifyRx>(
    mem: &SimMemory,
    cache: CacheConfig,
    bells: Bells<N, T>,
    control: &Control,
) -> Result<NetStats, String> {
    let Bells { ring, mut take } = bells;
    let mut idle = Idle { polls: 0, control };
    while take.take_pending().unwrap_or_default().is_empty() {
        idle.tick(false, &|| "waiting for the master's first kick".into())?;
    }
    let core = mem.core::<L>(cache);
    let mut storage = Storage::<1>::new();
    let mut link = Link::new(remote_rings(&core), ring, &mut storage);
    let ep = link.bind(NET_ADDR).map_err(|e| e.to_string())?;
    let (tx, rx) = link.split();
    let mut dev: NetDevice<'_, '_, _, _> = NetDevice::new(tx, rx, ep, NET_ADDR);
    remote_app(&mut dev, &mut take, control)?;
    let stats = dev.stats();
    check_clean(&link, &stats)?;
    Ok(stats)
}

/// [`exchange`] over a backend's doorbell fixture, with the suite's line
/// sizes and write-back caches; panics on failure (for tests).
pub fn net_exchange<L: DoorbellLink>(cfg: &NetConfig) -> NetReport {
    let DoorbellFixture {
        ring_b,
        take_b,
        ring_a,
        take_a,
        ..
    } = L::open();
    let master = Bells {
        ring: ring_b,
        take: take_a,
    };
    let remote = Bells {
        ring: ring_a,
        take: take_b,
    };
    let report = exchange::<MASTER_LINE, REMOTE_LINE, _, _, _, _>(
        0x4000_0000,
        CacheConfig::write_back(cfg.seed),
        CacheConfig::write_back(cfg.seed ^ 0xB),
        master,
        remote,
        cfg,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.ping_rtts.len(), usize::from(cfg.pings));
    assert_eq!(
        report.master.tx_frames, report.remote.rx_frames,
        "master→remote frames"
    );
    assert!(report.remote.rx_frames > 0 && report.master.rx_frames > 0);
    report
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

/// A doorbell that always rings (one thread drives both sides).
#[derive(Debug, Default)]
struct Silent;

impl ErrorType for Silent {
    type Error = core::convert::Infallible;
}

impl Notify for Silent {
    fn notify(&mut self, _queue: QueueId) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// The frame size of the device under bad input: shorter than the link's
/// payload, so the peer can send a message longer than a frame.
pub const SMALL_FRAME: usize = 256;

/// What [`bad_frames`] saw.
#[derive(Debug, Clone, Copy)]
pub struct BadFrames {
    /// The device's counters after the hostile messages.
    pub stats: NetStats,
    /// Messages sent to the device's address.
    pub sent: u32,
    /// Whether the interface still answered an ARP request afterwards.
    pub arp_answered: bool,
}

/// One thread, two links over one coherent window: binds `$mtx`/`$mrx`
/// (the master's halves), `$mep` (its endpoint), `$other` (a second remote
/// address) and `$dev` (the remote's device with frame `$frame`).
macro_rules! pair {
    ($frame:expr, $mtx:ident, $mrx:ident, $mep:ident, $other:ident, $dev:ident) => {
        let mem = SimMemory::new(WINDOW, 0x4000_0000);
        let mcore = mem.coherent_core::<64>();
        let rcore = mem.coherent_core::<64>();
        let mrings = master_rings(&mcore);
        let rrings = remote_rings(&rcore);
        let mut mstore = Storage::<1>::new();
        let mut rstore = Storage::<2>::new();
        let mut mlink = Link::new(mrings, Silent, &mut mstore);
        let mut rlink = Link::new(rrings, Silent, &mut rstore);
        let $mep = mlink.bind(NET_ADDR).unwrap_or_else(|e| panic!("{e}"));
        let rep = rlink.bind(NET_ADDR).unwrap_or_else(|e| panic!("{e}"));
        let $other = rlink.bind(NET_ADDR + 1).unwrap_or_else(|e| panic!("{e}"));
        #[allow(unused_mut)]
        let (mut $mtx, mut $mrx) = mlink.split();
        let (rtx, rrx) = rlink.split();
        let mut $dev: NetDevice<'_, '_, _, _, { $frame }> = NetDevice::new(rtx, rrx, rep, NET_ADDR);
    };
}

/// An ARP request from the master for the remote's address.
fn arp_request() -> [u8; 42] {
    let mut arp = [0u8; 42];
    let mut eth = EthernetFrame::new_unchecked(&mut arp[..]);
    EthernetRepr {
        src_addr: MASTER_MAC,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    }
    .emit(&mut eth);
    ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: MASTER_MAC,
        source_protocol_addr: MASTER_IP,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: REMOTE_IP,
    }
    .emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
    arp
}

/// Takes every message off the master's ring; counts the remote's ARP
/// replies among them.
fn arp_replies<'a, R: Halves<'a>, N: Notify>(mrx: &mut rpmsg::link::Rx<'_, 'a, R, N>) -> u32 {
    let mut scratch = [0u8; BUF];
    let mut replies = 0;
    while let Some(r) = mrx.try_recv(&mut scratch).unwrap_or_else(|e| panic!("{e}")) {
        let Ok(eth) = EthernetFrame::new_checked(&scratch[..r.len]) else {
            continue;
        };
        if eth.ethertype() != EthernetProtocol::Arp {
            continue;
        }
        let reply = ArpPacket::new_checked(eth.payload()).and_then(|p| ArpRepr::parse(&p));
        if let Ok(ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: REMOTE_MAC,
            source_protocol_addr: REMOTE_IP,
            ..
        }) = reply
        {
            replies += 1;
        }
    }
    replies
}

/// One thread drives a master link (raw messages) and a remote
/// [`NetDevice`] (`FRAME` = [`SMALL_FRAME`]) polled by a smoltcp
/// interface. The master sends: an empty message, a 13-byte one, a message
/// longer than a frame, one to another remote address, `garbage` random
/// frames (random lengths 14..=256, random bytes, half of them with an IPv4
/// or ARP EtherType), and one well-formed frame, which must come out of the
/// device byte for byte; then an ARP request the interface must answer.
pub fn bad_frames(garbage: u32, seed: u64) -> BadFrames {
    pair!(SMALL_FRAME, mtx, mrx, mep, other, dev);
    let mut iface = interface(&mut dev, REMOTE_MAC, REMOTE_IP);
    let mut storage: [SocketStorage; 1] = Default::default();
    let mut sockets = SocketSet::new(&mut storage[..]);
    let mut sent = 0u32;
    macro_rules! send {
        ($dst:expr, $bytes:expr) => {{
            let r = mtx
                .try_send(&mep, $dst, $bytes)
                .unwrap_or_else(|e| panic!("send: {e}"));
            assert_eq!(r, Sent::Sent, "no buffer (poll more often)");
        }};
    }
    macro_rules! poll_all {
        () => {
            for _ in 0..4 {
                let _polled: PollResult = iface.poll(Instant::ZERO, &mut dev, &mut sockets);
            }
        };
    }

    // The fixed cases, each followed by a poll (the ring holds NUM).
    send!(NET_ADDR, &[]);
    send!(NET_ADDR, &[0xFF; 13]);
    send!(NET_ADDR, &[0x5A; SMALL_FRAME + 1]);
    send!(other.addr(), &[0u8; 64]);
    sent += 3;
    poll_all!();
    let mut rng = SplitMix64::new(seed);
    let mut frame = [0u8; SMALL_FRAME];
    for i in 0..garbage {
        let len = 14 + rng.below((SMALL_FRAME - 14 + 1) as u64) as usize;
        for b in frame[..len].iter_mut() {
            *b = rng.next_u64() as u8;
        }
        match i % 4 {
            0 => frame[12..14].copy_from_slice(&[0x08, 0x00]),
            1 => frame[12..14].copy_from_slice(&[0x08, 0x06]),
            _ => {}
        }
        if i % 2 == 0 {
            // Addressed to the interface, so it parses past Ethernet.
            frame[..6].copy_from_slice(REMOTE_MAC.as_bytes());
        }
        send!(NET_ADDR, &frame[..len]);
        sent += 1;
        if i % 8 == 7 {
            poll_all!();
        }
    }
    poll_all!();
    // Replies the garbage provoked (ARP replies, ICMP errors) are fine;
    // drain them.
    let _provoked = arp_replies(&mut mrx);

    // A well-formed frame comes out of the device byte for byte.
    let good: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
    send!(NET_ADDR, &good);
    sent += 1;
    {
        let (rx, _tx) = dev
            .receive(Instant::ZERO)
            .unwrap_or_else(|| panic!("the good frame did not arrive"));
        let same = rx.consume(|f| f == good.as_slice());
        assert!(same, "the good frame changed on the way");
    }

    // The interface still answers ARP.
    send!(NET_ADDR, &arp_request());
    poll_all!();
    let arp_answered = arp_replies(&mut mrx) == 1;
    BadFrames {
        stats: dev.stats(),
        sent,
        arp_answered,
    }
}

// ---------------------------------------------------------------------------
// The demo's table (`two-cores --net`)
// ---------------------------------------------------------------------------

/// What the demo runs per SoC: ten pings, 1 MiB through the TCP echo.
pub const DEMO: NetConfig = NetConfig {
    pings: 10,
    tcp_bytes: 1 << 20,
    seed: 0xD3_40,
};

/// Prints what the demo does and the table's header.
pub fn print_header() {
    println!(
        "two-cores --net: per SoC, both simulated cores run smoltcp over rpmsg::net::NetDevice\n\
         (one Ethernet frame per rpmsg message, 512-byte buffers: IP MTU {}), on the SoC's\n\
         simulated mailbox and shared memory seen through each core's cache. The master\n\
         ({MASTER_IP}) pings the remote ({REMOTE_IP}) {} times, then sends {} KiB through the\n\
         remote's TCP echo and checks every byte. Times are wall-clock on this host (two\n\
         host threads, not the SoC's cores); throughput counts echoed bytes (each crossed\n\
         the link twice).\n",
        rpmsg::net::DEFAULT_FRAME - rpmsg::net::ETHERNET_HEADER_LEN,
        DEMO.pings,
        DEMO.tcp_bytes / 1024,
    );
    println!(
        "{:<8} {:<27} {:>14} {:>10} {:>12} {:>16} {:>8}",
        "SoC",
        "cores, cache line",
        "ping RTT (med)",
        "TCP echo",
        "throughput",
        "frames m→r/r→m",
        "dropped"
    );
}

/// Prints one SoC's row (or why it failed); true if it passed.
pub fn print_row(soc: &str, cores: &str, result: &Result<NetReport, String>) -> bool {
    match result {
        Ok(r) => {
            println!(
                "{soc:<8} {cores:<27} {:>11.1} µs {:>6} KiB {:>7.2} MB/s {:>16} {:>8}",
                r.ping_median().as_secs_f64() * 1e6,
                r.tcp_bytes / 1024,
                r.tcp_bytes_per_sec() / 1e6,
                format!("{}/{}", r.master.tx_frames, r.remote.tx_frames),
                r.master.tx_no_buffer + r.remote.tx_no_buffer,
            );
            true
        }
        Err(why) => {
            println!("{soc:<8} {cores:<27} FAILED: {why}");
            false
        }
    }
}

/// Replies the remote's interface builds while the master holds every one
/// of the remote's transmit buffers are dropped and counted
/// ([`NetStats::tx_no_buffer`]), receiving goes on meanwhile, and replies
/// flow again once the master reads. Panics on failure.
pub fn replies_without_a_buffer_are_counted_then_recover() {
    pair!(DEFAULT_FRAME, mtx, mrx, mep, _other, dev);
    let mut iface = interface(&mut dev, REMOTE_MAC, REMOTE_IP);
    let mut storage: [SocketStorage; 1] = Default::default();
    let mut sockets = SocketSet::new(&mut storage[..]);
    let request = arp_request();
    let extra = 4;
    // NUM replies fill the remote's transmit ring (the master reads
    // nothing); `extra` more find no buffer.
    for i in 0..NUM + extra {
        let r = mtx
            .try_send(&mep, NET_ADDR, &request)
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(r, Sent::Sent, "request {i}: the remote stopped receiving");
        let _polled: PollResult = iface.poll(Instant::ZERO, &mut dev, &mut sockets);
    }
    let s = dev.stats();
    assert_eq!(s.rx_frames, (NUM + extra) as u32, "{s:?}");
    assert_eq!(s.tx_frames, NUM as u32, "{s:?}");
    assert_eq!(s.tx_no_buffer, extra as u32, "{s:?}");
    // The master reads: every sent reply is there, and the next request is
    // answered.
    assert_eq!(arp_replies(&mut mrx), NUM as u32);
    let r = mtx
        .try_send(&mep, NET_ADDR, &request)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r, Sent::Sent);
    let _polled: PollResult = iface.poll(Instant::ZERO, &mut dev, &mut sockets);
    assert_eq!(arp_replies(&mut mrx), 1, "{:?}", dev.stats());
    assert_eq!(dev.stats().tx_no_buffer, extra as u32);
}

/// The frame a device with `FRAME` = [`BIG_FRAME`] takes from smoltcp.
pub const BIG_FRAME: usize = 600;

/// A device whose frame is longer than the link's payload (a
/// misconfiguration) drops and counts a frame the buffer cannot hold
/// ([`NetStats::tx_oversized`]) and still sends one that fits; a request
/// beyond the device's own frame (smoltcp never makes one) is built short
/// and dropped, never a panic. Panics on failure.
pub fn tx_frames_beyond_the_buffer_are_dropped() {
    use smoltcp::phy::TxToken as _;
    pair!(BIG_FRAME, _mtx, mrx, _mep, _other, dev);
    let payload = DEFAULT_FRAME;
    for (len, sent) in [
        (payload + 1, false),
        (BIG_FRAME + 1, false),
        (payload, true),
    ] {
        let tok = dev
            .transmit(Instant::ZERO)
            .unwrap_or_else(|| panic!("no transmit buffer"));
        let seen = tok.consume(len, |f| {
            f.fill(0x3C);
            f.len()
        });
        assert_eq!(seen, len.min(BIG_FRAME), "frame handed to smoltcp");
        let s = dev.stats();
        assert_eq!(s.tx_frames, u32::from(sent), "{len}: {s:?}");
    }
    assert_eq!(dev.stats().tx_oversized, 2);
    let mut out = [0u8; BUF];
    let got = mrx
        .try_recv(&mut out)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the frame that fits never arrived"));
    assert_eq!(got.len, payload);
    assert!(out[..payload].iter().all(|&b| b == 0x3C));
    assert!(mrx
        .try_recv(&mut out)
        .unwrap_or_else(|e| panic!("{e}"))
        .is_none());
}
