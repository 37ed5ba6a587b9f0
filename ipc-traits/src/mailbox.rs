//! Mailbox contracts: word channels, queue doorbells, ownership, interrupts.
//!
//! Two levels, because hardware comes in two kinds:
//!
//! - **Word channels** move 32-bit words through a FIFO or a register
//!   ([`WordTx`], [`WordRx`]). A full FIFO is [`ErrorKind::WouldBlock`], never
//!   an overwrite; an empty one is `WouldBlock`, never a stale word.
//! - **Doorbells** say "queue N has work" ([`Notify`], [`NotifyRx`]). This is
//!   what `vring` needs. [`WordNotify`] / [`WordNotifyRx`] adapt any word
//!   channel with a [`QueueCodec`]; bit-per-queue hardware (OCTEON)
//!   implements the doorbell traits natively.
//!
//! Ownership follows [`Mailbox`]: the peripheral is split into one owned
//! handle per channel and joined back. Interrupts are enabled per channel and
//! event ([`Listen`]) and serviced by [`InterruptSource::on_interrupt`], which
//! reads status once and acknowledges exactly what it reports.
//!
//! # For backend authors
//!
//! - Implement the traits only for legal type-states
//!   (`impl WordTx for Channel<R, N, Tx>`), so sending on a receive channel is a
//!   missing-impl compile error.
//! - Call [`io_wmb`](crate::barrier::io_wmb) *inside* `try_send` /
//!   `notify`, right before the doorbell register write, and
//!   [`io_rmb`](crate::barrier::io_rmb) right after the register read that
//!   observed a word or event (`fence(Release)` / `fence(Acquire)` do not
//!   order normal memory against device registers). Cache maintenance is the
//!   ring's job, before it calls you. Callers must not need to remember any
//!   of it.
//!
//! # For link users
//!
//! *NOTE*: spinning on `WouldBlock` inside an interrupt handler starves the
//! context that would drain the FIFO; use the bounded [`blocking_send`] /
//! [`blocking_recv`] helpers from thread context, or listen for
//! [`Event::SpaceAvailable`].
#![deny(unsafe_code)]

use core::fmt;

crate::error_vocabulary! {
    /// What went wrong on a mailbox, in terms every backend shares.
    kinds {
        /// The FIFO is full (send) or empty (receive); nothing was written or
        /// lost. Safe to retry later.
        WouldBlock => "would block: FIFO full or empty, retry later",
        /// The peer sent something invalid (an undecodable word, a status bit
        /// the hardware cannot raise).
        Protocol => "protocol violation by the peer",
        /// The operation is not available on this channel or hardware.
        Unsupported => "operation not supported by this channel",
        /// Anything else.
        Other => "mailbox error",
    }
}

// ---------------------------------------------------------------------------
// Word level
// ---------------------------------------------------------------------------

/// The sending half of a word channel.
pub trait WordTx: ErrorType {
    /// Queues `word` for the peer.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::WouldBlock`] when the channel cannot take a word now (FIFO
    /// full, previous word not yet read). The word is then **not** sent and
    /// nothing already queued is overwritten.
    fn try_send(&mut self, word: u32) -> Result<(), Self::Error>;
}

/// The receiving half of a word channel.
pub trait WordRx: ErrorType {
    /// Takes the oldest word the peer sent.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::WouldBlock`] when no word is waiting.
    fn try_recv(&mut self) -> Result<u32, Self::Error>;
}

impl<T: WordTx + ?Sized> WordTx for &mut T {
    #[inline]
    fn try_send(&mut self, word: u32) -> Result<(), Self::Error> {
        T::try_send(self, word)
    }
}

impl<T: WordRx + ?Sized> WordRx for &mut T {
    #[inline]
    fn try_recv(&mut self) -> Result<u32, Self::Error> {
        T::try_recv(self)
    }
}

// ---------------------------------------------------------------------------
// Doorbell level
// ---------------------------------------------------------------------------

/// A virtqueue index as carried by a doorbell (0..=31).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId(u8);

impl QueueId {
    /// The largest number of queues a [`QueueSet`] can carry.
    pub const MAX: u8 = 32;

    /// A queue id, or `None` if `index >= 32`.
    #[must_use]
    pub const fn new(index: u8) -> Option<Self> {
        if index < Self::MAX {
            Some(Self(index))
        } else {
            None
        }
    }

    /// The queue index.
    #[must_use]
    pub const fn index(self) -> u8 {
        self.0
    }

    /// The queue's bit in a [`QueueSet`]'s representation (`1 << index`).
    ///
    /// The shift needs no masking of its count: said to the compiler here,
    /// where the bound is kept, it saves the mask at every caller.
    #[must_use]
    #[inline(always)]
    #[allow(
        unsafe_code,
        reason = "the one unsafe of this module: a bound the type keeps"
    )]
    pub const fn bit(self) -> u32 {
        // SAFETY: `new` is the only constructor and refuses an index of
        // `MAX` (32) or more, and the field is private: the bound holds for
        // every value of the type.
        unsafe { core::hint::assert_unchecked(self.0 < Self::MAX) };
        1 << self.0
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vq{}", self.0)
    }
}

/// A set of queues with pending work (one bit per [`QueueId`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct QueueSet(u32);

impl QueueSet {
    /// The empty set.
    pub const EMPTY: Self = Self(0);

    /// A set from its bit representation (bit N = queue N).
    #[must_use]
    pub const fn from_bits(bits: u32) -> Self {
        Self(bits)
    }

    /// The bit representation.
    #[must_use]
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether `queue` is in the set.
    #[must_use]
    pub const fn contains(self, queue: QueueId) -> bool {
        self.0 & queue.bit() != 0
    }

    /// Adds `queue`.
    pub fn insert(&mut self, queue: QueueId) {
        self.0 |= queue.bit();
    }

    /// The union of two sets.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether the set is empty.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The queues in the set, lowest first (one step per member, not per
    /// possible queue).
    pub fn iter(self) -> impl Iterator<Item = QueueId> {
        let mut bits = self.0;
        core::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let q = bits.trailing_zeros() as u8;
            bits &= bits - 1;
            Some(QueueId(q))
        })
    }
}

/// Tells the peer that a queue has work ("kick").
pub trait Notify: ErrorType {
    /// Rings the doorbell for `queue`.
    ///
    /// Implementations order all earlier shared-memory writes before the
    /// doorbell (fence inside, see the module docs).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::WouldBlock`] if the doorbell cannot be rung now (word
    /// FIFO full). The caller keeps the notification pending and retries.
    fn notify(&mut self, queue: QueueId) -> Result<(), Self::Error>;
}

/// Learns which queues the peer kicked.
pub trait NotifyRx: ErrorType {
    /// Takes every pending notification, acknowledging exactly the ones
    /// returned.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Protocol`] if the peer sent something that is not a
    /// notification. Notifications already collected are not lost: they are
    /// returned by the next call.
    fn take_pending(&mut self) -> Result<QueueSet, Self::Error>;
}

impl<T: Notify + ?Sized> Notify for &mut T {
    #[inline]
    fn notify(&mut self, queue: QueueId) -> Result<(), Self::Error> {
        T::notify(self, queue)
    }
}

impl<T: NotifyRx + ?Sized> NotifyRx for &mut T {
    #[inline]
    fn take_pending(&mut self) -> Result<QueueSet, Self::Error> {
        T::take_pending(self)
    }
}

/// How a queue id travels in a mailbox word.
///
/// Conventions differ per SoC: rpmsg-lite on the i.MX MU sends `vq_id << 16`,
/// the TI and Allwinner stacks send the raw id.
pub trait QueueCodec {
    /// The word that announces `queue`.
    fn encode(queue: QueueId) -> u32;
    /// The queue a received word announces, or `None` if the word is not a
    /// notification under this convention.
    fn decode(word: u32) -> Option<QueueId>;
}

/// The queue id is the word (TI K3, Allwinner msgbox).
#[derive(Debug, Clone, Copy, Default)]
pub struct RawId;

impl QueueCodec for RawId {
    fn encode(queue: QueueId) -> u32 {
        u32::from(queue.index())
    }
    fn decode(word: u32) -> Option<QueueId> {
        u8::try_from(word).ok().and_then(QueueId::new)
    }
}

/// The queue id sits in the upper half-word (rpmsg-lite on the i.MX MU:
/// `vq_id << 16`, shared/docs/hw/imx8-mu.md).
#[derive(Debug, Clone, Copy, Default)]
pub struct UpperHalf;

impl QueueCodec for UpperHalf {
    fn encode(queue: QueueId) -> u32 {
        u32::from(queue.index()) << 16
    }
    fn decode(word: u32) -> Option<QueueId> {
        if word & 0xffff != 0 {
            return None;
        }
        u8::try_from(word >> 16).ok().and_then(QueueId::new)
    }
}

/// Adapts a word channel into a [`Notify`]: one word per kick.
#[derive(Debug)]
pub struct WordNotify<T, C = RawId> {
    tx: T,
    _codec: core::marker::PhantomData<C>,
}

impl<T: WordTx, C: QueueCodec> WordNotify<T, C> {
    /// Wraps `tx`.
    pub const fn new(tx: T) -> Self {
        Self {
            tx,
            _codec: core::marker::PhantomData,
        }
    }

    /// Gives the channel back.
    pub fn release(self) -> T {
        self.tx
    }
}

impl<T: WordTx, C> ErrorType for WordNotify<T, C> {
    type Error = T::Error;
}

impl<T: WordTx, C: QueueCodec> Notify for WordNotify<T, C> {
    #[inline]
    fn notify(&mut self, queue: QueueId) -> Result<(), Self::Error> {
        self.tx.try_send(C::encode(queue))
    }
}

/// The error of [`WordNotifyRx`]: the channel's own, or an undecodable word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyRxError<E> {
    /// The underlying channel failed.
    Channel(E),
    /// The peer sent a word that is not a notification (value given).
    NotANotification(u32),
}

impl<E: Error> Error for NotifyRxError<E> {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Channel(e) => e.kind(),
            Self::NotANotification(_) => ErrorKind::Protocol,
        }
    }
}

impl<E: fmt::Debug> fmt::Display for NotifyRxError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Channel(e) => write!(f, "mailbox channel error: {e:?}"),
            Self::NotANotification(w) => write!(f, "peer sent {w:#010x}, not a notification"),
        }
    }
}

/// Adapts a word channel into a [`NotifyRx`]: drains words, decodes queue ids.
///
/// Draining is bounded by `max_words` per call, so a peer that keeps the FIFO
/// full cannot trap the caller in a loop. Words that do not decode are
/// counted ([`Self::invalid_words`]) and reported as
/// [`NotifyRxError::NotANotification`]; the queues collected before the bad
/// word are kept and returned by the next call, never lost.
#[derive(Debug)]
pub struct WordNotifyRx<T, C = RawId> {
    rx: T,
    carry: QueueSet,
    max_words: u32,
    invalid_words: u32,
    _codec: core::marker::PhantomData<C>,
}

impl<T: WordRx, C: QueueCodec> WordNotifyRx<T, C> {
    /// Wraps `rx`, draining at most `max_words` words per call (at least 1).
    pub const fn new(rx: T, max_words: u32) -> Self {
        Self {
            rx,
            carry: QueueSet::EMPTY,
            max_words: if max_words == 0 { 1 } else { max_words },
            invalid_words: 0,
            _codec: core::marker::PhantomData,
        }
    }

    /// How many undecodable words the peer has sent.
    pub const fn invalid_words(&self) -> u32 {
        self.invalid_words
    }

    /// Gives the channel back (pending notifications not yet taken are
    /// returned alongside).
    pub fn release(self) -> (T, QueueSet) {
        (self.rx, self.carry)
    }
}

impl<T: WordRx, C> ErrorType for WordNotifyRx<T, C> {
    type Error = NotifyRxError<T::Error>;
}

impl<T: WordRx, C: QueueCodec> NotifyRx for WordNotifyRx<T, C> {
    fn take_pending(&mut self) -> Result<QueueSet, Self::Error> {
        for _ in 0..self.max_words {
            match self.rx.try_recv() {
                Ok(word) => match C::decode(word) {
                    Some(q) => self.carry.insert(q),
                    None => {
                        self.invalid_words = self.invalid_words.saturating_add(1);
                        return Err(NotifyRxError::NotANotification(word));
                    }
                },
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(NotifyRxError::Channel(e)),
            }
        }
        Ok(core::mem::take(&mut self.carry))
    }
}

// ---------------------------------------------------------------------------
// Peripheral level: ownership and interrupts
// ---------------------------------------------------------------------------

/// A peripheral that splits into owned per-channel handles and joins back.
///
/// `split` consumes the singleton, so splitting twice does not compile;
/// `join` needs every handle back, so no channel can stay in use elsewhere.
pub trait Mailbox: Sized {
    /// The owned handles (a plain struct with public fields, so users can
    /// destructure it).
    type Parts;
    /// Hands out one owned handle per channel.
    fn split(self) -> Self::Parts;
    /// Rebuilds the peripheral from all its handles.
    fn join(parts: Self::Parts) -> Self;
}

/// A channel event that can raise an interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// A word (or doorbell) is waiting to be received.
    DataAvailable,
    /// The transmit FIFO has room again.
    SpaceAvailable,
}

/// Per-channel interrupt enable.
pub trait Listen: ErrorType {
    /// Enables the interrupt for `event` on this channel.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unsupported`] if this channel cannot raise `event` (a
    /// transmit channel has no `DataAvailable`).
    fn listen(&mut self, event: Event) -> Result<(), Self::Error>;
    /// Disables the interrupt for `event` on this channel.
    ///
    /// # Errors
    ///
    /// As for [`Listen::listen`].
    fn unlisten(&mut self, event: Event) -> Result<(), Self::Error>;
}

impl<T: Listen + ?Sized> Listen for &mut T {
    #[inline]
    fn listen(&mut self, event: Event) -> Result<(), Self::Error> {
        T::listen(self, event)
    }
    #[inline]
    fn unlisten(&mut self, event: Event) -> Result<(), Self::Error> {
        T::unlisten(self, event)
    }
}

/// The channels with pending interrupt events, as reported by
/// [`InterruptSource::on_interrupt`]. Bit N stands for channel N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Events {
    /// Channels with [`Event::DataAvailable`].
    pub data_available: u32,
    /// Channels with [`Event::SpaceAvailable`].
    pub space_available: u32,
    /// Backend-specific events (for example MU general-purpose interrupts),
    /// one bit each as documented by the backend.
    pub other: u32,
}

impl Events {
    /// No events.
    pub const NONE: Self = Self {
        data_available: 0,
        space_available: 0,
        other: 0,
    };

    /// Whether nothing was reported.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.data_available == 0 && self.space_available == 0 && self.other == 0
    }

    /// Whether `channel` has `event`.
    #[must_use]
    pub const fn has(&self, channel: u8, event: Event) -> bool {
        if channel >= 32 {
            return false;
        }
        let bits = match event {
            Event::DataAvailable => self.data_available,
            Event::SpaceAvailable => self.space_available,
        };
        bits & (1 << channel) != 0
    }
}

/// The interrupt entry of a peripheral.
pub trait InterruptSource {
    /// Reads the interrupt status once, acknowledges exactly the events it
    /// reports (write-1-to-clear of the bits just read, never more), and
    /// returns them.
    ///
    /// Level-style events that are cleared by servicing the channel (data
    /// available until the FIFO is read) are reported, not acknowledged: the
    /// owning handle clears them by receiving.
    fn on_interrupt(&mut self) -> Events;
}

impl<T: InterruptSource + ?Sized> InterruptSource for &mut T {
    #[inline]
    fn on_interrupt(&mut self) -> Events {
        T::on_interrupt(self)
    }
}

// ---------------------------------------------------------------------------
// Bounded blocking
// ---------------------------------------------------------------------------

/// A bound on how long a blocking helper may wait.
///
/// Every blocking helper calls [`Budget::next`] once per failed attempt and
/// gives up with `WouldBlock` when it returns `false`. No helper spins
/// forever.
pub trait Budget {
    /// Accounts for one more attempt; `false` means give up.
    fn next(&mut self) -> bool;
}

impl<T: Budget + ?Sized> Budget for &mut T {
    #[inline]
    fn next(&mut self) -> bool {
        T::next(self)
    }
}

/// A budget of retries (spins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spins(u32);

impl Spins {
    /// At most `retries` more attempts after the first.
    #[must_use]
    pub const fn new(retries: u32) -> Self {
        Self(retries)
    }

    /// The retries left.
    #[must_use]
    pub const fn remaining(&self) -> u32 {
        self.0
    }
}

impl Budget for Spins {
    #[inline]
    fn next(&mut self) -> bool {
        match self.0.checked_sub(1) {
            Some(left) => {
                self.0 = left;
                core::hint::spin_loop();
                true
            }
            None => false,
        }
    }
}

/// A deadline on a monotonic clock given as a closure (ticks of any unit).
#[derive(Debug, Clone, Copy)]
pub struct Deadline<F> {
    now: F,
    until: u64,
}

impl<F: FnMut() -> u64> Deadline<F> {
    /// Gives up once `now()` reaches `until`.
    pub const fn new(now: F, until: u64) -> Self {
        Self { now, until }
    }
}

impl<F: FnMut() -> u64> Budget for Deadline<F> {
    #[inline]
    fn next(&mut self) -> bool {
        core::hint::spin_loop();
        (self.now)() < self.until
    }
}

/// Retries `op` while it reports `WouldBlock` and `budget` allows.
///
/// # Errors
///
/// The last error: `WouldBlock` when the budget ran out, or the first other
/// error immediately.
pub fn retry<T, E: Error>(
    mut budget: impl Budget,
    mut op: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    loop {
        match op() {
            Err(e) if e.kind() == ErrorKind::WouldBlock && budget.next() => {}
            other => return other,
        }
    }
}

/// Sends `word`, retrying while the channel is full, within `budget`.
///
/// # Errors
///
/// `WouldBlock` if the channel stayed full for the whole budget; any other
/// channel error at once.
pub fn blocking_send<T: WordTx>(
    tx: &mut T,
    word: u32,
    budget: impl Budget,
) -> Result<(), T::Error> {
    retry(budget, || tx.try_send(word))
}

/// Receives a word, retrying while the channel is empty, within `budget`.
///
/// # Errors
///
/// `WouldBlock` if nothing arrived within the budget; any other channel error
/// at once.
pub fn blocking_recv<T: WordRx>(rx: &mut T, budget: impl Budget) -> Result<u32, T::Error> {
    retry(budget, || rx.try_recv())
}

/// Rings `queue`'s doorbell, retrying while the channel is full, within
/// `budget`.
///
/// # Errors
///
/// As for [`blocking_send`].
pub fn blocking_notify<T: Notify>(
    tx: &mut T,
    queue: QueueId,
    budget: impl Budget,
) -> Result<(), T::Error> {
    retry(budget, || tx.notify(queue))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A word FIFO for testing the adapters (the backends' own models live in
    /// their `sim` modules).
    struct Fifo {
        words: VecDeque<u32>,
        depth: usize,
    }

    impl ErrorType for Fifo {
        type Error = ErrorKind;
    }
    impl WordTx for Fifo {
        fn try_send(&mut self, word: u32) -> Result<(), ErrorKind> {
            if self.words.len() == self.depth {
                return Err(ErrorKind::WouldBlock);
            }
            self.words.push_back(word);
            Ok(())
        }
    }
    impl WordRx for Fifo {
        fn try_recv(&mut self) -> Result<u32, ErrorKind> {
            self.words.pop_front().ok_or(ErrorKind::WouldBlock)
        }
    }

    fn fifo(depth: usize) -> Fifo {
        Fifo {
            words: VecDeque::new(),
            depth,
        }
    }

    fn q(i: u8) -> QueueId {
        QueueId::new(i).unwrap()
    }

    #[test]
    fn queue_set_iterates_members_in_order() {
        let set = QueueSet::from_bits(0x8000_0005);
        assert_eq!(
            set.iter().map(QueueId::index).collect::<Vec<_>>(),
            [0, 2, 31]
        );
        assert_eq!(QueueSet::EMPTY.iter().count(), 0);
    }

    #[test]
    fn queue_bit_is_its_set_member() {
        for i in 0..QueueId::MAX {
            let q = q(i);
            assert_eq!(q.bit(), 1u32 << i);
            let mut set = QueueSet::EMPTY;
            set.insert(q);
            assert_eq!(set.bits(), q.bit());
            assert!(set.contains(q));
            assert!(!QueueSet::from_bits(!q.bit()).contains(q));
        }
    }

    #[test]
    fn queue_id_rejects_out_of_range() {
        assert!(QueueId::new(31).is_some());
        assert!(QueueId::new(32).is_none());
    }

    #[test]
    fn codecs_round_trip_and_reject_foreign_words() {
        for i in 0..32 {
            assert_eq!(RawId::decode(RawId::encode(q(i))), Some(q(i)));
            assert_eq!(UpperHalf::decode(UpperHalf::encode(q(i))), Some(q(i)));
        }
        assert_eq!(UpperHalf::encode(q(1)), 0x1_0000);
        assert_eq!(RawId::decode(32), None);
        assert_eq!(RawId::decode(0xffff_ff10), None);
        assert_eq!(UpperHalf::decode(0x1_0001), None);
        assert_eq!(UpperHalf::decode(0x20_0000), None);
    }

    #[test]
    fn word_notify_round_trip_keeps_every_queue() {
        let mut f = fifo(4);
        {
            let mut tx: WordNotify<_, UpperHalf> = WordNotify::new(&mut f);
            tx.notify(q(0)).unwrap();
            tx.notify(q(1)).unwrap();
        }
        let mut rx: WordNotifyRx<_, UpperHalf> = WordNotifyRx::new(&mut f, 8);
        let set = rx.take_pending().unwrap();
        assert_eq!(set.iter().collect::<Vec<_>>(), [q(0), q(1)]);
        assert!(rx.take_pending().unwrap().is_empty());
    }

    #[test]
    fn full_fifo_is_would_block_not_overwrite() {
        let mut f = fifo(2);
        let mut tx: WordNotify<_> = WordNotify::new(&mut f);
        tx.notify(q(1)).unwrap();
        tx.notify(q(2)).unwrap();
        assert_eq!(tx.notify(q(3)), Err(ErrorKind::WouldBlock));
        assert_eq!(f.words, [1, 2]);
    }

    #[test]
    fn bad_word_is_reported_counted_and_loses_nothing() {
        let mut f = fifo(8);
        for w in [1, 0xdead, 2] {
            f.try_send(w).unwrap();
        }
        let mut rx: WordNotifyRx<_> = WordNotifyRx::new(&mut f, 8);
        assert_eq!(
            rx.take_pending(),
            Err(NotifyRxError::NotANotification(0xdead))
        );
        assert_eq!(rx.invalid_words(), 1);
        assert_eq!(rx.take_pending().unwrap().bits(), 0b110);
        assert_eq!(
            NotifyRxError::<ErrorKind>::NotANotification(0).kind(),
            ErrorKind::Protocol
        );
    }

    #[test]
    fn draining_is_bounded_per_call() {
        let mut f = fifo(8);
        for w in [1, 2, 3] {
            f.try_send(w).unwrap();
        }
        let mut rx: WordNotifyRx<_> = WordNotifyRx::new(&mut f, 2);
        assert_eq!(rx.take_pending().unwrap().bits(), 0b110);
        assert_eq!(rx.take_pending().unwrap().bits(), 0b1000);
    }

    #[test]
    fn blocking_helpers_give_up_after_budget() {
        let mut f = fifo(1);
        assert_eq!(
            blocking_recv(&mut f, Spins::new(3)),
            Err(ErrorKind::WouldBlock)
        );
        blocking_send(&mut f, 9, Spins::new(0)).unwrap();
        let mut attempts = 0;
        let r = retry(Spins::new(4), || {
            attempts += 1;
            Err::<(), _>(ErrorKind::WouldBlock)
        });
        assert_eq!(r, Err(ErrorKind::WouldBlock));
        assert_eq!(attempts, 5);
        assert_eq!(blocking_recv(&mut f, Spins::new(0)), Ok(9));
        assert_eq!(
            blocking_notify(&mut WordNotify::<_>::new(fifo(0)), q(0), Spins::new(2)),
            Err(ErrorKind::WouldBlock)
        );
    }

    #[test]
    fn retry_stops_at_non_would_block_errors() {
        let mut attempts = 0;
        let r = retry(Spins::new(100), || {
            attempts += 1;
            Err::<(), _>(ErrorKind::Protocol)
        });
        assert_eq!((r, attempts), (Err(ErrorKind::Protocol), 1));
    }

    #[test]
    fn deadline_budget_ends_at_deadline() {
        let mut t = 0u64;
        let mut d = Deadline::new(
            || {
                t += 10;
                t
            },
            25,
        );
        assert!(d.next());
        assert!(d.next());
        assert!(!d.next());
    }

    #[test]
    fn events_report_per_channel() {
        let e = Events {
            data_available: 0b10,
            space_available: 0b1,
            other: 0,
        };
        assert!(e.has(1, Event::DataAvailable));
        assert!(!e.has(1, Event::SpaceAvailable));
        assert!(e.has(0, Event::SpaceAvailable));
        assert!(!e.has(40, Event::DataAvailable));
        assert!(Events::NONE.is_empty());
        assert_eq!(
            ErrorKind::WouldBlock.to_string(),
            "would block: FIFO full or empty, retry later"
        );
    }
}
