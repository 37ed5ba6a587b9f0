//! The simulation's hardware rules (shared/docs/hw/octeon-ciu-mbox.md), and
//! one test per UNCERTAIN choice of the model, named after it.

use ipc_traits::regs::Regs64;
use mbox_octeon::registers::{
    int_en0, int_en0_w1c, int_en0_w1s, int_en1, int_sum0, ip2_line, ip3_line, mbox_clr, mbox_set,
    INT_EN0, INT_SUM0, MBOX0_BITS,
};
use mbox_octeon::sim::{Access, Ciu, CoreRegs, Op};

const MBOX0: u64 = 1 << 32;
const MBOX1: u64 = 1 << 33;

#[test]
fn set_is_write_1_to_set_and_clr_is_write_1_to_clear() {
    let ciu = Ciu::new(2);
    let r = ciu.core(0);
    r.write(mbox_set(1), 0b1010);
    r.write(mbox_set(1), 0b0100); // zeros change nothing
    assert_eq!(ciu.mailbox(1), 0b1110);
    r.write(mbox_set(1), 0b0100); // setting a set bit coalesces
    assert_eq!(ciu.mailbox(1), 0b1110);
    r.write(mbox_clr(1), 0b0110);
    assert_eq!(ciu.mailbox(1), 0b1000);
    r.write(mbox_clr(1), 0); // zeros change nothing
    assert_eq!(ciu.mailbox(1), 0b1000);
}

#[test]
fn any_core_rings_any_core_and_only_that_core() {
    let ciu = Ciu::cn7130();
    ciu.core(0).write(mbox_set(3), 1 << 7);
    ciu.core(2).write(mbox_set(0), 1 << 30);
    assert_eq!(
        (0..4).map(|c| ciu.mailbox(c)).collect::<Vec<_>>(),
        [1 << 30, 0, 0, 1 << 7]
    );
    // Core 3 clears its own bit; core 1's view could as well (no per-core
    // protection in the CIU).
    ciu.core(1).write(mbox_clr(3), 1 << 7);
    assert_eq!(ciu.mailbox(3), 0);
}

#[test]
fn reserved_upper_bits_are_ignored_on_write_and_read_zero() {
    let ciu = Ciu::new(2);
    let r = ciu.core(0);
    r.write(mbox_set(1), (1 << 40) | (1 << 3));
    assert_eq!(ciu.mailbox(1), 1 << 3);
    assert_eq!(r.read(mbox_set(1)) >> 32, 0);
    r.write(mbox_clr(1), (1 << 63) | (1 << 3));
    assert_eq!(ciu.mailbox(1), 0);
    assert_eq!(ciu.reserved_bits_written(), 2);
}

#[test]
fn uncertain_set_and_clr_both_read_mailbox() {
    let ciu = Ciu::new(2);
    let r = ciu.core(1);
    r.write(mbox_set(1), 0x8000_0011);
    assert_eq!(r.read(mbox_set(1)), 0x8000_0011);
    assert_eq!(r.read(mbox_clr(1)), 0x8000_0011);
    // Reading has no side effect.
    assert_eq!(ciu.mailbox(1), 0x8000_0011);
}

#[test]
fn uncertain_reset_values_are_zero() {
    let ciu = Ciu::cn7130();
    let r = ciu.core(0);
    for c in 0..4 {
        assert_eq!(r.read(mbox_clr(c)), 0);
        for line in [ip2_line(c), ip3_line(c)] {
            assert_eq!(r.read(int_en0(line)), 0);
            assert_eq!(r.read(int_en1(line)), 0);
            assert_eq!(r.read(int_sum0(line)), 0);
        }
        assert!(!ciu.ip2_level(c) && !ciu.ip3_level(c));
    }
    assert_eq!(ciu.unknown_accesses(), 0);
}

#[test]
fn uncertain_mailbox_summary_is_level_sensitive_per_half() {
    let ciu = Ciu::new(2);
    let r = ciu.core(0);
    let sum = |r: CoreRegs| r.read(int_sum0(ip2_line(1))) & (MBOX0 | MBOX1);
    r.write(mbox_set(1), 1 << 3);
    assert_eq!(sum(r), INT_SUM0::MBOX0::SET.value);
    r.write(mbox_set(1), 1 << 20);
    assert_eq!(sum(r), MBOX0 | MBOX1);
    assert!(!ciu.ip2_level(1), "no line without an enable");
    r.write(int_en0_w1s(ip2_line(1)), INT_EN0::MBOX0::SET.value);
    assert!(ciu.ip2_level(1));
    assert!(
        ciu.ip2_level(1),
        "level: stays high while the bit stays set"
    );
    r.write(mbox_clr(1), 1 << 3);
    assert!(!ciu.ip2_level(1), "bit 20 is in the disabled half");
    r.write(int_en0_w1s(ip2_line(1)), MBOX1);
    assert!(ciu.ip2_level(1));
    r.write(int_en0_w1c(ip2_line(1)), MBOX1);
    assert!(!ciu.ip2_level(1), "disabling the half lowers the line");
    assert!(!ciu.ip2_level(0), "core 0's line is not involved");
}

#[test]
fn uncertain_mailbox_summary_also_on_ip3_line() {
    let ciu = Ciu::new(2);
    let r = ciu.core(0);
    r.write(mbox_set(1), 1 << 16);
    assert_eq!(r.read(int_sum0(ip3_line(1))) & MBOX1, MBOX1);
    assert!(!ciu.ip3_level(1));
    r.write(int_en0_w1s(ip3_line(1)), MBOX1);
    assert!(ciu.ip3_level(1));
    assert!(!ciu.ip2_level(1), "IP2's enable is separate");
}

#[test]
fn uncertain_en0_alias_reads_return_en0() {
    let ciu = Ciu::new(1);
    let r = ciu.core(0);
    r.write(int_en0(0), MBOX1 | 1);
    assert_eq!(r.read(int_en0_w1s(0)), MBOX1 | 1);
    assert_eq!(r.read(int_en0_w1c(0)), MBOX1 | 1);
}

#[test]
fn uncertain_sum0_writes_are_ignored() {
    let ciu = Ciu::new(1);
    let r = ciu.core(0);
    r.write(mbox_set(0), 1 << 5);
    r.write(int_sum0(0), MBOX0 | MBOX1);
    assert_eq!(r.read(int_sum0(0)), MBOX0);
    assert_eq!(ciu.mailbox(0), 1 << 5);
    assert_eq!(ciu.ignored_writes(), 1);
}

#[test]
fn en0_aliases_change_only_the_written_bits() {
    let ciu = Ciu::new(2);
    let r = ciu.core(1);
    let line = ip2_line(1);
    r.write(int_en0(line), 0b101); // other sources of the line
    r.write(int_en0_w1s(line), MBOX0);
    assert_eq!(r.read(int_en0(line)), MBOX0 | 0b101);
    r.write(int_en0_w1s(line), MBOX1);
    r.write(int_en0_w1c(line), MBOX0);
    assert_eq!(r.read(int_en0(line)), MBOX1 | 0b101);
    assert_eq!(ciu.en0(line), MBOX1 | 0b101);
    assert_eq!(ciu.en0(ip2_line(0)), 0);
}

#[test]
fn unknown_offsets_read_zero_drop_writes_and_are_counted() {
    let ciu = Ciu::cn7130();
    let r = ciu.core(0);
    r.write(mbox_set(0), 1 << 9);
    let bad = [
        mbox_set(0) + 4, // misaligned (a 32-bit half)
        mbox_set(4),     // no core 4 on a CN7130
        int_en0(8),      // no line 8
        int_sum0(8),     // no line 8
        0x1000,          // a gap
        int_en0_w1s(31) + 8,
    ];
    for offset in bad {
        assert_eq!(r.read(offset), 0, "{offset:#x}");
        r.write(offset, u64::MAX);
    }
    assert_eq!(ciu.unknown_accesses(), 2 * bad.len() as u32);
    assert_eq!(
        (0..4).map(|c| ciu.mailbox(c)).collect::<Vec<_>>(),
        [1 << 9, 0, 0, 0]
    );
    assert!((0..8).all(|l| ciu.en0(l) == 0));
}

#[test]
fn uncertain_cn7130_has_four_cores() {
    let ciu = Ciu::cn7130();
    assert_eq!(ciu.cores(), 4);
    ciu.core(0).write(mbox_set(3), 1);
    assert_eq!(ciu.unknown_accesses(), 0);
    ciu.core(0).write(mbox_set(4), 1);
    assert_eq!(ciu.unknown_accesses(), 1);
}

#[test]
fn core_count_is_clamped_to_the_index_range() {
    assert_eq!(Ciu::new(0).cores(), 1);
    assert_eq!(Ciu::new(40).cores(), 16);
}

#[test]
fn uncertain_wait_wakes_only_on_an_enabled_line() {
    let ciu = Ciu::new(2);
    let r = ciu.core(0);
    assert!(ciu.enter_wait(1));
    r.write(mbox_set(1), 1 << 6);
    assert!(ciu.is_waiting(1), "a bit in a disabled half raises no line");
    r.write(int_en0_w1s(ip2_line(1)), MBOX0);
    assert!(
        !ciu.is_waiting(1),
        "the enabled pending bit raises IP2 and ends WAIT"
    );
    assert_eq!(ciu.wakeups(1), 1);
    // WAIT with the line already high returns at once.
    assert!(!ciu.enter_wait(1));
    r.write(mbox_clr(1), 1 << 6);
    assert!(ciu.enter_wait(1));
    r.write(mbox_set(1), 1 << 7);
    assert!(!ciu.is_waiting(1));
    assert_eq!(ciu.wakeups(1), 2);
    assert!(!ciu.is_waiting(0) && ciu.wakeups(0) == 0);
}

#[test]
fn injected_bits_behave_like_a_set_write() {
    let ciu = Ciu::new(2);
    ciu.core(1).write(int_en0_w1s(ip2_line(1)), MBOX0);
    ciu.inject_mailbox_bits(1, 0b111);
    assert_eq!(ciu.mailbox(1), 0b111);
    assert!(ciu.ip2_level(1));
    ciu.inject_mailbox_bits(9, 1); // no such core: nothing happens
    assert_eq!(ciu.mailbox(0), 0);
}

#[test]
fn log_records_each_access_with_its_core() {
    let ciu = Ciu::new(2);
    ciu.record(true);
    ciu.core(0).write(mbox_set(1), 1 << 4);
    let _ = ciu.core(1).read(mbox_clr(1));
    assert_eq!(
        ciu.take_log(),
        [
            Access {
                by: 0,
                op: Op::Write,
                offset: mbox_set(1),
                value: 1 << 4
            },
            Access {
                by: 1,
                op: Op::Read,
                offset: mbox_clr(1),
                value: 1 << 4
            },
        ]
    );
    assert!(ciu.take_log().is_empty());
    ciu.record(false);
    ciu.core(0).write(mbox_set(1), 1);
    assert!(ciu.take_log().is_empty());
}

#[test]
fn views_are_copy_send_sync_and_shared_between_threads() {
    fn assert_traits<T: Copy + Send + Sync + 'static>() {}
    assert_traits::<CoreRegs>();
    assert_traits::<Ciu>();
    let ciu = Ciu::new(4);
    let threads: Vec<_> = (0..4u8)
        .map(|c| {
            std::thread::spawn(move || {
                for i in 0..1000u32 {
                    ciu.core(c).write(mbox_set(c), u64::from(1u32 << (i % 32)));
                    ciu.core(c).write(mbox_clr(c), u64::from(1u32 << (i % 32)));
                }
                ciu.core(c).write(mbox_set(c), u64::from(MBOX0_BITS));
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!((0..4).all(|c| ciu.mailbox(c) == MBOX0_BITS));
}
