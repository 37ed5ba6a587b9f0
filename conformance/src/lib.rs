#![doc = include_str!("../README.md")]

pub mod duplex;
pub mod faults;
pub mod interrupt_driven;
pub mod link;
pub mod mailbox;
pub mod power;
pub mod rng;
pub mod sim;
pub mod stream;
