//! Driver behaviour on the simulation: addressing, interrupts, bad input.
//!
//! The shared mailbox suite runs in `conformance/tests/mailbox_msgbox_v853.rs`;
//! these are the backend-specific checks.

use std::ptr::NonNull;

use ipc_traits::mailbox::NotifyRxError;
use ipc_traits::regs::Regs32;
use msgbox_v853::prelude::*;
use msgbox_v853::registers::{self, Processor};
use msgbox_v853::sim::{MsgboxSim, StatusReg};
use msgbox_v853::{Channel, Error, Msgbox, SpaceThreshold, Tx, OTHER_FOREIGN_STATUS};

const ARM: Processor = Processor::Arm;
const RV: Processor = Processor::Riscv;

#[test]
fn sender_writes_the_receivers_block() {
    let sim = MsgboxSim::new();
    let mut a7 = sim.msgbox(ARM).split();
    let mut e907 = sim.msgbox(RV).split();
    a7.tx2.try_send(0xA7).unwrap();
    e907.tx2.try_send(0xE9).unwrap();
    // Sheet §3: A7 → E907 lands in the RISC-V block, E907 → A7 in the ARM
    // block, same channel index.
    assert_eq!(sim.queued(RV, 2), [0xA7]);
    assert_eq!(sim.queued(ARM, 2), [0xE9]);
    assert_eq!(e907.rx2.try_recv(), Ok(0xA7));
    assert_eq!(a7.rx2.try_recv(), Ok(0xE9));
    // Channels are independent.
    assert_eq!(a7.rx1.try_recv(), Err(Error::WouldBlock));
}

#[test]
fn channels_fill_independently_and_report_depth() {
    let sim = MsgboxSim::new();
    let mut a7 = sim.msgbox(ARM).split();
    assert_eq!(Channel::<msgbox_v853::sim::SimRegs<'_>, 0, Tx>::DEPTH, 8);
    for i in 0..8 {
        a7.tx0.try_send(i).unwrap();
    }
    assert!(a7.tx0.is_full());
    assert_eq!(a7.tx0.queued(), 8);
    assert_eq!(a7.tx0.try_send(99), Err(Error::WouldBlock));
    a7.tx3.try_send(7).unwrap();
    assert!(!a7.tx3.is_full());
    assert_eq!(
        sim.counters().overflow_writes,
        0,
        "the driver never overfills"
    );
}

#[test]
fn driver_never_reads_fifo_status() {
    // FIFO_STATUS is UNVERIFIED (sheet §2, §7): full is MSG_STATUS >= 8.
    let sim = MsgboxSim::new();
    let mut a7 = sim.msgbox(ARM).split();
    let mut e907 = sim.msgbox(RV).split();
    e907.rx0.listen(Event::DataAvailable).unwrap();
    a7.tx0.listen(Event::SpaceAvailable).unwrap();
    let sent = (0..9).filter(|&i| a7.tx0.try_send(i).is_ok()).count();
    assert_eq!(sent, 8);
    let _ = e907.irq.on_interrupt();
    let _ = a7.irq.on_interrupt();
    while e907.rx0.try_recv().is_ok() {}
    let c = sim.counters();
    assert_eq!(c.fifo_status_reads, 0);
    assert_eq!(
        (c.unknown_reads, c.unknown_writes, c.read_only_writes),
        (0, 0, 0)
    );
    assert_eq!((c.overflow_writes, c.underflow_reads), (0, 0));
}

#[test]
fn receive_acknowledges_when_the_fifo_drains() {
    let sim = MsgboxSim::new();
    let mut a7 = sim.msgbox(ARM).split();
    let mut e907 = sim.msgbox(RV).split();
    e907.rx1.listen(Event::DataAvailable).unwrap();
    a7.tx1.try_send(1).unwrap();
    a7.tx1.try_send(2).unwrap();
    assert!(sim.block_line(RV));
    assert_eq!(e907.rx1.try_recv(), Ok(1));
    assert!(sim.block_line(RV), "one word left: still pending");
    assert_eq!(e907.rx1.try_recv(), Ok(2));
    assert!(!sim.block_line(RV), "drained: acknowledged by the receive");
    assert_eq!(sim.status(RV, StatusReg::Read), 0);
}

#[test]
fn on_interrupt_acknowledges_only_enabled_reported_bits() {
    let sim = MsgboxSim::new();
    let mut a7 = sim.msgbox(ARM).split();
    let mut e907 = sim.msgbox(RV).split();
    // Channels 0 and 3 receive; only channel 3 listens.
    e907.rx3.listen(Event::DataAvailable).unwrap();
    a7.tx0.try_send(10).unwrap();
    a7.tx3.try_send(13).unwrap();
    // Drain channel 0 without acknowledging: its latched bit must survive an
    // interrupt that does not report it.
    sim.block(RV).read(registers::msg_fifo(0));
    let ev = e907.irq.on_interrupt();
    assert_eq!(ev.data_available, 0b1000);
    assert_eq!(ev.space_available, 0);
    assert_eq!(
        sim.status(RV, StatusReg::Read) & 0b1,
        0b1,
        "unreported bit untouched"
    );
    // The A7's transmit-space bits in the RISC-V block were not touched by
    // the E907 either.
    assert_eq!(sim.status(RV, StatusReg::Write), registers::WRITE_IRQ_MASK);
}

#[test]
fn space_threshold_and_listen_clear_stale_pending() {
    let sim = MsgboxSim::new();
    let mut a7 = sim.msgbox(ARM).split();
    let mut e907 = sim.msgbox(RV).split();
    a7.tx2.set_space_threshold(SpaceThreshold::Four);
    assert_eq!(sim.block(RV).read(registers::write_irq_threshold(2)), 2);
    for i in 0..8 {
        a7.tx2.try_send(i).unwrap();
    }
    // The bit latched at reset (FIFO empty) is stale now: listen clears it.
    a7.tx2.listen(Event::SpaceAvailable).unwrap();
    assert!(a7.tx2.is_listening());
    assert!(a7.irq.on_interrupt().is_empty());
    for n in 1..=4 {
        e907.rx2.try_recv().unwrap();
        let ev = a7.irq.on_interrupt();
        assert_eq!(ev.has(2, Event::SpaceAvailable), n >= 4, "{n} free slots");
    }
    a7.tx2.unlisten(Event::SpaceAvailable).unwrap();
    assert!(!a7.tx2.is_listening());
}

#[test]
fn shared_enable_registers_keep_other_channels_bits() {
    let sim = MsgboxSim::new();
    let mut e907 = sim.msgbox(RV).split();
    e907.rx0.listen(Event::DataAvailable).unwrap();
    e907.rx2.listen(Event::DataAvailable).unwrap();
    e907.tx1.listen(Event::SpaceAvailable).unwrap();
    assert_eq!(sim.enable(RV, StatusReg::Read), 0b01_0001);
    assert_eq!(sim.enable(ARM, StatusReg::Write), 0b1000);
    e907.rx0.unlisten(Event::DataAvailable).unwrap();
    assert_eq!(sim.enable(RV, StatusReg::Read), 0b01_0000);
    let mut mb = Msgbox::join(e907);
    mb.disable_interrupts();
    assert_eq!(sim.enable(RV, StatusReg::Read), 0);
    assert_eq!(sim.enable(ARM, StatusReg::Write), 0);
}

#[test]
fn bad_input_foreign_status_bits_are_counted_and_acknowledged() {
    let sim = MsgboxSim::new();
    let mut a7 = sim.msgbox(ARM).split();
    // Bits no channel can raise: odd read bits, even write bits, high bits.
    sim.inject_status(ARM, StatusReg::Read, (1 << 1) | (1 << 9));
    sim.inject_status(RV, StatusReg::Write, 1 << 4);
    let ev = a7.irq.on_interrupt();
    assert_eq!(ev.other, OTHER_FOREIGN_STATUS);
    assert_eq!((ev.data_available, ev.space_available), (0, 0));
    assert_eq!(a7.irq.stats().foreign_status_bits, 3);
    assert_eq!(a7.irq.stats().spurious, 0);
    assert_eq!(sim.status(ARM, StatusReg::Read), 0, "acknowledged");
    assert_eq!(
        sim.status(RV, StatusReg::Write) & !registers::WRITE_IRQ_MASK,
        0
    );
    // Nothing left: the next call is spurious, and traffic still works.
    assert!(a7.irq.on_interrupt().is_empty());
    assert_eq!(a7.irq.stats().spurious, 1);
}

#[test]
fn bad_input_impossible_message_count_is_an_error_not_a_panic() {
    let sim = MsgboxSim::new();
    let mut a7 = sim.msgbox(ARM).split();
    let mut e907 = sim.msgbox(RV).split();
    a7.tx0.try_send(5).unwrap();
    // MSG_STATUS is 4 bits; the hardware never reports more than 8.
    sim.force_msg_status(RV, 0, Some(12));
    assert_eq!(a7.tx0.try_send(6), Err(Error::ImpossibleCount(12)));
    assert_eq!(e907.rx0.try_recv(), Err(Error::ImpossibleCount(12)));
    assert_eq!(a7.tx0.bad_status_count(), 1);
    assert_eq!(e907.rx0.bad_status_count(), 1);
    assert_eq!(sim.queued(RV, 0), [5], "nothing written, nothing popped");
    sim.force_msg_status(RV, 0, None);
    assert_eq!(e907.rx0.try_recv(), Ok(5));
    assert_eq!(
        ipc_traits::mailbox::Error::kind(&Error::ImpossibleCount(12)),
        ipc_traits::mailbox::ErrorKind::Protocol
    );
}

#[test]
fn bad_input_unknown_control_word_on_the_doorbell_channel() {
    let sim = MsgboxSim::new();
    let a7 = sim.msgbox(ARM).split();
    let e907 = sim.msgbox(RV).split();
    let mut raw = a7.tx0;
    raw.try_send(1).unwrap();
    raw.try_send(0xFFFF_FF01).unwrap(); // not a queue id under RawId
    raw.try_send(0).unwrap();
    let mut kicks = e907.rx0.into_notify_rx(8);
    assert_eq!(
        kicks.take_pending(),
        Err(NotifyRxError::NotANotification(0xFFFF_FF01))
    );
    assert_eq!(kicks.invalid_words(), 1);
    assert_eq!(kicks.take_pending().unwrap().bits(), 0b11, "nothing lost");
}

#[test]
fn notify_sends_the_raw_queue_id() {
    // Sheet §4: the vendor kick is the raw notify id.
    let sim = MsgboxSim::new();
    let a7 = sim.msgbox(ARM).split();
    let mut kick = a7.tx0.into_notify();
    kick.notify(QueueId::new(0).unwrap()).unwrap();
    kick.notify(QueueId::new(1).unwrap()).unwrap();
    kick.notify(QueueId::new(31).unwrap()).unwrap();
    assert_eq!(sim.queued(RV, msgbox_v853::RPMSG_CHANNEL), [0, 1, 31]);
}

#[test]
fn degrade_and_restore_keep_the_channel() {
    let sim = MsgboxSim::new();
    let a7 = sim.msgbox(ARM).split();
    let e907 = sim.msgbox(RV).split();
    let mut txs = [a7.tx0.degrade(), a7.tx1.degrade()];
    let mut rxs = [e907.rx0.degrade(), e907.rx1.degrade()];
    for (i, tx) in txs.iter_mut().enumerate() {
        tx.try_send(40 + i as u32).unwrap();
    }
    for (i, rx) in rxs.iter_mut().enumerate() {
        assert_eq!(rx.index(), i as u8);
        assert_eq!(rx.try_recv(), Ok(40 + i as u32));
    }
    let [tx0, tx1] = txs;
    let tx1 = tx1.try_restore::<0>().unwrap_err();
    assert_eq!(tx1.index(), 1);
    let tx0: Channel<_, 0, Tx> = tx0.try_restore::<0>().unwrap();
    assert_eq!(tx0.queued(), 0);
}

#[test]
fn split_join_does_not_touch_the_hardware() {
    let sim = MsgboxSim::new();
    let mut a7 = sim.msgbox(ARM).split();
    a7.tx0.try_send(1).unwrap();
    let mut e907 = sim.msgbox(RV).split();
    e907.rx0.listen(Event::DataAvailable).unwrap();
    let e907 = Msgbox::join(e907).split();
    assert!(e907.rx0.is_listening());
    assert_eq!(sim.queued(RV, 0), [1]);
    let (local, remote) = Msgbox::join(a7).release();
    assert_eq!((local.block(), remote.block()), (ARM, RV));
}

#[test]
fn handles_run_on_two_threads() {
    let sim = MsgboxSim::new();
    let a7 = sim.msgbox(ARM).split();
    let e907 = sim.msgbox(RV).split();
    std::thread::scope(|s| {
        let (mut tx, mut back_rx) = (a7.tx3, a7.rx3);
        let (mut rx, mut back_tx) = (e907.rx3, e907.tx3);
        s.spawn(move || {
            for _ in 0..1000 {
                let w = rx.blocking_recv(Spins::new(10_000_000)).unwrap();
                back_tx
                    .blocking_send(w + 1, Spins::new(10_000_000))
                    .unwrap();
            }
        });
        for i in 0..1000 {
            tx.blocking_send(i * 2, Spins::new(10_000_000)).unwrap();
            assert_eq!(back_rx.blocking_recv(Spins::new(10_000_000)), Ok(i * 2 + 1));
        }
    });
}

#[test]
fn mmio_constructor_addresses_the_right_blocks() {
    // Two RAM stand-ins for the blocks (no FIFO behaviour: plain memory).
    let mut local = [0u32; registers::BLOCK_SIZE / 4];
    let mut remote = [0u32; registers::BLOCK_SIZE / 4];
    let l = NonNull::from(&mut local).cast::<u32>();
    let r = NonNull::from(&mut remote).cast::<u32>();
    // SAFETY: both arrays are BLOCK_SIZE bytes, 4-aligned, outlive the
    // driver, and nothing else touches them while it exists.
    let mb = unsafe { Msgbox::new_unchecked(l, r) };
    let (lv, rv) = mb.release();
    {
        let mut parts = Msgbox::new(lv, rv).split();
        parts.tx1.try_send(0xCAFE).unwrap();
        parts.rx2.listen(Event::DataAvailable).unwrap();
        // Plain memory: MSG_STATUS(3) reads 8 → full, so nothing is written.
        rv.write(registers::msg_status(3), 8);
        assert_eq!(parts.tx3.try_send(1), Err(Error::WouldBlock));
    }
    assert_eq!(
        remote[registers::msg_fifo(1) / 4],
        0xCAFE,
        "written into the peer's block"
    );
    assert_eq!(remote[registers::msg_fifo(3) / 4], 0);
    assert_eq!(local[registers::READ_IRQ_ENABLE / 4], 1 << 4);
    assert_eq!(local[registers::msg_fifo(1) / 4], 0);
}
