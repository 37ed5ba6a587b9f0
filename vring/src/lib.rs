#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub mod device;
pub mod driver;
pub mod endian;
pub mod error;
pub mod layout;
pub mod notify;
mod ring;
#[cfg(test)]
mod tests;

pub use device::{BufferArea, Device, DeviceConfig, DeviceTables, Passed, Popped, Slot};
pub use driver::{Driver, DriverConfig, ReapError, Used};
pub use endian::{Endian, Legacy, Virtio1};
pub use error::{Error, Failures, Stats};
pub use layout::Layout;
pub use notify::Suppression;
