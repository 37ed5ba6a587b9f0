//! The stack under test: a master link on core 0 and a remote link on core
//! 1 over one [`Window`], 16 buffers of 512 bytes per direction, doorbells
//! by polled counters ([`crate::doorbell`]).
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread;
use std::time::Instant;

use ipc_traits::cache::Coherent;
use ipc_traits::mailbox::NotifyRx;
use ipc_traits::shm::RawRegion;
use rpmsg::link::{Endpoint, Error as LinkError, Link, RxMode};
use rpmsg::rings::{MasterConfig, MasterRings, QueueIds, RemoteConfig, RemoteRings};
use rpmsg::wire::{ADDR_ANY, HEADER_LEN};
use vring::{BufferArea, Layout, Legacy, Suppression};

use crate::affinity::{place, Cores};
use crate::common::{or_abort, stamp, stamp_view, Failure, Meter, Patience, SeqCheck, Timing};
use crate::doorbell::{Bell, BellRx, Doorbells};
use crate::floor::join;
use crate::window::Window;

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
/// Messages an endpoint queue holds.
const Q: usize = 8;
/// Remote services a link remembers.
const SVC: usize = 4;

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
/// The master's link.
pub type MasterLink<'m, 'd> = Link<'m, MasterRings<'m, Mem, Legacy, NUM>, Bell<'d>, EPS, Q, SVC>;
/// The remote's link.
pub type RemoteLink<'m, 'd> = Link<'m, RemoteRings<'m, Mem, Legacy, NUM>, Bell<'d>, EPS, Q, SVC>;

fn link_err(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::new(format!("{what}: {e}"))
}

/// Initialises the rings and the master's link over `win` (posting the
/// receive buffers).
///
/// # Errors
///
/// A ring or endpoint error.
pub fn open_master<'m, 'd>(
    win: &'m Window,
    bells: &'d Doorbells,
    suppression: Suppression,
) -> Result<(MasterLink<'m, 'd>, Endpoint), Failure> {
    // SAFETY: the pool (after both rings) is owned by this link alone: the
    // window is fresh and nothing else builds buffers over it.
    let rings =
        unsafe { MasterRings::<_, Legacy, NUM>::new(win.region(), master_config(suppression)) }
            .map_err(|e| link_err("master rings", e))?;
    let link = Link::new(rings, Bell::new(&bells.to_remote));
    let ep = link
        .create_endpoint(ADDR_ANY, RxMode::Queue)
        .map_err(|e| link_err("master endpoint", e))?;
    Ok((link, ep))
}

/// Attaches the remote's link to the rings the master initialised.
///
/// # Errors
///
/// A ring or endpoint error.
pub fn open_remote<'m, 'd>(
    win: &'m Window,
    bells: &'d Doorbells,
    suppression: Suppression,
) -> Result<(RemoteLink<'m, 'd>, Endpoint), Failure> {
    // SAFETY: the two buffer areas are the halves of the master's pool,
    // disjoint; this side builds no other buffer over them.
    let rings =
        unsafe { RemoteRings::<_, Legacy, NUM>::new(win.region(), remote_config(suppression)) }
            .map_err(|e| link_err("remote rings", e))?;
    let link = Link::new(rings, Bell::new(&bells.to_master));
    let ep = link
        .create_endpoint(ADDR_ANY, RxMode::Queue)
        .map_err(|e| link_err("remote endpoint", e))?;
    Ok((link, ep))
}

/// Which API moves the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `try_send` (copy in) and `try_recv` (copy out).
    Copy,
    /// `try_alloc_tx` + `payload_mut` (the sequence number and check byte
    /// written in place) and `try_recv_held` + `payload` (checked in place).
    ZeroCopy,
}

/// Sends message `seq` (`msg` holds the payload for [`Api::Copy`]).
#[inline]
fn master_send(
    link: &MasterLink<'_, '_>,
    ep: &Endpoint,
    dst: u32,
    api: Api,
    msg: &mut [u8],
    seq: u32,
) -> Result<bool, Failure> {
    let sent = match api {
        Api::Copy => {
            stamp(msg, seq);
            link.try_send(ep, dst, msg)
        }
        Api::ZeroCopy => match link.try_alloc_tx() {
            Ok(mut tx) => {
                match tx.payload_mut(msg.len()) {
                    Ok(mut p) => stamp_view(&mut p, seq),
                    Err(LinkError::TooLong { .. }) => {
                        return Err(Failure::new("zero-copy buffer too small"))
                    }
                    Err(e) => return Err(link_err("payload_mut", e)),
                }
                tx.send(ep, dst)
            }
            Err(e) => Err(e),
        },
    };
    match sent {
        Ok(()) => Ok(true),
        Err(LinkError::WouldBlock) => Ok(false),
        Err(e) => Err(link_err("master send", e)),
    }
}

/// Receives and checks one message on the remote; `Ok(false)` when none is
/// waiting.
#[inline]
fn remote_recv(
    link: &RemoteLink<'_, '_>,
    ep: &Endpoint,
    src: u32,
    api: Api,
    out: &mut [u8; MAX_PAYLOAD],
    check: &mut SeqCheck,
) -> Result<bool, Failure> {
    match api {
        Api::Copy => match link.try_recv(ep, out) {
            Ok(r) => {
                if r.src != src {
                    return Err(Failure::new(format!(
                        "message from {} instead of {src}",
                        r.src
                    )));
                }
                check.check(&out[..r.len])?;
                Ok(true)
            }
            Err(LinkError::WouldBlock) => Ok(false),
            Err(e) => Err(link_err("remote receive", e)),
        },
        Api::ZeroCopy => match link.try_recv_held(ep) {
            Ok(held) => {
                if held.src() != src {
                    return Err(Failure::new(format!(
                        "message from {} instead of {src}",
                        held.src()
                    )));
                }
                let payload = held.payload().map_err(|e| link_err("payload", e))?;
                check.check_view(&payload)?;
                drop(held);
                Ok(true)
            }
            Err(LinkError::WouldBlock) => Ok(false),
            Err(e) => Err(link_err("remote receive", e)),
        },
    }
}

/// Tells `link` which doorbells rang (what a mailbox interrupt would do).
#[inline]
fn poll_bell<'m, R: rpmsg::rings::Rings<'m>, N: ipc_traits::mailbox::Notify>(
    rx: &mut BellRx<'_>,
    link: &Link<'m, R, N, EPS, Q, SVC>,
) {
    let Ok(set) = rx.take_pending();
    if !set.is_empty() {
        link.on_notify(set);
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
                let (link, ep) = open_master(win, bells, suppression)?;
                hs.master.store(ep.addr(), Ordering::Release);
                let dst = Handshake::wait(&hs.remote, &mut wait, "remote attach")?;
                let mut rx = BellRx::new(&bells.to_master);
                let mut msg = [0xA5u8; MAX_PAYLOAD];
                let msg = &mut msg[..len];
                let mut seq = 0u32;
                'run: while !Meter::stop(stop) {
                    while !master_send(&link, &ep, dst, api, msg, seq)? {
                        if Meter::stop(stop) {
                            break 'run;
                        }
                        poll_bell(&mut rx, &link);
                        wait.spin("master: no transmit buffer came back")?;
                    }
                    seq = seq.wrapping_add(1);
                }
                let sent = link.stats().notifications_sent;
                Ok(f64::from(sent) / f64::from(seq.max(1)))
            })
        });
        let remote = s.spawn(move || {
            or_abort(abort, || {
                place(cores, 1)?;
                let mut wait = Patience::new(abort);
                let src = Handshake::wait(&hs.master, &mut wait, "master init")?;
                let (link, ep) = open_remote(win, bells, suppression)?;
                hs.remote.store(ep.addr(), Ordering::Release);
                let mut rx = BellRx::new(&bells.to_remote);
                let mut out = [0u8; MAX_PAYLOAD];
                let mut check = SeqCheck::new(len);
                let mut meter = Meter::new(stop, window);
                loop {
                    poll_bell(&mut rx, &link);
                    if remote_recv(&link, &ep, src, api, &mut out, &mut check)? {
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
                let (link, ep) = open_master(win, bells, suppression)?;
                hs.master.store(ep.addr(), Ordering::Release);
                let peer = Handshake::wait(&hs.remote, &mut wait, "remote attach")?;
                let mut rx = BellRx::new(&bells.to_master);
                let mut msg = [0xA5u8; LEN];
                let mut out = [0u8; MAX_PAYLOAD];
                let mut check = SeqCheck::new(LEN);
                let mut times = Vec::with_capacity(samples as usize);
                for seq in 0..total {
                    let t = Instant::now();
                    while !master_send(&link, &ep, peer, Api::Copy, &mut msg, seq)? {
                        poll_bell(&mut rx, &link);
                        wait.spin("master: no transmit buffer")?;
                    }
                    loop {
                        poll_bell(&mut rx, &link);
                        match link.try_recv(&ep, &mut out) {
                            Ok(r) if r.src == peer => {
                                check.check(&out[..r.len])?;
                                break;
                            }
                            Ok(r) => return Err(Failure::new(format!("echo from {}", r.src))),
                            Err(LinkError::WouldBlock) => wait.spin("master: echo never came")?,
                            Err(e) => return Err(link_err("master receive", e)),
                        }
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
                let (link, ep) = open_remote(win, bells, suppression)?;
                hs.remote.store(ep.addr(), Ordering::Release);
                let mut rx = BellRx::new(&bells.to_remote);
                let mut out = [0u8; MAX_PAYLOAD];
                let mut check = SeqCheck::new(LEN);
                while check.next() < total {
                    poll_bell(&mut rx, &link);
                    if !remote_recv(&link, &ep, src, Api::Copy, &mut out, &mut check)? {
                        wait.spin("remote: ping never arrived")?;
                        continue;
                    }
                    loop {
                        match link.try_send(&ep, src, &out[..LEN]) {
                            Ok(()) => break,
                            Err(LinkError::WouldBlock) => {
                                poll_bell(&mut rx, &link);
                                wait.spin("remote: no transmit buffer")?;
                            }
                            Err(e) => return Err(link_err("remote echo", e)),
                        }
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
fn clean_stats<'m, R: rpmsg::rings::Rings<'m>, N: ipc_traits::mailbox::Notify>(
    who: &str,
    link: &Link<'m, R, N, EPS, Q, SVC>,
) -> Result<(), Failure> {
    let s = link.stats();
    let (t, r) = link.ring_stats();
    let bad = s.rx_bad_header + s.rx_unbound + s.ns_malformed;
    let ring = t.failures.total() + r.failures.total();
    if bad != 0 || ring != 0 || link.leaked_buffers() != 0 || link.is_broken() {
        return Err(Failure::new(format!(
            "{who}: errors counted (link {bad}, rings {ring}, leaked {})",
            link.leaked_buffers()
        )));
    }
    Ok(())
}

/// The single-threaded variant for instruction counting: the master sends
/// one message, the remote polls its doorbell and receives it; `count`
/// times. Returns the messages checked.
///
/// # Errors
///
/// A sequence error or a stack error.
pub fn single(len: usize, api: Api, count: u32, suppression: Suppression) -> Result<u32, Failure> {
    if !(5..=MAX_PAYLOAD).contains(&len) {
        return Err(Failure::new(format!(
            "payload {len} outside 5..={MAX_PAYLOAD}"
        )));
    }
    let win = Window::new(WINDOW)?;
    let bells = Doorbells::default();
    let (master, mep) = open_master(&win, &bells, suppression)?;
    let (remote, rep) = open_remote(&win, &bells, suppression)?;
    let mut mrx = BellRx::new(&bells.to_master);
    let mut rrx = BellRx::new(&bells.to_remote);
    let n = single_loop(
        (&master, &mep, &mut mrx),
        (&remote, &rep, &mut rrx),
        len,
        api,
        count,
    )?;
    clean_stats("master", &master)?;
    clean_stats("remote", &remote)?;
    Ok(n)
}

/// The measured loop of [`single`] (kept out of line so a profile shows it
/// as one function).
#[inline(never)]
fn single_loop(
    m: (&MasterLink<'_, '_>, &Endpoint, &mut BellRx<'_>),
    r: (&RemoteLink<'_, '_>, &Endpoint, &mut BellRx<'_>),
    len: usize,
    api: Api,
    count: u32,
) -> Result<u32, Failure> {
    let (master, mep, mrx) = m;
    let (remote, rep, rrx) = r;
    let mut msg = [0xA5u8; MAX_PAYLOAD];
    let msg = &mut msg[..len];
    let mut out = [0u8; MAX_PAYLOAD];
    let mut check = SeqCheck::new(len);
    for seq in 0..count {
        poll_bell(mrx, master);
        if !master_send(master, mep, rep.addr(), api, msg, seq)? {
            return Err(Failure::new(format!("message {seq}: no transmit buffer")));
        }
        poll_bell(rrx, remote);
        if !remote_recv(remote, rep, mep.addr(), api, &mut out, &mut check)? {
            return Err(Failure::new(format!("message {seq}: not received")));
        }
    }
    Ok(check.next())
}

/// The duplex master link of the single-threaded variant.
type DuplexMaster<'m, 'd> = rpmsg::duplex::Link<'m, MasterRings<'m, Mem, Legacy, NUM>, Bell<'d>>;
/// The duplex remote link of the single-threaded variant.
type DuplexRemote<'m, 'd> = rpmsg::duplex::Link<'m, RemoteRings<'m, Mem, Legacy, NUM>, Bell<'d>>;

/// [`single`] over the split API ([`rpmsg::duplex`]): the master's transmit
/// half sends, the remote's receive half receives.
///
/// # Errors
///
/// A sequence error or a stack error.
pub fn single_duplex(
    len: usize,
    api: Api,
    count: u32,
    suppression: Suppression,
) -> Result<u32, Failure> {
    if !(5..=MAX_PAYLOAD).contains(&len) {
        return Err(Failure::new(format!(
            "payload {len} outside 5..={MAX_PAYLOAD}"
        )));
    }
    let win = Window::new(WINDOW)?;
    let bells = Doorbells::default();
    // SAFETY: the pool (after both rings) is owned by this link alone: the
    // window is fresh and nothing else builds buffers over it.
    let mrings =
        unsafe { MasterRings::<_, Legacy, NUM>::new(win.region(), master_config(suppression)) }
            .map_err(|e| link_err("master rings", e))?;
    // SAFETY: the two buffer areas are the halves of the master's pool,
    // disjoint; this side builds no other buffer over them.
    let rrings =
        unsafe { RemoteRings::<_, Legacy, NUM>::new(win.region(), remote_config(suppression)) }
            .map_err(|e| link_err("remote rings", e))?;
    let mut mstore = rpmsg::duplex::Storage::<EPS>::new();
    let mut rstore = rpmsg::duplex::Storage::<EPS>::new();
    let mut master: DuplexMaster<'_, '_> =
        rpmsg::duplex::Link::new(mrings, Bell::new(&bells.to_remote), &mut mstore);
    let mut remote: DuplexRemote<'_, '_> =
        rpmsg::duplex::Link::new(rrings, Bell::new(&bells.to_master), &mut rstore);
    let mep = master
        .bind(ADDR_ANY)
        .map_err(|e| link_err("master endpoint", e))?;
    let rep = remote
        .bind(ADDR_ANY)
        .map_err(|e| link_err("remote endpoint", e))?;
    let mut mrx = BellRx::new(&bells.to_master);
    let mut rrx = BellRx::new(&bells.to_remote);
    let n = {
        let (mut mtx, _) = master.split();
        let (_, mut rrx_half) = remote.split();
        single_duplex_loop(
            (&mut mtx, &mep, &mut mrx),
            (&mut rrx_half, &rep, &mut rrx),
            len,
            api,
            count,
        )?
    };
    for (who, s, (t, r), broken) in [
        (
            "master",
            master.rx_stats(),
            master.ring_stats(),
            master.is_broken(),
        ),
        (
            "remote",
            remote.rx_stats(),
            remote.ring_stats(),
            remote.is_broken(),
        ),
    ] {
        let bad = s.bad_header + s.unbound + s.return_failures;
        let ring = t.failures.total() + r.failures.total();
        if bad != 0 || ring != 0 || broken {
            return Err(Failure::new(format!(
                "{who}: errors counted (link {bad}, rings {ring})"
            )));
        }
    }
    Ok(n)
}

/// The measured loop of [`single_duplex`] (out of line, as
/// [`single_loop`]).
#[inline(never)]
fn single_duplex_loop<'l, 'm, 'd>(
    m: (
        &mut rpmsg::duplex::Tx<'l, 'm, MasterRings<'m, Mem, Legacy, NUM>, Bell<'d>>,
        &rpmsg::duplex::Endpoint,
        &mut BellRx<'_>,
    ),
    r: (
        &mut rpmsg::duplex::Rx<'l, 'm, RemoteRings<'m, Mem, Legacy, NUM>, Bell<'d>>,
        &rpmsg::duplex::Endpoint,
        &mut BellRx<'_>,
    ),
    len: usize,
    api: Api,
    count: u32,
) -> Result<u32, Failure> {
    use rpmsg::duplex::Sent;
    let (tx, mep, mbell) = m;
    let (rx, rep, rbell) = r;
    let mut msg = [0xA5u8; MAX_PAYLOAD];
    let msg = &mut msg[..len];
    let mut out = [0u8; MAX_PAYLOAD];
    let mut check = SeqCheck::new(len);
    let (dst, src) = (rep.addr(), mep.addr());
    for seq in 0..count {
        // What a mailbox interrupt would take (the virtio rings need no
        // more: the halves read the rings themselves).
        let Ok(_) = mbell.take_pending();
        let sent = match api {
            Api::Copy => {
                stamp(msg, seq);
                tx.try_send(mep, dst, msg)
                    .map_err(|e| link_err("master send", e))?
            }
            Api::ZeroCopy => match tx.try_alloc().map_err(|e| link_err("alloc", e))? {
                Some(mut b) => {
                    let mut p = b.payload_mut(len).map_err(|e| link_err("payload_mut", e))?;
                    stamp_view(&mut p, seq);
                    b.send(mep, dst).map_err(|e| link_err("master send", e))?;
                    Sent::Sent
                }
                None => Sent::NoBuffer,
            },
        };
        if sent == Sent::NoBuffer {
            return Err(Failure::new(format!("message {seq}: no transmit buffer")));
        }
        let Ok(_) = rbell.take_pending();
        let got = match api {
            Api::Copy => match rx.try_recv(&mut out).map_err(|e| link_err("recv", e))? {
                Some(r) if r.src != src || r.dst != dst => {
                    return Err(Failure::new(format!("message from {} to {}", r.src, r.dst)))
                }
                Some(r) => {
                    check.check(&out[..r.len])?;
                    true
                }
                None => false,
            },
            Api::ZeroCopy => match rx.try_recv_held().map_err(|e| link_err("recv", e))? {
                Some(h) => {
                    if h.src() != src {
                        return Err(Failure::new(format!("message from {}", h.src())));
                    }
                    let p = h.payload().map_err(|e| link_err("payload", e))?;
                    check.check_view(&p)?;
                    true
                }
                None => false,
            },
        };
        if !got {
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
                    assert_eq!(single(len, api, 2000, supp).unwrap(), 2000, "{len} {api:?}");
                }
            }
        }
    }

    #[test]
    fn single_thread_duplex_moves_every_size_and_api_in_order() {
        for supp in [Suppression::Flags, Suppression::EventIdx] {
            for api in [Api::Copy, Api::ZeroCopy] {
                for len in [16, 64, MAX_PAYLOAD] {
                    let n = single_duplex(len, api, 2000, supp).unwrap();
                    assert_eq!(n, 2000, "{len} {api:?}");
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
        assert!(single(4, Api::Copy, 1, Suppression::Flags).is_err());
        assert!(single(MAX_PAYLOAD + 1, Api::Copy, 1, Suppression::Flags).is_err());
    }
}
