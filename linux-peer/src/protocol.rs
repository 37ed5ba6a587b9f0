//! vhost-user messages: header, the requests we serve, their payloads, and
//! the checks every one of them goes through.
//!
//! Byte layouts follow the vhost-user protocol as UML's
//! `arch/um/drivers/vhost_user.h` sends it (host byte order; this harness
//! runs on x86-64, so little-endian). The message set is the one
//! `docs/linux-peer.md` ("Step 3b") observed from UML's `virtio_uml`, plus
//! `RESET_OWNER`, `SET_VRING_ERR` and `GET_QUEUE_NUM`, which a frontend may
//! send with the same features. Anything else is
//! [`ProtocolError::UnknownRequest`].
//!
//! Parsing here is pure (no descriptors, no memory): [`Message::parse`]
//! checks the payload size, the descriptor count and every field that can
//! be checked without state; [`crate::backend`] checks the rest (queue
//! indices against the negotiated count, ring addresses against the mapped
//! memory).
#![deny(unsafe_code)]

use std::fmt;

/// Bytes of the message header (`request`, `flags`, `size`, each u32).
pub const HEADER_SIZE: usize = 12;
/// The largest payload accepted; anything bigger fails the connection
/// before it is read. The largest request we serve is `SET_MEM_TABLE` with
/// [`MAX_REGIONS`] regions (264 bytes).
pub const MAX_PAYLOAD: usize = 512;
/// The most memory regions one `SET_MEM_TABLE` may carry
/// (`VHOST_MEMORY_BASELINE_NREGIONS`).
pub const MAX_REGIONS: usize = 8;
/// Bytes of one region entry in `SET_MEM_TABLE`.
pub const REGION_SIZE: usize = 32;
/// Bytes before the first region entry (`nregions`, padding).
pub const MEM_TABLE_HEAD: usize = 8;

/// Header flags: protocol version 1 in bits 0..=1.
pub const FLAG_VERSION: u32 = 0x1;
/// Header flags: the version field.
pub const FLAG_VERSION_MASK: u32 = 0x3;
/// Header flags: this message is a reply.
pub const FLAG_REPLY: u32 = 0x4;
/// Header flags: the frontend wants an acknowledgement (`REPLY_ACK`).
pub const FLAG_NEED_REPLY: u32 = 0x8;

/// Virtio feature: `VIRTIO_RPMSG_F_NS`, the name service (bit 0).
pub const VIRTIO_RPMSG_F_NS: u64 = 1 << 0;
/// Virtio feature: `VIRTIO_RING_F_EVENT_IDX` (bit 29): notifications
/// through `used_event` / `avail_event` instead of the ring flags.
pub const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;
/// Virtio feature: `VIRTIO_F_VERSION_1` (bit 32): little-endian rings.
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
/// vhost-user feature: `VHOST_USER_F_PROTOCOL_FEATURES` (bit 30).
pub const VHOST_USER_F_PROTOCOL_FEATURES: u64 = 1 << 30;
/// Protocol feature: `REPLY_ACK` (bit 3).
pub const PROTOCOL_F_REPLY_ACK: u64 = 1 << 3;
/// Protocol feature: `BACKEND_REQ` (UML: `SLAVE_REQ`, bit 5). UML only
/// allocates the device's interrupt when it is negotiated
/// (docs/linux-peer.md, pitfall 3).
pub const PROTOCOL_F_BACKEND_REQ: u64 = 1 << 5;

/// `SET_VRING_KICK`/`CALL`/`ERR` payload: the queue index.
pub const VRING_IDX_MASK: u64 = 0xff;
/// `SET_VRING_KICK`/`CALL`/`ERR` payload: no descriptor attached.
pub const VRING_NOFD: u64 = 1 << 8;
/// `SET_VRING_ADDR` flags: dirty logging wanted (not supported).
pub const VRING_F_LOG: u32 = 1 << 0;

macro_rules! requests {
    ($( $(#[$m:meta])* $name:ident = $code:literal => $text:literal, )+) => {
        /// A request code we serve.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum Request {
            $( $(#[$m])* $name = $code, )+
        }

        impl Request {
            /// The request for `code`, if we serve it.
            pub const fn from_code(code: u32) -> Option<Self> {
                match code {
                    $( $code => Some(Self::$name), )+
                    _ => None,
                }
            }

            /// The protocol name (`VHOST_USER_` prefix dropped).
            pub const fn name(self) -> &'static str {
                match self { $( Self::$name => $text, )+ }
            }
        }
    };
}

requests! {
    /// Read the device's virtio features.
    GetFeatures = 1 => "GET_FEATURES",
    /// Acknowledge the features the driver accepted.
    SetFeatures = 2 => "SET_FEATURES",
    /// Claim the backend for this connection.
    SetOwner = 3 => "SET_OWNER",
    /// Give up ownership (deprecated, accepted).
    ResetOwner = 4 => "RESET_OWNER",
    /// The guest memory regions, one descriptor each.
    SetMemTable = 5 => "SET_MEM_TABLE",
    /// A queue's size.
    SetVringNum = 8 => "SET_VRING_NUM",
    /// A queue's descriptor, used and available ring addresses.
    SetVringAddr = 9 => "SET_VRING_ADDR",
    /// A queue's first available index.
    SetVringBase = 10 => "SET_VRING_BASE",
    /// Stop a queue and read back its available index.
    GetVringBase = 11 => "GET_VRING_BASE",
    /// The descriptor the driver kicks a queue through.
    SetVringKick = 12 => "SET_VRING_KICK",
    /// The descriptor the device signals used buffers through.
    SetVringCall = 13 => "SET_VRING_CALL",
    /// The descriptor the device reports queue errors through.
    SetVringErr = 14 => "SET_VRING_ERR",
    /// Read the protocol features.
    GetProtocolFeatures = 15 => "GET_PROTOCOL_FEATURES",
    /// Acknowledge the protocol features.
    SetProtocolFeatures = 16 => "SET_PROTOCOL_FEATURES",
    /// Read the number of queues.
    GetQueueNum = 17 => "GET_QUEUE_NUM",
    /// Enable or disable a queue.
    SetVringEnable = 18 => "SET_VRING_ENABLE",
    /// The backend-to-frontend request channel (UML: `SET_SLAVE_REQ_FD`).
    SetBackendReqFd = 21 => "SET_BACKEND_REQ_FD",
}

impl Request {
    /// Whether the request has a reply of its own (so `NEED_REPLY` adds
    /// no acknowledgement).
    pub const fn has_reply(self) -> bool {
        matches!(
            self,
            Self::GetFeatures | Self::GetProtocolFeatures | Self::GetQueueNum | Self::GetVringBase
        )
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A message header as read from the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The request code.
    pub request: u32,
    /// Version and reply flags.
    pub flags: u32,
    /// Payload bytes that follow.
    pub size: u32,
}

impl Header {
    /// Decodes the 12 header bytes.
    pub fn decode(b: [u8; HEADER_SIZE]) -> Self {
        let w = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Self {
            request: w(0),
            flags: w(4),
            size: w(8),
        }
    }

    /// Encodes the 12 header bytes.
    pub fn encode(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0; HEADER_SIZE];
        b[0..4].copy_from_slice(&self.request.to_ne_bytes());
        b[4..8].copy_from_slice(&self.flags.to_ne_bytes());
        b[8..12].copy_from_slice(&self.size.to_ne_bytes());
        b
    }

    /// Checks what can be checked before reading the payload: version 1,
    /// not a reply, payload at most [`MAX_PAYLOAD`].
    ///
    /// # Errors
    ///
    /// [`ProtocolError::BadVersion`], [`ProtocolError::UnexpectedReply`],
    /// [`ProtocolError::PayloadTooLarge`].
    pub fn check(&self) -> Result<(), ProtocolError> {
        if self.flags & FLAG_VERSION_MASK != FLAG_VERSION {
            return Err(ProtocolError::BadVersion { flags: self.flags });
        }
        if self.flags & FLAG_REPLY != 0 {
            return Err(ProtocolError::UnexpectedReply {
                request: self.request,
            });
        }
        if self.size as usize > MAX_PAYLOAD {
            return Err(ProtocolError::PayloadTooLarge { size: self.size });
        }
        Ok(())
    }

    /// Whether the frontend asked for an acknowledgement.
    pub fn need_reply(&self) -> bool {
        self.flags & FLAG_NEED_REPLY != 0
    }

    /// The header of a reply to `request` with `size` payload bytes: flags
    /// exactly `REPLY | VERSION` (0x5), which UML checks.
    pub fn reply(request: Request, size: u32) -> Self {
        Self {
            request: request as u32,
            flags: FLAG_REPLY | FLAG_VERSION,
            size,
        }
    }
}

/// One guest memory region of `SET_MEM_TABLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemRegion {
    /// Guest physical address of the first byte (what descriptors name).
    pub guest_addr: u64,
    /// Bytes in the region.
    pub size: u64,
    /// The frontend's virtual address of the first byte (what
    /// `SET_VRING_ADDR` names).
    pub user_addr: u64,
    /// Offset of the first byte in the region's file.
    pub mmap_offset: u64,
}

/// `SET_VRING_NUM`, `SET_VRING_BASE`, `GET_VRING_BASE`, `SET_VRING_ENABLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VringState {
    /// The queue.
    pub index: u32,
    /// The value.
    pub num: u32,
}

/// `SET_VRING_ADDR`, in the protocol's field order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VringAddr {
    /// The queue.
    pub index: u32,
    /// `VRING_F_LOG` or 0.
    pub flags: u32,
    /// Descriptor table, frontend virtual address.
    pub desc: u64,
    /// Used ring, frontend virtual address.
    pub used: u64,
    /// Available ring, frontend virtual address.
    pub avail: u64,
    /// Log address (ignored without `VRING_F_LOG`).
    pub log: u64,
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// `GET_FEATURES`.
    GetFeatures,
    /// `SET_FEATURES`.
    SetFeatures(u64),
    /// `SET_OWNER`.
    SetOwner,
    /// `RESET_OWNER`.
    ResetOwner,
    /// `SET_MEM_TABLE`: one descriptor per region came with it.
    SetMemTable(Vec<MemRegion>),
    /// `SET_VRING_NUM`.
    SetVringNum(VringState),
    /// `SET_VRING_ADDR`.
    SetVringAddr(VringAddr),
    /// `SET_VRING_BASE`.
    SetVringBase(VringState),
    /// `GET_VRING_BASE`.
    GetVringBase(VringState),
    /// `SET_VRING_KICK` for this queue (a descriptor came with it).
    SetVringKick(u8),
    /// `SET_VRING_CALL` for this queue (a descriptor came with it).
    SetVringCall(u8),
    /// `SET_VRING_ERR` for this queue (a descriptor came with it).
    SetVringErr(u8),
    /// `GET_PROTOCOL_FEATURES`.
    GetProtocolFeatures,
    /// `SET_PROTOCOL_FEATURES`.
    SetProtocolFeatures(u64),
    /// `GET_QUEUE_NUM`.
    GetQueueNum,
    /// `SET_VRING_ENABLE`.
    SetVringEnable(VringState),
    /// `SET_BACKEND_REQ_FD` (a descriptor came with it).
    SetBackendReqFd,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_ne_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(w)
}

fn ranges_overlap(a: u64, a_len: u64, b: u64, b_len: u64) -> bool {
    a < b.saturating_add(b_len) && b < a.saturating_add(a_len)
}

impl Message {
    /// Parses `payload` (exactly `header.size` bytes) of a request that
    /// came with `fds` descriptors.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::UnknownRequest`], [`ProtocolError::BadPayloadSize`],
    /// [`ProtocolError::BadFdCount`], [`ProtocolError::BadRegionCount`],
    /// [`ProtocolError::BadRegion`], [`ProtocolError::RegionsOverlap`],
    /// [`ProtocolError::BadVringFlags`], [`ProtocolError::NoFdUnsupported`],
    /// [`ProtocolError::LoggingUnsupported`].
    pub fn parse(header: &Header, payload: &[u8], fds: usize) -> Result<Self, ProtocolError> {
        let request = Request::from_code(header.request).ok_or(ProtocolError::UnknownRequest {
            code: header.request,
        })?;
        let size = |expected: usize| {
            if payload.len() == expected {
                Ok(())
            } else {
                Err(ProtocolError::BadPayloadSize {
                    request,
                    size: payload.len(),
                })
            }
        };
        let fd_count = |expected: usize| {
            if fds == expected {
                Ok(())
            } else {
                Err(ProtocolError::BadFdCount {
                    request,
                    got: fds,
                    expected,
                })
            }
        };
        let state = || -> Result<VringState, ProtocolError> {
            size(8)?;
            fd_count(0)?;
            Ok(VringState {
                index: u32_at(payload, 0),
                num: u32_at(payload, 4),
            })
        };
        let u64_payload = || -> Result<u64, ProtocolError> {
            size(8)?;
            fd_count(0)?;
            Ok(u64_at(payload, 0))
        };
        let no_payload = || -> Result<(), ProtocolError> {
            size(0)?;
            fd_count(0)
        };
        let vring_fd = || -> Result<u8, ProtocolError> {
            size(8)?;
            let v = u64_at(payload, 0);
            if v & !(VRING_IDX_MASK | VRING_NOFD) != 0 {
                return Err(ProtocolError::BadVringFlags { request, value: v });
            }
            if v & VRING_NOFD != 0 {
                // Polling mode or no interrupts: we rely on descriptors.
                fd_count(0)?;
                return Err(ProtocolError::NoFdUnsupported { request });
            }
            fd_count(1)?;
            Ok((v & VRING_IDX_MASK) as u8)
        };
        Ok(match request {
            Request::GetFeatures => no_payload().map(|()| Self::GetFeatures)?,
            Request::SetFeatures => Self::SetFeatures(u64_payload()?),
            Request::SetOwner => no_payload().map(|()| Self::SetOwner)?,
            Request::ResetOwner => no_payload().map(|()| Self::ResetOwner)?,
            Request::SetMemTable => Self::SetMemTable(parse_mem_table(payload, fds)?),
            Request::SetVringNum => Self::SetVringNum(state()?),
            Request::SetVringAddr => {
                size(40)?;
                fd_count(0)?;
                let a = VringAddr {
                    index: u32_at(payload, 0),
                    flags: u32_at(payload, 4),
                    desc: u64_at(payload, 8),
                    used: u64_at(payload, 16),
                    avail: u64_at(payload, 24),
                    log: u64_at(payload, 32),
                };
                if a.flags & VRING_F_LOG != 0 {
                    return Err(ProtocolError::LoggingUnsupported);
                }
                if a.flags != 0 {
                    return Err(ProtocolError::BadVringFlags {
                        request,
                        value: u64::from(a.flags),
                    });
                }
                Self::SetVringAddr(a)
            }
            Request::SetVringBase => Self::SetVringBase(state()?),
            Request::GetVringBase => Self::GetVringBase(state()?),
            Request::SetVringKick => Self::SetVringKick(vring_fd()?),
            Request::SetVringCall => Self::SetVringCall(vring_fd()?),
            Request::SetVringErr => Self::SetVringErr(vring_fd()?),
            Request::GetProtocolFeatures => no_payload().map(|()| Self::GetProtocolFeatures)?,
            Request::SetProtocolFeatures => Self::SetProtocolFeatures(u64_payload()?),
            Request::GetQueueNum => no_payload().map(|()| Self::GetQueueNum)?,
            Request::SetVringEnable => Self::SetVringEnable(state()?),
            Request::SetBackendReqFd => {
                size(0)?;
                fd_count(1)?;
                Self::SetBackendReqFd
            }
        })
    }

    /// The request this message is.
    pub fn request(&self) -> Request {
        match self {
            Self::GetFeatures => Request::GetFeatures,
            Self::SetFeatures(_) => Request::SetFeatures,
            Self::SetOwner => Request::SetOwner,
            Self::ResetOwner => Request::ResetOwner,
            Self::SetMemTable(_) => Request::SetMemTable,
            Self::SetVringNum(_) => Request::SetVringNum,
            Self::SetVringAddr(_) => Request::SetVringAddr,
            Self::SetVringBase(_) => Request::SetVringBase,
            Self::GetVringBase(_) => Request::GetVringBase,
            Self::SetVringKick(_) => Request::SetVringKick,
            Self::SetVringCall(_) => Request::SetVringCall,
            Self::SetVringErr(_) => Request::SetVringErr,
            Self::GetProtocolFeatures => Request::GetProtocolFeatures,
            Self::SetProtocolFeatures(_) => Request::SetProtocolFeatures,
            Self::GetQueueNum => Request::GetQueueNum,
            Self::SetVringEnable(_) => Request::SetVringEnable,
            Self::SetBackendReqFd => Request::SetBackendReqFd,
        }
    }
}

/// `SET_MEM_TABLE`: `nregions` (u32), padding (u32), then the entries.
///
/// Lenient on the size, as docs/linux-peer.md (pitfall 5) asks: UML always
/// sends its fixed two-entry array (72 bytes) even for one region, so the
/// payload may hold more entries than `nregions`, up to [`MAX_REGIONS`];
/// the extra entries are ignored.
fn parse_mem_table(payload: &[u8], fds: usize) -> Result<Vec<MemRegion>, ProtocolError> {
    let request = Request::SetMemTable;
    if payload.len() < MEM_TABLE_HEAD
        || payload.len() > MEM_TABLE_HEAD + MAX_REGIONS * REGION_SIZE
        || (payload.len() - MEM_TABLE_HEAD) % REGION_SIZE != 0
    {
        return Err(ProtocolError::BadPayloadSize {
            request,
            size: payload.len(),
        });
    }
    let num = u32_at(payload, 0);
    let n = num as usize;
    if n == 0 || n > MAX_REGIONS {
        return Err(ProtocolError::BadRegionCount { num });
    }
    if payload.len() < MEM_TABLE_HEAD + n * REGION_SIZE {
        return Err(ProtocolError::BadPayloadSize {
            request,
            size: payload.len(),
        });
    }
    if fds != n {
        return Err(ProtocolError::BadFdCount {
            request,
            got: fds,
            expected: n,
        });
    }
    let mut regions = Vec::with_capacity(n);
    for i in 0..n {
        let at = MEM_TABLE_HEAD + i * REGION_SIZE;
        let r = MemRegion {
            guest_addr: u64_at(payload, at),
            size: u64_at(payload, at + 8),
            user_addr: u64_at(payload, at + 16),
            mmap_offset: u64_at(payload, at + 24),
        };
        let fits = |start: u64| start.checked_add(r.size).is_some();
        if r.size == 0 || !fits(r.guest_addr) || !fits(r.user_addr) || !fits(r.mmap_offset) {
            return Err(ProtocolError::BadRegion { index: i });
        }
        for (j, q) in regions.iter().enumerate() {
            let q: &MemRegion = q;
            if ranges_overlap(r.guest_addr, r.size, q.guest_addr, q.size)
                || ranges_overlap(r.user_addr, r.size, q.user_addr, q.size)
            {
                return Err(ProtocolError::RegionsOverlap { a: j, b: i });
            }
        }
        regions.push(r);
    }
    Ok(regions)
}

/// Which ring area an address names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingPart {
    /// The descriptor table.
    Desc,
    /// The available ring.
    Avail,
    /// The used ring.
    Used,
}

/// A request the backend refuses. The connection fails with it (after a
/// non-zero acknowledgement when the frontend asked for one).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The header's version bits are not 1.
    BadVersion {
        /// The flags received.
        flags: u32,
    },
    /// The frontend sent a reply where a request belongs.
    UnexpectedReply {
        /// The request code.
        request: u32,
    },
    /// A payload larger than [`MAX_PAYLOAD`].
    PayloadTooLarge {
        /// The size announced.
        size: u32,
    },
    /// A request code we do not serve.
    UnknownRequest {
        /// The code.
        code: u32,
    },
    /// The payload size does not match the request.
    BadPayloadSize {
        /// The request.
        request: Request,
        /// The size received.
        size: usize,
    },
    /// Descriptors came with a request that takes none, or the wrong number.
    BadFdCount {
        /// The request.
        request: Request,
        /// Descriptors received.
        got: usize,
        /// Descriptors the request takes.
        expected: usize,
    },
    /// More descriptors than any request carries: the kernel dropped some.
    FdsTruncated,
    /// `nregions` is 0 or more than [`MAX_REGIONS`].
    BadRegionCount {
        /// The count received.
        num: u32,
    },
    /// A region is empty or one of its ranges overflows.
    BadRegion {
        /// The region's position in the table.
        index: usize,
    },
    /// Two regions overlap in guest or frontend address space.
    RegionsOverlap {
        /// The earlier region.
        a: usize,
        /// The later region.
        b: usize,
    },
    /// A region's file offset is not page-aligned.
    MisalignedRegion {
        /// The region.
        index: usize,
    },
    /// A region's descriptor is not a regular file, or the file is shorter
    /// than `mmap_offset + size` (mapping it would fault).
    RegionFileTooSmall {
        /// The region.
        index: usize,
    },
    /// Reserved bits set in a queue-descriptor payload or ring flags.
    BadVringFlags {
        /// The request.
        request: Request,
        /// The value received.
        value: u64,
    },
    /// `NOFD` (polling or no interrupts) is not supported.
    NoFdUnsupported {
        /// The request.
        request: Request,
    },
    /// `VRING_F_LOG` is not supported.
    LoggingUnsupported,
    /// A queue index at or beyond the number of queues.
    QueueIndexOutOfRange {
        /// The index received.
        index: u32,
        /// The number of queues.
        queues: u8,
    },
    /// A queue size that is 0, not a power of two or above the maximum.
    BadQueueSize {
        /// The queue.
        index: u8,
        /// The size received.
        num: u32,
    },
    /// `SET_VRING_BASE` with an index that does not fit 16 bits.
    BadVringBase {
        /// The queue.
        index: u8,
        /// The value received.
        base: u32,
    },
    /// `SET_VRING_ENABLE` with a value other than 0 or 1.
    BadEnable {
        /// The queue.
        index: u8,
        /// The value received.
        value: u32,
    },
    /// `SET_FEATURES` with features the device did not offer.
    UnofferedFeatures {
        /// What was offered.
        offered: u64,
        /// What the frontend set.
        set: u64,
    },
    /// `SET_PROTOCOL_FEATURES` with features the backend did not offer.
    UnofferedProtocolFeatures {
        /// What was offered.
        offered: u64,
        /// What the frontend set.
        set: u64,
    },
    /// `SET_VRING_ADDR` before `SET_MEM_TABLE`.
    NoMemoryTable,
    /// `SET_VRING_ADDR` before `SET_VRING_NUM`.
    QueueSizeUnset {
        /// The queue.
        index: u8,
    },
    /// A ring area not wholly inside one mapped region.
    RingOutsideMemory {
        /// The queue.
        index: u8,
        /// Which area.
        part: RingPart,
        /// Its frontend virtual address.
        addr: u64,
        /// Its length.
        len: usize,
    },
    /// A ring area not aligned as virtio requires (16, 2, 4).
    RingMisaligned {
        /// The queue.
        index: u8,
        /// Which area.
        part: RingPart,
        /// Its frontend virtual address.
        addr: u64,
    },
    /// The three areas of one ring overlap, or lie in different regions.
    BadRingLayout {
        /// The queue.
        index: u8,
    },
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadVersion { flags } => write!(f, "header flags {flags:#x}: not version 1"),
            Self::UnexpectedReply { request } => {
                write!(f, "request {request} carries the reply flag")
            }
            Self::PayloadTooLarge { size } => {
                write!(f, "payload of {size} bytes (at most {MAX_PAYLOAD})")
            }
            Self::UnknownRequest { code } => write!(f, "unsupported request code {code}"),
            Self::BadPayloadSize { request, size } => {
                write!(f, "{request}: payload of {size} bytes")
            }
            Self::BadFdCount {
                request,
                got,
                expected,
            } => write!(f, "{request}: {got} descriptors, expected {expected}"),
            Self::FdsTruncated => f.write_str("too many descriptors with one message"),
            Self::BadRegionCount { num } => {
                write!(f, "SET_MEM_TABLE: {num} regions (1..={MAX_REGIONS})")
            }
            Self::BadRegion { index } => {
                write!(f, "SET_MEM_TABLE: region {index} is empty or overflows")
            }
            Self::RegionsOverlap { a, b } => {
                write!(f, "SET_MEM_TABLE: regions {a} and {b} overlap")
            }
            Self::MisalignedRegion { index } => {
                write!(
                    f,
                    "SET_MEM_TABLE: region {index}: mmap offset not page-aligned"
                )
            }
            Self::RegionFileTooSmall { index } => write!(
                f,
                "SET_MEM_TABLE: region {index}: not a regular file covering the region"
            ),
            Self::BadVringFlags { request, value } => {
                write!(f, "{request}: reserved bits in {value:#x}")
            }
            Self::NoFdUnsupported { request } => write!(f, "{request}: NOFD is not supported"),
            Self::LoggingUnsupported => f.write_str("SET_VRING_ADDR: dirty logging unsupported"),
            Self::QueueIndexOutOfRange { index, queues } => {
                write!(f, "queue {index} (the device has {queues})")
            }
            Self::BadQueueSize { index, num } => write!(f, "queue {index}: size {num}"),
            Self::BadVringBase { index, base } => write!(f, "queue {index}: base {base}"),
            Self::BadEnable { index, value } => write!(f, "queue {index}: enable {value}"),
            Self::UnofferedFeatures { offered, set } => {
                write!(f, "features {set:#x} not within offered {offered:#x}")
            }
            Self::UnofferedProtocolFeatures { offered, set } => {
                write!(
                    f,
                    "protocol features {set:#x} not within offered {offered:#x}"
                )
            }
            Self::NoMemoryTable => f.write_str("ring address before SET_MEM_TABLE"),
            Self::QueueSizeUnset { index } => {
                write!(f, "queue {index}: ring address before SET_VRING_NUM")
            }
            Self::RingOutsideMemory {
                index,
                part,
                addr,
                len,
            } => write!(
                f,
                "queue {index}: {part:?} ring {addr:#x}+{len} outside guest memory"
            ),
            Self::RingMisaligned { index, part, addr } => {
                write!(f, "queue {index}: {part:?} ring at {addr:#x} misaligned")
            }
            Self::BadRingLayout { index } => {
                write!(f, "queue {index}: ring areas overlap or span regions")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(request: u32, size: usize) -> Header {
        Header {
            request,
            flags: FLAG_VERSION,
            size: size as u32,
        }
    }

    fn mem_table(num: u32, entries: &[[u64; 4]]) -> Vec<u8> {
        let mut p = num.to_ne_bytes().to_vec();
        p.extend_from_slice(&[0; 4]);
        for e in entries {
            for w in e {
                p.extend_from_slice(&w.to_ne_bytes());
            }
        }
        p
    }

    #[test]
    fn header_round_trips_and_checks_version_reply_and_size() {
        let h = Header {
            request: 5,
            flags: FLAG_VERSION | FLAG_NEED_REPLY,
            size: 72,
        };
        assert_eq!(Header::decode(h.encode()), h);
        assert!(h.check().is_ok());
        assert!(h.need_reply());
        let bad = |flags, size| Header {
            request: 1,
            flags,
            size,
        };
        assert_eq!(
            bad(0, 0).check(),
            Err(ProtocolError::BadVersion { flags: 0 })
        );
        assert_eq!(
            bad(FLAG_VERSION | FLAG_REPLY, 0).check(),
            Err(ProtocolError::UnexpectedReply { request: 1 })
        );
        assert_eq!(
            bad(FLAG_VERSION, 513).check(),
            Err(ProtocolError::PayloadTooLarge { size: 513 })
        );
        assert_eq!(Header::reply(Request::GetFeatures, 8).flags, 0x5);
    }

    #[test]
    fn every_request_code_round_trips() {
        for code in 0..64 {
            if let Some(r) = Request::from_code(code) {
                assert_eq!(r as u32, code);
                assert!(r.name().chars().all(|c| c.is_ascii_uppercase() || c == '_'));
            }
        }
        assert_eq!(Request::from_code(6), None, "SET_LOG_BASE is not served");
        assert_eq!(
            Message::parse(&hdr(6, 0), &[], 0),
            Err(ProtocolError::UnknownRequest { code: 6 })
        );
    }

    #[test]
    fn fixed_size_requests_reject_other_sizes_and_stray_fds() {
        let p = 0x1_4000_0001u64.to_ne_bytes();
        assert_eq!(
            Message::parse(&hdr(2, 8), &p, 0),
            Ok(Message::SetFeatures(0x1_4000_0001))
        );
        assert!(matches!(
            Message::parse(&hdr(2, 7), &p[..7], 0),
            Err(ProtocolError::BadPayloadSize { size: 7, .. })
        ));
        assert!(matches!(
            Message::parse(&hdr(2, 8), &p, 1),
            Err(ProtocolError::BadFdCount {
                got: 1,
                expected: 0,
                ..
            })
        ));
        assert!(matches!(
            Message::parse(&hdr(3, 8), &p, 0),
            Err(ProtocolError::BadPayloadSize { .. })
        ));
        assert!(matches!(
            Message::parse(&hdr(21, 0), &[], 0),
            Err(ProtocolError::BadFdCount { expected: 1, .. })
        ));
        assert_eq!(
            Message::parse(&hdr(21, 0), &[], 1),
            Ok(Message::SetBackendReqFd)
        );
    }

    #[test]
    fn vring_fd_payload_checks_reserved_bits_and_nofd() {
        let p = |v: u64| v.to_ne_bytes();
        assert_eq!(
            Message::parse(&hdr(12, 8), &p(1), 1),
            Ok(Message::SetVringKick(1))
        );
        assert!(matches!(
            Message::parse(&hdr(13, 8), &p(1 << 9), 1),
            Err(ProtocolError::BadVringFlags { .. })
        ));
        assert!(matches!(
            Message::parse(&hdr(13, 8), &p(VRING_NOFD), 0),
            Err(ProtocolError::NoFdUnsupported { .. })
        ));
        assert!(matches!(
            Message::parse(&hdr(13, 8), &p(0), 0),
            Err(ProtocolError::BadFdCount { .. })
        ));
    }

    #[test]
    fn vring_addr_in_protocol_order_and_logging_refused() {
        let mut p = Vec::new();
        p.extend_from_slice(&1u32.to_ne_bytes());
        p.extend_from_slice(&0u32.to_ne_bytes());
        for v in [0xc258000u64, 0xc25a000, 0xc259000, u64::MAX] {
            p.extend_from_slice(&v.to_ne_bytes());
        }
        let Ok(Message::SetVringAddr(a)) = Message::parse(&hdr(9, 40), &p, 0) else {
            panic!("parse failed");
        };
        assert_eq!(
            (a.index, a.desc, a.used, a.avail),
            (1, 0xc258000, 0xc25a000, 0xc259000)
        );
        p[4] = 1;
        assert_eq!(
            Message::parse(&hdr(9, 40), &p, 0),
            Err(ProtocolError::LoggingUnsupported)
        );
        p[4] = 2;
        assert!(matches!(
            Message::parse(&hdr(9, 40), &p, 0),
            Err(ProtocolError::BadVringFlags { .. })
        ));
    }

    #[test]
    fn mem_table_is_lenient_on_size_but_strict_on_contents() {
        let r0 = [0xbc56000, 0x3909000, 0xbc56000, 0xbc56000];
        // UML's fixed two-entry array with one region (pitfall 5).
        let uml = mem_table(1, &[r0, [0; 4]]);
        assert_eq!(uml.len(), 72);
        let Ok(Message::SetMemTable(regions)) = Message::parse(&hdr(5, 72), &uml, 1) else {
            panic!("UML's table must parse");
        };
        assert_eq!(regions.len(), 1);
        assert_eq!(regions[0].size, 0x3909000);
        // Exact size works too.
        assert!(Message::parse(&hdr(5, 40), &mem_table(1, &[r0]), 1).is_ok());
        // The fd count follows nregions, not the payload size.
        assert!(matches!(
            Message::parse(&hdr(5, 72), &uml, 2),
            Err(ProtocolError::BadFdCount { expected: 1, .. })
        ));
        // nregions out of range, or larger than the payload.
        for num in [0, 9] {
            let t = mem_table(num, &[r0]);
            assert_eq!(
                Message::parse(&hdr(5, 40), &t, 1),
                Err(ProtocolError::BadRegionCount { num })
            );
        }
        assert!(matches!(
            Message::parse(&hdr(5, 40), &mem_table(2, &[r0]), 2),
            Err(ProtocolError::BadPayloadSize { .. })
        ));
        // Ragged size.
        let mut ragged = mem_table(1, &[r0]);
        ragged.push(0);
        assert!(matches!(
            Message::parse(&hdr(5, 41), &ragged, 1),
            Err(ProtocolError::BadPayloadSize { .. })
        ));
        // Empty and overflowing regions.
        for bad in [
            [0, 0, 0, 0],
            [u64::MAX, 2, 0, 0],
            [0, 2, u64::MAX, 0],
            [0, 2, 0, u64::MAX],
        ] {
            assert_eq!(
                Message::parse(&hdr(5, 40), &mem_table(1, &[bad]), 1),
                Err(ProtocolError::BadRegion { index: 0 })
            );
        }
        // Overlap in guest space, then in user space.
        let a = [0x1000, 0x2000, 0x10_0000, 0];
        let b = [0x2000, 0x1000, 0x20_0000, 0];
        let c = [0x8000, 0x1000, 0x10_1000, 0];
        for other in [b, c] {
            assert_eq!(
                Message::parse(&hdr(5, 72), &mem_table(2, &[a, other]), 2),
                Err(ProtocolError::RegionsOverlap { a: 0, b: 1 })
            );
        }
    }
}
