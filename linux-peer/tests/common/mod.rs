//! Shared by the tests that boot Linux: the skip rule, one boot with its
//! outcome, and our rpmsg remote (`rpmsg::link`) served over the rings
//! Linux set up: [`attach`], [`rings`], then [`serve`] or
//! [`serve_on_kicks`] with the link split into its halves.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipc_traits::mailbox::QueueId;
use linux_peer::protocol::Request;
use linux_peer::uml::{self, TempDir, Uml, UmlConfig};
use linux_peer::{
    remote_config, rpmsg_areas, BackendConfig, Calls, Error, Kicks, Server, SharedRegion,
};
use rpmsg::boot::Profile;
use rpmsg::link::{Endpoint, Link, Rx, Sent, Tx};
use rpmsg::rings::{RemoteConfig, RemoteRings};
use rpmsg::wire::HEADER_LEN;
use vring::Virtio1;

/// Ring tables for the test's life.
fn remote_tables<const N: usize>() -> &'static rpmsg::rings::RemoteTables<N> {
    Box::leak(Box::default())
}

static SKIPPED: AtomicU32 = AtomicU32::new(0);

/// Set (to anything) where a missing kernel must fail instead of skip
/// (CI builds the kernel first).
pub const REQUIRE_ENV: &str = "LINUX_PEER_REQUIRE_KERNEL";

/// The kernel, or `None` after a loud, counted skip message.
pub fn kernel_or_skip(test: &str) -> Option<PathBuf> {
    match uml::find_kernel() {
        Ok(Some(k)) => Some(k),
        Ok(None) if std::env::var_os(REQUIRE_ENV).is_some() => {
            panic!("{test}: no user-mode Linux kernel built, and {REQUIRE_ENV} is set")
        }
        Ok(None) => {
            let n = SKIPPED.fetch_add(1, Ordering::Relaxed) + 1;
            // Straight to the process's stderr, past the test harness's
            // output capture, so the skip shows in every run.
            let _ignored = writeln!(
                std::io::stderr(),
                "\n******** SKIPPED {test}: no user-mode Linux kernel built on this machine.\n\
                 ******** Run linux-peer/build-kernel.sh (or set {}). linux-peer tests skipped \
                 in this test binary so far: {n}\n",
                uml::KERNEL_ENV
            );
            None
        }
        Err(e) => panic!("{e}"),
    }
}

/// Queue `i`.
pub fn q(i: u8) -> QueueId {
    QueueId::new(i).unwrap()
}

/// One boot of the kernel with our vhost-user device attached.
pub struct Boot {
    pub dir: TempDir,
    pub server: Server,
    pub linux: Uml,
}

impl Boot {
    /// Starts the kernel with `init` as `/init` (and `extra` files).
    pub fn start(kernel: &Path, init: &str, extra: &[(&str, u32, &[u8])]) -> Self {
        Self::start_with(kernel, init, extra, BackendConfig::rpmsg())
    }

    /// As [`Boot::start`], with the device offering `config`.
    pub fn start_with(
        kernel: &Path,
        init: &str,
        extra: &[(&str, u32, &[u8])],
        config: BackendConfig,
    ) -> Self {
        let dir = TempDir::new("lp-boot").unwrap();
        let initrd = dir.path().join("initramfs.cpio");
        std::fs::write(&initrd, uml::initramfs(init, extra).unwrap()).unwrap();
        let sock = dir.path().join("rpmsg.sock");
        let server = Server::listen(&sock, config).unwrap();
        let linux = Uml::spawn(&UmlConfig::rpmsg(kernel, &initrd, &sock), dir.path()).unwrap();
        Self { dir, server, linux }
    }

    /// Waits (bounded) for the guest to power off and collects everything.
    pub fn finish(mut self, timeout: Duration) -> Outcome {
        let exit = self.linux.wait(timeout);
        let closed = self.server.wait_closed(Duration::from_secs(10));
        Outcome {
            exit,
            closed,
            console: self.linux.console(),
            requests: self.server.log(),
        }
    }
}

/// What one boot produced.
pub struct Outcome {
    pub exit: Result<ExitStatus, String>,
    pub closed: Result<(), Error>,
    pub console: Vec<String>,
    pub requests: Vec<Request>,
}

impl Outcome {
    /// Everything, for failure messages.
    pub fn report(&self, device: &str) -> String {
        format!(
            "device side: {device}\nUML: {:?}\nconnection: {:?}\nrequests: {:?}\n\
             ---- console ----\n{}\n-----------------",
            self.exit,
            self.closed,
            self.requests,
            self.console.join("\n")
        )
    }

    /// The guest powered off in time, printed only PASS lines including
    /// every one of `wanted` (prefixes), the kernel log is clean (test 5 of
    /// issue 10), and the connection closed cleanly.
    pub fn assert_passed(&self, wanted: &[&str], device: &str) {
        let report = self.report(device);
        if std::env::var_os("LINUX_PEER_VERBOSE").is_some() {
            println!("{report}");
        }
        assert!(self.exit.is_ok(), "UML did not power off in time\n{report}");
        let verdicts = uml::verdicts(&self.console);
        let failed: Vec<_> = verdicts.iter().filter(|v| !v.pass).collect();
        assert!(failed.is_empty(), "guest reported {failed:?}\n{report}");
        for w in wanted {
            assert!(
                verdicts.iter().any(|v| v.what.starts_with(w)),
                "no PASS {w}\n{report}"
            );
        }
        let problems = uml::kernel_problems(&self.console);
        assert!(
            problems.is_empty(),
            "kernel problems: {problems:#?}\n{report}"
        );
        assert!(
            self.console.iter().any(|l| l == "INIT done"),
            "init did not finish\n{report}"
        );
        assert_eq!(self.closed, Ok(()), "{report}");
    }
}

/// The remote's rings over Linux's (256 entries each).
pub type Rings<'m> = RemoteRings<'m, SharedRegion, Virtio1, 256>;
/// The remote's link over Linux's rings.
pub type RemoteLink<'m> = Link<'m, Rings<'m>, Calls>;
/// Its transmit half.
pub type RemoteTx<'l, 'm> = Tx<'l, 'm, Rings<'m>, Calls>;
/// Its receive half.
pub type RemoteRx<'l, 'm> = Rx<'l, 'm, Rings<'m>, Calls>;

/// The largest payload of Linux's 512-byte buffers.
pub const MAX_PAYLOAD: usize = 512 - HEADER_LEN;

/// Waits for the rings and Linux's first kick on vring 0 (before it the
/// device must not send: pitfall 7), then derives the remote's ring
/// configuration.
pub fn attach(server: &Server) -> Result<(SharedRegion, Kicks, Calls, RemoteConfig), String> {
    let t = Duration::from_secs(30);
    let mut ready = server
        .wait_ready(t)
        .map_err(|e| format!("vhost-user setup: {e}"))?;
    ready
        .kicks
        .wait_for(q(0), t)
        .map_err(|e| format!("kick: {e}"))?
        .ok_or("no first kick on vring 0")?;
    let areas = rpmsg_areas(&ready.memory, &ready.queues[0], &ready.queues)
        .map_err(|e| format!("areas: {e}"))?;
    let cfg = remote_config(&ready.queues, &areas, ready.features)
        .map_err(|e| format!("config: {e:?}"))?;
    Ok((ready.memory, ready.kicks, ready.calls, cfg))
}

/// The remote's rings over `mem` as [`attach`] described them, with
/// Linux's conventions ([`Profile::Linux`]).
///
/// # Safety
///
/// As [`RemoteRings::new`]: no other buffer handle over the two buffer
/// areas of `cfg` exists (call it once per attach; `rpmsg_areas` checked
/// that they are Linux's two disjoint pools).
pub unsafe fn rings(mem: &SharedRegion, cfg: RemoteConfig) -> Result<Rings<'_>, String> {
    // SAFETY: the caller's contract.
    unsafe { RemoteRings::new(mem, cfg, remote_tables()) }
        .and_then(|r| r.with_conventions(Profile::Linux.conventions()))
        .map_err(|e| format!("rings: {e:?}"))
}

/// A message our endpoint received.
pub struct Inbound {
    pub src: u32,
    pub data: Vec<u8>,
}

/// What [`serve`] counted.
#[derive(Debug, Default)]
pub struct Served {
    pub received: u64,
    pub handled: u64,
    pub kicks: u64,
}

/// What a handler of [`serve`] returns: whether it is done with the
/// message ([`Sent::NoBuffer`]: not yet, retry it later, in order).
pub type Handled = Result<Sent, rpmsg::Error>;

/// Takes every message waiting in the ring, copied out: those for `ep`
/// join `pending`, others (none are bound) the link counts as unbound.
pub fn receive(
    rx: &mut RemoteRx<'_, '_>,
    ep: &Endpoint,
    pending: &mut VecDeque<Inbound>,
) -> Result<(), String> {
    let mut buf = [0u8; MAX_PAYLOAD];
    loop {
        match rx.try_recv(&mut buf) {
            Ok(Some(m)) if m.dst == ep.addr() => pending.push_back(Inbound {
                src: m.src,
                data: buf[..m.len].to_vec(),
            }),
            Ok(Some(_)) => {}
            Ok(None) => return Ok(()),
            // A ring's worth of undeliverable messages, counted: the ring
            // is not idle yet.
            Err(rpmsg::Error::WouldBlock) => {}
            Err(e) => return Err(format!("receive: {e:?}")),
        }
    }
}

/// Hands the pending messages to `handle` in order, until one waits for a
/// transmit buffer ([`Sent::NoBuffer`]); counts the handled ones.
fn drain<'m>(
    tx: &mut RemoteTx<'_, 'm>,
    ep: &Endpoint,
    pending: &mut VecDeque<Inbound>,
    served: &mut Served,
    handle: &mut impl FnMut(&mut RemoteTx<'_, 'm>, &Endpoint, &Inbound) -> Handled,
) -> Result<(), String> {
    while let Some(m) = pending.front() {
        match handle(tx, ep, m) {
            Ok(Sent::Sent) => {
                pending.pop_front();
                served.handled += 1;
            }
            Ok(Sent::NoBuffer) => break,
            Err(e) => return Err(format!("handling a message: {e:?}")),
        }
    }
    Ok(())
}

/// Runs the remote until the guest disconnects (or `deadline`): every kick
/// and every 20 ms lead to a look at the rings; each message for `ep` goes
/// through `handle`, which may send; when it reports [`Sent::NoBuffer`]
/// (no buffer from Linux yet) the message waits for the next look, in
/// order.
pub fn serve<'m>(
    server: &Server,
    link: &mut RemoteLink<'m>,
    kicks: &mut Kicks,
    ep: &Endpoint,
    deadline: Instant,
    mut handle: impl FnMut(&mut RemoteTx<'_, 'm>, &Endpoint, &Inbound) -> Handled,
) -> Result<Served, String> {
    use ipc_traits::mailbox::NotifyRx as _;
    let mut pending: VecDeque<Inbound> = VecDeque::new();
    let mut served = Served::default();
    loop {
        let set = kicks
            .wait(Duration::from_millis(20))
            .map_err(|e| format!("kick: {e}"))?;
        served.kicks += set.iter().count() as u64;
        let (mut tx, mut rx) = link.split();
        tx.flush();
        receive(&mut rx, ep, &mut pending)?;
        served.received = served.handled + pending.len() as u64;
        drain(&mut tx, ep, &mut pending, &mut served, &mut handle)?;
        if link.is_broken() {
            return Err("a ring broke".into());
        }
        if !server.is_connected() || Instant::now() >= deadline {
            // Take what is still pending (no effect on the outcome).
            let _ignored = kicks.take_pending();
            return Ok(served);
        }
    }
}

/// When an interrupt-driven device calls itself starved: no kick for
/// `quiet` while Linux is connected and `unfinished` says work remains.
pub struct Starved<'a> {
    pub quiet: Duration,
    pub unfinished: &'a dyn Fn() -> bool,
}

/// As [`serve`], but interrupt-driven, as firmware sleeping until its
/// mailbox interrupt: the rings are read only after a kick, never because a
/// wait timed out (a timed-out wait only retries a doorbell the link still
/// owes Linux). A device whose notifications Linux stopped sending gets no
/// further, and this fails with "starved" (see [`Starved`]).
pub fn serve_on_kicks<'m>(
    server: &Server,
    link: &mut RemoteLink<'m>,
    kicks: &mut Kicks,
    ep: &Endpoint,
    deadline: Instant,
    starved: &Starved<'_>,
    mut handle: impl FnMut(&mut RemoteTx<'_, 'm>, &Endpoint, &Inbound) -> Handled,
) -> Result<Served, String> {
    use ipc_traits::mailbox::NotifyRx as _;
    let mut pending: VecDeque<Inbound> = VecDeque::new();
    let mut served = Served::default();
    let mut last_kick = Instant::now();
    loop {
        let set = kicks
            .wait(Duration::from_millis(20))
            .map_err(|e| format!("kick: {e}"))?;
        if set.is_empty() {
            link.split().0.flush();
            if !server.is_connected() || Instant::now() >= deadline {
                let _ignored = kicks.take_pending();
                return Ok(served);
            }
            if last_kick.elapsed() >= starved.quiet && (starved.unfinished)() {
                return Err(format!(
                    "starved: no kick from Linux for {} s with the exchange unfinished; \
                     {served:?}, {} waiting for a transmit buffer; link {link:?}",
                    starved.quiet.as_secs(),
                    pending.len(),
                ));
            }
            continue;
        }
        last_kick = Instant::now();
        served.kicks += set.iter().count() as u64;
        let (mut tx, mut rx) = link.split();
        receive(&mut rx, ep, &mut pending)?;
        served.received = served.handled + pending.len() as u64;
        // A message still waiting for a transmit buffer is retried after
        // the next kick: the failed take re-armed the transmit ring's
        // event, so Linux kicks when it posts a buffer.
        drain(&mut tx, ep, &mut pending, &mut served, &mut handle)?;
        if link.is_broken() {
            return Err("a ring broke".into());
        }
        if !server.is_connected() || Instant::now() >= deadline {
            let _ignored = kicks.take_pending();
            return Ok(served);
        }
    }
}

/// Announces `ep` under `name`; the first kick came with Linux's receive
/// buffers posted, so a transmit buffer is free.
pub fn announce(link: &mut RemoteLink<'_>, ep: &Endpoint, name: &str) -> Result<(), String> {
    match link.split().0.announce(ep, name) {
        Ok(Sent::Sent) => Ok(()),
        other => Err(format!("announce {name}: {other:?}")),
    }
}
