//! Emulated 2-core AArch64 run (QEMU `virt -smp 2`, Cortex-A53): the host
//! on core 0, the remote on core 1, in shared RAM, on the weakly ordered
//! Normal memory of two coherent cores.
//!
//! Core 0 starts core 1 with PSCI `CPU_ON` (the remote comes out of reset
//! and checks its table's status, clearing it only if it is a previous
//! session's), then boots it the way Linux remoteproc
//! does: the vrings go where the resource table says (fixed addresses, like
//! a board's carveouts), buffers are posted, `DRIVER_OK`, first kick. Core 1
//! polls for `DRIVER_OK` every 10 ms at the latest (a kick only shortens
//! the wait), attaches, announces `rpmsg-tty` and `rpmsg-raw`,
//! logs into the table's trace buffer and echoes. Core 0 sends
//! [`MESSAGES`] messages of every size from 0 to 496 bytes and checks each
//! echo byte for byte. Each doorbell is a bit in memory plus `sev`; an idle
//! core waits in `wfe` (bounded by the timer's event stream).
//!
//! Exit status (semihosting): 0 only if every echo came back intact, both
//! services were announced, no validation error was counted on either core
//! and the trace buffer holds the remote's log; 1 on any failure (including
//! a stall: no progress for [`STALL_SECONDS`]), 101 on a panic. The runner's
//! timeout kills a hung emulator.
#![no_std]
#![no_main]

mod arch;

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};

use fw_common::client::{ClientError, EchoClient};
use fw_common::doorbell::MemDoorbell;
use fw_common::echo::EchoService;
use fw_common::mem::{LineAligned, SharedArea};
use fw_common::pair::{doorbells, validation_errors, NUM};
use fw_common::trace::TraceLog;
use ipc_traits::cache::Coherent;
use ipc_traits::mailbox::NotifyRx;
use ipc_traits::power::{MaybeWakeGuard, WakeLock};
use ipc_traits::shm::RawRegion;
use rpmsg::boot::{master_table, Placement, Profile, RemoteBoot, F_EVENT_IDX};
use rpmsg::link::{Link, Storage};
use rpmsg::rings::RemoteTables;
use rpmsg::rsc_table::{
    table_size, HostPoll, PollTiming, ResourceTable, TableBuilder, VdevAt, VringSpec,
    VIRTIO_RPMSG_F_NS,
};
use rpmsg::Error;
use vring::Legacy;

/// Messages to echo.
const MESSAGES: u32 = 10_000;
/// Messages core 0 keeps outstanding.
const WINDOW: u32 = 24;
/// Seconds without progress before a run is declared stalled (shorter
/// when the fault is injected on purpose).
const STALL_SECONDS: u64 = if cfg!(feature = "fault-lose-kicks") {
    3
} else {
    10
};

/// The shared area (see `link.ld`): vring 0 at +0, vring 1 at +0x8000 (the
/// i.MX8M boards' `vdev0vring0/1` spacing, imx8-mu.md §5), buffers at
/// +0x1_0000.
const SHARED_BASE: u32 = 0x4100_0000;
const AREA: usize = 0x1_8000;
const PLACEMENT: Placement = Placement {
    vrings: [0, 0x8000],
    pool: 0x1_0000,
};
const TRACE_DA: u32 = 0x4008_0000;
const TRACE_LEN: usize = 4096;
const TABLE: usize = table_size(0, 1, 1, 2);

/// The resource table as built (its image and where its vdev is).
const BUILT: TableBuilder<TABLE> = TableBuilder::<TABLE>::new(2)
    .trace(TRACE_DA, TRACE_LEN as u32, "trace0")
    .rpmsg_vdev(
        VIRTIO_RPMSG_F_NS | F_EVENT_IDX,
        [
            VringSpec::new(SHARED_BASE, 4096, NUM as u32, 0),
            VringSpec::new(SHARED_BASE + 0x8000, 4096, NUM as u32, 1),
        ],
    );

#[link_section = ".resource_table"]
#[used]
static RESOURCE_TABLE: LineAligned<ResourceTable<TABLE>> = LineAligned(BUILT.finish());

/// Where the build put the vdev: the boot reads only what the host
/// writes into it, without parsing the table.
const VDEV: VdevAt<TABLE> = BUILT.vdev_at();

#[link_section = ".shared"]
static SHARED: SharedArea<AREA> = SharedArea::new();

#[link_section = ".trace_buffer"]
static TRACE: SharedArea<TRACE_LEN> = SharedArea::new();

static TO_REMOTE: MemDoorbell = MemDoorbell::new();
static TO_HOST: MemDoorbell = MemDoorbell::new();

/// Core 1's progress, for core 0.
static REMOTE_STATE: AtomicU32 = AtomicU32::new(0);
const BOOTED: u32 = 1;
const FINISHED: u32 = 2;
/// Core 1's failure (0 = none), as a [`RemoteFail`] code.
static REMOTE_FAIL: AtomicU32 = AtomicU32::new(0);
/// Core 0 asks core 1 to publish its final counters.
static STOP: AtomicU32 = AtomicU32::new(0);
/// Core 1's final counters.
static R_ECHOED: AtomicU32 = AtomicU32::new(0);
static R_VALIDATION: AtomicU32 = AtomicU32::new(0);
static R_NOTIFY: AtomicU32 = AtomicU32::new(0);
static R_DEEP_IDLE: AtomicU32 = AtomicU32::new(0);
static R_SHALLOW_IDLE: AtomicU32 = AtomicU32::new(0);

/// Core 1's wake lock: held while the echo service waits for a transmit
/// buffer (it owes the host an answer and must not sleep deeply).
static WAKE: WakeLock = WakeLock::new();

/// A window over a static.
///
/// # Safety
///
/// `ptr..ptr + len` is a line-aligned static reached only through windows
/// (one per core), and `peer` is its address as the table names it.
unsafe fn window(ptr: *mut u8, len: usize, peer: u64) -> Option<RawRegion<Coherent>> {
    let base = NonNull::new(ptr)?;
    // SAFETY: forwarded from this function's contract. Coherent: the two
    // A53 cores share an inner-shareable, cache-coherent domain.
    unsafe { RawRegion::new(base, len, peer, Coherent) }.ok()
}

fn secs(ticks: u64) -> u64 {
    ticks / arch::tick_hz()
}

// ---------------------------------------------------------------------------
// Core 1: the remote
// ---------------------------------------------------------------------------

/// Why core 1 stopped.
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
enum RemoteFail {
    Window = 1,
    Table = 2,
    NeverReady = 3,
    Boot = 4,
    Link = 5,
}

fn wake_host() {
    if cfg!(feature = "fault-lose-kicks") {
        let _ = TO_HOST.taker().take_pending();
    }
    arch::sev();
}

fn remote() -> RemoteFail {
    // SAFETY: the statics are line-aligned and reached only through these
    // windows on this core.
    let (Some(table), Some(shared), Some(trace)) = (unsafe {
        (
            window(RESOURCE_TABLE.0.as_ptr(), TABLE, 0),
            window(SHARED.as_ptr(), AREA, u64::from(SHARED_BASE)),
            window(TRACE.as_ptr(), TRACE_LEN, u64::from(TRACE_DA)),
        )
    }) else {
        return RemoteFail::Window;
    };
    let mut log = TraceLog::new(&trace);
    // The wait for DRIVER_OK in generic-timer ticks: a look every 10 ms at
    // the latest (each `wfe` ends on the event stream), given up after
    // STALL_SECONDS.
    let hz = arch::tick_hz();
    let timing = PollTiming {
        interval: hz / 100,
        patience: STALL_SECONDS * hz,
    };
    // EVENT_IDX (the table offers it, the host accepts it): each core
    // rings once per idle period of the other, never again while the
    // other has not looked at its ring.
    let Ok(mut boot) = RemoteBoot::start_at(
        &table,
        0,
        VDEV,
        &shared,
        Profile::Native,
        timing,
        arch::ticks(),
    )
    .and_then(RemoteBoot::with_event_idx) else {
        return RemoteFail::Table;
    };
    log.line(format_args!(
        "remote (core 1): out of reset, waiting for DRIVER_OK"
    ));
    REMOTE_STATE.store(BOOTED, Ordering::Release);
    arch::sev();

    let vrings = loop {
        match boot.poll(&table, arch::ticks()) {
            Ok(HostPoll::Ready(v)) => break v,
            Ok(HostPoll::Waiting { .. }) => arch::wfe(),
            Err(_) => return RemoteFail::NeverReady,
        }
    };
    /// The rings' per-entry tables (`.bss`), lent to the rings.
    static RING_TABLES: RemoteTables<NUM> = RemoteTables::new();
    // SAFETY: the buffer areas are the host's two buffer halves, disjoint;
    // core 1 builds no other buffer over them.
    let rings =
        match unsafe { boot.rings::<_, _, Legacy, NUM>(&table, &shared, vrings, &RING_TABLES) } {
            Ok(r) => r,
            Err(e) => {
                log.line(format_args!("remote (core 1): boot failed: {e}"));
                return RemoteFail::Boot;
            }
        };
    let mut storage = Storage::<2>::new();
    let mut link = Link::new(rings, TO_HOST.ringer(wake_host), &mut storage);
    let Ok(mut echo) = EchoService::new(&mut link) else {
        return RemoteFail::Link;
    };
    log.line(format_args!(
        "remote (core 1): vrings at {:#x} and {:#x}, {} entries; serving rpmsg-tty and rpmsg-raw",
        vrings[0].da, vrings[1].da, vrings[0].num
    ));

    let mut take = TO_REMOTE.taker();
    let mut guard = MaybeWakeGuard::new(&WAKE);
    let mut busy = true;
    let (mut deep, mut shallow) = (0u32, 0u32);
    let (mut tx, mut rx) = link.split();
    while STOP.load(Ordering::Acquire) == 0 {
        let set = take.take_pending().unwrap_or_default();
        if !set.is_empty() || busy || !echo.is_announced() {
            match echo.serve(&mut tx, &mut rx) {
                Ok(p) => {
                    busy = p.more;
                    if p.blocked {
                        guard.enable();
                    } else {
                        guard.disable();
                    }
                }
                Err(e) => {
                    log.line(format_args!("remote (core 1): link failed: {e}"));
                    return RemoteFail::Link;
                }
            }
        } else if WAKE.deep_sleep_allowed() && !tx.owes_doorbell() {
            deep = deep.wrapping_add(1);
            arch::wfe();
        } else {
            shallow = shallow.wrapping_add(1);
            core::hint::spin_loop();
        }
    }
    let stats = echo.stats();
    log.line(format_args!(
        "remote (core 1): echoed {} messages",
        stats.echoed
    ));
    R_ECHOED.store(stats.echoed, Ordering::Relaxed);
    R_VALIDATION.store(validation_errors(&link), Ordering::Relaxed);
    R_NOTIFY.store(doorbells(&link), Ordering::Relaxed);
    R_DEEP_IDLE.store(deep, Ordering::Relaxed);
    R_SHALLOW_IDLE.store(shallow, Ordering::Relaxed);
    REMOTE_STATE.store(FINISHED, Ordering::Release);
    arch::sev();
    loop {
        arch::wfe();
    }
}

// ---------------------------------------------------------------------------
// Core 0: the host
// ---------------------------------------------------------------------------

/// Waits until `cond` holds, at most [`STALL_SECONDS`].
fn wait_for(cond: impl Fn() -> bool) -> bool {
    let deadline = arch::ticks() + STALL_SECONDS * arch::tick_hz();
    while !cond() {
        if arch::ticks() > deadline {
            return false;
        }
        arch::wfe();
    }
    true
}

fn host() -> Result<(), &'static str> {
    arch::say(format_args!(
        "qemu-a64: core 0 (host) starting core 1 (remote) with PSCI CPU_ON"
    ));
    if arch::cpu_on(1, arch::_start as *const () as usize as u64) != 0 {
        return Err("PSCI CPU_ON failed");
    }
    if !wait_for(|| REMOTE_STATE.load(Ordering::Acquire) >= BOOTED) {
        return Err("core 1 never came out of reset");
    }

    // SAFETY: the statics are line-aligned and reached only through these
    // windows on this core.
    let (Some(table), Some(shared)) = (unsafe {
        (
            window(RESOURCE_TABLE.0.as_ptr(), TABLE, 0),
            window(SHARED.as_ptr(), AREA, u64::from(SHARED_BASE)),
        )
    }) else {
        return Err("window");
    };
    let info = VDEV.info();
    let mut ring = TO_REMOTE.ringer(arch::sev);
    // SAFETY: the pool (PLACEMENT.pool, 2 * NUM buffers) is the host's.
    let rings = unsafe {
        master_table::<_, _, Legacy, _, NUM>(
            &table,
            &info,
            &shared,
            PLACEMENT,
            Profile::Native,
            true,
            &mut ring,
        )
    }
    .map_err(|e: Error| {
        arch::say(format_args!("qemu-a64: host boot: {e}"));
        "host boot failed"
    })?;
    let mut storage = Storage::<2>::new();
    let mut link = Link::new(rings, ring, &mut storage);
    let mut client = EchoClient::new(&mut link, MESSAGES, WINDOW).map_err(|_| "client endpoint")?;
    let mut take = TO_HOST.taker();
    let (mut tx, mut rx) = link.split();

    let hz = arch::tick_hz();
    let start = arch::ticks();
    let mut last = start;
    while !client.is_done() {
        if REMOTE_FAIL.load(Ordering::Acquire) != 0 {
            return Err("core 1 failed");
        }
        let set = take.take_pending().unwrap_or_default();
        if !set.is_empty() || client.wants_to_send() {
            match client.step(&mut tx, &mut rx) {
                Ok(true) => last = arch::ticks(),
                Ok(false) => {}
                Err(e) => {
                    arch::say(format_args!("qemu-a64: exchange failed: {e}"));
                    return Err(match e {
                        ClientError::Link(_) => "host link error",
                        _ => "wrong echo",
                    });
                }
            }
        } else {
            arch::wfe();
        }
        if secs(arch::ticks() - last) >= STALL_SECONDS {
            arch::say(format_args!(
                "qemu-a64: stalled after {} echoes",
                client.stats().received
            ));
            return Err("stalled");
        }
    }
    let elapsed = arch::ticks() - start;

    STOP.store(1, Ordering::Release);
    arch::sev();
    if !wait_for(|| REMOTE_STATE.load(Ordering::Acquire) == FINISHED) {
        return Err("core 1 did not report");
    }
    let c = client.stats();
    let us = elapsed * 1_000_000 / hz;
    arch::say(format_args!("qemu-a64: services announced {} (rpmsg-tty, rpmsg-raw); echoes {} of {}, {} bytes, checked byte for byte",
        c.services, c.received, MESSAGES, c.bytes
    ));
    arch::say(format_args!(
        "qemu-a64: {} echoes in {} ms of emulated time ({} us per message, window {})",
        c.received,
        us / 1000,
        us / u64::from(c.received.max(1)),
        WINDOW
    ));
    let host_validation = validation_errors(&link) + client.ns_errors();
    let remote_validation = R_VALIDATION.load(Ordering::Relaxed);
    arch::say(format_args!("qemu-a64: notifications core0->core1 {} ({} while one was pending), core1->core0 {} ({} while one was pending); remote idle: {} wfe (wake lock free), {} spins (held)",
        doorbells(&link),
        TO_REMOTE.coalesced(),
        R_NOTIFY.load(Ordering::Relaxed),
        TO_HOST.coalesced(),
        R_DEEP_IDLE.load(Ordering::Relaxed),
        R_SHALLOW_IDLE.load(Ordering::Relaxed)
    ));
    arch::say(format_args!(
        "qemu-a64: remote echoed {}; validation errors host {}, remote {}",
        R_ECHOED.load(Ordering::Relaxed),
        host_validation,
        remote_validation
    ));
    let mut buf = [0u8; TRACE_LEN];
    // SAFETY: a plain copy of the trace static through its raw pointer;
    // core 1 finished writing it (FINISHED was stored with Release after
    // the last write and loaded with Acquire above).
    unsafe { core::ptr::copy_nonoverlapping(TRACE.as_ptr(), buf.as_mut_ptr(), TRACE_LEN) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(TRACE_LEN);
    let text = core::str::from_utf8(&buf[..end]).unwrap_or("<not utf-8>");
    arch::say(format_args!("qemu-a64: trace0 reads: {text:?}"));

    let ok = c.received == MESSAGES
        && R_ECHOED.load(Ordering::Relaxed) == MESSAGES
        && c.services == 2
        && host_validation == 0
        && remote_validation == 0
        && text.starts_with("remote (core 1): out of reset")
        && text.contains("echoed 10000 messages");
    if ok {
        Ok(())
    } else {
        Err("summary check failed")
    }
}

#[no_mangle]
extern "C" fn rust_main(core: u64) -> ! {
    // SAFETY: once per core, at start-up, in EL1.
    unsafe { arch::enable_mmu() };
    arch::enable_event_stream();
    if core != 0 {
        let fail = remote();
        REMOTE_FAIL.store(fail as u32, Ordering::Release);
        arch::sev();
        loop {
            arch::wfe();
        }
    }
    arch::say(format_args!(
        "qemu-a64: two Cortex-A53 cores, {MESSAGES} echoes"
    ));
    match host() {
        Ok(()) => {
            arch::say(format_args!("qemu-a64: PASS"));
            arch::exit(0)
        }
        Err(e) => {
            let code = REMOTE_FAIL.load(Ordering::Acquire);
            arch::say(format_args!(
                "qemu-a64: FAIL: {e} (core 1 failure code {code})"
            ));
            arch::exit(1)
        }
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    arch::say(format_args!(
        "qemu-a64: panic on core {}: {}",
        arch::core_id(),
        info
    ));
    arch::exit(101)
}
