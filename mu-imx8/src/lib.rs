#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), no_std)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]

#[cfg(all(feature = "sim", not(test)))]
extern crate std;

mod channel;
mod error;
mod gp;
mod irq;
mod mmio;
mod mu;
pub mod registers;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;

pub use channel::{
    Channel, Direction, RpmsgNotify, RpmsgNotifyRx, Rx, RxChannel, Tx, TxChannel, RPMSG_CHANNEL,
    RPMSG_DRAIN,
};
pub use error::Error;
pub use gp::{Gp, PowerMode};
pub use irq::{Anomaly, Irq, IrqStats, Report};
pub use mu::{Flags, Mu, MuParts};

/// Bounded blocking helpers and budgets, re-exported from `ipc-traits`.
pub use ipc_traits::mailbox::{
    blocking_notify, blocking_recv, blocking_send, Budget, Deadline, Spins,
};
