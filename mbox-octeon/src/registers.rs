//! CIU mailbox CSRs of the OCTEON III CN70xx: offsets, fields, reset values.
//!
//! Every fact cites `shared/docs/hw/octeon-ciu-mbox.md` (called "the sheet"
//! below) by section. Offsets are byte offsets from the CIU CSR base
//! [`CIU_BASE_PHYS`] (reached through the XKPHYS I/O window as [`CIU_BASE`]),
//! which is what [`ipc_traits::regs::Regs64`] takes.
//!
//! # Access width and byte order
//!
//! All registers here are 64-bit CSRs accessed with 64-bit loads and stores
//! (sheet §3). A CSR value is a native `u64`: bit n is `1 << n` on the
//! big-endian OCTEON as on any host, so the driver never swaps bytes. Never
//! access half of a CSR with a 32-bit access: on big-endian the low word
//! (the mailbox bits) sits at byte offset +4 (sheet §3).
//!
//! # Read side effects
//!
//! None of these registers has a read side effect: `CIU_MBOX_SET(core)` and
//! `CIU_MBOX_CLR(core)` both read the current mailbox value (sheet §3,
//! inferred), `CIU_INT(x)_SUM0` reflects the mailbox. Clearing is always an
//! explicit write-1-to-clear.
#![deny(unsafe_code)]

/// Physical address of the CIU CSR block (the common prefix of every address
/// in sheet §2).
pub const CIU_BASE_PHYS: u64 = 0x0001_0700_0000_0000;

/// The XKPHYS uncached I/O segment bit: `CVMX_ADD_IO_SEG(a) = a | 1 << 63`
/// (sheet §2, `CVMX_IO_SEG = XKPHYS = 2` shifted by 62).
pub const XKPHYS_IO_SEG: u64 = 2 << 62;

/// The CIU CSR block as a 64-bit kernel or bare-metal program addresses it:
/// `0x8001_0700_0000_0000` (sheet §2).
pub const CIU_BASE: u64 = CIU_BASE_PHYS | XKPHYS_IO_SEG;

/// How many cores the CSR index can name: the header masks the mailbox index
/// with `0x0F` (sheet §2).
pub const MAX_CORES: u8 = 16;

/// Cores of a CN7130 (sheet §1; UNVERIFIED there: "core count not
/// re-checked").
pub const CN7130_CORES: u8 = 4;

/// `CIU_INT(x)_SUM0`: interrupt summary of INT line `x`, stride 8 (sheet §2).
pub const CIU_INT_SUM0: usize = 0x0000;
/// Stride of `CIU_INT(x)_SUM0` (sheet §2).
pub const CIU_INT_SUM0_STRIDE: usize = 8;

/// `CIU_INT(x)_EN0`: interrupt enables of INT line `x`, stride 16 (sheet §2).
pub const CIU_INT_EN0: usize = 0x0200;
/// `CIU_INT(x)_EN1`, stride 16 (sheet §2). Holds no mailbox enable.
pub const CIU_INT_EN1: usize = 0x0208;
/// `CIU_INT(x)_EN0_W1C`: write-1-to-clear alias of `EN0`, stride 16 (sheet §2).
pub const CIU_INT_EN0_W1C: usize = 0x2200;
/// `CIU_INT(x)_EN0_W1S`: write-1-to-set alias of `EN0`, stride 16 (sheet §2).
pub const CIU_INT_EN0_W1S: usize = 0x6200;
/// Stride of the `EN0`/`EN1`/`EN0_W1C`/`EN0_W1S` arrays (sheet §2).
pub const CIU_INT_EN_STRIDE: usize = 16;

/// `CIU_MBOX_SET(core)`: write 1 to set mailbox bits of `core`; read gives
/// the mailbox (sheet §2, §3).
pub const CIU_MBOX_SET: usize = 0x0600;
/// `CIU_MBOX_CLR(core)`: write 1 to clear mailbox bits of `core`; read gives
/// the mailbox (sheet §2, §3).
pub const CIU_MBOX_CLR: usize = 0x0680;
/// Stride of `CIU_MBOX_SET`/`CIU_MBOX_CLR` (sheet §2).
pub const CIU_MBOX_STRIDE: usize = 8;

/// Bytes of the CSR window a driver needs: up to and including
/// `CIU_INT(31)_EN0_W1S` (INT lines of all 16 indexable cores).
pub const CIU_WINDOW_LEN: usize =
    CIU_INT_EN0_W1S + CIU_INT_EN_STRIDE * (2 * MAX_CORES as usize - 1) + 8;

/// Offset of `CIU_MBOX_SET(core)`.
#[must_use]
pub const fn mbox_set(core: u8) -> usize {
    CIU_MBOX_SET + CIU_MBOX_STRIDE * core as usize
}

/// Offset of `CIU_MBOX_CLR(core)`.
#[must_use]
pub const fn mbox_clr(core: u8) -> usize {
    CIU_MBOX_CLR + CIU_MBOX_STRIDE * core as usize
}

/// Offset of `CIU_INT(line)_SUM0`.
#[must_use]
pub const fn int_sum0(line: u8) -> usize {
    CIU_INT_SUM0 + CIU_INT_SUM0_STRIDE * line as usize
}

/// Offset of `CIU_INT(line)_EN0`.
#[must_use]
pub const fn int_en0(line: u8) -> usize {
    CIU_INT_EN0 + CIU_INT_EN_STRIDE * line as usize
}

/// Offset of `CIU_INT(line)_EN1`.
#[must_use]
pub const fn int_en1(line: u8) -> usize {
    CIU_INT_EN1 + CIU_INT_EN_STRIDE * line as usize
}

/// Offset of `CIU_INT(line)_EN0_W1C`.
#[must_use]
pub const fn int_en0_w1c(line: u8) -> usize {
    CIU_INT_EN0_W1C + CIU_INT_EN_STRIDE * line as usize
}

/// Offset of `CIU_INT(line)_EN0_W1S`.
#[must_use]
pub const fn int_en0_w1s(line: u8) -> usize {
    CIU_INT_EN0_W1S + CIU_INT_EN_STRIDE * line as usize
}

/// The INT line of `core`'s IP2 input: `2·core` (sheet §2, from
/// `octeon-irq.c`). The mailbox interrupt is routed here.
#[must_use]
pub const fn ip2_line(core: u8) -> u8 {
    2 * core
}

/// The INT line of `core`'s IP3 input: `2·core + 1` (sheet §2).
#[must_use]
pub const fn ip3_line(core: u8) -> u8 {
    2 * core + 1
}

/// Mailbox bits 15:0, summarised by `SUM0.MBOX0` (sheet §3.1, split from the
/// SDK `cvmx-mbox.c`).
pub const MBOX0_BITS: u32 = 0x0000_FFFF;
/// Mailbox bits 31:16, summarised by `SUM0.MBOX1` (sheet §3.1).
pub const MBOX1_BITS: u32 = 0xFFFF_0000;

/// Bits Linux uses for its own IPIs on a core it runs on (sheet §4): 0
/// `SMP_RESCHEDULE_YOURSELF`, 1 `SMP_CALL_FUNCTION`, 2 `SMP_ICACHE_FLUSH`,
/// 3 reserved under `CONFIG_KEXEC` (`SMP_DUMP`). The driver refuses to claim
/// them at compile time ([`crate::Claimable`]).
pub const LINUX_IPI_BITS: u32 = 0x0000_000F;

/// Bits a Linux peer can allocate and dispatch with
/// `octeon_request_ipi_handler()` (sheet §4: free mask `0xf8`, or `0xf0` when
/// KEXEC reserves bit 3; the table has 8 entries). To interrupt a *Linux*
/// core, ring one of these bits, the one its driver was given.
pub const LINUX_DISPATCHABLE_BITS: u32 = 0x0000_00F0;

/// The mailbox value after reset.
///
/// UNCERTAIN(octeon-ciu-mbox.md §3): the sheet gives no reset value; Linux
/// clears the low half before use (§4 `octeon_prepare_cpus`), so firmware
/// should not rely on it either. The model resets to 0.
pub const MBOX_RESET: u64 = 0;

/// `CIU_INT(x)_EN0` after reset.
///
/// UNCERTAIN(octeon-ciu-mbox.md §3.1): not in the sheet; the model resets to
/// 0 (every source disabled).
pub const INT_EN0_RESET: u64 = 0;

/// The bitfield definitions. The constants and marker types that
/// `register_bitfields!` generates inside each register module carry no docs
/// of their own: the register and field docs below describe them.
#[allow(missing_docs)]
mod bitfields {
    use tock_registers::register_bitfields;

    register_bitfields![u64,
        /// `CIU_MBOX_SET(core)` / `CIU_MBOX_CLR(core)` (sheet §3, the pre-2018
        /// union `{ reserved_32_63 : 32; bits : 32 }`).
        pub MBOX [
            /// The 32 mailbox bits: W1S through SET, W1C through CLR, read
            /// through either.
            BITS OFFSET(0) NUMBITS(32) [],
            /// Reserved: ignored on write, 0 on read.
            RESERVED OFFSET(32) NUMBITS(32) []
        ],
        /// `CIU_INT(x)_SUM0`: the mailbox summary bits (sheet §3.1). The other
        /// sources of SUM0 are not used by this driver.
        pub INT_SUM0 [
            /// The core's mailbox bits 15:0 are not all zero (`OCTEON_IRQ_MBOX0`).
            MBOX0 OFFSET(32) NUMBITS(1) [],
            /// The core's mailbox bits 31:16 are not all zero (`OCTEON_IRQ_MBOX1`).
            MBOX1 OFFSET(33) NUMBITS(1) []
        ],
        /// `CIU_INT(x)_EN0` and its `_W1S` / `_W1C` aliases: the mailbox enables
        /// (sheet §3.1).
        pub INT_EN0 [
            /// Enables the MBOX0 summary (mailbox bits 15:0) on this line.
            MBOX0 OFFSET(32) NUMBITS(1) [],
            /// Enables the MBOX1 summary (mailbox bits 31:16) on this line.
            MBOX1 OFFSET(33) NUMBITS(1) []
        ]
    ];
}
pub use bitfields::{INT_EN0, INT_SUM0, MBOX};

/// The `SUM0`/`EN0` bit that summarises mailbox bit `bit` (MBOX0 for 0..=15,
/// MBOX1 for 16..=31).
#[must_use]
pub const fn summary_bit_of(bit: u8) -> u64 {
    if bit < 16 {
        1 << 32
    } else {
        1 << 33
    }
}

/// The `SUM0`/`EN0` bits that summarise any bit of `mask`.
#[must_use]
pub const fn summary_bits_of(mask: u32) -> u64 {
    let mut out = 0;
    if mask & MBOX0_BITS != 0 {
        out |= 1 << 32;
    }
    if mask & MBOX1_BITS != 0 {
        out |= 1 << 33;
    }
    out
}

/// The mailbox bits covered by the summary bits set in `en0` (the inverse of
/// [`summary_bits_of`]).
#[must_use]
pub const fn mailbox_bits_enabled_by(en0: u64) -> u32 {
    let mut out = 0;
    if en0 & (1 << 32) != 0 {
        out |= MBOX0_BITS;
    }
    if en0 & (1 << 33) != 0 {
        out |= MBOX1_BITS;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tock_registers::fields::Field;
    use tock_registers::RegisterLongName;

    /// Physical addresses transcribed from the sheet's §2 table, plus the
    /// XKPHYS example of §2.
    const SHEET: &[(&str, usize, u64)] = &[
        ("CIU_MBOX_SET(0)", mbox_set(0), 0x0001_0700_0000_0600),
        ("CIU_MBOX_SET(1)", mbox_set(1), 0x0001_0700_0000_0608),
        ("CIU_MBOX_SET(3)", mbox_set(3), 0x0001_0700_0000_0618),
        ("CIU_MBOX_SET(15)", mbox_set(15), 0x0001_0700_0000_0678),
        ("CIU_MBOX_CLR(0)", mbox_clr(0), 0x0001_0700_0000_0680),
        ("CIU_MBOX_CLR(1)", mbox_clr(1), 0x0001_0700_0000_0688),
        ("CIU_MBOX_CLR(3)", mbox_clr(3), 0x0001_0700_0000_0698),
        ("CIU_INT(0)_SUM0", int_sum0(0), 0x0001_0700_0000_0000),
        ("CIU_INT(1)_SUM0", int_sum0(1), 0x0001_0700_0000_0008),
        ("CIU_INT(6)_SUM0", int_sum0(6), 0x0001_0700_0000_0030),
        ("CIU_INT(0)_EN0", int_en0(0), 0x0001_0700_0000_0200),
        ("CIU_INT(1)_EN0", int_en0(1), 0x0001_0700_0000_0210),
        ("CIU_INT(6)_EN0", int_en0(6), 0x0001_0700_0000_0260),
        ("CIU_INT(0)_EN0_W1C", int_en0_w1c(0), 0x0001_0700_0000_2200),
        ("CIU_INT(6)_EN0_W1C", int_en0_w1c(6), 0x0001_0700_0000_2260),
        ("CIU_INT(0)_EN0_W1S", int_en0_w1s(0), 0x0001_0700_0000_6200),
        ("CIU_INT(6)_EN0_W1S", int_en0_w1s(6), 0x0001_0700_0000_6260),
        ("CIU_INT(0)_EN1", int_en1(0), 0x0001_0700_0000_0208),
        ("CIU_INT(6)_EN1", int_en1(6), 0x0001_0700_0000_0268),
    ];

    #[test]
    fn offsets_match_sheet_addresses() {
        for &(name, offset, phys) in SHEET {
            assert_eq!(CIU_BASE_PHYS + offset as u64, phys, "{name}");
            assert_eq!(offset % 8, 0, "{name} must be 64-bit aligned");
            assert!(offset + 8 <= CIU_WINDOW_LEN, "{name} outside the window");
        }
    }

    #[test]
    fn xkphys_window_matches_sheet_example() {
        // Sheet §2: 0x0001_0700_0000_0600 becomes 0x8001_0700_0000_0600.
        assert_eq!(CIU_BASE | mbox_set(0) as u64, 0x8001_0700_0000_0600);
        assert_eq!(CIU_BASE, 0x8001_0700_0000_0000);
        assert_eq!(int_en0_w1s(31) + 8, CIU_WINDOW_LEN);
    }

    #[test]
    fn int_lines_are_two_per_core() {
        // Sheet §2: x = 2c is IP2, x = 2c + 1 is IP3.
        assert_eq!((ip2_line(0), ip3_line(0)), (0, 1));
        assert_eq!((ip2_line(3), ip3_line(3)), (6, 7));
    }

    #[test]
    fn register_arrays_do_not_overlap() {
        let lines = 2 * MAX_CORES;
        let mut all: Vec<(String, usize)> = Vec::new();
        for c in 0..MAX_CORES {
            all.push((format!("SET({c})"), mbox_set(c)));
            all.push((format!("CLR({c})"), mbox_clr(c)));
        }
        for x in 0..lines {
            all.push((format!("SUM0({x})"), int_sum0(x)));
            all.push((format!("EN0({x})"), int_en0(x)));
            all.push((format!("EN1({x})"), int_en1(x)));
            all.push((format!("EN0_W1C({x})"), int_en0_w1c(x)));
            all.push((format!("EN0_W1S({x})"), int_en0_w1s(x)));
        }
        all.sort_by_key(|&(_, o)| o);
        for pair in all.windows(2) {
            assert!(
                pair[0].1 + 8 <= pair[1].1,
                "{} overlaps {}",
                pair[0].0,
                pair[1].0
            );
        }
        assert!(all.iter().all(|&(_, o)| o + 8 <= CIU_WINDOW_LEN));
    }

    fn mask<R: RegisterLongName>(f: Field<u64, R>) -> u64 {
        f.mask << f.shift
    }

    #[test]
    fn bitfields_match_sheet_and_do_not_overlap() {
        // Sheet §3: BITS = 31:0, 63:32 reserved.
        assert_eq!(mask(MBOX::BITS), 0x0000_0000_FFFF_FFFF);
        assert_eq!(mask(MBOX::RESERVED), 0xFFFF_FFFF_0000_0000);
        assert_eq!(mask(MBOX::BITS) & mask(MBOX::RESERVED), 0);
        // Sheet §3.1: MBOX0 = bit 32, MBOX1 = bit 33 of SUM0 and EN0.
        for (m0, m1) in [
            (mask(INT_SUM0::MBOX0), mask(INT_SUM0::MBOX1)),
            (mask(INT_EN0::MBOX0), mask(INT_EN0::MBOX1)),
        ] {
            assert_eq!((m0, m1), (1 << 32, 1 << 33));
            assert_eq!(m0 & m1, 0);
        }
        // The two halves partition the 32 mailbox bits.
        assert_eq!(MBOX0_BITS & MBOX1_BITS, 0);
        assert_eq!(MBOX0_BITS | MBOX1_BITS, u32::MAX);
        assert_eq!(LINUX_IPI_BITS & LINUX_DISPATCHABLE_BITS, 0);
    }

    #[test]
    fn summary_helpers_map_halves() {
        assert_eq!(summary_bit_of(0), mask(INT_EN0::MBOX0));
        assert_eq!(summary_bit_of(15), mask(INT_EN0::MBOX0));
        assert_eq!(summary_bit_of(16), mask(INT_EN0::MBOX1));
        assert_eq!(summary_bit_of(31), mask(INT_EN0::MBOX1));
        assert_eq!(summary_bits_of(0), 0);
        assert_eq!(summary_bits_of(1 << 4 | 1 << 31), 3 << 32);
        assert_eq!(mailbox_bits_enabled_by(1 << 33), MBOX1_BITS);
        assert_eq!(mailbox_bits_enabled_by(!(3 << 32)), 0);
    }
}
