#![doc = include_str!("../README.md")]
#![cfg_attr(not(any(test, feature = "sim")), no_std)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Only `mmio` (the one constructor from an address) and `sim` (the model's
// `Regs32` implementation) allow unsafe code, each in its own module.
#![deny(unsafe_code)]

mod driver;
pub mod kick;
mod mmio;
pub mod registers;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;

pub use driver::{
    AnyQueue, Direction, Irq, IrqCounters, Mbox, MboxParts, Queue, Rx, Tx, Unconfigured,
};
pub use ipc_traits::mailbox::{
    blocking_notify, blocking_recv, blocking_send, Event, Events, InterruptSource, Listen, Mailbox,
    Notify, NotifyRx, QueueId, QueueSet, Spins, WordRx, WordTx,
};
pub use kick::{ControlEvent, KickCounters, KickRx, RpMbox, Word, CONTROL_CAPACITY};
pub use registers::FIFO_DEPTH;

use core::fmt;

use ipc_traits::mailbox::ErrorKind;

/// One of the four users of a mailbox cluster: an interrupt output with its
/// own status and enable registers (sheet `am62x-mailbox.md` §1, §2).
///
/// Which CPU is wired to which user is fixed by the SoC. On AM62x cluster 0
/// the Linux A53 is user 0, the R5F (device manager) user 1 and the M4F
/// user 2 (sheet §3.1, MCU+ table and Linux device tree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum User {
    /// User 0.
    U0 = 0,
    /// User 1.
    U1 = 1,
    /// User 2.
    U2 = 2,
    /// User 3.
    U3 = 3,
}

impl User {
    /// The Linux A53 cluster's user on cluster 0 (sheet §3.1: `ti,mbox-rx =
    /// <0 0 0>`, usr_id 0).
    pub const A53: Self = Self::U0;
    /// The R5F (device manager) user on cluster 0 (sheet §3.1, MCU+ table).
    pub const R5F: Self = Self::U1;
    /// The M4F user on cluster 0 (sheet §3.1: MCU+ table, NVIC 50 = cluster 0
    /// user 2).
    pub const M4F: Self = Self::U2;

    /// Every user, in index order.
    pub const ALL: [Self; 4] = [Self::U0, Self::U1, Self::U2, Self::U3];

    /// The user index (0..=3).
    #[must_use]
    pub const fn index(self) -> u8 {
        self as u8
    }

    /// The user with `index`, or `None` if `index >= 4`.
    #[must_use]
    pub const fn from_index(index: u8) -> Option<Self> {
        match index {
            0 => Some(Self::U0),
            1 => Some(Self::U1),
            2 => Some(Self::U2),
            3 => Some(Self::U3),
            _ => None,
        }
    }
}

impl fmt::Display for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "user {}", self.index())
    }
}

/// The queue assignment Linux and TI's MCU+ SDK use between the A53 and the
/// M4F on cluster 0 (sheet §3.1, §4).
///
/// Linux (user 0) receives on queue 0 and sends on queue 1; the M4F (user 2)
/// is the mirror image. A kick is the raw vring id (sheet §4.1), so the
/// doorbell is [`Queue`]'s [`Notify`] implementation and [`KickRx`], which
/// also recognises the `0xFFFF_FFxx` control messages.
pub mod convention {
    use super::User;

    /// Linux's user on cluster 0.
    pub const LINUX_USER: User = User::A53;
    /// The M4F's user on cluster 0.
    pub const M4F_USER: User = User::M4F;
    /// M4F → A53: Linux receives here (`ti,mbox-rx = <0 0 0>`, sheet §3.1).
    pub const M4F_TO_LINUX: u8 = 0;
    /// A53 → M4F: Linux sends here (`ti,mbox-tx = <1 0 0>`, sheet §3.1).
    pub const LINUX_TO_M4F: u8 = 1;
    /// The vring the remote transmits on (`RPMESSAGE_LINUX_TX_VRING_ID`,
    /// sheet §4.2): the M4F kicks it after filling a buffer.
    pub const REMOTE_TX_VRING: u8 = 0;
    /// The vring the remote receives on (`RPMESSAGE_LINUX_RX_VRING_ID`, sheet
    /// §4.2): Linux kicks it after adding a buffer for the remote.
    pub const REMOTE_RX_VRING: u8 = 1;
}

/// What can go wrong on an AM62x mailbox queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The queue holds [`FIFO_DEPTH`] words; nothing was written (the hardware
    /// would have discarded it, sheet §1). Retry later.
    Full,
    /// The queue holds no word. Retry later.
    Empty,
    /// This handle cannot raise `event` (a receive queue has no
    /// `SpaceAvailable`, a transmit queue no `DataAvailable`, an unconfigured
    /// queue neither).
    EventNotAvailable(Event),
}

impl ipc_traits::mailbox::Error for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Full | Self::Empty => ErrorKind::WouldBlock,
            Self::EventNotAvailable(_) => ErrorKind::Unsupported,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("mailbox queue full; nothing written, retry later"),
            Self::Empty => f.write_str("mailbox queue empty; retry later"),
            Self::EventNotAvailable(e) => write!(f, "this queue handle cannot raise {e:?}"),
        }
    }
}

impl core::error::Error for Error {}
