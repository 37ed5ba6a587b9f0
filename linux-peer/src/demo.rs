//! The two-cores demo's row against real Linux: our remote announces
//! `rpmsg-raw`, Linux's `rpmsg_char` creates `/dev/rpmsgN` for it, and the
//! guest's `/init` echoes every message straight back through it
//! (busybox `cat` reading and writing the one open file, so one `read` is
//! one rpmsg message and one `write` sends it back). Our remote sends a
//! stream of messages of random sizes one at a time, checks every echo and
//! times each round trip.
//!
//! Linux does not announce the channel's own address back (an endpoint
//! created for a received announcement has no `announce` flag,
//! docs/linux-peer.md), so the guest first writes [`READY`]; its source
//! address is where the echoes come from. When the stream is done, our
//! remote destroys the service, Linux removes `/dev/rpmsgN`, `cat` fails
//! its read and `/init` powers the guest off.
//!
//! Every wait is bounded ([`PATIENCE`] without progress, [`BOOT_TIMEOUT`]
//! for the first kick, [`POWEROFF_TIMEOUT`] for the guest to stop); on
//! every way out the kernel's process group is killed if it still runs.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use ipc_traits::mailbox::QueueId;
use rpmsg::boot::Profile;
use rpmsg::link::{Link, Sent, Storage, Tx};
use rpmsg::rings::{RemoteConfig, RemoteRings};
use vring::Virtio1;

use crate::backend::{BackendConfig, Server};
use crate::doorbell::{Calls, Kicks};
use crate::memory::SharedRegion;
use crate::uml::{self, TempDir, Uml, UmlConfig};
use crate::{pattern, remote_config, rpmsg_areas};

/// Ring tables, leaked: they live as long as the process.
fn remote_tables<const N: usize>() -> &'static rpmsg::rings::RemoteTables<N> {
    Box::leak(Box::default())
}

/// The service our remote announces (`rpmsg_char` binds to it).
pub const SERVICE: &str = "rpmsg-raw";
/// Our endpoint's address.
pub const ADDR: u32 = 1024;
/// What the guest writes first, so that we learn its address.
pub const READY: &[u8] = b"ready";
/// The seed of the message stream (see [`crate::pattern`]).
pub const SEED: u64 = 0xd3_0001;
/// How long the exchange may go without any progress.
pub const PATIENCE: Duration = Duration::from_secs(10);
/// How long Linux may take to boot, set up the rings and kick.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Linux may take to power off once the service is gone.
pub const POWEROFF_TIMEOUT: Duration = Duration::from_secs(30);

/// Ring entries the remote supports (Linux uses 256 per ring).
const RING: usize = 256;

/// The remote's rings over the ones Linux set up.
type EchoRings<'m> = RemoteRings<'m, SharedRegion, Virtio1, RING>;
/// The remote's link over them.
type EchoLink<'m> = Link<'m, EchoRings<'m>, Calls>;
/// Its transmit half.
type EchoTx<'l, 'm> = Tx<'l, 'm, EchoRings<'m>, Calls>;

/// The guest's `/init`: find the `/dev/rpmsgN` of [`SERVICE`] (15 s at
/// most), write [`READY`], echo until the device goes away (10 minutes at
/// most), power off.
fn init_script() -> String {
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
echo "INIT started"
dev=
i=0
while [ -z "$dev" ] && [ $i -lt 150 ]; do
  for d in /sys/class/rpmsg/rpmsg[0-9]*; do
    if [ -e "$d/name" ] && [ "$(cat "$d/name")" = {SERVICE} ] && [ -e "/dev/${{d##*/}}" ]; then
      dev="/dev/${{d##*/}}"
    fi
  done
  [ -z "$dev" ] && sleep 0.1
  i=$((i+1))
done
if [ -z "$dev" ]; then
  echo "FAIL echo-device: no /dev/rpmsgN for {SERVICE}"
else
  echo "PASS echo-device $dev"
  exec 3<>"$dev"
  printf '{ready}' >&3
  timeout 600 cat <&3 >&3
  echo "INFO echo ended with status $?"
  exec 3>&-
  if [ -e "$dev" ]; then echo "FAIL echo-device-removed"; else echo "PASS echo-device-removed"; fi
fi
echo "INIT done"
poweroff -f
"#,
        ready = String::from_utf8_lossy(READY)
    )
}

/// What one echo run measured.
#[derive(Debug, Clone, Default)]
pub struct EchoReport {
    /// Messages echoed and checked.
    pub messages: u32,
    /// Payload bytes sent (each came back once).
    pub bytes: u64,
    /// Every round trip, from our send to the checked echo, in order.
    pub round_trips: Vec<Duration>,
    /// Notifications our remote sent Linux (calls).
    pub calls_sent: u64,
    /// Notifications our rings found Linux did not want.
    pub calls_suppressed: u64,
    /// Notifications Linux sent us (kicks, the eventfd counters summed,
    /// the boot kick included).
    pub kicks_received: u64,
    /// Validation failures on our side (bad headers, rings, buffers the
    /// rings refused back), messages for other addresses, and kernel log
    /// problems.
    pub errors: u64,
    /// From starting the kernel to its first kick.
    pub boot: Duration,
    /// The echo phase.
    pub exchange: Duration,
    /// From destroying the service to the guest powering off.
    pub shutdown: Duration,
}

impl EchoReport {
    /// The median round trip (zero without messages).
    pub fn rtt_median(&self) -> Duration {
        let mut r = self.round_trips.clone();
        r.sort_unstable();
        r.get(r.len() / 2).copied().unwrap_or_default()
    }
}

/// Why an echo run failed: what went wrong, and the guest console's last
/// lines.
#[derive(Debug, Clone)]
pub struct EchoError {
    /// What went wrong.
    pub what: String,
    /// The last console lines of the guest (at most 40).
    pub console_tail: Vec<String>,
}

impl fmt::Display for EchoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)?;
        if !self.console_tail.is_empty() {
            write!(
                f,
                "\n---- guest console (last lines) ----\n{}",
                self.console_tail.join("\n")
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for EchoError {}

/// Queue `i` (0 and 1 exist).
fn q(i: u8) -> Result<QueueId, String> {
    QueueId::new(i).ok_or_else(|| format!("no queue {i}"))
}

/// Waits (at most [`BOOT_TIMEOUT`] each) for the rings and Linux's first
/// kick on vring 0, before which the device must not send
/// (docs/linux-peer.md, pitfall 7); then derives the remote's ring
/// configuration from the queues and Linux's buffer pools.
///
/// # Errors
///
/// A wait ran out, the connection failed, or the pools or ring layout are
/// invalid.
pub fn attach(server: &Server) -> Result<(SharedRegion, Kicks, Calls, RemoteConfig), String> {
    let mut ready = server
        .wait_ready(BOOT_TIMEOUT)
        .map_err(|e| format!("vhost-user setup: {e}"))?;
    ready
        .kicks
        .wait_for(q(0)?, BOOT_TIMEOUT)
        .map_err(|e| format!("first kick: {e}"))?
        .ok_or("no first kick on vring 0")?;
    let first = ready.queues.first().ok_or("no queue 0")?;
    let areas = rpmsg_areas(&ready.memory, first, &ready.queues)
        .map_err(|e| format!("buffer areas: {e}"))?;
    let cfg = remote_config(&ready.queues, &areas, ready.features)
        .map_err(|e| format!("ring layout: {e:?}"))?;
    Ok((ready.memory, ready.kicks, ready.calls, cfg))
}

/// Our side of the exchange, between the first kick and the guest's
/// power-off.
struct Session<'s, 'm> {
    server: &'s Server,
    link: &'s mut EchoLink<'m>,
    kicks: &'s mut Kicks,
    /// Messages for our endpoint not yet taken: (source, payload). Those
    /// for other addresses the link counts as unbound.
    inbox: VecDeque<(u32, Vec<u8>)>,
    since: Instant,
}

impl<'m> Session<'_, 'm> {
    /// One bounded wait: up to 20 ms for a kick, then every doorbell owed
    /// and everything waiting in the rings. Fails after [`PATIENCE`]
    /// without progress, when a ring broke, or when Linux disconnected.
    fn step(&mut self, waiting_for: impl FnOnce() -> String) -> Result<(), String> {
        if self.since.elapsed() > PATIENCE {
            return Err(format!(
                "timed out: nothing moved for {} s while waiting for {}",
                PATIENCE.as_secs(),
                waiting_for()
            ));
        }
        // A kick only wakes us: the receive half reads the ring itself.
        self.kicks
            .wait(Duration::from_millis(20))
            .map_err(|e| format!("kick: {e}"))?;
        let (mut tx, mut rx) = self.link.split();
        tx.flush();
        let mut buf = [0u8; pattern::MAX_LEN];
        loop {
            match rx.try_recv(&mut buf) {
                Ok(Some(m)) => self.inbox.push_back((m.src, buf[..m.len].to_vec())),
                Ok(None) => break,
                // A ring's worth of undeliverable messages (counted): the
                // ring is not idle yet.
                Err(rpmsg::Error::WouldBlock) => {}
                Err(e) => return Err(format!("receiving: {e:?}")),
            }
        }
        if self.link.is_broken() {
            return Err("a ring broke".into());
        }
        if !self.server.is_connected() && self.inbox.is_empty() {
            return Err(format!(
                "Linux disconnected while we waited for {}",
                waiting_for()
            ));
        }
        Ok(())
    }

    /// The next message for our endpoint.
    fn recv(&mut self, waiting_for: impl Fn() -> String) -> Result<(u32, Vec<u8>), String> {
        loop {
            if let Some(m) = self.inbox.pop_front() {
                self.since = Instant::now();
                return Ok(m);
            }
            self.step(&waiting_for)?;
        }
    }

    /// Runs `op` until it finds a transmit buffer.
    fn send(
        &mut self,
        what: impl Fn() -> String,
        mut op: impl FnMut(&mut EchoTx<'_, 'm>) -> Result<Sent, rpmsg::Error>,
    ) -> Result<(), String> {
        loop {
            match op(&mut self.link.split().0) {
                Ok(Sent::Sent) => return Ok(()),
                Ok(Sent::NoBuffer) => {
                    self.step(|| format!("a transmit buffer for {}", what()))?;
                }
                Err(e) => return Err(format!("sending {}: {e:?}", what())),
            }
        }
    }
}

/// What the device side measured before the guest powers off.
struct Measured {
    report: EchoReport,
    destroyed_at: Instant,
}

/// The device side: attach, announce, learn Linux's address, echo
/// `messages` messages one at a time, destroy the service.
fn device(
    server: &Server,
    messages: u32,
    started: Instant,
    on_echo: &mut dyn FnMut(u32),
) -> Result<Measured, String> {
    let (mem, mut kicks, calls, cfg) = attach(server)?;
    let boot = started.elapsed();
    // SAFETY: the two buffer areas are Linux's two pools, disjoint (checked
    // by `rpmsg_areas`), and no other buffer handle over them exists.
    let rings = unsafe { RemoteRings::<_, Virtio1, RING>::new(&mem, cfg, remote_tables()) }
        .and_then(|r| r.with_conventions(Profile::Linux.conventions()))
        .map_err(|e| format!("attaching to the rings: {e:?}"))?;
    let mut store = Storage::<1>::new();
    let mut link: EchoLink<'_> = Link::new(rings, calls, &mut store);
    let ep = link.bind(ADDR).map_err(|e| format!("endpoint: {e:?}"))?;
    let mut s = Session {
        server,
        link: &mut link,
        kicks: &mut kicks,
        inbox: VecDeque::new(),
        since: Instant::now(),
    };
    s.send(
        || format!("the {SERVICE} announcement"),
        |tx| tx.announce(&ep, SERVICE),
    )?;
    let (peer, hello) = s.recv(|| format!("the guest's \"{}\"", String::from_utf8_lossy(READY)))?;
    if hello != READY {
        return Err(format!(
            "the guest's first message is {:?}, not {:?}",
            String::from_utf8_lossy(&hello),
            String::from_utf8_lossy(READY)
        ));
    }

    let t0 = Instant::now();
    let mut report = EchoReport {
        boot,
        round_trips: Vec::with_capacity(messages as usize),
        ..EchoReport::default()
    };
    let mut out = [0u8; pattern::MAX_LEN];
    for k in 0..messages {
        let len = pattern::message(SEED, u64::from(k), &mut out);
        let sent_at = Instant::now();
        s.send(
            || format!("message {k}"),
            |tx| tx.try_send(&ep, peer, &out[..len]),
        )?;
        let (src, echo) = s.recv(|| format!("the echo of message {k}"))?;
        report.round_trips.push(sent_at.elapsed());
        if src != peer {
            return Err(format!(
                "echo {k} came from address {src}, not from the guest's {peer}"
            ));
        }
        if !pattern::matches(SEED, u64::from(k), &echo) {
            return Err(format!(
                "echo {k} is wrong: {} bytes back of {len} sent",
                echo.len()
            ));
        }
        report.messages += 1;
        report.bytes += len as u64;
        on_echo(k + 1);
    }
    report.exchange = t0.elapsed();
    s.send(
        || format!("the {SERVICE} destruction"),
        |tx| tx.announce_destroy(&ep, SERVICE),
    )?;
    let destroyed_at = Instant::now();
    // Serve until the guest disconnects: its shutdown may still return
    // buffers or send. Bounded by the power-off timeout.
    while server.is_connected() && destroyed_at.elapsed() < POWEROFF_TIMEOUT {
        s.since = Instant::now();
        match s.step(String::new) {
            Ok(()) => s.inbox.clear(),
            // Disconnecting is how this phase ends.
            Err(_) if !server.is_connected() => break,
            Err(e) => return Err(e),
        }
    }
    let (sent, got) = (link.tx_stats(), link.rx_stats());
    let (tx, rx) = link.ring_stats();
    report.calls_sent = u64::from(sent.doorbells) + u64::from(got.doorbells);
    report.calls_suppressed =
        u64::from(tx.notifications_suppressed) + u64::from(rx.notifications_suppressed);
    report.kicks_received = kicks.count(q(0)?) + kicks.count(q(1)?);
    report.errors = [
        got.bad_header,
        got.unbound,
        got.return_failures,
        tx.failures.total(),
        rx.failures.total(),
    ]
    .iter()
    .map(|&n| u64::from(n))
    .sum::<u64>();
    Ok(Measured {
        report,
        destroyed_at,
    })
}

/// Boots `kernel` (see [`uml::find_kernel`]) with our remote attached and
/// echoes `messages` messages of 1 to [`pattern::MAX_LEN`] bytes through
/// Linux, one at a time. `on_echo` is told the number of echoes checked so
/// far after each one.
///
/// # Errors
///
/// Setting up (busybox-static missing, socket, kernel start), a bounded
/// wait that ran out, a wrong or missing echo, a guest `FAIL` line, a
/// kernel log problem (`BUG:`, `WARNING:`, ...), or a guest that did not
/// power off. The kernel is killed on every error.
pub fn echo(
    kernel: &Path,
    messages: u32,
    mut on_echo: impl FnMut(u32),
) -> Result<EchoReport, EchoError> {
    let fail = |what: String| EchoError {
        what,
        console_tail: Vec::new(),
    };
    let dir = TempDir::new("lp-demo").map_err(|e| fail(format!("temporary directory: {e}")))?;
    let initrd = dir.path().join("initramfs.cpio");
    let image = uml::initramfs(&init_script(), &[]).map_err(fail)?;
    std::fs::write(&initrd, image).map_err(|e| fail(format!("{}: {e}", initrd.display())))?;
    let sock = dir.path().join("rpmsg.sock");
    let server = Server::listen(&sock, BackendConfig::rpmsg())
        .map_err(|e| fail(format!("vhost-user socket: {e}")))?;
    let started = Instant::now();
    // Dropped (the process group killed) before `server` and `dir` on
    // every way out.
    let mut linux = Uml::spawn(&UmlConfig::rpmsg(kernel, &initrd, &sock), dir.path())
        .map_err(|e| fail(format!("starting {}: {e}", kernel.display())))?;

    let measured = device(&server, messages, started, &mut on_echo);
    let timeout = if measured.is_ok() {
        POWEROFF_TIMEOUT
    } else {
        Duration::ZERO
    };
    let exit = linux.wait(timeout);
    let console = linux.console();
    let failure = |what: String| EchoError {
        what,
        console_tail: console[console.len().saturating_sub(40)..].to_vec(),
    };
    let Measured {
        mut report,
        destroyed_at,
    } = measured.map_err(|e| failure(format!("our remote: {e}")))?;
    report.shutdown = destroyed_at.elapsed();
    exit.map_err(|e| failure(format!("Linux did not power off: {e}")))?;
    server
        .wait_closed(Duration::from_secs(5))
        .map_err(|e| failure(format!("vhost-user connection: {e}")))?;
    let verdicts = uml::verdicts(&console);
    if let Some(v) = verdicts.iter().find(|v| !v.pass) {
        return Err(failure(format!("the guest reported FAIL {}", v.what)));
    }
    for want in ["echo-device /dev/rpmsg", "echo-device-removed"] {
        if !verdicts.iter().any(|v| v.what.starts_with(want)) {
            return Err(failure(format!("the guest did not report PASS {want}")));
        }
    }
    report.errors += uml::kernel_problems(&console).len() as u64;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_script_echoes_through_the_announced_service() {
        let s = init_script();
        assert!(s.starts_with("#!/bin/busybox sh\n"));
        assert!(s.contains(r#""$(cat "$d/name")" = rpmsg-raw"#));
        assert!(s.contains("printf 'ready' >&3"));
        assert!(s.contains("timeout 600 cat <&3 >&3"));
        assert!(s.ends_with("poweroff -f\n"));
    }

    #[test]
    fn real_linux_echoes_every_message_in_order() {
        let kernel = match uml::find_kernel() {
            Ok(Some(k)) => k,
            Ok(None) if std::env::var_os("LINUX_PEER_REQUIRE_KERNEL").is_some() => {
                panic!("no user-mode Linux kernel built, and LINUX_PEER_REQUIRE_KERNEL is set")
            }
            Ok(None) => {
                eprintln!(
                    "\n******** SKIPPED demo::tests::real_linux_echoes_every_message_in_order: \
                     no user-mode Linux kernel built (run linux-peer/build-kernel.sh)\n"
                );
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let mut seen = Vec::new();
        let r = echo(&kernel, 500, |n| seen.push(n)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.messages, 500);
        assert_eq!(seen, (1..=500).collect::<Vec<u32>>());
        assert_eq!(r.round_trips.len(), 500);
        assert_eq!(r.errors, 0);
        // Each message and its echo needed at least one notification
        // each way (the boot kick comes on top of Linux's).
        assert!(r.calls_sent + r.calls_suppressed >= 500, "{r:?}");
        assert!(r.kicks_received > 500, "{r:?}");
    }

    #[test]
    fn the_median_is_the_middle_round_trip() {
        let ms = Duration::from_millis;
        let r = EchoReport {
            round_trips: vec![ms(5), ms(1), ms(9), ms(3), ms(7)],
            ..EchoReport::default()
        };
        assert_eq!(r.rtt_median(), ms(5));
        assert_eq!(EchoReport::default().rtt_median(), Duration::ZERO);
    }
}
