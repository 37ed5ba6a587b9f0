//! Allwinner V853 XuanTie E907 remote firmware: rpmsg with Linux (on the
//! Cortex-A7) over the msgbox, echo endpoints `rpmsg-tty` and `rpmsg-raw`.
//!
//! What Linux needs, and where it is here (sheets in shared/docs/hw):
//!
//! - **Resource table** in `.resource_table` (rpmsg-wire.md §3): a trace
//!   buffer and the rpmsg vdev with two vrings at the board's
//!   `vdev0vring0`/`vdev0vring1` carveouts (v853-msgbox.md §4: 0x4704_0000
//!   and 0x4706_0000, buffers at 0x4700_0000, device address = physical).
//! - **msgbox, channel 0** (v853-msgbox.md §3, §4; `mboxes = <&msgbox 0>`):
//!   the E907 reads its own block (0x0602_0000) and writes the A7's
//!   (0x0300_3000); a kick is the raw vring id both ways.
//! - **Caches**: the E907 has a data cache the vendor BSP enables
//!   (cache-and-wake.md §4), so every window uses the E907's
//!   clean/invalidate-by-address instructions ([`E907`]); the rings and
//!   buffers get the maintenance `vring` and `rpmsg` do, the table is
//!   invalidated before each read, the trace buffer cleaned after each
//!   write.
//! - **Start-up** (rpmsg-wire.md §2.1, §3.3): [`RemoteBoot`] clears the vdev
//!   status only if it is a previous session's (a late boot keeps Linux's
//!   `DRIVER_OK`), polls for `DRIVER_OK` on every idle pass, never asleep
//!   (Linux's start kick may predate this boot; OpenAMP sends none), then
//!   the vrings are read back, the buffers found, the services announced.
//!
//! **The msgbox interrupt on the E907 side is not known** (v853-msgbox.md
//! §1 and §7: the E907's IRQ number for its msgbox block was not found). So
//! [`MSGBOX_IRQ_ROUTED`] is `false`: the idle loop services the msgbox
//! itself (the same [`service_msgbox`] the machine-external handler runs)
//! and never sleeps. With the number known and the E907's interrupt
//! controller set up for it, set the constant: the idle loop then sleeps in
//! `wfi`, deeply only when the [`WakeLock`] allows it.
#![no_std]
#![no_main]

use core::cell::RefCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};

use critical_section::Mutex;
use fw_common::doorbell::Patient;
use fw_common::echo::EchoService;
use fw_common::mem::{LineAligned, SharedArea};
use fw_common::trace::TraceLog;
use ipc_traits::cache::E907;
use ipc_traits::mailbox::{Event, InterruptSource, Listen, NotifyRx, RawId};
use ipc_traits::power::{MaybeWakeGuard, WakeLock};
use ipc_traits::regs::Mmio32;
use ipc_traits::shm::RawRegion;
use msgbox_v853::registers::Processor;
use msgbox_v853::{Interrupts, Msgbox, NotifyReceiver, RPMSG_CHANNEL};
use riscv::interrupt::Interrupt;
use rpmsg::boot::{Profile, RemoteBoot};
use rpmsg::link::{Link, Storage};
use rpmsg::rings::RemoteTables;
use rpmsg::rsc_table::{
    table_size, HostPoll, PollTiming, ResourceTable, TableBuilder, VdevAt, VringSpec,
    VIRTIO_RPMSG_F_NS,
};
use rpmsg::Error;
use vring::Legacy;

/// The wait for Linux's `DRIVER_OK`, in idle passes (the E907 has no
/// timer set up here, so time is counted in passes of [`idle`] that do not
/// sleep): a look every pass, a trace line every 2^22 passes.
const HOST_TIMING: PollTiming = PollTiming {
    interval: 1,
    patience: 1 << 22,
};

/// Whether the msgbox interrupt reaches this core as a machine external
/// interrupt. UNVERIFIED, so `false`: see the crate docs.
const MSGBOX_IRQ_ROUTED: bool = false;

/// The board's carveouts (v853-msgbox.md §4): buffers 0x4700_0000
/// (256 KiB), vring 0 at 0x4704_0000 and vring 1 at 0x4706_0000 (128 KiB
/// each). One window covers all three.
const SHARED_BASE: usize = 0x4700_0000;
const SHARED_LEN: usize = 0x8_0000;
const VRING0_DA: u32 = 0x4704_0000;
const VRING1_DA: u32 = 0x4706_0000;
const VRING_ALIGN: u32 = 0x1000;
/// 256 entries: Linux's 512 buffers of 512 bytes fill the 256 KiB carveout.
const VRING_NUM: u32 = 256;
const NUM: usize = 256;

/// The trace buffer (fixed by `memory.x`).
const TRACE_DA: u32 = 0x4810_0000;
const TRACE_LEN: usize = 4096;

/// Retries of a kick while the 8-word FIFO is full.
const KICK_SPINS: u32 = 10_000;
/// Words drained per msgbox service.
const DRAIN: u32 = 8;

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

#[link_section = ".resource_table"]
#[used]
static RESOURCE_TABLE: LineAligned<ResourceTable<TABLE>> = LineAligned(BUILT.finish());

/// Where the build put the vdev: the boot reads only what the host
/// writes into it, without parsing the table.
const VDEV: VdevAt<TABLE> = BUILT.vdev_at();

#[link_section = ".trace_buffer"]
static TRACE: SharedArea<TRACE_LEN> = SharedArea::new();

/// Kicks taken by [`service_msgbox`] (queue bits).
static KICKS: AtomicU32 = AtomicU32::new(0);
/// Held while the core must not sleep deeply.
static WAKE: WakeLock = WakeLock::new();

struct MsgboxIsr {
    irq: Interrupts<Mmio32>,
    kicks: NotifyReceiver<Mmio32, RPMSG_CHANNEL>,
}

static MSGBOX_ISR: Mutex<RefCell<Option<MsgboxIsr>>> = Mutex::new(RefCell::new(None));

/// Services the msgbox: acknowledges what it reports, drains channel 0's
/// FIFO (so its pending bit can clear, v853-msgbox.md §2) and leaves the
/// kicks in [`KICKS`].
fn service_msgbox() {
    critical_section::with(|cs| {
        if let Some(isr) = MSGBOX_ISR.borrow_ref_mut(cs).as_mut() {
            let events = isr.irq.on_interrupt();
            let polled = !MSGBOX_IRQ_ROUTED;
            if polled || events.has(RPMSG_CHANNEL, Event::DataAvailable) {
                // A foreign word is counted by the receiver and dropped.
                if let Ok(set) = isr.kicks.take_pending() {
                    KICKS.fetch_or(set.bits(), Ordering::AcqRel);
                }
            }
        }
    });
}

/// The msgbox interrupt, once routed (see [`MSGBOX_IRQ_ROUTED`]).
#[riscv_rt::core_interrupt(Interrupt::MachineExternal)]
fn machine_external() {
    service_msgbox();
}

/// A window over a static or a reserved region, with E907 cache
/// maintenance.
///
/// # Safety
///
/// `base..base + len` is memory reached only through this window on this
/// core, valid for as long as the program runs; the core is an E907 in
/// machine mode.
unsafe fn window(base: *mut u8, len: usize, peer: u64) -> Option<RawRegion<E907>> {
    // SAFETY: forwarded from this function's contract (E907 in M-mode for
    // the cache instructions; the window's memory for RawRegion).
    unsafe { RawRegion::new(NonNull::new(base)?, len, peer, E907::new()) }.ok()
}

/// Waits for the next kick: sleeps in `wfi` when the msgbox interrupt is
/// routed, the wake lock allows it and `poll` is false, otherwise services
/// the msgbox and spins a little.
fn idle(poll: bool) {
    // A doorbell still owed to the peer, or a wait for the host (which may
    // send no kick), keeps the core polling: nothing else ends a `wfi`.
    if MSGBOX_IRQ_ROUTED && WAKE.deep_sleep_allowed() && !poll {
        critical_section::with(|_| {
            if KICKS.load(Ordering::Acquire) == 0 {
                // `wfi` ends on a pending interrupt even while masked.
                riscv::asm::wfi();
            }
        });
    } else {
        service_msgbox();
        for _ in 0..256 {
            core::hint::spin_loop();
        }
    }
}

fn park() -> ! {
    loop {
        idle(false);
    }
}

#[riscv_rt::entry]
fn main() -> ! {
    // SAFETY: each static or reserved region below is line-aligned and only
    // reached through its window; the DDR window is the board's carveouts,
    // shared with Linux only; this is an E907 in machine mode.
    let (Some(table), Some(trace), Some(shared)) = (unsafe {
        (
            window(
                RESOURCE_TABLE.0.as_ptr(),
                LineAligned::<ResourceTable<TABLE>>::SIZE,
                0,
            ),
            window(TRACE.as_ptr(), TRACE_LEN, u64::from(TRACE_DA)),
            window(SHARED_BASE as *mut u8, SHARED_LEN, SHARED_BASE as u64),
        )
    }) else {
        park();
    };
    let mut log = TraceLog::new(&trace);
    log.line(format_args!("v853-e907: up, rpmsg over msgbox channel 0"));
    let mut boot =
        match RemoteBoot::start_at(&table, 0, VDEV, &shared, Profile::Linux, HOST_TIMING, 0) {
            Ok(boot) => boot,
            Err(e) => {
                log.line(format_args!("v853-e907: resource table: {e}"));
                park();
            }
        };
    log.line(format_args!(
        "v853-e907: status at boot: {:?}",
        boot.host().found()
    ));

    let (Some(local), Some(remote)) = (
        NonNull::new(Processor::Riscv.block_base() as *mut u32),
        NonNull::new(Processor::Arm.block_base() as *mut u32),
    ) else {
        park();
    };
    // SAFETY: both msgbox blocks are mapped at their physical addresses
    // (no MMU), the msgbox clock is on (Linux's remoteproc starts the E907
    // after enabling it, v853-msgbox.md §3), and this is the only driver.
    let mut msgbox = unsafe { Msgbox::new_unchecked(local, remote) };
    msgbox.disable_interrupts();
    let parts = msgbox.split();
    let mut rx0 = parts.rx0;
    if rx0.listen(Event::DataAvailable).is_err() {
        park();
    }
    critical_section::with(|cs| {
        MSGBOX_ISR.borrow(cs).replace(Some(MsgboxIsr {
            irq: parts.irq,
            kicks: rx0.into_notify_rx(DRAIN),
        }));
    });
    if MSGBOX_IRQ_ROUTED {
        // SAFETY: the handler only touches MSGBOX_ISR (behind a critical
        // section) and an atomic.
        unsafe {
            riscv::register::mie::set_mext();
            riscv::interrupt::enable();
        }
    }

    // The status byte decides, looked at on every pass: Linux's start kick
    // may predate this boot.
    let mut passes = 0u64;
    let vrings = loop {
        match boot.poll(&table, passes) {
            Ok(HostPoll::Ready(v)) => break v,
            Ok(HostPoll::Waiting { .. }) => {
                idle(true);
                passes += 1;
            }
            Err(Error::NotReady) => {
                log.line(format_args!("v853-e907: still waiting for DRIVER_OK"));
            }
            Err(e) => {
                log.line(format_args!("v853-e907: resource table: {e}"));
                park();
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
                log.line(format_args!("v853-e907: {e}"));
                park();
            }
        };
    let kick = Patient::<_, RawId>::new(parts.tx0, KICK_SPINS);
    let mut storage = Storage::<2>::new();
    let mut link = Link::new(rings, kick, &mut storage);
    let Ok(mut echo) = EchoService::new(&mut link) else {
        park();
    };
    log.line(format_args!(
        "v853-e907: vrings at {:#x}/{:#x}, {} entries; echo on rpmsg-tty and rpmsg-raw",
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
                        "v853-e907: link failed, waiting for a reset: {e}"
                    ));
                    park();
                }
            }
            continue;
        }
        tx.flush();
        idle(tx.owes_doorbell());
    }
}

/// Panics (none is reachable from Linux's input) are reported in the trace
/// buffer (`trace0` in remoteproc's debugfs); then the core stops.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: the trace static; the main loop's window is never used again;
    // this is an E907 in machine mode.
    if let Some(trace) = unsafe { window(TRACE.as_ptr(), TRACE_LEN, u64::from(TRACE_DA)) } {
        TraceLog::append(&trace).line(format_args!("v853-e907: panic: {info}"));
    }
    riscv::interrupt::disable();
    loop {
        riscv::asm::wfi();
    }
}
