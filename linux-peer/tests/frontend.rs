//! The vhost-user backend against a frontend written here that sends what
//! UML's `virtio_uml` sends (docs/linux-peer.md, "Step 3b"), then against
//! one that sends bad messages. No kernel needed.
// Test code: a failed setup step should stop the test at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use ipc_traits::mailbox::{Notify, NotifyRx, QueueId};
use ipc_traits::shm::SharedMemory;
use linux_peer::protocol::{
    Header, ProtocolError, Request, RingPart, FLAG_NEED_REPLY, FLAG_VERSION, VRING_NOFD,
};
use linux_peer::uml::TempDir;
use linux_peer::{sys, BackendConfig, Error, Server};

const T: Duration = Duration::from_secs(10);

/// Guest memory as UML lays it out: guest == user == file offset.
const MEM_BASE: u64 = 0x10_0000;
const MEM_SIZE: u64 = 0x10_0000;
const RING0: u64 = 0x14_0000;
const RING1: u64 = 0x15_8000;
const NUM: u32 = 256;

struct Frontend {
    sock: UnixStream,
    mem: File,
    need_reply: bool,
}

impl Frontend {
    fn connect(server: &Server) -> Self {
        let sock = UnixStream::connect(server.path()).unwrap();
        sock.set_read_timeout(Some(T)).unwrap();
        let dir =
            std::env::temp_dir().join(format!("lp-front-mem-{}-{:p}", std::process::id(), &sock));
        let mem = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&dir)
            .unwrap();
        std::fs::remove_file(&dir).unwrap();
        mem.set_len(MEM_BASE + MEM_SIZE).unwrap();
        Self {
            sock,
            mem,
            need_reply: false,
        }
    }

    fn send_raw(&self, request: u32, flags: u32, payload: &[u8], fds: &[BorrowedFd<'_>]) {
        let h = Header {
            request,
            flags,
            size: payload.len() as u32,
        };
        let mut msg = h.encode().to_vec();
        msg.extend_from_slice(payload);
        let n = sys::send_with_fds(self.sock.as_fd(), &msg, fds).unwrap();
        assert_eq!(n, msg.len());
    }

    fn recv_u64(&mut self, request: Request) -> u64 {
        let mut b = [0u8; 20];
        (&self.sock).read_exact(&mut b).unwrap();
        let h = Header::decode(b[..12].try_into().unwrap());
        assert_eq!(h.request, request as u32);
        assert_eq!(h.flags, 0x5, "reply flags must be exactly REPLY|VERSION");
        assert_eq!(h.size, 8);
        u64::from_ne_bytes(b[12..].try_into().unwrap())
    }

    /// Sends a request; returns the reply (for GET_*) or the ack (when
    /// NEED_REPLY is in use).
    fn send(&mut self, request: Request, payload: &[u8], fds: &[BorrowedFd<'_>]) -> Option<u64> {
        let ack = self.need_reply && !request.has_reply();
        let flags = FLAG_VERSION | if ack { FLAG_NEED_REPLY } else { 0 };
        self.send_raw(request as u32, flags, payload, fds);
        (request.has_reply() || ack).then(|| self.recv_u64(request))
    }

    fn state(&mut self, request: Request, index: u32, num: u32) -> Option<u64> {
        let mut p = index.to_ne_bytes().to_vec();
        p.extend_from_slice(&num.to_ne_bytes());
        self.send(request, &p, &[])
    }

    fn mem_table(&mut self, entries: &[[u64; 4]], payload_entries: usize) -> Option<u64> {
        let mut p = (entries.len() as u32).to_ne_bytes().to_vec();
        p.extend_from_slice(&[0; 4]);
        for i in 0..payload_entries {
            for w in entries.get(i).copied().unwrap_or([0; 4]) {
                p.extend_from_slice(&w.to_ne_bytes());
            }
        }
        let mem = self.mem.try_clone().unwrap();
        let fds: Vec<BorrowedFd<'_>> = entries.iter().map(|_| mem.as_fd()).collect();
        self.send(Request::SetMemTable, &p, &fds)
    }

    fn vring_addr(&mut self, index: u32, desc: u64, used: u64, avail: u64) -> Option<u64> {
        let mut p = index.to_ne_bytes().to_vec();
        p.extend_from_slice(&0u32.to_ne_bytes());
        for v in [desc, used, avail, u64::MAX] {
            p.extend_from_slice(&v.to_ne_bytes());
        }
        self.send(Request::SetVringAddr, &p, &[])
    }

    fn vring_fd(&mut self, request: Request, index: u64, fd: BorrowedFd<'_>) -> Option<u64> {
        self.send(request, &index.to_ne_bytes(), &[fd])
    }

    /// Everything UML sends up to the rings being enabled. Returns the
    /// kick eventfds and the call descriptors' read ends it keeps.
    fn uml_handshake(&mut self) -> (Vec<OwnedFd>, Vec<File>, OwnedFd) {
        assert_eq!(self.send(Request::SetOwner, &[], &[]), None);
        assert_eq!(
            self.send(Request::GetFeatures, &[], &[]),
            Some(0x1_4000_0001)
        );
        assert_eq!(
            self.send(Request::GetProtocolFeatures, &[], &[]),
            Some(0x28)
        );
        self.need_reply = true;
        assert_eq!(
            self.send(Request::SetProtocolFeatures, &0x28u64.to_ne_bytes(), &[]),
            Some(0)
        );
        let (req_ours, req_theirs) = UnixStream::pair().unwrap();
        assert_eq!(
            self.send(Request::SetBackendReqFd, &[], &[req_theirs.as_fd()]),
            Some(0)
        );
        drop(req_theirs);
        assert_eq!(
            self.send(Request::SetFeatures, &0x1_4000_0001u64.to_ne_bytes(), &[]),
            Some(0)
        );
        // UML's fixed two-entry array with one region (pitfall 5).
        assert_eq!(
            self.mem_table(&[[MEM_BASE, MEM_SIZE, MEM_BASE, MEM_BASE]], 2),
            Some(0)
        );
        let mut calls = Vec::new();
        for (q, ring) in [(0u32, RING0), (1, RING1)] {
            let call = sys::eventfd().unwrap();
            assert_eq!(
                self.vring_fd(Request::SetVringCall, q.into(), call.as_fd()),
                Some(0)
            );
            calls.push(File::from(call));
            assert_eq!(self.state(Request::SetVringNum, q, NUM), Some(0));
            assert_eq!(self.state(Request::SetVringBase, q, 0), Some(0));
            assert_eq!(
                self.vring_addr(q, ring, ring + 0x2000, ring + 0x1000),
                Some(0)
            );
        }
        let mut kicks = Vec::new();
        for q in 0..2u32 {
            let kick = sys::eventfd().unwrap();
            assert_eq!(
                self.vring_fd(Request::SetVringKick, q.into(), kick.as_fd()),
                Some(0)
            );
            kicks.push(kick);
            assert_eq!(self.state(Request::SetVringEnable, q, 1), Some(0));
        }
        (kicks, calls, req_ours.into())
    }
}

fn server(dir: &TempDir) -> Server {
    Server::listen(&dir.path().join("s.sock"), BackendConfig::rpmsg()).unwrap()
}

fn q(i: u8) -> QueueId {
    QueueId::new(i).unwrap()
}

#[test]
fn uml_handshake_gives_rings_memory_and_doorbells() {
    let dir = TempDir::new("lp-front").unwrap();
    let server = server(&dir);
    let mut fe = Frontend::connect(&server);
    let (kicks, mut calls, _req) = fe.uml_handshake();

    let mut ready = server.wait_ready(T).unwrap();
    assert_eq!(ready.features, 0x1_4000_0001);
    assert_eq!(ready.protocol_features, 0x28);
    assert!(
        server.holds_backend_req(),
        "pitfall 4: keep the request channel"
    );
    let mem = ready.memory.clone();
    assert_eq!(mem.peer_base(), MEM_BASE);
    assert_eq!(mem.len() as u64, MEM_SIZE);
    let off = |a: u64| (a - MEM_BASE) as usize;
    assert_eq!(ready.queues.len(), 2);
    for (cfg, ring) in ready.queues.iter().zip([RING0, RING1]) {
        assert_eq!(cfg.num, 256);
        assert_eq!(cfg.base, 0);
        assert_eq!(
            (cfg.desc, cfg.avail, cfg.used),
            (off(ring), off(ring + 0x1000), off(ring + 0x2000))
        );
    }
    // The window is the frontend's memory: a write to the file at a guest
    // address shows at the translated offset, and back.
    fe.mem.write_all_at(b"from-guest", RING0 + 0x3000).unwrap();
    let at = mem.translate(RING0 + 0x3000, 10).unwrap();
    let mut got = [0u8; 10];
    mem.read(at, &mut got).unwrap();
    assert_eq!(&got, b"from-guest");
    mem.write(at, b"from-device").unwrap();
    let mut back = [0u8; 11];
    fe.mem.read_exact_at(&mut back, RING0 + 0x3000).unwrap();
    assert_eq!(&back, b"from-device");

    // Kicks: nothing pending until the frontend writes the eventfd.
    assert!(ready.kicks.take_pending().unwrap().is_empty());
    File::from(kicks[1].try_clone().unwrap())
        .write_all(&1u64.to_ne_bytes())
        .unwrap();
    let set = ready.kicks.wait_for(q(1), T).unwrap().unwrap();
    assert!(set.contains(q(1)) && !set.contains(q(0)));
    // Calls: one u64 per notification, on the right queue only.
    ready.calls.notify(q(0)).unwrap();
    let mut b = [0u8; 8];
    calls[0].read_exact(&mut b).unwrap();
    assert_eq!(u64::from_ne_bytes(b), 1);

    // Shutdown as UML does it, then a clean close.
    assert!(server.is_enabled(0));
    assert_eq!(fe.state(Request::SetVringEnable, 1, 0), Some(0));
    assert_eq!(fe.state(Request::SetVringEnable, 0, 0), Some(0));
    assert_eq!(fe.send(Request::GetFeatures, &[], &[]), Some(0x1_4000_0001));
    let log = server.log();
    assert_eq!(log.first(), Some(&Request::SetOwner));
    assert_eq!(
        log.iter().filter(|r| **r == Request::SetVringAddr).count(),
        2
    );
    drop(fe);
    assert_eq!(server.wait_closed(T), Ok(()));
    assert!(!server.is_enabled(0));
    // The data path's memory and doorbells outlive the connection.
    assert!(ready.memory.read(at, &mut got).is_ok());
    ready.calls.notify(q(1)).unwrap();
}

/// Optionally sends the start of the UML handshake (`setup`), then `bad`;
/// expects the connection to fail with `expected`, and a non-zero ack when
/// `bad` asked for one.
fn refused(bad: impl FnOnce(&mut Frontend) -> Option<u64>, expected: Error, setup: bool) {
    let dir = TempDir::new("lp-front-bad").unwrap();
    let server = server(&dir);
    let mut fe = Frontend::connect(&server);
    if setup {
        fe.send(Request::SetOwner, &[], &[]);
        fe.need_reply = true;
        fe.send(Request::SetProtocolFeatures, &0x28u64.to_ne_bytes(), &[]);
        fe.send(Request::SetFeatures, &0x1_4000_0001u64.to_ne_bytes(), &[]);
    }
    let ack = bad(&mut fe);
    assert_eq!(server.wait_closed(T), Err(expected.clone()), "{expected}");
    if let Some(ack) = ack {
        assert_ne!(ack, 0, "a refused request is nacked: {expected}");
    }
    assert!(matches!(server.wait_ready(T), Err(e) if e == expected));
}

fn proto(e: ProtocolError) -> Error {
    Error::Protocol(e)
}

#[test]
fn queue_settings_out_of_range_are_refused() {
    refused(
        |fe| fe.state(Request::SetVringNum, 2, 256),
        proto(ProtocolError::QueueIndexOutOfRange {
            index: 2,
            queues: 2,
        }),
        true,
    );
    for num in [0, 3, 512] {
        refused(
            |fe| fe.state(Request::SetVringNum, 0, num),
            proto(ProtocolError::BadQueueSize { index: 0, num }),
            true,
        );
    }
    refused(
        |fe| fe.state(Request::SetVringBase, 1, 0x1_0000),
        proto(ProtocolError::BadVringBase {
            index: 1,
            base: 0x1_0000,
        }),
        true,
    );
    refused(
        |fe| fe.state(Request::SetVringEnable, 0, 2),
        proto(ProtocolError::BadEnable { index: 0, value: 2 }),
        true,
    );
    refused(
        |fe| fe.send(Request::SetFeatures, &(1u64 << 29).to_ne_bytes(), &[]),
        proto(ProtocolError::UnofferedFeatures {
            offered: 0x1_4000_0001,
            set: 1 << 29,
        }),
        true,
    );
    refused(
        |fe| fe.send(Request::SetProtocolFeatures, &0x1u64.to_ne_bytes(), &[]),
        proto(ProtocolError::UnofferedProtocolFeatures {
            offered: 0x28,
            set: 1,
        }),
        false,
    );
}

#[test]
fn ring_addresses_outside_memory_misaligned_or_early_are_refused() {
    refused(
        |fe| {
            fe.state(Request::SetVringNum, 0, NUM);
            fe.vring_addr(0, RING0, RING0 + 0x2000, RING0 + 0x1000)
        },
        proto(ProtocolError::NoMemoryTable),
        true,
    );
    let with_mem = |fe: &mut Frontend| {
        fe.mem_table(&[[MEM_BASE, MEM_SIZE, MEM_BASE, MEM_BASE]], 1);
    };
    refused(
        |fe| {
            with_mem(fe);
            fe.vring_addr(0, RING0, RING0 + 0x2000, RING0 + 0x1000)
        },
        proto(ProtocolError::QueueSizeUnset { index: 0 }),
        true,
    );
    // The used ring (6 + 8*256 bytes) runs past the end of memory.
    let end = MEM_BASE + MEM_SIZE;
    refused(
        |fe| {
            with_mem(fe);
            fe.state(Request::SetVringNum, 0, NUM);
            fe.vring_addr(0, RING0, end - 0x100, RING0 + 0x1000)
        },
        proto(ProtocolError::RingOutsideMemory {
            index: 0,
            part: RingPart::Used,
            addr: end - 0x100,
            len: 6 + 8 * 256,
        }),
        true,
    );
    refused(
        |fe| {
            with_mem(fe);
            fe.state(Request::SetVringNum, 1, NUM);
            fe.vring_addr(1, RING1 + 8, RING1 + 0x2000, RING1 + 0x1000)
        },
        proto(ProtocolError::RingMisaligned {
            index: 1,
            part: RingPart::Desc,
            addr: RING1 + 8,
        }),
        true,
    );
    refused(
        |fe| {
            with_mem(fe);
            fe.state(Request::SetVringNum, 0, NUM);
            // Available ring inside the descriptor table.
            fe.vring_addr(0, RING0, RING0 + 0x2000, RING0 + 0x800)
        },
        proto(ProtocolError::BadRingLayout { index: 0 }),
        true,
    );
    // A region whose file is too short to map.
    refused(
        |fe| fe.mem_table(&[[MEM_BASE, 4 * MEM_SIZE, MEM_BASE, MEM_BASE]], 1),
        proto(ProtocolError::RegionFileTooSmall { index: 0 }),
        true,
    );
}

#[test]
fn malformed_messages_are_refused() {
    // A kick without its descriptor, one with NOFD, and stray descriptors.
    refused(
        |fe| fe.send(Request::SetVringKick, &0u64.to_ne_bytes(), &[]),
        proto(ProtocolError::BadFdCount {
            request: Request::SetVringKick,
            got: 0,
            expected: 1,
        }),
        true,
    );
    refused(
        |fe| fe.send(Request::SetVringCall, &VRING_NOFD.to_ne_bytes(), &[]),
        proto(ProtocolError::NoFdUnsupported {
            request: Request::SetVringCall,
        }),
        true,
    );
    refused(
        |fe| {
            let ev = sys::eventfd().unwrap();
            fe.send(Request::SetOwner, &[], &[ev.as_fd()])
        },
        proto(ProtocolError::BadFdCount {
            request: Request::SetOwner,
            got: 1,
            expected: 0,
        }),
        true,
    );
    // Unknown request (SET_LOG_BASE), wrong version, oversized payload.
    refused(
        |fe| {
            fe.send_raw(6, FLAG_VERSION, &[0; 8], &[]);
            None
        },
        proto(ProtocolError::UnknownRequest { code: 6 }),
        false,
    );
    refused(
        |fe| {
            fe.send_raw(3, 2, &[], &[]);
            None
        },
        proto(ProtocolError::BadVersion { flags: 2 }),
        false,
    );
    refused(
        |fe| {
            fe.send_raw(5, FLAG_VERSION, &[0; 600], &[]);
            None
        },
        proto(ProtocolError::PayloadTooLarge { size: 600 }),
        false,
    );
}

#[test]
fn a_connection_closed_mid_message_is_truncated() {
    let dir = TempDir::new("lp-front-trunc").unwrap();
    let server = server(&dir);
    let fe = Frontend::connect(&server);
    let h = Header {
        request: Request::SetFeatures as u32,
        flags: FLAG_VERSION,
        size: 8,
    };
    (&fe.sock).write_all(&h.encode()).unwrap();
    (&fe.sock).write_all(&[1, 2, 3]).unwrap();
    drop(fe);
    assert_eq!(
        server.wait_closed(T),
        Err(Error::Truncated {
            got: 15,
            expected: 20
        })
    );
}

#[test]
fn waits_are_bounded_and_stop_ends_an_idle_server() {
    let dir = TempDir::new("lp-front-idle").unwrap();
    let server = server(&dir);
    assert!(matches!(
        server.wait_ready(Duration::from_millis(50)),
        Err(Error::Timeout { .. })
    ));
    assert!(!server.is_connected());
    let path = server.path().to_owned();
    server.stop();
    assert!(!path.exists(), "the socket file is removed");
}
