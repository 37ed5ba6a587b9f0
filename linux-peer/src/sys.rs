//! The few system calls std does not offer: `recvmsg` with `SCM_RIGHTS`,
//! `send` without `SIGPIPE`, `poll`, `mmap`/`munmap`, `fstat`, `eventfd`.
//!
//! Every function here is safe to call: the unsafe blocks only pass buffers
//! this module owns to the kernel, with their true lengths.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::time::Duration;

/// At most this many descriptors are accepted with one message
/// (`VHOST_MEMORY_BASELINE_NREGIONS`, the largest fd count any request
/// carries).
pub const MAX_FDS: usize = 8;

/// What one `recvmsg` returned.
#[derive(Debug)]
pub struct Received {
    /// Bytes read into the buffer (0: the peer closed the connection).
    pub len: usize,
    /// The descriptors that came with them (closed on drop).
    pub fds: Vec<OwnedFd>,
    /// The kernel had to drop descriptors: more than [`MAX_FDS`] came.
    pub fds_truncated: bool,
}

fn cvt(ret: isize) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// `recvmsg(fd, buf, MSG_CMSG_CLOEXEC)` with room for [`MAX_FDS`]
/// descriptors. Retries on `EINTR`.
pub fn recv_with_fds(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Received> {
    // u64 elements keep the control buffer aligned for `cmsghdr`.
    let mut control = [0u64; 16];
    let control_len = std::mem::size_of_val(&control);
    // SAFETY: CMSG_SPACE is a pure computation on its argument.
    let needed = unsafe { libc::CMSG_SPACE((MAX_FDS * std::mem::size_of::<RawFd>()) as u32) };
    debug_assert!(needed as usize <= control_len);
    loop {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: msghdr is plain data; all-zero is a valid empty value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control_len as _;
        // SAFETY: `msg` points at `iov` (which describes `buf`, valid for
        // `buf.len()` bytes) and at `control` (valid for `control_len`
        // bytes), all live across the call; the kernel writes only inside
        // them.
        let ret = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        let len = match cvt(ret) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut fds = Vec::new();
        // SAFETY: `msg` was filled by a successful recvmsg; the CMSG_*
        // macros walk `msg_control..msg_control + msg_controllen`, which lies
        // inside `control`.
        let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !cmsg.is_null() {
            // SAFETY: `cmsg` is non-null and points at a header inside
            // `control` (CMSG_FIRSTHDR/CMSG_NXTHDR check the bounds).
            let hdr = unsafe { cmsg.read_unaligned() };
            if hdr.cmsg_level == libc::SOL_SOCKET && hdr.cmsg_type == libc::SCM_RIGHTS {
                // SAFETY: pure computation.
                let header_len = unsafe { libc::CMSG_LEN(0) } as usize;
                let payload = (hdr.cmsg_len as usize).saturating_sub(header_len);
                let count = payload / std::mem::size_of::<RawFd>();
                // SAFETY: CMSG_DATA points at the payload of this header,
                // which holds `count` descriptors inside `control`.
                let data = unsafe { libc::CMSG_DATA(cmsg) }.cast::<RawFd>();
                for i in 0..count {
                    // SAFETY: `i < count`, inside the payload; unaligned
                    // read because CMSG_DATA alignment is only that of the
                    // header.
                    let raw = unsafe { data.add(i).read_unaligned() };
                    if raw >= 0 {
                        // SAFETY: SCM_RIGHTS installed `raw` in this process
                        // for us; nothing else owns it.
                        fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
                    }
                }
            }
            // SAFETY: as for CMSG_FIRSTHDR.
            cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
        }
        return Ok(Received {
            len,
            fds,
            fds_truncated: msg.msg_flags & libc::MSG_CTRUNC != 0,
        });
    }
}

/// `send(fd, buf, MSG_NOSIGNAL)`: a closed peer is `EPIPE`, not a signal.
/// Retries on `EINTR`; returns the bytes sent.
pub fn send_nosignal(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for `buf.len()` bytes of reads.
        let ret = unsafe {
            libc::send(
                fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        match cvt(ret) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

fn timeout_ms(timeout: Duration) -> libc::c_int {
    // Round up so a tiny non-zero timeout still waits.
    let ms = timeout.as_nanos().div_ceil(1_000_000);
    libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
}

/// Waits up to `timeout` until one of `fds` is readable (or hung up).
/// Returns one flag per descriptor. `EINTR` counts as "nothing yet".
pub fn poll_readable(fds: &[BorrowedFd<'_>], timeout: Duration) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `pfds` is a live array of `pfds.len()` pollfd entries.
    let ret = unsafe {
        libc::poll(
            pfds.as_mut_ptr(),
            pfds.len() as libc::nfds_t,
            timeout_ms(timeout),
        )
    };
    if ret < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(e);
    }
    Ok(pfds
        .iter()
        .map(|p| p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0)
        .collect())
}

/// The size of a memory page.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(v).ok().filter(|&v| v > 0).unwrap_or(4096)
}

/// What `fstat` says about a descriptor we are asked to map.
#[derive(Debug, Clone, Copy)]
pub struct FileInfo {
    /// A regular file (or memfd): the only kind whose size bounds a mapping.
    pub regular: bool,
    /// Its size in bytes.
    pub size: u64,
}

/// `fstat(fd)`.
pub fn file_info(fd: BorrowedFd<'_>) -> io::Result<FileInfo> {
    // SAFETY: `stat` is plain data; all-zero is valid.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a live, writable stat buffer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(FileInfo {
        regular: st.st_mode & libc::S_IFMT == libc::S_IFREG,
        size: u64::try_from(st.st_size).unwrap_or(0),
    })
}

/// A shared read-write mapping, unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; moving it between
// threads moves the ownership of the address range.
unsafe impl Send for Mapping {}
// SAFETY: `Mapping` hands out only its address; all accesses go through
// `ipc_traits::shm::RawRegion`, which is Sync.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// `mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, offset)`.
    ///
    /// The caller checks `len > 0` and that the file covers
    /// `offset..offset + len` (an access past its end raises `SIGBUS`).
    pub fn map_shared(fd: BorrowedFd<'_>, len: usize, offset: u64) -> io::Result<Self> {
        let off = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))?;
        // SAFETY: a fresh mapping chosen by the kernel (addr NULL) cannot
        // overlap memory Rust owns; the arguments are plain values.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                off,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        Ok(Self { ptr, len })
    }

    /// The first byte.
    pub fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a mapping has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr..ptr + len` is the mapping created in `map_shared`,
        // owned by this value; every user borrowed it from this value, so
        // none is left.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A fresh `eventfd(0, EFD_CLOEXEC)`, for tests and for frontends written
/// in Rust.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: no pointers involved.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends `buf` with `fds` attached (`SCM_RIGHTS`), for tests that play the
/// frontend.
pub fn send_with_fds(fd: BorrowedFd<'_>, buf: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr().cast_mut().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let data_len = std::mem::size_of_val(fds) as u32;
        msg.msg_control = control.as_mut_ptr().cast();
        // SAFETY: pure computation.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(data_len) } as _;
        // SAFETY: msg_control/msg_controllen describe `control`, which is
        // large enough for one header with MAX_FDS descriptors.
        let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        if cmsg.is_null() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: `cmsg` points at the start of `control`, which has room
        // for the header and `fds.len()` descriptors (checked above).
        unsafe {
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(data_len) as _;
            let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
            for (i, fd) in fds.iter().enumerate() {
                data.add(i).write_unaligned(fd.as_raw_fd());
            }
        }
    }
    loop {
        // SAFETY: `msg` describes `buf` and `control`, both live.
        let ret = unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        match cvt(ret) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}
