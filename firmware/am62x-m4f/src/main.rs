//! TI AM62x Cortex-M4F remote firmware: rpmsg with Linux over the K3
//! mailbox, echo endpoints `rpmsg-tty` and `rpmsg-raw`.
//!
//! What Linux needs, and where it is here (sheets in shared/docs/hw):
//!
//! - **Resource table** in `.resource_table`, placed at the start of the
//!   DDR firmware region so Linux also finds it when it attaches to a
//!   running M4F (am62x-mailbox.md §4.3): a trace buffer and the rpmsg vdev
//!   with two vrings Linux places anywhere (`FW_RSC_ADDR_ANY`; they land in
//!   the DMA pool at 0x9CB0_0000), 256 entries, 4096-byte alignment.
//! - **Mailbox cluster 0 as user 2** (the M4F, NVIC 50), Linux queue
//!   convention (§3.1, `mbox_am62x::convention`): the M4F sends on queue 0
//!   and receives on queue 1; a kick is the raw vring id (§4.1). The same
//!   queue carries Linux's `0xFFFF_FFxx` control words: the interrupt
//!   handler's [`KickRx`] sets them aside, and the main loop answers the
//!   echo request (sent when Linux opens the channel) and the suspend
//!   requests of TI's power protocol: acknowledged only when the
//!   [`WakeLock`] is free, refused otherwise.
//! - **Start-up** (rpmsg-wire.md §2.1, §3.3): [`RemoteBoot`] clears the vdev
//!   status only if it is a previous session's (a late boot keeps Linux's
//!   `DRIVER_OK`), polls for `DRIVER_OK` on every SysTick (Linux's start
//!   kick may predate this boot; OpenAMP sends none), then the vrings are
//!   read back, the buffers found, the services announced.
//! - **Idle**: `wfi` with interrupts masked around the last check; deep
//!   sleep only when the wake lock allows it, and never while waiting for
//!   the host (SysTick, which stops in deep sleep, paces that wait);
//!   SysTick bounds every wait.
//!
//! The M4F has no data cache and the DDR window is Normal memory in the
//! ARMv7-M default map, so cache maintenance is barriers only
//! ([`Coherent`]). UNVERIFIED: the M4F-local addresses of the mailbox and of
//! DDR (its RAT, am62x-mailbox.md §3.1; identity assumed) and the memory
//! sizes in `memory.x`.
#![no_std]
#![no_main]

use core::cell::RefCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{NVIC, SCB};
use cortex_m_rt::{entry, exception};
use critical_section::Mutex;
use fw_common::doorbell::Patient;
use fw_common::echo::EchoService;
use fw_common::mem::{LineAligned, SharedArea};
use fw_common::shared::SharedTx;
use fw_common::trace::TraceLog;
use ipc_traits::cache::Coherent;
use ipc_traits::mailbox::{Events, RawId};
use ipc_traits::power::{MaybeWakeGuard, WakeLock};
use ipc_traits::regs::Mmio32;
use ipc_traits::shm::RawRegion;
use mbox_am62x::convention::{LINUX_TO_M4F, M4F_USER};
use mbox_am62x::{
    ControlEvent, Event, InterruptSource, Irq, KickRx, Listen, Mbox, NotifyRx, Queue, RpMbox, Rx,
    Tx,
};
use rpmsg::boot::{Profile, RemoteBoot};
use rpmsg::link::{Link, Storage};
use rpmsg::rings::RemoteTables;
use rpmsg::rsc_table::{
    table_size, HostPoll, PollTiming, ResourceTable, TableBuilder, VdevAt, VringSpec,
    FW_RSC_ADDR_ANY, VIRTIO_RPMSG_F_NS,
};
use rpmsg::Error;
use vring::Legacy;

/// Mailbox cluster 0 (am62x-mailbox.md §1, §3.1). UNVERIFIED as an M4F
/// address: TI's SDK passes it through the M4F's address translation.
const MAILBOX0_BASE: usize = 0x2900_0000;
/// Cluster 0's user 2 interrupt on the M4F's NVIC (§3.1).
const MAILBOX_IRQ: u16 = 50;

/// Linux's DMA pool for the M4F (§4.3): vrings and buffers land here.
const SHARED_BASE: usize = 0x9CB0_0000;
const SHARED_LEN: usize = 0x10_0000;
const VRING_ALIGN: u32 = 0x1000;
const VRING_NUM: u32 = 256;
const NUM: usize = 256;

/// The trace buffer (fixed by `memory.x`).
const TRACE_DA: u32 = 0x9CC0_1000;
const TRACE_LEN: usize = 4096;

/// Retries of a kick while the 4-word queue is full.
const KICK_SPINS: u32 = 10_000;
/// Words the interrupt handler drains per call.
const DRAIN: u32 = 8;

const TABLE: usize = table_size(0, 1, 1, 2);

/// The resource table as built (its image and where its vdev is).
const BUILT: TableBuilder<TABLE> = TableBuilder::<TABLE>::new(2)
    .trace(TRACE_DA, TRACE_LEN as u32, "trace0")
    .rpmsg_vdev(
        VIRTIO_RPMSG_F_NS,
        [
            VringSpec::new(FW_RSC_ADDR_ANY, VRING_ALIGN, VRING_NUM, 0),
            VringSpec::new(FW_RSC_ADDR_ANY, VRING_ALIGN, VRING_NUM, 1),
        ],
    );

#[link_section = ".resource_table"]
#[used]
static RESOURCE_TABLE: LineAligned<ResourceTable<TABLE>> = LineAligned(BUILT.finish());

/// Where the build put the vdev: the boot reads only what the host
/// writes into it, without parsing the table.
const VDEV: VdevAt<TABLE> = BUILT.vdev_at();

#[link_section = ".trace_buffer"]
static TRACE: SharedArea<TRACE_LEN> = SharedArea::new();

/// Kicks taken by the interrupt handler (queue bits).
static KICKS: AtomicU32 = AtomicU32::new(0);
/// SysTick periods since boot.
static TICKS: AtomicU32 = AtomicU32::new(0);

/// The wait for Linux's `DRIVER_OK`, in SysTick periods (2^24 cycles,
/// about 42 ms at 400 MHz): a look every period, a trace line every 240
/// (about 10 s) while Linux keeps the remote waiting.
const HOST_TIMING: PollTiming = PollTiming {
    interval: 1,
    patience: 240,
};
/// Control messages taken by the interrupt handler ([`ctl`] bits).
static CONTROL: AtomicU32 = AtomicU32::new(0);
/// Held while the core must not sleep deeply (or accept a suspend).
static WAKE: WakeLock = WakeLock::new();

/// Bits of [`CONTROL`].
mod ctl {
    pub const ECHO_REQUEST: u32 = 1 << 0;
    pub const SUSPEND: u32 = 1 << 1;
    pub const SHUTDOWN: u32 = 1 << 2;
    pub const OTHER: u32 = 1 << 3;
}

struct MailboxIsr {
    irq: Irq<Mmio32>,
    kicks: KickRx<Queue<Mmio32, LINUX_TO_M4F, Rx>>,
}

static MAILBOX_ISR: Mutex<RefCell<Option<MailboxIsr>>> = Mutex::new(RefCell::new(None));

/// Queue 0, M4F to Linux: kicks and control replies.
type ToLinux = Queue<Mmio32, 0, Tx>;

/// One interrupt vector: a handler, or 0 for a reserved entry.
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
pub static __INTERRUPTS: [Vector; MAILBOX_IRQ as usize + 1] = {
    let mut v = [Vector {
        handler: DefaultHandler,
    }; MAILBOX_IRQ as usize + 1];
    v[MAILBOX_IRQ as usize] = Vector {
        handler: MAILBOX0_USER2,
    };
    v
};

/// Mailbox cluster 0, user 2 (NVIC 50): acknowledges what it reports, drains
/// queue 1 (so the level event drops), keeps kicks in [`KICKS`] and control
/// words in [`CONTROL`].
#[no_mangle]
pub extern "C" fn MAILBOX0_USER2() {
    critical_section::with(|cs| {
        if let Some(isr) = MAILBOX_ISR.borrow_ref_mut(cs).as_mut() {
            let events = isr.irq.on_interrupt();
            if !events.has(LINUX_TO_M4F, Event::DataAvailable) {
                return;
            }
            // A foreign word is counted by the receiver and dropped.
            if let Ok(set) = isr.kicks.take_pending() {
                KICKS.fetch_or(set.bits(), Ordering::AcqRel);
            }
            while let Some(c) = isr.kicks.take_control() {
                let bit = match c {
                    ControlEvent::Known(RpMbox::EchoRequest) => ctl::ECHO_REQUEST,
                    ControlEvent::Known(m) if m.is_suspend_request() => ctl::SUSPEND,
                    ControlEvent::Known(RpMbox::Shutdown) => ctl::SHUTDOWN,
                    _ => ctl::OTHER,
                };
                CONTROL.fetch_or(bit, Ordering::AcqRel);
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
struct MailboxIrq;

// SAFETY: 50 is the M4F's NVIC input for cluster 0 user 2
// (am62x-mailbox.md §3.1), and the vector table above has that entry.
unsafe impl cortex_m::interrupt::InterruptNumber for MailboxIrq {
    fn number(self) -> u16 {
        MAILBOX_IRQ
    }
}

/// A window over a static or a reserved region.
///
/// # Safety
///
/// `base..base + len` is memory reached only through this window on this
/// core, valid for as long as the program runs.
unsafe fn window(base: *mut u8, len: usize, peer: u64) -> Option<RawRegion<Coherent>> {
    // SAFETY: forwarded from this function's contract; `Coherent` because
    // the M4F has no data cache.
    unsafe { RawRegion::new(NonNull::new(base)?, len, peer, Coherent) }.ok()
}

/// Sleeps until the next interrupt, deeply if the wake lock allows and
/// `shallow` is false (a doorbell owed to the peer, or a wait that only
/// SysTick may end).
fn idle(scb: &mut SCB, shallow: bool) {
    cortex_m::interrupt::free(|_| {
        if KICKS.load(Ordering::Acquire) == 0 && CONTROL.load(Ordering::Acquire) == 0 {
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

fn park(scb: &mut SCB) -> ! {
    loop {
        idle(scb, false);
    }
}

/// Answers the control messages the interrupt handler set aside. Returns
/// `false` when Linux asked the core to shut down.
fn answer_control(
    to_linux: &SharedTx<ToLinux>,
    busy: bool,
    log: &mut TraceLog<'_, RawRegion<Coherent>>,
) -> bool {
    let pending = CONTROL.swap(0, Ordering::AcqRel);
    let mut reply = |m: RpMbox| {
        if to_linux
            .with(|q| q.try_send_control(m))
            .and_then(Result::ok)
            .is_none()
        {
            log.line(format_args!("am62x-m4f: could not send {m}"));
        }
    };
    if pending & ctl::ECHO_REQUEST != 0 {
        reply(RpMbox::EchoReply);
    }
    if pending & ctl::SUSPEND != 0 {
        // TI's power protocol (cache-and-wake.md §7.2): accept only when
        // nothing holds the wake lock and no echo is in progress.
        if WAKE.deep_sleep_allowed() && !busy {
            reply(RpMbox::SuspendAck);
        } else {
            reply(RpMbox::SuspendCancel);
        }
    }
    if pending & ctl::SHUTDOWN != 0 {
        // UNCERTAIN (mbox_am62x::RpMbox::Shutdown): graceful shutdown from
        // the K3 patch series; acknowledge and stop serving.
        reply(RpMbox::ShutdownAck);
        return false;
    }
    true
}

#[entry]
fn main() -> ! {
    let Some(mut cp) = cortex_m::Peripherals::take() else {
        loop {
            cortex_m::asm::wfi();
        }
    };

    // SAFETY: each static or reserved region below is line-aligned and only
    // reached through its window; the DDR window is Linux's DMA pool for
    // this core, shared with Linux only.
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
    log.line(format_args!(
        "am62x-m4f: up, rpmsg over mailbox cluster 0 as user 2"
    ));
    let mut boot =
        match RemoteBoot::start_at(&table, 0, VDEV, &shared, Profile::Linux, HOST_TIMING, 0) {
            Ok(boot) => boot,
            Err(e) => {
                log.line(format_args!("am62x-m4f: resource table: {e}"));
                park(&mut cp.SCB);
            }
        };
    log.line(format_args!(
        "am62x-m4f: status at boot: {:?}",
        boot.host().found()
    ));

    // The mailbox: never reset the shared cluster (§5 item 1); enable only
    // this user's NEWMSG for queue 1 (§5 item 2).
    let Some(base) = NonNull::new(MAILBOX0_BASE as *mut u32) else {
        park(&mut cp.SCB);
    };
    // SAFETY: cluster 0 is mapped at MAILBOX0_BASE (see the UNVERIFIED note
    // above), 4-byte aligned, and this program has no other driver for user
    // 2.
    let parts = unsafe { Mbox::new_unchecked(base, M4F_USER) }.split();
    let mut irq = parts.irq;
    irq.set_owned(Events {
        data_available: 1 << LINUX_TO_M4F,
        space_available: 0,
        other: 0,
    });
    let mut from_linux = parts.q1.into_rx();
    if from_linux.listen(Event::DataAvailable).is_err() {
        park(&mut cp.SCB);
    }
    critical_section::with(|cs| {
        MAILBOX_ISR.borrow(cs).replace(Some(MailboxIsr {
            irq,
            kicks: KickRx::new(from_linux, DRAIN),
        }));
    });
    let to_linux = SharedTx::new(parts.q0.into_tx());
    // SAFETY: the handler only touches MAILBOX_ISR (behind a critical
    // section) and two atomics.
    unsafe { NVIC::unmask(MailboxIrq) };
    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(0x00FF_FFFF);
    cp.SYST.clear_current();
    cp.SYST.enable_interrupt();
    cp.SYST.enable_counter();

    let vrings = loop {
        if !answer_control(&to_linux, false, &mut log) {
            park(&mut cp.SCB);
        }
        // The status byte decides, looked at on every SysTick (shallow
        // sleep: SysTick stops in a deep one): Linux's start kick may
        // predate this boot.
        match boot.poll(&table, ticks()) {
            Ok(HostPoll::Ready(v)) => break v,
            Ok(HostPoll::Waiting { .. }) => idle(&mut cp.SCB, true),
            Err(Error::NotReady) => {
                log.line(format_args!("am62x-m4f: still waiting for DRIVER_OK"));
            }
            Err(e) => {
                log.line(format_args!("am62x-m4f: resource table: {e}"));
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
                log.line(format_args!("am62x-m4f: {e}"));
                park(&mut cp.SCB);
            }
        };
    let kick = Patient::<_, RawId>::new(&to_linux, KICK_SPINS);
    let mut storage = Storage::<2>::new();
    let mut link = Link::new(rings, kick, &mut storage);
    let Ok(mut echo) = EchoService::new(&mut link) else {
        park(&mut cp.SCB);
    };
    log.line(format_args!(
        "am62x-m4f: vrings at {:#x}/{:#x}, {} entries; echo on rpmsg-tty and rpmsg-raw",
        vrings[0].da, vrings[1].da, vrings[0].num
    ));

    let (mut tx, mut rx) = link.split();
    let mut guard = MaybeWakeGuard::new(&WAKE);
    let mut busy = true;
    loop {
        if !answer_control(&to_linux, busy, &mut log) {
            log.line(format_args!("am62x-m4f: shut down by Linux"));
            park(&mut cp.SCB);
        }
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
                        "am62x-m4f: link failed, waiting for a reset: {e}"
                    ));
                    park(&mut cp.SCB);
                }
            }
            continue;
        }
        tx.flush();
        idle(&mut cp.SCB, tx.owes_doorbell());
    }
}

/// Panics (none is reachable from Linux's input) are reported in the trace
/// buffer (`trace0` in remoteproc's debugfs); then the core stops.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: the trace static; the main loop's window is never used again.
    if let Some(trace) = unsafe { window(TRACE.as_ptr(), TRACE_LEN, u64::from(TRACE_DA)) } {
        TraceLog::append(&trace).line(format_args!("am62x-m4f: panic: {info}"));
    }
    cortex_m::interrupt::disable();
    loop {
        cortex_m::asm::wfi();
    }
}
