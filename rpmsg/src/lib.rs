#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), no_std)]

pub mod boot;
mod error;
pub mod link;
#[cfg(feature = "smoltcp-014")]
#[cfg_attr(docsrs, doc(cfg(feature = "smoltcp-014")))]
pub mod net;
pub mod rings;
pub mod rsc_table;
pub mod session;
pub mod soc;
pub mod split;
#[cfg(feature = "embedded-io-07")]
#[cfg_attr(docsrs, doc(cfg(feature = "embedded-io-07")))]
pub mod stream;
pub mod table;
pub mod wake;
pub mod wire;

pub use boot::Profile;
pub use error::Error;
/// The contracts and shared-memory windows (`ipc_traits::shm::RawRegion`,
/// `ipc_traits::cache::Coherent`, ...), reachable without a dependency of
/// one's own.
pub use ipc_traits;
/// The rings (`vring::Legacy`, ...), reachable without a dependency of
/// one's own.
pub use vring;
