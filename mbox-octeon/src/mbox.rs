//! The peripheral singleton, its parts and the interrupt entry.

use core::ptr::NonNull;

use ipc_traits::mailbox::{Events, InterruptSource, Mailbox};
use ipc_traits::regs::{Mmio64, Regs64};

use crate::channel::{read_mailbox, Inbox, Outbox};
use crate::registers::{self, MBOX};
use crate::CoreId;

/// The CIU mailbox as seen from one core: its own mailbox (to receive), the
/// peers' `CIU_MBOX_SET` registers (to ring), and its IP2 mailbox enables.
///
/// Create one per core, with the index of the core the code runs on (on
/// silicon, `cvmx_get_core_num()`). Split it into owned bits with
/// [`Mailbox::split`].
///
/// # Examples
///
/// ```
/// use ipc_traits::mailbox::Mailbox;
/// use mbox_octeon::{CoreId, Mbox};
/// use mbox_octeon::sim::Ciu;
///
/// let ciu = Ciu::new(2);
/// let mbox = Mbox::new(ciu.core(0), CoreId::new(0).unwrap());
/// let parts = mbox.split();
/// let mbox = Mbox::join(parts);
/// assert_eq!(mbox.core().index(), 0);
/// ```
#[derive(Debug)]
pub struct Mbox<R> {
    regs: R,
    core: CoreId,
}

impl<R: Regs64> Mbox<R> {
    /// The mailbox unit of `core` over the CIU register view `regs` (offsets
    /// from the CIU CSR base, [`registers::CIU_BASE`]).
    ///
    /// `core` must be the core this code runs on: the driver takes the
    /// doorbells of `core`'s mailbox.
    pub const fn new(regs: R, core: CoreId) -> Self {
        Self { regs, core }
    }

    /// The core whose mailbox this is.
    pub const fn core(&self) -> CoreId {
        self.core
    }

    /// Clears every bit of this core's mailbox and disables both mailbox
    /// halves on its IP2 line, as Linux does for its own half before it
    /// requests the IRQ (octeon-ciu-mbox.md §4 `octeon_prepare_cpus`).
    ///
    /// Call it before [`Mailbox::split`] if an earlier program may have left
    /// bits set. Uses the W1C aliases only.
    pub fn reset_mailbox(&mut self) {
        let core = self.core.index();
        self.regs.write(
            registers::mbox_clr(core),
            MBOX::BITS.val(u64::from(u32::MAX)).value,
        );
        self.regs.write(
            registers::int_en0_w1c(registers::ip2_line(core)),
            registers::summary_bits_of(u32::MAX),
        );
    }
}

impl Mbox<Mmio64> {
    /// The mailbox unit of `core` over the CIU CSRs mapped at `base`
    /// (normally [`registers::CIU_BASE`], the XKPHYS I/O address).
    ///
    /// # Safety
    ///
    /// 1. The CIU CSR block is mapped at `base` for
    ///    [`registers::CIU_WINDOW_LEN`] bytes and stays mapped while the
    ///    driver or any handle split from it exists.
    /// 2. `core` is the core this code runs on, and no other `Mbox` exists
    ///    for it (each bit has one owner).
    #[allow(unsafe_code)]
    pub unsafe fn new_unchecked(base: NonNull<u64>, core: CoreId) -> Self {
        // SAFETY: (1) is this function's contract (1); the CSRs are 64-bit
        // and `base` is the 8-aligned CIU base; (3) of `Mmio64::new` is this
        // function's contract (2).
        let regs = unsafe { Mmio64::new(base, registers::CIU_WINDOW_LEN) };
        Self::new(regs, core)
    }
}

/// The owned parts of a [`Mbox`] (destructure freely; [`Mailbox::join`]
/// needs all of them back).
#[derive(Debug)]
pub struct MboxParts<R> {
    /// This core's 32 mailbox bits, unclaimed.
    pub inbox: Inbox,
    /// The 32 doorbell bits towards peers, unclaimed.
    pub outbox: Outbox,
    /// The interrupt entry (and the register view the bits are claimed
    /// with).
    pub irq: MboxIrq<R>,
}

impl<R: Regs64> Mailbox for Mbox<R> {
    type Parts = MboxParts<R>;

    fn split(self) -> MboxParts<R> {
        MboxParts {
            inbox: Inbox::new(),
            outbox: Outbox::new(),
            irq: MboxIrq {
                regs: self.regs,
                core: self.core,
                owned: 0,
                spurious: 0,
                stray_bits: 0,
            },
        }
    }

    fn join(parts: MboxParts<R>) -> Self {
        let MboxParts { inbox, outbox, irq } = parts;
        let (_, _) = (inbox, outbox);
        Self {
            regs: irq.regs,
            core: irq.core,
        }
    }
}

/// The interrupt entry of a core's mailbox (its IP2 line).
///
/// It knows which bits are owned (claimed with [`InBit::into_rx`]) and
/// keeps counters of what it found.
///
/// [`InBit::into_rx`]: crate::InBit::into_rx
#[derive(Debug)]
pub struct MboxIrq<R> {
    regs: R,
    core: CoreId,
    owned: u32,
    spurious: u32,
    stray_bits: u32,
}

impl<R: Regs64> MboxIrq<R> {
    pub(crate) fn regs(&self) -> R {
        self.regs
    }

    pub(crate) fn register(&mut self, mask: u32) {
        self.owned |= mask;
    }

    pub(crate) fn unregister(&mut self, mask: u32) {
        self.owned &= !mask;
    }

    /// The core whose mailbox this is.
    #[must_use]
    pub fn core(&self) -> CoreId {
        self.core
    }

    /// The bits claimed as receive doorbells.
    #[must_use]
    pub fn owned(&self) -> u32 {
        self.owned
    }

    /// How many [`on_interrupt`](InterruptSource::on_interrupt) calls found
    /// no enabled bit set.
    #[must_use]
    pub fn spurious(&self) -> u32 {
        self.spurious
    }

    /// How many set bits without an owner were acknowledged (each counted
    /// once per time it was found set).
    #[must_use]
    pub fn stray_bits(&self) -> u32 {
        self.stray_bits
    }

    /// The mailbox bits whose half is enabled on the IP2 line (reads
    /// `CIU_INT(2·core)_EN0`).
    pub fn listening(&mut self) -> u32 {
        let en0 = self
            .regs
            .read(registers::int_en0(registers::ip2_line(self.core.index())));
        registers::mailbox_bits_enabled_by(en0)
    }

    /// The whole mailbox value, owned or not (reads `CIU_MBOX_CLR(core)`,
    /// which has no side effect).
    pub fn pending(&mut self) -> u32 {
        read_mailbox(self.regs, self.core)
    }
}

/// Reports the set bits of the enabled halves.
///
/// Reads `EN0` of the IP2 line, then the mailbox once. Owned bits are
/// reported in [`Events::data_available`] (bit N = mailbox bit N) and *not*
/// acknowledged: the bit is the doorbell itself, and its owner clears it with
/// `take_pending` (the line stays high until then, as for a word FIFO that
/// still holds data). Bits without an owner (Linux IPI bits 0..=3, or bits
/// nobody claimed) are acknowledged at once with one write-1-to-clear of
/// exactly those bits, counted in [`MboxIrq::stray_bits`] and reported in
/// [`Events::other`] (bit N = mailbox bit N). A call that finds nothing is
/// counted in [`MboxIrq::spurious`].
///
/// *NOTE*: an ISR that does not take the owned bits itself must mask the
/// half (`unlisten`) before returning, or the level-sensitive line
/// (octeon-ciu-mbox.md §3.1) re-enters it at once.
impl<R: Regs64> InterruptSource for MboxIrq<R> {
    fn on_interrupt(&mut self) -> Events {
        let enabled = self.listening();
        let seen = read_mailbox(self.regs, self.core) & enabled;
        if seen == 0 {
            self.spurious = self.spurious.saturating_add(1);
            return Events::NONE;
        }
        let stray = seen & !self.owned;
        if stray != 0 {
            self.regs.write(
                registers::mbox_clr(self.core.index()),
                MBOX::BITS.val(u64::from(stray)).value,
            );
            self.stray_bits = self.stray_bits.saturating_add(stray.count_ones());
        }
        self.regs.io_rmb();
        Events {
            data_available: seen & self.owned,
            space_available: 0,
            other: stray,
        }
    }
}
