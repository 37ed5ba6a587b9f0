#![doc = include_str!("../README.md")]

pub mod faults;
pub mod interrupt_driven;
pub mod link;
pub mod mailbox;
pub mod net;
pub mod power;
pub mod rng;
pub mod sim;
pub mod stream;
