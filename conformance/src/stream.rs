//! The byte stream over an endpoint ([`rpmsg::stream`]), ours
//! against ours: a master and a remote on two threads (two simulated cores
//! with non-coherent write-back caches, as in [`crate::link`]), ringing
//! each other through a backend's simulated mailbox.
//!
//! [`stream_suite!`](crate::stream_suite) expands it into named `#[test]`s
//! for one backend's [`DoorbellLink`] fixture.

use core::cell::RefCell;
use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Wake;
use std::thread;

use ipc_traits::mailbox::{blocking_notify, Budget, NotifyRx, QueueId, Spins};
use rpmsg::link::asynch::HalfWakers;
use rpmsg::link::{Link, Sent, Storage};
use rpmsg::rings::{MasterRings, RemoteRings};
use rpmsg::stream::embedded_io::{Read, ReadReady, Write, WriteReady};
use rpmsg::stream::{embedded_io_async, AsyncStream, Stream, StreamStats};
use rpmsg::wire::ADDR_ANY;
use rpmsg::Error;
use vring::Legacy;

use crate::link::{drain, master_rings, remote_rings, MasterLink, RemoteLink};
use crate::link::{GEOMETRY, MASTER_LINE, MAX_PAYLOAD, NUM, REMOTE_LINE};
use crate::mailbox::{DoorbellFixture, DoorbellLink, Patience, PATIENCE};
use crate::sim::{CacheConfig, SimCore, SimMemory};

const PEER_BASE: u64 = 0x4000_0000;
/// The remote's stream endpoint.
const REMOTE_EP: u32 = 40;
/// Lines in the line tests.
pub const LINES: u32 = 10_000;
/// Read sizes, cycled: single bytes, a message's worth, more than a message.
const READ_SIZES: [usize; 10] = [1, 2, 3, 7, 16, 100, 495, 496, 497, 1000];

/// Line `i` of the line tests.
fn line(i: u32) -> String {
    format!("line-{i}\n")
}

/// 4096 bytes, every byte value 16 times, each round a different
/// permutation.
pub fn blob() -> Vec<u8> {
    (0..16u32)
        .flat_map(|r| (0..256u32).map(move |v| (v * (2 * r + 1) + r) as u8))
        .collect()
}

/// What the master writes in the line tests: 10 000 lines, one write each,
/// then the blob in one write.
fn writes() -> Vec<Vec<u8>> {
    (0..LINES)
        .map(|i| line(i).into_bytes())
        .chain([blob()])
        .collect()
}

fn q(i: u8) -> QueueId {
    QueueId::new(i).unwrap_or_else(|| panic!("queue {i}"))
}

/// A budget that takes pending doorbells on every retry (so word FIFOs
/// drain) and yields the thread: [`PATIENCE`] retries.
struct Draining<'t, T> {
    take: &'t RefCell<T>,
    left: Patience,
}

impl<T> Clone for Draining<'_, T> {
    fn clone(&self) -> Self {
        Self {
            take: self.take,
            left: self.left,
        }
    }
}

impl<T: NotifyRx> Budget for Draining<'_, T> {
    fn next(&mut self) -> bool {
        drain(&mut *self.take.borrow_mut());
        self.left.next()
    }
}

/// Remote: waits for the first kick, binds [`REMOTE_EP`], and echoes
/// `total` bytes through the blocking stream (the peer learnt from the
/// first message), reading in the sizes of [`READ_SIZES`] in turn; returns
/// its counters.
fn run_echo_remote<L: DoorbellLink>(
    mem: SimMemory,
    seed: u64,
    take: L::Take,
    ring: L::Ring,
    total: usize,
) -> StreamStats {
    let core = mem.core::<REMOTE_LINE>(CacheConfig::write_back(seed));
    let take = RefCell::new(take);
    let mut budget = PATIENCE;
    while take
        .borrow_mut()
        .take_pending()
        .unwrap_or_default()
        .is_empty()
    {
        assert!(budget.next(), "remote: the master never kicked");
    }
    let mut storage = Storage::<1>::new();
    let mut link: RemoteLink<'_, L::Ring> = Link::new(remote_rings(&core), ring, &mut storage);
    let ep = link.bind(REMOTE_EP).unwrap_or_else(|e| panic!("{e}"));
    let (tx, rx) = link.split();
    let wait = Draining {
        take: &take,
        left: PATIENCE,
    };
    let mut s: Stream<'_, '_, _, _, _> = Stream::new(tx, rx, ep, None, wait);
    let mut buf = [0u8; 1000];
    let mut echoed = 0;
    for k in 0.. {
        if echoed == total {
            break;
        }
        let want = READ_SIZES[k % READ_SIZES.len()].min(total - echoed);
        let n = s
            .read(&mut buf[..want])
            .unwrap_or_else(|e| panic!("remote read at byte {echoed}: {e}"));
        assert!((1..=want).contains(&n), "remote read {n} of {want}");
        s.write_all(&buf[..n])
            .unwrap_or_else(|e| panic!("remote echo at byte {echoed}: {e}"));
        echoed += n;
    }
    // No flush: the master stops taking doorbells once it has every byte,
    // so a word FIFO may stay full (a doorbell owed, nothing lost).
    assert!(s.mtu() <= MAX_PAYLOAD, "mtu {}", s.mtu());
    let stats = s.stats();
    let (_, rx, _) = s.into_parts();
    let rs = rx.stats();
    assert_eq!((rs.bad_header, rs.unbound), (0, 0), "remote: {rs:?}");
    stats
}

/// Two sides of the line tests: the remote echo thread started, the
/// master's link up, its stream endpoint bound; `f` drives the master.
fn with_echo<L: DoorbellLink, T>(
    seed: u64,
    total: usize,
    f: impl FnOnce(&mut MasterLink<'_, L::Ring>, &mut L::Take) -> T,
) -> (T, StreamStats) {
    let DoorbellFixture {
        mut ring_b,
        take_b,
        ring_a,
        mut take_a,
        ..
    } = L::open();
    let mem = SimMemory::new(GEOMETRY.size, PEER_BASE);
    let remote_mem = mem.clone();
    let remote =
        thread::spawn(move || run_echo_remote::<L>(remote_mem, seed ^ 0xB, take_b, ring_a, total));
    let core = mem.core::<MASTER_LINE>(CacheConfig::write_back(seed));
    let rings = master_rings(&core);
    blocking_notify(&mut ring_b, q(0), PATIENCE).unwrap_or_else(|e| panic!("first kick: {e:?}"));
    let mut storage = Storage::<1>::new();
    let mut link: MasterLink<'_, L::Ring> = Link::new(rings, ring_b, &mut storage);
    let out = f(&mut link, &mut take_a);
    let s = link.rx_stats();
    assert_eq!((s.bad_header, s.unbound), (0, 0), "master: {s:?}");
    assert!(!link.is_broken(), "master: broken");
    let remote = remote
        .join()
        .unwrap_or_else(|_| panic!("remote thread failed"));
    (out, remote)
}

/// 10 000 lines (one write each) and a 4096-byte blob of every byte value
/// go to the remote, which echoes them through the blocking stream,
/// reading 1, 2, 3, ... 1000 bytes at a time; the master drives its
/// stream without ever blocking (`WriteReady`/`ReadReady`, reads of the
/// same sizes) and checks the echo byte for byte. Returns the master's
/// counters.
pub fn lines_and_blob_echoed<L: DoorbellLink>(seed: u64) -> StreamStats {
    let writes = writes();
    let sent: Vec<u8> = writes.concat();
    let total = sent.len();
    let (master, remote) = with_echo::<L, _>(seed, total, |link, take| {
        let ep = link.bind(ADDR_ANY).unwrap_or_else(|e| panic!("{e}"));
        let (tx, rx) = link.split();
        let mut s: Stream<'_, '_, _, _, _> =
            Stream::new(tx, rx, ep, Some(REMOTE_EP), Spins::new(0));
        let (mut w, mut off) = (0, 0);
        let mut got = Vec::with_capacity(total);
        let mut buf = [0u8; 1000];
        let mut k = 0;
        let mut budget = PATIENCE;
        while got.len() < total {
            drain(take);
            let mut progressed = false;
            if w < writes.len() && s.write_ready().unwrap_or_else(|e| panic!("{e}")) {
                let n = s
                    .write(&writes[w][off..])
                    .unwrap_or_else(|e| panic!("write {w}: {e}"));
                off += n;
                if off == writes[w].len() {
                    (w, off) = (w + 1, 0);
                }
                progressed = true;
            }
            if s.read_ready().unwrap_or_else(|e| panic!("{e}")) {
                let want = READ_SIZES[k % READ_SIZES.len()];
                k += 1;
                let n = s
                    .read(&mut buf[..want])
                    .unwrap_or_else(|e| panic!("read: {e}"));
                assert!((1..=want).contains(&n));
                let at = got.len();
                got.extend_from_slice(&buf[..n]);
                assert_eq!(
                    &got[at..],
                    &sent[at..at + n],
                    "echo bytes {at}..{}: lost, reordered or corrupted",
                    at + n
                );
                progressed = true;
            }
            if progressed {
                budget = PATIENCE;
            } else {
                assert!(
                    budget.next(),
                    "master: stuck at write {w}, {} back",
                    got.len()
                );
            }
        }
        assert_eq!(got, sent);
        assert_eq!(s.mtu(), MAX_PAYLOAD, "writes split at the payload size");
        s.stats()
    });
    assert_stats(&master, "master");
    assert_stats(&remote, "remote");
    // Each line is one message; the blob at least ceil(4096 / 496).
    assert!(
        master.messages_out >= LINES + 9,
        "master sent {} messages",
        master.messages_out
    );
    master
}

fn assert_stats(s: &StreamStats, who: &str) {
    assert_eq!(
        (s.foreign, s.oversized, s.empty),
        (0, 0, 0),
        "{who}: nothing undeliverable in a clean exchange: {s:?}"
    );
}

/// A waker that raises a flag.
struct Flag(AtomicBool);
impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The smallest interrupt-driven executor: polls `f` only when woken; in
/// between, the "mailbox interrupt" takes the doorbells and wakes the
/// halves' tasks ([`HalfWakers::wake`]). A future that returned `Pending`
/// without registering its waker is never polled again and fails the test
/// (bounded).
fn block_on_irq<F: Future, T: NotifyRx>(f: F, take: &mut T, wakers: &HalfWakers) -> F::Output {
    let flag = Arc::new(Flag(AtomicBool::new(true)));
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    let mut budget = PATIENCE;
    loop {
        if flag.0.swap(false, Ordering::SeqCst) {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            budget = PATIENCE;
        }
        if !take.take_pending().unwrap_or_default().is_empty() {
            wakers.wake();
        }
        assert!(budget.next(), "the future was never woken");
    }
}

/// The async stream (`embedded_io_async`) against the blocking echo: the
/// lines in batches of 100 (each written whole, then read back in sizes
/// 1, 2, 3, ... 1000), then the blob; polled only when a doorbell woke it.
pub fn async_lines_and_blob<L: DoorbellLink>(seed: u64) -> StreamStats {
    use embedded_io_async::{Read as _, Write as _};
    let lines: Vec<u8> = (0..LINES).flat_map(|i| line(i).into_bytes()).collect();
    let batches: Vec<Vec<u8>> = (0..LINES)
        .step_by(100)
        .map(|b| (b..b + 100).flat_map(|i| line(i).into_bytes()).collect())
        .chain([blob()])
        .collect();
    let total = lines.len() + blob().len();
    let wakers = HalfWakers::new();
    let (master, remote) = with_echo::<L, _>(seed, total, |link, take| {
        let ep = link.bind(ADDR_ANY).unwrap_or_else(|e| panic!("{e}"));
        let (tx, rx) = link.split();
        let mut s: AsyncStream<'_, '_, '_, _, _> =
            AsyncStream::new(tx, rx, ep, Some(REMOTE_EP), &wakers);
        let run = async {
            let mut buf = [0u8; 1000];
            let mut k = 0;
            for (b, batch) in batches.iter().enumerate() {
                s.write_all(batch)
                    .await
                    .unwrap_or_else(|e| panic!("batch {b}: {e}"));
                s.flush().await.unwrap_or_else(|e| panic!("flush: {e}"));
                let mut back = Vec::with_capacity(batch.len());
                while back.len() < batch.len() {
                    let want = READ_SIZES[k % READ_SIZES.len()].min(batch.len() - back.len());
                    k += 1;
                    let n = s
                        .read(&mut buf[..want])
                        .await
                        .unwrap_or_else(|e| panic!("batch {b}: read: {e}"));
                    assert!((1..=want).contains(&n));
                    back.extend_from_slice(&buf[..n]);
                }
                assert_eq!(&back, batch, "batch {b}: lost, reordered or corrupted");
            }
        };
        block_on_irq(run, take, &wakers);
        s.stats()
    });
    assert_stats(&master, "master");
    assert_stats(&remote, "remote");
    master
}

/// Two links on one thread, no echo: the remote's stream (buffer of
/// `CAP`) to the master's, [`REMOTE_EP`] to the master's first dynamic
/// address.
/// The master's stream of [`pair`].
type MasterStream<'l, 'm, N> =
    Stream<'l, 'm, MasterRings<'m, SimCore<MASTER_LINE>, Legacy, NUM>, N, Spins>;
/// The remote's stream of [`pair`], with a buffer of `CAP`.
type RemoteStream<'l, 'm, N, const CAP: usize> =
    Stream<'l, 'm, RemoteRings<'m, SimCore<REMOTE_LINE>, Legacy, NUM>, N, Spins, CAP>;

fn pair<L: DoorbellLink, const CAP: usize>(
    f: impl FnOnce(
        &mut MasterStream<'_, '_, L::Ring>,
        &mut RemoteStream<'_, '_, L::Ring, CAP>,
        &mut L::Take,
        &mut L::Take,
        &rpmsg::link::Endpoint,
    ),
) {
    let DoorbellFixture {
        ring_b,
        mut take_b,
        ring_a,
        mut take_a,
        ..
    } = L::open();
    let mem = SimMemory::new(GEOMETRY.size, PEER_BASE);
    let mcore = mem.core::<MASTER_LINE>(CacheConfig::write_back(21));
    let rcore = mem.core::<REMOTE_LINE>(CacheConfig::write_back(22));
    let mut ms = Storage::<2>::new();
    let mut master: MasterLink<'_, L::Ring> = Link::new(master_rings(&mcore), ring_b, &mut ms);
    let mut rs = Storage::<2>::new();
    let mut remote: RemoteLink<'_, L::Ring> = Link::new(remote_rings(&rcore), ring_a, &mut rs);
    let rep = remote.bind(REMOTE_EP).unwrap_or_else(|e| panic!("{e}"));
    // A second local address on the remote link: not the stream's.
    let _other = remote.bind(REMOTE_EP + 1).unwrap_or_else(|e| panic!("{e}"));
    let mep = master.bind(ADDR_ANY).unwrap_or_else(|e| panic!("{e}"));
    let maddr = mep.addr();
    // A second local address on the master link: not the remote's peer.
    let stranger = master.bind(77).unwrap_or_else(|e| panic!("{e}"));
    let (mtx, mrx) = master.split();
    let (rtx, rrx) = remote.split();
    let mut m: Stream<'_, '_, _, _, _> =
        Stream::new(mtx, mrx, mep, Some(REMOTE_EP), Spins::new(50));
    let mut r: Stream<'_, '_, _, _, _, CAP> =
        Stream::new(rtx, rrx, rep, Some(maddr), Spins::new(50));
    f(&mut m, &mut r, &mut take_a, &mut take_b, &stranger);
}

/// Back-pressure and recovery: the remote reads nothing while the master
/// writes 20 000 bytes; the master fills every transmit buffer with a
/// payload's worth (exactly `NUM` x 496 bytes), then finds none (`Ok(0)`
/// without blocking, `TimedOut` when blocking within a budget, counted,
/// nothing sent by the failed call). Each message the remote reads frees
/// one buffer; in the end every byte arrived once, in order.
pub fn back_pressure_and_recovery<L: DoorbellLink>() {
    pair::<L, 496>(|m, r, take_a, take_b, _| {
        let data: Vec<u8> = blob().iter().cycle().take(20_000).copied().collect();
        drain(take_b);
        let first = m.try_write(&data).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            first,
            NUM * MAX_PAYLOAD,
            "every buffer filled to its payload"
        );
        assert_eq!(m.stats().messages_out, NUM as u32);
        assert_eq!(
            m.try_write(&data[first..])
                .unwrap_or_else(|e| panic!("{e}")),
            0
        );
        assert!(!m.write_ready().unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(m.write(&data[first..]), Err(Error::TimedOut));
        assert_eq!(
            m.stats().messages_out,
            NUM as u32,
            "the failed write sent nothing"
        );
        assert!(m.tx().0.stats().buffer_waits >= 3, "the waits are counted");
        let mut sent = first;
        let mut got = Vec::with_capacity(data.len());
        let mut buf = [0u8; 1000];
        let mut k = 0;
        let mut rounds = 0;
        while got.len() < data.len() {
            rounds += 1;
            assert!(rounds < 100_000, "no progress at {} bytes", got.len());
            drain(take_a);
            // Read a few times, 1..=1000 bytes each.
            for _ in 0..3 {
                let want = READ_SIZES[k % READ_SIZES.len()];
                k += 1;
                match r.try_read(&mut buf[..want]) {
                    Ok(Some(n)) => got.extend_from_slice(&buf[..n]),
                    Ok(None) => break,
                    Err(e) => panic!("remote read: {e}"),
                }
            }
            drain(take_b);
            if sent < data.len() {
                sent += m.try_write(&data[sent..]).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        assert_eq!(got, data, "every byte once, in order");
        drain(take_b);
        m.flush().unwrap_or_else(|e| panic!("master flush: {e}"));
        assert!(!m.tx().0.owes_doorbell(), "flushed: no doorbell owed");
        assert_eq!(r.buffered(), 0);
        assert_eq!(r.read(&mut buf), Err(Error::TimedOut), "nothing more");
        assert_stats(&m.stats(), "master");
        assert_stats(&r.stats(), "remote");
    });
}

/// Hostile and stray messages never reach the stream's bytes and never
/// stop it: a message to the remote's other address and one from an
/// address that is not the peer's (foreign), an empty one, and one longer
/// than the stream's 64-byte buffer (oversized: dropped whole, never
/// truncated) are each counted; the bytes around them arrive in order,
/// read one at a time out of a 64-byte message.
pub fn undeliverable_messages_are_counted<L: DoorbellLink>() {
    pair::<L, 64>(|m, r, _take_a, take_b, stranger| {
        let mut buf = [0u8; 200];
        assert_eq!(r.try_read(&mut buf).unwrap_or_else(|e| panic!("{e}")), None);
        assert_eq!(
            r.try_read(&mut []).unwrap_or_else(|e| panic!("{e}")),
            Some(0)
        );
        m.write_all(b"head:").unwrap_or_else(|e| panic!("{e}"));
        {
            let (tx, ep) = m.tx();
            // To the remote's other address, from an address that is not
            // the peer's (the remote stream was told the master's), empty,
            // longer than the stream's buffer.
            let sends: [(&rpmsg::link::Endpoint, u32, &[u8]); 4] = [
                (ep, REMOTE_EP + 1, b"to the other address"),
                (stranger, REMOTE_EP, b"not the peer"),
                (ep, REMOTE_EP, b""),
                (ep, REMOTE_EP, &[0x5A; 100]),
            ];
            for (src, dst, bytes) in sends {
                drain(take_b);
                assert_eq!(tx.try_send(src, dst, bytes), Ok(Sent::Sent));
            }
        }
        m.write_all(&[b'x'; 64]).unwrap_or_else(|e| panic!("{e}"));
        m.write_all(b":tail").unwrap_or_else(|e| panic!("{e}"));
        let mut got = Vec::new();
        let mut one = [0u8; 1];
        let mut spins = 0;
        while got.len() < 5 + 64 + 5 {
            spins += 1;
            assert!(spins < 10_000, "stuck at {got:?}");
            if let Some(n) = r.try_read(&mut one).unwrap_or_else(|e| panic!("{e}")) {
                got.extend_from_slice(&one[..n]);
            }
        }
        let want: Vec<u8> = b"head:"
            .iter()
            .chain(&[b'x'; 64])
            .chain(b":tail")
            .copied()
            .collect();
        assert_eq!(got, want);
        let s = r.stats();
        assert_eq!((s.foreign, s.empty, s.oversized), (2, 1, 1), "{s:?}");
        assert_eq!(s.messages_in, 3);
    });
}

/// Expands the stream suite into named `#[test]`s for one backend's
/// doorbell fixture.
#[macro_export]
macro_rules! stream_suite {
    ($link:ty) => {
        #[test]
        fn stream_10k_lines_and_blob_echoed() {
            $crate::stream::lines_and_blob_echoed::<$link>(31);
        }
        #[test]
        fn stream_async_10k_lines_and_blob() {
            $crate::stream::async_lines_and_blob::<$link>(32);
        }
        #[test]
        fn stream_back_pressure_and_recovery() {
            $crate::stream::back_pressure_and_recovery::<$link>();
        }
        #[test]
        fn stream_undeliverable_messages_are_counted() {
            $crate::stream::undeliverable_messages_are_counted::<$link>();
        }
    };
}
