//! i.MX8M Mini Cortex-M4 remote firmware: rpmsg with Linux over the
//! Messaging Unit, echo endpoints `rpmsg-tty` and `rpmsg-raw`.
//!
//! What Linux needs, and where it is here (sheets in shared/docs/hw):
//!
//! - **Resource table** in `.resource_table` (rpmsg-wire.md §3): a trace
//!   buffer (`trace0` in remoteproc's debugfs) and the rpmsg vdev with two
//!   vrings at the board's `vdev0vring0`/`vdev0vring1` carveouts
//!   (imx8-mu.md §5), 256 entries, 4096-byte alignment (rpmsg-lite's
//!   imx8mm values, §6).
//! - **MU side B** (the Cortex-M side, imx8-mu.md §1) at 0x30AB_0000,
//!   NVIC interrupt 97. rpmsg uses channel 1 both ways and kicks carry
//!   `vq_id << 16` (§5, §6): `mu_imx8::RpmsgNotifyRx` decodes them in the
//!   interrupt handler, which drains `RR1` (so the level interrupt drops)
//!   and leaves the queue bits for the main loop.
//! - **Start-up** (rpmsg-wire.md §2.1, §3.3): [`RemoteBoot`] clears the vdev
//!   status only if it is a previous session's (a late boot keeps Linux's
//!   `DRIVER_OK`), polls for `DRIVER_OK` on every SysTick (Linux's start
//!   kick may predate this boot; OpenAMP sends none), then the vrings are
//!   read back, the buffers found, the services announced.
//! - **Shared memory**: the reserved DDR at 0xB800_0000 is in the ARMv7-M
//!   default map's Device region, so not cached by the LMEM system cache
//!   (cache-and-wake.md §2). The MPU maps it Normal, non-cacheable,
//!   shareable instead, so byte copies of any alignment are legal; cache
//!   maintenance is then barriers only ([`Coherent`]).
//! - **Idle**: `wfi` with interrupts masked around the last check; deep
//!   sleep (`SLEEPDEEP`) only when the [`WakeLock`] allows it (it is held
//!   while an echo waits for a transmit buffer, and never while waiting
//!   for the host: SysTick, which stops in deep sleep, paces that wait).
//!   SysTick wakes the core about every 2^24 cycles so a deferred kick is
//!   retried and every wait stays bounded.
//!
//! UNVERIFIED for this part (see `memory.x` and the report): the TCM map,
//! that the GPC routes the MU interrupt as a wake source from STOP.
#![no_std]
#![no_main]

use core::cell::RefCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{MPU, NVIC, SCB};
use cortex_m_rt::{entry, exception};
use critical_section::Mutex;
use fw_common::doorbell::Patient;
use fw_common::echo::EchoService;
use fw_common::mem::{LineAligned, SharedArea};
use fw_common::trace::TraceLog;
use ipc_traits::cache::Coherent;
use ipc_traits::mailbox::{Event, InterruptSource, Listen, NotifyRx, UpperHalf};
use ipc_traits::power::{MaybeWakeGuard, WakeLock};
use ipc_traits::regs::Mmio32;
use ipc_traits::shm::RawRegion;
use mu_imx8::{Irq, Mu, RpmsgNotifyRx, TxChannel, RPMSG_CHANNEL};
use rpmsg::boot::{Profile, RemoteBoot};
use rpmsg::link::{Link, Storage};
use rpmsg::rings::RemoteTables;
use rpmsg::rsc_table::{
    table_size, HostPoll, PollTiming, ResourceTable, TableBuilder, VdevAt, VringSpec,
    VIRTIO_RPMSG_F_NS,
};
use rpmsg::Error;
use vring::Legacy;

/// MU side B, Cortex-M4 view (imx8-mu.md §1, `MUB_BASE`).
const MU_B_BASE: usize = 0x30AB_0000;
/// `MU_M4_IRQn` (imx8-mu.md §1).
const MU_IRQ: u16 = 97;

/// The board's reserved DDR (imx8-mu.md §5: `vdev0vring0` 0xB800_0000,
/// `vdev0vring1` 0xB800_8000, `vdevbuffer` 0xB840_0000 + 1 MiB). One
/// window covers all three; the M4 sees DDR at the addresses Linux uses.
const SHARED_BASE: usize = 0xB800_0000;
const SHARED_LEN: usize = 0x50_0000;
const VRING0_DA: u32 = 0xB800_0000;
const VRING1_DA: u32 = 0xB800_8000;
/// rpmsg-lite imx8mm: `VRING_ALIGN` 0x1000, 256 buffers (imx8-mu.md §6).
const VRING_ALIGN: u32 = 0x1000;
const VRING_NUM: u32 = 256;
/// Ring capacity (the most entries a vring may have here).
const NUM: usize = 256;

/// The trace buffer: first 4 KiB of TCMU (fixed by `memory.x`).
const TRACE_DA: u32 = 0x2000_0000;
const TRACE_LEN: usize = 4096;

/// The wait for Linux's `DRIVER_OK`, in SysTick periods (2^24 cycles,
/// about 42 ms at 400 MHz): a look every period, a trace line every 240
/// (about 10 s) while Linux keeps the remote waiting.
const HOST_TIMING: PollTiming = PollTiming {
    interval: 1,
    patience: 240,
};

/// Retries of a kick while Linux has not read the previous word yet.
const KICK_SPINS: u32 = 10_000;

const TABLE: usize = table_size(0, 1, 1, 2);

/// The resource table as built (its image and where its vdev is).
const BUILT: TableBuilder<TABLE> = TableBuilder::<TABLE>::new(2)
    .trace(TRACE_DA, TRACE_LEN as u32, "trace0")
    .rpmsg_vdev(
        VIRTIO_RPMSG_F_NS,
        [
            VringSpec::new(VRING0_DA, VRING_ALIGN, VRING_NUM, 0),
            VringSpec::new(VRING1_DA, VRING_ALIGN, VRING_NUM, 1),
        ],
    );

/// The resource table Linux reads from the ELF.
#[link_section = ".resource_table"]
#[used]
static RESOURCE_TABLE: LineAligned<ResourceTable<TABLE>> = LineAligned(BUILT.finish());

/// Where the build put the vdev: the boot reads only what the host
/// writes into it, without parsing the table.
const VDEV: VdevAt<TABLE> = BUILT.vdev_at();

#[link_section = ".trace_buffer"]
static TRACE: SharedArea<TRACE_LEN> = SharedArea::new();

/// Kicks taken by the interrupt handler, for the main loop (queue bits).
static KICKS: AtomicU32 = AtomicU32::new(0);
/// SysTick periods since boot.
static TICKS: AtomicU32 = AtomicU32::new(0);
/// Held while the core must not sleep deeply.
static WAKE: WakeLock = WakeLock::new();

/// What the MU interrupt handler owns.
struct MuIsr {
    irq: Irq<Mmio32>,
    kicks: RpmsgNotifyRx<Mmio32>,
}

static MU_ISR: Mutex<RefCell<Option<MuIsr>>> = Mutex::new(RefCell::new(None));

/// The rpmsg doorbell towards Linux: `vq_id << 16` on `TR1`, waiting
/// boundedly for Linux to read the previous word.
type Kick = Patient<TxChannel<Mmio32, RPMSG_CHANNEL>, UpperHalf>;

/// One interrupt vector: a handler, or 0 for a reserved entry (97
/// external interrupts here, `MU_M4` at 97).
#[derive(Clone, Copy)]
#[repr(C)]
pub union Vector {
    handler: unsafe extern "C" fn(),
    reserved: usize,
}

extern "C" {
    fn DefaultHandler();
}

/// The device part of the vector table (cortex-m-rt `device` feature).
#[link_section = ".vector_table.interrupts"]
#[no_mangle]
pub static __INTERRUPTS: [Vector; MU_IRQ as usize + 1] = {
    let mut v = [Vector {
        handler: DefaultHandler,
    }; MU_IRQ as usize + 1];
    v[MU_IRQ as usize] = Vector { handler: MU_M4 };
    v
};

/// The MU interrupt (NVIC 97): services the MU, drains the rpmsg words of
/// `RR1` and leaves their queue bits in [`KICKS`].
#[no_mangle]
pub extern "C" fn MU_M4() {
    critical_section::with(|cs| {
        if let Some(isr) = MU_ISR.borrow_ref_mut(cs).as_mut() {
            let events = isr.irq.on_interrupt();
            if events.has(RPMSG_CHANNEL, Event::DataAvailable) {
                // A foreign word is counted by the receiver and dropped.
                if let Ok(set) = isr.kicks.take_pending() {
                    KICKS.fetch_or(set.bits(), Ordering::AcqRel);
                }
            }
        }
    });
}

/// The periodic wake-up: counts the period and ends the `wfi`.
#[exception]
fn SysTick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

/// SysTick periods since boot.
fn ticks() -> u64 {
    u64::from(TICKS.load(Ordering::Relaxed))
}

#[derive(Clone, Copy)]
struct MuIrq;

// SAFETY: 97 is a valid external interrupt number of this part
// (`MU_M4_IRQn`, imx8-mu.md §1), and the vector table above has that entry.
unsafe impl cortex_m::interrupt::InterruptNumber for MuIrq {
    fn number(self) -> u16 {
        MU_IRQ
    }
}

/// Maps the shared DDR Normal, non-cacheable, shareable, never executable
/// (ARMv7-M MPU region 0; everything else keeps the default map).
fn configure_mpu(mpu: &mut MPU) {
    const SIZE_8M: u32 = 22; // region size 2^(22 + 1)
    const RASR: u32 = (1 << 28)   // XN
        | (0b011 << 24)           // AP: full access
        | (0b001 << 19)           // TEX = 1, C = 0, B = 0: Normal, non-cacheable
        | (1 << 18)               // S: shareable
        | (SIZE_8M << 1)
        | 1; // ENABLE
    cortex_m::asm::dsb();
    // SAFETY: programs MPU region 0 over the shared DDR only (0xB800_0000 is
    // 8 MiB aligned), then enables the MPU with the default map as
    // background (PRIVDEFENA), so code, TCM and peripherals are unaffected.
    unsafe {
        mpu.rnr.write(0);
        mpu.rbar.write(SHARED_BASE as u32);
        mpu.rasr.write(RASR);
        mpu.ctrl.write((1 << 2) | 1);
    }
    cortex_m::asm::dsb();
    cortex_m::asm::isb();
}

/// A window over a static or a reserved region.
///
/// # Safety
///
/// `base..base + len` is memory reached only through this window on this
/// core, valid for as long as the program runs.
unsafe fn window(base: *mut u8, len: usize, peer: u64) -> Option<RawRegion<Coherent>> {
    // SAFETY: forwarded from this function's contract; `Coherent` because
    // every window here is uncached (TCM, or the MPU region above).
    unsafe { RawRegion::new(NonNull::new(base)?, len, peer, Coherent) }.ok()
}

/// Sleeps until the next interrupt, deeply if the wake lock allows and
/// `shallow` is false (a doorbell owed to the peer, or a wait that only
/// SysTick may end). The check and the `wfi` run with interrupts masked,
/// so a kick that arrives in between still ends the `wfi` (it stays
/// pending) instead of being slept through.
fn idle(scb: &mut SCB, shallow: bool) {
    cortex_m::interrupt::free(|_| {
        if KICKS.load(Ordering::Acquire) == 0 {
            // Deep only when nothing is in flight and no doorbell is owed
            // to the peer (a refused kick is retried after the wake-up).
            if WAKE.deep_sleep_allowed() && !shallow {
                scb.set_sleepdeep();
            } else {
                scb.clear_sleepdeep();
            }
            cortex_m::asm::dsb();
            cortex_m::asm::wfi();
        }
    });
}

/// Stops serving (the link needs a reset from Linux): idle forever.
fn park(scb: &mut SCB) -> ! {
    loop {
        idle(scb, false);
    }
}

#[entry]
fn main() -> ! {
    let Some(mut cp) = cortex_m::Peripherals::take() else {
        loop {
            cortex_m::asm::wfi();
        }
    };
    configure_mpu(&mut cp.MPU);

    // SAFETY: each static or reserved region below is line-aligned and only
    // reached through its window; the DDR window is the board's reserved
    // memory for the rings and buffers, shared with Linux only.
    let (Some(table), Some(trace), Some(shared)) = (unsafe {
        (
            window(RESOURCE_TABLE.0.as_ptr(), TABLE, 0),
            window(TRACE.as_ptr(), TRACE_LEN, u64::from(TRACE_DA)),
            window(SHARED_BASE as *mut u8, SHARED_LEN, SHARED_BASE as u64),
        )
    }) else {
        park(&mut cp.SCB);
    };
    let mut log = TraceLog::new(&trace);
    log.line(format_args!("imx8mm-m4: up, rpmsg over MU side B"));
    let mut boot =
        match RemoteBoot::start_at(&table, 0, VDEV, &shared, Profile::Linux, HOST_TIMING, 0) {
            Ok(boot) => boot,
            Err(e) => {
                log.line(format_args!("imx8mm-m4: resource table: {e}"));
                park(&mut cp.SCB);
            }
        };
    log.line(format_args!(
        "imx8mm-m4: status at boot: {:?}",
        boot.host().found()
    ));

    // The MU: side B keeps its control register over a Linux reset (only
    // side A clears it, imx8-mu.md §2.4), so start from no enables.
    let Some(mu_base) = NonNull::new(MU_B_BASE as *mut u32) else {
        park(&mut cp.SCB);
    };
    // SAFETY: MU side B is mapped at MU_B_BASE (device memory in the
    // default map), 4-byte aligned, and this is its only driver.
    let mut mu = unsafe { Mu::new_unchecked(mu_base) };
    mu.disable_interrupts();
    let parts = mu.split();
    let mut rx1 = parts.rx1;
    if rx1.listen(Event::DataAvailable).is_err() {
        park(&mut cp.SCB);
    }
    critical_section::with(|cs| {
        MU_ISR.borrow(cs).replace(Some(MuIsr {
            irq: parts.irq,
            kicks: rx1.into_rpmsg_notify_rx(),
        }));
    });
    let kick: Kick = Patient::new(parts.tx1, KICK_SPINS);
    // SAFETY: the handler only touches MU_ISR (behind a critical section)
    // and KICKS (atomic); unmasking cannot break a critical section.
    unsafe { NVIC::unmask(MuIrq) };
    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(0x00FF_FFFF);
    cp.SYST.clear_current();
    cp.SYST.enable_interrupt();
    cp.SYST.enable_counter();

    // Linux sets DRIVER_OK and then kicks vring 0 (rpmsg-wire.md §2.1),
    // but that kick may predate this boot: the status byte decides, looked
    // at on every SysTick (shallow sleep: SysTick stops in a deep one).
    let vrings = loop {
        match boot.poll(&table, ticks()) {
            Ok(HostPoll::Ready(v)) => break v,
            Ok(HostPoll::Waiting { .. }) => idle(&mut cp.SCB, true),
            Err(Error::NotReady) => {
                log.line(format_args!("imx8mm-m4: still waiting for DRIVER_OK"));
            }
            Err(e) => {
                log.line(format_args!("imx8mm-m4: resource table: {e}"));
                park(&mut cp.SCB);
            }
        }
    };
    /// The rings' per-entry tables (`.bss`), lent to the rings.
    static RING_TABLES: RemoteTables<NUM> = RemoteTables::new();
    // SAFETY: the two buffer areas are Linux's receive and transmit halves
    // (disjoint), and this core builds no other buffer over them.
    let rings =
        match unsafe { boot.rings::<_, _, Legacy, NUM>(&table, &shared, vrings, &RING_TABLES) } {
            Ok(r) => r,
            Err(e) => {
                log.line(format_args!("imx8mm-m4: {e}"));
                park(&mut cp.SCB);
            }
        };
    let mut storage = Storage::<2>::new();
    let mut link = Link::new(rings, kick, &mut storage);
    let Ok(mut echo) = EchoService::new(&mut link) else {
        park(&mut cp.SCB);
    };
    log.line(format_args!(
        "imx8mm-m4: vrings at {:#x}/{:#x}, {} entries; echo on rpmsg-tty and rpmsg-raw",
        vrings[0].da, vrings[1].da, vrings[0].num
    ));

    let (mut tx, mut rx) = link.split();
    let mut guard = MaybeWakeGuard::new(&WAKE);
    let mut busy = true;
    loop {
        let kicked = KICKS.swap(0, Ordering::AcqRel) != 0;
        if kicked || busy || !echo.is_announced() {
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
                    log.line(format_args!(
                        "imx8mm-m4: link failed, waiting for a reset: {e}"
                    ));
                    park(&mut cp.SCB);
                }
            }
            continue;
        }
        // A kick Linux had no room for is retried before sleeping.
        tx.flush();
        idle(&mut cp.SCB, tx.owes_doorbell());
    }
}

/// Panics (none is reachable from Linux's input) are reported in the trace
/// buffer, where `cat /sys/kernel/debug/remoteproc/remoteproc0/trace0`
/// shows them; then the core stops.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: the trace static; the main loop's window is never used again.
    if let Some(trace) = unsafe { window(TRACE.as_ptr(), TRACE_LEN, u64::from(TRACE_DA)) } {
        TraceLog::append(&trace).line(format_args!("imx8mm-m4: panic: {info}"));
    }
    cortex_m::interrupt::disable();
    loop {
        cortex_m::asm::wfi();
    }
}
