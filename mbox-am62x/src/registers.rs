//! K3 mailbox cluster register layout (AM62x, OMAP4-style mailbox IP).
//!
//! Every fact cites `shared/docs/hw/am62x-mailbox.md` ("the sheet") by
//! section. One cluster is 16 queues (FIFOs) shared by 4 users; each user has
//! its own interrupt status/enable register set (sheet §1, §2).
//!
//! # Registers with side effects
//!
//! - `MESSAGE_m` **pops on read**: reading it removes the oldest word of
//!   queue `m` (an empty queue reads 0 and pops nothing, sheet §1). Only the
//!   owning [`Rx`](crate::Rx) queue handle reads it, and only after
//!   `MSGSTATUS_m` said a word is there.
//! - Writing `MESSAGE_m` pushes a word; a write to a **full** queue is
//!   silently discarded by the hardware (sheet §1 "Full FIFO behaviour").
//!   Only the owning [`Tx`](crate::Tx) handle writes it, after checking
//!   `FIFOSTATUS_m.FIFOFULL`.
//! - `IRQSTATUS_CLR_u` is write-1-to-clear; `IRQENABLE_SET_u` /
//!   `IRQENABLE_CLR_u` are write-1-to-set / write-1-to-clear aliases of one
//!   enable register (sheet §2). They are shared by every queue handle of a
//!   user, and the driver changes them **only through these aliases**, never
//!   with a read-modify-write.
//! - `IRQSTATUS_RAW_u` is write-1-to-set (a debug aid, sheet §2); the driver
//!   never writes it.
//! - `SYSCONFIG.SOFTRESET` resets the whole cluster, for every user; the
//!   driver never writes it (sheet §5 item 1).
//!
//! # Interrupt bits
//!
//! The four interrupt registers share one layout (sheet §2.1): queue `m` owns
//! bit `2m` (`NEWMSG`, "queue holds a message", the receiver's event) and bit
//! `2m + 1` (`NOTFULL`, "queue has room", the sender's event). The helpers
//! [`newmsg`] and [`notfull`] do the arithmetic once.
#![deny(unsafe_code)]
// The bitfield names follow the sheet (and the TRM) exactly.
#![allow(clippy::upper_case_acronyms)]

/// Queues (FIFOs) per cluster (sheet §1 table: `ti,mbox-num-fifos = <16>`).
pub const QUEUES: u8 = 16;
/// Users (interrupt outputs with their own status/enable set) per cluster
/// (sheet §1 table: `ti,mbox-num-users = <4>`).
pub const USERS: u8 = 4;
/// Messages one queue holds (sheet §1 table "FIFO depth": the AM62x TRM says
/// four 32-bit messages).
///
/// UNCERTAIN(am62x-mailbox.md §1 note): MCU+ SDK's
/// `MAILBOX_MAX_MSGS_IN_FIFO` is 8, which the sheet reads as a software bound;
/// the hardware depth is taken as 4 (TRM). Pinned by the test
/// `uncertain_fifo_depth_is_four_not_eight`.
pub const FIFO_DEPTH: usize = 4;

/// Base address of cluster 0 in the SoC memory map (sheet §1: clusters at
/// `0x2900_0000 + k * 0x1_0000`). The M4F may see it elsewhere through its
/// address translation (sheet §3.1, UNVERIFIED).
pub const CLUSTER0_BASE: usize = 0x2900_0000;
/// Distance between clusters (sheet §1).
pub const CLUSTER_STRIDE: usize = 0x1_0000;
/// Number of clusters on AM62x (sheet §1).
pub const CLUSTERS: u8 = 8;
/// Bytes of register window per cluster (sheet §1: DT `reg` size 0x200).
pub const CLUSTER_LEN: usize = 0x200;

/// `MAILBOX_REVISION`, read-only (sheet §2).
pub const REVISION_OFFSET: usize = 0x000;
/// `MAILBOX_SYSCONFIG`, read/write; `SOFTRESET` is bit 0 (sheet §2).
pub const SYSCONFIG_OFFSET: usize = 0x010;
/// `MAILBOX_MESSAGE_0`; queue `m` is at `0x040 + 4m`. Write pushes, read pops
/// (sheet §2).
pub const MESSAGE0_OFFSET: usize = 0x040;
/// `MAILBOX_FIFOSTATUS_0`; queue `m` is at `0x080 + 4m`, read-only (sheet §2).
pub const FIFOSTATUS0_OFFSET: usize = 0x080;
/// `MAILBOX_MSGSTATUS_0`; queue `m` is at `0x0C0 + 4m`, read-only (sheet §2).
pub const MSGSTATUS0_OFFSET: usize = 0x0C0;
/// `MAILBOX_IRQSTATUS_RAW_0`; user `u` is at `0x100 + 0x10u`. Read: raw
/// events; write 1: set the event (debug) (sheet §2).
pub const IRQSTATUS_RAW0_OFFSET: usize = 0x100;
/// `MAILBOX_IRQSTATUS_CLR_0`; user `u` is at `0x104 + 0x10u`. Read: raw AND
/// enable; write 1: clear the event (sheet §2).
pub const IRQSTATUS_CLR0_OFFSET: usize = 0x104;
/// `MAILBOX_IRQENABLE_SET_0`; user `u` is at `0x108 + 0x10u`. Read: enables;
/// write 1: enable (sheet §2).
pub const IRQENABLE_SET0_OFFSET: usize = 0x108;
/// `MAILBOX_IRQENABLE_CLR_0`; user `u` is at `0x10C + 0x10u`. Write 1:
/// disable (sheet §2).
pub const IRQENABLE_CLR0_OFFSET: usize = 0x10C;
/// Distance between two users' interrupt register sets (sheet §2).
pub const USER_STRIDE: usize = 0x10;
/// `MAILBOX_IRQ_EOI`: one bit per user, `EOI0..EOI3` = bits 0..3 (sheet §2).
/// Neither Linux nor MCU+ writes it; neither does this driver.
pub const IRQ_EOI_OFFSET: usize = 0x140;

/// The offset of `MESSAGE_m` (`m` taken modulo [`QUEUES`]).
#[must_use]
pub const fn message_offset(m: u8) -> usize {
    MESSAGE0_OFFSET + 4 * (m % QUEUES) as usize
}

/// The offset of `FIFOSTATUS_m` (`m` taken modulo [`QUEUES`]).
#[must_use]
pub const fn fifostatus_offset(m: u8) -> usize {
    FIFOSTATUS0_OFFSET + 4 * (m % QUEUES) as usize
}

/// The offset of `MSGSTATUS_m` (`m` taken modulo [`QUEUES`]).
#[must_use]
pub const fn msgstatus_offset(m: u8) -> usize {
    MSGSTATUS0_OFFSET + 4 * (m % QUEUES) as usize
}

/// The offset of `IRQSTATUS_RAW_u` (`u` taken modulo [`USERS`]).
#[must_use]
pub const fn irqstatus_raw_offset(u: u8) -> usize {
    IRQSTATUS_RAW0_OFFSET + USER_STRIDE * (u % USERS) as usize
}

/// The offset of `IRQSTATUS_CLR_u` (`u` taken modulo [`USERS`]).
#[must_use]
pub const fn irqstatus_clr_offset(u: u8) -> usize {
    IRQSTATUS_CLR0_OFFSET + USER_STRIDE * (u % USERS) as usize
}

/// The offset of `IRQENABLE_SET_u` (`u` taken modulo [`USERS`]).
#[must_use]
pub const fn irqenable_set_offset(u: u8) -> usize {
    IRQENABLE_SET0_OFFSET + USER_STRIDE * (u % USERS) as usize
}

/// The offset of `IRQENABLE_CLR_u` (`u` taken modulo [`USERS`]).
#[must_use]
pub const fn irqenable_clr_offset(u: u8) -> usize {
    IRQENABLE_CLR0_OFFSET + USER_STRIDE * (u % USERS) as usize
}

/// The `NEWMSG` bit of queue `m` in the interrupt registers: bit `2m`
/// (sheet §2.1; `m` taken modulo [`QUEUES`]).
#[must_use]
pub const fn newmsg(m: u8) -> u32 {
    1 << (2 * (m % QUEUES))
}

/// The `NOTFULL` bit of queue `m` in the interrupt registers: bit `2m + 1`
/// (sheet §2.1; `m` taken modulo [`QUEUES`]).
#[must_use]
pub const fn notfull(m: u8) -> u32 {
    1 << (2 * (m % QUEUES) + 1)
}

/// Every `NEWMSG` bit (even bits, sheet §2.1).
pub const NEWMSG_MASK: u32 = 0x5555_5555;
/// Every `NOTFULL` bit (odd bits, sheet §2.1).
pub const NOTFULL_MASK: u32 = 0xAAAA_AAAA;

/// Reset value of `IRQSTATUS_RAW_u` as the AM335x TRM table gives it (sheet
/// §2). UNCERTAIN(am62x-mailbox.md §2 IRQSTATUS_RAW): the simulation
/// re-asserts `NOTFULL` for every empty queue at once, so a read after reset
/// returns [`NOTFULL_MASK`]; see `sim` and the test
/// `uncertain_raw_notfull_reads_one_after_reset`.
pub const IRQSTATUS_RAW_RESET: u32 = 0;
/// Reset value of the enable register behind `IRQENABLE_SET_u` /
/// `IRQENABLE_CLR_u`: nothing enabled (inferred: the sheet gives no value;
/// Linux enables every event it wants explicitly, sheet §3.2).
pub const IRQENABLE_RESET: u32 = 0;
/// Reset value of `MSGSTATUS_m`: empty queue (sheet §1, §2).
pub const MSGSTATUS_RESET: u32 = 0;
/// Reset value of `FIFOSTATUS_m`: not full (sheet §2).
pub const FIFOSTATUS_RESET: u32 = 0;
/// Reset value of `SYSCONFIG`: no reset in progress (inferred).
pub const SYSCONFIG_RESET: u32 = 0;

/// The `register_bitfields!` expansion. It generates helper items (the
/// `Register` marker, `SET`/`CLEAR` values) that carry no docs of their own;
/// every register and field is documented on its line.
#[allow(missing_docs)]
mod bitfields {
    use tock_registers::register_bitfields;

    register_bitfields![u32,
        /// `MAILBOX_REVISION` (offset 0x000), sheet §2.
        pub REVISION [
            /// Minor revision.
            Y_MINOR OFFSET(0) NUMBITS(6) [],
            /// Custom revision.
            CUSTOM OFFSET(6) NUMBITS(2) [],
            /// Major revision.
            X_MAJOR OFFSET(8) NUMBITS(3) [],
            /// RTL revision.
            R_RTL OFFSET(11) NUMBITS(5) [],
            /// Function code.
            FUNC OFFSET(16) NUMBITS(12) [],
            /// Business unit.
            BU OFFSET(28) NUMBITS(2) [],
            /// Revision scheme.
            SCHEME OFFSET(30) NUMBITS(2) []
        ],
        /// `MAILBOX_SYSCONFIG` (offset 0x010), sheet §2 (TI CSL `hw_mailbox.h`).
        pub SYSCONFIG [
            /// Write 1: reset the whole cluster (every user's queues and
            /// interrupt state). Never written by this driver (sheet §5 item 1).
            SOFTRESET OFFSET(0) NUMBITS(1) []
        ],
        /// `MAILBOX_FIFOSTATUS_m` (offset 0x080 + 4m), sheet §2.
        pub FIFOSTATUS [
            /// 1 = the queue holds [`FIFO_DEPTH`] messages; a write now is lost.
            FIFOFULL OFFSET(0) NUMBITS(1) []
        ],
        /// `MAILBOX_MSGSTATUS_m` (offset 0x0C0 + 4m), sheet §2.
        pub MSGSTATUS [
            /// Number of messages in the queue (0..=[`FIFO_DEPTH`]).
            /// UNCERTAIN(am62x-mailbox.md §2 MSGSTATUS): the field width differs
            /// between sources (CSL mask 0x3F, MCU+ masks 7, Linux unmasked);
            /// the 6-bit CSL width is used, and the driver only tests it for 0.
            NBOFMSG OFFSET(0) NUMBITS(6) []
        ],
        /// The per-user interrupt event layout shared by `IRQSTATUS_RAW_u`,
        /// `IRQSTATUS_CLR_u`, `IRQENABLE_SET_u` and `IRQENABLE_CLR_u` (sheet
        /// §2.1): `NEWMSGm` at bit `2m`, `NOTFULLm` at bit `2m + 1`.
        pub IRQ [
            /// Queue 0 holds a message.
            NEWMSG0 OFFSET(0) NUMBITS(1) [],
            /// Queue 0 has room.
            NOTFULL0 OFFSET(1) NUMBITS(1) [],
            /// Queue 1 holds a message.
            NEWMSG1 OFFSET(2) NUMBITS(1) [],
            /// Queue 1 has room.
            NOTFULL1 OFFSET(3) NUMBITS(1) [],
            /// Queue 2 holds a message.
            NEWMSG2 OFFSET(4) NUMBITS(1) [],
            /// Queue 2 has room.
            NOTFULL2 OFFSET(5) NUMBITS(1) [],
            /// Queue 3 holds a message.
            NEWMSG3 OFFSET(6) NUMBITS(1) [],
            /// Queue 3 has room.
            NOTFULL3 OFFSET(7) NUMBITS(1) [],
            /// Queue 4 holds a message.
            NEWMSG4 OFFSET(8) NUMBITS(1) [],
            /// Queue 4 has room.
            NOTFULL4 OFFSET(9) NUMBITS(1) [],
            /// Queue 5 holds a message.
            NEWMSG5 OFFSET(10) NUMBITS(1) [],
            /// Queue 5 has room.
            NOTFULL5 OFFSET(11) NUMBITS(1) [],
            /// Queue 6 holds a message.
            NEWMSG6 OFFSET(12) NUMBITS(1) [],
            /// Queue 6 has room.
            NOTFULL6 OFFSET(13) NUMBITS(1) [],
            /// Queue 7 holds a message.
            NEWMSG7 OFFSET(14) NUMBITS(1) [],
            /// Queue 7 has room.
            NOTFULL7 OFFSET(15) NUMBITS(1) [],
            /// Queue 8 holds a message.
            NEWMSG8 OFFSET(16) NUMBITS(1) [],
            /// Queue 8 has room.
            NOTFULL8 OFFSET(17) NUMBITS(1) [],
            /// Queue 9 holds a message.
            NEWMSG9 OFFSET(18) NUMBITS(1) [],
            /// Queue 9 has room.
            NOTFULL9 OFFSET(19) NUMBITS(1) [],
            /// Queue 10 holds a message.
            NEWMSG10 OFFSET(20) NUMBITS(1) [],
            /// Queue 10 has room.
            NOTFULL10 OFFSET(21) NUMBITS(1) [],
            /// Queue 11 holds a message.
            NEWMSG11 OFFSET(22) NUMBITS(1) [],
            /// Queue 11 has room.
            NOTFULL11 OFFSET(23) NUMBITS(1) [],
            /// Queue 12 holds a message.
            NEWMSG12 OFFSET(24) NUMBITS(1) [],
            /// Queue 12 has room.
            NOTFULL12 OFFSET(25) NUMBITS(1) [],
            /// Queue 13 holds a message.
            NEWMSG13 OFFSET(26) NUMBITS(1) [],
            /// Queue 13 has room.
            NOTFULL13 OFFSET(27) NUMBITS(1) [],
            /// Queue 14 holds a message.
            NEWMSG14 OFFSET(28) NUMBITS(1) [],
            /// Queue 14 has room.
            NOTFULL14 OFFSET(29) NUMBITS(1) [],
            /// Queue 15 holds a message.
            NEWMSG15 OFFSET(30) NUMBITS(1) [],
            /// Queue 15 has room.
            NOTFULL15 OFFSET(31) NUMBITS(1) []
        ],
        /// `MAILBOX_IRQ_EOI` (offset 0x140), sheet §2 (CSL `hw_mailbox.h`).
        pub IRQ_EOI [
            /// End of interrupt for user 0.
            EOI0 OFFSET(0) NUMBITS(1) [],
            /// End of interrupt for user 1.
            EOI1 OFFSET(1) NUMBITS(1) [],
            /// End of interrupt for user 2.
            EOI2 OFFSET(2) NUMBITS(1) [],
            /// End of interrupt for user 3.
            EOI3 OFFSET(3) NUMBITS(1) []
        ]
    ];
}

pub use bitfields::{FIFOSTATUS, IRQ, IRQ_EOI, MSGSTATUS, REVISION, SYSCONFIG};

#[cfg(test)]
mod tests {
    use super::*;
    use tock_registers::fields::Field;
    use tock_registers::RegisterLongName;

    fn mask<R: RegisterLongName>(f: Field<u32, R>) -> u32 {
        f.mask << f.shift
    }

    /// Sheet §2 register table, transcribed: (name, offset).
    const SHEET_OFFSETS: &[(&str, usize)] = &[
        ("MAILBOX_REVISION", 0x000),
        ("MAILBOX_SYSCONFIG", 0x010),
        ("MAILBOX_MESSAGE_0", 0x040),
        ("MAILBOX_MESSAGE_15", 0x07C),
        ("MAILBOX_FIFOSTATUS_0", 0x080),
        ("MAILBOX_FIFOSTATUS_15", 0x0BC),
        ("MAILBOX_MSGSTATUS_0", 0x0C0),
        ("MAILBOX_MSGSTATUS_15", 0x0FC),
        ("MAILBOX_IRQSTATUS_RAW_0", 0x100),
        ("MAILBOX_IRQSTATUS_CLR_0", 0x104),
        ("MAILBOX_IRQENABLE_SET_0", 0x108),
        ("MAILBOX_IRQENABLE_CLR_0", 0x10C),
        ("MAILBOX_IRQSTATUS_RAW_3", 0x130),
        ("MAILBOX_IRQSTATUS_CLR_3", 0x134),
        ("MAILBOX_IRQENABLE_SET_3", 0x138),
        ("MAILBOX_IRQENABLE_CLR_3", 0x13C),
        ("MAILBOX_IRQ_EOI", 0x140),
    ];

    fn ours(name: &str) -> usize {
        match name {
            "MAILBOX_REVISION" => REVISION_OFFSET,
            "MAILBOX_SYSCONFIG" => SYSCONFIG_OFFSET,
            "MAILBOX_MESSAGE_0" => message_offset(0),
            "MAILBOX_MESSAGE_15" => message_offset(15),
            "MAILBOX_FIFOSTATUS_0" => fifostatus_offset(0),
            "MAILBOX_FIFOSTATUS_15" => fifostatus_offset(15),
            "MAILBOX_MSGSTATUS_0" => msgstatus_offset(0),
            "MAILBOX_MSGSTATUS_15" => msgstatus_offset(15),
            "MAILBOX_IRQSTATUS_RAW_0" => irqstatus_raw_offset(0),
            "MAILBOX_IRQSTATUS_CLR_0" => irqstatus_clr_offset(0),
            "MAILBOX_IRQENABLE_SET_0" => irqenable_set_offset(0),
            "MAILBOX_IRQENABLE_CLR_0" => irqenable_clr_offset(0),
            "MAILBOX_IRQSTATUS_RAW_3" => irqstatus_raw_offset(3),
            "MAILBOX_IRQSTATUS_CLR_3" => irqstatus_clr_offset(3),
            "MAILBOX_IRQENABLE_SET_3" => irqenable_set_offset(3),
            "MAILBOX_IRQENABLE_CLR_3" => irqenable_clr_offset(3),
            "MAILBOX_IRQ_EOI" => IRQ_EOI_OFFSET,
            other => panic!("no constant for {other}"),
        }
    }

    #[test]
    fn offsets_match_sheet_table() {
        for &(name, offset) in SHEET_OFFSETS {
            assert_eq!(ours(name), offset, "{name}");
        }
        // Every queue and user, by the sheet's formulas (§2).
        for m in 0..QUEUES {
            let m4 = 4 * m as usize;
            assert_eq!(message_offset(m), 0x40 + m4);
            assert_eq!(fifostatus_offset(m), 0x80 + m4);
            assert_eq!(msgstatus_offset(m), 0xC0 + m4);
        }
        for u in 0..USERS {
            let u16 = 0x10 * u as usize;
            assert_eq!(irqstatus_raw_offset(u), 0x100 + u16);
            assert_eq!(irqstatus_clr_offset(u), 0x104 + u16);
            assert_eq!(irqenable_set_offset(u), 0x108 + u16);
            assert_eq!(irqenable_clr_offset(u), 0x10C + u16);
        }
        const { assert!(IRQ_EOI_OFFSET + 4 <= CLUSTER_LEN) };
        assert_eq!(CLUSTER0_BASE + 7 * CLUSTER_STRIDE, 0x2907_0000);
    }

    #[test]
    fn offsets_are_distinct_and_aligned() {
        let mut all = vec![REVISION_OFFSET, SYSCONFIG_OFFSET, IRQ_EOI_OFFSET];
        for m in 0..QUEUES {
            all.extend([message_offset(m), fifostatus_offset(m), msgstatus_offset(m)]);
        }
        for u in 0..USERS {
            all.extend([
                irqstatus_raw_offset(u),
                irqstatus_clr_offset(u),
                irqenable_set_offset(u),
                irqenable_clr_offset(u),
            ]);
        }
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "two registers share an offset");
        assert!(all.iter().all(|o| o % 4 == 0 && *o < CLUSTER_LEN));
    }

    #[test]
    fn interrupt_bits_match_sheet_and_do_not_overlap() {
        let newmsg_fields = [
            IRQ::NEWMSG0,
            IRQ::NEWMSG1,
            IRQ::NEWMSG2,
            IRQ::NEWMSG3,
            IRQ::NEWMSG4,
            IRQ::NEWMSG5,
            IRQ::NEWMSG6,
            IRQ::NEWMSG7,
            IRQ::NEWMSG8,
            IRQ::NEWMSG9,
            IRQ::NEWMSG10,
            IRQ::NEWMSG11,
            IRQ::NEWMSG12,
            IRQ::NEWMSG13,
            IRQ::NEWMSG14,
            IRQ::NEWMSG15,
        ];
        let notfull_fields = [
            IRQ::NOTFULL0,
            IRQ::NOTFULL1,
            IRQ::NOTFULL2,
            IRQ::NOTFULL3,
            IRQ::NOTFULL4,
            IRQ::NOTFULL5,
            IRQ::NOTFULL6,
            IRQ::NOTFULL7,
            IRQ::NOTFULL8,
            IRQ::NOTFULL9,
            IRQ::NOTFULL10,
            IRQ::NOTFULL11,
            IRQ::NOTFULL12,
            IRQ::NOTFULL13,
            IRQ::NOTFULL14,
            IRQ::NOTFULL15,
        ];
        let mut seen = 0u32;
        for m in 0..QUEUES {
            let (nm, nf) = (newmsg_fields[m as usize], notfull_fields[m as usize]);
            // Sheet §2.1: MAILBOX_IRQ_NEWMSG(m) = 1 << 2m, NOTFULL = 1 << (2m + 1).
            assert_eq!(mask(nm), 1 << (2 * m), "NEWMSG{m}");
            assert_eq!(mask(nf), 1 << (2 * m + 1), "NOTFULL{m}");
            assert_eq!(newmsg(m), mask(nm));
            assert_eq!(notfull(m), mask(nf));
            for bit in [mask(nm), mask(nf)] {
                assert_eq!(seen & bit, 0, "overlap at queue {m}");
                seen |= bit;
            }
        }
        assert_eq!(seen, u32::MAX, "16 queues x 2 events fill the register");
        assert_eq!(NEWMSG_MASK, (0..QUEUES).fold(0, |a, m| a | newmsg(m)));
        assert_eq!(NOTFULL_MASK, (0..QUEUES).fold(0, |a, m| a | notfull(m)));
        assert_eq!(NEWMSG_MASK & NOTFULL_MASK, 0);
    }

    #[test]
    fn small_fields_match_sheet() {
        // Sheet §2: SOFTRESET bit 0, FIFOFULL bit 0, EOI0..3 = bits 0..3.
        assert_eq!(mask(SYSCONFIG::SOFTRESET), 1);
        assert_eq!(mask(FIFOSTATUS::FIFOFULL), 1);
        assert_eq!(mask(MSGSTATUS::NBOFMSG), 0x3F);
        let eoi = [IRQ_EOI::EOI0, IRQ_EOI::EOI1, IRQ_EOI::EOI2, IRQ_EOI::EOI3];
        for (u, f) in eoi.into_iter().enumerate() {
            assert_eq!(mask(f), 1 << u);
        }
        // REVISION: SCHEME[31:30], BU[29:28], FUNC[27:16], R_RTL[15:11],
        // X_MAJOR[10:8], CUSTOM[7:6], Y_MINOR[5:0] (sheet §2), no overlap,
        // covering all 32 bits.
        let rev = [
            (REVISION::SCHEME, 0xC000_0000),
            (REVISION::BU, 0x3000_0000),
            (REVISION::FUNC, 0x0FFF_0000),
            (REVISION::R_RTL, 0x0000_F800),
            (REVISION::X_MAJOR, 0x0000_0700),
            (REVISION::CUSTOM, 0x0000_00C0),
            (REVISION::Y_MINOR, 0x0000_003F),
        ];
        let mut seen = 0u32;
        for (f, want) in rev {
            assert_eq!(mask(f), want);
            assert_eq!(seen & want, 0);
            seen |= want;
        }
        assert_eq!(seen, u32::MAX);
    }

    #[test]
    fn uncertain_msgstatus_field_is_six_bits() {
        // CSL width 0x3F chosen over MCU+'s mask 7 (sheet §2); a count of
        // FIFO_DEPTH fits either way.
        assert_eq!(mask(MSGSTATUS::NBOFMSG), 0x3F);
        assert!(FIFO_DEPTH as u32 <= 7);
    }

    #[test]
    fn reset_values() {
        assert_eq!(IRQSTATUS_RAW_RESET, 0);
        assert_eq!(IRQENABLE_RESET, 0);
        assert_eq!(MSGSTATUS_RESET & mask(MSGSTATUS::NBOFMSG), 0);
        assert_eq!(FIFOSTATUS_RESET & mask(FIFOSTATUS::FIFOFULL), 0);
        assert_eq!(SYSCONFIG_RESET & mask(SYSCONFIG::SOFTRESET), 0);
    }
}
