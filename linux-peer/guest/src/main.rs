//! Runs inside the user-mode Linux guest of the linux-peer tests (built
//! statically, copied into the initramfs). Prints one `PASS ...` or
//! `FAIL ...` line.
//!
//! ```text
//! rpmsg-guest-helper exchange   <name> <count> <seed-out> <seed-in>
//! rpmsg-guest-helper create-ept <name> <dst> <count> <seed-out> <seed-in>
//! ```
//!
//! `exchange` opens the `/dev/rpmsgN` whose channel is `<name>` (what
//! `rpmsg_char` creates for an announced `rpmsg-raw` service); `create-ept`
//! first creates an endpoint named `<name>` toward remote address `<dst>`
//! through `/dev/rpmsg_ctrl0` (`RPMSG_CREATE_EPT_IOCTL`). Both then send
//! `<count>` messages of stream `<seed-out>` (one `write` each) while a
//! second thread reads `<count>` messages and checks each against stream
//! `<seed-in>` (one `read` each); see `src/pattern.rs`. Every wait is
//! bounded.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

#[path = "../../src/pattern.rs"]
mod pattern;

/// `_IOW(0xb5, 0x1, struct rpmsg_endpoint_info)` (include/uapi/linux/rpmsg.h).
const RPMSG_CREATE_EPT_IOCTL: u64 = 0x4028_b501;
/// `RPMSG_ADDR_ANY`: let Linux pick our local address.
const ADDR_ANY: u32 = 0xffff_ffff;
/// How long one message may take.
const PER_MESSAGE: Duration = Duration::from_secs(20);

/// `struct rpmsg_endpoint_info`.
#[repr(C)]
struct EndpointInfo {
    name: [u8; 32],
    src: u32,
    dst: u32,
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> Result<T, String> {
    args.get(i)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("usage: argument {i} ({what}) missing or invalid"))
}

/// The `/dev/rpmsgN` whose channel name is `name` (and destination `dst`),
/// waiting up to 15 s for it to appear.
fn find_dev(name: &str, dst: Option<u32>) -> Result<PathBuf, String> {
    for _ in 0..150 {
        if let Ok(dir) = fs::read_dir("/sys/class/rpmsg") {
            for e in dir.flatten() {
                let file = e.file_name();
                let Some(node) = file.to_str() else { continue };
                if !node.starts_with("rpmsg") || node.starts_with("rpmsg_ctrl") {
                    continue;
                }
                let attr = |a: &str| fs::read_to_string(e.path().join(a)).unwrap_or_default();
                if attr("name").trim() != name {
                    continue;
                }
                if dst.is_some_and(|d| attr("dst").trim() != d.to_string()) {
                    continue;
                }
                let dev = PathBuf::from("/dev").join(node);
                if dev.exists() {
                    return Ok(dev);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("no /dev/rpmsgN for channel {name}"))
}

fn readable(f: &File, timeout: Duration) -> Result<bool, String> {
    let mut p = libc::pollfd {
        fd: f.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: `p` is one live pollfd.
    let r = unsafe { libc::poll(&mut p, 1, ms) };
    if r < 0 {
        return Err(format!("poll: {}", std::io::Error::last_os_error()));
    }
    Ok(r > 0)
}

fn exchange(dev: &PathBuf, count: u64, seed_out: u64, seed_in: u64) -> Result<String, String> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev)
        .map_err(|e| format!("open {}: {e}", dev.display()))?;
    let mut rf = f.try_clone().map_err(|e| format!("dup: {e}"))?;
    let reader = std::thread::spawn(move || -> Result<u64, String> {
        let mut buf = [0u8; 512];
        for k in 0..count {
            if !readable(&rf, PER_MESSAGE)? {
                return Err(format!("message {k} did not arrive within {PER_MESSAGE:?}"));
            }
            let n = rf.read(&mut buf).map_err(|e| format!("read {k}: {e}"))?;
            if !pattern::matches(seed_in, k, &buf[..n]) {
                return Err(format!("message {k} from the remote is wrong ({n} bytes)"));
            }
        }
        Ok(count)
    });
    let mut buf = [0u8; pattern::MAX_LEN];
    let mut sent = 0;
    for k in 0..count {
        let len = pattern::message(seed_out, k, &mut buf);
        let n = f
            .write(&buf[..len])
            .map_err(|e| format!("write {k} ({len} bytes): {e}"))?;
        if n != len {
            return Err(format!("write {k}: {n} of {len} bytes"));
        }
        sent += 1;
    }
    let got = reader
        .join()
        .map_err(|_| "reader thread panicked".to_string())??;
    Ok(format!(
        "{sent} messages sent and {got} received and checked"
    ))
}

fn create_ept(name: &str, dst: u32) -> Result<PathBuf, String> {
    let ctrl = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/rpmsg_ctrl0")
        .map_err(|e| format!("open /dev/rpmsg_ctrl0: {e}"))?;
    let mut info = EndpointInfo {
        name: [0; 32],
        src: ADDR_ANY,
        dst,
    };
    let n = name.len().min(31);
    info.name[..n].copy_from_slice(&name.as_bytes()[..n]);
    // SAFETY: `info` is a live `struct rpmsg_endpoint_info`, which is what
    // this request reads (size 40, encoded in the request number).
    let r = unsafe { libc::ioctl(ctrl.as_raw_fd(), RPMSG_CREATE_EPT_IOCTL as _, &info) };
    if r != 0 {
        return Err(format!(
            "RPMSG_CREATE_EPT_IOCTL: {}",
            std::io::Error::last_os_error()
        ));
    }
    find_dev(name, Some(dst))
}

fn run(args: &[String]) -> Result<String, String> {
    match args.get(1).map(String::as_str) {
        Some("exchange") => {
            let name: String = arg(args, 2, "name")?;
            let (count, out, inn) = (
                arg(args, 3, "count")?,
                arg(args, 4, "seed-out")?,
                arg(args, 5, "seed-in")?,
            );
            let dev = find_dev(&name, None)?;
            let r = exchange(&dev, count, out, inn)?;
            Ok(format!("raw-exchange {} {r}", dev.display()))
        }
        Some("create-ept") => {
            let name: String = arg(args, 2, "name")?;
            let dst = arg(args, 3, "dst")?;
            let (count, out, inn) = (
                arg(args, 4, "count")?,
                arg(args, 5, "seed-out")?,
                arg(args, 6, "seed-in")?,
            );
            let dev = create_ept(&name, dst)?;
            let r = exchange(&dev, count, out, inn)?;
            Ok(format!("ctrl-endpoint {} to {dst} {r}", dev.display()))
        }
        _ => Err("usage: rpmsg-guest-helper exchange|create-ept ...".into()),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = std::io::stdout();
    let mut out = out.lock();
    match run(&args) {
        Ok(line) => {
            let _ = writeln!(out, "PASS {line}");
        }
        Err(e) => {
            let _ = writeln!(out, "FAIL {e}");
            let _ = out.flush();
            std::process::exit(1);
        }
    }
}
