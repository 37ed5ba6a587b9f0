//! Doorbells on a K3 mailbox: raw vring ids, and the `0xFFFF_FFxx` control
//! messages of the TI remoteproc protocol.
//!
//! Linux's K3 remoteproc driver kicks a vring by sending its notify id as the
//! mailbox word, unshifted (sheet `am62x-mailbox.md` §4.1); TI's MCU+ SDK does
//! the same with IpcNotify client 0 (§4.2). The same queue also carries the
//! `enum omap_rp_mbox_messages` control words (§4.1 table): Linux sends
//! `RP_MBOX_ECHO_REQUEST` when it opens the channel and the suspend requests
//! of TI's power protocol. [`KickRx`] keeps those apart: kicks become a
//! [`QueueSet`], control words become typed [`ControlEvent`]s, and both are
//! counted.
//!
//! There is no wake interrupt in the K3 mailbox (sheet §2: only `NEWMSG` and
//! `NOTFULL` events). The suspend messages are how TI's stack negotiates
//! sleep; this crate surfaces them and leaves the answer
//! ([`RpMbox::SuspendAck`] or [`RpMbox::SuspendCancel`]) to the firmware.
#![deny(unsafe_code)]

use core::fmt;

use ipc_traits::mailbox::{
    Error as _, ErrorKind, ErrorType, Event, Listen, NotifyRx, NotifyRxError, QueueCodec, QueueId,
    QueueSet, RawId, WordRx,
};

/// The rpmsg mailbox control messages (`enum omap_rp_mbox_messages`, Linux
/// `omap_remoteproc.h`; sheet §4.1 table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum RpMbox {
    /// Remote → host: the remote is ready.
    Ready = 0xFFFF_FF00,
    /// Legacy "message pending".
    PendingMsg = 0xFFFF_FF01,
    /// Remote → host: the remote crashed.
    Crash = 0xFFFF_FF02,
    /// Ping (Linux sends it when it opens the channel).
    EchoRequest = 0xFFFF_FF03,
    /// Pong.
    EchoReply = 0xFFFF_FF04,
    /// Host → remote: crash on purpose (test).
    AbortRequest = 0xFFFF_FF05,
    /// Host → remote: runtime (auto) suspend request.
    SuspendAuto = 0xFFFF_FF10,
    /// Host → remote: system suspend request.
    SuspendSystem = 0xFFFF_FF11,
    /// Remote → host: suspend accepted.
    SuspendAck = 0xFFFF_FF12,
    /// Remote → host: suspend refused.
    SuspendCancel = 0xFFFF_FF13,
    /// Host → remote: graceful shutdown request.
    ///
    /// UNCERTAIN(am62x-mailbox.md §4.1): from the K3 graceful-shutdown patch
    /// series, whose merge status the sheet could not verify; in kernels
    /// without it `0xFFFF_FF14` is only the `RP_MBOX_END_MSG` marker, which is
    /// never sent, so recognising it costs nothing. Pinned by the test
    /// `uncertain_shutdown_messages_recognised`.
    Shutdown = 0xFFFF_FF14,
    /// Remote → host: shutdown accepted (same UNCERTAIN as [`Self::Shutdown`]).
    ShutdownAck = 0xFFFF_FF15,
}

impl RpMbox {
    /// The prefix every control word shares: `0xFFFF_FFxx`.
    pub const PREFIX: u32 = 0xFFFF_FF00;

    /// Every known message.
    pub const ALL: [Self; 12] = [
        Self::Ready,
        Self::PendingMsg,
        Self::Crash,
        Self::EchoRequest,
        Self::EchoReply,
        Self::AbortRequest,
        Self::SuspendAuto,
        Self::SuspendSystem,
        Self::SuspendAck,
        Self::SuspendCancel,
        Self::Shutdown,
        Self::ShutdownAck,
    ];

    /// The mailbox word.
    #[must_use]
    pub const fn word(self) -> u32 {
        self as u32
    }

    /// The message a word stands for, or `None` if it is not a known one.
    #[must_use]
    pub const fn from_word(word: u32) -> Option<Self> {
        Some(match word {
            0xFFFF_FF00 => Self::Ready,
            0xFFFF_FF01 => Self::PendingMsg,
            0xFFFF_FF02 => Self::Crash,
            0xFFFF_FF03 => Self::EchoRequest,
            0xFFFF_FF04 => Self::EchoReply,
            0xFFFF_FF05 => Self::AbortRequest,
            0xFFFF_FF10 => Self::SuspendAuto,
            0xFFFF_FF11 => Self::SuspendSystem,
            0xFFFF_FF12 => Self::SuspendAck,
            0xFFFF_FF13 => Self::SuspendCancel,
            0xFFFF_FF14 => Self::Shutdown,
            0xFFFF_FF15 => Self::ShutdownAck,
            _ => return None,
        })
    }

    /// Whether `word` lies in the control space `0xFFFF_FFxx`.
    #[must_use]
    pub const fn is_control(word: u32) -> bool {
        word & Self::PREFIX == Self::PREFIX
    }

    /// Whether this is a suspend request from the host (TI power protocol).
    #[must_use]
    pub const fn is_suspend_request(self) -> bool {
        matches!(self, Self::SuspendAuto | Self::SuspendSystem)
    }
}

impl fmt::Display for RpMbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?} ({:#010x})", self.word())
    }
}

/// A control word received on a doorbell queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlEvent {
    /// A known message.
    Known(RpMbox),
    /// A word in the control space `0xFFFF_FFxx` that no known message uses
    /// (the raw word is kept).
    Unknown(u32),
}

/// What one word on a doorbell queue means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Word {
    /// A vring kick (raw id, sheet §4.1).
    Kick(QueueId),
    /// A control message.
    Control(ControlEvent),
    /// Neither: a protocol violation by the peer.
    Foreign(u32),
}

impl Word {
    /// Classifies a received word.
    #[must_use]
    pub fn classify(word: u32) -> Self {
        if let Some(q) = RawId::decode(word) {
            Self::Kick(q)
        } else if let Some(m) = RpMbox::from_word(word) {
            Self::Control(ControlEvent::Known(m))
        } else if RpMbox::is_control(word) {
            Self::Control(ControlEvent::Unknown(word))
        } else {
            Self::Foreign(word)
        }
    }
}

/// What a [`KickRx`] has received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KickCounters {
    /// Vring kicks (before coalescing).
    pub kicks: u32,
    /// Control words, known and unknown.
    pub control: u32,
    /// Control words that are no known message.
    pub unknown_control: u32,
    /// Words that are neither a kick nor a control word.
    pub not_a_kick: u32,
    /// Control events dropped because [`CONTROL_CAPACITY`] events were
    /// already waiting (the oldest is dropped).
    pub control_overflow: u32,
}

/// Control events a [`KickRx`] keeps until [`KickRx::take_control`].
pub const CONTROL_CAPACITY: usize = 8;

/// The receive side of the doorbell: drains a word queue, returns kicks as a
/// [`QueueSet`] and keeps control messages as [`ControlEvent`]s.
///
/// Draining is bounded per call (`max_words`), so a peer that keeps the
/// queue full cannot trap the caller.
///
/// # Errors
///
/// [`NotifyRx::take_pending`] returns
/// [`NotifyRxError::NotANotification`] (kind `Protocol`) for a word that is
/// neither a kick nor a control word; it is counted, and kicks gathered
/// before it are returned by the next call.
#[derive(Debug)]
pub struct KickRx<T> {
    rx: T,
    carry: QueueSet,
    max_words: u32,
    control: [ControlEvent; CONTROL_CAPACITY],
    control_head: usize,
    control_len: usize,
    counters: KickCounters,
}

impl<T: WordRx> KickRx<T> {
    /// Wraps `rx`, draining at most `max_words` words per call (at least 1).
    pub const fn new(rx: T, max_words: u32) -> Self {
        Self {
            rx,
            carry: QueueSet::EMPTY,
            max_words: if max_words == 0 { 1 } else { max_words },
            control: [ControlEvent::Unknown(0); CONTROL_CAPACITY],
            control_head: 0,
            control_len: 0,
            counters: KickCounters {
                kicks: 0,
                control: 0,
                unknown_control: 0,
                not_a_kick: 0,
                control_overflow: 0,
            },
        }
    }

    /// The oldest control event not yet taken.
    pub fn take_control(&mut self) -> Option<ControlEvent> {
        if self.control_len == 0 {
            return None;
        }
        let event = self.control[self.control_head];
        self.control_head = (self.control_head + 1) % CONTROL_CAPACITY;
        self.control_len -= 1;
        Some(event)
    }

    /// What has been received so far.
    pub const fn counters(&self) -> KickCounters {
        self.counters
    }

    /// The wrapped queue (for example to `listen`).
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.rx
    }

    /// Gives the queue back, with the kicks not yet returned.
    pub fn release(self) -> (T, QueueSet) {
        (self.rx, self.carry)
    }

    fn push_control(&mut self, event: ControlEvent) {
        if self.control_len == CONTROL_CAPACITY {
            self.counters.control_overflow = self.counters.control_overflow.wrapping_add(1);
            self.control_head = (self.control_head + 1) % CONTROL_CAPACITY;
            self.control_len -= 1;
        }
        let tail = (self.control_head + self.control_len) % CONTROL_CAPACITY;
        self.control[tail] = event;
        self.control_len += 1;
    }
}

impl<T: WordRx> ErrorType for KickRx<T> {
    type Error = NotifyRxError<T::Error>;
}

impl<T: WordRx> NotifyRx for KickRx<T> {
    fn take_pending(&mut self) -> Result<QueueSet, Self::Error> {
        for _ in 0..self.max_words {
            let word = match self.rx.try_recv() {
                Ok(word) => word,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(NotifyRxError::Channel(e)),
            };
            match Word::classify(word) {
                Word::Kick(q) => {
                    self.counters.kicks = self.counters.kicks.wrapping_add(1);
                    self.carry.insert(q);
                }
                Word::Control(event) => {
                    self.counters.control = self.counters.control.wrapping_add(1);
                    if matches!(event, ControlEvent::Unknown(_)) {
                        self.counters.unknown_control =
                            self.counters.unknown_control.wrapping_add(1);
                    }
                    self.push_control(event);
                }
                Word::Foreign(w) => {
                    self.counters.not_a_kick = self.counters.not_a_kick.wrapping_add(1);
                    return Err(NotifyRxError::NotANotification(w));
                }
            }
        }
        Ok(core::mem::take(&mut self.carry))
    }
}

/// Forwards to the wrapped queue's [`Listen`] (errors wrapped as
/// [`NotifyRxError::Channel`]).
impl<T: WordRx + Listen> Listen for KickRx<T> {
    fn listen(&mut self, event: Event) -> Result<(), Self::Error> {
        self.rx.listen(event).map_err(NotifyRxError::Channel)
    }
    fn unlisten(&mut self, event: Event) -> Result<(), Self::Error> {
        self.rx.unlisten(event).map_err(NotifyRxError::Channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    struct Words(VecDeque<u32>);
    impl ErrorType for Words {
        type Error = ErrorKind;
    }
    impl WordRx for Words {
        fn try_recv(&mut self) -> Result<u32, ErrorKind> {
            self.0.pop_front().ok_or(ErrorKind::WouldBlock)
        }
    }

    fn rx(words: &[u32]) -> KickRx<Words> {
        KickRx::new(Words(words.iter().copied().collect()), 64)
    }

    #[test]
    fn words_classify_per_sheet() {
        assert_eq!(Word::classify(0), Word::Kick(QueueId::new(0).unwrap()));
        assert_eq!(Word::classify(31), Word::Kick(QueueId::new(31).unwrap()));
        assert_eq!(Word::classify(32), Word::Foreign(32));
        // MCU+ client 1 (sync protocol) is not a kick (sheet §4.2).
        assert_eq!(Word::classify(0x1000_0001), Word::Foreign(0x1000_0001));
        for m in RpMbox::ALL {
            assert_eq!(
                Word::classify(m.word()),
                Word::Control(ControlEvent::Known(m))
            );
            assert_eq!(RpMbox::from_word(m.word()), Some(m));
        }
        assert_eq!(
            Word::classify(0xFFFF_FF20),
            Word::Control(ControlEvent::Unknown(0xFFFF_FF20))
        );
        // Sheet §4.1 table values.
        assert_eq!(RpMbox::EchoRequest.word(), 0xFFFF_FF03);
        assert_eq!(RpMbox::SuspendAuto.word(), 0xFFFF_FF10);
        assert_eq!(RpMbox::SuspendSystem.word(), 0xFFFF_FF11);
        assert_eq!(RpMbox::SuspendAck.word(), 0xFFFF_FF12);
        assert_eq!(RpMbox::SuspendCancel.word(), 0xFFFF_FF13);
        assert!(RpMbox::SuspendSystem.is_suspend_request());
        assert!(!RpMbox::SuspendAck.is_suspend_request());
    }

    #[test]
    fn uncertain_shutdown_messages_recognised() {
        assert_eq!(RpMbox::from_word(0xFFFF_FF14), Some(RpMbox::Shutdown));
        assert_eq!(RpMbox::from_word(0xFFFF_FF15), Some(RpMbox::ShutdownAck));
        assert_eq!(RpMbox::from_word(0xFFFF_FF16), None);
        assert_eq!(RpMbox::from_word(0xFFFF_FF06), None);
    }

    #[test]
    fn control_words_are_events_not_kicks() {
        let mut k = rx(&[1, RpMbox::SuspendSystem.word(), 0, 0xFFFF_FF77, 1]);
        let set = k.take_pending().unwrap();
        assert_eq!(set.bits(), 0b11);
        assert_eq!(
            k.take_control(),
            Some(ControlEvent::Known(RpMbox::SuspendSystem))
        );
        assert_eq!(k.take_control(), Some(ControlEvent::Unknown(0xFFFF_FF77)));
        assert_eq!(k.take_control(), None);
        let c = k.counters();
        assert_eq!(
            (c.kicks, c.control, c.unknown_control, c.not_a_kick),
            (3, 2, 1, 0)
        );
    }

    #[test]
    fn foreign_word_is_counted_error_and_loses_no_kick() {
        let mut k = rx(&[2, 0xDEAD, 3]);
        assert_eq!(
            k.take_pending(),
            Err(NotifyRxError::NotANotification(0xDEAD))
        );
        assert_eq!(k.take_pending().unwrap().bits(), 0b1100);
        assert_eq!(k.counters().not_a_kick, 1);
        assert_eq!(
            NotifyRxError::<ErrorKind>::NotANotification(0).kind(),
            ErrorKind::Protocol
        );
    }

    #[test]
    fn control_overflow_drops_oldest_and_counts() {
        let words: Vec<u32> = (0..CONTROL_CAPACITY as u32 + 2)
            .map(|i| 0xFFFF_FF80 + i)
            .collect();
        let mut k = rx(&words);
        assert!(k.take_pending().unwrap().is_empty());
        assert_eq!(k.counters().control_overflow, 2);
        assert_eq!(k.take_control(), Some(ControlEvent::Unknown(0xFFFF_FF82)));
        let rest = core::iter::from_fn(|| k.take_control()).count();
        assert_eq!(rest, CONTROL_CAPACITY - 1);
    }

    #[test]
    fn draining_is_bounded() {
        let mut k = KickRx::new(Words([0, 1, 2].into_iter().collect()), 2);
        assert_eq!(k.take_pending().unwrap().bits(), 0b011);
        assert_eq!(k.take_pending().unwrap().bits(), 0b100);
        let mut k = KickRx::new(Words([5].into_iter().collect()), 0);
        assert_eq!(k.take_pending().unwrap().bits(), 1 << 5);
    }
}
