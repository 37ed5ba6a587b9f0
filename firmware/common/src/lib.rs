//! Shared parts of the firmware examples and the emulated images. Both
//! halves of the start-up (the remote's wait for `DRIVER_OK` and its rings,
//! the host's lay-out done the way Linux does it) are the library's:
//! [`rpmsg::boot`].
//!
//! - [`echo`]: the echo service the examples announce to Linux as
//!   `rpmsg-tty` and `rpmsg-raw`.
//! - [`trace`]: a `core::fmt::Write` log into the resource table's trace
//!   buffer (remoteproc's debugfs `trace0`).
//! - [`doorbell`]: a doorbell in memory (one bit per queue), for cores that
//!   share coherent memory but no mailbox.
//! - [`shared`]: one doorbell handle used by a link and by other code.
//! - [`mem`]: line-aligned statics for tables and shared areas.
//! - [`client`] and [`pair`]: the host's echo client, and a host and a
//!   remote taking turns on one core (the emulated Cortex-M4 image).
//!
//! Every function here is non-blocking: the firmware's main loop (or the
//! emulated image's scheduler) calls it again after the next interrupt.
#![cfg_attr(not(test), no_std)]

pub mod client;
pub mod doorbell;
pub mod echo;
pub mod mem;
pub mod pair;
pub mod shared;
pub mod trace;

#[cfg(test)]
mod tests;
