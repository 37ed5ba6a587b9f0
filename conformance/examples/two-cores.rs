//! The stack in one command: for each supported SoC, two host threads play
//! its two cores and echo rpmsg messages through its simulated mailbox and
//! simulated shared memory.
//!
//! ```text
//! cargo run --release -p conformance --example two-cores
//! cargo run --release -p conformance --example two-cores -- --soc v853 --messages 100000
//! cargo run --release -p conformance --example two-cores -- --linux
//! cargo run --release -p conformance --example two-cores -- --weak
//! cargo run --release -p conformance --example two-cores -- --net
//! ```
//!
//! Each pair boots the way the real cores do. The master (the application
//! core, Linux's role) lays out both vrings, posts its receive buffers and
//! kicks the remote. The remote (the MCU core) sleeps until that first
//! doorbell, attaches to the rings and announces the service `rpmsg-demo`
//! through the name service. The master finds the service by name and sends
//! a stream of messages of random sizes; the remote checks each one and
//! echoes it; the master checks every echo (sequence number, length, every
//! byte) and times each round trip.
//!
//! Both cores "sleep" whenever they have nothing to do and wake only on
//! their doorbell, as firmware in `wfi` would, so a lost notification (or
//! one suppressed when the peer needed it) shows up as a timeout instead of
//! being papered over by polling. Each core sees shared memory through its own simulated
//! write-back cache with the real core's line size, evicting lines at
//! random (OCTEON is coherent and has none), so a missing clean or
//! invalidate anywhere in the stack shows up as a corrupted echo.
//!
//! With `--weak`, both cores are weakly ordered, like Arm cores
//! (`conformance::sim::WeakOrder::arm_like`): stores wait in a store buffer
//! and land in any order unless a barrier orders them, loads may run early,
//! and a doorbell overtakes the ring stores it announces unless the driver
//! used the I/O write barrier. So a missing fence or I/O barrier anywhere
//! in the stack shows up as a stalled or corrupted exchange. After the table
//! it prints how often stores landed out of order and loads ran early.
//!
//! With `--linux`, one more row has real Linux as the other side: a
//! user-mode Linux kernel (built by `linux-peer/build-kernel.sh`) drives
//! the rings with its own `virtio_rpmsg_bus` over a vhost-user socket, our
//! remote announces `rpmsg-raw`, and the guest echoes every message back
//! through `/dev/rpmsgN` (`linux_peer::demo`). Our remote sends and checks
//! the same kind of stream and times each round trip. Without a built
//! kernel, `--linux` says how to build one and exits with status 2.
//!
//! One table row per SoC; the exit status is 0 only if every exchange
//! completed, every echo matched and no validation counter moved. Every wait
//! is bounded: a stalled exchange is reported (which SoC, which core, what
//! it waited for) after 10 seconds without progress, and a failure on one
//! core stops the other.

use std::io::IsTerminal;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use conformance::rng::SplitMix64;
use conformance::sim::{CacheConfig, CacheStats, SimCore, SimMemory, WeakOrder, WeakStats};
use ipc_traits::mailbox::{Error as _, ErrorKind, Notify, NotifyRx, QueueSet};
use rpmsg::boot::Profile;
use rpmsg::link::ns::{NsDirectory, NsEvent, NsStats};
use rpmsg::link::{Link, RxStats, Sent, Storage, Tx, TxStats};
use rpmsg::rings::{Halves, MasterConfig, MasterRings, QueueIds, RemoteConfig, RemoteRings};
use rpmsg::wire::{ADDR_ANY, HEADER_LEN, NS_ADDR};
use vring::{BufferArea, Layout, Legacy, Suppression};

#[path = "two_cores/linux.rs"]
mod linux_row;
#[path = "two_cores/net.rs"]
mod net_row;
#[path = "two_cores/soc.rs"]
mod soc;

use soc::{Core, Doorbells, Soc, Wiring};

/// Ring tables, leaked: they live as long as the process.
fn remote_tables<const N: usize>() -> &'static rpmsg::rings::RemoteTables<N> {
    Box::leak(Box::default())
}

/// Both cores run this stack: its doorbell conventions (the remote's and
/// the master's returned buffers are not announced while the peer has
/// transmit buffers, rpmsg-wire.md §2.1).
const PROFILE: Profile = Profile::Native;
/// The name the remote announces.
const SERVICE: &str = "rpmsg-demo";
/// Entries per vring.
const NUM: usize = 16;
/// Bytes per buffer (the rpmsg default, rpmsg-wire.md).
const BUF: usize = 512;
/// The largest payload: a buffer less the rpmsg header.
const MAX_PAYLOAD: usize = BUF - HEADER_LEN;
/// The smallest payload: room for the sequence number.
const MIN_PAYLOAD: usize = 4;
/// vring alignment: what firmware uses in practice, because Linux expects
/// it (rpmsg-wire.md, "Alignment used with remoteproc"). It also keeps
/// every ring part on its own cache line for any line size here.
const VRING_ALIGN: usize = 0x1000;
/// Echoes per SoC unless `--messages` says otherwise.
const DEFAULT_MESSAGES: u32 = 10_000;
/// The most `--messages` accepts (the master keeps every round-trip time).
const MAX_MESSAGES: u32 = 1_000_000;
/// How long a core may wait without any progress before the exchange is
/// declared stuck.
const PATIENCE: Duration = Duration::from_secs(10);

/// Endpoints per link: the master's own and the name service's (address
/// 53, whose messages feed its directory); the remote's one.
const ENDPOINTS: usize = 2;

/// Where the rings and buffers sit in the shared window.
struct Geometry {
    vring0: Layout,
    vring1: Layout,
    pool: usize,
    size: usize,
}

const fn align_up(v: usize) -> usize {
    (v + VRING_ALIGN - 1) & !(VRING_ALIGN - 1)
}

/// vring0, vring1, then the pool of `2 * NUM` buffers (receive half first),
/// each starting on a page.
const GEOMETRY: Geometry = {
    let vring0 = Layout::legacy_at(0, NUM as u16, VRING_ALIGN);
    let vring1 = Layout::legacy_at(align_up(vring0.end()), NUM as u16, VRING_ALIGN);
    let pool = align_up(vring1.end());
    Geometry {
        vring0,
        vring1,
        pool,
        size: pool + 2 * NUM * BUF,
    }
};

fn master_config() -> MasterConfig {
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

fn remote_config() -> RemoteConfig {
    RemoteConfig {
        vring0: GEOMETRY.vring0,
        vring1: GEOMETRY.vring1,
        vring0_buffers: BufferArea::new(GEOMETRY.pool, NUM * BUF),
        vring1_buffers: BufferArea::new(GEOMETRY.pool + NUM * BUF, NUM * BUF),
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
    }
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/// Message `seq`: its sequence number (little-endian), then bytes from a
/// generator seeded with it; 4 to 496 bytes long. Both cores can rebuild
/// it, so each can check what it received.
fn payload(seq: u32, out: &mut [u8; MAX_PAYLOAD]) -> usize {
    let mut rng = SplitMix64::new(0x7C0_0000_0000 ^ u64::from(seq));
    let span = (MAX_PAYLOAD - MIN_PAYLOAD + 1) as u64;
    let len = MIN_PAYLOAD + rng.below(span) as usize;
    out[..4].copy_from_slice(&seq.to_le_bytes());
    for chunk in out[4..len].chunks_mut(8) {
        let word = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    len
}

/// Compares `got` with message `seq`; the error completes the sentence
/// "message N ...".
fn check(seq: u32, got: &[u8]) -> Result<(), String> {
    let mut want = [0u8; MAX_PAYLOAD];
    let len = payload(seq, &mut want);
    if let Some(&[a, b, c, d]) = got.get(..4) {
        let carried = u32::from_le_bytes([a, b, c, d]);
        if carried != seq {
            return Err(format!(
                "carries sequence number {carried} (lost, duplicated or reordered)"
            ));
        }
    }
    if got.len() != len {
        return Err(format!("is {} bytes long; {len} were sent", got.len()));
    }
    match got.iter().zip(&want).position(|(g, w)| g != w) {
        Some(at) => Err(format!(
            "differs from what was sent at byte {at} (stale or corrupted)"
        )),
        None => Ok(()),
    }
}

/// The part of `buf` a receive filled, without trusting `len` to fit.
fn filled(buf: &[u8], len: usize) -> Result<&[u8], String> {
    buf.get(..len).ok_or_else(|| {
        format!(
            "the link reported {len} bytes in a {}-byte buffer",
            buf.len()
        )
    })
}

// ---------------------------------------------------------------------------
// Waiting: bounded, and only on the doorbell
// ---------------------------------------------------------------------------

/// How one core's part of an exchange ended badly.
enum Fault {
    /// This core found the problem.
    Own(String),
    /// The other core failed first and this one was stopped.
    Stopped,
}

impl From<String> for Fault {
    fn from(s: String) -> Self {
        Self::Own(s)
    }
}

/// What the two threads share besides the simulated hardware: the switches
/// a debugger would use to halt both cores.
#[derive(Default)]
struct Control {
    /// A core failed; the other stops waiting.
    failed: AtomicBool,
    /// The master is done; the remote stops serving.
    finished: AtomicBool,
}

/// Bounds a core's waiting: any wait gives up after `limit` without
/// progress, or at once when the other core failed.
struct Patience<'c> {
    control: &'c Control,
    limit: Duration,
    since: Instant,
}

impl<'c> Patience<'c> {
    fn new(control: &'c Control, limit: Duration) -> Self {
        Self {
            control,
            limit,
            since: Instant::now(),
        }
    }

    /// Something moved: the clock starts again.
    fn progress(&mut self) {
        self.since = Instant::now();
    }

    /// One idle turn (the thread yields the host core).
    fn idle(&mut self, waiting_for: impl FnOnce() -> String) -> Result<(), Fault> {
        if self.control.failed.load(Ordering::SeqCst) {
            return Err(Fault::Stopped);
        }
        if self.since.elapsed() > self.limit {
            return Err(Fault::Own(format!(
                "timed out: nothing moved for {} s while waiting for {}",
                self.limit.as_secs(),
                waiting_for()
            )));
        }
        thread::yield_now();
        Ok(())
    }
}

/// A core's mailbox receiver, as its interrupt handler uses it.
struct Inbox<T> {
    take: T,
    /// Words that were not doorbells (validation errors).
    errors: u32,
}

impl<T: NotifyRx> Inbox<T> {
    /// Takes the pending doorbells. A word that is not a doorbell is counted
    /// and dropped; doorbells gathered before it come with the next call.
    fn take(&mut self) -> QueueSet {
        self.take.take_pending().unwrap_or_else(|_| {
            self.errors += 1;
            QueueSet::EMPTY
        })
    }
}

/// The core's idle loop: "wait for interrupt" until the peer rings (the
/// link's halves read the rings themselves afterwards). Meanwhile, kicks
/// that found the mailbox full are retried (what the transmit-space
/// interrupt is for on silicon). `Ok(false)` when the demo stops the core.
fn sleep<'m, R: Halves<'m>, N: Notify, T: NotifyRx>(
    tx: &mut Tx<'_, 'm, R, N>,
    inbox: &mut Inbox<T>,
    patience: &mut Patience<'_>,
    waiting_for: impl Fn() -> String,
) -> Result<bool, Fault> {
    loop {
        tx.flush();
        if !inbox.take().is_empty() {
            return Ok(true);
        }
        if patience.control.finished.load(Ordering::SeqCst) {
            // Stopped because the master is done, or because it failed.
            if patience.control.failed.load(Ordering::SeqCst) {
                return Err(Fault::Stopped);
            }
            return Ok(false);
        }
        patience.idle(&waiting_for)?;
    }
}

// ---------------------------------------------------------------------------
// The two cores
// ---------------------------------------------------------------------------

/// What one core reports when it is done.
#[derive(Debug, Default, Clone, Copy)]
struct Report {
    tx: TxStats,
    rx: RxStats,
    /// The master's directory of the remote's services.
    ns: NsStats,
    rings: (vring::Stats, vring::Stats),
    cache: CacheStats,
    /// What weak ordering did on the core (`--weak`).
    weak: Option<WeakStats>,
    /// Doorbells rung outside the link (the master's boot kick).
    boot_kicks: u32,
    doorbell_errors: u32,
    /// The link is broken (a ring index the peer corrupted, a buffer that
    /// could not be given back).
    broken: bool,
}

impl Report {
    fn of<'m, R: Halves<'m>, N: Notify, T, const LINE: usize>(
        link: &Link<'m, R, N>,
        core: &SimCore<LINE>,
        inbox: &Inbox<T>,
    ) -> Self {
        Self {
            tx: link.tx_stats(),
            rx: link.rx_stats(),
            ns: NsStats::default(),
            rings: link.ring_stats(),
            cache: core.stats(),
            weak: core.weak_stats(),
            boot_kicks: 0,
            doorbell_errors: inbox.errors,
            broken: link.is_broken(),
        }
    }

    /// Everything that must stay 0 in a correct exchange: the link's, the
    /// directory's and the rings' validation counters, words that were not
    /// doorbells, buffers lost, a broken link, and cache lines whose local
    /// writes were thrown away.
    fn errors(&self) -> u64 {
        let (rx, ns) = (&self.rx, &self.ns);
        [
            rx.bad_header,
            rx.unbound,
            rx.return_failures,
            ns.malformed,
            ns.unknown_destroy,
            ns.directory_full,
            self.rings.0.failures.total(),
            self.rings.1.failures.total(),
            self.doorbell_errors,
            u32::from(self.broken),
        ]
        .iter()
        .map(|&n| u64::from(n))
        .sum::<u64>()
            + self.cache.dirty_lines_discarded
            + self.cache.maintenance_outside_window
    }
}

/// What the master measured.
struct Echoes {
    report: Report,
    round_trips: Vec<Duration>,
    bytes: u64,
}

/// The application core: boots the link, finds the service, sends `count`
/// messages one at a time and checks each echo.
fn master<const LINE: usize, N: Notify, T: NotifyRx>(
    mem: &SimMemory,
    cache: CacheConfig,
    bells: Doorbells<N, T>,
    count: u32,
    control: &Control,
    progress: &mut Progress,
) -> Result<Echoes, Fault> {
    let core = mem.core::<LINE>(cache);
    let mut patience = Patience::new(control, PATIENCE);
    let Doorbells { mut ring, take } = bells;
    let mut inbox = Inbox { take, errors: 0 };

    // Boot, as Linux's remoteproc does: lay out both rings and post the
    // receive buffers, then kick so the remote starts.
    // SAFETY: the pool belongs to this link alone; the remote touches a
    // buffer only while the rings lend it, and this core builds no other
    // buffer handle over it.
    let rings = unsafe { MasterRings::<_, Legacy, NUM>::new(&core, master_config()) }
        .and_then(|r| r.with_conventions(PROFILE.conventions()))
        .map_err(|e| format!("laying out the rings: {e}"))?;
    loop {
        match ring.notify(QueueIds::DEFAULT.vring0) {
            Ok(()) => break,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                patience.idle(|| "room in the mailbox for the boot kick".into())?;
            }
            Err(e) => return Err(Fault::Own(format!("ringing the boot kick: {e:?}"))),
        }
    }
    let mut storage = Storage::<ENDPOINTS>::new();
    let mut link = Link::new(rings, ring, &mut storage);
    let ns = link.bind(NS_ADDR).map_err(|e| e.to_string())?;
    let ep = link.bind(ADDR_ANY).map_err(|e| e.to_string())?;
    let (mut tx, mut rx) = link.split();
    let mut dir = NsDirectory::<4>::new();
    let mut back = [0u8; MAX_PAYLOAD];

    // The remote announces its service; look it up by name.
    let peer = loop {
        match rx.try_recv(&mut back) {
            Ok(Some(m)) if m.dst == ns.addr() => {
                let event = dir.on_message::<Legacy>(filled(&back, m.len)?);
                if let Some(NsEvent::Created(s)) = event {
                    if s.name.as_str() == SERVICE {
                        break s.addr;
                    }
                }
            }
            Ok(Some(m)) => {
                return Err(Fault::Own(format!(
                    "a message from {} before any service was announced",
                    m.src
                )))
            }
            Ok(None) => {
                sleep(&mut tx, &mut inbox, &mut patience, || {
                    format!("the \"{SERVICE}\" announcement")
                })?;
            }
            Err(e) => return Err(Fault::Own(format!("name service: {e}"))),
        }
    };
    patience.progress();

    let mut out = [0u8; MAX_PAYLOAD];
    let mut round_trips = Vec::with_capacity(count as usize);
    let mut bytes = 0u64;
    for seq in 0..count {
        let len = payload(seq, &mut out);
        let sent_at = Instant::now();
        loop {
            match tx.try_send(&ep, peer, &out[..len]) {
                Ok(Sent::Sent) => break,
                Ok(Sent::NoBuffer) => {
                    sleep(&mut tx, &mut inbox, &mut patience, || {
                        format!("a transmit buffer for message {seq}")
                    })?;
                }
                Err(e) => return Err(Fault::Own(format!("sending message {seq}: {e}"))),
            }
        }
        let echo = loop {
            match rx.try_recv(&mut back) {
                Ok(Some(echo)) => break echo,
                Ok(None) => {
                    sleep(&mut tx, &mut inbox, &mut patience, || {
                        format!("the echo of message {seq}")
                    })?;
                }
                Err(e) => return Err(Fault::Own(format!("receiving echo {seq}: {e}"))),
            }
        };
        round_trips.push(sent_at.elapsed());
        if (echo.src, echo.dst) != (peer, ep.addr()) {
            return Err(Fault::Own(format!(
                "echo {seq} came from address {} to {}, not from {SERVICE} at {peer} to {}",
                echo.src,
                echo.dst,
                ep.addr()
            )));
        }
        let echo_bytes = filled(&back, echo.len)?;
        check(seq, echo_bytes).map_err(|e| format!("echo {seq} {e}"))?;
        bytes += len as u64;
        patience.progress();
        progress.advance(seq + 1);
    }
    let report = Report {
        boot_kicks: 1,
        ns: dir.stats(),
        ..Report::of(&link, &core, &inbox)
    };
    Ok(Echoes {
        report,
        round_trips,
        bytes,
    })
}

/// The MCU core: waits for the master's boot kick, attaches to the rings,
/// announces the service and echoes every message (after checking it) until
/// the demo stops it.
fn remote<const LINE: usize, N: Notify, T: NotifyRx>(
    mem: &SimMemory,
    cache: CacheConfig,
    bells: Doorbells<N, T>,
    count: u32,
    control: &Control,
) -> Result<Report, Fault> {
    let core = mem.core::<LINE>(cache);
    // Only the master knows when a message is overdue: the remote waits
    // longer, so a stalled exchange is reported by the side that can say
    // what is missing.
    let mut patience = Patience::new(control, 2 * PATIENCE);
    let Doorbells { ring, take } = bells;
    let mut inbox = Inbox { take, errors: 0 };

    // Nothing in shared memory is valid before the master's first kick.
    while inbox.take().is_empty() {
        patience.idle(|| "the master's boot kick".into())?;
    }
    patience.progress();
    // SAFETY: the two buffer areas are the halves of the master's pool,
    // disjoint; this core builds no buffer handle over them except through
    // these rings.
    let rings =
        unsafe { RemoteRings::<_, Legacy, NUM>::new(&core, remote_config(), remote_tables()) }
            .and_then(|r| r.with_conventions(PROFILE.conventions()))
            .map_err(|e| format!("attaching to the rings: {e}"))?;
    let mut storage = Storage::<ENDPOINTS>::new();
    let mut link = Link::new(rings, ring, &mut storage);
    let ep = link.bind(ADDR_ANY).map_err(|e| e.to_string())?;
    let (mut tx, mut rx) = link.split();
    loop {
        match tx.announce(&ep, SERVICE) {
            Ok(Sent::Sent) => break,
            Ok(Sent::NoBuffer) => {
                if !sleep(&mut tx, &mut inbox, &mut patience, || {
                    "a transmit buffer for the announcement".into()
                })? {
                    return Err(Fault::Own("stopped before announcing".into()));
                }
            }
            Err(e) => return Err(Fault::Own(format!("announcing {SERVICE}: {e}"))),
        }
    }

    let mut buf = [0u8; MAX_PAYLOAD];
    let mut echoed = 0u32;
    loop {
        match rx.try_recv(&mut buf) {
            Ok(Some(msg)) => {
                let bytes = filled(&buf, msg.len)?;
                check(echoed, bytes).map_err(|e| format!("message {echoed} {e}"))?;
                loop {
                    match tx.try_send(&ep, msg.src, bytes) {
                        Ok(Sent::Sent) => break,
                        Ok(Sent::NoBuffer) => {
                            if !sleep(&mut tx, &mut inbox, &mut patience, || {
                                format!("a transmit buffer for echo {echoed}")
                            })? {
                                return Err(Fault::Own(format!(
                                    "stopped with echo {echoed} unsent"
                                )));
                            }
                        }
                        Err(e) => return Err(Fault::Own(format!("echoing message {echoed}: {e}"))),
                    }
                }
                echoed += 1;
                patience.progress();
            }
            Ok(None) => {
                if !sleep(&mut tx, &mut inbox, &mut patience, || {
                    format!("message {echoed}")
                })? {
                    break;
                }
            }
            Err(e) => return Err(Fault::Own(format!("receiving message {echoed}: {e}"))),
        }
    }
    if echoed != count {
        return Err(Fault::Own(format!(
            "echoed {echoed} messages; the master sent {count}"
        )));
    }
    Ok(Report::of(&link, &core, &inbox))
}

// ---------------------------------------------------------------------------
// One exchange per SoC
// ---------------------------------------------------------------------------

/// One line of the table.
struct Row {
    messages: u32,
    bytes: u64,
    rtt_median: Duration,
    kicks_sent: u64,
    kicks_suppressed: u64,
    lines_cleaned: u64,
    lines_invalidated: u64,
    errors: u64,
    /// Stores that landed out of program order and loads that ran early,
    /// both cores (`--weak`).
    weak: Option<(u64, u64)>,
}

fn cache_config(core: Core, seed: u64) -> CacheConfig {
    if core.coherent {
        CacheConfig::COHERENT
    } else {
        CacheConfig::write_back(seed)
    }
}

/// Runs `f`; a failure or a panic tells the other core to stop waiting.
fn guarded<T>(control: &Control, f: impl FnOnce() -> Result<T, Fault>) -> Result<T, Fault> {
    let out = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Fault::Own(format!("panicked: {why}")))
    });
    if out.is_err() {
        control.failed.store(true, Ordering::SeqCst);
    }
    out
}

/// The master on this thread, the remote on another, over one SoC's
/// wiring. `ML` and `RL` are the two cores' cache-line sizes.
fn exchange<const ML: usize, const RL: usize, MN, MT, RN, RT>(
    soc: &Soc,
    wiring: Wiring<MN, MT, RN, RT>,
    count: u32,
    weak: bool,
    progress: &mut Progress,
) -> Result<Row, String>
where
    MN: Notify + Send,
    MT: NotifyRx + Send,
    RN: Notify + Send,
    RT: NotifyRx + Send,
{
    let mem = SimMemory::new(GEOMETRY.size, soc.shm_base)
        .with_order(weak.then(|| WeakOrder::arm_like(u64::from(count))));
    let control = Control::default();
    let Wiring {
        master: master_bells,
        remote: remote_bells,
    } = wiring;
    let (m, r) = thread::scope(|s| {
        let (mem, control) = (&mem, &control);
        let remote_cache = cache_config(soc.remote, 2);
        let remote = s.spawn(move || {
            guarded(control, || {
                remote::<RL, _, _>(mem, remote_cache, remote_bells, count, control)
            })
        });
        let m = guarded(control, || {
            master::<ML, _, _>(
                mem,
                cache_config(soc.master, 1),
                master_bells,
                count,
                control,
                progress,
            )
        });
        control.finished.store(true, Ordering::SeqCst);
        let r = remote
            .join()
            .unwrap_or_else(|_| Err(Fault::Own("the remote thread died".into())));
        (m, r)
    });
    let (echoes, remote) = match (m, r) {
        (Ok(m), Ok(r)) => (m, r),
        (Err(Fault::Own(m)), Err(Fault::Own(r))) => {
            return Err(format!("master: {m}; remote: {r}"))
        }
        (Err(Fault::Own(why)), _) => return Err(format!("master: {why}")),
        (_, Err(Fault::Own(why))) => return Err(format!("remote: {why}")),
        _ => return Err("both cores stopped without a reason".into()),
    };
    let master = echoes.report;
    let mut round_trips = echoes.round_trips;
    round_trips.sort_unstable();
    let both = [master, remote];
    let sum = |f: &dyn Fn(&Report) -> u64| both.iter().map(f).sum::<u64>();
    Ok(Row {
        messages: count,
        bytes: echoes.bytes,
        rtt_median: round_trips
            .get(round_trips.len() / 2)
            .copied()
            .unwrap_or_default(),
        kicks_sent: sum(&|r| {
            u64::from(r.tx.doorbells) + u64::from(r.rx.doorbells) + u64::from(r.boot_kicks)
        }),
        kicks_suppressed: sum(&|r| {
            u64::from(r.rings.0.notifications_suppressed)
                + u64::from(r.rings.1.notifications_suppressed)
        }),
        lines_cleaned: sum(&|r| r.cache.lines_cleaned),
        lines_invalidated: sum(&|r| r.cache.lines_invalidated),
        errors: sum(&Report::errors),
        weak: master.weak.zip(remote.weak).map(|(m, r)| {
            (
                m.drained_out_of_order + r.drained_out_of_order,
                m.early_loads + r.early_loads,
            )
        }),
    })
}

/// Wires `soc` and runs its exchange with its cores' line sizes.
fn run(soc: &Soc, count: u32, weak: bool, progress: &mut Progress) -> Result<Row, String> {
    use soc::{AM62X, IMX8, OCTEON, V853};
    match soc.name {
        "imx8" => exchange::<{ IMX8.master.line }, { IMX8.remote.line }, _, _, _, _>(
            soc,
            soc::imx8()?,
            count,
            weak,
            progress,
        ),
        "am62x" => exchange::<{ AM62X.master.line }, { AM62X.remote.line }, _, _, _, _>(
            soc,
            soc::am62x()?,
            count,
            weak,
            progress,
        ),
        "v853" => exchange::<{ V853.master.line }, { V853.remote.line }, _, _, _, _>(
            soc,
            soc::v853()?,
            count,
            weak,
            progress,
        ),
        "octeon" => exchange::<{ OCTEON.master.line }, { OCTEON.remote.line }, _, _, _, _>(
            soc,
            soc::octeon()?,
            count,
            weak,
            progress,
        ),
        other => Err(format!("no wiring for {other}")),
    }
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

/// A dot on stderr per 10 % of a SoC's echoes, when stderr is a terminal.
struct Progress {
    enabled: bool,
    total: u32,
    dots: u32,
}

impl Progress {
    fn start(&mut self, name: &str, total: u32) {
        self.total = total.max(1);
        self.dots = 0;
        if self.enabled {
            eprint!("{name:<8}");
        }
    }

    fn advance(&mut self, done: u32) {
        let due = (u64::from(done) * 10 / u64::from(self.total)) as u32;
        if self.enabled && due > self.dots {
            self.dots = due;
            eprint!("."); // stderr is unbuffered: the dot shows at once
        }
    }

    /// Erases the progress line so the table row takes its place.
    fn finish(&mut self) {
        if self.enabled {
            eprint!("\r\x1b[K");
        }
    }
}

fn describe(soc: &Soc) -> String {
    let (m, r) = (soc.master, soc.remote);
    if m.coherent && r.coherent && m.name == r.name {
        format!("2 × {}, coherent", m.name)
    } else if m.coherent && r.coherent {
        format!("{} / {}, coherent", m.name, r.name)
    } else {
        format!("{} {} B / {} {} B", m.name, m.line, r.name, r.line)
    }
}

/// The table's columns: `{:<7} {:<22} {:>9} {:>10} {:>11} {:>8} {:>10} {:>9} {:>11} {:>6}`.
fn print_header() {
    let groups = format!(
        "{:63} {:^19} {:^21}",
        "", "notifications", "cache lines (both)"
    );
    println!("{}", groups.trim_end());
    println!(
        "{:<7} {:<22} {:>9} {:>10} {:>11} {:>8} {:>10} {:>9} {:>11} {:>6}",
        "SoC",
        "cores, cache line",
        "messages",
        "bytes",
        "RTT median",
        "sent",
        "suppressed",
        "cleaned",
        "invalidated",
        "errors"
    );
}

fn print_row(soc: &Soc, row: &Row) {
    println!(
        "{:<7} {:<22} {:>9} {:>10} {:>8.1} µs {:>8} {:>10} {:>9} {:>11} {:>6}",
        soc.name,
        describe(soc),
        row.messages,
        row.bytes,
        row.rtt_median.as_secs_f64() * 1e6,
        row.kicks_sent,
        row.kicks_suppressed,
        row.lines_cleaned,
        row.lines_invalidated,
        row.errors,
    );
}

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

const USAGE: &str = "\
two-cores: the rpmsg stack on two simulated cores, for each supported SoC

Usage: cargo run --release -p conformance --example two-cores -- [OPTIONS]

Options:
  --soc NAME      run only this SoC (repeatable): imx8, am62x, v853, octeon
  --messages N    echoes per SoC, 1 to 1000000 (default 10000)
  --linux         also echo through real Linux (user-mode Linux, built by
                  `bash linux-peer/build-kernel.sh`), as one more row
  --weak          weakly ordered cores (stores reorder, loads run early,
                  doorbells overtake unbarriered stores)
  -h, --help      print this help

Exit status: 0 if every exchange passed, 1 if one failed, 2 on bad arguments
or when --linux finds no kernel.";

/// What the command line asks for.
enum Command {
    Help,
    Run(Options),
}

/// The options of a run (a new switch is one field here, one arm in
/// [`parse`] and one line in [`USAGE`]).
struct Options {
    /// The SoCs to run, in order (default: all).
    socs: Vec<Soc>,
    /// Echoes per SoC.
    messages: u32,
    /// One more row through real Linux.
    linux: bool,
    /// Weakly ordered cores.
    weak: bool,
}

fn valid_names() -> String {
    soc::ALL.map(|s| s.name).join(", ")
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut o = Options {
        socs: Vec::new(),
        messages: DEFAULT_MESSAGES,
        linux: false,
        weak: false,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg, None),
        };
        let mut value = |what: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs {what}"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--linux" if inline.is_none() => o.linux = true,
            "--linux" => return Err("--linux takes no value".into()),
            "--weak" if inline.is_none() => o.weak = true,
            "--weak" => return Err("--weak takes no value".into()),
            "--soc" => {
                let name = value("a SoC name")?;
                let soc = soc::ALL
                    .into_iter()
                    .find(|s| s.name.eq_ignore_ascii_case(&name))
                    .ok_or_else(|| {
                        format!("unknown SoC \"{name}\"; valid names: {}", valid_names())
                    })?;
                if !o.socs.iter().any(|s| s.name == soc.name) {
                    o.socs.push(soc);
                }
            }
            "--messages" => {
                let n = value("a number")?;
                o.messages = n
                    .parse()
                    .ok()
                    .filter(|m| (1..=MAX_MESSAGES).contains(m))
                    .ok_or_else(|| {
                        format!(
                            "--messages takes a whole number from 1 to {MAX_MESSAGES}, not \"{n}\""
                        )
                    })?;
            }
            other => return Err(format!("unknown argument \"{other}\"")),
        }
    }
    if o.socs.is_empty() {
        o.socs = soc::ALL.to_vec();
    }
    Ok(Command::Run(o))
}

fn main() -> ExitCode {
    if std::env::args().skip(1).any(|a| a == "--net") {
        return net_row::main();
    }
    let (socs, messages, linux, weak) = match parse(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Run(Options {
            socs,
            messages,
            linux,
            weak,
        })) => (socs, messages, linux, weak),
        Err(why) => {
            eprintln!("two-cores: {why}\n(run with --help for usage)");
            return ExitCode::from(2);
        }
    };
    // Look for the kernel before anything runs.
    let kernel = if linux {
        match linux_row::kernel() {
            Ok(k) => Some(k),
            Err(why) => {
                eprintln!("two-cores: {why}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };

    println!(
        "two-cores: per SoC, a master and a remote core on two host threads talk rpmsg through\n\
         the SoC's simulated mailbox and simulated shared memory seen through each core's own\n\
         write-back cache (random eviction; OCTEON is coherent). {messages} echoes per SoC,\n\
         4 to {MAX_PAYLOAD} bytes each, every one checked.\n"
    );
    if weak {
        println!(
            "--weak: both cores weakly ordered (Arm-like): stores land out of order unless a\n\
             barrier orders them, loads run early, doorbells overtake unbarriered stores.\n"
        );
    }
    print_header();
    let mut progress = Progress {
        enabled: std::io::stderr().is_terminal(),
        total: 1,
        dots: 0,
    };
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut reorderings = Vec::new();
    for soc in &socs {
        progress.start(soc.name, messages);
        let result = run(soc, messages, weak, &mut progress);
        progress.finish();
        match result {
            Ok(row) => {
                print_row(soc, &row);
                if let Some((stores, loads)) = row.weak {
                    reorderings.push(format!(
                        "{}: {stores} stores landed out of order, {loads} loads ran early",
                        soc.name
                    ));
                }
                if row.errors != 0 {
                    println!("{:<7} FAILED: {} validation errors", soc.name, row.errors);
                    failures.push(soc.name);
                }
            }
            Err(why) => {
                println!("{:<7} FAILED: {why}", soc.name);
                failures.push(soc.name);
            }
        }
    }
    let linux_timings = kernel.map(|kernel| {
        progress.start(linux_row::NAME, messages);
        let result = linux_peer::demo::echo(&kernel, messages, |done| progress.advance(done));
        progress.finish();
        match result {
            Ok(report) => {
                linux_row::print(&report);
                if report.errors != 0 {
                    println!(
                        "{:<7} FAILED: {} validation errors",
                        linux_row::NAME,
                        report.errors
                    );
                    failures.push(linux_row::NAME);
                }
                Some(linux_row::timings(&report))
            }
            Err(why) => {
                println!("{:<7} FAILED: {why}", linux_row::NAME);
                failures.push(linux_row::NAME);
                None
            }
        }
    });
    println!(
        "\nRTT: median from send to checked echo, timed on the master's thread. notifications:\n\
         doorbells rung by both cores / ones the rings found the peer did not want. errors:\n\
         validation failures (links, rings, doorbells), lost buffers, discarded dirty lines."
    );
    if !reorderings.is_empty() {
        println!("weak ordering, both cores: {}", reorderings.join("; "));
    }
    if let Some(timings) = linux_timings {
        println!("{}", linux_row::FOOTNOTE);
        if let Some(t) = timings {
            println!("{t}");
        }
    }
    // "SoCs" as before, or "rows" with the Linux row.
    let (rows, what) = if linux {
        (socs.len() + 1, "rows")
    } else {
        (socs.len(), "SoCs")
    };
    let elapsed = started.elapsed().as_secs_f64();
    if failures.is_empty() {
        println!("\nall {rows} {what} passed in {elapsed:.1} s");
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "two-cores: {} of {rows} {what} failed: {}",
            failures.len(),
            failures.join(", ")
        );
        ExitCode::FAILURE
    }
}
