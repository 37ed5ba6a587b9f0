//! Data channels: one transmit register `TRn` and one receive register `RRn`
//! per channel index (shared/docs/hw/imx8-mu.md §2, §2.4).
//!
//! MU v1 channels have a fixed direction: `TRn` only sends, `RRn` only
//! receives, so there is no `Unconfigured` state. [`Mu::split`](crate::Mu::split)
//! hands out one [`TxChannel`] and one [`RxChannel`] per index.
//!
//! # Misuse that does not compile
//!
//! - sending on a receive channel ([`WordTx`] is implemented only for
//!   [`TxChannel`]);
//! - building a channel outside this crate (private fields and constructor);
//! - using a channel after moving it elsewhere (ownership);
//! - wrapping a channel other than 1 as the rpmsg doorbell.
//!
//! # Design notes
//!
//! Not enforced by types: that the peer actually reads the channel you
//! write. That is the wiring convention of both firmwares (rpmsg: channel 1
//! both ways, sheet §5, §6).
#![deny(unsafe_code)]

use core::fmt;
use core::marker::PhantomData;

use ipc_traits::mailbox::{
    Budget, ErrorType, Event, Listen, UpperHalf, WordNotify, WordNotifyRx, WordRx, WordTx,
};
use ipc_traits::regs::{modify_shared, Regs32};
use tock_registers::LocalRegisterCopy;

use crate::registers::{self, CR_GIR_MASK, CR_OFFSET, SR, SR_OFFSET};
use crate::Error;

mod sealed {
    pub trait Sealed {}
}

/// A channel direction (sealed type-state trait).
///
/// Carries the register encoding of the direction (F4 style): which status
/// field tells that the channel is ready and which control field enables its
/// interrupt.
pub trait Direction: sealed::Sealed {
    /// The event this direction can raise.
    const EVENT: Event;
    /// Bit of channel 0's ready flag in `SR` (`TE0` or `RF0`).
    #[doc(hidden)]
    const STATUS_TOP: usize;
    /// Bit of channel 0's interrupt enable in `CR` (`TIE0` or `RIE0`).
    #[doc(hidden)]
    const ENABLE_TOP: usize;
}

/// Transmit direction: the channel owns `TRn` (type state).
#[derive(Debug)]
pub struct Tx {
    _private: (),
}

/// Receive direction: the channel owns `RRn` (type state).
#[derive(Debug)]
pub struct Rx {
    _private: (),
}

impl sealed::Sealed for Tx {}
impl sealed::Sealed for Rx {}

impl Direction for Tx {
    const EVENT: Event = Event::SpaceAvailable;
    const STATUS_TOP: usize = registers::TE_TOP;
    const ENABLE_TOP: usize = registers::TIE_TOP;
}

impl Direction for Rx {
    const EVENT: Event = Event::DataAvailable;
    const STATUS_TOP: usize = registers::RF_TOP;
    const ENABLE_TOP: usize = registers::RIE_TOP;
}

/// The owned handle of MU channel `N` (0..=3) in direction `D`.
///
/// Obtained only from [`Mu::split`](crate::Mu::split); holds a `Copy`
/// register view and nothing else.
pub struct Channel<R, const N: u8, D: Direction> {
    regs: R,
    _dir: PhantomData<D>,
}

/// The transmit half of channel `N`: owns `TRn`.
pub type TxChannel<R, const N: u8> = Channel<R, N, Tx>;
/// The receive half of channel `N`: owns `RRn`.
pub type RxChannel<R, const N: u8> = Channel<R, N, Rx>;

impl<R, const N: u8, D: Direction> fmt::Debug for Channel<R, N, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = if D::EVENT == Event::SpaceAvailable {
            "Tx"
        } else {
            "Rx"
        };
        write!(f, "Channel<{N}, {dir}>")
    }
}

impl<R: Regs32, const N: u8, D: Direction> Channel<R, N, D> {
    /// Post-monomorphisation check: only channels 0..=3 exist.
    const VALID: () = assert!(N < registers::CHANNELS, "the MU has channels 0..=3");

    /// The channel index.
    pub const INDEX: u8 = N;

    pub(crate) const fn new(regs: R) -> Self {
        let () = Self::VALID;
        Self {
            regs,
            _dir: PhantomData,
        }
    }

    pub(crate) fn release(self) -> R {
        self.regs
    }

    fn status_bit() -> u32 {
        registers::bits(registers::channel_field::<SR::Register>(D::STATUS_TOP, N))
    }

    fn enable_bit() -> u32 {
        registers::bits(registers::channel_field::<registers::CR::Register>(
            D::ENABLE_TOP,
            N,
        ))
    }

    fn ready(&self) -> bool {
        LocalRegisterCopy::<u32, SR::Register>::new(self.regs.read(SR_OFFSET)).get()
            & Self::status_bit()
            != 0
    }

    /// Whether this channel's interrupt is enabled (`CR.TIEn` / `CR.RIEn`).
    pub fn is_listening(&mut self) -> bool {
        self.regs.read(CR_OFFSET) & Self::enable_bit() != 0
    }

    fn set_enable(&mut self, on: bool) {
        let bit = Self::enable_bit();
        // CR is shared by every handle of this side: interrupt-safe RMW, and
        // GIR masked to 0 so a pending request is never written back
        // (shared/docs/hw/imx8-mu.md §2.2, §8 item 4).
        modify_shared(self.regs, CR_OFFSET, |cr| {
            let cr = cr & !CR_GIR_MASK;
            if on {
                cr | bit
            } else {
                cr & !bit
            }
        });
    }
}

impl<R: Regs32, const N: u8> Channel<R, N, Tx> {
    /// Words the transmit register holds: one (shared/docs/hw/imx8-mu.md
    /// §2.4, one `TRn` per channel, no FIFO).
    pub const DEPTH: usize = 1;

    /// Whether the peer has read the previous word (`SR.TEn = 1`), so
    /// [`try_send`](Self::try_send) would succeed now.
    pub fn can_send(&mut self) -> bool {
        self.ready()
    }

    /// Writes `word` to `TRn` if the peer has read the previous one.
    ///
    /// Issues [`io_wmb`](ipc_traits::barrier::io_wmb) right before the register write, so every
    /// shared-memory write that precedes the call is visible to the peer
    /// before the word is (a `fence(Release)` would not order it against
    /// the Device write on AArch64).
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] while `SR.TEn = 0`. The word is not written:
    /// on silicon a second write would overwrite the unread one (sheet §2.4).
    pub fn try_send(&mut self, word: u32) -> Result<(), Error> {
        if !self.ready() {
            return Err(Error::WouldBlock);
        }
        // Only this handle writes TRn and only the peer's read sets TEn back
        // to 1, so TEn cannot fall between the check and the write.
        self.regs.io_wmb();
        self.regs.write(registers::tr_offset(N), word);
        Ok(())
    }

    /// [`try_send`](Self::try_send), retried while the budget allows.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] if the peer did not read the previous word
    /// within `budget`.
    pub fn blocking_send(&mut self, word: u32, budget: impl Budget) -> Result<(), Error> {
        ipc_traits::mailbox::blocking_send(self, word, budget)
    }
}

impl<R: Regs32, const N: u8> Channel<R, N, Rx> {
    /// Words the receive register holds: one (sheet §2.4).
    pub const DEPTH: usize = 1;

    /// Whether a word is waiting (`SR.RFn = 1`).
    pub fn can_recv(&mut self) -> bool {
        self.ready()
    }

    /// Reads the waiting word from `RRn`.
    ///
    /// The read pops: it clears `SR.RFn` here and sets the peer's `SR.TEn`
    /// (sheet §2.4). An [`io_rmb`](ipc_traits::barrier::io_rmb) follows it, so shared memory the
    /// peer wrote before sending is visible after the call.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] while `SR.RFn = 0`; `RRn` is then not read.
    pub fn try_recv(&mut self) -> Result<u32, Error> {
        if !self.ready() {
            return Err(Error::WouldBlock);
        }
        let word = self.regs.read(registers::rr_offset(N));
        self.regs.io_rmb();
        Ok(word)
    }

    /// [`try_recv`](Self::try_recv), retried while the budget allows.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] if nothing arrived within `budget`.
    pub fn blocking_recv(&mut self, budget: impl Budget) -> Result<u32, Error> {
        ipc_traits::mailbox::blocking_recv(self, budget)
    }
}

impl<R: Regs32, const N: u8, D: Direction> ErrorType for Channel<R, N, D> {
    type Error = Error;
}

impl<R: Regs32, const N: u8> WordTx for Channel<R, N, Tx> {
    #[inline]
    fn try_send(&mut self, word: u32) -> Result<(), Error> {
        Channel::try_send(self, word)
    }
}

impl<R: Regs32, const N: u8> WordRx for Channel<R, N, Rx> {
    #[inline]
    fn try_recv(&mut self) -> Result<u32, Error> {
        Channel::try_recv(self)
    }
}

impl<R: Regs32, const N: u8, D: Direction> Listen for Channel<R, N, D> {
    /// Enables `CR.TIEn` (transmit, [`Event::SpaceAvailable`]) or `CR.RIEn`
    /// (receive, [`Event::DataAvailable`]).
    ///
    /// Both interrupts are level-triggered: the line stays high while
    /// `TEn` / `RFn` is 1 (sheet §8 item 5). A receiver clears it by reading;
    /// a transmitter must `unlisten` once it has nothing more to send, as
    /// Linux does.
    fn listen(&mut self, event: Event) -> Result<(), Error> {
        if event != D::EVENT {
            return Err(Error::UnsupportedEvent(event));
        }
        self.set_enable(true);
        Ok(())
    }

    fn unlisten(&mut self, event: Event) -> Result<(), Error> {
        if event != D::EVENT {
            return Err(Error::UnsupportedEvent(event));
        }
        self.set_enable(false);
        Ok(())
    }
}

/// The MU channel rpmsg uses in both directions: `RPMSG_MU_CHANNEL = 1`
/// in rpmsg-lite, `<&mu 0 1>` / `<&mu 1 1>` in the Linux device tree
/// (shared/docs/hw/imx8-mu.md §5, §6).
pub const RPMSG_CHANNEL: u8 = 1;

const _: () = assert!(
    RPMSG_CHANNEL == 1,
    "the rpmsg impls below spell the index as 1"
);

/// How many words one [`NotifyRx::take_pending`](ipc_traits::mailbox::NotifyRx::take_pending)
/// drains at most: bounds the time a peer that keeps refilling `RR1` can
/// hold the caller.
pub const RPMSG_DRAIN: u32 = 4;

/// The rpmsg doorbell towards the peer: `vq_id << 16` on `TR1`
/// (rpmsg-lite `MU_SendMsg(MUB, 1, vector_id << 16)`, Linux
/// `imx_rproc_kick`; sheet §5, §6).
///
/// With a one-word register, a second notify before the peer read the first
/// is `WouldBlock`; the caller keeps the kick pending and retries.
pub type RpmsgNotify<R> = WordNotify<TxChannel<R, RPMSG_CHANNEL>, UpperHalf>;

/// The rpmsg doorbell from the peer: words on `RR1` decoded as `word >> 16`
/// (rpmsg-lite `env_isr(value >> 16)`, sheet §6). A word with non-zero low
/// half or an id above 31 is counted and reported as
/// [`NotifyRxError::NotANotification`](ipc_traits::mailbox::NotifyRxError).
///
/// *NOTE*: Linux ignores the value it receives and checks every vring
/// (sheet §5); this side decodes it as rpmsg-lite does.
pub type RpmsgNotifyRx<R> = WordNotifyRx<RxChannel<R, RPMSG_CHANNEL>, UpperHalf>;

// The index is spelled `1` (= RPMSG_CHANNEL) so diagnostics name the type.
impl<R: Regs32> Channel<R, 1, Tx> {
    /// Wraps `TR1` as the rpmsg doorbell ([`RpmsgNotify`]).
    pub const fn into_rpmsg_notify(self) -> RpmsgNotify<R> {
        WordNotify::new(self)
    }
}

impl<R: Regs32> Channel<R, 1, Rx> {
    /// Wraps `RR1` as the rpmsg doorbell receiver ([`RpmsgNotifyRx`]),
    /// draining at most [`RPMSG_DRAIN`] words per call.
    pub const fn into_rpmsg_notify_rx(self) -> RpmsgNotifyRx<R> {
        WordNotifyRx::new(self, RPMSG_DRAIN)
    }
}
