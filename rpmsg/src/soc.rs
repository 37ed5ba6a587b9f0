//! SoC features: each re-exports one mailbox backend and the notifier types
//! that follow that platform's rpmsg convention
//! (shared/docs/hw/rpmsg-wire.md §3.4), so switching SoC is changing one
//! feature. Several may be enabled at once (each has its own module); with
//! exactly one enabled, `soc::current` names it.
#![deny(unsafe_code)]

/// NXP i.MX8M Messaging Unit (feature `imx8`): the remote kicks and is
/// kicked on MU channel 1 with `vq_id << 16`.
#[cfg(feature = "imx8")]
#[cfg_attr(docsrs, doc(cfg(feature = "imx8")))]
pub mod imx8 {
    pub use mu_imx8 as backend;
    /// The doorbell towards Linux (`TxChannel<R, 1>` with the `UpperHalf` codec).
    pub use mu_imx8::RpmsgNotify as Notifier;
    /// Doorbells from Linux (`RxChannel<R, 1>`).
    pub use mu_imx8::RpmsgNotifyRx as NotifyReceiver;
}

/// TI AM62x mailbox cluster (feature `am62x`): raw vring ids, Linux sends
/// on queue 1 and receives on queue 0; `0xFFFFFFxx` control words come out
/// of [`am62x::NotifyReceiver`] as typed events.
#[cfg(feature = "am62x")]
#[cfg_attr(docsrs, doc(cfg(feature = "am62x")))]
pub mod am62x {
    pub use mbox_am62x as backend;
    pub use mbox_am62x::convention;
    /// Doorbells from Linux, control messages surfaced.
    pub use mbox_am62x::KickRx as NotifyReceiver;
    /// The doorbell towards Linux: a transmit queue.
    pub type Notifier<R, const N: u8> = mbox_am62x::Queue<R, N, mbox_am62x::Tx>;
}

/// Allwinner V853 msgbox (feature `v853`): raw vring ids on channel 0.
#[cfg(feature = "v853")]
#[cfg_attr(docsrs, doc(cfg(feature = "v853")))]
pub mod v853 {
    pub use msgbox_v853 as backend;
    pub use msgbox_v853::{Notifier, NotifyReceiver, RPMSG_CHANNEL};
}

/// Cavium OCTEON CIU mailbox (feature `octeon`): one doorbell bit per
/// queue, coherent memory.
#[cfg(feature = "octeon")]
#[cfg_attr(docsrs, doc(cfg(feature = "octeon")))]
pub mod octeon {
    pub use mbox_octeon as backend;
    /// Doorbells from the peer: bits of our mailbox.
    pub use mbox_octeon::RxQueues as NotifyReceiver;
    /// The doorbell towards the peer core: bits of its mailbox.
    pub use mbox_octeon::TxQueues as Notifier;
}

/// The one SoC enabled (when exactly one SoC feature is on).
#[cfg(all(
    feature = "am62x",
    not(any(feature = "imx8", feature = "v853", feature = "octeon"))
))]
pub use am62x as current;
/// The one SoC enabled (when exactly one SoC feature is on).
#[cfg(all(
    feature = "imx8",
    not(any(feature = "am62x", feature = "v853", feature = "octeon"))
))]
pub use imx8 as current;
/// The one SoC enabled (when exactly one SoC feature is on).
#[cfg(all(
    feature = "octeon",
    not(any(feature = "imx8", feature = "am62x", feature = "v853"))
))]
pub use octeon as current;
/// The one SoC enabled (when exactly one SoC feature is on).
#[cfg(all(
    feature = "v853",
    not(any(feature = "imx8", feature = "am62x", feature = "octeon"))
))]
pub use v853 as current;
