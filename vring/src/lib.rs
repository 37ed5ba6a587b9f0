#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

/// Adds one (or `$n`) to a success counter of [`Stats`], wrapping, with the
/// feature `stats`; compiles to nothing without it (the layer is paid only
/// by an application that reads the counters). Peer-error counters
/// ([`Failures`], [`Stats::rejected_returned`]) are always kept.
///
/// Exported, hidden, for `rpmsg`'s counters (the `cfg` is the calling
/// crate's: `rpmsg`'s `stats` turns on this crate's).
#[doc(hidden)]
#[macro_export]
macro_rules! count {
    ($c:expr) => {
        $crate::count!($c, 1)
    };
    ($c:expr, $n:expr) => {
        #[cfg(feature = "stats")]
        {
            $c = $c.wrapping_add($n);
        }
    };
}

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
