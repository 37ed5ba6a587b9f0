//! A text log into the resource table's trace buffer.
//!
//! The table's `fw_rsc_trace` entry (shared/docs/hw/rpmsg-wire.md §3.2)
//! names a buffer in the remote's memory; Linux shows it in debugfs as
//! `remoteproc<N>/trace0`, reading it as a NUL-terminated string. [`TraceLog`]
//! writes text there through a [`SharedMemory`] window, always keeps a NUL
//! after the last byte written, cleans the lines it wrote (so a host behind
//! a non-coherent cache reads them), and wraps to the start when full (the
//! host then shows the newest text, up to the NUL).
#![deny(unsafe_code)]

use core::fmt;

use ipc_traits::shm::SharedMemory;

/// A `core::fmt::Write` log over a trace buffer window.
///
/// # Examples
///
/// ```
/// use core::ptr::NonNull;
/// use fw_common::mem::SharedArea;
/// use fw_common::trace::TraceLog;
/// use ipc_traits::cache::Coherent;
/// use ipc_traits::shm::RawRegion;
///
/// static TRACE: SharedArea<64> = SharedArea::new();
/// let base = NonNull::new(TRACE.as_ptr()).unwrap();
/// // SAFETY: TRACE is only reached through this window.
/// let mem = unsafe { RawRegion::new(base, 64, 0x2000_0000, Coherent) }.unwrap();
/// let mut log = TraceLog::new(&mem);
/// log.line(format_args!("booted, {} vrings", 2));
/// let mut text = [0u8; 16];
/// ipc_traits::shm::SharedMemory::read(&mem, 0, &mut text).unwrap();
/// assert_eq!(&text, b"booted, 2 vrings");
/// ```
#[derive(Debug)]
pub struct TraceLog<'m, M> {
    mem: &'m M,
    cursor: usize,
    wraps: u32,
    failed: u32,
}

impl<'m, M: SharedMemory> TraceLog<'m, M> {
    /// A log over the whole window `mem` (at least 2 bytes: text and its
    /// NUL), starting empty.
    pub fn new(mem: &'m M) -> Self {
        let log = Self {
            mem,
            cursor: 0,
            wraps: 0,
            failed: 0,
        };
        log.terminate();
        log
    }

    /// A log over `mem` that continues after the text already there (up to
    /// its first NUL): for a panic handler that reports into the trace
    /// buffer the firmware was already using.
    pub fn append(mem: &'m M) -> Self {
        let cap = mem.len().saturating_sub(1);
        let mut cursor = 0;
        let mut chunk = [0u8; 32];
        while cursor < cap {
            let n = chunk.len().min(cap - cursor);
            if mem.read(cursor, &mut chunk[..n]).is_err() {
                break;
            }
            match chunk[..n].iter().position(|&b| b == 0) {
                Some(p) => {
                    cursor += p;
                    break;
                }
                None => cursor += n,
            }
        }
        let log = Self {
            mem,
            cursor: cursor.min(cap),
            wraps: 0,
            failed: 0,
        };
        log.terminate();
        log
    }

    /// Writes `args` and a newline. Never fails: a memory error is counted
    /// in [`TraceLog::failed`].
    pub fn line(&mut self, args: fmt::Arguments<'_>) {
        use fmt::Write as _;
        self.write_fmt(args).unwrap_or(());
        self.write_str("\n").unwrap_or(());
    }

    /// Bytes written since the last wrap.
    pub fn len(&self) -> usize {
        self.cursor
    }

    /// Whether nothing was written since the last wrap.
    pub fn is_empty(&self) -> bool {
        self.cursor == 0
    }

    /// Times the log wrapped to the start.
    pub fn wraps(&self) -> u32 {
        self.wraps
    }

    /// Writes that failed (a memory error; the text is lost, never a panic).
    pub fn failed(&self) -> u32 {
        self.failed
    }

    fn capacity(&self) -> usize {
        self.mem.len().saturating_sub(1)
    }

    fn terminate(&self) -> bool {
        self.put(self.cursor, &[0])
    }

    /// Writes and cleans; `false` on a memory error.
    fn put(&self, at: usize, bytes: &[u8]) -> bool {
        if self.mem.write(at, bytes).is_err() {
            return false;
        }
        match self.mem.covering_lines(at, bytes.len()) {
            Ok((start, len)) => self.mem.clean(start, len).is_ok(),
            Err(_) => false,
        }
    }
}

impl<M: SharedMemory> fmt::Write for TraceLog<'_, M> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let cap = self.capacity();
        if cap == 0 {
            return Ok(());
        }
        let mut rest = s.as_bytes();
        // Longer than the buffer: only the tail can survive anyway.
        if rest.len() > cap {
            rest = &rest[rest.len() - cap..];
        }
        while !rest.is_empty() {
            if self.cursor >= cap {
                self.cursor = 0;
                self.wraps = self.wraps.wrapping_add(1);
            }
            let n = rest.len().min(cap - self.cursor);
            if !self.put(self.cursor, &rest[..n]) {
                self.failed = self.failed.wrapping_add(1);
                return Ok(());
            }
            self.cursor += n;
            rest = &rest[n..];
        }
        if !self.terminate() {
            self.failed = self.failed.wrapping_add(1);
        }
        Ok(())
    }
}
