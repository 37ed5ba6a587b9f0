//! Register map of the V853 msgbox (Allwinner "msgbox v2").
//!
//! Every fact here comes from `shared/docs/hw/v853-msgbox.md` (the *sheet*),
//! cited by section. There is no V853 user manual; the sheet was built from
//! Allwinner's BSP drivers and device trees.
//!
//! # Layout in one paragraph
//!
//! Each processor owns one **block** (ARM/A7 at `0x0300_3000`, RISC-V/E907
//! at `0x0602_0000`, sheet §1). A block holds one **sub-block per remote
//! processor** at `0x100 × N` ([`sub_block`], [`coef_n`], sheet §3); on the
//! two-processor V853 `N` is 0 in both directions. A sender writes into the
//! **receiver's** block: the A7 sends on channel `p` by writing
//! [`msg_fifo`]`(p)` in the E907's block, and the E907 reads it there
//! (sheet §3). The transmit interrupt registers (`WRITE_IRQ_*`) for that
//! direction also sit in the receiver's block.
//!
//! # Registers with side effects
//!
//! - [`msg_fifo`]: a **read pops** the oldest message (sheet §2). Only the
//!   owning receive handle reads it.
//! - [`READ_IRQ_STATUS`] and [`WRITE_IRQ_STATUS`]: **write-1-to-clear**
//!   (sheet §2). The driver writes only the bits it means to clear, never a
//!   read-modify-write (the sheet warns that the Linux driver's RMW clears
//!   every other pending bit too).
//!
//! # The older sun6i layout (documented, not implemented)
//!
//! A31/H3/A64/H6 use a different "sun6i" msgbox: one shared block with eight
//! unidirectional 4-deep FIFOs, direction set per FIFO in `CTRL_REG(n)` at
//! `0x00 + 4·(n/4)`, local/remote IRQ enable/status at `0x40/0x50/0x60/0x70`,
//! `FIFO_STAT(n)` at `0x100 + 4n`, `MSG_STAT(n)` at `0x140 + 4n` and
//! `MSG_DATA(n)` at `0x180 + 4n` (sheet §5, background only, not re-read).
//! Its offsets must **not** be used on V853, and this crate does not
//! implement it: a sun6i driver would need direction type-states
//! (`Unconfigured` → `Tx`/`Rx` through `CTRL_REG`), which v2 does not have.
#![deny(unsafe_code)]
// The bitfield names match the vendor driver's register names (STYLE R8).
#![allow(non_camel_case_types)]

use tock_registers::fields::Field;

// ---------------------------------------------------------------------------
// Instances, processors, channels (sheet §1, §2)
// ---------------------------------------------------------------------------

/// Physical base of the ARM (Cortex-A7) block, processor id 0 (sheet §1,
/// `sun8iw21p1.dtsi`, first `reg` entry).
pub const ARM_BLOCK_BASE: usize = 0x0300_3000;

/// Physical base of the RISC-V (E907) block, processor id 1 (sheet §1,
/// `sun8iw21p1.dtsi`, second `reg` entry). The E907 sees both blocks at the
/// same physical addresses (sheet §1, weak provenance).
pub const RISCV_BLOCK_BASE: usize = 0x0602_0000;

/// Size of one processor block in bytes (sheet §1).
pub const BLOCK_SIZE: usize = 0x1000;

/// Number of processors sharing the msgbox on V853 (sheet §2,
/// `PROCESSORS_MAX = 2`).
pub const PROCESSORS: u8 = 2;

/// Channels per processor pair (sheet §2, `CHANNELS_MAX = 4`).
pub const CHANNELS: u8 = 4;

/// Messages a channel FIFO holds, per direction (sheet §2: 8 × 32 bits).
pub const FIFO_DEPTH: u32 = 8;

/// Stride between the per-remote sub-blocks of a block (sheet §2).
pub const SUB_BLOCK_STRIDE: usize = 0x100;

/// A processor on the msgbox, with its vendor id (sheet §1: `local_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Processor {
    /// The Cortex-A7 (Linux), id 0, block at [`ARM_BLOCK_BASE`].
    Arm = 0,
    /// The XuanTie E907, id 1, block at [`RISCV_BLOCK_BASE`].
    Riscv = 1,
}

impl Processor {
    /// The vendor processor id (sheet §1).
    #[must_use]
    pub const fn id(self) -> u8 {
        self as u8
    }

    /// The physical base of this processor's block (sheet §1).
    #[must_use]
    pub const fn block_base(self) -> usize {
        match self {
            Self::Arm => ARM_BLOCK_BASE,
            Self::Riscv => RISCV_BLOCK_BASE,
        }
    }

    /// The other processor.
    #[must_use]
    pub const fn peer(self) -> Self {
        match self {
            Self::Arm => Self::Riscv,
            Self::Riscv => Self::Arm,
        }
    }
}

/// The vendor "coefficient N": the index of the sub-block in `local`'s
/// block that talks to `remote` (sheet §3, `sunxi_msgbox_coef_n`).
///
/// `coef_n(local, remote) = remote < local ? remote : remote - 1`.
/// Returns 0 for `local == remote`, which is not a valid pair.
#[must_use]
pub const fn coef_n(local: u8, remote: u8) -> u8 {
    if remote < local {
        remote
    } else {
        remote.saturating_sub(1)
    }
}

/// Byte offset of sub-block `n` inside a block (sheet §2: `0x100 × N`).
#[must_use]
pub const fn sub_block(n: u8) -> usize {
    SUB_BLOCK_STRIDE * n as usize
}

/// The sub-block this driver uses, in both directions.
///
/// Transmit from L to R uses `coef_n(R, L)` in R's block, receive on L from
/// R uses `coef_n(L, R)` in L's block (sheet §3). With two processors both
/// are 0, so every offset below is relative to the block base.
pub const V853_SUB_BLOCK: usize = sub_block(coef_n(Processor::Arm.id(), Processor::Riscv.id()));

const _: () = assert!(coef_n(Processor::Arm.id(), Processor::Riscv.id()) == 0);
const _: () = assert!(coef_n(Processor::Riscv.id(), Processor::Arm.id()) == 0);

// ---------------------------------------------------------------------------
// Offsets (sheet §2 table; all relative to `B + 0x100 × N`)
// ---------------------------------------------------------------------------

/// `VER`: version register, read-only; value unknown (sheet §2, from the RTOS
/// HALs only).
pub const VER: usize = V853_SUB_BLOCK + 0x10;

/// `READ_IRQ_ENABLE`: bit `2p` enables channel `p`'s "message received"
/// interrupt (sheet §2). Lives in the **receiver's** block; shared by the
/// four receive handles of that processor.
pub const READ_IRQ_ENABLE: usize = V853_SUB_BLOCK + 0x20;

/// `READ_IRQ_STATUS`: bit `2p` set while channel `p` has received data;
/// **write 1 to clear**, and the bit can only be cleared once the FIFO is
/// empty (sheet §2).
pub const READ_IRQ_STATUS: usize = V853_SUB_BLOCK + 0x24;

/// `WRITE_IRQ_ENABLE`: bit `2p + 1` enables channel `p`'s "FIFO writable"
/// interrupt (sheet §2). Lives in the **receiver's** block and is written by
/// the sender; shared by the sender's four transmit handles.
pub const WRITE_IRQ_ENABLE: usize = V853_SUB_BLOCK + 0x30;

/// `WRITE_IRQ_STATUS`: bit `2p + 1` set when channel `p`'s FIFO has reached
/// the write threshold of empty slots; **write 1 to clear** (sheet §2).
pub const WRITE_IRQ_STATUS: usize = V853_SUB_BLOCK + 0x34;

/// `DEBUG`: read/write, semantics unknown, unused by every driver (sheet §2,
/// §7).
pub const DEBUG: usize = V853_SUB_BLOCK + 0x40;

/// Offset of `FIFO_STATUS(0)`; channel `p` is at `+ 4p` ([`fifo_status`]).
pub const FIFO_STATUS_BASE: usize = V853_SUB_BLOCK + 0x50;
/// Offset of `MSG_STATUS(0)`; channel `p` is at `+ 4p` ([`msg_status`]).
pub const MSG_STATUS_BASE: usize = V853_SUB_BLOCK + 0x60;
/// Offset of `MSG_FIFO(0)`; channel `p` is at `+ 4p` ([`msg_fifo`]).
pub const MSG_FIFO_BASE: usize = V853_SUB_BLOCK + 0x70;
/// Offset of `WRITE_IRQ_THRESHOLD(0)`; channel `p` is at `+ 4p`
/// ([`write_irq_threshold`]).
pub const WRITE_IRQ_THRESHOLD_BASE: usize = V853_SUB_BLOCK + 0x80;

/// `FIFO_STATUS(p)`, read-only. **No driver reads it** and its bit meaning is
/// UNVERIFIED (sheet §2, §7); this driver never reads it either.
#[must_use]
pub const fn fifo_status(p: u8) -> usize {
    FIFO_STATUS_BASE + 4 * p as usize
}

/// `MSG_STATUS(p)`, read-only: `[3:0]` = messages in FIFO `p`, 0..=8
/// (sheet §2, driver mask `0xF`).
#[must_use]
pub const fn msg_status(p: u8) -> usize {
    MSG_STATUS_BASE + 4 * p as usize
}

/// `MSG_FIFO(p)`: a write pushes a 32-bit message, a **read pops** one
/// (sheet §2).
#[must_use]
pub const fn msg_fifo(p: u8) -> usize {
    MSG_FIFO_BASE + 4 * p as usize
}

/// `WRITE_IRQ_THRESHOLD(p)`, read/write: `[1:0]` encodes the number of empty
/// slots at which the write interrupt fires (sheet §2).
#[must_use]
pub const fn write_irq_threshold(p: u8) -> usize {
    WRITE_IRQ_THRESHOLD_BASE + 4 * p as usize
}

// ---------------------------------------------------------------------------
// Bitfields (sheet §2)
// ---------------------------------------------------------------------------

/// The bitfield definitions, generated by `tock_registers::register_bitfields!`
/// and re-exported at the top of this module.
///
/// Every field and named value carries its own docs; the lint is relaxed here
/// only for the items the macro adds by itself (`Register` markers, `SET` /
/// `CLEAR` values, `Value` enums).
#[allow(missing_docs)]
pub mod bitfields {
    use tock_registers::register_bitfields;

    register_bitfields![u32,
        /// `READ_IRQ_ENABLE` and `READ_IRQ_STATUS`: one bit per channel at `2p`
        /// (sheet §2; `RD_IRQ_EN_SHIFT(p)`/`RD_IRQ_PEND_SHIFT(p)` = `2p`).
        pub READ_IRQ [
            /// Channel 0 received data.
            RD_IRQ0 OFFSET(0) NUMBITS(1) [],
            /// Channel 1 received data.
            RD_IRQ1 OFFSET(2) NUMBITS(1) [],
            /// Channel 2 received data.
            RD_IRQ2 OFFSET(4) NUMBITS(1) [],
            /// Channel 3 received data.
            RD_IRQ3 OFFSET(6) NUMBITS(1) []
        ],
        /// `WRITE_IRQ_ENABLE` and `WRITE_IRQ_STATUS`: one bit per channel at
        /// `2p + 1` (sheet §2; `WR_IRQ_EN_SHIFT(p)`/`WR_IRQ_PEND_SHIFT(p)` =
        /// `2p + 1`).
        pub WRITE_IRQ [
            /// Channel 0's FIFO reached the write threshold.
            WR_IRQ0 OFFSET(1) NUMBITS(1) [],
            /// Channel 1's FIFO reached the write threshold.
            WR_IRQ1 OFFSET(3) NUMBITS(1) [],
            /// Channel 2's FIFO reached the write threshold.
            WR_IRQ2 OFFSET(5) NUMBITS(1) [],
            /// Channel 3's FIFO reached the write threshold.
            WR_IRQ3 OFFSET(7) NUMBITS(1) []
        ],
        /// `FIFO_STATUS(p)`.
        pub FIFO_STATUS [
            /// UNCERTAIN(v853-msgbox.md §2, §7): "probably bit 0 = FIFO full";
            /// no driver reads the register. The simulation models it this way;
            /// the driver does not depend on it.
            FULL OFFSET(0) NUMBITS(1) []
        ],
        /// `MSG_STATUS(p)`.
        pub MSG_STATUS [
            /// Number of messages in the FIFO, 0..=8 (sheet §2, mask `0xF`).
            NUM OFFSET(0) NUMBITS(4) []
        ],
        /// `WRITE_IRQ_THRESHOLD(p)`.
        pub WRITE_IRQ_THRESHOLD [
            /// Empty-slot count at which the write interrupt fires (sheet §2).
            THRESHOLD OFFSET(0) NUMBITS(2) [
                /// One empty slot: "fires whenever the FIFO is not full" (the
                /// vendor driver's setting).
                One = 0,
                /// Two empty slots.
                Two = 1,
                /// Four empty slots.
                Four = 2,
                /// Eight empty slots (FIFO empty).
                Eight = 3
            ]
        ]
    ];
}

pub use bitfields::{FIFO_STATUS, MSG_STATUS, READ_IRQ, WRITE_IRQ, WRITE_IRQ_THRESHOLD};

/// The `READ_IRQ_*` bit of channel `p` (`2p`, sheet §2).
#[must_use]
pub const fn read_irq(p: u8) -> Field<u32, READ_IRQ::Register> {
    Field::new(1, 2 * p as usize)
}

/// The `WRITE_IRQ_*` bit of channel `p` (`2p + 1`, sheet §2).
#[must_use]
pub const fn write_irq(p: u8) -> Field<u32, WRITE_IRQ::Register> {
    Field::new(1, 2 * p as usize + 1)
}

/// Every bit `READ_IRQ_*` can carry (channels 0..=3, even bits).
pub const READ_IRQ_MASK: u32 = 0x55;

/// Every bit `WRITE_IRQ_*` can carry (channels 0..=3, odd bits).
pub const WRITE_IRQ_MASK: u32 = 0xAA;

// ---------------------------------------------------------------------------
// Reset values
// ---------------------------------------------------------------------------

/// Reset value of `READ_IRQ_ENABLE`: all read interrupts off. UNCERTAIN
/// (v853-msgbox.md §2): no reset values are documented; 0 is what the
/// vendor probe code leaves after disabling everything.
pub const READ_IRQ_ENABLE_RESET: u32 = 0;
/// Reset value of `READ_IRQ_STATUS`: nothing received (FIFOs empty).
pub const READ_IRQ_STATUS_RESET: u32 = 0;
/// Reset value of `WRITE_IRQ_ENABLE`: all write interrupts off (UNCERTAIN as
/// for [`READ_IRQ_ENABLE_RESET`]).
pub const WRITE_IRQ_ENABLE_RESET: u32 = 0;
/// Reset value of `WRITE_IRQ_STATUS`: every channel pending.
///
/// UNCERTAIN(v853-msgbox.md §2): the sheet says the bit is set when the
/// empty-slot count reaches the threshold and is W1C. The model keeps it
/// asserted while the condition holds (as the sheet infers for the read
/// status), and at reset every FIFO is empty (8 ≥ any threshold), so all
/// four bits read 1.
pub const WRITE_IRQ_STATUS_RESET: u32 = WRITE_IRQ_MASK;
/// Reset value of `WRITE_IRQ_THRESHOLD(p)`: encoding 0 = one empty slot.
/// UNCERTAIN(v853-msgbox.md §2): undocumented; every driver programs 1
/// explicitly.
pub const WRITE_IRQ_THRESHOLD_RESET: u32 = 0;
/// Reset value of `MSG_STATUS(p)`: empty FIFO.
pub const MSG_STATUS_RESET: u32 = 0;
/// Reset value of `FIFO_STATUS(p)`: not full.
pub const FIFO_STATUS_RESET: u32 = 0;
/// Reset value of `DEBUG` (UNCERTAIN: undocumented, modelled as 0).
pub const DEBUG_RESET: u32 = 0;
/// Value the model returns for `VER`. UNCERTAIN(v853-msgbox.md §2, §7): the
/// version value is unknown; modelled as 0. The driver never reads it.
pub const VER_RESET: u32 = 0;

#[cfg(test)]
mod tests {
    use super::*;

    /// The sheet's §2 table, transcribed by hand: (name, offset).
    const SHEET_OFFSETS: &[(&str, usize)] = &[
        ("VER", 0x10),
        ("READ_IRQ_ENABLE", 0x20),
        ("READ_IRQ_STATUS", 0x24),
        ("WRITE_IRQ_ENABLE", 0x30),
        ("WRITE_IRQ_STATUS", 0x34),
        ("DEBUG", 0x40),
        ("FIFO_STATUS(0)", 0x50),
        ("FIFO_STATUS(1)", 0x54),
        ("FIFO_STATUS(2)", 0x58),
        ("FIFO_STATUS(3)", 0x5C),
        ("MSG_STATUS(0)", 0x60),
        ("MSG_STATUS(1)", 0x64),
        ("MSG_STATUS(2)", 0x68),
        ("MSG_STATUS(3)", 0x6C),
        ("MSG_FIFO(0)", 0x70),
        ("MSG_FIFO(1)", 0x74),
        ("MSG_FIFO(2)", 0x78),
        ("MSG_FIFO(3)", 0x7C),
        ("WRITE_IRQ_THRESHOLD(0)", 0x80),
        ("WRITE_IRQ_THRESHOLD(1)", 0x84),
        ("WRITE_IRQ_THRESHOLD(2)", 0x88),
        ("WRITE_IRQ_THRESHOLD(3)", 0x8C),
    ];

    fn ours() -> Vec<(String, usize)> {
        let mut v = vec![
            ("VER".to_string(), VER),
            ("READ_IRQ_ENABLE".to_string(), READ_IRQ_ENABLE),
            ("READ_IRQ_STATUS".to_string(), READ_IRQ_STATUS),
            ("WRITE_IRQ_ENABLE".to_string(), WRITE_IRQ_ENABLE),
            ("WRITE_IRQ_STATUS".to_string(), WRITE_IRQ_STATUS),
            ("DEBUG".to_string(), DEBUG),
        ];
        for (name, f) in [
            ("FIFO_STATUS", fifo_status as fn(u8) -> usize),
            ("MSG_STATUS", msg_status),
            ("MSG_FIFO", msg_fifo),
            ("WRITE_IRQ_THRESHOLD", write_irq_threshold),
        ] {
            for p in 0..CHANNELS {
                v.push((format!("{name}({p})"), f(p)));
            }
        }
        v
    }

    #[test]
    fn every_offset_matches_the_sheet_table() {
        let ours = ours();
        assert_eq!(ours.len(), SHEET_OFFSETS.len());
        for ((name, off), (sheet_name, sheet_off)) in ours.iter().zip(SHEET_OFFSETS) {
            assert_eq!(name, sheet_name);
            assert_eq!(*off, *sheet_off, "{name}");
        }
    }

    #[test]
    fn offsets_are_aligned_distinct_and_inside_one_sub_block() {
        let ours = ours();
        for (i, (name, off)) in ours.iter().enumerate() {
            assert_eq!(off % 4, 0, "{name} misaligned");
            assert!(*off < SUB_BLOCK_STRIDE, "{name} leaves the sub-block");
            for (other, o) in &ours[i + 1..] {
                assert_ne!(off, o, "{name} and {other} overlap");
            }
        }
    }

    #[test]
    fn instances_and_sizes_match_the_sheet() {
        // Sheet §1 table.
        assert_eq!(Processor::Arm.block_base(), 0x0300_3000);
        assert_eq!(Processor::Riscv.block_base(), 0x0602_0000);
        assert_eq!((Processor::Arm.id(), Processor::Riscv.id()), (0, 1));
        assert_eq!(Processor::Arm.peer(), Processor::Riscv);
        assert_eq!(BLOCK_SIZE, 0x1000);
        // Sheet §2 numbers.
        assert_eq!((PROCESSORS, CHANNELS, FIFO_DEPTH), (2, 4, 8));
        assert_eq!(SUB_BLOCK_STRIDE, 0x100);
    }

    #[test]
    fn coef_n_follows_the_vendor_rule() {
        // Sheet §3 (and the vendor driver's table for three processors).
        let table = [
            (0, 1, 0),
            (0, 2, 1),
            (1, 0, 0),
            (1, 2, 1),
            (2, 0, 0),
            (2, 1, 1),
        ];
        for (local, remote, n) in table {
            assert_eq!(coef_n(local, remote), n, "local {local} remote {remote}");
        }
        assert_eq!(sub_block(1), 0x100);
        assert_eq!(V853_SUB_BLOCK, 0);
        // Sheet §3 table: A7 → E907 channel p writes 0x0602_0000 + 0x70 + 4p.
        assert_eq!(RISCV_BLOCK_BASE + msg_fifo(2), 0x0602_0078);
        assert_eq!(ARM_BLOCK_BASE + READ_IRQ_STATUS, 0x0300_3024);
    }

    #[test]
    fn bitfields_match_the_sheet_and_do_not_overlap() {
        let read: [u32; 4] =
            core::array::from_fn(|p| read_irq(p as u8).mask << read_irq(p as u8).shift);
        let write: [u32; 4] =
            core::array::from_fn(|p| write_irq(p as u8).mask << write_irq(p as u8).shift);
        for p in 0..4 {
            assert_eq!(read[p], 1 << (2 * p), "RD_IRQ{p}");
            assert_eq!(write[p], 1 << (2 * p + 1), "WR_IRQ{p}");
        }
        // Named fields agree with the per-channel helpers.
        let named_read = [
            READ_IRQ::RD_IRQ0,
            READ_IRQ::RD_IRQ1,
            READ_IRQ::RD_IRQ2,
            READ_IRQ::RD_IRQ3,
        ];
        let named_write = [
            WRITE_IRQ::WR_IRQ0,
            WRITE_IRQ::WR_IRQ1,
            WRITE_IRQ::WR_IRQ2,
            WRITE_IRQ::WR_IRQ3,
        ];
        for p in 0..4 {
            assert_eq!(named_read[p].mask << named_read[p].shift, read[p]);
            assert_eq!(named_write[p].mask << named_write[p].shift, write[p]);
        }
        // No two channel bits overlap, read and write interleave exactly.
        let all: Vec<u32> = read.iter().chain(write.iter()).copied().collect();
        for (i, a) in all.iter().enumerate() {
            assert_eq!(a.count_ones(), 1);
            for b in &all[i + 1..] {
                assert_eq!(a & b, 0);
            }
        }
        assert_eq!(read.iter().fold(0, |a, b| a | b), READ_IRQ_MASK);
        assert_eq!(write.iter().fold(0, |a, b| a | b), WRITE_IRQ_MASK);
        assert_eq!(READ_IRQ_MASK & WRITE_IRQ_MASK, 0);
        // Single-field registers.
        assert_eq!(MSG_STATUS::NUM.mask << MSG_STATUS::NUM.shift, 0xF);
        assert_eq!(FIFO_STATUS::FULL.mask << FIFO_STATUS::FULL.shift, 0x1);
        let thr = WRITE_IRQ_THRESHOLD::THRESHOLD;
        assert_eq!(thr.mask << thr.shift, 0x3);
        // Threshold encoding: 0 → 1, 1 → 2, 2 → 4, 3 → 8 (sheet §2).
        assert_eq!(u32::from(WRITE_IRQ_THRESHOLD::THRESHOLD::One), 0);
        assert_eq!(u32::from(WRITE_IRQ_THRESHOLD::THRESHOLD::Two), 1);
        assert_eq!(u32::from(WRITE_IRQ_THRESHOLD::THRESHOLD::Four), 2);
        assert_eq!(u32::from(WRITE_IRQ_THRESHOLD::THRESHOLD::Eight), 3);
    }

    #[test]
    fn reset_values_fit_their_fields() {
        assert_eq!(READ_IRQ_ENABLE_RESET & !READ_IRQ_MASK, 0);
        assert_eq!(READ_IRQ_STATUS_RESET & !READ_IRQ_MASK, 0);
        assert_eq!(WRITE_IRQ_ENABLE_RESET & !WRITE_IRQ_MASK, 0);
        assert_eq!(WRITE_IRQ_STATUS_RESET, WRITE_IRQ_MASK);
        assert_eq!(WRITE_IRQ_THRESHOLD_RESET & !0x3, 0);
        assert_eq!(MSG_STATUS_RESET & !0xF, 0);
        assert_eq!(FIFO_STATUS_RESET, 0);
    }
}
