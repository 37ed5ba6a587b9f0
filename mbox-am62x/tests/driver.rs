//! Driver behaviour against the simulated cluster and the simulated Linux
//! peer (backend-specific rules; the shared mailbox suite runs in
//! `conformance/tests/mailbox_mbox_am62x.rs`).

use core::ptr::NonNull;

use ipc_traits::mailbox::{Error as _, ErrorKind, NotifyRxError};
use mbox_am62x::registers::{
    irqenable_clr_offset, irqstatus_clr_offset, message_offset, newmsg, notfull, CLUSTER_LEN,
};
use mbox_am62x::sim::{Cluster, LinuxPeer, LinuxRx};
use mbox_am62x::{
    ControlEvent, Error, Event, Events, InterruptSource, KickRx, Listen, Mbox, Notify, NotifyRx,
    QueueId, RpMbox, Spins, User, WordRx, WordTx,
};

fn q(i: u8) -> QueueId {
    QueueId::new(i).unwrap_or_else(|| panic!("queue {i}"))
}

#[test]
fn try_send_never_writes_a_full_queue() {
    let c = Cluster::new();
    let mut tx = Mbox::new(c.regs(), User::M4F).split().q0.into_tx();
    for i in 0..4 {
        tx.try_send(i).unwrap();
    }
    assert!(tx.is_full());
    assert_eq!(tx.try_send(99), Err(Error::Full));
    assert_eq!(tx.blocking_send(98, Spins::new(20)), Err(Error::Full));
    assert_eq!(
        c.counters().discarded_writes,
        0,
        "the driver wrote a full FIFO"
    );
    assert_eq!(c.queue(0), [0, 1, 2, 3]);
    assert_eq!(tx.queued(), 4);
}

#[test]
fn try_recv_never_reads_an_empty_message_register() {
    let c = Cluster::new();
    let mut rx = Mbox::new(c.regs(), User::M4F).split().q1.into_rx();
    for _ in 0..10 {
        assert_eq!(rx.try_recv(), Err(Error::Empty));
    }
    assert_eq!(rx.blocking_recv(Spins::new(5)), Err(Error::Empty));
    c.push(1, 0);
    assert_eq!(
        rx.try_recv(),
        Ok(0),
        "word 0 is a valid word (vring 0's kick)"
    );
    assert_eq!(
        c.counters().empty_reads,
        0,
        "a pop on an empty queue reads 0"
    );
}

#[test]
fn split_clears_stale_enables_of_its_own_user_only() {
    let c = Cluster::new();
    c.force_enable(User::M4F, u32::MAX);
    c.force_enable(User::A53, newmsg(0));
    c.push(1, 5);
    assert!(c.line(User::M4F));
    let _parts = Mbox::new(c.regs(), User::M4F).split();
    assert_eq!(c.enabled(User::M4F), 0);
    assert!(!c.line(User::M4F));
    assert_eq!(
        c.enabled(User::A53),
        newmsg(0),
        "another user's enables untouched"
    );
    assert_eq!(c.queue(1), [5], "queued words untouched");
}

#[test]
fn transitions_and_listen_touch_only_their_own_bits() {
    let c = Cluster::new();
    let p = Mbox::new(c.regs(), User::M4F).split();
    let mut rx = p.q1.into_rx();
    rx.listen(Event::DataAvailable).unwrap();
    let mut tx = p.q0.into_tx();
    tx.listen(Event::SpaceAvailable).unwrap();
    assert_eq!(c.enabled(User::M4F), newmsg(1) | notfull(0));
    let _q5 = p.q5.into_tx();
    let _q6 = p.q6.into_rx().into_unconfigured();
    assert_eq!(c.enabled(User::M4F), newmsg(1) | notfull(0));
    tx.unlisten(Event::SpaceAvailable).unwrap();
    assert_eq!(c.enabled(User::M4F), newmsg(1));
    let _q0 = tx.into_unconfigured();
    let rx = rx.into_unconfigured();
    assert_eq!(c.enabled(User::M4F), 0);
    // Unconfigured queues cannot listen at all.
    let mut rx = rx;
    assert_eq!(
        rx.listen(Event::DataAvailable),
        Err(Error::EventNotAvailable(Event::DataAvailable))
    );
    assert_eq!(
        rx.listen(Event::DataAvailable).unwrap_err().kind(),
        ErrorKind::Unsupported
    );
}

#[test]
fn listen_drops_a_stale_notfull_latched_before_the_queue_filled() {
    let c = Cluster::new();
    let mut tx = Mbox::new(c.regs(), User::M4F).split().q0.into_tx();
    for i in 0..4 {
        tx.try_send(i).unwrap();
    }
    // NOTFULL(0) was latched while the queue had room (sticky, see sim).
    assert_ne!(c.status(User::M4F) & notfull(0), 0);
    tx.listen(Event::SpaceAvailable).unwrap();
    assert!(!c.line(User::M4F), "a full queue must not signal space");
}

#[test]
fn spurious_interrupt_is_counted_and_reports_nothing() {
    let c = Cluster::new();
    let mut irq = Mbox::new(c.regs(), User::M4F).split().irq;
    assert_eq!(irq.on_interrupt(), Events::NONE);
    assert_eq!(irq.on_interrupt(), Events::NONE);
    let k = irq.counters();
    assert_eq!((k.calls, k.spurious, k.unowned), (2, 2, 0));
}

#[test]
fn injected_status_without_enable_raises_nothing() {
    let c = Cluster::new();
    let mut irq = Mbox::new(c.regs(), User::M4F).split().irq;
    c.inject_status(User::M4F, newmsg(9) | notfull(4));
    assert!(!c.line(User::M4F));
    assert_eq!(irq.on_interrupt(), Events::NONE);
    assert_eq!(irq.counters().spurious, 1);
}

#[test]
fn event_for_a_queue_nobody_owns_is_disabled_counted_and_not_reported() {
    let c = Cluster::new();
    let p = Mbox::new(c.regs(), User::M4F).split();
    let mut irq = p.irq;
    let mut rx = p.q1.into_rx();
    rx.listen(Event::DataAvailable).unwrap();
    irq.set_owned(Events {
        data_available: 1 << 1,
        space_available: 0,
        other: 0,
    });
    // Another agent enables NEWMSG(9) for user 2 and a word lands there.
    c.force_enable(User::M4F, newmsg(9));
    c.push(9, 0xABCD);
    c.push(1, 1);
    assert!(c.line(User::M4F));
    let ev = irq.on_interrupt();
    assert_eq!(
        ev.data_available,
        1 << 1,
        "only the owned queue is reported"
    );
    assert_eq!(irq.counters().unowned, 1);
    assert_eq!(
        c.enabled(User::M4F),
        newmsg(1),
        "foreign enable switched off"
    );
    assert_eq!(c.queue(9), [0xABCD], "the foreign word is not consumed");
    assert_eq!(rx.try_recv(), Ok(1));
    let _ = irq.on_interrupt();
    assert!(!c.line(User::M4F));
}

#[test]
fn irq_maps_newmsg_and_notfull_to_queue_bits() {
    let c = Cluster::new();
    let p = Mbox::new(c.regs(), User::M4F).split();
    let mut irq = p.irq;
    let mut rx = p.q7.into_rx();
    let mut tx = p.q12.into_tx();
    rx.listen(Event::DataAvailable).unwrap();
    tx.listen(Event::SpaceAvailable).unwrap();
    c.push(7, 1);
    let ev = irq.on_interrupt();
    assert_eq!(ev.data_available, 1 << 7);
    assert_eq!(ev.space_available, 1 << 12);
    assert!(ev.has(7, Event::DataAvailable) && ev.has(12, Event::SpaceAvailable));
    // Acknowledged exactly: W1C of the bits read, nothing else.
    assert_eq!(
        c.status(User::M4F) & c.enabled(User::M4F),
        newmsg(7) | notfull(12),
        "level events re-assert"
    );
    tx.unlisten(Event::SpaceAvailable).unwrap();
    assert_eq!(rx.try_recv(), Ok(1));
    assert!(!c.line(User::M4F));
}

#[test]
fn last_pop_acknowledges_newmsg_and_a_later_word_raises_it_again() {
    let c = Cluster::new();
    let mut rx = Mbox::new(c.regs(), User::M4F).split().q1.into_rx();
    rx.listen(Event::DataAvailable).unwrap();
    c.push(1, 10);
    c.push(1, 11);
    assert_eq!(rx.try_recv(), Ok(10));
    assert!(c.line(User::M4F), "one word left");
    assert_eq!(rx.try_recv(), Ok(11));
    assert!(
        !c.line(User::M4F),
        "the pop of the last word acknowledges NEWMSG"
    );
    c.push(1, 12);
    assert!(c.line(User::M4F));
}

#[test]
fn linux_tx_done_comes_from_the_notfull_interrupt() {
    let c = Cluster::new();
    let mut linux = LinuxPeer::new(c.regs());
    let mut rx = Mbox::new(c.regs(), User::M4F).split().q1.into_rx();
    linux.kick(1);
    assert!(linux.awaiting_tx_done());
    // Linux enabled NOTFULL(1) after the send; the queue has room.
    assert_ne!(c.enabled(User::A53) & notfull(1), 0);
    assert!(c.line(User::A53), "NOTFULL must fire at once after a send");
    assert!(linux.on_interrupt());
    assert_eq!(linux.tx_done(), 1);
    assert!(!linux.awaiting_tx_done());
    assert_eq!(c.enabled(User::A53) & notfull(1), 0, "ISR disables NOTFULL");
    assert!(!c.line(User::A53));
    assert_eq!(rx.try_recv(), Ok(1));
}

#[test]
fn linux_send_to_a_full_queue_resumes_on_notfull() {
    let c = Cluster::new();
    let mut linux = LinuxPeer::new(c.regs());
    let kicks = KickRx::new(Mbox::new(c.regs(), User::M4F).split().q1.into_rx(), 16);
    for id in [0, 1, 0, 1, 0] {
        linux.kick(id);
        linux.service();
    }
    assert_eq!(c.queue(1), [0, 1, 0, 1]);
    assert_eq!(linux.busy(), 1, "the fifth word found the queue full");
    assert_eq!(linux.pending(), 1);
    assert!(!c.line(User::A53), "no room, no NOTFULL");
    // The M4F drains one word: NOTFULL asserts, Linux resubmits.
    let mut one = KickRx::new(kicks.release().0, 1);
    assert_eq!(one.take_pending().unwrap().bits(), 0b01);
    assert!(c.line(User::A53));
    linux.service();
    assert_eq!(linux.pending(), 0);
    assert_eq!(c.queue(1), [1, 0, 1, 0]);
    assert_eq!(linux.tx_done(), 5);
    assert_eq!(c.counters().discarded_writes, 0);
}

#[test]
fn echo_request_and_suspend_requests_are_control_events_not_kicks() {
    let c = Cluster::new();
    let mut linux = LinuxPeer::new(c.regs());
    let p = Mbox::new(c.regs(), User::M4F).split();
    let mut to_linux = p.q0.into_tx();
    let mut kicks = KickRx::new(p.q1.into_rx(), 8);
    linux.startup();
    linux.service();
    linux.send_control(RpMbox::SuspendSystem);
    linux.service();
    linux.kick(0);
    linux.service();
    let set = kicks.take_pending().unwrap();
    assert_eq!(
        set.iter().collect::<Vec<_>>(),
        [q(0)],
        "control words are not kicks"
    );
    assert_eq!(
        kicks.take_control(),
        Some(ControlEvent::Known(RpMbox::EchoRequest))
    );
    let suspend = kicks.take_control();
    assert_eq!(suspend, Some(ControlEvent::Known(RpMbox::SuspendSystem)));
    assert!(matches!(suspend, Some(ControlEvent::Known(m)) if m.is_suspend_request()));
    assert_eq!(kicks.take_control(), None);
    let k = kicks.counters();
    assert_eq!(
        (k.kicks, k.control, k.unknown_control, k.not_a_kick),
        (1, 2, 0, 0)
    );
    // The firmware answers; Linux logs the echo reply and ignores the ack
    // (sheet §4.1 receive rules).
    to_linux.try_send_control(RpMbox::EchoReply).unwrap();
    to_linux.try_send_control(RpMbox::SuspendAck).unwrap();
    to_linux.notify(q(0)).unwrap();
    to_linux.notify(q(7)).unwrap();
    linux.service();
    assert_eq!(
        linux.received(),
        [
            LinuxRx::Logged(RpMbox::EchoReply),
            LinuxRx::Ignored(RpMbox::SuspendAck.word()),
            LinuxRx::Vring(0),
            LinuxRx::Dropped(7),
        ]
    );
}

#[test]
fn unknown_control_and_foreign_words_are_counted() {
    let c = Cluster::new();
    let mut linux = LinuxPeer::new(c.regs());
    let mut kicks = KickRx::new(Mbox::new(c.regs(), User::M4F).split().q1.into_rx(), 8);
    for w in [1, 0xFFFF_FF42, 0x0001_0000, 0] {
        linux.send_word(w);
        linux.service();
    }
    assert_eq!(
        kicks.take_pending(),
        Err(NotifyRxError::NotANotification(0x0001_0000))
    );
    assert_eq!(
        kicks.take_pending().unwrap().bits(),
        0b11,
        "kicks around the bad word survive"
    );
    assert_eq!(
        kicks.take_control(),
        Some(ControlEvent::Unknown(0xFFFF_FF42))
    );
    let k = kicks.counters();
    assert_eq!(
        (k.kicks, k.control, k.unknown_control, k.not_a_kick),
        (2, 1, 1, 1)
    );
    assert_eq!(
        NotifyRxError::<Error>::NotANotification(0).kind(),
        ErrorKind::Protocol
    );
}

#[test]
fn linux_refuses_system_suspend_while_a_queue_holds_a_word() {
    let c = Cluster::new();
    let linux = LinuxPeer::new(c.regs());
    assert!(linux.system_suspend_allowed());
    let mut tx = Mbox::new(c.regs(), User::M4F).split().q0.into_tx();
    tx.try_send(0).unwrap();
    assert!(!linux.system_suspend_allowed());
}

#[test]
fn degrade_keeps_the_queue_and_restores_only_its_own_index() {
    let c = Cluster::new();
    let p = Mbox::new(c.regs(), User::M4F).split();
    let mut any = p.q3.into_tx().degrade();
    assert_eq!(any.index(), 3);
    any.notify(q(1)).unwrap();
    assert_eq!(c.queue(3), [1]);
    let any = any.try_into_queue::<4>().unwrap_err();
    let mut typed = any.try_into_queue::<3>().unwrap();
    typed.try_send(2).unwrap();
    assert_eq!(c.queue(3), [1, 2]);
}

#[test]
fn join_gives_back_the_driver_and_queued_words_survive() {
    let c = Cluster::new();
    let mut p = Mbox::new(c.regs(), User::M4F).split();
    let mut tx = p.q0.into_tx();
    tx.try_send(42).unwrap();
    p.q0 = tx.into_unconfigured();
    let mbox = Mbox::join(p);
    assert_eq!(mbox.user(), User::M4F);
    let linux = Mbox::new(c.regs(), User::A53).split();
    assert_eq!(linux.q0.into_rx().try_recv(), Ok(42));
    assert_eq!(mbox.revision().get(), mbox_am62x::sim::SIM_REVISION);
}

#[test]
fn errors_display_and_map_to_kinds() {
    assert_eq!(Error::Full.kind(), ErrorKind::WouldBlock);
    assert_eq!(Error::Empty.kind(), ErrorKind::WouldBlock);
    assert!(Error::Full.to_string().contains("full"));
    assert!(Error::EventNotAvailable(Event::SpaceAvailable)
        .to_string()
        .contains("SpaceAvailable"));
    assert_eq!(User::from_index(4), None);
    assert_eq!(User::M4F.to_string(), "user 2");
}

/// The one `unsafe` constructor puts the registers where the sheet says:
/// run the driver over plain memory standing in for the cluster.
#[test]
fn new_unchecked_addresses_the_sheet_offsets() {
    let mut regs = [0u32; CLUSTER_LEN / 4];
    let base = NonNull::from(&mut regs).cast::<u32>();
    // SAFETY: `regs` is CLUSTER_LEN bytes, 4-aligned, outlives the driver
    // (dropped at the end of the block below), and nothing else touches it
    // while the driver is alive.
    let mbox = unsafe { Mbox::new_unchecked(base, User::M4F) };
    {
        let p = mbox.split();
        let mut tx = p.q1.into_tx();
        tx.try_send(0x5A5A).unwrap();
    }
    let word = |off: usize| regs[off / 4];
    // `split` wrote all-ones to both aliases, then `into_tx` named queue 1 only.
    assert_eq!(word(irqenable_clr_offset(2)), newmsg(1) | notfull(1));
    assert_eq!(word(irqstatus_clr_offset(2)), newmsg(1) | notfull(1));
    assert_eq!(word(message_offset(1)), 0x5A5A);
}

/// Linux's register-level flow (send, NOTFULL tx-done, resubmit on busy) and
/// the driver's receive path on two threads: every word arrives once, in
/// order, and nothing is written to a full queue.
#[test]
fn linux_model_and_driver_on_two_threads() {
    const WORDS: u32 = 20_000;
    let c = Cluster::new_static();
    let mut rx = Mbox::new(c.regs(), User::M4F).split().q1.into_rx();
    let linux = std::thread::spawn(move || {
        let mut linux = LinuxPeer::new(c.regs());
        for i in 0..WORDS {
            linux.send_word(i % 32);
            let mut spins = 0u32;
            while linux.pending() > 0 || linux.awaiting_tx_done() {
                linux.service();
                std::thread::yield_now();
                spins += 1;
                assert!(spins < 10_000_000, "tx-done never came for word {i}");
            }
        }
        (linux.tx_done(), linux.busy())
    });
    for i in 0..WORDS {
        let got = rx.blocking_recv(Spins::new(50_000_000));
        assert_eq!(got, Ok(i % 32), "word {i}");
    }
    let (tx_done, _busy) = linux
        .join()
        .unwrap_or_else(|_| panic!("linux thread failed"));
    assert_eq!(tx_done, WORDS);
    assert_eq!(rx.try_recv(), Err(Error::Empty));
    assert_eq!(c.counters().discarded_writes, 0);
}
