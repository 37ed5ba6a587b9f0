//! Driver behaviour on the simulation: the MU-specific rules the shared
//! conformance suite does not cover (register encodings, GP interrupts, wake,
//! rpmsg convention, bad input).

// Test helpers outside `#[test]` functions (fixtures, the spy view) unwrap too.
#![allow(clippy::unwrap_used)]

use std::ptr::NonNull;
use std::sync::Mutex;
use std::thread;

use ipc_traits::mailbox::{
    Error as _, ErrorKind, Event, Listen, Notify, NotifyRx, NotifyRxError, QueueId, WordTx,
};
use ipc_traits::power::{Peer, WakeError, WakePeer};
use ipc_traits::regs::Regs32;
use mu_imx8::registers::{
    self, bits, gie, gip, gir, rf, rie, tie, CR_GIR_MASK, CR_OFFSET, SR_OFFSET,
};
use mu_imx8::sim::{Side, Sim, SimRegs};
use mu_imx8::{Anomaly, Error, Mu, MuParts, PowerMode, Spins};

fn pair() -> (Sim, MuParts<SimRegs>, MuParts<SimRegs>) {
    let sim = Sim::new();
    let a = Mu::new(sim.side(Side::A)).split();
    let b = Mu::new(sim.side(Side::B)).split();
    (sim, a, b)
}

fn q(i: u8) -> QueueId {
    QueueId::new(i).unwrap()
}

#[test]
fn try_send_checks_te_and_never_overwrites() {
    let (sim, mut a, mut b) = pair();
    assert!(a.tx3.can_send());
    a.tx3.try_send(1).unwrap();
    assert!(!a.tx3.can_send());
    assert_eq!(a.tx3.try_send(2), Err(Error::WouldBlock));
    assert_eq!(b.rx3.try_recv(), Ok(1));
    assert_eq!(sim.stats().overwrites, [0, 0]);
    assert_eq!(mu_imx8::TxChannel::<SimRegs, 3>::DEPTH, 1);
}

#[test]
fn try_recv_on_empty_does_not_touch_rr() {
    let (sim, _a, mut b) = pair();
    assert!(!b.rx0.can_recv());
    assert_eq!(b.rx0.try_recv(), Err(Error::WouldBlock));
    assert_eq!(
        sim.stats().stale_reads,
        [0, 0],
        "RR must not be read while RF = 0"
    );
}

#[test]
fn channels_are_independent_and_directions_symmetric() {
    let (_, mut a, mut b) = pair();
    a.tx0.try_send(10).unwrap();
    a.tx2.try_send(12).unwrap();
    b.tx0.try_send(20).unwrap();
    assert!(!b.rx1.can_recv());
    assert!(!b.rx3.can_recv());
    assert_eq!(b.rx2.try_recv(), Ok(12));
    assert_eq!(b.rx0.try_recv(), Ok(10));
    assert_eq!(a.rx0.try_recv(), Ok(20));
    assert!(a.tx1.can_send() && b.tx1.can_send());
}

#[test]
fn listen_sets_the_sheet_bits() {
    let (sim, mut a, mut b) = pair();
    // rpmsg-lite imx8mm_m4 enables RIE1 as (1 << 27) >> 1 (sheet §6).
    b.rx1.listen(Event::DataAvailable).unwrap();
    assert_eq!(sim.peek(Side::B, CR_OFFSET), (1 << 27) >> 1);
    assert!(b.rx1.is_listening());
    a.tx1.listen(Event::SpaceAvailable).unwrap();
    a.gp2.listen(Event::DataAvailable).unwrap();
    assert_eq!(sim.peek(Side::A, CR_OFFSET), bits(tie(1)) | bits(gie(2)));
    a.tx1.unlisten(Event::SpaceAvailable).unwrap();
    assert_eq!(sim.peek(Side::A, CR_OFFSET), bits(gie(2)));
    assert_eq!(
        a.gp2.listen(Event::SpaceAvailable),
        Err(Error::UnsupportedEvent(Event::SpaceAvailable))
    );
    assert_eq!(
        a.rx2.unlisten(Event::SpaceAvailable).map_err(|e| e.kind()),
        Err(ErrorKind::Unsupported)
    );
}

/// A register view that records every CR write (to check the GIR masking
/// rule of sheet §2.2) and can run a hook after the next SR read.
#[derive(Clone, Copy)]
struct Spy {
    inner: SimRegs,
    log: &'static Mutex<Vec<u32>>,
    after_sr_read: &'static Hook,
}

type Hook = Mutex<Option<Box<dyn FnOnce() + Send>>>;

impl Spy {
    /// A spy over `inner` using the given (per-test, static) log and hook.
    fn new(inner: SimRegs, log: &'static Mutex<Vec<u32>>, after_sr_read: &'static Hook) -> Self {
        Self {
            inner,
            log,
            after_sr_read,
        }
    }
}

// SAFETY: forwards every access unchanged to `SimRegs`, which upholds the
// contract; the hook runs after the forwarded read completed.
unsafe impl Regs32 for Spy {
    fn read(self, offset: usize) -> u32 {
        let v = self.inner.read(offset);
        if offset == SR_OFFSET {
            let hook = self.after_sr_read.lock().unwrap().take();
            if let Some(hook) = hook {
                hook();
            }
        }
        v
    }

    fn write(self, offset: usize, value: u32) {
        if offset == CR_OFFSET {
            self.log.lock().unwrap().push(value);
        }
        self.inner.write(offset, value);
    }
}

#[test]
fn cr_read_modify_write_never_writes_back_pending_gir() {
    static LOG: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    static HOOK: Hook = Mutex::new(None);
    let sim = Sim::new();
    let spy = Spy::new(sim.side(Side::A), &LOG, &HOOK);
    let mut a = Mu::new(spy).split();
    a.gp0.try_request().unwrap();
    a.gp3.try_request().unwrap();
    a.rx1.listen(Event::DataAvailable).unwrap();
    a.tx2.listen(Event::SpaceAvailable).unwrap();
    a.gp1.listen(Event::DataAvailable).unwrap();
    a.flags.set(0b011);
    a.tx2.unlisten(Event::SpaceAvailable).unwrap();
    let log = spy.log.lock().unwrap().clone();
    assert_eq!(log.len(), 7);
    assert_eq!(
        log[0] & CR_GIR_MASK,
        bits(gir(0)),
        "a request writes only its own GIR"
    );
    assert_eq!(
        log[1] & CR_GIR_MASK,
        bits(gir(3)),
        "and not the pending GIR0 again"
    );
    for (i, w) in log.iter().enumerate().skip(2) {
        assert_eq!(w & CR_GIR_MASK, 0, "write {i} ({w:#010x}) carries GIR bits");
    }
    // The requests are still pending, the enables and flags in place.
    assert_eq!(
        sim.peek(Side::A, CR_OFFSET),
        bits(gir(0)) | bits(gir(3)) | bits(rie(1)) | bits(gie(1)) | 0b011
    );
}

#[test]
fn gp_request_is_busy_until_the_peer_takes_it() {
    let (_, mut a, mut b) = pair();
    assert!(!b.gp1.is_pending());
    a.gp1.try_request().unwrap();
    assert!(a.gp1.is_request_pending());
    assert!(b.gp1.is_pending());
    assert!(!b.gp0.is_pending() && !b.gp2.is_pending());
    assert_eq!(
        a.gp1.try_request(),
        Err(Error::WouldBlock),
        "SDK: busy while GIR is set"
    );
    assert!(b.gp1.take());
    assert!(!b.gp1.take(), "taken once");
    assert!(
        !a.gp1.is_request_pending(),
        "hardware clears GIR after the peer's W1C"
    );
    a.gp1.try_request().unwrap();
    // B rings A on the same index: the directions are independent.
    b.gp1.try_request().unwrap();
    assert!(a.gp1.take());
    assert!(b.gp1.take());
}

#[test]
fn on_interrupt_acknowledges_exactly_what_it_reports() {
    static LOG: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    static HOOK: Hook = Mutex::new(None);
    let sim = Sim::new();
    let spy = Spy::new(sim.side(Side::B), &LOG, &HOOK);
    let mut a = Mu::new(sim.side(Side::A)).split();
    let mut b = Mu::new(spy).split();
    b.gp0.listen(Event::DataAvailable).unwrap();
    b.gp1.listen(Event::DataAvailable).unwrap();
    a.gp0.try_request().unwrap();
    // GP1 arrives after B's status read, before its acknowledgement.
    let a_regs = sim.side(Side::A);
    *spy.after_sr_read.lock().unwrap() = Some(Box::new(move || {
        a_regs.write(CR_OFFSET, bits(gir(1)));
    }));
    let first = b.irq.service();
    assert_eq!(first.events.other, 0b01, "only GP0 was pending at the read");
    assert_eq!(first.anomaly, None);
    assert!(
        sim.line(Side::B),
        "GP1 is still pending: the line stays high"
    );
    let second = b.irq.service();
    assert_eq!(
        second.events.other, 0b10,
        "GP1 reported by the next call, not lost"
    );
    assert!(!sim.line(Side::B));
    assert!(!a.gp0.is_request_pending() && !a.gp1.is_request_pending());
}

#[test]
fn unlistened_gip_is_neither_reported_nor_acknowledged() {
    let (sim, mut a, mut b) = pair();
    a.gp2.try_request().unwrap();
    let r = b.irq.service();
    assert_eq!(r.events.other, 0);
    assert_eq!(r.anomaly, Some(Anomaly::Spurious));
    assert!(b.gp2.is_pending(), "left for the polling owner");
    assert!(!sim.line(Side::B));
    assert!(b.gp2.take());
}

#[test]
fn events_use_channel_numbering() {
    let (_, mut a, mut b) = pair();
    b.rx3.listen(Event::DataAvailable).unwrap();
    b.rx0.listen(Event::DataAvailable).unwrap();
    b.tx2.listen(Event::SpaceAvailable).unwrap();
    a.tx3.try_send(3).unwrap();
    let e = b.irq.service().events;
    assert_eq!(
        e.data_available, 0b1000,
        "RF3 is register bit 24, channel 3"
    );
    assert_eq!(e.space_available, 0b0100, "TE2 is high at reset");
    assert!(e.has(3, Event::DataAvailable) && e.has(2, Event::SpaceAvailable));
    // Levels are not acknowledged: still there until serviced.
    assert_eq!(b.irq.service().events, e);
    assert_eq!(b.rx3.try_recv(), Ok(3));
    b.tx2.unlisten(Event::SpaceAvailable).unwrap();
    assert!(b.irq.service().events.is_empty());
}

#[test]
fn spurious_interrupt_is_a_counted_typed_anomaly() {
    let (_, _a, mut b) = pair();
    let r = b.irq.service();
    assert!(r.events.is_empty());
    assert_eq!(r.anomaly, Some(Anomaly::Spurious));
    let _ = b.irq.service();
    assert_eq!(b.irq.stats().spurious, 2);
    assert_eq!(b.irq.stats().reserved_status, 0);
}

#[test]
fn reserved_status_bits_are_reported_and_counted() {
    let (sim, mut a, mut b) = pair();
    b.rx1.listen(Event::DataAvailable).unwrap();
    a.tx1.try_send(0x10000).unwrap();
    sim.inject_status(Side::B, (1 << 12) | (1 << 3));
    let r = b.irq.service();
    assert_eq!(
        r.anomaly,
        Some(Anomaly::ReservedStatus((1 << 12) | (1 << 3)))
    );
    assert!(
        r.events.has(1, Event::DataAvailable),
        "real events are still reported"
    );
    assert_eq!(b.irq.stats().reserved_status, 1);
    assert_eq!(b.irq.stats().spurious, 0);
    assert_eq!(b.rx1.try_recv(), Ok(0x10000), "traffic unaffected");
    sim.clear_injected(Side::B);
    let _ = b.irq.service();
    assert_eq!(
        b.irq.stats(),
        mu_imx8::IrqStats {
            spurious: 1,
            reserved_status: 1
        }
    );
}

#[test]
fn injected_doorbell_nobody_requested_is_reported_and_acknowledged() {
    let (sim, mut a, mut b) = pair();
    b.gp3.listen(Event::DataAvailable).unwrap();
    sim.inject_status(Side::B, bits(gip(3)));
    let r = b.irq.service();
    assert_eq!(r.events.other, 0b1000);
    assert!(!a.gp3.is_request_pending());
    assert!(!sim.line(Side::B));
}

#[test]
fn uncertain_pm_wait_is_not_awake() {
    let (sim, mut a, _b) = pair();
    for (mode, awake) in [
        (PowerMode::Run, true),
        (PowerMode::Wait, false),
        (PowerMode::Stop, false),
    ] {
        sim.set_power_mode(Side::B, mode);
        assert_eq!(a.gp0.peer_power_mode(), Ok(mode));
        assert_eq!(a.gp0.peer_awake(), Ok(awake), "{mode:?}");
    }
    // Side B reads side A's mode.
    let mut b = Mu::new(sim.side(Side::B)).split();
    sim.set_power_mode(Side::A, PowerMode::Wait);
    assert_eq!(b.gp3.peer_power_mode(), Ok(PowerMode::Wait));
}

#[test]
fn reserved_power_mode_is_a_counted_protocol_error() {
    let (sim, a, _b) = pair();
    sim.inject_status(Side::A, 2 << 5);
    let mut gp = a.gp0;
    assert_eq!(gp.peer_power_mode(), Err(Error::ReservedPowerMode(2)));
    assert_eq!(
        gp.peer_awake().map_err(|e| e.kind()),
        Err(ErrorKind::Protocol)
    );
    assert_eq!(gp.reserved_power_modes(), 2);
    let (peer, err) = gp.into_peer().wake(Spins::new(5)).unwrap_err();
    assert_eq!(err, WakeError::Channel(Error::ReservedPowerMode(2)));
    assert_eq!(peer.into_inner().reserved_power_modes(), 3);
}

#[test]
fn wake_goes_through_gip_and_power_mode() {
    let (sim, a, mut b) = pair();
    sim.set_power_mode(Side::B, PowerMode::Stop);
    b.gp0.listen(Event::DataAvailable).unwrap();
    assert!(!sim.line(Side::B));
    let peer = Peer::new(a.gp0);
    let (peer, err) = peer.wake(Spins::new(3)).unwrap_err();
    assert_eq!(err, WakeError::Timeout);
    assert!(
        sim.line(Side::B),
        "the wake request raised the peer's MU interrupt"
    );
    // Retrying before the peer took the interrupt: the request is still
    // pending (CR.GIR0 = 1, which the SDK reports as busy); `wake` keeps
    // waiting on it and times out again, without a second request.
    let (peer, err) = peer.wake(Spins::new(3)).unwrap_err();
    assert_eq!(err, WakeError::Timeout);
    // The peer's firmware runs its ISR and goes back to Run.
    assert_eq!(b.irq.service().events.other, 0b1);
    sim.set_power_mode(Side::B, PowerMode::Run);
    let awake = peer.wake(Spins::new(3)).unwrap();
    let mut gp0 = awake.release().into_inner();
    assert!(
        gp0.is_request_pending(),
        "the second request waits for the peer's acknowledgement"
    );
}

#[test]
fn rpmsg_notify_is_vq_id_in_the_upper_half_on_channel_1() {
    let (sim, a, b) = pair();
    let mut kick = a.tx1.into_rpmsg_notify();
    let mut take = b.rx1.into_rpmsg_notify_rx();
    kick.notify(q(1)).unwrap();
    assert_eq!(
        sim.peek(Side::B, registers::rr_offset(1)),
        0x0001_0000,
        "rpmsg-lite: vq_id << 16"
    );
    assert_eq!(
        kick.notify(q(0)).map_err(|e| e.kind()),
        Err(ErrorKind::WouldBlock),
        "depth 1"
    );
    assert_eq!(take.take_pending().unwrap().bits(), 0b10);
    kick.notify(q(0)).unwrap();
    assert_eq!(take.take_pending().unwrap().bits(), 0b01);
    assert!(take.take_pending().unwrap().is_empty());
}

#[test]
fn word_that_is_not_a_notification_is_counted_protocol_error() {
    let (_, mut a, b) = pair();
    let mut take = b.rx1.into_rpmsg_notify_rx();
    a.tx1.try_send(0x0001_0001).unwrap();
    let err = take.take_pending().unwrap_err();
    assert_eq!(err, NotifyRxError::NotANotification(0x0001_0001));
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert_eq!(take.invalid_words(), 1);
    a.tx1.try_send(0x0020_0000).unwrap(); // vq 32: out of range
    assert!(take.take_pending().is_err());
    assert_eq!(take.invalid_words(), 2);
    a.tx1.try_send(0x0003_0000).unwrap();
    assert_eq!(
        take.take_pending().unwrap().bits(),
        0b1000,
        "valid traffic after bad words"
    );
}

#[test]
fn split_join_keeps_hardware_state() {
    let (sim, mut a, mut b) = pair();
    a.tx0.try_send(5).unwrap();
    b.rx0.listen(Event::DataAvailable).unwrap();
    a.gp3.try_request().unwrap();
    let cr_b = sim.peek(Side::B, CR_OFFSET);
    let mut b = Mu::join(b).split();
    assert_eq!(sim.peek(Side::B, CR_OFFSET), cr_b);
    let mut a = <Mu<SimRegs> as ipc_traits::mailbox::Mailbox>::join(a).split();
    assert!(a.gp3.is_request_pending());
    assert_eq!(b.rx0.try_recv(), Ok(5));
    assert!(b.gp3.take());
}

#[test]
fn disable_interrupts_clears_enables_only() {
    let sim = Sim::new();
    let mut b = Mu::new(sim.side(Side::B)).split();
    b.rx1.listen(Event::DataAvailable).unwrap();
    b.tx0.listen(Event::SpaceAvailable).unwrap();
    b.gp2.listen(Event::DataAvailable).unwrap();
    b.gp1.try_request().unwrap();
    b.flags.set(0b110);
    let mut mu = Mu::join(b);
    mu.disable_interrupts();
    assert_eq!(sim.peek(Side::B, CR_OFFSET), bits(gir(1)) | 0b110);
    assert!(!sim.line(Side::B));
    assert_eq!(
        sim.peek(Side::A, SR_OFFSET) & bits(gip(1)),
        bits(gip(1)),
        "request not cancelled"
    );
}

#[test]
fn flags_travel_to_the_peer() {
    let (_, mut a, mut b) = pair();
    a.flags.set(0b101);
    assert_eq!(b.flags.peer(), 0b101);
    assert_eq!(a.flags.ours(), 0b101);
    assert_eq!(a.flags.peer(), 0);
    a.flags.set(0xFF);
    assert_eq!(b.flags.peer(), 0b111, "three bits only");
    assert!(!b.flags.is_update_pending(), "the model transfers at once");
}

#[test]
fn mmio_constructor_reaches_the_documented_offsets() {
    // A RAM image of one side's block: TR0..3, RR0..3, SR, CR.
    let mut block = [0u32; 10];
    block[8] = registers::SR_RESET | bits(rf(2));
    block[6] = 0xFEED;
    let base = NonNull::from(&mut block).cast::<u32>();
    {
        // SAFETY: `block` is a live, 4-aligned array of BLOCK_LEN bytes that
        // nothing else touches while `mu` and its parts exist (this scope).
        let mu = unsafe { Mu::new_unchecked(base) };
        let mut p = mu.split();
        p.tx1.try_send(0x0001_0000).unwrap();
        assert_eq!(p.rx2.try_recv(), Ok(0xFEED));
        assert_eq!(p.rx3.try_recv(), Err(Error::WouldBlock));
        p.rx1.listen(Event::DataAvailable).unwrap();
        let _ = Mu::join(p).release();
    }
    assert_eq!(block[1], 0x0001_0000, "TR1 at 0x04");
    assert_eq!(block[9], bits(rie(1)), "CR at 0x24");
    assert_eq!(registers::BLOCK_LEN, std::mem::size_of_val(&block));
}

struct SplitMix(u64);
impl SplitMix {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

/// Both sides send on all four channels at once from two threads (seeded
/// pacing): per channel, every word arrives once and in order, and the
/// model never saw an overwrite or a stale read.
#[test]
fn all_channels_both_directions_concurrently() {
    const WORDS: u32 = 2_000;
    let sim = Sim::new();
    let run = |side: Side, seed: u64| {
        let p = Mu::new(sim.side(side)).split();
        thread::spawn(move || {
            let MuParts {
                mut tx0,
                mut tx1,
                mut tx2,
                mut tx3,
                mut rx0,
                mut rx1,
                mut rx2,
                mut rx3,
                ..
            } = p;
            let mut rng = SplitMix(seed);
            let mut sent = [0u32; 4];
            let mut got = [0u32; 4];
            let (tag, peer_tag) = match side {
                Side::A => (0xA000_0000, 0xB000_0000),
                Side::B => (0xB000_0000, 0xA000_0000),
            };
            let mut spins = 0u64;
            while got.iter().any(|&g| g < WORDS) || sent.iter().any(|&s| s < WORDS) {
                spins += 1;
                assert!(spins < 50_000_000, "stalled: sent {sent:?} got {got:?}");
                let ch = rng.below(4) as usize;
                if rng.below(2) == 0 {
                    if sent[ch] < WORDS {
                        let word = tag | (ch as u32) << 24 | sent[ch];
                        let r = match ch {
                            0 => tx0.try_send(word),
                            1 => tx1.try_send(word),
                            2 => tx2.try_send(word),
                            _ => tx3.try_send(word),
                        };
                        if r.is_ok() {
                            sent[ch] += 1;
                        }
                    }
                } else {
                    let r = match ch {
                        0 => rx0.try_recv(),
                        1 => rx1.try_recv(),
                        2 => rx2.try_recv(),
                        _ => rx3.try_recv(),
                    };
                    if let Ok(word) = r {
                        assert_eq!(word, peer_tag | (ch as u32) << 24 | got[ch], "channel {ch}");
                        got[ch] += 1;
                    }
                }
                if rng.below(16) == 0 {
                    thread::yield_now();
                }
            }
        })
    };
    let ta = run(Side::A, 1);
    let tb = run(Side::B, 2);
    ta.join().unwrap();
    tb.join().unwrap();
    let s = sim.stats();
    assert_eq!((s.overwrites, s.stale_reads), ([0, 0], [0, 0]));
}

#[test]
fn word_tx_is_implemented_for_transmit_channels() {
    fn send_via_trait<T: WordTx>(t: &mut T, w: u32) -> Result<(), T::Error> {
        t.try_send(w)
    }
    let (_, mut a, mut b) = pair();
    send_via_trait(&mut a.tx0, 1).unwrap();
    assert_eq!(b.rx0.blocking_recv(Spins::new(0)), Ok(1));
    assert_eq!(b.rx0.blocking_recv(Spins::new(10)), Err(Error::WouldBlock));
    b.tx0.blocking_send(2, Spins::new(0)).unwrap();
    assert_eq!(
        b.tx0.blocking_send(3, Spins::new(10)),
        Err(Error::WouldBlock)
    );
}
