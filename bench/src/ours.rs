//! The stack under test: a master link on core 0 and a remote link on core
//! 1 over one [`Window`] ([`rpmsg::link`]: the master's transmit half
//! sends, the remote's receive half receives), 16 buffers of 512 bytes per
//! direction, doorbells by polled counters ([`crate::doorbell`]).
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread;
use std::time::Instant;

use ipc_traits::cache::Coherent;
use ipc_traits::mailbox::{Notify, NotifyRx};
use ipc_traits::shm::{DirectMemory, RawRegion};
use rpmsg::link::{Endpoint, Link, Rx, Sent, Storage, Tx};
use rpmsg::rings::{Halves, MasterConfig, MasterRings, QueueIds, RemoteConfig, RemoteRings};
use rpmsg::wire::{ADDR_ANY, HEADER_LEN};
use vring::{BufferArea, Layout, Legacy, Suppression};

use crate::affinity::{place, Cores};
use crate::common::{or_abort, stamp, stamp_view, Failure, Meter, Patience, SeqCheck, Timing};
use crate::doorbell::{Bell, BellRx, Doorbells};
use crate::floor::join;
use crate::window::Window;

/// Ring tables, leaked: they live as long as the process.
fn remote_tables<const N: usize>() -> &'static rpmsg::rings::RemoteTables<N> {
    Box::leak(Box::default())
}

/// Entries per ring (buffers per direction).
pub const NUM: usize = 16;
/// Bytes per buffer.
pub const BUF: usize = 512;
/// Largest payload (512 − 16-byte header).
pub const MAX_PAYLOAD: usize = BUF - HEADER_LEN;
/// Ring alignment (the used ring starts on its own line).
const ALIGN: usize = 64;
/// Local endpoints per link.
const EPS: usize = 4;

const fn up(v: usize) -> usize {
    (v + ALIGN - 1) & !(ALIGN - 1)
}

const VRING0: Layout = Layout::legacy_at(0, NUM as u16, ALIGN);
const VRING1: Layout = Layout::legacy_at(up(VRING0.end()), NUM as u16, ALIGN);
const POOL: usize = up(VRING1.end());
/// Window bytes: both rings and `2 × NUM` buffers.
pub const WINDOW: usize = POOL + 2 * NUM * BUF;

fn master_config(suppression: Suppression) -> MasterConfig {
    MasterConfig {
        vring0: VRING0,
        vring1: VRING1,
        pool: POOL,
        buf_size: BUF,
        suppression,
        queues: QueueIds::DEFAULT,
        rpmsg_lite_compat: false,
    }
}

fn remote_config(suppression: Suppression) -> RemoteConfig {
    RemoteConfig {
        vring0: VRING0,
        vring1: VRING1,
        vring0_buffers: BufferArea::new(POOL, NUM * BUF),
        vring1_buffers: BufferArea::new(POOL + NUM * BUF, NUM * BUF),
        suppression,
        queues: QueueIds::DEFAULT,
    }
}

type Mem = RawRegion<Coherent>;
/// The master's rings.
type MRings<'m> = MasterRings<'m, Mem, Legacy, NUM>;
/// The remote's rings.
type RRings<'m> = RemoteRings<'m, Mem, Legacy, NUM>;
/// The master's link.
pub type MasterLink<'m, 'd> = Link<'m, MRings<'m>, Bell<'d>>;
/// The remote's link.
pub type RemoteLink<'m, 'd> = Link<'m, RRings<'m>, Bell<'d>>;

fn link_err(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::new(format!("{what}: {e}"))
}

/// Initialises the rings and the master's link over `win` (posting the
/// receive buffers), its endpoints in `store`.
///
/// # Errors
///
/// A ring or endpoint error.
pub fn open_master<'m, 'd>(
    win: &'m Window,
    bells: &'d Doorbells,
    suppression: Suppression,
    store: &'m mut Storage<EPS>,
) -> Result<(MasterLink<'m, 'd>, Endpoint), Failure> {
    // SAFETY: the pool (after both rings) is owned by this link alone: the
    // window is fresh and nothing else builds buffers over it.
    let rings =
        unsafe { MasterRings::<_, Legacy, NUM>::new(win.region(), master_config(suppression)) }
            .map_err(|e| link_err("master rings", e))?;
    let mut link = Link::new(rings, Bell::new(&bells.to_remote), store);
    let ep = link
        .bind(ADDR_ANY)
        .map_err(|e| link_err("master endpoint", e))?;
    Ok((link, ep))
}

/// Attaches the remote's link to the rings the master initialised, its
/// endpoints in `store`.
///
/// # Errors
///
/// A ring or endpoint error.
pub fn open_remote<'m, 'd>(
    win: &'m Window,
    bells: &'d Doorbells,
    suppression: Suppression,
    store: &'m mut Storage<EPS>,
) -> Result<(RemoteLink<'m, 'd>, Endpoint), Failure> {
    // SAFETY: the two buffer areas are the halves of the master's pool,
    // disjoint; this side builds no other buffer over them.
    let rings = unsafe {
        RemoteRings::<_, Legacy, NUM>::new(
            win.region(),
            remote_config(suppression),
            remote_tables(),
        )
    }
    .map_err(|e| link_err("remote rings", e))?;
    let mut link = Link::new(rings, Bell::new(&bells.to_master), store);
    let ep = link
        .bind(ADDR_ANY)
        .map_err(|e| link_err("remote endpoint", e))?;
    Ok((link, ep))
}

/// Which API moves the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `try_send` (copy in) and `try_recv` (copy out).
    Copy,
    /// `try_alloc` + `payload_mut` (the sequence number and check byte
    /// written in place) and `try_recv_held` + `payload` (checked in place).
    ZeroCopy,
}

/// Takes what the doorbell brought, as a mailbox interrupt would (the
/// virtio rings need no more: the halves read the rings themselves).
#[inline]
fn ack(bell: &mut BellRx<'_>) {
    let Ok(_) = bell.take_pending();
}

/// Sends message `seq` from `ep` to `dst` (`msg` holds the payload for
/// [`Api::Copy`]); `Ok(false)` when no transmit buffer is free.
// Always inlined: the measured loop of `single` stays one function, so
// the profile attributes its instructions as it did (callgrind.sh).
#[inline(always)]
fn send<'m, R: Halves<'m>, N: Notify>(
    tx: &mut Tx<'_, 'm, R, N>,
    ep: &Endpoint,
    dst: u32,
    api: Api,
    msg: &mut [u8],
    seq: u32,
) -> Result<bool, Failure>
where
    R::Mem: DirectMemory,
{
    let sent = match api {
        Api::Copy => {
            stamp(msg, seq);
            tx.try_send(ep, dst, msg).map_err(|e| link_err("send", e))?
        }
        Api::ZeroCopy => match tx.try_alloc().map_err(|e| link_err("alloc", e))? {
            Some(mut b) => {
                let mut p = b
                    .payload_mut(msg.len())
                    .map_err(|e| link_err("payload_mut", e))?;
                stamp_view(&mut p, seq);
                b.send(ep, dst).map_err(|e| link_err("send", e))?;
                Sent::Sent
            }
            None => Sent::NoBuffer,
        },
    };
    Ok(sent == Sent::Sent)
}

/// Receives and checks one message from `src` to `dst`; `Ok(false)` when
/// none is waiting.
// Always inlined: the measured loop of `single` stays one function, so
// the profile attributes its instructions as it did (callgrind.sh).
#[inline(always)]
fn recv<'m, R: Halves<'m>, N: Notify>(
    rx: &mut Rx<'_, 'm, R, N>,
    (src, dst): (u32, u32),
    api: Api,
    out: &mut [u8; MAX_PAYLOAD],
    check: &mut SeqCheck,
) -> Result<bool, Failure>
where
    R::Mem: DirectMemory,
{
    let wrong = |s: u32, d: u32| Failure::new(format!("message from {s} to {d}"));
    match api {
        Api::Copy => match rx.try_recv(out).map_err(|e| link_err("receive", e))? {
            Some(r) if r.src != src || r.dst != dst => Err(wrong(r.src, r.dst)),
            Some(r) => {
                check.check(&out[..r.len])?;
                Ok(true)
            }
            None => Ok(false),
        },
        Api::ZeroCopy => match rx.try_recv_held().map_err(|e| link_err("receive", e))? {
            Some(h) if h.src() != src || h.dst() != dst => Err(wrong(h.src(), h.dst())),
            Some(h) => {
                let p = h.payload().map_err(|e| link_err("payload", e))?;
                check.check_view(&p)?;
                Ok(true)
            }
            None => Ok(false),
        },
    }
}

/// What the threads exchange while they set up.
#[derive(Debug, Default)]
struct Handshake {
    /// The master's endpoint address, once its rings are initialised.
    master: AtomicU32,
    /// The remote's endpoint address, once it attached.
    remote: AtomicU32,
}

impl Handshake {
    fn wait(cell: &AtomicU32, wait: &mut Patience<'_>, what: &str) -> Result<u32, Failure> {
        loop {
            match cell.load(Ordering::Acquire) {
                0 => wait.spin(what)?,
                a => return Ok(a),
            }
        }
    }
}

/// A throughput result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// Messages per second.
    pub rate: f64,
    /// Doorbells the master rang per message.
    pub kicks_per_msg: f64,
}

/// One-way throughput master → remote of `len`-byte messages over
/// `window`, timed on the remote.
///
/// # Errors
///
/// A sequence error, a stack error, a pinning failure, or a timeout.
pub fn oneway(
    len: usize,
    api: Api,
    window: Timing,
    suppression: Suppression,
    cores: Cores,
) -> Result<Throughput, Failure> {
    if !(5..=MAX_PAYLOAD).contains(&len) {
        return Err(Failure::new(format!(
            "payload {len} outside 5..={MAX_PAYLOAD}"
        )));
    }
    let win = Window::new(WINDOW)?;
    let bells = Doorbells::default();
    let hs = Handshake::default();
    let abort = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let (win, bells, hs, abort, stop) = (&win, &bells, &hs, &abort, &stop);
    thread::scope(|s| {
        let master = s.spawn(move || {
            or_abort(abort, || {
                place(cores, 0)?;
                let mut wait = Patience::new(abort);
                let mut store = Storage::new();
                let (mut link, ep) = open_master(win, bells, suppression, &mut store)?;
                hs.master.store(ep.addr(), Ordering::Release);
                let dst = Handshake::wait(&hs.remote, &mut wait, "remote attach")?;
                let mut bell = BellRx::new(&bells.to_master);
                let mut msg = [0xA5u8; MAX_PAYLOAD];
                let msg = &mut msg[..len];
                let mut seq = 0u32;
                let (mut tx, _) = link.split();
                'run: while !Meter::stop(stop) {
                    while !send(&mut tx, &ep, dst, api, msg, seq)? {
                        if Meter::stop(stop) {
                            break 'run;
                        }
                        ack(&mut bell);
                        wait.spin("master: no transmit buffer came back")?;
                    }
                    seq = seq.wrapping_add(1);
                }
                // Only the transmit half rang (the receive half is never
                // used here): every ring is one count of `to_remote`.
                let rung: u32 = bells
                    .to_remote
                    .0
                    .iter()
                    .map(|c| c.load(Ordering::Relaxed))
                    .fold(0, u32::wrapping_add);
                Ok(f64::from(rung) / f64::from(seq.max(1)))
            })
        });
        let remote = s.spawn(move || {
            or_abort(abort, || {
                place(cores, 1)?;
                let mut wait = Patience::new(abort);
                let src = Handshake::wait(&hs.master, &mut wait, "master init")?;
                let mut store = Storage::new();
                let (mut link, ep) = open_remote(win, bells, suppression, &mut store)?;
                hs.remote.store(ep.addr(), Ordering::Release);
                let mut bell = BellRx::new(&bells.to_remote);
                let mut out = [0u8; MAX_PAYLOAD];
                let mut check = SeqCheck::new(len);
                let mut meter = Meter::new(stop, window);
                let (_, mut rx) = link.split();
                loop {
                    ack(&mut bell);
                    if recv(&mut rx, (src, ep.addr()), api, &mut out, &mut check)? {
                        if meter.tick() {
                            break;
                        }
                    } else {
                        if meter.check_time() {
                            break;
                        }
                        wait.spin("remote: message never arrived")?;
                    }
                }
                clean_stats("remote", &link)?;
                meter.rate()
            })
        });
        let kicks_per_msg = join(master)?;
        let rate = join(remote)?;
        Ok(Throughput {
            rate,
            kicks_per_msg,
        })
    })
}

/// Round trips of a 16-byte message (copying API): the master sends, the
/// remote echoes, the master checks. Returns `samples` round-trip times in
/// nanoseconds (after `warm` untimed ones).
///
/// # Errors
///
/// As for [`oneway`].
pub fn round_trip(
    samples: u32,
    warm: u32,
    suppression: Suppression,
    cores: Cores,
) -> Result<Vec<f64>, Failure> {
    const LEN: usize = 16;
    let total = warm + samples;
    let win = Window::new(WINDOW)?;
    let bells = Doorbells::default();
    let hs = Handshake::default();
    let abort = AtomicBool::new(false);
    let (win, bells, hs, abort) = (&win, &bells, &hs, &abort);
    thread::scope(|s| {
        let master = s.spawn(move || {
            or_abort(abort, || {
                place(cores, 0)?;
                let mut wait = Patience::new(abort);
                let mut store = Storage::new();
                let (mut link, ep) = open_master(win, bells, suppression, &mut store)?;
                hs.master.store(ep.addr(), Ordering::Release);
                let peer = Handshake::wait(&hs.remote, &mut wait, "remote attach")?;
                let mut bell = BellRx::new(&bells.to_master);
                let mut msg = [0xA5u8; LEN];
                let mut out = [0u8; MAX_PAYLOAD];
                let mut check = SeqCheck::new(LEN);
                let mut times = Vec::with_capacity(samples as usize);
                let (mut tx, mut rx) = link.split();
                for seq in 0..total {
                    let t = Instant::now();
                    while !send(&mut tx, &ep, peer, Api::Copy, &mut msg, seq)? {
                        ack(&mut bell);
                        wait.spin("master: no transmit buffer")?;
                    }
                    loop {
                        ack(&mut bell);
                        if recv(&mut rx, (peer, ep.addr()), Api::Copy, &mut out, &mut check)? {
                            break;
                        }
                        wait.spin("master: echo never came")?;
                    }
                    let dt = t.elapsed();
                    if seq >= warm {
                        times.push(dt.as_nanos() as f64);
                    }
                }
                clean_stats("master", &link)?;
                Ok(times)
            })
        });
        let remote = s.spawn(move || {
            or_abort(abort, || {
                place(cores, 1)?;
                let mut wait = Patience::new(abort);
                let src = Handshake::wait(&hs.master, &mut wait, "master init")?;
                let mut store = Storage::new();
                let (mut link, ep) = open_remote(win, bells, suppression, &mut store)?;
                hs.remote.store(ep.addr(), Ordering::Release);
                let mut bell = BellRx::new(&bells.to_remote);
                let mut out = [0u8; MAX_PAYLOAD];
                let mut check = SeqCheck::new(LEN);
                let (mut tx, mut rx) = link.split();
                while check.next() < total {
                    ack(&mut bell);
                    if !recv(&mut rx, (src, ep.addr()), Api::Copy, &mut out, &mut check)? {
                        wait.spin("remote: ping never arrived")?;
                        continue;
                    }
                    while tx
                        .try_send(&ep, src, &out[..LEN])
                        .map_err(|e| link_err("remote echo", e))?
                        == Sent::NoBuffer
                    {
                        ack(&mut bell);
                        wait.spin("remote: no transmit buffer")?;
                    }
                }
                clean_stats("remote", &link)
            })
        });
        join(remote)?;
        join(master)
    })
}

/// Fails if the link counted any validation error (a clean exchange has
/// none).
fn clean_stats<'m, R: Halves<'m>, N: Notify>(
    who: &str,
    link: &Link<'m, R, N>,
) -> Result<(), Failure> {
    let s = link.rx_stats();
    let (t, r) = link.ring_stats();
    let bad = s.bad_header + s.unbound + s.return_failures;
    let ring = t.failures.total() + r.failures.total();
    if bad != 0 || ring != 0 || link.is_broken() {
        return Err(Failure::new(format!(
            "{who}: errors counted (link {bad}, rings {ring}, broken {})",
            link.is_broken()
        )));
    }
    Ok(())
}

/// Which way [`single`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// The master sends, the remote receives: the master's transmit ring
    /// (driver side reaps and publishes) and the remote's receive ring
    /// (device side pops and returns).
    Down,
    /// The remote sends, the master receives: the remote's transmit ring
    /// (device side takes an offered buffer and returns it filled) and the
    /// master's receive ring (driver side reaps and posts the buffer
    /// again).
    Up,
}

/// The single-threaded variant for instruction counting: one side's
/// transmit half sends one message (`way`: the master's, or the remote's),
/// the other side takes its doorbell and its receive half receives the
/// message; `count` times. Returns the messages checked.
///
/// # Errors
///
/// A payload outside `5..=MAX_PAYLOAD`, a sequence error or a stack error.
pub fn single(
    len: usize,
    api: Api,
    count: u32,
    suppression: Suppression,
    way: Way,
) -> Result<u32, Failure> {
    if !(5..=MAX_PAYLOAD).contains(&len) {
        return Err(Failure::new(format!(
            "payload {len} outside 5..={MAX_PAYLOAD}"
        )));
    }
    let win = Window::new(WINDOW)?;
    let bells = Doorbells::default();
    let (mut mstore, mut rstore) = (Storage::new(), Storage::new());
    let (mut master, mep) = open_master(&win, &bells, suppression, &mut mstore)?;
    let (mut remote, rep) = open_remote(&win, &bells, suppression, &mut rstore)?;
    let mut mbell = BellRx::new(&bells.to_master);
    let mut rbell = BellRx::new(&bells.to_remote);
    let n = {
        let (mut mtx, mut mrx) = master.split();
        let (mut rtx, mut rrx) = remote.split();
        match way {
            Way::Down => single_loop(
                (&mut mtx, &mep, &mut mbell),
                (&mut rrx, &rep, &mut rbell),
                len,
                api,
                count,
            )?,
            Way::Up => single_loop(
                (&mut rtx, &rep, &mut rbell),
                (&mut mrx, &mep, &mut mbell),
                len,
                api,
                count,
            )?,
        }
    };
    clean_stats("master", &master)?;
    clean_stats("remote", &remote)?;
    Ok(n)
}

/// The measured loop of [`single`]: `s` sends, `r` receives (kept out of
/// line so a profile shows it as one function).
#[inline(never)]
fn single_loop<'l, 'm, 'd, S: Halves<'m>, R: Halves<'m>>(
    s: (&mut Tx<'l, 'm, S, Bell<'d>>, &Endpoint, &mut BellRx<'_>),
    r: (&mut Rx<'l, 'm, R, Bell<'d>>, &Endpoint, &mut BellRx<'_>),
    len: usize,
    api: Api,
    count: u32,
) -> Result<u32, Failure>
where
    S::Mem: DirectMemory,
    R::Mem: DirectMemory,
{
    let (tx, sep, sbell) = s;
    let (rx, rep, rbell) = r;
    let mut msg = [0xA5u8; MAX_PAYLOAD];
    let msg = &mut msg[..len];
    let mut out = [0u8; MAX_PAYLOAD];
    let mut check = SeqCheck::new(len);
    let (dst, src) = (rep.addr(), sep.addr());
    for seq in 0..count {
        ack(sbell);
        if !send(tx, sep, dst, api, msg, seq)? {
            return Err(Failure::new(format!("message {seq}: no transmit buffer")));
        }
        ack(rbell);
        if !recv(rx, (src, dst), api, &mut out, &mut check)? {
            return Err(Failure::new(format!("message {seq}: not received")));
        }
    }
    Ok(check.next())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_thread_moves_every_size_and_api_in_order() {
        for supp in [Suppression::Flags, Suppression::EventIdx] {
            for api in [Api::Copy, Api::ZeroCopy] {
                for len in [16, 64, MAX_PAYLOAD] {
                    for way in [Way::Down, Way::Up] {
                        let n = single(len, api, 2000, supp, way).unwrap();
                        assert_eq!(n, 2000, "{len} {api:?} {way:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn two_threads_oneway_checks_every_message() {
        let w = Timing {
            warm: std::time::Duration::from_millis(5),
            timed: std::time::Duration::from_millis(150),
        };
        for api in [Api::Copy, Api::ZeroCopy] {
            let t = oneway(64, api, w, Suppression::Flags, None).unwrap();
            assert!(t.rate > 0.0);
            assert!(
                t.kicks_per_msg > 0.0,
                "flags mode: the remote asks for kicks"
            );
        }
        let t = oneway(MAX_PAYLOAD, Api::Copy, w, Suppression::EventIdx, None).unwrap();
        assert!(t.rate > 0.0);
    }

    #[test]
    fn two_threads_round_trip_returns_every_sample() {
        let v = round_trip(2_000, 10, Suppression::Flags, None).unwrap();
        assert_eq!(v.len(), 2_000);
    }

    #[test]
    fn payload_sizes_outside_the_buffer_are_refused() {
        assert!(single(4, Api::Copy, 1, Suppression::Flags, Way::Down).is_err());
        assert!(single(MAX_PAYLOAD + 1, Api::Copy, 1, Suppression::Flags, Way::Up).is_err());
    }
}
