#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

pub mod areas;
pub mod backend;
pub mod demo;
pub mod doorbell;
pub mod error;
pub mod memory;
pub mod pattern;
pub mod protocol;
pub mod remote;
pub mod sys;
pub mod uml;

pub use areas::{rpmsg_areas, AreaError, RpmsgAreas};
pub use backend::{Backend, BackendConfig, QueueConfig, Ready, Server};
pub use doorbell::{Calls, DoorbellError, Kicks};
pub use error::Error;
pub use memory::{GuestMemory, Region, SharedRegion};
pub use protocol::ProtocolError;
pub use remote::{remote_config, suppression};
