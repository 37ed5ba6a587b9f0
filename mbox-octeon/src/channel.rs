//! Doorbell bits as owned channels.
//!
//! Each of the 32 mailbox bits is a channel whose index is a const generic.
//! [`Mbox::split`](crate::Mbox) hands out two banks of unclaimed bits:
//!
//! - [`Inbox`]: `bitN` is bit N of **this core's** mailbox. Claiming it
//!   ([`InBit::into_rx`]) gives an [`RxBit`] that takes doorbells rung by any
//!   core, and registers the bit with the interrupt entry ([`MboxIrq`]), so
//!   the entry knows which bits have an owner.
//! - [`Outbox`]: `bitN` is the right to ring bit N of a **peer's** mailbox.
//!   Claiming it ([`OutBit::into_tx`]) for one peer core gives a [`TxBit`].
//!
//! Bits 0..=3 are Linux's IPIs (octeon-ciu-mbox.md §4): claiming them is a
//! compile error, because [`Bit<N>`](Bit) implements [`Claimable`] only for
//! N in 4..=31.
//!
//! # Design notes
//!
//! Not enforced by types: that an [`InBit`] is claimed with the interrupt
//! entry of the same [`Mbox`](crate::Mbox) (only possible to get wrong when
//! one program holds several `Mbox` values, as the simulation's tests do),
//! and which bits a *Linux* peer dispatches (4..=7 through
//! `octeon_request_ipi_handler`, see [`registers::LINUX_DISPATCHABLE_BITS`]).
#![deny(unsafe_code)]

use ipc_traits::mailbox::{retry, Budget, ErrorType, Event, Listen};
use ipc_traits::regs::Regs64;
use tock_registers::LocalRegisterCopy;

use crate::registers::{self, MBOX};
use crate::{CoreId, Error, MboxIrq};

/// A mailbox bit number at the type level (the index of a channel). Only
/// named in bounds (`Bit<N>: Claimable`); never built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bit<const N: u8> {
    _private: (),
}

mod sealed {
    pub trait Sealed {}
}

/// Bits a driver may claim: 4..=31.
///
/// Bits 0, 1 and 2 carry Linux's `SMP_RESCHEDULE_YOURSELF`,
/// `SMP_CALL_FUNCTION` and `SMP_ICACHE_FLUSH` IPIs, and bit 3 is reserved
/// under `CONFIG_KEXEC` (octeon-ciu-mbox.md §4). Sealed: the set cannot be
/// widened outside this crate.
#[diagnostic::on_unimplemented(
    message = "mailbox `{Self}` is reserved for Linux IPIs and cannot be claimed",
    label = "bits 0..=3 are Linux's IPIs (octeon-ciu-mbox.md §4)",
    note = "claim one of the bits 4..=31 (4..=7 if the peer is a Linux core)"
)]
pub trait Claimable: sealed::Sealed {}

macro_rules! claimable {
    ($($n:literal)*) => {
        $(
            impl sealed::Sealed for Bit<$n> {}
            impl Claimable for Bit<$n> {}
        )*
    };
}
claimable!(4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31);

/// The mask of bit `N`, checked when the type is used (N < 32).
struct Mask<const N: u8>;

impl<const N: u8> Mask<N> {
    const BIT: u32 = {
        assert!(N < 32, "a CIU mailbox has 32 bits");
        1 << N
    };
}

/// Reads this core's mailbox through `CIU_MBOX_CLR(core)` (no side effect).
pub(crate) fn read_mailbox<R: Regs64>(regs: R, core: CoreId) -> u32 {
    let value =
        LocalRegisterCopy::<u64, MBOX::Register>::new(regs.read(registers::mbox_clr(core.index())));
    // BITS is 32 bits wide: the cast cannot lose bits.
    value.read(MBOX::BITS) as u32
}

/// Takes the bits of `mask` that are set: one read, then write-1-to-clear of
/// exactly the bits observed (no write when none is), then [`io_rmb`](ipc_traits::barrier::io_rmb) so the
/// caller sees what the peer published before ringing.
pub(crate) fn take_bits<R: Regs64>(regs: R, core: CoreId, mask: u32) -> u32 {
    let observed = read_mailbox(regs, core) & mask;
    if observed != 0 {
        regs.write(
            registers::mbox_clr(core.index()),
            MBOX::BITS.val(u64::from(observed)).value,
        );
        regs.io_rmb();
    }
    observed
}

/// Rings the bits of `mask` on `peer`: [`io_wmb`](ipc_traits::barrier::io_wmb) (orders every earlier
/// shared-memory write before the doorbell CSR write; `SYNC` on MIPS, which
/// octeon-ciu-mbox.md §5 accepts in place of `SYNCW`), then one
/// write-1-to-set.
pub(crate) fn ring_bits<R: Regs64>(regs: R, peer: CoreId, mask: u32) {
    regs.io_wmb();
    regs.write(
        registers::mbox_set(peer.index()),
        MBOX::BITS.val(u64::from(mask)).value,
    );
}

/// Enables (`on`) or disables the CIU summary of the halves holding `mask`
/// on `core`'s IP2 line, through the W1S/W1C aliases (never a bare
/// read-modify-write of the shared `EN0`).
pub(crate) fn set_listening<R: Regs64>(regs: R, core: CoreId, mask: u32, on: bool) {
    let line = registers::ip2_line(core.index());
    let offset = if on {
        registers::int_en0_w1s(line)
    } else {
        registers::int_en0_w1c(line)
    };
    regs.write(offset, registers::summary_bits_of(mask));
}

pub(crate) fn listen_event<R: Regs64>(
    regs: R,
    core: CoreId,
    mask: u32,
    event: Event,
    on: bool,
) -> Result<(), Error> {
    match event {
        Event::DataAvailable => {
            set_listening(regs, core, mask, on);
            Ok(())
        }
        Event::SpaceAvailable => Err(Error::UnsupportedEvent(event)),
    }
}

macro_rules! bank {
    ($(#[$meta:meta])* $bank:ident, $bit:ident, $($field:ident $n:literal)*) => {
        $(#[$meta])*
        #[derive(Debug)]
        pub struct $bank {
            $(
                #[doc = concat!("Mailbox bit ", stringify!($n), ".")]
                pub $field: $bit<$n>,
            )*
        }

        impl $bank {
            pub(crate) const fn new() -> Self {
                Self { $($field: $bit { _private: () },)* }
            }
        }
    };
}

bank!(
    /// The 32 bits of this core's mailbox, unclaimed (receive side).
    ///
    /// Bits 0..=3 are present so the bank is complete for
    /// [`Mailbox::join`](ipc_traits::mailbox::Mailbox::join), but they
    /// cannot be claimed ([`Claimable`]).
    Inbox, InBit,
    bit0 0 bit1 1 bit2 2 bit3 3 bit4 4 bit5 5 bit6 6 bit7 7
    bit8 8 bit9 9 bit10 10 bit11 11 bit12 12 bit13 13 bit14 14 bit15 15
    bit16 16 bit17 17 bit18 18 bit19 19 bit20 20 bit21 21 bit22 22 bit23 23
    bit24 24 bit25 25 bit26 26 bit27 27 bit28 28 bit29 29 bit30 30 bit31 31
);

bank!(
    /// The right to ring each of the 32 bits on peer cores, unclaimed
    /// (transmit side).
    ///
    /// Bits 0..=3 cannot be claimed ([`Claimable`]): on a Linux peer they
    /// would run its scheduler, call-function or icache-flush IPI handlers.
    Outbox, OutBit,
    bit0 0 bit1 1 bit2 2 bit3 3 bit4 4 bit5 5 bit6 6 bit7 7
    bit8 8 bit9 9 bit10 10 bit11 11 bit12 12 bit13 13 bit14 14 bit15 15
    bit16 16 bit17 17 bit18 18 bit19 19 bit20 20 bit21 21 bit22 22 bit23 23
    bit24 24 bit25 25 bit26 26 bit27 27 bit28 28 bit29 29 bit30 30 bit31 31
);

/// Bit `N` of this core's mailbox, not yet claimed (type state).
#[derive(Debug)]
pub struct InBit<const N: u8> {
    _private: (),
}

impl<const N: u8> InBit<N> {
    /// Claims the bit as a receive doorbell and registers it with `irq` (the
    /// interrupt entry of the same [`Mbox`](crate::Mbox)), which from now on
    /// reports it as [`Events::data_available`](ipc_traits::mailbox::Events)
    /// instead of acknowledging it as a stray bit.
    ///
    /// Touches no register.
    ///
    /// # Examples
    ///
    /// ```
    /// use mbox_octeon::sim::Ciu;
    /// use ipc_traits::mailbox::Mailbox;
    ///
    /// let ciu = Ciu::new(2);
    /// let mut parts = ciu.mbox(1).split();
    /// let rx = parts.inbox.bit4.into_rx(&mut parts.irq);
    /// assert_eq!(parts.irq.owned(), 1 << 4);
    /// # let _ = rx;
    /// ```
    pub fn into_rx<R: Regs64>(self, irq: &mut MboxIrq<R>) -> RxBit<R, N>
    where
        Bit<N>: Claimable,
    {
        irq.register(Mask::<N>::BIT);
        RxBit {
            regs: irq.regs(),
            core: irq.core(),
        }
    }
}

/// The right to ring bit `N` on peer cores, not yet claimed (type state).
#[derive(Debug)]
pub struct OutBit<const N: u8> {
    _private: (),
}

impl<const N: u8> OutBit<N> {
    /// Claims the bit as a doorbell towards `peer`, using the register view
    /// of `irq`'s peripheral.
    ///
    /// Touches no register.
    pub fn into_tx<R: Regs64>(self, irq: &MboxIrq<R>, peer: CoreId) -> TxBit<R, N>
    where
        Bit<N>: Claimable,
    {
        TxBit {
            regs: irq.regs(),
            peer,
        }
    }
}

/// Receive doorbell: bit `N` of this core's mailbox, owned.
///
/// Only this handle clears bit `N`, and only after observing it set.
#[derive(Debug)]
pub struct RxBit<R, const N: u8> {
    regs: R,
    core: CoreId,
}

impl<R: Regs64, const N: u8> RxBit<R, N> {
    /// The bit number.
    pub const BIT: u8 = N;

    /// The core whose mailbox holds the bit.
    #[must_use]
    pub fn core(&self) -> CoreId {
        self.core
    }

    /// Whether the doorbell is rung, without taking it.
    pub fn is_pending(&mut self) -> bool {
        read_mailbox(self.regs, self.core) & Mask::<N>::BIT != 0
    }

    /// Takes the doorbell: `true` if it was rung. Clears the bit only if it
    /// was observed set, then [`io_rmb`](ipc_traits::barrier::io_rmb), so the peer's writes before
    /// the ring are visible to the caller.
    pub fn take_pending(&mut self) -> bool {
        take_bits(self.regs, self.core, Mask::<N>::BIT) != 0
    }

    /// Waits for the doorbell within `budget` and takes it.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] if the bit was not rung within the budget.
    pub fn wait(&mut self, budget: impl Budget) -> Result<(), Error> {
        retry(budget, || {
            if self.take_pending() {
                Ok(())
            } else {
                Err(Error::WouldBlock)
            }
        })
    }

    /// Erases the bit number into a value that can live in an array
    /// ([`RxQueues`](crate::RxQueues)).
    pub fn degrade(self) -> AnyRxBit<R> {
        AnyRxBit {
            regs: self.regs,
            core: self.core,
            bit: N,
        }
    }

    /// Gives the bit back, unregistering it from `irq` (the entry it was
    /// claimed with; an entry of another core is left unchanged).
    pub fn release(self, irq: &mut MboxIrq<R>) -> InBit<N> {
        if irq.core() == self.core {
            irq.unregister(Mask::<N>::BIT);
        }
        InBit { _private: () }
    }
}

impl<R: Regs64, const N: u8> ErrorType for RxBit<R, N> {
    type Error = Error;
}

/// Per-channel enable, with the CIU's granularity.
///
/// *NOTE*: the CIU enables the mailbox interrupt per 16-bit half
/// (`EN0.MBOX0` for bits 0..=15, `EN0.MBOX1` for 16..=31; octeon-ciu-mbox.md
/// §3.1). `listen` enables the half holding this bit, so other bits of that
/// half interrupt too; `unlisten` disables it for every bit of the half.
impl<R: Regs64, const N: u8> Listen for RxBit<R, N> {
    fn listen(&mut self, event: Event) -> Result<(), Error> {
        listen_event(self.regs, self.core, Mask::<N>::BIT, event, true)
    }

    fn unlisten(&mut self, event: Event) -> Result<(), Error> {
        listen_event(self.regs, self.core, Mask::<N>::BIT, event, false)
    }
}

/// Transmit doorbell: the right to ring bit `N` of one peer's mailbox.
#[derive(Debug)]
pub struct TxBit<R, const N: u8> {
    regs: R,
    peer: CoreId,
}

impl<R: Regs64, const N: u8> TxBit<R, N> {
    /// The bit number.
    pub const BIT: u8 = N;

    /// The core this doorbell rings.
    #[must_use]
    pub fn peer(&self) -> CoreId {
        self.peer
    }

    /// Rings the doorbell (write-1-to-set of bit `N` in the peer's
    /// `CIU_MBOX_SET`), after [`io_wmb`](ipc_traits::barrier::io_wmb).
    ///
    /// Never blocks and never fails: rings that the peer has not taken yet
    /// coalesce into one.
    pub fn ring(&mut self) {
        ring_bits(self.regs, self.peer, Mask::<N>::BIT);
    }

    /// Erases the bit number ([`TxQueues`](crate::TxQueues)).
    pub fn degrade(self) -> AnyTxBit<R> {
        AnyTxBit {
            regs: self.regs,
            peer: self.peer,
            bit: N,
        }
    }

    /// Gives the bit back.
    pub fn release(self) -> OutBit<N> {
        OutBit { _private: () }
    }
}

/// A receive doorbell whose bit number is a run-time value (from
/// [`RxBit::degrade`]).
#[derive(Debug)]
pub struct AnyRxBit<R> {
    pub(crate) regs: R,
    pub(crate) core: CoreId,
    pub(crate) bit: u8,
}

impl<R: Regs64> AnyRxBit<R> {
    /// The bit number.
    #[must_use]
    pub fn bit(&self) -> u8 {
        self.bit
    }

    /// The core whose mailbox holds the bit.
    #[must_use]
    pub fn core(&self) -> CoreId {
        self.core
    }

    pub(crate) fn mask(&self) -> u32 {
        1u32.checked_shl(u32::from(self.bit)).unwrap_or(0)
    }

    /// Takes the doorbell, as [`RxBit::take_pending`].
    pub fn take_pending(&mut self) -> bool {
        take_bits(self.regs, self.core, self.mask()) != 0
    }

    /// Restores the bit number, or gives `self` back if it is not `N`.
    ///
    /// # Errors
    ///
    /// `Err(self)` when the bit is not `N`.
    pub fn try_into_bit<const N: u8>(self) -> Result<RxBit<R, N>, Self>
    where
        Bit<N>: Claimable,
    {
        if self.bit == N {
            Ok(RxBit {
                regs: self.regs,
                core: self.core,
            })
        } else {
            Err(self)
        }
    }
}

/// A transmit doorbell whose bit number is a run-time value (from
/// [`TxBit::degrade`]).
#[derive(Debug)]
pub struct AnyTxBit<R> {
    pub(crate) regs: R,
    pub(crate) peer: CoreId,
    pub(crate) bit: u8,
}

impl<R: Regs64> AnyTxBit<R> {
    /// The bit number.
    #[must_use]
    pub fn bit(&self) -> u8 {
        self.bit
    }

    /// The core this doorbell rings.
    #[must_use]
    pub fn peer(&self) -> CoreId {
        self.peer
    }

    pub(crate) fn mask(&self) -> u32 {
        1u32.checked_shl(u32::from(self.bit)).unwrap_or(0)
    }

    /// Rings the doorbell, as [`TxBit::ring`].
    pub fn ring(&mut self) {
        ring_bits(self.regs, self.peer, self.mask());
    }

    /// Restores the bit number, or gives `self` back if it is not `N`.
    ///
    /// # Errors
    ///
    /// `Err(self)` when the bit is not `N`.
    pub fn try_into_bit<const N: u8>(self) -> Result<TxBit<R, N>, Self>
    where
        Bit<N>: Claimable,
    {
        if self.bit == N {
            Ok(TxBit {
                regs: self.regs,
                peer: self.peer,
            })
        } else {
            Err(self)
        }
    }
}
