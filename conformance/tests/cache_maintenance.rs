//! Cache maintenance the end-to-end suites cannot see, each pinned by a
//! scenario over non-coherent [`SimCore`]s (or a recording cache) that
//! fails when that maintenance is missing. `conformance/mutate-cache.sh`
//! removes every maintenance call of `vring`, `rpmsg` and `ipc-traits` one
//! at a time and runs this file among the suites.
//!
//! Every scenario is single-threaded and uses caches that never evict on
//! their own: a line leaves a cache only through maintenance or an explicit
//! [`SimCore::flush_all`] (the eviction a real cache may do at any moment),
//! so each outcome is certain.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::rc::Rc;

use conformance::sim::{CacheConfig, LineState, SimCore, SimMemory};
use ipc_traits::buf::{Dirty, Received, ShmBuf};
use ipc_traits::cache::{CacheMaintenance, LineRange};
use ipc_traits::mailbox::{ErrorType, Notify, QueueId, QueueSet};
use ipc_traits::power::WakeLock;
use ipc_traits::shm::{RawRegion, SharedMemory};
use rpmsg::link::{Link, Rx, Sent, Storage, Tx};
use rpmsg::rings::{MasterConfig, MasterRings, QueueIds, RemoteConfig, RemoteRings};
use rpmsg::rsc_table::{
    status, table_size, TableBuilder, VdevView, VringSpec, FW_RSC_ADDR_ANY, VIRTIO_RPMSG_F_NS,
};
use rpmsg::session::SessionWord;
use rpmsg::split::{Region, Side, SplitConfig, SplitLayout, SplitRings};
use vring::{BufferArea, Layout, Legacy, Suppression};

/// Ring tables for the test's life.
fn remote_tables<const N: usize>() -> &'static rpmsg::rings::RemoteTables<N> {
    Box::leak(Box::default())
}

/// Device tables for the test's life.
fn device_tables<const N: usize>() -> &'static rpmsg::vring::DeviceTables<N> {
    Box::leak(Box::default())
}

/// The master's line (a Cortex-A) and the remote's (a Cortex-M7 or E907).
const MASTER_LINE: usize = 64;
const REMOTE_LINE: usize = 32;
const PEER_BASE: u64 = 0x4000_0000;

fn pinned(seed: u64) -> CacheConfig {
    CacheConfig::write_back(seed).never_evict()
}

/// A doorbell nobody listens to.
#[derive(Clone, Copy, Default)]
struct Quiet;
impl ErrorType for Quiet {
    type Error = core::convert::Infallible;
}
impl Notify for Quiet {
    fn notify(&mut self, _: QueueId) -> Result<(), Self::Error> {
        Ok(())
    }
}

// --- the master's pool ---------------------------------------------------------

const NUM: usize = 4;
const BUF: usize = 256;
const VRING0: Layout = Layout::legacy_at(0, NUM as u16, 64);
const VRING1: Layout = Layout::legacy_at(0x400, NUM as u16, 64);
const POOL: usize = 0x800;
const POOL_LEN: usize = 2 * NUM * BUF;
const SIZE: usize = POOL + POOL_LEN;

type Master<'m> = Link<'m, MasterRings<'m, SimCore<MASTER_LINE>, Legacy, NUM>, Quiet>;
type Remote<'m> = Link<'m, RemoteRings<'m, SimCore<REMOTE_LINE>, Legacy, NUM>, Quiet>;

fn master_link<'m>(
    core: &'m SimCore<MASTER_LINE>,
    rpmsg_lite_compat: bool,
    storage: &'m mut Storage<1>,
) -> Master<'m> {
    let cfg = MasterConfig {
        vring0: VRING0,
        vring1: VRING1,
        pool: POOL,
        buf_size: BUF,
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
        rpmsg_lite_compat,
    };
    // SAFETY: the pool belongs to this master alone.
    Link::new(
        unsafe { MasterRings::new(core, cfg) }.unwrap(),
        Quiet,
        storage,
    )
}

fn remote_link<'m>(
    core: &'m SimCore<REMOTE_LINE>,
    rpmsg_lite_compat: bool,
    storage: &'m mut Storage<1>,
) -> Remote<'m> {
    let cfg = RemoteConfig {
        vring0: VRING0,
        vring1: VRING1,
        vring0_buffers: BufferArea::new(POOL, NUM * BUF),
        vring1_buffers: BufferArea::new(POOL + NUM * BUF, NUM * BUF),
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
    };
    // SAFETY: disjoint areas, reached only through these rings.
    let rings = unsafe { RemoteRings::new(core, cfg, remote_tables()) }
        .unwrap()
        .notify_always(rpmsg_lite_compat);
    Link::new(rings, Quiet, storage)
}

fn message(round: usize, who: u8) -> Vec<u8> {
    let len = 1 + (round * 53) % (BUF - rpmsg::wire::HEADER_LEN);
    (0..len).map(|j| who ^ (round + j) as u8).collect()
}

/// The master's cache holds dirty lines over the whole pool when it lays the
/// rings out (the previous session's unsent transmit buffers, or anything the
/// core wrote there before): `MasterRings::new` must write the receive
/// buffers back before posting them, or a later eviction of those lines
/// overwrites the messages the remote writes into them. Every buffer is used
/// twice, in both directions, with the master's whole cache evicted between
/// the remote's send and the master's receive; in Linux mode and in
/// rpmsg-lite mode (transmit buffers parked in vring1's used ring, which
/// must be clean too when the ring takes them).
#[test]
fn master_pool_dirty_before_posting_never_overwrites_the_remote() {
    for compat in [false, true] {
        let mem = SimMemory::new(SIZE, PEER_BASE);
        let m = mem.core::<MASTER_LINE>(pinned(1));
        let r = mem.core::<REMOTE_LINE>(pinned(2));
        m.write(POOL, &[0xEE; POOL_LEN]).unwrap();
        let (mut ms, mut rs) = (Storage::new(), Storage::new());
        let mut master = master_link(&m, compat, &mut ms);
        let mut remote = remote_link(&r, compat, &mut rs);
        // Every slot a ring holds is clean in the master's cache: the ring
        // hands it back as `Received`, which promises no dirty line (what
        // lets a receive buffer be posted again without a write-back). In
        // rpmsg-lite mode that covers the transmit buffers parked in
        // vring1's used ring; in Linux mode they stay with the master, bound
        // to the transmit ring's ids at attach and written back whole then
        // (so a send cleans only the lines it writes).
        for off in (POOL..POOL + POOL_LEN).step_by(MASTER_LINE) {
            assert_ne!(
                m.line_state(off),
                LineState::Dirty,
                "compat {compat}: pool line {off:#x} handed to a ring dirty"
            );
        }
        let mep = master.bind(50).unwrap();
        let rep = remote.bind(40).unwrap();
        let (mut mtx, mut mrx) = master.split();
        let (mut rtx, mut rrx) = remote.split();
        let mut got = [0u8; BUF];
        for round in 0..4 * NUM {
            let up = message(round, 0x5A);
            assert_eq!(rtx.try_send(&rep, 50, &up), Ok(Sent::Sent));
            m.flush_all();
            let rx = mrx.try_recv(&mut got).unwrap().unwrap();
            assert_eq!(
                (rx.src, &got[..rx.len]),
                (40, &up[..]),
                "compat {compat}, round {round}"
            );

            let down = message(round, 0xA5);
            assert_eq!(mtx.try_send(&mep, 40, &down), Ok(Sent::Sent));
            r.flush_all();
            let rx = rrx.try_recv(&mut got).unwrap().unwrap();
            assert_eq!(
                (rx.src, &got[..rx.len]),
                (50, &down[..]),
                "compat {compat}, round {round}"
            );
        }
        assert_eq!(mrx.try_recv(&mut got), Ok(None));
        let (ms, rs) = (master.rx_stats(), remote.rx_stats());
        assert_eq!((ms.bad_header, rs.bad_header), (0, 0));
        assert!(!master.is_broken() && !remote.is_broken());
    }
}

/// Buffers cost the lines their message occupies: the sender cleans the
/// lines covering header + payload and the receiver invalidates the same,
/// not the buffer's capacity (256 bytes: 4 of the master's lines, 8 of the
/// remote's). Counted as line commands (what a real cache executes per
/// line, cached or not). Ring maintenance does not depend on the message
/// length, so over the same ring positions (whole laps of the rings) the
/// difference between two lengths is buffer maintenance alone.
#[test]
fn buffer_maintenance_covers_header_and_payload_only() {
    use rpmsg::wire::HEADER_LEN;
    const ROUNDS: usize = 2 * NUM;
    let mem = SimMemory::new(SIZE, PEER_BASE);
    let m = mem.core::<MASTER_LINE>(pinned(1));
    let r = mem.core::<REMOTE_LINE>(pinned(2));
    let (mut ms, mut rs) = (Storage::new(), Storage::new());
    let mut master = master_link(&m, false, &mut ms);
    let mut remote = remote_link(&r, false, &mut rs);
    let mep = master.bind(50).unwrap();
    let rep = remote.bind(40).unwrap();
    let (mut mtx, mut mrx) = master.split();
    let (mut rtx, mut rrx) = remote.split();
    let mut got = [0u8; BUF];
    // Line commands of `ROUNDS` round trips of `len`-byte messages:
    // [master clean, master invalidate, remote clean, remote invalidate].
    let mut trips = |len: usize| -> [u64; 4] {
        let (m0, r0) = (m.stats(), r.stats());
        for round in 0..ROUNDS {
            let up = vec![round as u8; len];
            assert_eq!(rtx.try_send(&rep, 50, &up), Ok(Sent::Sent));
            let rx = mrx.try_recv(&mut got).unwrap().unwrap();
            assert_eq!(&got[..rx.len], &up[..]);
            let down = vec![!(round as u8); len];
            assert_eq!(mtx.try_send(&mep, 40, &down), Ok(Sent::Sent));
            let rx = rrx.try_recv(&mut got).unwrap().unwrap();
            assert_eq!(&got[..rx.len], &down[..]);
        }
        let (m1, r1) = (m.stats(), r.stats());
        [
            m1.clean_line_commands - m0.clean_line_commands,
            m1.invalidate_line_commands - m0.invalidate_line_commands,
            r1.clean_line_commands - r0.clean_line_commands,
            r1.invalidate_line_commands - r0.invalidate_line_commands,
        ]
    };
    // A first lap cleans each transmit buffer of the master whole once
    // (nothing is known about what the core wrote there before).
    trips(16);
    // 16 + 16 bytes: one line on either core.
    let base = trips(16);
    for len in [1, 16, 17, 48, 49, 112, 200, BUF - HEADER_LEN] {
        let lines = |line: usize| ((HEADER_LEN + len).div_ceil(line) as u64 - 1) * ROUNDS as u64;
        let (ml, rl) = (lines(MASTER_LINE), lines(REMOTE_LINE));
        assert_eq!(
            trips(len),
            [base[0] + ml, base[1] + ml, base[2] + rl, base[3] + rl],
            "{len}-byte payload: line commands beyond those of a 16-byte one"
        );
    }
    let (ms, rs) = (master.rx_stats(), remote.rx_stats());
    assert_eq!((ms.bad_header, rs.bad_header), (0, 0));
}

// --- the resource table ----------------------------------------------------------

const TSIZE: usize = table_size(0, 0, 1, 2);
/// The table sits at window offset 0 (line-aligned for both cores).
const TABLE: usize = 0;

fn table_memory() -> (SimMemory, usize) {
    let table = TableBuilder::<TSIZE>::new(1)
        .rpmsg_vdev(
            VIRTIO_RPMSG_F_NS,
            [
                VringSpec::new(FW_RSC_ADDR_ANY, 64, NUM as u32, 0),
                VringSpec::new(FW_RSC_ADDR_ANY, 64, NUM as u32, 1),
            ],
        )
        .finish();
    let mem = SimMemory::new(TSIZE.next_multiple_of(MASTER_LINE), PEER_BASE);
    mem.poke(TABLE, &table.bytes()).unwrap();
    let vdev = rpmsg::rsc_table::parse(&table.bytes()).unwrap().offset;
    (mem, vdev)
}

/// What a Linux-style host does at probe, through its own cache: the vring
/// addresses, then the status up to `DRIVER_OK`, written back.
fn host_probe(host: &SimCore<MASTER_LINE>, vdev: usize, da: [u32; 2]) {
    for (k, da) in da.into_iter().enumerate() {
        host.write(TABLE + vdev + 28 + 20 * k, &da.to_ne_bytes())
            .unwrap();
    }
    let st = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK;
    host_status(host, vdev, st);
}

fn host_status(host: &SimCore<MASTER_LINE>, vdev: usize, st: u8) {
    host.write(TABLE + vdev + 24, &[st]).unwrap();
    host.clean(0, host.memory().len()).unwrap();
}

/// The status byte as the host reads it (fresh from memory).
fn host_sees_status(host: &SimCore<MASTER_LINE>, vdev: usize) -> u8 {
    host.invalidate(0, host.memory().len()).unwrap();
    let mut b = [0u8; 1];
    host.read(TABLE + vdev + 24, &mut b).unwrap();
    b[0]
}

/// The remote's cache holds lines of the table from before the host wrote
/// it (it read its table image earlier, or it polls the status): locating
/// the vdev, reading the status and reading the vrings must each fetch what
/// the host wrote since, not the remote's copy.
#[test]
fn vdev_view_reads_past_stale_lines_of_the_remote() {
    let (mem, vdev) = table_memory();
    let host = mem.core::<MASTER_LINE>(pinned(3));
    let remote = mem.core::<REMOTE_LINE>(pinned(4));
    let mut image = [0u8; TSIZE];
    remote.read(TABLE, &mut image).unwrap();

    // A host that probed before this locate.
    let da = [PEER_BASE as u32 + 0x1000, PEER_BASE as u32 + 0x2000];
    host_probe(&host, vdev, da);
    let (view, info) = VdevView::locate::<_, TSIZE>(&remote, TABLE).unwrap();
    assert_eq!(info.offset, vdev);
    assert_eq!(
        [info.vrings[0].da, info.vrings[1].da],
        da,
        "locate read stale lines"
    );
    assert_ne!(
        info.status & status::DRIVER_OK,
        0,
        "locate read a stale status"
    );
    assert!(view.driver_ok(&remote).unwrap());

    // The host resets the device, then probes again at other addresses.
    host_status(&host, vdev, 0);
    assert!(
        !view.driver_ok(&remote).unwrap(),
        "status read from a stale line"
    );
    let again = [PEER_BASE as u32 + 0x3000, PEER_BASE as u32 + 0x4000];
    host_probe(&host, vdev, again);
    assert!(
        view.driver_ok(&remote).unwrap(),
        "status read from a stale line"
    );
    let specs = view.vrings(&remote).unwrap();
    assert_eq!(
        [specs[0].da, specs[1].da],
        again,
        "vrings read from stale lines"
    );
}

/// A status the remote clears must reach memory: the host sees the clear,
/// and the remote's own next (fresh) read does not bring the old status back
/// by discarding an unwritten clear.
#[test]
fn vdev_status_reset_reaches_memory() {
    let (mem, vdev) = table_memory();
    let host = mem.core::<MASTER_LINE>(pinned(5));
    let remote = mem.core::<REMOTE_LINE>(pinned(6));
    // A previous session left DRIVER_OK in the table (a warm reboot of the
    // remote).
    host_probe(
        &host,
        vdev,
        [PEER_BASE as u32 + 0x1000, PEER_BASE as u32 + 0x2000],
    );
    let (view, _) = VdevView::locate::<_, TSIZE>(&remote, TABLE).unwrap();
    view.reset_status(&remote).unwrap();
    assert_eq!(
        host_sees_status(&host, vdev),
        0,
        "the clear stayed in the remote's cache"
    );
    assert!(!view.driver_ok(&remote).unwrap(), "the clear was discarded");
    assert_eq!(view.status(&remote).unwrap(), 0);
}

// --- session words ---------------------------------------------------------------

/// Two peers on different non-coherent cores follow each other's session
/// words: each read sees the other's last write (not a stale line of its
/// own), each write (begin, attach, end) reaches memory.
#[test]
fn session_words_cross_non_coherent_caches() {
    let mem = SimMemory::new(256, PEER_BASE);
    let a = mem.core::<MASTER_LINE>(pinned(7));
    let b = mem.core::<REMOTE_LINE>(pinned(8));
    let (wa, wb) = (SessionWord::at(0), SessionWord::at(128));
    // B looks before A starts: nothing valid, and the line is now in B's
    // cache.
    assert_eq!(wa.read(&b).unwrap(), None);
    let sa = wa.begin(&a, 7).unwrap();
    let seen = wa.read(&b).unwrap().expect("B sees A's session");
    assert_eq!((seen.session, seen.peer_session), (sa, 0));
    let sb = wb.begin(&b, 9).unwrap();
    wb.attach(&b, sa).unwrap();
    let seen = wb.read(&a).unwrap().expect("A sees B's session");
    assert_eq!((seen.session, seen.peer_session), (sb, sa));
    wa.attach(&a, sb).unwrap();
    assert_eq!(wa.read(&b).unwrap().map(|s| s.peer_session), Some(sb));
    // A shuts down in order: B must see the word gone.
    wa.end(&a).unwrap();
    assert_eq!(wa.read(&b).unwrap(), None, "B still sees the ended session");
    assert_eq!(wa.read(&a).unwrap(), None);
    // A starts again from the seed (the ended word is not valid).
    assert_eq!(wa.begin(&a, 11).unwrap(), 11);
    assert_eq!(wa.read(&b).unwrap().map(|s| s.session), Some(11));
}

// --- split ownership --------------------------------------------------------------

const SPLIT_NUM: usize = 4;
const SPLIT: SplitLayout = SplitLayout::checked(
    Region::packed(0, SPLIT_NUM as u16, 256, MASTER_LINE),
    Region::packed(0x1000, SPLIT_NUM as u16, 256, MASTER_LINE),
    MASTER_LINE,
);

/// Doorbells as a shared bit set (the peer reads and clears it).
#[derive(Clone, Default)]
struct Bell(Rc<Cell<u32>>);
impl ErrorType for Bell {
    type Error = core::convert::Infallible;
}
impl Notify for Bell {
    fn notify(&mut self, q: QueueId) -> Result<(), Self::Error> {
        self.0.set(self.0.get() | 1 << q.index());
        Ok(())
    }
}
impl Bell {
    fn take(&self) -> QueueSet {
        QueueSet::from_bits(self.0.replace(0))
    }
}

type SplitLink<'m> = Link<'m, SplitRings<'m, SimCore<MASTER_LINE>, Legacy, SPLIT_NUM>, Bell>;
type SplitTx<'l, 'm> = Tx<'l, 'm, SplitRings<'m, SimCore<MASTER_LINE>, Legacy, SPLIT_NUM>, Bell>;
type SplitRx<'l, 'm> = Rx<'l, 'm, SplitRings<'m, SimCore<MASTER_LINE>, Legacy, SPLIT_NUM>, Bell>;

fn split_link<'m>(
    core: &'m SimCore<MASTER_LINE>,
    side: Side,
    bell: Bell,
    wake: Option<&'m WakeLock>,
    storage: &'m mut Storage<1>,
) -> SplitLink<'m> {
    let mut cfg = SplitConfig::new(SPLIT, side);
    cfg.consumed_notify = true;
    cfg.wake = wake;
    // SAFETY: each side owns its pool; the peer's is reached only through
    // the ring.
    let rings =
        unsafe { SplitRings::<_, Legacy, SPLIT_NUM>::new(core, cfg, device_tables()) }.unwrap();
    Link::new(rings, bell, storage)
}

/// One pass of a side: the doorbells it was rung, given to both halves
/// (the peer's pass ended; a message is available), then a receive pass
/// (ending it rings the consumed-buffer notification). What it received.
fn split_pass(
    tx: &mut SplitTx<'_, '_>,
    rx: &mut SplitRx<'_, '_>,
    rang: &Bell,
    got: &mut [u8],
) -> Option<rpmsg::link::Received> {
    let set = rang.take();
    tx.on_notify(set).unwrap();
    rx.on_notify(set);
    rx.try_recv(got).unwrap()
}

/// Each side's transmit pool is bound to its ring's ids at start and
/// written back whole then, as the master's is: nothing is known of what
/// the core wrote there before, and a send cleans only the lines it writes.
#[test]
fn split_transmit_pool_is_written_back_at_start() {
    let mem = SimMemory::new(0x2000, PEER_BASE);
    let core = mem.core::<MASTER_LINE>(pinned(1));
    let (own, _) = SPLIT.regions(Side::A);
    let len = SPLIT_NUM * own.buf_size;
    core.write(own.pool, &vec![0xEE; len]).unwrap();
    let mut storage = Storage::new();
    let _link = split_link(&core, Side::A, Bell::default(), None, &mut storage);
    for off in (own.pool..own.pool + len).step_by(MASTER_LINE) {
        assert_ne!(
            core.line_state(off),
            LineState::Dirty,
            "transmit pool line {off:#x} still dirty after start"
        );
    }
}

/// The buffer type-states on their own: a sealed buffer is written back
/// (header and body), and a received one reads past stale lines of this
/// core once validated, beyond the prefix invalidated first.
#[test]
fn buffer_states_clean_what_was_written_and_invalidate_what_is_read() {
    let mem = SimMemory::new(SIZE, PEER_BASE);
    let a = mem.core::<REMOTE_LINE>(pinned(1));
    let b = mem.core::<REMOTE_LINE>(pinned(2));
    // `b` holds every line of the slot, stale from now on.
    let mut old = [0u8; 128];
    b.read(POOL, &mut old).unwrap();
    // SAFETY: the slot is owned by this test, reached through this handle
    // only on `a`.
    let mut d = unsafe { ShmBuf::<_, Dirty>::new_unchecked(&a, POOL, 128) }.unwrap();
    d.write(16, &[0x5A; 84]).unwrap();
    let sealed = d.seal(&[0xA5; 16], 100).map_err(|(_, e)| e).unwrap();
    assert_eq!(sealed.len(), 100);
    // SAFETY: the slot came back to `b` (the test hands it over); `b`
    // never wrote it.
    let r = unsafe { ShmBuf::<_, Received>::new_unchecked(&b, POOL, 128) }.unwrap();
    let r = r.invalidate_prefix(16).map_err(|(_, e)| e).unwrap();
    let r = r.validate(100).map_err(|(_, e)| e).unwrap();
    let mut got = [0u8; 100];
    r.read(0, &mut got).unwrap();
    assert_eq!((&got[..16], &got[16..]), (&[0xA5; 16][..], &[0x5A; 84][..]));
}

/// Split ownership with the consumed-buffer notification, started over
/// memory where the previous session left both consumed words saying "one
/// message seen, one returned". Each side resets the word of its region at
/// start, and the reset must reach memory: the owner reads the word fresh
/// (invalidating its line first), so a reset left in its cache is discarded
/// and the old session's progress reads as the peer's confirmation of this
/// session's buffers (a wake guard released before the peer is done with
/// the ring, a "message available" doorbell skipped). Then one message each
/// way over the fresh words.
#[test]
fn split_consumed_words_of_a_previous_session_are_reset_in_memory() {
    let mem = SimMemory::new(0x2000, PEER_BASE);
    let stale = 1u32 | (1 << 16);
    for region in [SPLIT.a, SPLIT.b] {
        mem.poke(region.consumed, &stale.to_ne_bytes()).unwrap();
    }
    let ca = mem.core::<MASTER_LINE>(pinned(9));
    let cb = mem.core::<MASTER_LINE>(pinned(10));
    let (to_a, to_b) = (Bell::default(), Bell::default());
    let (mut sa, mut sb) = (Storage::new(), Storage::new());
    let mut a = split_link(&ca, Side::A, to_b.clone(), None, &mut sa);
    let mut b = split_link(&cb, Side::B, to_a.clone(), None, &mut sb);
    for region in [SPLIT.a, SPLIT.b] {
        let mut word = [0u8; 4];
        mem.peek(region.consumed, &mut word).unwrap();
        assert_eq!(
            u32::from_ne_bytes(word),
            0,
            "consumed word at {:#x}",
            region.consumed
        );
    }
    let ea = a.bind(30).unwrap();
    let eb = b.bind(40).unwrap();
    let (mut atx, mut arx) = a.split();
    let (mut btx, mut brx) = b.split();
    let mut got = [0u8; 64];
    for a_to_b in [true, false] {
        let (ftx, frx, ttx, trx, bell_from, bell_to, src, dst, ep_from) = if a_to_b {
            (
                &mut atx, &mut arx, &mut btx, &mut brx, &to_a, &to_b, 30, 40, &ea,
            )
        } else {
            (
                &mut btx, &mut brx, &mut atx, &mut arx, &to_b, &to_a, 40, 30, &eb,
            )
        };
        assert_eq!(ftx.try_send(ep_from, dst, b"first"), Ok(Sent::Sent));
        let mut delivered = None;
        for _ in 0..16 {
            assert_eq!(split_pass(ftx, frx, bell_from, &mut got), None);
            delivered = split_pass(ttx, trx, bell_to, &mut got);
            if delivered.is_some() {
                break;
            }
        }
        let r = delivered.expect("the first message of the session never arrived");
        assert_eq!((r.src, &got[..r.len]), (src, &b"first"[..]));
    }
}

/// Split ownership with the consumed-buffer notification: each side reads
/// its own consumed word (which only the peer writes) fresh, and writes the
/// peer's word back to memory. A sends one message per round to B; between
/// rounds A has read its word (the line sits clean in A's cache) and B has
/// ended its pass, confirming what it saw in that word and going quiet. A's
/// next send must see B's confirmation: a stale read (the line not
/// invalidated by A, or B's write left in B's cache) still says "nothing
/// seen", the send takes the doorbell for it as already rung, and B, quiet,
/// never reads the message. At the end the word covers every buffer A
/// reaped, so A holds its wake lock no more.
#[test]
fn split_consumed_word_is_read_fresh() {
    let lock_a = WakeLock::new();
    let mem = SimMemory::new(0x2000, PEER_BASE);
    let ca = mem.core::<MASTER_LINE>(pinned(11));
    let cb = mem.core::<MASTER_LINE>(pinned(12));
    let (to_a, to_b) = (Bell::default(), Bell::default());
    let (mut sa, mut sb) = (Storage::new(), Storage::new());
    let mut a = split_link(&ca, Side::A, to_b.clone(), Some(&lock_a), &mut sa);
    let mut b = split_link(&cb, Side::B, to_a.clone(), None, &mut sb);
    let ea = a.bind(30).unwrap();
    let _eb = b.bind(40).unwrap();
    let (mut atx, mut arx) = a.split();
    let (mut btx, mut brx) = b.split();
    let mut got = [0u8; 64];
    for round in 0..2 * SPLIT_NUM {
        let text = format!("message {round}");
        assert_eq!(atx.try_send(&ea, 40, text.as_bytes()), Ok(Sent::Sent));
        let mut delivered = None;
        for _ in 0..16 {
            assert_eq!(split_pass(&mut atx, &mut arx, &to_a, &mut got), None);
            delivered = split_pass(&mut btx, &mut brx, &to_b, &mut got);
            if delivered.is_some() {
                break;
            }
        }
        let r = delivered.unwrap_or_else(|| {
            panic!(
                "round {round}: B never woke for A's message (A read a stale consumed \
                 word, or B's confirmation never reached memory)"
            )
        });
        assert_eq!(
            (r.src, &got[..r.len]),
            (30, text.as_bytes()),
            "round {round}"
        );
        // B ends its pass: the consumed word says "seen and returned", and
        // B waits for the next doorbell.
        assert_eq!(brx.try_recv(&mut got), Ok(None));
        assert_eq!(split_pass(&mut atx, &mut arx, &to_a, &mut got), None);
    }
    assert_eq!(
        lock_a.holders(),
        0,
        "A still holds its wake lock: its consumed word read as not covering the reaped buffers"
    );
}

// --- RawRegion over a recording cache -----------------------------------------

/// What a [`Recorder`] was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Clean(usize, usize),
    Invalidate(usize, usize),
    CleanInvalidate(usize, usize),
}

/// A cache with 32-byte lines that records every operation by address.
#[derive(Default)]
struct Recorder(RefCell<Vec<Op>>);

impl CacheMaintenance for Recorder {
    const LINE: usize = 32;
    fn clean(&self, range: LineRange<Self>) {
        self.0
            .borrow_mut()
            .push(Op::Clean(range.start(), range.len()));
    }
    unsafe fn invalidate(&self, range: LineRange<Self>) {
        self.0
            .borrow_mut()
            .push(Op::Invalidate(range.start(), range.len()));
    }
    fn clean_invalidate(&self, range: LineRange<Self>) {
        self.0
            .borrow_mut()
            .push(Op::CleanInvalidate(range.start(), range.len()));
    }
}

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Chunk([u8; 64]);

/// `RawRegion` turns every window maintenance request into the same
/// operation on its cache, over the real addresses of exactly the lines
/// asked for: a buffer cleaned before it is published, a received buffer
/// invalidated before it is read.
#[test]
fn raw_region_maintains_exactly_the_lines_asked_for() {
    let mut backing = vec![Chunk([0; 64]); 8];
    let base = NonNull::new(backing.as_mut_ptr().cast::<u8>()).unwrap();
    let addr = base.as_ptr() as usize;
    // SAFETY: `backing` outlives the region and is only used through it.
    let shm = unsafe { RawRegion::new(base, 512, PEER_BASE, Recorder::default()) }.unwrap();
    let ops = || shm.cache().0.borrow_mut().split_off(0);

    shm.clean(64, 96).unwrap();
    assert_eq!(ops(), [Op::Clean(addr + 64, 96)]);
    shm.invalidate(256, 32).unwrap();
    assert_eq!(ops(), [Op::Invalidate(addr + 256, 32)]);
    assert!(shm.clean(8, 32).is_err() && shm.invalidate(0, 40).is_err());
    assert_eq!(ops(), [], "a refused range touches no line");

    // SAFETY: the slot 128..256 is owned by this test alone.
    let mut buf = unsafe { ShmBuf::<_, Dirty>::new_unchecked(&shm, 128, 128) }.unwrap();
    buf.write(0, b"ping").unwrap();
    let clean = buf.clean().unwrap();
    assert_eq!(ops(), [Op::Clean(addr + 128, 128)]);
    let _slot = clean.into_published();
    // SAFETY: the slot came back (this test plays the peer).
    let rx = unsafe { ShmBuf::<_, Received>::new_unchecked(&shm, 128, 128) }.unwrap();
    let rx = rx.invalidate().unwrap().validate(4).unwrap();
    assert_eq!(ops(), [Op::Invalidate(addr + 128, 128)]);
    let mut text = [0u8; 4];
    rx.read(0, &mut text).unwrap();
    assert_eq!(&text, b"ping");
}

/// Both links over `m` and `r` (flags mode), their rings following `conv`.
fn links_with<'m>(
    m: &'m SimCore<MASTER_LINE>,
    r: &'m SimCore<REMOTE_LINE>,
    conv: rpmsg::rings::Conventions,
    ms: &'m mut Storage<1>,
    rs: &'m mut Storage<1>,
) -> (Master<'m>, Remote<'m>) {
    let mcfg = MasterConfig {
        vring0: VRING0,
        vring1: VRING1,
        pool: POOL,
        buf_size: BUF,
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
        rpmsg_lite_compat: false,
    };
    let rcfg = RemoteConfig {
        vring0: VRING0,
        vring1: VRING1,
        vring0_buffers: BufferArea::new(POOL, NUM * BUF),
        vring1_buffers: BufferArea::new(POOL + NUM * BUF, NUM * BUF),
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
    };
    // SAFETY: the pool belongs to this master alone.
    let mrings = unsafe { MasterRings::new(m, mcfg) }
        .and_then(|x| x.with_conventions(conv))
        .unwrap();
    // SAFETY: disjoint areas, reached only through these rings.
    let rrings = unsafe { RemoteRings::new(r, rcfg, remote_tables()) }
        .and_then(|x| x.with_conventions(conv))
        .unwrap();
    (Link::new(mrings, Quiet, ms), Link::new(rrings, Quiet, rs))
}

/// `Conventions::return_with_next_look` (`Profile::Native`, flags mode):
/// the receive buffer that ends a pass goes back with the next look, which
/// publishes it and then reads the peer's index from the line the
/// publication's fenced read of the peer's flags loaded. A ping-pong round
/// (each side: receive one, send one, look once more and find nothing)
/// costs each core one invalidation fewer than with the buffer given back
/// at once.
#[test]
fn a_pass_end_return_goes_back_with_the_next_look() {
    use rpmsg::boot::Profile;
    use rpmsg::rings::Conventions;
    const ROUNDS: u64 = 3 * NUM as u64;
    // Invalidation line commands per round [master, remote] under `conv`.
    let per_round = |conv: Conventions| -> [u64; 2] {
        let mem = SimMemory::new(SIZE, PEER_BASE);
        let m = mem.core::<MASTER_LINE>(pinned(1));
        let r = mem.core::<REMOTE_LINE>(pinned(2));
        let (mut ms, mut rs) = (Storage::new(), Storage::new());
        let (mut master, mut remote) = links_with(&m, &r, conv, &mut ms, &mut rs);
        let mep = master.bind(50).unwrap();
        let rep = remote.bind(40).unwrap();
        let (mut mtx, mut mrx) = master.split();
        let (mut rtx, mut rrx) = remote.split();
        let mut got = [0u8; BUF];
        let mut round = |k: u64| {
            let msg = k.to_le_bytes();
            assert_eq!(mtx.try_send(&mep, 40, &msg), Ok(Sent::Sent));
            assert!(mrx.try_recv(&mut got).unwrap().is_none(), "no echo yet");
            let r = rrx.try_recv(&mut got).unwrap().expect("the message");
            assert_eq!(&got[..r.len], &msg);
            assert_eq!(rtx.try_send(&rep, 50, &msg), Ok(Sent::Sent));
            assert!(rrx.try_recv(&mut got).unwrap().is_none(), "one message");
            let e = mrx.try_recv(&mut got).unwrap().expect("the echo");
            assert_eq!(&got[..e.len], &msg, "echo {k}");
        };
        for k in 0..NUM as u64 {
            round(k);
        }
        let (m0, r0) = (m.stats(), r.stats());
        for k in 0..ROUNDS {
            round(NUM as u64 + k);
        }
        let (m1, r1) = (m.stats(), r.stats());
        [
            (m1.invalidate_line_commands - m0.invalidate_line_commands) / ROUNDS,
            (r1.invalidate_line_commands - r0.invalidate_line_commands) / ROUNDS,
        ]
    };
    let native = Profile::Native.conventions();
    assert!(native.return_with_next_look);
    let at_once = Conventions {
        return_with_next_look: false,
        ..native
    };
    let [m_once, r_once] = per_round(at_once);
    assert_eq!(
        per_round(native),
        [m_once - 1, r_once - 1],
        "one invalidation per round fewer on each core"
    );
}

/// At most one receive buffer is withheld, and only until the next look:
/// the remote fills all but that one, the master's next look gives it
/// back (with the message it finds), and the remote can send again.
#[test]
fn at_most_one_return_is_withheld_until_the_next_look() {
    let mem = SimMemory::new(SIZE, PEER_BASE);
    let m = mem.core::<MASTER_LINE>(pinned(3));
    let r = mem.core::<REMOTE_LINE>(pinned(4));
    let (mut ms, mut rs) = (Storage::new(), Storage::new());
    let conv = rpmsg::boot::Profile::Native.conventions();
    let (mut master, mut remote) = links_with(&m, &r, conv, &mut ms, &mut rs);
    master.bind(50).unwrap();
    let rep = remote.bind(40).unwrap();
    let (_, mut mrx) = master.split();
    let (mut rtx, _) = remote.split();
    let mut got = [0u8; BUF];
    assert_eq!(rtx.try_send(&rep, 50, b"first"), Ok(Sent::Sent));
    assert!(mrx.try_recv(&mut got).unwrap().is_some());
    // The first buffer is withheld: the remote has the other NUM - 1.
    for k in 1..NUM {
        assert_eq!(rtx.try_send(&rep, 50, &[k as u8]), Ok(Sent::Sent), "{k}");
    }
    assert_eq!(rtx.try_send(&rep, 50, b"x"), Ok(Sent::NoBuffer));
    // The next look gives it back (and finds message 1).
    let r1 = mrx.try_recv(&mut got).unwrap().unwrap();
    assert_eq!(&got[..r1.len], &[1]);
    assert_eq!(rtx.try_send(&rep, 50, b"again"), Ok(Sent::Sent));
    // Mid-pass returns are not withheld: reading the rest frees them all
    // but the pass's last.
    let mut n = 0;
    while mrx.try_recv(&mut got).unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, NUM - 1, "messages 2.. and \"again\"");
    for k in 0..NUM {
        assert_eq!(
            rtx.try_send(&rep, 50, &[k as u8]),
            Ok(Sent::Sent),
            "after the pass {k}"
        );
    }
    assert_eq!(mrx.stats().return_failures, 0);
}
