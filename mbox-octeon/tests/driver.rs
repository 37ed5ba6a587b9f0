//! The driver against the simulation: exact register traffic, interrupts,
//! bad input, ownership round trips and the peer wake.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use ipc_traits::mailbox::{
    Budget, Error as _, ErrorKind, Event, Events, InterruptSource, Listen, Mailbox, Notify,
    NotifyRx, QueueId, Spins,
};
use ipc_traits::regs::Regs64;
use mbox_octeon::registers::{int_en0, int_en0_w1c, int_en0_w1s, ip2_line, mbox_clr, mbox_set};
use mbox_octeon::sim::{Access, Ciu, CoreRegs, Op};
use mbox_octeon::{CoreId, Error, Mbox, MboxIrq, MboxParts, RxBit, RxQueues, TxBit, TxQueues};

const MBOX0: u64 = 1 << 32;
const MBOX1: u64 = 1 << 33;

fn q(i: u8) -> QueueId {
    QueueId::new(i).unwrap_or_else(|| panic!("queue {i}"))
}

fn write(by: u8, offset: usize, value: u64) -> Access {
    Access {
        by,
        op: Op::Write,
        offset,
        value,
    }
}

fn read(by: u8, offset: usize, value: u64) -> Access {
    Access {
        by,
        op: Op::Read,
        offset,
        value,
    }
}

/// Core 0 rings core 1 on bits 4 and 20; core 1 takes them. Bit 30 is
/// claimed as a single-bit pair for the tests that need one.
struct Link {
    ciu: Ciu,
    irq_b: MboxIrq<CoreRegs>,
    kick: TxQueues<CoreRegs, 2>,
    take: RxQueues<CoreRegs, 2>,
    tx30: TxBit<CoreRegs, 30>,
    rx30: RxBit<CoreRegs, 30>,
}

fn link() -> Link {
    let ciu = Ciu::new(2);
    let MboxParts {
        outbox, irq: irq_a, ..
    } = ciu.mbox(0).split();
    let MboxParts {
        inbox,
        irq: mut irq_b,
        ..
    } = ciu.mbox(1).split();
    let b_id = irq_b.core();
    let kick = TxQueues::new([
        outbox.bit4.into_tx(&irq_a, b_id).degrade(),
        outbox.bit20.into_tx(&irq_a, b_id).degrade(),
    ]);
    let take = RxQueues::new([
        inbox.bit4.into_rx(&mut irq_b).degrade(),
        inbox.bit20.into_rx(&mut irq_b).degrade(),
    ])
    .unwrap_or_else(|(_, e)| panic!("{e}"));
    let tx30 = outbox.bit30.into_tx(&irq_a, b_id);
    let rx30 = inbox.bit30.into_rx(&mut irq_b);
    Link {
        ciu,
        irq_b,
        kick,
        take,
        tx30,
        rx30,
    }
}

#[test]
fn notify_is_one_write_1_to_set_on_the_peer() {
    let mut l = link();
    l.ciu.record(true);
    l.kick.notify(q(1)).unwrap();
    assert_eq!(l.ciu.take_log(), [write(0, mbox_set(1), 1 << 20)]);
    assert_eq!(l.ciu.mailbox(1), 1 << 20);
    assert_eq!(l.ciu.mailbox(0), 0);
}

#[test]
fn take_reads_once_and_clears_exactly_the_bits_it_returns() {
    let mut l = link();
    // Bit 4 is ours, 9 belongs to nobody in this group, 2 is Linux's.
    l.ciu.inject_mailbox_bits(1, (1 << 4) | (1 << 9) | (1 << 2));
    l.ciu.record(true);
    let set = l.take.take_pending().unwrap();
    assert_eq!(set.iter().collect::<Vec<_>>(), [q(0)]);
    let bits = (1 << 4) | (1 << 9) | (1 << 2);
    assert_eq!(
        l.ciu.take_log(),
        [read(1, mbox_clr(1), bits), write(1, mbox_clr(1), 1 << 4)]
    );
    assert_eq!(
        l.ciu.mailbox(1),
        (1 << 9) | (1 << 2),
        "other owners' bits untouched"
    );
}

#[test]
fn take_on_an_empty_mailbox_writes_nothing() {
    let mut l = link();
    l.ciu.record(true);
    assert!(l.take.take_pending().unwrap().is_empty());
    assert_eq!(l.ciu.take_log(), [read(1, mbox_clr(1), 0)]);
}

#[test]
fn rings_coalesce_and_each_queue_arrives_as_itself() {
    let mut l = link();
    for _ in 0..3 {
        l.kick.notify(q(0)).unwrap();
    }
    l.kick.notify(q(1)).unwrap();
    assert_eq!(l.take.take_pending().unwrap().bits(), 0b11);
    assert!(l.take.take_pending().unwrap().is_empty());
    assert_eq!(l.take.bit_of(q(1)), Some(20));
    assert_eq!(l.kick.bit_of(q(0)), Some(4));
    assert_eq!(l.take.bit_of(q(2)), None);
}

/// A register view that lets the peer ring `bit` right after the driver's
/// first read of `CIU_MBOX_CLR(core)`: the race between status read and
/// acknowledgement.
#[derive(Debug, Clone, Copy)]
struct RacingView {
    inner: CoreRegs,
    ciu: Ciu,
    core: u8,
    bit: u32,
    fired: &'static AtomicBool,
}

// SAFETY: delegates every access unchanged to the simulation's view, which
// upholds the contract; the extra injection touches only the model.
unsafe impl Regs64 for RacingView {
    fn read(self, offset: usize) -> u64 {
        let value = self.inner.read(offset);
        if offset == mbox_clr(self.core) && !self.fired.swap(true, Ordering::SeqCst) {
            self.ciu.inject_mailbox_bits(self.core, self.bit);
        }
        value
    }

    fn write(self, offset: usize, value: u64) {
        self.inner.write(offset, value);
    }
}

static RACE_FIRED: AtomicBool = AtomicBool::new(false);

#[test]
fn a_ring_between_read_and_clear_is_not_lost() {
    let ciu = Ciu::new(2);
    let racing = RacingView {
        inner: ciu.core(1),
        ciu,
        core: 1,
        bit: 1 << 5,
        fired: &RACE_FIRED,
    };
    let mut b = Mbox::new(racing, CoreId::new(1).unwrap()).split();
    let mut take = RxQueues::new([
        b.inbox.bit4.into_rx(&mut b.irq).degrade(),
        b.inbox.bit5.into_rx(&mut b.irq).degrade(),
    ])
    .unwrap();
    ciu.inject_mailbox_bits(1, 1 << 4);
    // The read sees bit 4 only; bit 5 lands before the clear.
    assert_eq!(
        take.take_pending().unwrap().iter().collect::<Vec<_>>(),
        [q(0)]
    );
    assert_eq!(
        ciu.mailbox(1),
        1 << 5,
        "the late ring must survive the clear"
    );
    assert_eq!(
        take.take_pending().unwrap().iter().collect::<Vec<_>>(),
        [q(1)]
    );
}

#[test]
fn line_is_high_while_any_enabled_bit_is_set() {
    let mut l = link();
    l.kick.notify(q(0)).unwrap();
    assert!(!l.ciu.ip2_level(1), "no line before listen");
    l.take.listen(Event::DataAvailable).unwrap();
    assert_eq!(
        l.ciu.en0(ip2_line(1)),
        MBOX0 | MBOX1,
        "bits 4 and 20 span both halves"
    );
    assert!(
        l.ciu.ip2_level(1),
        "enabling with a bit pending raises the line"
    );
    l.kick.notify(q(1)).unwrap();
    let _ = l.take.take_pending().unwrap();
    assert!(!l.ciu.ip2_level(1), "line falls once every bit is taken");
    l.take.unlisten(Event::DataAvailable).unwrap();
    l.kick.notify(q(1)).unwrap();
    assert!(!l.ciu.ip2_level(1), "no line after unlisten");
    assert!(!l.ciu.ip2_level(0), "the sender's line never moves");
}

#[test]
fn listen_uses_the_aliases_and_is_per_half() {
    let ciu = Ciu::new(2);
    let mut b = ciu.mbox(1).split();
    let mut rx4 = b.inbox.bit4.into_rx(&mut b.irq);
    let mut rx9 = b.inbox.bit9.into_rx(&mut b.irq);
    // Another driver of core 1 uses EN0 bit 0: it must survive.
    ciu.core(1).write(int_en0(ip2_line(1)), 1);
    ciu.record(true);
    rx4.listen(Event::DataAvailable).unwrap();
    assert_eq!(ciu.take_log(), [write(1, int_en0_w1s(ip2_line(1)), MBOX0)]);
    assert_eq!(b.irq.listening(), 0xFFFF);
    ciu.inject_mailbox_bits(1, 1 << 9);
    assert!(ciu.ip2_level(1), "bit 9 shares bit 4's half");
    ciu.record(true);
    rx4.unlisten(Event::DataAvailable).unwrap();
    assert_eq!(ciu.take_log(), [write(1, int_en0_w1c(ip2_line(1)), MBOX0)]);
    assert!(!ciu.ip2_level(1), "unlisten masks the whole half");
    assert_eq!(ciu.en0(ip2_line(1)), 1, "the other source's enable is kept");
    assert!(
        rx9.take_pending(),
        "masking loses nothing: the bit is still there"
    );
}

#[test]
fn listen_for_space_is_unsupported() {
    let mut l = link();
    let e = l.take.listen(Event::SpaceAvailable).unwrap_err();
    assert_eq!(e, Error::UnsupportedEvent(Event::SpaceAvailable));
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert_eq!(
        l.rx30.unlisten(Event::SpaceAvailable).unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    assert_eq!(l.ciu.en0(ip2_line(1)), 0);
}

#[test]
fn on_interrupt_reports_exactly_the_bits_read() {
    let ciu = Ciu::new(2);
    let mut b = ciu.mbox(1).split();
    let mut rx4 = b.inbox.bit4.into_rx(&mut b.irq);
    let rx20 = b.inbox.bit20.into_rx(&mut b.irq);
    rx4.listen(Event::DataAvailable).unwrap(); // half 0 only
    let pending: u32 = (1 << 2) | (1 << 4) | (1 << 9) | (1 << 20);
    ciu.inject_mailbox_bits(1, pending);
    ciu.record(true);
    let ev = b.irq.on_interrupt();
    assert_eq!(
        ev,
        Events {
            data_available: 1 << 4,
            space_available: 0,
            other: (1 << 2) | (1 << 9)
        }
    );
    assert_eq!(
        ciu.take_log(),
        [
            read(1, int_en0(ip2_line(1)), MBOX0),
            read(1, mbox_clr(1), u64::from(pending)),
            write(1, mbox_clr(1), (1 << 2) | (1 << 9)),
        ]
    );
    assert_eq!(
        ciu.mailbox(1),
        (1 << 4) | (1 << 20),
        "owned and disabled-half bits stay"
    );
    assert_eq!(b.irq.stray_bits(), 2);
    assert_eq!(b.irq.owned(), (1 << 4) | (1 << 20));
    let _ = rx20;
}

#[test]
fn owned_bits_stay_reported_until_their_owner_takes_them() {
    let mut l = link();
    l.take.listen(Event::DataAvailable).unwrap();
    l.kick.notify(q(0)).unwrap();
    assert_eq!(l.irq_b.on_interrupt().data_available, 1 << 4);
    assert!(
        l.ciu.ip2_level(1),
        "reporting does not acknowledge the doorbell"
    );
    assert_eq!(l.irq_b.on_interrupt().data_available, 1 << 4);
    assert_eq!(
        l.take.take_pending().unwrap().iter().collect::<Vec<_>>(),
        [q(0)]
    );
    assert!(!l.ciu.ip2_level(1));
    assert!(l.irq_b.on_interrupt().is_empty());
    assert_eq!(l.irq_b.spurious(), 1);
    assert_eq!(l.irq_b.stray_bits(), 0);
}

#[test]
fn spurious_interrupt_is_counted_and_writes_nothing() {
    let mut l = link();
    l.take.listen(Event::DataAvailable).unwrap();
    // A bit set in no enabled half is not an interrupt.
    l.take.unlisten(Event::DataAvailable).unwrap();
    l.kick.notify(q(0)).unwrap();
    l.ciu.record(true);
    assert_eq!(l.irq_b.on_interrupt(), Events::NONE);
    assert!(l.ciu.take_log().iter().all(|a| a.op == Op::Read));
    assert_eq!(l.irq_b.spurious(), 1);
    assert_eq!(
        l.take.take_pending().unwrap().bits(),
        1,
        "the doorbell is still there"
    );
}

#[test]
fn stray_linux_ipi_bits_are_acknowledged_counted_and_reported() {
    let mut l = link();
    l.take.listen(Event::DataAvailable).unwrap();
    // A Linux core sends its IPIs to the wrong core (bits 0..=3).
    l.ciu.inject_mailbox_bits(1, 0xF);
    assert!(l.ciu.ip2_level(1));
    let ev = l.irq_b.on_interrupt();
    assert_eq!((ev.data_available, ev.other), (0, 0xF));
    assert!(!l.ciu.ip2_level(1), "strays must not keep the line up");
    assert_eq!(l.irq_b.stray_bits(), 4);
    // Later traffic is undisturbed.
    l.kick.notify(q(1)).unwrap();
    assert_eq!(l.irq_b.on_interrupt().data_available, 1 << 20);
    assert_eq!(
        l.take.take_pending().unwrap().iter().collect::<Vec<_>>(),
        [q(1)]
    );
}

#[test]
fn unclaimed_bit_is_stray_and_released_bit_becomes_stray_again() {
    let ciu = Ciu::new(2);
    let mut b = ciu.mbox(1).split();
    let mut rx = b.inbox.bit12.into_rx(&mut b.irq);
    rx.listen(Event::DataAvailable).unwrap();
    ciu.inject_mailbox_bits(1, 1 << 12);
    assert_eq!(b.irq.on_interrupt().data_available, 1 << 12);
    assert!(rx.take_pending());
    b.inbox.bit12 = rx.release(&mut b.irq);
    assert_eq!(b.irq.owned(), 0);
    ciu.inject_mailbox_bits(1, 1 << 12);
    assert_eq!(b.irq.on_interrupt().other, 1 << 12);
    assert_eq!(ciu.mailbox(1), 0);
}

#[test]
fn split_join_round_trip_keeps_a_ring_in_flight() {
    let ciu = Ciu::new(2);
    let mut b = ciu.mbox(1).split();
    let mut a = ciu.mbox(0).split();
    let mut tx = a.outbox.bit31.into_tx(&a.irq, b.irq.core());
    let rx = b.inbox.bit31.into_rx(&mut b.irq);
    tx.ring();
    // Give everything back and rebuild both peripherals.
    a.outbox.bit31 = tx.release();
    b.inbox.bit31 = rx.release(&mut b.irq);
    let (ma, mb) = (Mbox::join(a), Mbox::join(b));
    assert_eq!((ma.core().index(), mb.core().index()), (0, 1));
    let (a, mut b) = (ma.split(), mb.split());
    assert_eq!(b.irq.owned(), 0);
    let mut rx = b.inbox.bit31.into_rx(&mut b.irq);
    assert!(rx.take_pending(), "the ring survives join/split");
    a.outbox.bit31.into_tx(&a.irq, b.irq.core()).ring();
    assert!(rx.is_pending());
    assert!(rx.take_pending());
    assert!(!rx.is_pending());
}

#[test]
fn erased_bits_convert_back_only_to_their_number() {
    let ciu = Ciu::new(2);
    let mut b = ciu.mbox(1).split();
    let any = b.inbox.bit6.into_rx(&mut b.irq).degrade();
    assert_eq!((any.bit(), any.core().index()), (6, 1));
    let any = any.try_into_bit::<7>().unwrap_err();
    let rx = any.try_into_bit::<6>().unwrap();
    b.inbox.bit6 = rx.release(&mut b.irq);
    let any_tx = b
        .outbox
        .bit8
        .into_tx(&b.irq, CoreId::new(0).unwrap())
        .degrade();
    assert_eq!((any_tx.bit(), any_tx.peer().index()), (8, 0));
    let tx = any_tx
        .try_into_bit::<9>()
        .unwrap_err()
        .try_into_bit::<8>()
        .unwrap();
    b.outbox.bit8 = tx.release();
    let _ = Mbox::join(b);
}

#[test]
fn notify_of_a_queue_without_a_bit_is_unsupported_and_writes_nothing() {
    let mut l = link();
    l.ciu.record(true);
    let e = l.kick.notify(q(2)).unwrap_err();
    assert_eq!(e, Error::NoSuchQueue(q(2)));
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(l.ciu.take_log().is_empty());
}

#[test]
fn rx_queues_refuse_mixed_cores_and_duplicates_and_give_bits_back() {
    let ciu = Ciu::new(2);
    let (mut a, mut b) = (ciu.mbox(0).split(), ciu.mbox(1).split());
    let (bits, e) = RxQueues::new([
        a.inbox.bit4.into_rx(&mut a.irq).degrade(),
        b.inbox.bit5.into_rx(&mut b.irq).degrade(),
    ])
    .unwrap_err();
    assert_eq!(e, Error::MixedCores);
    assert_eq!(bits.map(|b| b.bit()), [4, 5]);
    // Two drivers for one core (a misuse only a simulation makes easy).
    let mut b2 = ciu.mbox(1).split();
    let (_, e) = RxQueues::new([
        b.inbox.bit6.into_rx(&mut b.irq).degrade(),
        b2.inbox.bit6.into_rx(&mut b2.irq).degrade(),
    ])
    .unwrap_err();
    assert_eq!(e, Error::DuplicateBit(6));
}

#[test]
fn blocking_waits_are_bounded() {
    let mut l = link();
    assert_eq!(
        l.take.blocking_take(Spins::new(1000)),
        Err(Error::WouldBlock)
    );
    assert_eq!(l.rx30.wait(Spins::new(100)), Err(Error::WouldBlock));
    l.kick.notify(q(0)).unwrap();
    assert_eq!(l.take.blocking_take(Spins::new(0)).unwrap().bits(), 1);
    l.tx30.ring();
    assert_eq!(l.rx30.wait(Spins::new(0)), Ok(()));
    assert_eq!(
        ipc_traits::mailbox::blocking_notify(&mut l.kick, q(1), Spins::new(0)),
        Ok(()),
        "a doorbell is never full"
    );
}

/// A retry budget that yields the thread (the peer needs the CPU to answer).
struct Yielding(u32);

impl Budget for Yielding {
    fn next(&mut self) -> bool {
        thread::yield_now();
        self.0 = self.0.saturating_sub(1);
        self.0 > 0
    }
}

#[test]
fn bit_handles_moved_to_threads_keep_working() {
    let ciu = Ciu::new(2);
    let (mut a, mut b) = (ciu.mbox(0).split(), ciu.mbox(1).split());
    let mut ping = a.outbox.bit10.into_tx(&a.irq, b.irq.core());
    let mut pong_rx = a.inbox.bit11.into_rx(&mut a.irq);
    let mut ping_rx = b.inbox.bit10.into_rx(&mut b.irq);
    let mut pong = b.outbox.bit11.into_tx(&b.irq, a.irq.core());
    let peer = thread::spawn(move || {
        for _ in 0..1000 {
            ping_rx.wait(Yielding(10_000_000)).unwrap();
            pong.ring();
        }
    });
    for _ in 0..1000 {
        ping.ring();
        pong_rx.wait(Yielding(10_000_000)).unwrap();
    }
    peer.join().unwrap();
    assert_eq!((ciu.mailbox(0), ciu.mailbox(1)), (0, 0));
}

#[test]
fn reset_mailbox_clears_every_bit_and_masks_both_halves() {
    let ciu = Ciu::new(2);
    ciu.inject_mailbox_bits(1, u32::MAX);
    ciu.core(1).write(int_en0(ip2_line(1)), MBOX0 | MBOX1 | 1);
    let mut mbox = ciu.mbox(1);
    mbox.reset_mailbox();
    assert_eq!(ciu.mailbox(1), 0);
    assert_eq!(ciu.en0(ip2_line(1)), 1);
    assert!(!ciu.ip2_level(1));
}

#[test]
fn the_doorbell_is_the_peer_wake() {
    let mut l = link();
    l.take.listen(Event::DataAvailable).unwrap();
    assert!(l.ciu.enter_wait(1), "core 1 idles in WAIT");
    l.kick.notify(q(1)).unwrap();
    assert!(!l.ciu.is_waiting(1), "the doorbell ends the peer's WAIT");
    assert_eq!(l.ciu.wakeups(1), 1);
    let _ = l.take.take_pending().unwrap();
    // Without an enabled half the ring is kept but wakes nobody.
    l.take.unlisten(Event::DataAvailable).unwrap();
    assert!(l.ciu.enter_wait(1));
    l.kick.notify(q(0)).unwrap();
    assert!(l.ciu.is_waiting(1));
    l.take.listen(Event::DataAvailable).unwrap();
    assert!(
        !l.ciu.is_waiting(1),
        "enabling with the ring pending wakes it"
    );
}

#[test]
fn driver_traffic_stays_inside_the_model() {
    let mut l = link();
    l.take.listen(Event::DataAvailable).unwrap();
    for i in 0..64 {
        l.kick.notify(q(i % 2)).unwrap();
        let _ = l.irq_b.on_interrupt();
        let _ = l.take.take_pending().unwrap();
    }
    assert_eq!(l.ciu.unknown_accesses(), 0);
    assert_eq!(l.ciu.reserved_bits_written(), 0);
}

#[test]
fn mmio_path_writes_native_u64_values() {
    // A RAM stand-in for the CSR block: the driver must store plain u64
    // values (bit n = 1 << n) on little- and big-endian hosts alike.
    let mut csrs = vec![0u64; mbox_octeon::registers::CIU_WINDOW_LEN / 8];
    let base = NonNull::new(csrs.as_mut_ptr()).unwrap();
    // SAFETY: `csrs` is 8-aligned, covers the whole window, outlives the
    // driver (dropped at the end of the test) and is touched only through it.
    let mbox = unsafe { Mbox::new_unchecked(base, CoreId::new(2).unwrap()) };
    let mut p = mbox.split();
    let mut tx = p.outbox.bit17.into_tx(&p.irq, CoreId::new(3).unwrap());
    let mut rx = p.inbox.bit17.into_rx(&mut p.irq);
    tx.ring();
    rx.listen(Event::DataAvailable).unwrap();
    assert_eq!(csrs[mbox_set(3) / 8], 1 << 17);
    assert_eq!(csrs[int_en0_w1s(ip2_line(2)) / 8], MBOX1);
    // Reading goes through CLR(2): a value planted there is a pending bit.
    csrs[mbox_clr(2) / 8] = 1 << 17;
    assert!(rx.is_pending());
    assert!(rx.take_pending());
    assert_eq!(
        csrs[mbox_clr(2) / 8],
        1 << 17,
        "RAM keeps the W1C value written"
    );
    let _ = p.irq;
}
