#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), no_std)]

pub mod link;
pub mod rings;
pub mod rsc_table;
pub mod table;
pub mod wire;
