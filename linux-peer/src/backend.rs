//! The device side of one vhost-user connection: a state machine over the
//! requests ([`Backend`]), the loop that serves a socket with it
//! ([`serve`]), and a thread that owns the socket and lets the data path
//! wait until the rings are set up ([`Server`]).
//!
//! # What the frontend must send before the rings are [`Ready`]
//!
//! The sequence UML's `virtio_uml` sends (docs/linux-peer.md, "Step 3b"):
//! `SET_OWNER`, `GET_FEATURES`, `GET_PROTOCOL_FEATURES`,
//! `SET_PROTOCOL_FEATURES`, `SET_BACKEND_REQ_FD`, `SET_FEATURES`,
//! `SET_MEM_TABLE`, then per queue `SET_VRING_CALL`, `SET_VRING_NUM`,
//! `SET_VRING_BASE`, `SET_VRING_ADDR`, then per queue `SET_VRING_KICK`,
//! `SET_VRING_ENABLE 1`. The rings are ready when every queue has a size,
//! addresses inside one mapped region, a kick and a call descriptor, and is
//! enabled.
//!
//! There is no "driver OK" over the socket (pitfall 7): a device must not
//! put anything on a ring before the driver's first kick on it. That wait
//! belongs to the data path ([`crate::Kicks::wait_for`]).
//!
//! # Validation
//!
//! Every request is checked before it changes anything: payload size and
//! descriptor count ([`Message::parse`]), queue index, queue size (a power
//! of two up to [`BackendConfig::max_queue_size`]), features within what was
//! offered, memory regions (file large enough, page-aligned offset), ring
//! areas aligned and wholly inside one region. The first violation fails
//! the connection with a typed [`Error`]; when the frontend asked for an
//! acknowledgement it gets a non-zero one first, so UML reports
//! `slave reports error: 1` instead of hanging.
#![deny(unsafe_code)]

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::doorbell::{Calls, Kicks};
use crate::error::Error;
use crate::memory::{GuestMemory, SharedRegion};
use crate::protocol::{
    Header, Message, ProtocolError, Request, RingPart, VringAddr, HEADER_SIZE, MAX_PAYLOAD,
    PROTOCOL_F_BACKEND_REQ, PROTOCOL_F_REPLY_ACK, VHOST_USER_F_PROTOCOL_FEATURES,
    VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RPMSG_F_NS,
};
use crate::sys;

/// What the device offers and accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendConfig {
    /// Virtio features offered (`VHOST_USER_F_PROTOCOL_FEATURES` is added).
    pub features: u64,
    /// Protocol features offered.
    pub protocol_features: u64,
    /// Number of queues (at most 32).
    pub queues: u8,
    /// Largest queue size accepted.
    pub max_queue_size: u16,
}

impl BackendConfig {
    /// A virtio rpmsg device as docs/linux-peer.md ("Step 3b") offered it:
    /// features `VIRTIO_RPMSG_F_NS | VIRTIO_F_VERSION_1` (plus protocol
    /// features, giving 0x1_4000_0001), protocol features
    /// `REPLY_ACK | BACKEND_REQ` (0x28), two queues (0: RX, device to
    /// driver; 1: TX), sizes up to 256 (UML's `MAX_SUPPORTED_QUEUE_SIZE`).
    pub const fn rpmsg() -> Self {
        Self {
            features: VIRTIO_RPMSG_F_NS | VIRTIO_F_VERSION_1,
            protocol_features: PROTOCOL_F_REPLY_ACK | PROTOCOL_F_BACKEND_REQ,
            queues: 2,
            max_queue_size: 256,
        }
    }

    /// The same, also offering `VIRTIO_RING_F_EVENT_IDX` (bit 29). Linux
    /// keeps it (`vring_transport_features`), so both rings then use
    /// `used_event` / `avail_event`; [`crate::remote_config`] follows what
    /// was negotiated.
    #[must_use]
    pub const fn with_event_idx(mut self) -> Self {
        self.features |= VIRTIO_RING_F_EVENT_IDX;
        self
    }

    /// The features offered in `GET_FEATURES`.
    pub const fn offered_features(&self) -> u64 {
        self.features | VHOST_USER_F_PROTOCOL_FEATURES
    }
}

#[derive(Debug, Default)]
struct Queue {
    num: Option<u16>,
    base: u16,
    addr: Option<VringAddr>,
    kick: Option<OwnedFd>,
    call: Option<OwnedFd>,
    err: Option<OwnedFd>,
    enabled: bool,
}

/// Where one queue's ring lives, as window offsets in [`Ready::memory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// The queue index.
    pub index: u8,
    /// Entries (`SET_VRING_NUM`).
    pub num: u16,
    /// The first available index to consume (`SET_VRING_BASE`).
    pub base: u16,
    /// Descriptor table offset.
    pub desc: usize,
    /// Available ring offset.
    pub avail: usize,
    /// Used ring offset.
    pub used: usize,
}

/// Everything the data path needs once the rings are set up.
#[derive(Debug)]
pub struct Ready {
    /// Virtio features the driver accepted.
    pub features: u64,
    /// Protocol features agreed.
    pub protocol_features: u64,
    /// The guest memory region all rings live in: a
    /// [`SharedMemory`](ipc_traits::shm::SharedMemory) window whose peer
    /// base is its guest physical address. Clones share the mapping.
    pub memory: SharedRegion,
    /// Each queue's ring, in queue order.
    pub queues: Vec<QueueConfig>,
    /// The kick descriptors (driver to device).
    pub kicks: Kicks,
    /// The call descriptors (device to driver).
    pub calls: Calls,
}

/// The connection state: what each request set so far.
#[derive(Debug)]
pub struct Backend {
    config: BackendConfig,
    owner: bool,
    features: Option<u64>,
    protocol_features: Option<u64>,
    memory: Option<Arc<GuestMemory>>,
    backend_req: Option<OwnedFd>,
    queues: Vec<Queue>,
    log: Vec<Request>,
}

/// What to send back for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Nothing (an acknowledgement is added when asked for).
    None,
    /// A u64 payload.
    U64(u64),
    /// A vring state payload (index, value).
    State(u32, u32),
}

impl Backend {
    /// A fresh connection state.
    pub fn new(config: BackendConfig) -> Self {
        let queues = usize::from(config.queues.min(32));
        Self {
            config,
            owner: false,
            features: None,
            protocol_features: None,
            memory: None,
            backend_req: None,
            queues: (0..queues).map(|_| Queue::default()).collect(),
            log: Vec::new(),
        }
    }

    /// The requests handled so far, in order.
    pub fn log(&self) -> &[Request] {
        &self.log
    }

    /// Whether queue `index` is enabled.
    pub fn is_enabled(&self, index: usize) -> bool {
        self.queues.get(index).is_some_and(|q| q.enabled)
    }

    /// Whether the backend-request channel is held (UML treats its closing
    /// as a disconnect: pitfall 4).
    pub fn holds_backend_req(&self) -> bool {
        self.backend_req.is_some()
    }

    fn queue(&self, index: u32) -> Result<u8, ProtocolError> {
        match u8::try_from(index) {
            Ok(i) if usize::from(i) < self.queues.len() => Ok(i),
            _ => Err(ProtocolError::QueueIndexOutOfRange {
                index,
                queues: self.config.queues,
            }),
        }
    }

    fn queue_index(&self, index: u8) -> Result<u8, ProtocolError> {
        self.queue(u32::from(index))
    }

    /// Handles one parsed request with the descriptors that came with it
    /// (their count was checked by [`Message::parse`]).
    ///
    /// # Errors
    ///
    /// The request is refused; nothing changed.
    pub fn handle(&mut self, msg: Message, fds: Vec<OwnedFd>) -> Result<Reply, Error> {
        let request = msg.request();
        let mut fds = fds.into_iter();
        let reply = match msg {
            Message::GetFeatures => Reply::U64(self.config.offered_features()),
            Message::SetFeatures(f) => {
                let offered = self.config.offered_features();
                if f & !offered != 0 {
                    return Err(ProtocolError::UnofferedFeatures { offered, set: f }.into());
                }
                self.features = Some(f);
                Reply::None
            }
            Message::SetOwner => {
                self.owner = true;
                Reply::None
            }
            Message::ResetOwner => {
                self.owner = false;
                Reply::None
            }
            Message::GetProtocolFeatures => Reply::U64(self.config.protocol_features),
            Message::SetProtocolFeatures(f) => {
                let offered = self.config.protocol_features;
                if f & !offered != 0 {
                    return Err(ProtocolError::UnofferedProtocolFeatures { offered, set: f }.into());
                }
                self.protocol_features = Some(f);
                Reply::None
            }
            Message::GetQueueNum => Reply::U64(u64::from(self.config.queues)),
            Message::SetMemTable(regions) => {
                let mem = GuestMemory::map(&regions, fds.by_ref().collect())?;
                self.memory = Some(Arc::new(mem));
                Reply::None
            }
            Message::SetBackendReqFd => {
                self.backend_req = fds.next();
                Reply::None
            }
            Message::SetVringNum(s) => {
                let i = self.queue(s.index)?;
                let ok = s.num.is_power_of_two() && s.num <= u32::from(self.config.max_queue_size);
                if !ok {
                    return Err(ProtocolError::BadQueueSize {
                        index: i,
                        num: s.num,
                    }
                    .into());
                }
                self.queues[usize::from(i)].num = Some(s.num as u16);
                Reply::None
            }
            Message::SetVringBase(s) => {
                let i = self.queue(s.index)?;
                let base = u16::try_from(s.num).map_err(|_| ProtocolError::BadVringBase {
                    index: i,
                    base: s.num,
                })?;
                self.queues[usize::from(i)].base = base;
                Reply::None
            }
            Message::GetVringBase(s) => {
                // Stops the queue. The reply is the base last set: the data
                // path owns the live index and UML never asks.
                let i = self.queue(s.index)?;
                let q = &mut self.queues[usize::from(i)];
                q.enabled = false;
                Reply::State(u32::from(i), u32::from(q.base))
            }
            Message::SetVringAddr(a) => {
                let i = self.queue(a.index)?;
                let num = self.queues[usize::from(i)]
                    .num
                    .ok_or(ProtocolError::QueueSizeUnset { index: i })?;
                let mem = self.memory.as_deref().ok_or(ProtocolError::NoMemoryTable)?;
                ring_offsets(mem, i, num, &a)?;
                self.queues[usize::from(i)].addr = Some(a);
                Reply::None
            }
            Message::SetVringKick(i) => {
                let i = self.queue_index(i)?;
                self.queues[usize::from(i)].kick = fds.next();
                Reply::None
            }
            Message::SetVringCall(i) => {
                let i = self.queue_index(i)?;
                self.queues[usize::from(i)].call = fds.next();
                Reply::None
            }
            Message::SetVringErr(i) => {
                let i = self.queue_index(i)?;
                self.queues[usize::from(i)].err = fds.next();
                Reply::None
            }
            Message::SetVringEnable(s) => {
                let i = self.queue(s.index)?;
                if s.num > 1 {
                    return Err(ProtocolError::BadEnable {
                        index: i,
                        value: s.num,
                    }
                    .into());
                }
                self.queues[usize::from(i)].enabled = s.num == 1;
                Reply::None
            }
        };
        self.log.push(request);
        Ok(reply)
    }

    /// Whether every queue is set up and enabled.
    pub fn is_ready(&self) -> bool {
        self.features.is_some()
            && self.memory.is_some()
            && self.queues.iter().all(|q| {
                q.enabled
                    && q.num.is_some()
                    && q.addr.is_some()
                    && q.kick.is_some()
                    && q.call.is_some()
            })
    }

    /// The rings and doorbells, if [`Backend::is_ready`]; the descriptors
    /// are duplicated.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::BadRingLayout`] if the rings lie in different
    /// regions (or no longer fit the memory), [`Error::Io`] if a descriptor
    /// cannot be duplicated.
    pub fn ready(&self) -> Result<Option<Ready>, Error> {
        if !self.is_ready() {
            return Ok(None);
        }
        let (Some(mem), Some(features)) = (self.memory.clone(), self.features) else {
            return Ok(None);
        };
        let mut region = None;
        let mut queues = Vec::new();
        let mut kicks = Vec::new();
        let mut calls = Vec::new();
        for (i, q) in self.queues.iter().enumerate() {
            let (Some(num), Some(addr), Some(kick), Some(call)) = (q.num, q.addr, &q.kick, &q.call)
            else {
                return Ok(None);
            };
            let index = u8::try_from(i).unwrap_or(u8::MAX);
            let (r, [desc, avail, used]) = ring_offsets(&mem, index, num, &addr)?;
            if *region.get_or_insert(r) != r {
                return Err(ProtocolError::BadRingLayout { index }.into());
            }
            queues.push(QueueConfig {
                index,
                num,
                base: q.base,
                desc,
                avail,
                used,
            });
            let dup = |fd: &OwnedFd| {
                fd.try_clone()
                    .map(File::from)
                    .map_err(|e| Error::io("dup doorbell", &e))
            };
            kicks.push(dup(kick)?);
            calls.push(dup(call)?);
        }
        let memory = SharedRegion::new(mem, region.unwrap_or(0))
            .ok_or(ProtocolError::BadRingLayout { index: 0 })?;
        Ok(Some(Ready {
            features,
            protocol_features: self.protocol_features.unwrap_or(0),
            memory,
            queues,
            kicks: Kicks::new(kicks),
            calls: Calls::new(calls),
        }))
    }
}

/// Checks one ring against the memory and returns its region and the
/// window offsets of the descriptor table, available and used rings.
fn ring_offsets(
    mem: &GuestMemory,
    index: u8,
    num: u16,
    a: &VringAddr,
) -> Result<(usize, [usize; 3]), ProtocolError> {
    let n = usize::from(num);
    let parts = [
        (RingPart::Desc, a.desc, 16 * n, 16),
        (RingPart::Avail, a.avail, 6 + 2 * n, 2),
        (RingPart::Used, a.used, 6 + 8 * n, 4),
    ];
    let mut region = None;
    let mut offsets = [0; 3];
    for (k, (part, addr, len, align)) in parts.into_iter().enumerate() {
        if addr % align != 0 {
            return Err(ProtocolError::RingMisaligned { index, part, addr });
        }
        let (r, off) = mem
            .find_user(addr, len)
            .ok_or(ProtocolError::RingOutsideMemory {
                index,
                part,
                addr,
                len,
            })?;
        if *region.get_or_insert(r) != r {
            return Err(ProtocolError::BadRingLayout { index });
        }
        offsets[k] = off;
    }
    for x in 0..3 {
        for y in x + 1..3 {
            let (ox, lx) = (offsets[x], parts[x].2);
            let (oy, ly) = (offsets[y], parts[y].2);
            if ox < oy + ly && oy < ox + lx {
                return Err(ProtocolError::BadRingLayout { index });
            }
        }
    }
    Ok((region.unwrap_or(0), offsets))
}

// ---------------------------------------------------------------------------
// Serving a socket
// ---------------------------------------------------------------------------

/// How long the rest of a message may take once its first byte arrived.
const MESSAGE_DEADLINE: Duration = Duration::from_secs(5);
/// How often a waiting loop looks at the stop flag.
const SLICE: Duration = Duration::from_millis(50);

/// Reads `buf.len()` bytes (descriptors that come along are appended to
/// `fds`), giving up at `deadline`. `Ok(false)` if the connection closed
/// before the first byte.
fn read_full(
    stream: &UnixStream,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    deadline: Instant,
    total: usize,
    done_before: usize,
) -> Result<bool, Error> {
    let mut got = 0;
    while got < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Stalled);
        }
        let ready = sys::poll_readable(&[stream.as_fd()], left.min(SLICE))
            .map_err(|e| Error::io("poll socket", &e))?;
        if !ready.first().copied().unwrap_or(false) {
            continue;
        }
        let r = sys::recv_with_fds(stream.as_fd(), &mut buf[got..])
            .map_err(|e| Error::io("recvmsg", &e))?;
        fds.extend(r.fds);
        if r.fds_truncated {
            return Err(ProtocolError::FdsTruncated.into());
        }
        if r.len == 0 {
            if got == 0 && done_before == 0 {
                return Ok(false);
            }
            return Err(Error::Truncated {
                got: done_before + got,
                expected: total,
            });
        }
        got += r.len;
    }
    Ok(true)
}

fn send_all(stream: &UnixStream, bytes: &[u8]) -> Result<(), Error> {
    let mut sent = 0;
    while sent < bytes.len() {
        let n = sys::send_nosignal(stream.as_fd(), &bytes[sent..])
            .map_err(|e| Error::io("send reply", &e))?;
        if n == 0 {
            return Err(Error::Closed);
        }
        sent += n;
    }
    Ok(())
}

fn send_reply(stream: &UnixStream, request: Request, reply: Reply) -> Result<(), Error> {
    let mut out = Vec::with_capacity(HEADER_SIZE + 8);
    match reply {
        Reply::None => return Ok(()),
        Reply::U64(v) => {
            out.extend_from_slice(&Header::reply(request, 8).encode());
            out.extend_from_slice(&v.to_ne_bytes());
        }
        Reply::State(i, v) => {
            out.extend_from_slice(&Header::reply(request, 8).encode());
            out.extend_from_slice(&i.to_ne_bytes());
            out.extend_from_slice(&v.to_ne_bytes());
        }
    }
    send_all(stream, &out)
}

/// Something that owns a [`Backend`] behind a lock (the [`Server`]'s shared
/// state, or a plain mutex in tests).
pub trait BackendCell {
    /// Runs `f` on the backend; called once per request.
    fn with<R>(&self, f: impl FnOnce(&mut Backend) -> R) -> R;
}

impl BackendCell for Mutex<Backend> {
    fn with<R>(&self, f: impl FnOnce(&mut Backend) -> R) -> R {
        let mut g = self
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut g)
    }
}

/// Serves requests on `stream` until the frontend closes it (`Ok`), a
/// request is refused or the socket fails (`Err`), or `stop` is set
/// ([`Error::Stopped`]). Waits are sliced so `stop` is seen within 50 ms.
///
/// # Errors
///
/// See above.
pub fn serve(
    stream: &UnixStream,
    backend: &impl BackendCell,
    stop: &AtomicBool,
) -> Result<(), Error> {
    loop {
        // Wait for the first byte of the next message, watching `stop`.
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(Error::Stopped);
            }
            let ready = sys::poll_readable(&[stream.as_fd()], SLICE)
                .map_err(|e| Error::io("poll socket", &e))?;
            if ready.first().copied().unwrap_or(false) {
                break;
            }
        }
        let deadline = Instant::now() + MESSAGE_DEADLINE;
        let mut fds = Vec::new();
        let mut head = [0u8; HEADER_SIZE];
        if !read_full(stream, &mut head, &mut fds, deadline, HEADER_SIZE, 0)? {
            return Ok(());
        }
        let header = Header::decode(head);
        header.check()?;
        let size = header.size as usize;
        let mut payload = [0u8; MAX_PAYLOAD];
        let payload = &mut payload[..size];
        if !read_full(
            stream,
            payload,
            &mut fds,
            deadline,
            HEADER_SIZE + size,
            HEADER_SIZE,
        )? {
            return Err(Error::Truncated {
                got: HEADER_SIZE,
                expected: HEADER_SIZE + size,
            });
        }
        let request = Request::from_code(header.request);
        let result = Message::parse(&header, payload, fds.len())
            .map_err(Error::from)
            .and_then(|msg| backend.with(|b| b.handle(msg, fds)));
        match (result, request) {
            (Ok(reply), Some(request)) => {
                send_reply(stream, request, reply)?;
                if header.need_reply() && !request.has_reply() {
                    send_reply(stream, request, Reply::U64(0))?;
                }
            }
            (Err(e), request) => {
                if let Some(request) = request.filter(|r| header.need_reply() && !r.has_reply()) {
                    // Best effort: the connection fails either way.
                    let _ignored = send_reply(stream, request, Reply::U64(1));
                }
                return Err(e);
            }
            (Ok(_), None) => {
                return Err(ProtocolError::UnknownRequest {
                    code: header.request,
                }
                .into())
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The server thread
// ---------------------------------------------------------------------------

#[derive(Debug)]
enum Phase {
    Listening,
    Connected,
    Closed(Result<(), Error>),
}

#[derive(Debug)]
struct Inner {
    backend: Backend,
    phase: Phase,
}

#[derive(Debug)]
struct Shared {
    inner: Mutex<Inner>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn close(&self, result: Result<(), Error>) {
        let mut g = self.lock();
        // Drop the connection's descriptors and mappings now (the data path
        // keeps its own duplicates).
        let config = g.backend.config;
        let log = std::mem::take(&mut g.backend.log);
        g.backend = Backend::new(config);
        g.backend.log = log;
        g.phase = Phase::Closed(result);
        self.changed.notify_all();
    }
}

impl BackendCell for Shared {
    fn with<R>(&self, f: impl FnOnce(&mut Backend) -> R) -> R {
        let mut g = self.lock();
        let r = f(&mut g.backend);
        self.changed.notify_all();
        r
    }
}

/// A vhost-user socket served by a thread: accepts one connection and
/// serves it until it closes, fails, or the server is stopped (also on
/// drop). Every wait on it is bounded.
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl Server {
    /// Binds a socket at `path` (removing a stale one) and starts serving.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the socket cannot be bound or the thread not
    /// started.
    pub fn listen(path: &Path, config: BackendConfig) -> Result<Self, Error> {
        let _ignored = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).map_err(|e| Error::io("bind socket", &e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("socket nonblocking", &e))?;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                backend: Backend::new(config),
                phase: Phase::Listening,
            }),
            changed: Condvar::new(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (Arc::clone(&shared), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("vhost-user".into())
            .spawn(move || {
                let result = accept_and_serve(&listener, &s, &st);
                s.close(result);
            })
            .map_err(|e| Error::io("spawn server thread", &e))?;
        Ok(Self {
            shared,
            stop,
            thread: Some(thread),
            path: path.to_owned(),
        })
    }

    /// The socket path (what `virtio_uml.device=` names).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits up to `timeout` until every queue is set up and enabled.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`]; the connection's own error if it failed first;
    /// [`Error::Closed`] if it closed cleanly first.
    pub fn wait_ready(&self, timeout: Duration) -> Result<Ready, Error> {
        let deadline = Instant::now() + timeout;
        let mut g = self.shared.lock();
        loop {
            match &g.phase {
                Phase::Closed(Err(e)) => return Err(e.clone()),
                Phase::Closed(Ok(())) => return Err(Error::Closed),
                _ => {}
            }
            if let Some(r) = g.backend.ready()? {
                return Ok(r);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout {
                    waiting_for: "the vhost-user rings",
                });
            }
            g = self
                .shared
                .changed
                .wait_timeout(g, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Waits up to `timeout` for the connection to end; its outcome.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], or the connection's own error.
    pub fn wait_closed(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let mut g = self.shared.lock();
        loop {
            if let Phase::Closed(r) = &g.phase {
                return r.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout {
                    waiting_for: "the vhost-user connection to close",
                });
            }
            g = self
                .shared
                .changed
                .wait_timeout(g, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// The requests served so far, in order.
    pub fn log(&self) -> Vec<Request> {
        self.shared.lock().backend.log.clone()
    }

    /// Whether a frontend connected (and the connection is still open).
    pub fn is_connected(&self) -> bool {
        matches!(self.shared.lock().phase, Phase::Connected)
    }

    /// Whether queue `index` is currently enabled.
    pub fn is_enabled(&self, index: usize) -> bool {
        self.shared.lock().backend.is_enabled(index)
    }

    /// Whether the backend-request channel is held.
    pub fn holds_backend_req(&self) -> bool {
        self.shared.lock().backend.holds_backend_req()
    }

    /// Stops serving (within 50 ms) and joins the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ignored = t.join();
        }
        let _ignored = std::fs::remove_file(&self.path);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_and_serve(
    listener: &UnixListener,
    shared: &Shared,
    stop: &AtomicBool,
) -> Result<(), Error> {
    let stream = loop {
        if stop.load(Ordering::Relaxed) {
            return Err(Error::Stopped);
        }
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let _ready = sys::poll_readable(&[listener.as_fd()], SLICE)
                    .map_err(|e| Error::io("poll listener", &e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("accept", &e)),
        }
    };
    stream
        .set_nonblocking(false)
        .map_err(|e| Error::io("socket blocking", &e))?;
    {
        let mut g = shared.lock();
        g.phase = Phase::Connected;
        shared.changed.notify_all();
    }
    serve(&stream, shared, stop)
}
