//! Shared by the tests that boot Linux: the skip rule, one boot with its
//! outcome, and our rpmsg remote served over the rings Linux set up.

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
use rpmsg::link::{Endpoint, Link};
use rpmsg::rings::{RemoteConfig, RemoteRings};
use vring::Virtio1;

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

/// The remote's link over Linux's rings.
pub type RemoteLink<'m> = Link<'m, RemoteRings<'m, SharedRegion, Virtio1, 256>, Calls, 8, 4, 8>;

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

/// Runs the remote until the guest disconnects (or `deadline`): every kick
/// leads to a poll; each message for `ep` goes through `handle`, which may
/// send; when it reports `WouldBlock` (no buffer from Linux yet) the
/// message waits for the next kick, in order.
pub fn serve(
    server: &Server,
    link: &RemoteLink<'_>,
    kicks: &mut Kicks,
    ep: &Endpoint,
    deadline: Instant,
    mut handle: impl FnMut(&RemoteLink<'_>, &Endpoint, &Inbound) -> Result<(), rpmsg::link::Error>,
) -> Result<Served, String> {
    use ipc_traits::mailbox::NotifyRx as _;
    let mut pending: VecDeque<Inbound> = VecDeque::new();
    let mut served = Served::default();
    loop {
        let set = kicks
            .wait(Duration::from_millis(20))
            .map_err(|e| format!("kick: {e}"))?;
        served.kicks += set.iter().count() as u64;
        link.on_notify(set);
        let addr = ep.addr();
        link.poll(|m| {
            if m.dst == addr {
                pending.push_back(Inbound {
                    src: m.src,
                    data: m.payload.to_vec(),
                });
            }
        })
        .map_err(|e| format!("poll: {e:?}"))?;
        served.received = served.handled + pending.len() as u64;
        while let Some(m) = pending.front() {
            match handle(link, ep, m) {
                Ok(()) => {
                    pending.pop_front();
                    served.handled += 1;
                }
                Err(rpmsg::link::Error::WouldBlock) => break,
                Err(e) => return Err(format!("handling a message: {e:?}")),
            }
        }
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
pub fn serve_on_kicks(
    server: &Server,
    link: &RemoteLink<'_>,
    kicks: &mut Kicks,
    ep: &Endpoint,
    deadline: Instant,
    starved: &Starved<'_>,
    mut handle: impl FnMut(&RemoteLink<'_>, &Endpoint, &Inbound) -> Result<(), rpmsg::link::Error>,
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
            link.flush_kicks()
                .map_err(|e| format!("notifying Linux: {e:?}"))?;
            if !server.is_connected() || Instant::now() >= deadline {
                let _ignored = kicks.take_pending();
                return Ok(served);
            }
            if last_kick.elapsed() >= starved.quiet && (starved.unfinished)() {
                return Err(format!(
                    "starved: no kick from Linux for {} s with the exchange unfinished; \
                     {served:?}, {} waiting for a transmit buffer; link {:?}",
                    starved.quiet.as_secs(),
                    pending.len(),
                    link.stats()
                ));
            }
            continue;
        }
        last_kick = Instant::now();
        served.kicks += set.iter().count() as u64;
        link.on_notify(set);
        let addr = ep.addr();
        link.poll(|m| {
            if m.dst == addr {
                pending.push_back(Inbound {
                    src: m.src,
                    data: m.payload.to_vec(),
                });
            }
        })
        .map_err(|e| format!("poll: {e:?}"))?;
        served.received = served.handled + pending.len() as u64;
        while let Some(m) = pending.front() {
            match handle(link, ep, m) {
                Ok(()) => {
                    pending.pop_front();
                    served.handled += 1;
                }
                // Retried after the next kick: the failed take re-armed
                // the transmit ring's event, so Linux kicks when it posts
                // a buffer.
                Err(rpmsg::link::Error::WouldBlock) => break,
                Err(e) => return Err(format!("handling a message: {e:?}")),
            }
        }
        if link.is_broken() {
            return Err("a ring broke".into());
        }
        if !server.is_connected() || Instant::now() >= deadline {
            let _ignored = kicks.take_pending();
            return Ok(served);
        }
    }
}
