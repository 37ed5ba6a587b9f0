//! Channel handles: one owned [`Channel`] per channel index and direction.
//!
//! # Direction is fixed by the hardware
//!
//! Msgbox v2 has no direction register (sheet §5: "v2 has no direction CTRL
//! register"). Channel `p` between two processors is a **pair of independent
//! 8-deep FIFOs**, one in each processor's block (sheet §3): the local
//! processor writes channel `p` of the peer's block and reads channel `p` of
//! its own. So there is no `Unconfigured` state and no `into_tx`/`into_rx`
//! transition: [`Msgbox::split`](crate::Msgbox::split) hands out both a
//! [`Tx`] and an [`Rx`] handle for every index, already in their only legal
//! state. The direction markers still select, through the associated
//! constants of [`Direction`], which interrupt registers and bit a handle
//! uses, so `listen`/`unlisten` are one generic implementation (STYLE R5).
//!
//! # Misuse that does not compile
//!
//! - sending on a receive handle (`WordTx` is implemented for
//!   `Channel<R, P, Tx>` only);
//! - splitting the peripheral twice (`split` consumes it);
//! - using a channel after moving it elsewhere (handles are neither `Copy`
//!   nor `Clone`);
//! - joining with a handle of another index or direction (the fields of
//!   [`Parts`](crate::Parts) are typed by both).
//!
//! These are proven by `conformance/tests/ui-msgbox-v853/`.
//!
//! # Design notes
//!
//! Not enforced by types: that the two register views given to
//! [`Msgbox::new`](crate::Msgbox::new) really are this processor's block and
//! the peer's (swapping them sends into the own FIFO), and that only one
//! driver instance exists per processor.
#![deny(unsafe_code)]

use core::marker::PhantomData;

use ipc_traits::mailbox::{
    blocking_recv, blocking_send, Budget, ErrorType, Event, Listen, RawId, WordNotify,
    WordNotifyRx, WordRx, WordTx,
};
use ipc_traits::regs::{modify_shared, Regs32};
use tock_registers::LocalRegisterCopy;

use crate::error::Error;
use crate::registers::{self, MSG_STATUS};

mod sealed {
    pub trait Sealed {}
}

/// A channel direction (type state). Sealed: only [`Tx`] and [`Rx`] exist.
///
/// The associated constants carry the register encoding of the direction
/// (STYLE R5), so one generic implementation serves both.
pub trait Direction: sealed::Sealed {
    /// The only event a channel of this direction can raise.
    const EVENT: Event;
    /// Offset of the interrupt-enable register this direction uses.
    const IRQ_ENABLE: usize;
    /// Offset of the (write-1-to-clear) interrupt-status register.
    const IRQ_STATUS: usize;
    /// The bit of channel `p` in both registers is `2p + IRQ_BIT_OFFSET`
    /// (sheet §2: read bits are even, write bits odd).
    const IRQ_BIT_OFFSET: u8;
}

/// Transmit direction (type state): writes the peer's FIFO, listens for
/// `SpaceAvailable` (the `WRITE_IRQ_*` registers in the peer's block).
#[derive(Debug)]
pub struct Tx {
    _private: (),
}

/// Receive direction (type state): pops the own FIFO, listens for
/// `DataAvailable` (the `READ_IRQ_*` registers in the own block).
#[derive(Debug)]
pub struct Rx {
    _private: (),
}

impl sealed::Sealed for Tx {}
impl sealed::Sealed for Rx {}

impl Direction for Tx {
    const EVENT: Event = Event::SpaceAvailable;
    const IRQ_ENABLE: usize = registers::WRITE_IRQ_ENABLE;
    const IRQ_STATUS: usize = registers::WRITE_IRQ_STATUS;
    const IRQ_BIT_OFFSET: u8 = 1;
}

impl Direction for Rx {
    const EVENT: Event = Event::DataAvailable;
    const IRQ_ENABLE: usize = registers::READ_IRQ_ENABLE;
    const IRQ_STATUS: usize = registers::READ_IRQ_STATUS;
    const IRQ_BIT_OFFSET: u8 = 0;
}

/// How many empty slots make the transmit interrupt fire
/// (`WRITE_IRQ_THRESHOLD`, sheet §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SpaceThreshold {
    /// One empty slot: fires whenever the FIFO is not full (reset value and
    /// the vendor driver's setting).
    #[default]
    One,
    /// Two empty slots.
    Two,
    /// Four empty slots.
    Four,
    /// Eight empty slots (the FIFO is empty).
    Eight,
}

impl SpaceThreshold {
    /// The 2-bit register encoding (sheet §2: 0 → 1, 1 → 2, 2 → 4, 3 → 8).
    #[must_use]
    pub const fn encoding(self) -> u32 {
        match self {
            Self::One => 0,
            Self::Two => 1,
            Self::Four => 2,
            Self::Eight => 3,
        }
    }

    /// The number of empty slots.
    #[must_use]
    pub const fn slots(self) -> u32 {
        1 << self.encoding()
    }
}

/// An owned msgbox channel: index `P` (0..=3), direction `D`.
///
/// A `Channel<R, P, Tx>` sends to the peer through `MSG_FIFO(P)` in the
/// **peer's** block; a `Channel<R, P, Rx>` receives from the peer through
/// `MSG_FIFO(P)` in the **own** block (sheet §3). Obtained only from
/// [`Msgbox::split`](crate::Msgbox::split).
#[derive(Debug)]
pub struct Channel<R, const P: u8, D> {
    regs: R,
    bad_status: u32,
    _dir: PhantomData<D>,
}

/// A channel whose index was erased to a runtime value (for arrays of
/// channels). See [`Channel::degrade`].
#[derive(Debug)]
pub struct AnyChannel<R, D> {
    regs: R,
    index: u8,
    bad_status: u32,
    _dir: PhantomData<D>,
}

// --- the shared logic, by runtime index ------------------------------------

fn irq_bit<D: Direction>(p: u8) -> u32 {
    1 << (2 * p + D::IRQ_BIT_OFFSET)
}

fn msg_count<R: Regs32>(regs: R, p: u8) -> u32 {
    LocalRegisterCopy::<u32, MSG_STATUS::Register>::new(regs.read(registers::msg_status(p)))
        .read(MSG_STATUS::NUM)
}

fn bump(counter: &mut u32) {
    *counter = counter.saturating_add(1);
}

fn try_send_at<R: Regs32>(regs: R, p: u8, bad: &mut u32, word: u32) -> Result<(), Error> {
    // Sheet §3: read MSG_STATUS(p) in the receiver's block and treat
    // count >= 8 as full (what every vendor driver does; FIFO_STATUS is
    // unverified and never read). Only this handle writes this FIFO and the
    // receiver only removes, so the count cannot grow between the check and
    // the write: the write below never meets a full FIFO.
    let count = msg_count(regs, p);
    if count > registers::FIFO_DEPTH {
        bump(bad);
        return Err(Error::ImpossibleCount(count as u8));
    }
    if count == registers::FIFO_DEPTH {
        return Err(Error::WouldBlock);
    }
    // Everything written to shared memory before this call is visible to the
    // peer before the word that announces it.
    regs.io_wmb();
    regs.write(registers::msg_fifo(p), word);
    Ok(())
}

fn try_recv_at<R: Regs32>(regs: R, p: u8, bad: &mut u32) -> Result<u32, Error> {
    let count = msg_count(regs, p);
    if count == 0 {
        return Err(Error::WouldBlock);
    }
    if count > registers::FIFO_DEPTH {
        bump(bad);
        return Err(Error::ImpossibleCount(count as u8));
    }
    // Pops (sheet §2): the only read of MSG_FIFO in this crate.
    let word = regs.read(registers::msg_fifo(p));
    regs.io_rmb();
    if count == 1 {
        // The FIFO is drained: acknowledge the receive event, as the vendor
        // ISR does after draining (sheet §3). Write-1-to-clear of this
        // channel's bit only; if the peer pushed a word in between, the bit
        // stays set (it re-asserts while MSG_STATUS > 0, sheet §2).
        regs.write(registers::READ_IRQ_STATUS, irq_bit::<Rx>(p));
    }
    Ok(word)
}

fn listen_at<R: Regs32, D: Direction>(regs: R, p: u8, event: Event) -> Result<(), Error> {
    if event != D::EVENT {
        return Err(Error::Unsupported(event));
    }
    let bit = irq_bit::<D>(p);
    // Vendor startup order (sheet §3): clear a stale pending bit, then
    // enable. The clear only takes effect if the condition no longer holds
    // (data present / space available keep it set), so no event is lost.
    regs.write(D::IRQ_STATUS, bit);
    // The enable register is shared by the four handles of this direction.
    modify_shared(regs, D::IRQ_ENABLE, |v| v | bit);
    Ok(())
}

fn unlisten_at<R: Regs32, D: Direction>(regs: R, p: u8, event: Event) -> Result<(), Error> {
    if event != D::EVENT {
        return Err(Error::Unsupported(event));
    }
    let bit = irq_bit::<D>(p);
    modify_shared(regs, D::IRQ_ENABLE, |v| v & !bit);
    Ok(())
}

fn is_listening_at<R: Regs32, D: Direction>(regs: R, p: u8) -> bool {
    regs.read(D::IRQ_ENABLE) & irq_bit::<D>(p) != 0
}

// --- Channel<R, P, D> -------------------------------------------------------

impl<R: Regs32, const P: u8, D: Direction> Channel<R, P, D> {
    /// The FIFO depth of a msgbox channel (sheet §2).
    pub const DEPTH: usize = registers::FIFO_DEPTH as usize;

    /// The channel index `P`.
    pub const INDEX: u8 = P;

    const VALID_INDEX: () = assert!(P < registers::CHANNELS, "msgbox channel index out of range");

    pub(crate) fn new(regs: R) -> Self {
        let () = Self::VALID_INDEX;
        Self {
            regs,
            bad_status: 0,
            _dir: PhantomData,
        }
    }

    /// Messages currently in this channel's FIFO (`MSG_STATUS`, a pure
    /// read). For a `Tx` handle: words the peer has not read yet.
    #[must_use]
    pub fn queued(&self) -> u32 {
        msg_count(self.regs, P)
    }

    /// How many times `MSG_STATUS` reported an impossible count on this
    /// channel ([`Error::ImpossibleCount`]).
    #[must_use]
    pub const fn bad_status_count(&self) -> u32 {
        self.bad_status
    }

    /// Whether this channel's interrupt is enabled.
    #[must_use]
    pub fn is_listening(&self) -> bool {
        is_listening_at::<R, D>(self.regs, P)
    }

    /// Erases the index into a runtime value (for arrays of channels).
    #[must_use]
    pub fn degrade(self) -> AnyChannel<R, D> {
        AnyChannel {
            regs: self.regs,
            index: P,
            bad_status: self.bad_status,
            _dir: PhantomData,
        }
    }
}

impl<R: Regs32, const P: u8> Channel<R, P, Tx> {
    /// Sends `word`, retrying while the FIFO is full, within `budget`.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] if the FIFO stayed full for the whole budget.
    pub fn blocking_send(&mut self, word: u32, budget: impl Budget) -> Result<(), Error> {
        blocking_send(self, word, budget)
    }

    /// Whether the peer's FIFO for this channel is full (`MSG_STATUS` ≥ 8,
    /// sheet §3).
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.queued() >= registers::FIFO_DEPTH
    }

    /// Sets how many empty slots raise `SpaceAvailable`
    /// (`WRITE_IRQ_THRESHOLD(P)` in the peer's block, written only by this
    /// handle).
    pub fn set_space_threshold(&mut self, threshold: SpaceThreshold) {
        self.regs
            .write(registers::write_irq_threshold(P), threshold.encoding());
    }

    /// Turns this channel into a doorbell for `vring`: each kick sends the
    /// raw queue id, the vendor remoteproc convention on V853 (sheet §4).
    #[must_use]
    pub fn into_notify(self) -> Notifier<R, P> {
        WordNotify::new(self)
    }
}

impl<R: Regs32, const P: u8> Channel<R, P, Rx> {
    /// Receives a word, retrying while the FIFO is empty, within `budget`.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] if nothing arrived within the budget.
    pub fn blocking_recv(&mut self, budget: impl Budget) -> Result<u32, Error> {
        blocking_recv(self, budget)
    }

    /// Turns this channel into the receiving end of `vring` doorbells: each
    /// word is a raw queue id (sheet §4). At most `max_words` words are
    /// drained per `take_pending`; words that are not a queue id (≥ 32) are
    /// counted and reported as `NotANotification`.
    #[must_use]
    pub fn into_notify_rx(self, max_words: u32) -> NotifyReceiver<R, P> {
        WordNotifyRx::new(self, max_words)
    }
}

impl<R: Regs32, const P: u8, D> ErrorType for Channel<R, P, D> {
    type Error = Error;
}

impl<R: Regs32, const P: u8> WordTx for Channel<R, P, Tx> {
    /// Writes `word` into the peer's FIFO.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when the FIFO holds 8 words (nothing written);
    /// [`Error::ImpossibleCount`] when `MSG_STATUS` is out of range (counted).
    fn try_send(&mut self, word: u32) -> Result<(), Error> {
        try_send_at(self.regs, P, &mut self.bad_status, word)
    }
}

impl<R: Regs32, const P: u8> WordRx for Channel<R, P, Rx> {
    /// Pops the oldest word of the own FIFO.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when the FIFO is empty;
    /// [`Error::ImpossibleCount`] when `MSG_STATUS` is out of range (counted,
    /// nothing popped).
    fn try_recv(&mut self) -> Result<u32, Error> {
        try_recv_at(self.regs, P, &mut self.bad_status)
    }
}

impl<R: Regs32, const P: u8, D: Direction> Listen for Channel<R, P, D> {
    /// Enables this channel's interrupt (`SpaceAvailable` for `Tx`,
    /// `DataAvailable` for `Rx`). A stale pending bit whose condition no
    /// longer holds is cleared first.
    ///
    /// `SpaceAvailable` is level-like: it stays pending while the FIFO has at
    /// least the threshold of empty slots, so unlisten once there is nothing
    /// left to send (the vendor driver disables it in its handler too).
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for the other direction's event.
    fn listen(&mut self, event: Event) -> Result<(), Error> {
        listen_at::<R, D>(self.regs, P, event)
    }

    /// Disables this channel's interrupt.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] for the other direction's event.
    fn unlisten(&mut self, event: Event) -> Result<(), Error> {
        unlisten_at::<R, D>(self.regs, P, event)
    }
}

/// A `vring` doorbell on msgbox channel `P` (raw queue id per word).
pub type Notifier<R, const P: u8> = WordNotify<Channel<R, P, Tx>, RawId>;

/// The receiving end of `vring` doorbells on msgbox channel `P`.
pub type NotifyReceiver<R, const P: u8> = WordNotifyRx<Channel<R, P, Rx>, RawId>;

// --- AnyChannel<R, D> -------------------------------------------------------

impl<R: Regs32, D: Direction> AnyChannel<R, D> {
    /// The channel index.
    #[must_use]
    pub const fn index(&self) -> u8 {
        self.index
    }

    /// Messages currently in this channel's FIFO.
    #[must_use]
    pub fn queued(&self) -> u32 {
        msg_count(self.regs, self.index)
    }

    /// How many times `MSG_STATUS` reported an impossible count.
    #[must_use]
    pub const fn bad_status_count(&self) -> u32 {
        self.bad_status
    }

    /// Gives the typed channel back if the index is `P`.
    ///
    /// # Errors
    ///
    /// Returns `self` unchanged if its index is not `P`.
    pub fn try_restore<const P: u8>(self) -> Result<Channel<R, P, D>, Self> {
        if self.index == P {
            let mut ch = Channel::new(self.regs);
            ch.bad_status = self.bad_status;
            Ok(ch)
        } else {
            Err(self)
        }
    }
}

impl<R: Regs32, D> ErrorType for AnyChannel<R, D> {
    type Error = Error;
}

impl<R: Regs32> WordTx for AnyChannel<R, Tx> {
    fn try_send(&mut self, word: u32) -> Result<(), Error> {
        try_send_at(self.regs, self.index, &mut self.bad_status, word)
    }
}

impl<R: Regs32> WordRx for AnyChannel<R, Rx> {
    fn try_recv(&mut self) -> Result<u32, Error> {
        try_recv_at(self.regs, self.index, &mut self.bad_status)
    }
}

impl<R: Regs32, D: Direction> Listen for AnyChannel<R, D> {
    fn listen(&mut self, event: Event) -> Result<(), Error> {
        listen_at::<R, D>(self.regs, self.index, event)
    }

    fn unlisten(&mut self, event: Event) -> Result<(), Error> {
        unlisten_at::<R, D>(self.regs, self.index, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_encoding_matches_registers() {
        use crate::registers::WRITE_IRQ_THRESHOLD::THRESHOLD;
        let pairs = [
            (SpaceThreshold::One, THRESHOLD::One, 1),
            (SpaceThreshold::Two, THRESHOLD::Two, 2),
            (SpaceThreshold::Four, THRESHOLD::Four, 4),
            (SpaceThreshold::Eight, THRESHOLD::Eight, 8),
        ];
        for (ours, reg, slots) in pairs {
            assert_eq!(ours.encoding(), u32::from(reg));
            assert_eq!(ours.slots(), slots);
        }
        assert_eq!(SpaceThreshold::default(), SpaceThreshold::One);
    }

    #[test]
    fn direction_constants_match_the_sheet() {
        assert_eq!(irq_bit::<Rx>(3), 1 << 6);
        assert_eq!(irq_bit::<Tx>(3), 1 << 7);
        assert_eq!(Rx::IRQ_ENABLE, 0x20);
        assert_eq!(Rx::IRQ_STATUS, 0x24);
        assert_eq!(Tx::IRQ_ENABLE, 0x30);
        assert_eq!(Tx::IRQ_STATUS, 0x34);
    }
}
