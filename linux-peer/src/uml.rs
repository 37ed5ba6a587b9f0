//! Running the user-mode Linux peer: finding the kernel, building an
//! initramfs, starting the kernel attached to a vhost-user socket, and
//! reading its console, with every wait bounded.
//!
//! Command line and housekeeping follow docs/linux-peer.md ("Step 2",
//! pitfall 9): `TMPDIR`, `uml_dir=` and `umid=` point into a temporary
//! directory, so neither the physmem file nor the mconsole directory
//! outlives the run; the console goes to a pipe (`con0=null,fd:1`), which
//! avoids UML's `epollctl` error on regular files.
#![allow(unsafe_code)]

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// Environment variable naming the kernel binary explicitly (then it must
/// exist: a missing one is an error, not a skip).
pub const KERNEL_ENV: &str = "LINUX_PEER_KERNEL";

/// Where busybox-static installs its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// The virtio device id of rpmsg (`VIRTIO_ID_RPMSG`).
pub const VIRTIO_ID_RPMSG: u32 = 7;

/// The UML kernel to boot: [`KERNEL_ENV`] if set, else what
/// `build-kernel.sh --lookup` finds in the cache. `Ok(None)` when no kernel
/// was built on this machine.
///
/// # Errors
///
/// [`KERNEL_ENV`] names a file that does not exist.
pub fn find_kernel() -> Result<Option<PathBuf>, String> {
    if let Some(p) = std::env::var_os(KERNEL_ENV) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(Some(p))
        } else {
            Err(format!("{KERNEL_ENV}={} does not exist", p.display()))
        };
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("build-kernel.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--lookup")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let p = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            Ok(p.is_file().then_some(p))
        }
        _ => Ok(None),
    }
}

/// Builds the guest helper (`guest/`, statically linked with
/// `-C target-feature=+crt-static`) and returns its path. The build goes to
/// `$CARGO_TARGET_DIR/guest-static` (or `target/guest-static` next to this
/// crate) and is incremental, so a warm call costs a fraction of a second.
///
/// # Errors
///
/// Cargo failed, or the result is not statically linked.
pub fn guest_helper() -> Result<PathBuf, String> {
    const TARGET: &str = "x86_64-unknown-linux-gnu";
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| here.join("target"))
        .join("guest-static");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--target", TARGET])
        .arg("--manifest-path")
        .arg(here.join("guest/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running cargo for the guest helper: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building the guest helper failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let bin = target_dir.join(TARGET).join("release/rpmsg-guest-helper");
    let bytes = fs::read(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    if !is_static_elf(&bytes) {
        return Err(format!("{} is not statically linked", bin.display()));
    }
    Ok(bin)
}

/// A directory removed (with its contents) on drop, unless
/// `LINUX_PEER_KEEP` is set.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A fresh directory under the system temporary directory; the name
    /// starts with `prefix`.
    ///
    /// # Errors
    ///
    /// The directory cannot be created.
    pub fn new(prefix: &str) -> io::Result<Self> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        // Short names: the socket path inside must stay under 108 bytes.
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}-{nanos:x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&path)?;
        Ok(Self { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("LINUX_PEER_KEEP").is_none() {
            let _ignored = fs::remove_dir_all(&self.path);
        }
    }
}

/// Whether `bytes` is an ELF executable without a program interpreter
/// (statically linked), so it runs in an initramfs without a libc.
pub fn is_static_elf(bytes: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        bytes.get(at..at + 8).map(|b| {
            let mut w = [0; 8];
            w.copy_from_slice(b);
            u64::from_le_bytes(w)
        })
    };
    // 64-bit little-endian ELF only (this harness runs on x86-64).
    if bytes.get(..6) != Some(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    let Ok(phoff) = usize::try_from(phoff) else {
        return false;
    };
    (0..usize::from(phnum)).all(|i| {
        let at = phoff.saturating_add(i.saturating_mul(usize::from(phentsize)));
        u32_at(at).is_some_and(|t| t != PT_INTERP)
    })
}

/// A `newc` cpio archive, the format the kernel unpacks as an initramfs.
#[derive(Debug)]
pub struct Cpio {
    buf: Vec<u8>,
    ino: u32,
}

impl Default for Cpio {
    fn default() -> Self {
        Self::new()
    }
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

impl Cpio {
    /// An empty archive.
    pub fn new() -> Self {
        Self {
            buf: Vec::new(),
            ino: 1,
        }
    }

    fn pad4(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            1, // nlink
            0, // mtime
            u32::try_from(data.len()).unwrap_or(u32::MAX),
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            u32::try_from(name.len() + 1).unwrap_or(u32::MAX),
            0, // check
        ];
        self.ino += 1;
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad4();
        self.buf.extend_from_slice(data);
        self.pad4();
    }

    /// A directory (`name` without a leading slash).
    pub fn dir(&mut self, name: &str) -> &mut Self {
        self.entry(name, S_IFDIR | 0o755, (0, 0), &[]);
        self
    }

    /// A regular file with permission bits `perm`.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> &mut Self {
        self.entry(name, S_IFREG | (perm & 0o7777), (0, 0), data);
        self
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(name, S_IFLNK | 0o777, (0, 0), target.as_bytes());
        self
    }

    /// A character device node.
    pub fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> &mut Self {
        self.entry(name, S_IFCHR | (perm & 0o7777), (major, minor), &[]);
        self
    }

    /// Ends the archive and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.buf
    }
}

/// An initramfs with busybox-static at `/bin/busybox`, the directories
/// `/init` expects, `/dev/console`, `init` as `/init`, and `extra` files
/// (path without leading slash, permission bits, contents).
///
/// # Errors
///
/// [`BUSYBOX`] is missing or not statically linked.
pub fn initramfs(init: &str, extra: &[(&str, u32, &[u8])]) -> Result<Vec<u8>, String> {
    let busybox = fs::read(BUSYBOX)
        .map_err(|e| format!("{BUSYBOX}: {e} (apt-get install busybox-static)"))?;
    if !is_static_elf(&busybox) {
        return Err(format!(
            "{BUSYBOX} is not statically linked (install busybox-static)"
        ));
    }
    let mut c = Cpio::new();
    for d in ["bin", "dev", "proc", "sys", "tmp", "root"] {
        c.dir(d);
    }
    c.char_dev("dev/console", 0o600, 5, 1)
        .file("bin/busybox", 0o755, &busybox)
        .symlink("bin/sh", "busybox")
        .file("init", 0o755, init.as_bytes());
    for (name, perm, data) in extra {
        c.file(name, *perm, data);
    }
    Ok(c.finish())
}

/// The console lines collected so far, with a condition variable for
/// waiting on new ones.
#[derive(Debug, Default)]
struct Console {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

impl Console {
    fn push(&self, line: String) {
        let mut g = self
            .lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        g.push(line);
        self.grew.notify_all();
    }
}

fn collect(console: Arc<Console>, pipe: impl Read + Send + 'static) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("uml-console".into())
        .spawn(move || {
            let mut r = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf);
                        console.push(line.trim_end_matches(['\n', '\r']).to_owned());
                    }
                }
            }
        })
}

/// How to start the kernel.
#[derive(Debug, Clone)]
pub struct UmlConfig {
    /// The kernel binary.
    pub kernel: PathBuf,
    /// The initramfs file.
    pub initrd: PathBuf,
    /// The vhost-user socket to attach as a virtio device, if any.
    pub socket: Option<PathBuf>,
    /// Its virtio device id.
    pub device_id: u32,
    /// Guest memory (`mem=`).
    pub mem: String,
    /// More kernel command-line arguments.
    pub extra_args: Vec<String>,
}

impl UmlConfig {
    /// An rpmsg device on `socket`, 64 MiB of memory.
    pub fn rpmsg(kernel: &Path, initrd: &Path, socket: &Path) -> Self {
        Self {
            kernel: kernel.to_owned(),
            initrd: initrd.to_owned(),
            socket: Some(socket.to_owned()),
            device_id: VIRTIO_ID_RPMSG,
            mem: "64M".into(),
            extra_args: Vec::new(),
        }
    }
}

/// A running UML kernel in its own process group; killed (the whole group)
/// on drop or when a bounded wait runs out.
#[derive(Debug)]
pub struct Uml {
    child: Child,
    console: Arc<Console>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
    killed: bool,
}

impl Uml {
    /// Starts `config.kernel`; `scratch` holds UML's physmem file and
    /// mconsole directory.
    ///
    /// # Errors
    ///
    /// The process or its console readers cannot be started.
    pub fn spawn(config: &UmlConfig, scratch: &Path) -> io::Result<Self> {
        let mut cmd = Command::new(&config.kernel);
        cmd.arg(format!("mem={}", config.mem))
            .arg(format!("initrd={}", config.initrd.display()))
            .arg("con=null")
            .arg("ssl=null")
            .arg("con0=null,fd:1")
            .arg(format!("uml_dir={}", scratch.display()))
            .arg("umid=peer");
        if let Some(s) = &config.socket {
            cmd.arg(format!(
                "virtio_uml.device={}:{}",
                s.display(),
                config.device_id
            ));
        }
        cmd.args(&config.extra_args)
            .env("TMPDIR", scratch)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn()?;
        let console = Arc::new(Console::default());
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(collect(Arc::clone(&console), out)?);
        }
        if let Some(err) = child.stderr.take() {
            readers.push(collect(Arc::clone(&console), err)?);
        }
        Ok(Self {
            child,
            console,
            readers,
            status: None,
            killed: false,
        })
    }

    /// The console lines so far (stdout and stderr interleaved as read).
    pub fn console(&self) -> Vec<String> {
        self.console
            .lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Waits up to `timeout` for a console line matching `pred`.
    pub fn wait_for_line(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut g = self
            .console
            .lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if let Some(l) = g.iter().find(|l| pred(l)) {
                return Some(l.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            g = self
                .console
                .grew
                .wait_timeout(g, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Waits up to `timeout` for the kernel to exit. On timeout the process
    /// group is killed and `Err` says so; the console is complete either
    /// way once this returns.
    ///
    /// # Errors
    ///
    /// A description of the timeout or of the failed wait.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + timeout;
        let result = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Ok(s),
                Ok(None) if Instant::now() >= deadline => {
                    self.kill();
                    break Err(format!("UML still running after {timeout:?}: killed"));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => {
                    self.kill();
                    break Err(format!("waiting for UML: {e}"));
                }
            }
        };
        // UML's helper processes share the group; make sure none holds the
        // console pipes open, then collect the last lines.
        kill_group(self.child.id());
        for r in self.readers.drain(..) {
            let _ignored = r.join();
        }
        if let Ok(s) = &result {
            self.status = Some(*s);
        }
        result
    }

    /// A handle that can kill the kernel's process group from another
    /// thread (to simulate a guest dying mid-transfer).
    pub fn killer(&self) -> Killer {
        Killer {
            pid: self.child.id(),
        }
    }

    /// Whether the kernel was killed by us (timeout or drop).
    pub fn was_killed(&self) -> bool {
        self.killed
    }

    /// Kills the whole process group now.
    pub fn kill(&mut self) {
        self.killed = true;
        kill_group(self.child.id());
        let _ignored = self.child.wait();
    }
}

impl Drop for Uml {
    fn drop(&mut self) {
        if self.status.is_none() {
            self.kill();
            for r in self.readers.drain(..) {
                let _ignored = r.join();
            }
        }
    }
}

/// Kills a [`Uml`]'s process group; see [`Uml::killer`].
#[derive(Debug, Clone, Copy)]
pub struct Killer {
    pid: u32,
}

impl Killer {
    /// Sends `SIGKILL` to the whole process group.
    pub fn kill(&self) {
        kill_group(self.pid);
    }
}

fn kill_group(pid: u32) {
    if let Ok(pgid) = libc::pid_t::try_from(pid) {
        if pgid > 0 {
            // SAFETY: kill has no memory-safety preconditions; `-pgid`
            // names the process group we created for this child
            // (`process_group(0)` makes its id the group id).
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
}

/// One `PASS name` / `FAIL name ...` line of the guest's init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether it passed.
    pub pass: bool,
    /// The rest of the line.
    pub what: String,
}

/// The `PASS`/`FAIL` lines of a console, in order.
pub fn verdicts(console: &[String]) -> Vec<Verdict> {
    console
        .iter()
        .filter_map(|l| {
            let l = l.trim_start();
            l.strip_prefix("PASS ")
                .map(|w| (true, w))
                .or_else(|| l.strip_prefix("FAIL ").map(|w| (false, w)))
                .map(|(pass, w)| Verdict {
                    pass,
                    what: w.trim().to_owned(),
                })
        })
        .collect()
}

/// Console lines that show the kernel misbehaving: `BUG:`, `WARNING:`
/// (except the known one from `virt-pci.c`, docs/linux-peer.md "Step 2"),
/// `segfault`, `Kernel panic`, `Oops`.
pub fn kernel_problems(console: &[String]) -> Vec<String> {
    console
        .iter()
        .filter(|l| {
            l.contains("BUG:")
                || (l.contains("WARNING:") && !l.contains("virt-pci.c"))
                || l.contains("segfault")
                || l.contains("Kernel panic")
                || l.contains("Oops")
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_newc_entries_are_aligned_and_terminated() {
        let mut c = Cpio::new();
        c.dir("bin").file("init", 0o755, b"#!/bin/sh\n");
        let b = c.finish();
        assert_eq!(&b[..6], b"070701");
        assert_eq!(b.len() % 4, 0);
        // Second entry: header, "init\0" padded, data padded.
        // Header (110 bytes) + "bin\0" = 114, padded to 116.
        let second = 116;
        assert_eq!(&b[second..second + 6], b"070701");
        let mode = u32::from_str_radix(
            std::str::from_utf8(&b[second + 14..second + 22]).unwrap(),
            16,
        );
        assert_eq!(mode, Ok(S_IFREG | 0o755));
        let size = u32::from_str_radix(
            std::str::from_utf8(&b[second + 54..second + 62]).unwrap(),
            16,
        );
        assert_eq!(size, Ok(10));
        assert!(b.windows(10).any(|w| w == b"TRAILER!!!"));
    }

    #[test]
    fn static_elf_detection() {
        assert!(!is_static_elf(b"#!/bin/sh"));
        assert!(!is_static_elf(&[]));
        // A minimal ELF64 header with one PT_LOAD program header.
        let mut elf = vec![0u8; 64 + 56];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        elf[64..68].copy_from_slice(&1u32.to_le_bytes());
        assert!(is_static_elf(&elf));
        elf[64..68].copy_from_slice(&3u32.to_le_bytes());
        assert!(!is_static_elf(&elf));
        // Program headers past the end: not trusted.
        elf[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        assert!(!is_static_elf(&elf));
    }

    #[test]
    fn verdicts_and_problems_are_parsed_from_console_lines() {
        let lines: Vec<String> = [
            "PASS tty-created",
            "  FAIL echo got nothing",
            "PASSWORD not a verdict",
            "WARNING: CPU: 0 PID: 1 at arch/um/drivers/virt-pci.c:1005 um_pci_init",
            "WARNING: CPU: 0 PID: 9 at kernel/foo.c:1",
            "init[42]: segfault at 0",
            "BUG: scheduling while atomic",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let v = verdicts(&lines);
        assert_eq!(v.len(), 2);
        assert!(v[0].pass && v[0].what == "tty-created");
        assert!(!v[1].pass && v[1].what == "echo got nothing");
        let p = kernel_problems(&lines);
        assert_eq!(p.len(), 3);
        assert!(p.iter().all(|l| !l.contains("virt-pci")));
    }
}
