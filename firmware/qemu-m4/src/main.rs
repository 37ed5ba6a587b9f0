//! Emulated Cortex-M4 run (QEMU `mps2-an386`): one image holds a host and a
//! remote, each with its own rpmsg link over one RAM area, taking turns.
//!
//! The host boots the remote the way Linux remoteproc does (rings placed
//! where the resource table lets it, `DRIVER_OK`, first kick), the remote
//! finds its rings through the table, announces `rpmsg-tty` and
//! `rpmsg-raw`, logs into the table's trace buffer, and echoes
//! [`MESSAGES`] messages of every size from 0 to 496 bytes, each checked
//! byte for byte by the host. Each doorbell is a bit in memory plus a pended
//! `PendSV` exception (the "interrupt").
//!
//! During the run the host resets the device [`HOST_RESETS`] times the way
//! Linux does (status 0, rings laid out again, `DRIVER_OK`); the remote
//! follows the status byte, restarts its link and announces its services
//! again. Messages in flight at a reset are lost, and accounted for on both
//! sides.
//!
//! The result goes out through semihosting; the exit status is 0 only if
//! every message came back intact or was lost at a reset (and the remote's
//! account of the losses matches the host's), every reset happened and
//! traffic resumed after each, both services were announced after each
//! start, no validation error was counted anywhere and the trace buffer
//! holds the remote's log. A panic exits 1 (`panic-semihosting`), a hang is killed by
//! the runner's timeout.
#![no_std]
#![no_main]

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::SCB;
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::{debug, hprintln};
use fw_common::doorbell::MemDoorbell;
use fw_common::mem::{LineAligned, SharedArea};
use fw_common::pair::{self, Doorbells, PairConfig, PairReport};
use fw_common::trace::TraceLog;
use ipc_traits::cache::Coherent;
use ipc_traits::mailbox::NotifyRx;
use ipc_traits::shm::RawRegion;
use panic_semihosting as _;
use rpmsg::boot::{Placement, F_EVENT_IDX};
use rpmsg::rsc_table::{
    table_size, ResourceTable, TableBuilder, VringSpec, FW_RSC_ADDR_ANY, VIRTIO_RPMSG_F_NS,
};

/// Echoes to run.
const MESSAGES: u32 = 1000;
/// Device resets by the host during the run.
const HOST_RESETS: u32 = 3;
/// Messages the host keeps outstanding (more than the 32 buffers of a
/// direction, so the remote also runs out of transmit buffers).
const WINDOW: u32 = 40;
/// The remote's doorbell from which on `fault-corrupt` flips bytes in the
/// host's receive buffers at every doorbell (one of them holds an echo the
/// host has not read): well inside the run (with `EVENT_IDX` the remote
/// rings about 120 times in all, with flags about 1 800).
const CORRUPT_AT: u32 = 20;
/// Entries per vring (a power of two, at most the rings' capacity).
const VRING_NUM: u32 = pair::NUM as u32;
/// Linux's vring alignment (rpmsg-wire.md §1.2).
const VRING_ALIGN: u32 = 4096;
/// Where the host puts the rings and the buffer block in the shared area.
const PLACEMENT: Placement = Placement {
    vrings: [0, 0x2000],
    pool: 0x4000,
};
/// Rings plus `2 * 32` buffers of 512 bytes.
const AREA: usize = 0x4000 + 2 * 32 * 512;
/// The trace buffer: fixed by `memory.x` (the table needs a constant).
const TRACE_DA: u32 = 0x2000_0000;
const TRACE_LEN: usize = 1024;

const TABLE: usize = table_size(0, 1, 1, 2);

/// The resource table, as a firmware for Linux carries it: a trace buffer
/// and the rpmsg vdev with two vrings the host may place anywhere.
#[link_section = ".resource_table"]
#[used]
static RESOURCE_TABLE: LineAligned<ResourceTable<TABLE>> = LineAligned(
    TableBuilder::<TABLE>::new(2)
        .trace(TRACE_DA, TRACE_LEN as u32, "trace0")
        .rpmsg_vdev(
            VIRTIO_RPMSG_F_NS | F_EVENT_IDX,
            [
                VringSpec::new(FW_RSC_ADDR_ANY, VRING_ALIGN, VRING_NUM, 0),
                VringSpec::new(FW_RSC_ADDR_ANY, VRING_ALIGN, VRING_NUM, 1),
            ],
        )
        .finish(),
);

/// Rings and buffers.
static SHARED: SharedArea<AREA> = SharedArea::new();

/// The trace buffer, at [`TRACE_DA`].
#[link_section = ".trace_buffer"]
static TRACE: SharedArea<TRACE_LEN> = SharedArea::new();

static TO_REMOTE: MemDoorbell = MemDoorbell::new();
static TO_HOST: MemDoorbell = MemDoorbell::new();
/// PendSV exceptions taken (one per doorbell ring that found none pending).
static PENDSV: AtomicU32 = AtomicU32::new(0);

/// The doorbell's interrupt: the bit is already in memory; the exception
/// only has to happen (on hardware it would end a `wfi`).
#[exception]
fn PendSV() {
    PENDSV.fetch_add(1, Ordering::Relaxed);
}

fn ring_pendsv() {
    SCB::set_pendsv();
}

/// The host's doorbell hook: the PendSV "interrupt", plus the injected
/// fault of the `fault-*` features.
fn wake_host() {
    ring_pendsv();
    if cfg!(feature = "fault-lose-kicks") {
        // The interrupt is lost: the host never sees the bits.
        let _ = TO_HOST.taker().take_pending();
    }
    if cfg!(feature = "fault-corrupt") && TO_HOST.rung() >= CORRUPT_AT {
        for k in 0..VRING_NUM as usize {
            let at = PLACEMENT.pool + k * 512 + 16;
            // SAFETY: a deliberate fault: one byte inside SHARED (the pool
            // lies within AREA), written through the area's raw pointer
            // while no reference to it exists.
            unsafe {
                let p = SHARED.as_ptr().add(at);
                p.write_volatile(p.read_volatile() ^ 0x5A);
            }
        }
    }
}

/// A window over `len` bytes of a static at `ptr`.
///
/// # Safety
///
/// `ptr..ptr + len` is a static accessed only through windows, line-aligned.
unsafe fn window(ptr: *mut u8, len: usize) -> Option<RawRegion<Coherent>> {
    let base = NonNull::new(ptr)?;
    // SAFETY: forwarded from this function's contract; the peer address is
    // the address itself (host and remote share one address space).
    unsafe { RawRegion::new(base, len, ptr as usize as u64, Coherent) }.ok()
}

fn run() -> Result<PairReport, &'static str> {
    // SAFETY: the table is a line-aligned static; only these windows touch
    // it (the `.resource_table` copy is what a host would parse).
    let table = unsafe { window(RESOURCE_TABLE.0.as_ptr(), TABLE) }.ok_or("table window")?;
    // SAFETY: SHARED is line-aligned and only reached through this window.
    let shared = unsafe { window(SHARED.as_ptr(), AREA) }.ok_or("shared window")?;
    // SAFETY: TRACE is line-aligned and only reached through this window.
    let trace = unsafe { window(TRACE.as_ptr(), TRACE_LEN) }.ok_or("trace window")?;

    let mut log = TraceLog::new(&trace);
    log.line(format_args!(
        "qemu-m4 remote: booting, waiting for DRIVER_OK"
    ));
    let bells = Doorbells {
        to_remote: &TO_REMOTE,
        to_host: &TO_HOST,
        wake_remote: ring_pendsv,
        wake_host,
    };
    let config = PairConfig {
        count: MESSAGES,
        window: WINDOW,
        max_idle_rounds: 100,
        host_resets: HOST_RESETS,
        event_idx: true,
    };
    // SAFETY: the pool and buffer areas of SHARED are used by these two
    // links only.
    let result =
        unsafe { pair::run::<_, _, _, _, TABLE>(&table, &shared, PLACEMENT, bells, config) };
    match &result {
        Ok(r) => {
            log.line(format_args!(
                "qemu-m4 remote: echoed {} messages, {} host resets",
                r.echo.echoed, r.remote_restarts
            ));
        }
        Err(e) => {
            log.line(format_args!("qemu-m4 remote: failed: {e}"));
        }
    }
    result.map_err(|e| {
        hprintln!("qemu-m4: exchange failed: {}", e);
        "exchange failed"
    })
}

/// A line formatted on the stack (no allocator), to compare with the trace.
struct Line {
    buf: [u8; 64],
    len: usize,
}

impl Line {
    /// `None` if the line does not fit.
    fn new(args: core::fmt::Arguments<'_>) -> Option<Self> {
        let mut line = Self {
            buf: [0; 64],
            len: 0,
        };
        core::fmt::Write::write_fmt(&mut line, args).ok()?;
        Some(line)
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The trace buffer's text up to its NUL, as the host would show it.
fn trace_text(out: &mut [u8; TRACE_LEN]) -> &str {
    // SAFETY: a volatile-free byte copy of the whole static through its
    // UnsafeCell pointer; the trace window is gone, nothing writes it now.
    unsafe { core::ptr::copy_nonoverlapping(TRACE.as_ptr(), out.as_mut_ptr(), TRACE_LEN) };
    let end = out.iter().position(|&b| b == 0).unwrap_or(TRACE_LEN);
    core::str::from_utf8(&out[..end]).unwrap_or("<not utf-8>")
}

#[entry]
fn main() -> ! {
    hprintln!(
        "qemu-m4: host and remote on one Cortex-M4, {} echoes, {} host resets",
        MESSAGES,
        HOST_RESETS
    );
    let ok = match run() {
        Ok(r) => {
            hprintln!(
                "qemu-m4: services announced {} (rpmsg-tty, rpmsg-raw); echoes {} of {}, {} bytes, checked byte for byte",
                r.client.services,
                r.client.received,
                MESSAGES,
                r.client.bytes
            );
            hprintln!(
                "qemu-m4: host resets {} (remote saw {}, traffic resumed after {}); lost at resets {} = {} not taken by the remote + {} discarded + {} echoed, not returned",
                r.host_resets,
                r.remote_restarts,
                r.client.resumed,
                r.client.lost,
                r.remote_lost_at_reset,
                r.echo.discarded,
                r.unreturned
            );
            hprintln!(
                "qemu-m4: notifications host->remote {} ({} for returned buffers, {} while one was pending), remote->host {} ({} for returned buffers, {} while one was pending), PendSV taken {}, host tx waits {}, remote deferred {}",
                r.host_doorbells,
                r.host_return_doorbells,
                r.host_coalesced,
                r.remote_doorbells,
                r.remote_return_doorbells,
                r.remote_coalesced,
                PENDSV.load(Ordering::Relaxed),
                r.client.tx_waits,
                r.echo.deferred
            );
            hprintln!(
                "qemu-m4: validation errors {}, rounds {}",
                r.validation_errors,
                r.rounds
            );
            let mut buf = [0u8; TRACE_LEN];
            let text = trace_text(&mut buf);
            hprintln!("qemu-m4: trace0 reads: {:?}", text);
            let last = Line::new(format_args!(
                "echoed {} messages, {} host resets",
                r.echo.echoed, HOST_RESETS
            ));
            r.client.received + r.client.lost == MESSAGES
                && r.client.lost == r.remote_lost_at_reset + r.echo.discarded + r.unreturned
                && r.echo.echoed == r.client.received + r.unreturned
                && r.host_resets == HOST_RESETS
                && r.remote_restarts == HOST_RESETS
                && r.remote_link_restarts == HOST_RESETS
                && r.client.resumed == HOST_RESETS
                && r.client.services == 2 * (HOST_RESETS + 1)
                && r.validation_errors == 0
                && PENDSV.load(Ordering::Relaxed) > 0
                && text.starts_with("qemu-m4 remote: booting")
                && last.is_some_and(|l| text.contains(l.as_str()))
        }
        Err(e) => {
            hprintln!("qemu-m4: {}", e);
            false
        }
    };
    hprintln!("qemu-m4: {}", if ok { "PASS" } else { "FAIL" });
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}
