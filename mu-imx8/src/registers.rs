//! MU v1 register layout (i.MX8MQ/8MM/8MN/8MP), one side's block.
//!
//! Every fact cites `shared/docs/hw/imx8-mu.md` (called "the sheet" below) by
//! section. Both sides (A and B) see the same layout at their own base
//! address (sheet §1 "Two sides", §2).
//!
//! # Registers with side effects
//!
//! - `RRn` (receive) **pops on read**: reading it clears this side's `SR.RFn`
//!   and sets the peer's `SR.TEn` (sheet §2.4). Only the owning
//!   [`RxChannel`](crate::RxChannel) reads it.
//! - `TRn` (transmit) hands a word to the peer: the write clears this side's
//!   `SR.TEn` and sets the peer's `SR.RFn`. Writing while `TEn = 0`
//!   overwrites the word the peer has not read yet (sheet §2.4), so only the
//!   owning [`TxChannel`](crate::TxChannel) writes it, after checking `TEn`.
//! - `SR.GIPn` is write-1-to-clear; every other `SR` bit ignores writes
//!   (sheet §2.3).
//! - `CR` is shared by every handle of one side. It is changed only through
//!   [`ipc_traits::regs::modify_shared`], and every such write has the `GIRn`
//!   bits masked to 0 so that writing back a pending request cannot re-trigger
//!   it (sheet §2.2 "Read-modify-write caution").
//!
//! # Reversed channel numbering
//!
//! The per-channel bits in `SR` and `CR` are numbered from the top of their
//! field down: channel `n`'s bit is `field top − n` (sheet §2.1, §2.2), so
//! `TE0` is bit 23 and `TE3` is bit 20. The per-channel helpers below
//! ([`te`], [`rf`], [`gip`], [`tie`], [`rie`], [`gie`], [`gir`]) do the
//! arithmetic once.
#![deny(unsafe_code)]
// The bitfield names follow the sheet (and the reference manual) exactly.
#![allow(clippy::upper_case_acronyms)]

use tock_registers::fields::Field;
use tock_registers::RegisterLongName;

/// Number of transmit registers, receive registers and general-purpose
/// interrupts per side (sheet §2).
pub const CHANNELS: u8 = 4;

/// Transmit register 0 (`ATR0`/`BTR0`), write-only, 32 bits (sheet §2 table).
pub const TR0_OFFSET: usize = 0x00;
/// Transmit register 1 (`ATR1`/`BTR1`): the rpmsg channel (sheet §5, §6).
pub const TR1_OFFSET: usize = 0x04;
/// Transmit register 2 (`ATR2`/`BTR2`) (sheet §2 table).
pub const TR2_OFFSET: usize = 0x08;
/// Transmit register 3 (`ATR3`/`BTR3`) (sheet §2 table).
pub const TR3_OFFSET: usize = 0x0C;
/// Receive register 0 (`ARR0`/`BRR0`), read pops (sheet §2 table, §2.4).
pub const RR0_OFFSET: usize = 0x10;
/// Receive register 1 (`ARR1`/`BRR1`): the rpmsg channel (sheet §5, §6).
pub const RR1_OFFSET: usize = 0x14;
/// Receive register 2 (`ARR2`/`BRR2`) (sheet §2 table).
pub const RR2_OFFSET: usize = 0x18;
/// Receive register 3 (`ARR3`/`BRR3`) (sheet §2 table).
pub const RR3_OFFSET: usize = 0x1C;
/// Status register (`ASR`/`BSR`), `GIPn` write-1-to-clear (sheet §2.1).
pub const SR_OFFSET: usize = 0x20;
/// Control register (`ACR`/`BCR`), read/write (sheet §2.2).
pub const CR_OFFSET: usize = 0x24;

/// Bytes of one side's register block that hold registers (`TR0`..=`CR`).
/// The device-tree node maps 0x10000 bytes (sheet §1); the driver's window
/// only needs the registers.
pub const BLOCK_LEN: usize = 0x28;

/// The offset of transmit register `n` (`n` taken modulo [`CHANNELS`]).
#[must_use]
pub const fn tr_offset(n: u8) -> usize {
    TR0_OFFSET + 4 * (n % CHANNELS) as usize
}

/// The offset of receive register `n` (`n` taken modulo [`CHANNELS`]).
#[must_use]
pub const fn rr_offset(n: u8) -> usize {
    RR0_OFFSET + 4 * (n % CHANNELS) as usize
}

pub use bitfields::{CR, SR};

/// The `register_bitfields!` expansion. It generates helper items (the
/// `Register` marker, `SET`/`CLEAR` values, field value enums) that carry no
/// docs of their own; every field is documented above its line.
#[allow(missing_docs)]
mod bitfields {
    use tock_registers::register_bitfields;

    register_bitfields![u32,
        /// Status register (`xSR`, offset 0x20), sheet §2.1.
        pub SR [
            /// General-purpose interrupt 0 pending (peer set its `CR.GIR0`), W1C.
            GIP0 OFFSET(31) NUMBITS(1) [],
            /// General-purpose interrupt 1 pending, W1C.
            GIP1 OFFSET(30) NUMBITS(1) [],
            /// General-purpose interrupt 2 pending, W1C.
            GIP2 OFFSET(29) NUMBITS(1) [],
            /// General-purpose interrupt 3 pending, W1C.
            GIP3 OFFSET(28) NUMBITS(1) [],
            /// Receive full 0: `RR0` holds an unread word.
            RF0 OFFSET(27) NUMBITS(1) [],
            /// Receive full 1.
            RF1 OFFSET(26) NUMBITS(1) [],
            /// Receive full 2.
            RF2 OFFSET(25) NUMBITS(1) [],
            /// Receive full 3.
            RF3 OFFSET(24) NUMBITS(1) [],
            /// Transmit empty 0: the peer has read our `TR0`. Reset 1.
            TE0 OFFSET(23) NUMBITS(1) [],
            /// Transmit empty 1. Reset 1.
            TE1 OFFSET(22) NUMBITS(1) [],
            /// Transmit empty 2. Reset 1.
            TE2 OFFSET(21) NUMBITS(1) [],
            /// Transmit empty 3. Reset 1.
            TE3 OFFSET(20) NUMBITS(1) [],
            /// Side B reset de-assertion interrupt pending (side A only; W1C
            /// inferred, sheet §2.3).
            BRDIP OFFSET(9) NUMBITS(1) [],
            /// Flags update pending: a `CR.Fn` write is still propagating.
            FUP OFFSET(8) NUMBITS(1) [],
            /// The peer side is in reset (`BRS` on side A, `ARS` on side B).
            RS OFFSET(7) NUMBITS(1) [],
            /// The peer's power mode (`BPM`/`APM`), i.MX8MM encoding.
            PM OFFSET(5) NUMBITS(2) [
                /// The peer core runs.
                Run = 0,
                /// The peer core is in WAIT (clock-gated, wakes on any IRQ).
                Wait = 1,
                /// The peer core is in STOP.
                Stop = 3
            ],
            /// Event pending: a TR write / RR read / flag change is in transfer.
            EP OFFSET(4) NUMBITS(1) [],
            /// The peer's `CR.F[2:0]`.
            F OFFSET(0) NUMBITS(3) []
        ],
        /// Control register (`xCR`, offset 0x24), sheet §2.2.
        pub CR [
            /// Enable the interrupt on `SR.GIP0`.
            GIE0 OFFSET(31) NUMBITS(1) [],
            /// Enable the interrupt on `SR.GIP1`.
            GIE1 OFFSET(30) NUMBITS(1) [],
            /// Enable the interrupt on `SR.GIP2`.
            GIE2 OFFSET(29) NUMBITS(1) [],
            /// Enable the interrupt on `SR.GIP3`.
            GIE3 OFFSET(28) NUMBITS(1) [],
            /// Enable the interrupt while `SR.RF0 = 1` (level).
            RIE0 OFFSET(27) NUMBITS(1) [],
            /// Enable the interrupt while `SR.RF1 = 1` (bit 26, rpmsg-lite's mask).
            RIE1 OFFSET(26) NUMBITS(1) [],
            /// Enable the interrupt while `SR.RF2 = 1`.
            RIE2 OFFSET(25) NUMBITS(1) [],
            /// Enable the interrupt while `SR.RF3 = 1`.
            RIE3 OFFSET(24) NUMBITS(1) [],
            /// Enable the interrupt while `SR.TE0 = 1` (level).
            TIE0 OFFSET(23) NUMBITS(1) [],
            /// Enable the interrupt while `SR.TE1 = 1`.
            TIE1 OFFSET(22) NUMBITS(1) [],
            /// Enable the interrupt while `SR.TE2 = 1`.
            TIE2 OFFSET(21) NUMBITS(1) [],
            /// Enable the interrupt while `SR.TE3 = 1`.
            TIE3 OFFSET(20) NUMBITS(1) [],
            /// Request GP interrupt 0 at the peer; hardware clears it once the
            /// peer clears its `GIP0`.
            GIR0 OFFSET(19) NUMBITS(1) [],
            /// Request GP interrupt 1 at the peer.
            GIR1 OFFSET(18) NUMBITS(1) [],
            /// Request GP interrupt 2 at the peer.
            GIR2 OFFSET(17) NUMBITS(1) [],
            /// Request GP interrupt 3 at the peer.
            GIR3 OFFSET(16) NUMBITS(1) [],
            /// Enable the interrupt on `SR.BRDIP` (side A only).
            BRDIE OFFSET(6) NUMBITS(1) [],
            /// MU reset, self-clearing (side A only).
            MUR OFFSET(5) NUMBITS(1) [],
            /// Side A: hold/reset of side B's core (`BHR`); side B: hardware-reset
            /// mask (`HRM`).
            BHR OFFSET(4) NUMBITS(1) [],
            /// Flags presented to the peer in its `SR.F[2:0]`.
            F OFFSET(0) NUMBITS(3) []
        ]
    ];
}

/// `SR.GIP0..=3` (sheet §2.1: mask 0xF000_0000).
pub const SR_GIP_MASK: u32 = 0xF000_0000;
/// `SR.RF0..=3` (sheet §2.1: bits 27:24).
pub const SR_RF_MASK: u32 = 0x0F00_0000;
/// `SR.TE0..=3` (sheet §2.1: bits 23:20).
pub const SR_TE_MASK: u32 = 0x00F0_0000;
/// `SR` bits the v1 layout reserves: 19:10 and 3 (sheet §2.1). A set bit
/// here is something the driver does not expect and reports as an anomaly.
pub const SR_RESERVED_MASK: u32 = 0x000F_FC08;
/// `CR.GIE0..=3` (sheet §2.2: bits 31:28).
pub const CR_GIE_MASK: u32 = 0xF000_0000;
/// `CR.RIE0..=3` (sheet §2.2: bits 27:24).
pub const CR_RIE_MASK: u32 = 0x0F00_0000;
/// `CR.TIE0..=3` (sheet §2.2: bits 23:20).
pub const CR_TIE_MASK: u32 = 0x00F0_0000;
/// `CR.GIR0..=3` (sheet §2.2: bits 19:16). Masked to 0 in every
/// read-modify-write of `CR` (sheet §2.2, §8 item 4).
pub const CR_GIR_MASK: u32 = 0x000F_0000;
/// Every interrupt enable of the channels and GP interrupts. The enable bits
/// sit at the same positions as the status bits they gate (`GIEn`↔`GIPn`,
/// `RIEn`↔`RFn`, `TIEn`↔`TEn`; sheet §2.1, §2.2), so `SR & CR & this mask`
/// is the set of pending, enabled events.
pub const EVENT_MASK: u32 = CR_GIE_MASK | CR_RIE_MASK | CR_TIE_MASK;
/// `CR.F[2:0]` / `SR.F[2:0]` (sheet §2.1, §2.2).
pub const FLAGS_MASK: u32 = 0x7;

/// `SR` after reset: every `TEn` = 1, everything else 0 (sheet §2.1 reset
/// column). `PM` and `RS` reflect the peer and have no fixed reset value;
/// this constant assumes the peer runs and is out of reset.
pub const SR_RESET: u32 = SR_TE_MASK;
/// `CR` after reset (sheet §2.2 reset column).
pub const CR_RESET: u32 = 0;

/// Bit position of `TE0`, the top of the `TE` field (sheet §2.1).
pub const TE_TOP: usize = 23;
/// Bit position of `RF0` (sheet §2.1).
pub const RF_TOP: usize = 27;
/// Bit position of `GIP0` (sheet §2.1).
pub const GIP_TOP: usize = 31;
/// Bit position of `TIE0` (sheet §2.2).
pub const TIE_TOP: usize = 23;
/// Bit position of `RIE0` (sheet §2.2).
pub const RIE_TOP: usize = 27;
/// Bit position of `GIE0` (sheet §2.2).
pub const GIE_TOP: usize = 31;
/// Bit position of `GIR0` (sheet §2.2).
pub const GIR_TOP: usize = 19;

/// The one-bit field of channel `n` in a field whose channel 0 sits at bit
/// `top` (reversed numbering, sheet §2.1). `n` is taken modulo
/// [`CHANNELS`].
#[must_use]
pub const fn channel_field<Reg: RegisterLongName>(top: usize, n: u8) -> Field<u32, Reg> {
    Field::new(1, top - (n % CHANNELS) as usize)
}

/// `SR.TEn`.
#[must_use]
pub const fn te(n: u8) -> Field<u32, SR::Register> {
    channel_field(TE_TOP, n)
}
/// `SR.RFn`.
#[must_use]
pub const fn rf(n: u8) -> Field<u32, SR::Register> {
    channel_field(RF_TOP, n)
}
/// `SR.GIPn`.
#[must_use]
pub const fn gip(n: u8) -> Field<u32, SR::Register> {
    channel_field(GIP_TOP, n)
}
/// `CR.TIEn`.
#[must_use]
pub const fn tie(n: u8) -> Field<u32, CR::Register> {
    channel_field(TIE_TOP, n)
}
/// `CR.RIEn`.
#[must_use]
pub const fn rie(n: u8) -> Field<u32, CR::Register> {
    channel_field(RIE_TOP, n)
}
/// `CR.GIEn`.
#[must_use]
pub const fn gie(n: u8) -> Field<u32, CR::Register> {
    channel_field(GIE_TOP, n)
}
/// `CR.GIRn`.
#[must_use]
pub const fn gir(n: u8) -> Field<u32, CR::Register> {
    channel_field(GIR_TOP, n)
}

/// The in-place mask of a field (`mask << shift`).
#[must_use]
pub const fn bits<Reg: RegisterLongName>(field: Field<u32, Reg>) -> u32 {
    field.mask << field.shift
}

/// Turns a reversed 4-bit channel field (channel 0 at `top`) into a
/// channel-indexed bitset (bit n = channel n).
#[must_use]
pub const fn channels_of(raw: u32, top: usize) -> u32 {
    let nibble = (raw >> (top - 3)) & 0xF;
    ((nibble & 0b0001) << 3)
        | ((nibble & 0b0010) << 1)
        | ((nibble & 0b0100) >> 1)
        | ((nibble & 0b1000) >> 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The register map, transcribed from the sheet §2 table.
    const OFFSETS: [(&str, usize); 10] = [
        ("TR0", 0x00),
        ("TR1", 0x04),
        ("TR2", 0x08),
        ("TR3", 0x0C),
        ("RR0", 0x10),
        ("RR1", 0x14),
        ("RR2", 0x18),
        ("RR3", 0x1C),
        ("SR", 0x20),
        ("CR", 0x24),
    ];

    #[test]
    fn offsets_match_sheet_table() {
        let ours = [
            TR0_OFFSET, TR1_OFFSET, TR2_OFFSET, TR3_OFFSET, RR0_OFFSET, RR1_OFFSET, RR2_OFFSET,
            RR3_OFFSET, SR_OFFSET, CR_OFFSET,
        ];
        for ((name, sheet), ours) in OFFSETS.iter().zip(ours) {
            assert_eq!(ours, *sheet, "{name}");
        }
        for n in 0..CHANNELS {
            assert_eq!(tr_offset(n), OFFSETS[usize::from(n)].1);
            assert_eq!(rr_offset(n), OFFSETS[4 + usize::from(n)].1);
        }
        assert_eq!(BLOCK_LEN, CR_OFFSET + 4);
    }

    /// SR fields, transcribed from the sheet §2.1 table (name, in-place mask).
    const SR_TABLE: [(&str, u32); 19] = [
        ("GIP0", 1 << 31),
        ("GIP1", 1 << 30),
        ("GIP2", 1 << 29),
        ("GIP3", 1 << 28),
        ("RF0", 1 << 27),
        ("RF1", 1 << 26),
        ("RF2", 1 << 25),
        ("RF3", 1 << 24),
        ("TE0", 1 << 23),
        ("TE1", 1 << 22),
        ("TE2", 1 << 21),
        ("TE3", 1 << 20),
        ("BRDIP", 1 << 9),
        ("FUP", 1 << 8),
        ("RS", 1 << 7),
        ("PM", 0b11 << 5),
        ("EP", 1 << 4),
        ("F", 0b111),
        ("reserved", 0x000F_FC08),
    ];

    /// CR fields, transcribed from the sheet §2.2 table.
    const CR_TABLE: [(&str, u32); 20] = [
        ("GIE0", 1 << 31),
        ("GIE1", 1 << 30),
        ("GIE2", 1 << 29),
        ("GIE3", 1 << 28),
        ("RIE0", 1 << 27),
        ("RIE1", 1 << 26),
        ("RIE2", 1 << 25),
        ("RIE3", 1 << 24),
        ("TIE0", 1 << 23),
        ("TIE1", 1 << 22),
        ("TIE2", 1 << 21),
        ("TIE3", 1 << 20),
        ("GIR0", 1 << 19),
        ("GIR1", 1 << 18),
        ("GIR2", 1 << 17),
        ("GIR3", 1 << 16),
        ("BRDIE", 1 << 6),
        ("MUR", 1 << 5),
        ("BHR", 1 << 4),
        ("F", 0b111),
    ];

    fn sr_fields() -> [u32; 19] {
        use SR::*;
        [
            bits(GIP0),
            bits(GIP1),
            bits(GIP2),
            bits(GIP3),
            bits(RF0),
            bits(RF1),
            bits(RF2),
            bits(RF3),
            bits(TE0),
            bits(TE1),
            bits(TE2),
            bits(TE3),
            bits(BRDIP),
            bits(FUP),
            bits(RS),
            bits(PM),
            bits(EP),
            bits(F),
            SR_RESERVED_MASK,
        ]
    }

    fn cr_fields() -> [u32; 20] {
        use CR::*;
        [
            bits(GIE0),
            bits(GIE1),
            bits(GIE2),
            bits(GIE3),
            bits(RIE0),
            bits(RIE1),
            bits(RIE2),
            bits(RIE3),
            bits(TIE0),
            bits(TIE1),
            bits(TIE2),
            bits(TIE3),
            bits(GIR0),
            bits(GIR1),
            bits(GIR2),
            bits(GIR3),
            bits(BRDIE),
            bits(MUR),
            bits(BHR),
            bits(F),
        ]
    }

    fn assert_disjoint(name: &str, masks: &[u32]) {
        let mut seen = 0u32;
        for (i, m) in masks.iter().enumerate() {
            assert_ne!(*m, 0, "{name} field {i} is empty");
            assert_eq!(seen & m, 0, "{name} field {i} overlaps an earlier one");
            seen |= m;
        }
    }

    #[test]
    fn sr_masks_match_sheet_and_do_not_overlap() {
        for ((name, sheet), ours) in SR_TABLE.iter().zip(sr_fields()) {
            assert_eq!(ours, *sheet, "SR.{name}");
        }
        assert_disjoint("SR", &sr_fields());
        // Every SR bit is either a field or reserved: the table is complete.
        assert_eq!(sr_fields().iter().fold(0, |a, m| a | m), u32::MAX);
        assert_eq!(SR_GIP_MASK | SR_RF_MASK | SR_TE_MASK, 0xFFF0_0000);
        assert_eq!(SR_RESET, 0x00F0_0000);
    }

    #[test]
    fn cr_masks_match_sheet_and_do_not_overlap() {
        for ((name, sheet), ours) in CR_TABLE.iter().zip(cr_fields()) {
            assert_eq!(ours, *sheet, "CR.{name}");
        }
        assert_disjoint("CR", &cr_fields());
        assert_eq!(
            CR_GIE_MASK | CR_RIE_MASK | CR_TIE_MASK | CR_GIR_MASK,
            0xFFFF_0000
        );
        assert_eq!(EVENT_MASK, 0xFFF0_0000);
        assert_eq!(CR_RESET, 0);
    }

    #[test]
    fn reversed_channel_helpers_match_linux_macros() {
        // Linux imx-mailbox: TEn = BIT(20 + (3 - n)), RFn = BIT(24 + (3 - n)),
        // GIPn = BIT(28 + (3 - n)), GIRn = BIT(16 + (3 - n)) (sheet §2.1, §2.2).
        for n in 0..CHANNELS {
            let k = u32::from(3 - n);
            assert_eq!(bits(te(n)), 1 << (20 + k));
            assert_eq!(bits(rf(n)), 1 << (24 + k));
            assert_eq!(bits(gip(n)), 1 << (28 + k));
            assert_eq!(bits(tie(n)), 1 << (20 + k));
            assert_eq!(bits(rie(n)), 1 << (24 + k));
            assert_eq!(bits(gie(n)), 1 << (28 + k));
            assert_eq!(bits(gir(n)), 1 << (16 + k));
            assert_eq!(channels_of(bits(rf(n)), RF_TOP), 1 << n);
            assert_eq!(channels_of(bits(te(n)), TE_TOP), 1 << n);
            assert_eq!(channels_of(bits(gip(n)), GIP_TOP), 1 << n);
        }
        // rpmsg-lite imx8mm_m4: RIE1 = (1 << 27) >> 1 = bit 26 (sheet §6).
        assert_eq!(bits(rie(1)), (1 << 27) >> 1);
        assert_eq!(bits(rf(1)), (1 << 27) >> 1);
        assert_eq!(channels_of(0xFFFF_FFFF, TE_TOP), 0xF);
    }

    #[test]
    fn power_mode_encoding_is_8mm() {
        use tock_registers::LocalRegisterCopy;
        let sr = LocalRegisterCopy::<u32, SR::Register>::new(3 << 5);
        assert_eq!(sr.read_as_enum(SR::PM), Some(SR::PM::Value::Stop));
        let sr = LocalRegisterCopy::<u32, SR::Register>::new(1 << 5);
        assert_eq!(sr.read_as_enum(SR::PM), Some(SR::PM::Value::Wait));
        let sr = LocalRegisterCopy::<u32, SR::Register>::new(2 << 5);
        assert_eq!(sr.read_as_enum::<SR::PM::Value>(SR::PM), None);
    }
}
