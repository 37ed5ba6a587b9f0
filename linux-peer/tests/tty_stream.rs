//! Linux's `rpmsg_tty` against our byte stream
//! ([`rpmsg::stream::Stream`], feature `embedded-io-07`), in
//! user-mode Linux (docs/linux-peer.md).
//!
//! Our remote announces `rpmsg-tty`; in the guest, `rpmsg-tty-check`
//! (guest/src/bin) puts `/dev/ttyRPMSG0` in raw mode, writes 10 000 lines
//! (one `write` each) and a 4096-byte blob holding every byte value, and
//! reads it all back in reads of 1..=1000 bytes, checking byte for byte.
//! The device side reads the stream with `embedded_io::Read` in reads of
//! the same sizes, checks every byte against what the guest writes, and
//! echoes it with `embedded_io::Write::write_all`: the lines a read at a
//! time, the blob in writes of 1500 bytes (split into messages of up to
//! 496 bytes, the buffers Linux posts). Every wait is bounded (a
//! budget that waits for Linux's kicks until a deadline).
//!
//! Skips, loudly and counted, only when no kernel was built on this machine.

// Test code: a failed setup step should stop the test at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use common::{attach, kernel_or_skip, Boot};
use ipc_traits::mailbox::Budget;
use linux_peer::{uml, Kicks, Server};
use rpmsg::boot::Profile;
use rpmsg::link::{Link, Sent, Storage};
use rpmsg::rings::RemoteRings;
use rpmsg::stream::embedded_io::{Read, Write};
use rpmsg::stream::Stream;
use vring::Virtio1;

/// Ring tables for the test's life.
fn remote_tables<const N: usize>() -> &'static rpmsg::rings::RemoteTables<N> {
    Box::leak(Box::default())
}

/// Lines the guest writes.
const LINES: u32 = 10_000;
/// Read sizes, cycled (as the guest's).
const READ_SIZES: [usize; 10] = [1, 2, 3, 7, 16, 100, 495, 496, 497, 1000];
/// The device echoes in writes of at least this many bytes.
const ECHO_BATCH: usize = 1500;
/// Our endpoint, announced as `rpmsg-tty`.
const ADDR: u32 = 1024;

/// 4096 bytes, every byte value 16 times, each round a different
/// permutation (the guest's formula).
fn blob() -> Vec<u8> {
    (0..16u32)
        .flat_map(|r| (0..256u32).map(move |v| (v * (2 * r + 1) + r) as u8))
        .collect()
}

/// Everything the guest writes, in order.
fn expected() -> Vec<u8> {
    let mut e: Vec<u8> = (0..LINES)
        .flat_map(|i| format!("line-{i}\n").into_bytes())
        .collect();
    e.extend(blob());
    e
}

/// The stream's budget: each retry waits up to 5 ms for a kick from Linux;
/// gives up at the deadline or when Linux disconnected.
#[derive(Clone)]
struct Kicked<'k> {
    kicks: &'k RefCell<Kicks>,
    server: &'k Server,
    deadline: Instant,
}

impl Budget for Kicked<'_> {
    fn next(&mut self) -> bool {
        let _kicked = self.kicks.borrow_mut().wait(Duration::from_millis(5));
        self.server.is_connected() && Instant::now() < self.deadline
    }
}

/// The guest's `/init`: waits for the tty, runs the check, powers off.
fn init() -> String {
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
echo "INIT started"
i=0
while [ ! -e /dev/ttyRPMSG0 ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i+1)); done
if [ -e /dev/ttyRPMSG0 ]; then echo "PASS tty-created"; else echo "FAIL tty-created"; fi
/bin/rpmsg-tty-check /dev/ttyRPMSG0 {LINES}
dmesg | grep -i -E 'rpmsg|virtio' | sed 's/^/DMESG /'
echo "INIT done"
poweroff -f
"#
    )
}

/// The device side: announce, then read the guest's bytes through the
/// stream, check them, echo them.
fn device(boot: &Boot) -> Result<String, String> {
    let (mem, kicks, calls, cfg) = attach(&boot.server)?;
    // SAFETY: the two areas are disjoint (derived from Linux's pools) and
    // no other buffer handle over them exists.
    let rings = unsafe { RemoteRings::<_, Virtio1, 256>::new(&mem, cfg, remote_tables()) }
        .and_then(|r| r.with_conventions(Profile::Linux.conventions()))
        .map_err(|e| format!("rings: {e:?}"))?;
    let mut storage = Storage::<1>::new();
    let mut link = Link::new(rings, calls, &mut storage);
    let ep = link.bind(ADDR).map_err(|e| format!("bind: {e}"))?;
    let kicks = RefCell::new(kicks);
    let mut wait = Kicked {
        kicks: &kicks,
        server: &boot.server,
        deadline: Instant::now() + Duration::from_secs(150),
    };
    let (mut tx, rx) = link.split();
    while tx
        .announce(&ep, "rpmsg-tty")
        .map_err(|e| format!("announce: {e}"))?
        == Sent::NoBuffer
    {
        if !wait.next() {
            return Err("no buffer to announce".into());
        }
    }
    // Linux's tty endpoint address comes with its first message.
    let mut tty: Stream<'_, '_, _, _, _> = Stream::new(tx, rx, ep, None, wait);
    let want = expected();
    let mut got = 0;
    let mut buf = [0u8; 1000];
    let mut reads = 0usize;
    let mut pending = Vec::new();
    let lines = want.len() - blob().len();
    while got < want.len() {
        let size = READ_SIZES[reads % READ_SIZES.len()];
        reads += 1;
        let n = tty
            .read(&mut buf[..size])
            .map_err(|e| format!("read at byte {got} of {}: {e}", want.len()))?;
        if n == 0 || n > size || got + n > want.len() {
            return Err(format!("read {n} of {size} at byte {got}"));
        }
        if buf[..n] != want[got..got + n] {
            return Err(format!(
                "bytes {got}..{} differ: got {:?}, want {:?}",
                got + n,
                &buf[..n],
                &want[got..got + n]
            ));
        }
        got += n;
        // The lines echoed a read at a time (thousands of small messages:
        // Linux's buffers run out and come back); the blob in writes of
        // ECHO_BATCH bytes (the last one shorter), each split into
        // messages of at most 496 bytes.
        pending.extend_from_slice(&buf[..n]);
        if got <= lines || pending.len() >= ECHO_BATCH || got == want.len() {
            tty.write_all(&pending)
                .map_err(|e| format!("echo before byte {got}: {e}"))?;
            pending.clear();
        }
    }
    tty.flush().map_err(|e| format!("flush: {e}"))?;
    let stats = tty.stats();
    if (stats.foreign, stats.oversized, stats.empty) != (0, 0, 0) {
        return Err(format!("undeliverable messages: {stats:?}"));
    }
    let peer = tty.peer();
    let mtu = tty.mtu();
    if mtu != 496 {
        return Err(format!("writes split at {mtu} bytes, not 496"));
    }
    let (ts, rs) = {
        let (tx, rx, _ep) = tty.into_parts();
        (tx.stats(), rx.stats())
    };
    if link.is_broken() {
        return Err("the link broke".into());
    }
    let (t, r) = link.ring_stats();
    if t.failures.total() + r.failures.total() != 0 || rs.bad_header + rs.unbound != 0 {
        return Err(format!("ring failures: tx {t:?} rx {r:?}; {rs:?}"));
    }
    Ok(format!(
        "{got} bytes checked and echoed in {reads} reads; peer {peer:?}, mtu {mtu}; \
         stream {stats:?}; tx {ts:?}; rx {rs:?}"
    ))
}

#[test]
fn rpmsg_tty_lines_and_blob_through_the_byte_stream() {
    let Some(kernel) = kernel_or_skip("rpmsg_tty_lines_and_blob_through_the_byte_stream") else {
        return;
    };
    let helper = uml::guest_helper().unwrap();
    let check = std::fs::read(helper.with_file_name("rpmsg-tty-check")).unwrap();
    let boot = Boot::start(&kernel, &init(), &[("bin/rpmsg-tty-check", 0o755, &check)]);
    let device = device(&boot);
    let outcome = boot.finish(Duration::from_secs(180));
    let device =
        device.unwrap_or_else(|e| panic!("device side: {e}\n{}", outcome.report("failed")));
    outcome.assert_passed(&["tty-created", "tty-stream 10000 lines"], &device);
    if std::env::var_os("LINUX_PEER_VERBOSE").is_some() {
        println!("{device}");
    }
}
