//! Runs inside the user-mode Linux guest of the linux-peer stream test
//! (`tests/tty_stream.rs`): Linux's `rpmsg_tty` against our byte stream.
//! Prints one `PASS ...` or `FAIL ...` line.
//!
//! ```text
//! rpmsg-tty-check <tty> <lines>
//! ```
//!
//! Puts `<tty>` in raw mode (`cfmakeraw`: no echo, no line editing, no
//! CR/LF translation, no flow-control characters, 8 bits), then a thread
//! writes `<lines>` lines `line-<i>\n` (one `write` each) followed by a
//! 4096-byte blob holding every byte value 16 times (one `write`), while
//! this thread reads everything back (the device echoes the stream) in
//! reads of 1, 2, 3, 7, 16, 100, 495, 496, 497 and 1000 bytes in turn, and
//! checks it byte for byte. Every wait is bounded.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

/// Read sizes, cycled.
const READ_SIZES: [usize; 10] = [1, 2, 3, 7, 16, 100, 495, 496, 497, 1000];
/// How long one read may wait for a byte.
const PER_READ: Duration = Duration::from_secs(20);
/// How long the writer keeps retrying a write that found no transmit
/// buffer (`rpmsg_tty` uses `rpmsg_trysend`: `-ENOMEM`).
const WRITE_PATIENCE: Duration = Duration::from_secs(60);

/// 4096 bytes, every byte value 16 times, each round a different
/// permutation (the same formula as the device side's).
fn blob() -> Vec<u8> {
    (0..16u32)
        .flat_map(|r| (0..256u32).map(move |v| (v * (2 * r + 1) + r) as u8))
        .collect()
}

fn raw_mode(f: &File) -> Result<(), String> {
    // SAFETY: `termios` is plain data; zero is a valid bit pattern, and
    // `tcgetattr` fills it.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: a live descriptor and a live `termios`.
    if unsafe { libc::tcgetattr(f.as_raw_fd(), &mut t) } != 0 {
        return Err(format!("tcgetattr: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `t` is a live `termios`.
    unsafe { libc::cfmakeraw(&mut t) };
    t.c_cc[libc::VMIN] = 1;
    t.c_cc[libc::VTIME] = 0;
    // SAFETY: as for `tcgetattr`.
    if unsafe { libc::tcsetattr(f.as_raw_fd(), libc::TCSANOW, &t) } != 0 {
        return Err(format!("tcsetattr: {}", std::io::Error::last_os_error()));
    }
    Ok(())
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

/// Writes all of `data`, retrying (bounded) while the tty finds no
/// transmit buffer; returns the retries.
fn write_all(f: &mut File, mut data: &[u8], what: &str) -> Result<u64, String> {
    let start = Instant::now();
    let mut retries = 0;
    while !data.is_empty() {
        match f.write(data) {
            Ok(0) => return Err(format!("{what}: write returned 0")),
            Ok(n) => data = &data[n..],
            Err(e)
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted)
                    || e.raw_os_error() == Some(libc::ENOMEM) =>
            {
                retries += 1;
                if start.elapsed() > WRITE_PATIENCE {
                    return Err(format!("{what}: no transmit buffer for {WRITE_PATIENCE:?}"));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
    Ok(retries)
}

fn run(tty: &str, lines: u32) -> Result<String, String> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(tty)
        .map_err(|e| format!("open {tty}: {e}"))?;
    raw_mode(&f)?;
    let mut expected: Vec<u8> = (0..lines)
        .flat_map(|i| format!("line-{i}\n").into_bytes())
        .collect();
    expected.extend(blob());
    let mut wf = f.try_clone().map_err(|e| format!("dup: {e}"))?;
    let writer = std::thread::spawn(move || -> Result<u64, String> {
        let mut retries = 0;
        for i in 0..lines {
            retries += write_all(&mut wf, format!("line-{i}\n").as_bytes(), "line")?;
        }
        retries += write_all(&mut wf, &blob(), "blob")?;
        Ok(retries)
    });
    let mut rf = f;
    let mut got = Vec::with_capacity(expected.len());
    let mut buf = [0u8; 1000];
    let mut reads = 0usize;
    while got.len() < expected.len() {
        if !readable(&rf, PER_READ)? {
            return Err(format!(
                "{} of {} bytes back, then nothing for {PER_READ:?}",
                got.len(),
                expected.len()
            ));
        }
        let want = READ_SIZES[reads % READ_SIZES.len()];
        reads += 1;
        let n = rf
            .read(&mut buf[..want])
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 || n > want {
            return Err(format!("read {n} of {want} bytes"));
        }
        let at = got.len();
        got.extend_from_slice(&buf[..n]);
        if got.len() > expected.len() || got[at..] != expected[at..at + n] {
            return Err(format!(
                "bytes {at}..{} differ: got {:?}",
                at + n,
                &got[at..]
            ));
        }
    }
    let retries = writer
        .join()
        .map_err(|_| "writer thread panicked".to_string())??;
    Ok(format!(
        "tty-stream {lines} lines and 256-value blob back byte for byte ({} bytes, {reads} reads, {retries} write retries)",
        got.len()
    ))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let res = match (args.get(1), args.get(2).and_then(|s| s.parse().ok())) {
        (Some(tty), Some(lines)) => run(tty, lines),
        _ => Err("usage: rpmsg-tty-check <tty> <lines>".into()),
    };
    let out = std::io::stdout();
    let mut out = out.lock();
    match res {
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
