//! Cavium OCTEON III (CN7130) firmware: two cnMIPS64 cores of one image
//! exchange rpmsg messages over CIU mailbox doorbells, in coherent memory.
//!
//! Core 0 is the host, core 1 the remote; the boot loader starts both at
//! `_start` (core mask 0x3). The remote's side is the same code a Linux
//! remote runs (resource table, `DRIVER_OK`, name service, echo service);
//! the host boots it the way Linux remoteproc does, then sends
//! [`MESSAGES`] messages and checks every echo.
//!
//! - **Doorbells** (octeon-ciu-mbox.md §3, §4.1): bit 4 rings vring 0, bit
//!   5 vring 1, written to the peer's `CIU_MBOX_SET`; bits 0..=3 are
//!   Linux's and cannot be claimed (`mbox_octeon::Claimable`). The mailbox
//!   raises the receiving core's IP2 line; the exception handler
//!   ([`octeon_exception`]) services it: `MboxIrq::on_interrupt`, then
//!   `RxQueues::take_pending` clears exactly the bits it reports, which
//!   drops the level-sensitive line.
//! - **Memory**: KSEG0, cached and coherent between the cores, so cache
//!   maintenance is ordering only ([`Coherent`]; the drivers' `io_wmb` /
//!   `io_rmb` around the doorbell are a `sync` on MIPS, cache-and-wake.md
//!   §5).
//! - **Idle**: `wait`, bounded by the CP0 timer, only when the [`WakeLock`]
//!   allows it (held by the remote while an echo waits for a buffer).
//! - **Result**: there is no console; core 0 stores it in [`RESULT`] (1 =
//!   pass, 2 = fail) and the counters beside it, and the remote logs into
//!   the table's trace buffer. Read them from the boot loader or a debugger.
//!
//! This image is built (nightly, `-Zbuild-std`, the OCTEON target JSON) and
//! linked, not run: QEMU has no OCTEON board with a CIU.
#![no_std]
#![no_main]
// MIPS inline assembly is unstable (tier 3 target, nightly only).
#![feature(asm_experimental_arch)]

mod arch;

use core::cell::RefCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};

use critical_section::Mutex;
use fw_common::client::EchoClient;
use fw_common::echo::EchoService;
use fw_common::mem::{LineAligned, SharedArea};
use fw_common::pair::{validation_errors, NUM};
use fw_common::trace::TraceLog;
use ipc_traits::cache::Coherent;
use ipc_traits::mailbox::{Event, InterruptSource, Listen, Mailbox, NotifyRx, QueueSet};
use ipc_traits::power::{MaybeWakeGuard, WakeLock};
use ipc_traits::regs::Mmio64;
use ipc_traits::shm::RawRegion;
use mbox_octeon::registers::CIU_BASE;
use mbox_octeon::{CoreId, Mbox, MboxIrq, RxQueues, TxQueues};
use rpmsg::boot::{master_table, Placement, Profile, RemoteBoot};
use rpmsg::link::{Link, Storage};
use rpmsg::rings::RemoteTables;
use rpmsg::rsc_table::{
    table_size, HostPoll, PollTiming, ResourceTable, TableBuilder, VdevAt, VringSpec,
    FW_RSC_ADDR_ANY, VIRTIO_RPMSG_F_NS,
};
use vring::Legacy;

/// Echoes to run.
const MESSAGES: u32 = 10_000;
/// Messages core 0 keeps outstanding.
const WINDOW: u32 = 24;
/// Loop passes without progress before a wait is given up (every wait is
/// bounded; each pass idles at most [`IDLE_TICKS`]).
const PATIENCE: u32 = 100_000;
/// CP0 timer ticks a `wait` lasts at most.
const IDLE_TICKS: u32 = 100_000;
/// The remote's wait for `DRIVER_OK`, in idle passes (each at most
/// [`IDLE_TICKS`], so the timer paces it whether or not the host kicks): a
/// look every pass, given up after [`PATIENCE`] passes.
const HOST_TIMING: PollTiming = PollTiming {
    interval: 1,
    patience: PATIENCE as u64,
};

/// Rings and buffers: vrings placed by the host (`FW_RSC_ADDR_ANY`).
const AREA: usize = 0x1_8000;
const PLACEMENT: Placement = Placement {
    vrings: [0, 0x8000],
    pool: 0x1_0000,
};
const TRACE_LEN: usize = 4096;
const TABLE: usize = table_size(0, 1, 1, 2);

/// The resource table as built (its image and where its vdev is).
const BUILT: TableBuilder<TABLE> = TableBuilder::<TABLE>::new(2)
    .trace(FW_RSC_ADDR_ANY, TRACE_LEN as u32, "trace0")
    .rpmsg_vdev(
        VIRTIO_RPMSG_F_NS,
        [
            VringSpec::new(FW_RSC_ADDR_ANY, 4096, NUM as u32, 0),
            VringSpec::new(FW_RSC_ADDR_ANY, 4096, NUM as u32, 1),
        ],
    );

/// The remote's resource table: here the boot contract between the two
/// cores (DESIGN.md: the table, or the layout for a bare-metal peer). The
/// trace entry's address is that of [`TRACE`]'s physical location; as a
/// bare-metal peer reads [`TRACE`] directly, it is informational.
#[link_section = ".resource_table"]
#[used]
static RESOURCE_TABLE: LineAligned<ResourceTable<TABLE>> = LineAligned(BUILT.finish());

/// Where the build put the vdev: the boot reads only what the host
/// writes into it, without parsing the table.
const VDEV: VdevAt<TABLE> = BUILT.vdev_at();

static SHARED: SharedArea<AREA> = SharedArea::new();
static TRACE: SharedArea<TRACE_LEN> = SharedArea::new();

/// Set by core 0 once `.bss` is zeroed. Starts non-zero, so it lives in
/// `.data` and is valid before that.
static BSS_READY: AtomicU32 = AtomicU32::new(BSS_NOT_READY);
const BSS_NOT_READY: u32 = 0x5A5A_5A5A;
const BSS_DONE: u32 = 1;

/// Core 1's progress.
static REMOTE_STATE: AtomicU32 = AtomicU32::new(0);
const BOOTED: u32 = 1;
const FAILED: u32 = 3;

/// The run's result: 0 running, 1 pass, 2 fail (core 0 writes it last).
pub static RESULT: AtomicU32 = AtomicU32::new(0);
/// Echoes core 0 checked.
pub static RESULT_ECHOES: AtomicU32 = AtomicU32::new(0);
/// Validation errors counted on core 0.
pub static RESULT_VALIDATION: AtomicU32 = AtomicU32::new(0);

/// Kicks each core's interrupt handler took (queue bits), per core.
static KICKS: [AtomicU32; 2] = [AtomicU32::new(0), AtomicU32::new(0)];
/// Held by the remote while it must not sleep.
static WAKE: WakeLock = WakeLock::new();

/// What a core's mailbox interrupt owns.
struct MboxIsr {
    irq: MboxIrq<Mmio64>,
    rx: RxQueues<Mmio64, 2>,
}

static MBOX_ISR: [Mutex<RefCell<Option<MboxIsr>>>; 2] = [
    Mutex::new(RefCell::new(None)),
    Mutex::new(RefCell::new(None)),
];

/// The general exception handler (called from the vector with `Cause`).
/// Interrupts only: IP2 is the mailbox, IP7 the timer. Any other exception
/// is fatal: the core stops here.
#[no_mangle]
extern "C" fn octeon_exception(cause: u64) {
    if cause & arch::CAUSE_EXCCODE != 0 {
        RESULT.store(2, Ordering::Release);
        loop {
            arch::wait();
        }
    }
    if cause & arch::CAUSE_IP7 != 0 {
        arch::ack_timer();
    }
    if cause & arch::CAUSE_IP2 != 0 {
        let me = core_index();
        critical_section::with(|cs| {
            if let Some(isr) = MBOX_ISR[me].borrow_ref_mut(cs).as_mut() {
                let _events = isr.irq.on_interrupt();
                if let Ok(set) = isr.rx.take_pending() {
                    KICKS[me].fetch_or(set.bits(), Ordering::AcqRel);
                }
            }
        });
    }
}

fn core_index() -> usize {
    let ebase: u64;
    // SAFETY: reads EBase (CP0 15, select 1); CPUNum is bits 9:0.
    unsafe {
        core::arch::asm!(".set noat", "mfc0 {}, $15, 1", ".set at", out(reg) ebase, options(nomem, nostack))
    };
    (ebase & 0x3ff) as usize
}

/// A window over a static, in the shared KSEG0 address space of both cores.
///
/// # Safety
///
/// `base..base + len` is a line-aligned static reached only through
/// windows, one per core.
unsafe fn window(base: *mut u8, len: usize) -> Option<RawRegion<Coherent>> {
    // SAFETY: forwarded from this function's contract; the cores are
    // coherent (cache-and-wake.md §5), and the peer address is the address.
    unsafe { RawRegion::new(NonNull::new(base)?, len, base as u64, Coherent) }.ok()
}

/// This core's doorbells: bits 4 and 5 of its own mailbox (receive) and of
/// `peer`'s (send).
fn doorbells(me: usize, peer: CoreId) -> Option<TxQueues<Mmio64, 2>> {
    let core = CoreId::new(me as u8)?;
    let base = NonNull::new(CIU_BASE as usize as *mut u64)?;
    // SAFETY: the CIU CSRs are reached through XKPHYS (Status.KX set in
    // `_start`), and this is the only mailbox driver of this core.
    let mut mbox = unsafe { Mbox::new_unchecked(base, core) };
    mbox.reset_mailbox();
    let mut parts = mbox.split();
    let rx = [
        parts.inbox.bit4.into_rx(&mut parts.irq).degrade(),
        parts.inbox.bit5.into_rx(&mut parts.irq).degrade(),
    ];
    let mut rx = RxQueues::new(rx).ok()?;
    rx.listen(Event::DataAvailable).ok()?;
    let tx = TxQueues::new([
        parts.outbox.bit4.into_tx(&parts.irq, peer).degrade(),
        parts.outbox.bit5.into_tx(&parts.irq, peer).degrade(),
    ]);
    critical_section::with(|cs| {
        MBOX_ISR[me]
            .borrow(cs)
            .replace(Some(MboxIsr { irq: parts.irq, rx }));
    });
    // SAFETY: the vector is installed and the handler's state is ready.
    unsafe { arch::enable_interrupts() };
    Some(tx)
}

/// Sleeps until the next interrupt or at most [`IDLE_TICKS`], if allowed.
///
/// Interrupts stay enabled: whether `wait` ends on an interrupt that
/// `Status.IE` masks is implementation-dependent on MIPS64r2 (UNVERIFIED
/// for OCTEON), so the usual "check with interrupts masked, then wait" is
/// not used. A kick that lands between the check and the `wait` is taken
/// by the handler and costs at most one timer period of latency, never a
/// hang.
fn idle(me: usize, deep: bool) {
    if deep {
        arch::arm_timer(IDLE_TICKS);
        if KICKS[me].load(Ordering::Acquire) == 0 {
            arch::wait();
        }
    } else {
        core::hint::spin_loop();
    }
}

fn take_kicks(me: usize) -> QueueSet {
    QueueSet::from_bits(KICKS[me].swap(0, Ordering::AcqRel))
}

// ---------------------------------------------------------------------------
// Core 1: the remote
// ---------------------------------------------------------------------------

fn remote() -> Option<()> {
    // SAFETY: the statics are line-aligned and reached only through windows,
    // one per core.
    let (table, shared, trace) = unsafe {
        (
            window(RESOURCE_TABLE.0.as_ptr(), TABLE)?,
            window(SHARED.as_ptr(), AREA)?,
            window(TRACE.as_ptr(), TRACE_LEN)?,
        )
    };
    let mut log = TraceLog::new(&trace);
    // A stale status (a previous session's) is cleared, a current one kept.
    let mut boot =
        RemoteBoot::start_at(&table, 0, VDEV, &shared, Profile::Native, HOST_TIMING, 0).ok()?;
    let kick = doorbells(1, CoreId::new(0)?)?;
    log.line(format_args!(
        "octeon remote (core 1): up, waiting for DRIVER_OK"
    ));
    REMOTE_STATE.store(BOOTED, Ordering::Release);

    // The status byte decides; the timer ends every `wait` (the host's
    // kick is a hint). `NotReady` after PATIENCE passes gives up.
    let mut passes = 0u64;
    let vrings = loop {
        if let HostPoll::Ready(v) = boot.poll(&table, passes).ok()? {
            break v;
        }
        passes += 1;
        idle(1, true);
    };
    /// The rings' per-entry tables (`.bss`), lent to the rings.
    static RING_TABLES: RemoteTables<NUM> = RemoteTables::new();
    // SAFETY: the buffer areas are the host's two buffer halves, disjoint;
    // core 1 builds no other buffer over them.
    let rings =
        unsafe { boot.rings::<_, _, Legacy, NUM>(&table, &shared, vrings, &RING_TABLES) }.ok()?;
    let mut storage = Storage::<2>::new();
    let mut link = Link::new(rings, kick, &mut storage);
    let mut echo = EchoService::new(&mut link).ok()?;
    log.line(format_args!(
        "octeon remote (core 1): serving rpmsg-tty and rpmsg-raw"
    ));

    let (mut tx, mut rx) = link.split();
    let mut guard = MaybeWakeGuard::new(&WAKE);
    let mut busy = true;
    loop {
        let set = take_kicks(1);
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
                    log.line(format_args!("octeon remote (core 1): link failed: {e}"));
                    return None;
                }
            }
            continue;
        }
        tx.flush();
        idle(1, WAKE.deep_sleep_allowed() && !tx.owes_doorbell());
    }
}

// ---------------------------------------------------------------------------
// Core 0: the host
// ---------------------------------------------------------------------------

fn host() -> Option<bool> {
    let kick = doorbells(0, CoreId::new(1)?)?;
    let mut patience = PATIENCE;
    while REMOTE_STATE.load(Ordering::Acquire) != BOOTED {
        patience = patience.checked_sub(1)?;
        idle(0, true);
    }
    // SAFETY: the statics are line-aligned and reached only through windows,
    // one per core.
    let (table, shared) = unsafe {
        (
            window(RESOURCE_TABLE.0.as_ptr(), TABLE)?,
            window(SHARED.as_ptr(), AREA)?,
        )
    };
    let info = VDEV.info();
    let mut kick = kick;
    // SAFETY: the pool is the host's alone.
    let rings = unsafe {
        master_table::<_, _, Legacy, _, NUM>(
            &table,
            &info,
            &shared,
            PLACEMENT,
            Profile::Native,
            false,
            &mut kick,
        )
    }
    .ok()?;
    let mut storage = Storage::<2>::new();
    let mut link = Link::new(rings, kick, &mut storage);
    let mut client = EchoClient::new(&mut link, MESSAGES, WINDOW).ok()?;
    let (mut tx, mut rx) = link.split();

    let mut patience = PATIENCE;
    while !client.is_done() {
        if REMOTE_STATE.load(Ordering::Acquire) == FAILED {
            return Some(false);
        }
        let set = take_kicks(0);
        if !set.is_empty() || client.wants_to_send() {
            match client.step(&mut tx, &mut rx) {
                Ok(true) => patience = PATIENCE,
                Ok(false) => {}
                Err(_) => return Some(false),
            }
        } else {
            patience = patience.checked_sub(1)?;
            tx.flush();
            idle(0, !tx.owes_doorbell());
        }
    }
    let stats = client.stats();
    let validation = validation_errors(&link) + client.ns_errors();
    RESULT_ECHOES.store(stats.received, Ordering::Relaxed);
    RESULT_VALIDATION.store(validation, Ordering::Relaxed);
    Some(stats.received == MESSAGES && stats.services == 2 && validation == 0)
}

#[no_mangle]
extern "C" fn rust_main(core: u64) -> ! {
    if core == 0 {
        arch::sync();
        BSS_READY.store(BSS_DONE, Ordering::Release);
    } else {
        let mut patience = PATIENCE;
        while BSS_READY.load(Ordering::Acquire) != BSS_DONE && patience > 0 {
            patience -= 1;
            core::hint::spin_loop();
        }
    }
    // SAFETY: once per core, at start-up, interrupts still disabled.
    unsafe { arch::set_vectors() };
    match core {
        0 => {
            let ok = host() == Some(true);
            arch::sync();
            RESULT.store(if ok { 1 } else { 2 }, Ordering::Release);
        }
        1 if remote().is_none() => REMOTE_STATE.store(FAILED, Ordering::Release),
        _ => {}
    }
    loop {
        arch::wait();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    RESULT.store(2, Ordering::Release);
    loop {
        arch::wait();
    }
}
