//! The smallest useful remote: announce one service, echo what arrives on
//! its endpoint, over the i.MX8M Messaging Unit, booted by Linux through
//! the resource table. No logging, no `core::fmt`, no interrupt (the loop
//! polls the rings), panics stop the core.
//!
//! This image is the size benchmark of the library (`build-all.sh`
//! prints `bench code_text_remote` and `bench code_text_image` from it,
//! firmware/README.md "Size"). It runs on the link core with two halves
//! ([`rpmsg::link`]): one bound endpoint, a one-pass copying receive,
//! no name-service reception, queues, liveness or statistics layer, and a
//! loop that never returns.
#![no_std]
#![no_main]

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m_rt::entry;
use rpmsg::boot::{Profile, RemoteBoot};
use rpmsg::ipc_traits::cache::Coherent;
use rpmsg::ipc_traits::mailbox::Spins;
use rpmsg::ipc_traits::shm::RawRegion;
use rpmsg::link::{Link, Sent, Storage};
use rpmsg::rings::RemoteTables;
use rpmsg::rsc_table::{
    table_size, PollTiming, ResourceTable, TableBuilder, VdevAt, VringSpec, VIRTIO_RPMSG_F_NS,
};
use rpmsg::soc::imx8::backend::Mu;
use rpmsg::vring::Legacy;
use rpmsg::wire::ADDR_ANY;
use rpmsg::Error;

/// MU side B, Cortex-M4 view (imx8-mu.md §1).
const MU_B_BASE: usize = 0x30AB_0000;
/// The board's reserved DDR: both vrings and Linux's buffers (imx8-mu.md
/// §5); the M4 sees it at the addresses Linux uses.
const SHARED_BASE: usize = 0xB800_0000;
const SHARED_LEN: usize = 0x50_0000;
/// Vring entries (rpmsg-lite imx8mm's value, imx8-mu.md §6).
const NUM: usize = 256;
const TABLE: usize = table_size(0, 0, 1, 2);

const BUILT: TableBuilder<TABLE> = TableBuilder::<TABLE>::new(1).rpmsg_vdev(
    VIRTIO_RPMSG_F_NS,
    [
        VringSpec::new(0xB800_0000, 0x1000, NUM as u32, 0),
        VringSpec::new(0xB800_8000, 0x1000, NUM as u32, 1),
    ],
);

#[link_section = ".resource_table"]
#[used]
static RESOURCE_TABLE: ResourceTable<TABLE> = BUILT.finish();

/// Where the build put the vdev: the boot reads only what Linux writes
/// into it, without parsing the table.
const VDEV: VdevAt<TABLE> = BUILT.vdev_at();

/// The rings' per-entry tables (`.bss`: no image bytes), lent to the
/// rings so the ring values stay small.
static RING_TABLES: RemoteTables<NUM> = RemoteTables::new();

/// The receive buffer: a `static`, so it sits in `.bss`, which the reset
/// code zeroes (a local `[0u8; 496]` is zeroed at run time by a `memset`
/// call, the code of which this image otherwise does without).
static RX_BUF: Lent<[u8; 496]> = Lent::new([0; 496]);

/// A `static` value lent once, as `&'static mut` (no `static mut`).
struct Lent<T> {
    taken: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached only through the one `&mut` that `take`
// hands out (its swap lets a single caller through), so sharing the cell
// shares no access to the value; `T: Send` because that reference may go
// to another context.
unsafe impl<T: Send> Sync for Lent<T> {}

impl<T> Lent<T> {
    const fn new(value: T) -> Self {
        Self {
            taken: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, the first time; `None` after.
    #[expect(
        clippy::mut_from_ref,
        reason = "the swap hands the one `&mut` out once, whoever asks"
    )]
    fn take(&'static self) -> Option<&'static mut T> {
        if self.taken.swap(true, Ordering::Acquire) {
            return None;
        }
        // SAFETY: the swap above found the value not lent and marked it
        // lent, for good: this is the only reference to it ever made.
        Some(unsafe { &mut *self.value.get() })
    }
}

#[entry]
fn main() -> ! {
    // Whatever fails, the core stops: Linux sees no announcement.
    let _stopped: Result<(), Error> = echo();
    loop {
        cortex_m::asm::wfi();
    }
}

fn echo() -> Result<(), Error> {
    let (Some(mu), Some(shared), Some(table), Some(buf)) = (
        NonNull::new(MU_B_BASE as *mut u32),
        NonNull::new(SHARED_BASE as *mut u8),
        NonNull::new(RESOURCE_TABLE.as_ptr()),
        RX_BUF.take(),
    ) else {
        return Ok(());
    };
    // SAFETY: MU side B is mapped at MU_B_BASE and this is its only driver;
    // the reserved DDR is shared with Linux only and reached through this
    // window alone; the resource table is a static reached through its
    // window alone.
    let (mu, mut shm, table) = unsafe {
        (
            Mu::new_unchecked(mu),
            RawRegion::new(shared, SHARED_LEN, SHARED_BASE as u64, Coherent)?,
            RawRegion::new(table, TABLE, 0, Coherent)?,
        )
    };
    let kick = mu.split().tx1.into_rpmsg_notify();
    let timing = PollTiming {
        interval: 1,
        patience: u64::MAX,
    };
    let boot = RemoteBoot::start_at(&table, 0, VDEV, &shm, Profile::Linux, timing, 0)?;
    #[expect(
        clippy::question_mark,
        reason = "`?` moves the vrings through a byte-aligned temporary: a memcpy call, which links memcpy"
    )]
    let vrings = match boot.wait(&table, Spins::new(u32::MAX)) {
        Ok(v) => v,
        Err(e) => return Err(e),
    };
    let rings = boot.rings_in::<_, _, Legacy, NUM>(&table, &mut shm, vrings, &RING_TABLES)?;
    let mut storage = Storage::<1>::new();
    let mut link = Link::new(rings, kick, &mut storage);
    let ep = link.bind(ADDR_ANY)?;
    let (mut tx, mut rx) = link.split();
    // Announced once a transmit buffer is free (Linux posts them all at
    // DRIVER_OK, so at once).
    while tx.announce(&ep, "rpmsg-tty")? == Sent::NoBuffer {}
    loop {
        let Some(m) = rx.try_recv(buf)? else {
            continue;
        };
        if m.dst != ep.addr() {
            continue;
        }
        let echo = buf.get(..m.len).unwrap_or(&[]);
        // No free transmit buffer: Linux returns one as soon as it reads.
        while tx.try_send(&ep, m.src, echo)? == Sent::NoBuffer {}
    }
}

/// Stops the core; nothing is formatted.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    cortex_m::interrupt::disable();
    loop {
        cortex_m::asm::wfi();
    }
}
