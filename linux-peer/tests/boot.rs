//! Boots the user-mode Linux kernel against our vhost-user device and
//! checks that Linux's own `virtio_rpmsg_bus` accepts what the device side
//! puts on the rings: here one name-service announcement built by hand on
//! `vring`'s device role (virtio 1.x, little-endian, rings at the addresses
//! Linux chose).
//!
//! Skips, loudly and counted, only when no kernel was built on this machine
//! (`linux-peer/build-kernel.sh`). Every wait is bounded; UML is killed on
//! timeout.
// Test code: a failed setup step should stop the test at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use common::{kernel_or_skip, q};

use ipc_traits::mailbox::Notify;
use linux_peer::protocol::{Request, VHOST_USER_F_PROTOCOL_FEATURES};
use linux_peer::uml::{self, TempDir, Uml, UmlConfig};
use linux_peer::{rpmsg_areas, BackendConfig, Server};
use vring::{BufferArea, Device, DeviceConfig, DeviceTables, Layout, Virtio1};

/// Device tables for the test's life.
fn tables<const N: usize>() -> &'static DeviceTables<N> {
    Box::leak(Box::default())
}

/// `/init`: waits for the tty our announcement creates, reports what Linux
/// made of it as PASS/FAIL lines, dumps the rpmsg/virtio kernel log, and
/// powers off.
const INIT_NS_TTY: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
echo "INIT started"
i=0
while [ ! -e /dev/ttyRPMSG0 ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i+1)); done
if [ -e /dev/ttyRPMSG0 ]; then echo "PASS tty-created"; else echo "FAIL tty-created: no /dev/ttyRPMSG0 after 15 s"; fi
if [ -e /dev/rpmsg_ctrl0 ]; then echo "PASS ctrl-created"; else echo "FAIL ctrl-created"; fi
ch=$(ls /sys/bus/rpmsg/devices 2>/dev/null | grep rpmsg-tty)
if [ -n "$ch" ]; then echo "PASS channel $ch"; else echo "FAIL channel: none"; fi
for d in /sys/bus/virtio/devices/*; do
  [ -e "$d" ] && echo "INFO $(basename $d) device=$(cat $d/device) status=$(cat $d/status) driver=$(basename $(readlink $d/driver))"
done
dmesg | grep -i -E 'rpmsg|virtio' | sed 's/^/DMESG /'
echo "INIT done"
poweroff -f
"#;

/// A name-service announcement as Linux's `virtio_rpmsg_bus` parses it:
/// `struct rpmsg_hdr` (src, dst, reserved, len, flags) then
/// `struct rpmsg_ns_msg` (name[32], addr, flags), all little-endian under
/// virtio 1.x.
fn ns_announcement(name: &str, addr: u32) -> Vec<u8> {
    const NS_ADDR: u32 = 53;
    const NS_MSG_LEN: u16 = 40;
    let mut m = Vec::with_capacity(56);
    m.extend_from_slice(&addr.to_le_bytes()); // src
    m.extend_from_slice(&NS_ADDR.to_le_bytes()); // dst
    m.extend_from_slice(&0u32.to_le_bytes()); // reserved
    m.extend_from_slice(&NS_MSG_LEN.to_le_bytes()); // len
    m.extend_from_slice(&0u16.to_le_bytes()); // flags
    let mut n = [0u8; 32];
    n[..name.len()].copy_from_slice(name.as_bytes());
    m.extend_from_slice(&n);
    m.extend_from_slice(&addr.to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes()); // RPMSG_NS_CREATE
    m
}

/// What the device side saw, for the assertions after the guest ended.
#[derive(Debug, Default)]
struct Seen {
    rx_pool: (usize, usize),
    first_buffer_len: u32,
    reposted: bool,
    notified: bool,
}

/// The device side of the test: handshake, first kick, announcement.
fn announce(server: &Server, uml: &Uml, log: &mut String) -> Result<Seen, String> {
    let t = Duration::from_secs(30);
    let mut ready = server
        .wait_ready(t)
        .map_err(|e| format!("vhost-user setup: {e}"))?;
    writeln!(
        log,
        "ready: features {:#x}, queues {:x?}",
        ready.features, ready.queues
    )
    .ok();
    let wanted = BackendConfig::rpmsg().features | VHOST_USER_F_PROTOCOL_FEATURES;
    if ready.features != wanted {
        return Err(format!(
            "Linux accepted features {:#x}, offered {wanted:#x}",
            ready.features
        ));
    }
    // Pitfall 7: nothing goes on a ring before Linux's first kick on it.
    ready
        .kicks
        .wait_for(q(0), t)
        .map_err(|e| format!("kick: {e}"))?
        .ok_or("no first kick on vring 0")?;
    let rx = ready.queues[0];
    let mem = ready.memory.clone();
    let areas = rpmsg_areas(&mem, &rx, &ready.queues).map_err(|e| format!("areas: {e}"))?;
    writeln!(log, "areas: {areas:x?}").ok();
    let layout = Layout::split(rx.num, rx.desc, rx.avail, rx.used).map_err(|e| format!("{e:?}"))?;
    let mut config = DeviceConfig::new(BufferArea::new(areas.rx.0, areas.rx.1));
    config.first_avail = rx.base;
    // SAFETY: no other buffer handle over the receive area exists: this is
    // the only ring of this test, and the area is disjoint from every ring.
    let mut dev = unsafe { Device::<_, Virtio1, 256>::new(&mem, layout, config, tables()) }
        .map_err(|e| format!("device ring: {e:?}"))?;
    let popped = dev
        .pop_writable()
        .map_err(|e| format!("pop: {e:?}"))?
        .ok_or("Linux posted no receive buffer before kicking")?;
    let first_buffer_len = popped.len;
    let msg = ns_announcement("rpmsg-tty", 1024);
    let mut buf = popped.buf;
    buf.write(0, &msg).map_err(|e| format!("write: {e}"))?;
    let buf = buf.clean().map_err(|(_, e)| format!("clean: {e}"))?;
    dev.push_used(popped.head, buf, msg.len() as u32)
        .map_err(|(_, e)| format!("push_used: {e:?}"))?;
    let notified = dev.publish_used().map_err(|e| format!("publish: {e:?}"))?;
    if notified {
        ready.calls.notify(q(0)).map_err(|e| format!("call: {e}"))?;
    }
    // Linux consumes the announcement, creates the channel, and re-posts
    // the buffer with another kick.
    uml.wait_for_line(t, |l| {
        l.starts_with("PASS tty-created") || l.starts_with("FAIL tty-created")
    });
    let reposted = ready
        .kicks
        .wait_for(q(0), Duration::from_secs(5))
        .map_err(|e| format!("kick: {e}"))?
        .is_some()
        && matches!(dev.pop_writable(), Ok(Some(_)));
    if dev.stats().failures.total() != 0 {
        return Err(format!("ring failures: {:?}", dev.stats()));
    }
    Ok(Seen {
        rx_pool: areas.rx,
        first_buffer_len,
        reposted,
        notified,
    })
}

#[test]
fn linux_creates_a_tty_for_our_name_service_announcement() {
    let Some(kernel) = kernel_or_skip("linux_creates_a_tty_for_our_name_service_announcement")
    else {
        return;
    };
    let dir = TempDir::new("lp-boot").unwrap();
    let initrd = dir.path().join("initramfs.cpio");
    std::fs::write(&initrd, uml::initramfs(INIT_NS_TTY, &[]).unwrap()).unwrap();
    let sock = dir.path().join("rpmsg.sock");
    let server = Server::listen(&sock, BackendConfig::rpmsg()).unwrap();
    let mut linux = Uml::spawn(&UmlConfig::rpmsg(&kernel, &initrd, &sock), dir.path()).unwrap();

    let mut log = String::new();
    let seen = announce(&server, &linux, &mut log);
    let exit = linux.wait(Duration::from_secs(60));
    let closed = server.wait_closed(Duration::from_secs(10));
    let console = linux.console();
    let report = format!(
        "device side: {seen:?}\n{log}UML: {exit:?}\nconnection: {closed:?}\nrequests: {:?}\n\
         ---- console ----\n{}\n-----------------",
        server.log(),
        console.join("\n")
    );

    if std::env::var_os("LINUX_PEER_VERBOSE").is_some() {
        println!("{report}");
    }
    let seen = seen.unwrap_or_else(|e| panic!("device side failed: {e}\n{report}"));
    assert!(exit.is_ok(), "UML did not power off in time\n{report}");
    let verdicts = uml::verdicts(&console);
    assert!(
        !verdicts.is_empty() && verdicts.iter().all(|v| v.pass),
        "guest reported failures\n{report}"
    );
    for wanted in ["tty-created", "ctrl-created"] {
        assert!(
            verdicts.iter().any(|v| v.what == wanted),
            "no PASS {wanted}\n{report}"
        );
    }
    // The channel is named after our service and our address (1024 = the
    // little-endian src/addr fields were read as we wrote them).
    assert!(
        verdicts
            .iter()
            .any(|v| v.what.starts_with("channel virtio0.rpmsg-tty.") && v.what.ends_with(".1024")),
        "channel not bound to address 1024\n{report}"
    );
    assert!(
        console
            .iter()
            .any(|l| l.contains("creating channel rpmsg-tty addr 0x400")),
        "Linux did not log the channel creation\n{report}"
    );
    let problems = uml::kernel_problems(&console);
    assert!(
        problems.is_empty(),
        "kernel problems: {problems:#?}\n{report}"
    );
    // Linux's receive pool: 256 buffers of 512 bytes (docs/linux-peer.md).
    assert_eq!(seen.first_buffer_len, 512, "{report}");
    assert_eq!(seen.rx_pool.1, 256 * 512, "{report}");
    assert!(
        seen.notified,
        "Linux suppressed the receive interrupt\n{report}"
    );
    assert!(
        seen.reposted,
        "Linux did not re-post the consumed buffer\n{report}"
    );
    // The handshake went through every step, and UML closed cleanly.
    let requests = server.log();
    for r in [
        Request::SetOwner,
        Request::SetProtocolFeatures,
        Request::SetBackendReqFd,
        Request::SetMemTable,
        Request::SetVringAddr,
        Request::SetVringKick,
        Request::SetVringEnable,
    ] {
        assert!(requests.contains(&r), "{r} missing\n{report}");
    }
    assert_eq!(closed, Ok(()), "{report}");
}
