//! The remote's start-up against a host that owns the resource table, in
//! simulated time, over non-coherent caches ([`SimCore`]: the host's core
//! has 64-byte lines, the remote's 32-byte lines, neither evicts on its
//! own, so a missing clean or invalidate of the status byte, the table or
//! the used indices leaves a side reading stale bytes).
//!
//! The host does what Linux remoteproc and `virtio_rpmsg_bus` do
//! (rpmsg-wire.md §2.1, §3.2, §3.3): status `ACKNOWLEDGE | DRIVER`,
//! features, `FEATURES_OK`, each vring zeroed and placed (`da`, notify id
//! written back), receive buffers posted, `DRIVER_OK`, and a kick on vring
//! 0, or none (OpenAMP's virtio driver role). The remote boots with
//! [`HostBoot`] and sleeps between polls until its poll deadline or a
//! doorbell, whichever comes first. Time is a counter in microseconds that
//! only the simulation moves; nothing here reads a clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

use std::cell::Cell;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::rc::Rc;

use conformance::sim::{CacheConfig, SimCore, SimMemory, WeakOrder};
use ipc_traits::mailbox::{ErrorType, Notify, QueueId, QueueSet};
use ipc_traits::shm::SharedMemory;
use rpmsg::link::ns::{NsDirectory, NsEvent};
use rpmsg::link::{Link, Sent, Storage};
use rpmsg::rings::{MasterConfig, MasterRings, QueueIds, RemoteConfig, RemoteRings};
use rpmsg::rsc_table::{
    status, table_size, FoundAtBoot, HostBoot, HostPoll, PollTiming, TableBuilder, VringSpec,
    FW_RSC_ADDR_ANY, VIRTIO_RPMSG_F_NS,
};
use rpmsg::wire::{ADDR_ANY, NS_ADDR};
use rpmsg::Error;
use vring::{BufferArea, Layout, Legacy, Suppression};

/// Ring tables for the test's life.
fn remote_tables<const N: usize>() -> &'static rpmsg::rings::RemoteTables<N> {
    Box::leak(Box::default())
}

const NUM: usize = 16;
const BUF: usize = 512;
const ALIGN: usize = 64;
const HOST_LINE: usize = 64;
const REMOTE_LINE: usize = 32;
const PEER_BASE: u64 = 0x4000_0000;

/// The table at offset 0, then the vrings, then the buffer pool.
const TABLE: usize = 0;
const TSIZE: usize = table_size(0, 0, 1, 2);
const VRING0: Layout = Layout::legacy_at(128, NUM as u16, ALIGN);
const VRING1: Layout = Layout::legacy_at(up(VRING0.end()), NUM as u16, ALIGN);
const POOL: usize = up(VRING1.end());
const SIZE: usize = POOL + 2 * NUM * BUF;

/// `fw_rsc_vdev` field offsets from the entry (rpmsg-wire.md §3.2).
const VDEV_GFEATURES: usize = 16;
const VDEV_STATUS: usize = 24;
const VDEV_VRINGS: usize = 28;
const VRING_LEN: usize = 20;

/// Microseconds.
const MS: u64 = 1_000;
const SECOND: u64 = 1_000_000;
/// The remote looks at the status byte every 10 ms at the latest and
/// reports a host that keeps it waiting every second.
const TIMING: PollTiming = PollTiming {
    interval: 10 * MS,
    patience: SECOND,
};

const fn up(v: usize) -> usize {
    (v + ALIGN - 1) & !(ALIGN - 1)
}

type HostCore = SimCore<HOST_LINE>;
type RemoteCore = SimCore<REMOTE_LINE>;
type HostLink<'m> = Link<'m, MasterRings<'m, HostCore, Legacy, NUM>, Bell>;
type RemoteLink<'m> = Link<'m, RemoteRings<'m, RemoteCore, Legacy, NUM>, Bell>;

/// A doorbell: one pending bit per queue.
#[derive(Clone, Default)]
struct Bell(Rc<Cell<u32>>);

impl ErrorType for Bell {
    type Error = Infallible;
}

impl Notify for Bell {
    fn notify(&mut self, queue: QueueId) -> Result<(), Infallible> {
        self.0.set(self.0.get() | 1 << queue.index());
        Ok(())
    }
}

impl Bell {
    fn take(&self) -> QueueSet {
        QueueSet::from_bits(self.0.replace(0))
    }

    fn is_rung(&self) -> bool {
        self.0.get() != 0
    }
}

/// The firmware's resource table image: vrings anywhere (the host places
/// them), the name service offered.
fn table_image() -> [u8; TSIZE] {
    TableBuilder::<TSIZE>::new(1)
        .rpmsg_vdev(
            VIRTIO_RPMSG_F_NS,
            [
                VringSpec::new(FW_RSC_ADDR_ANY, ALIGN as u32, NUM as u32, 0),
                VringSpec::new(FW_RSC_ADDR_ANY, ALIGN as u32, NUM as u32, 1),
            ],
        )
        .finish()
        .bytes()
}

/// Offset of the vdev entry in [`table_image`] (one entry: right after
/// the header and its offset word).
const VDEV: usize = TABLE + 20;

/// Something the host does at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Probe the device (Linux: start the remote, or recovery), with or
    /// without the start kick.
    Probe { kick: bool },
    /// Reset the device: status 0, the driver state gone.
    Reset,
}

/// A Linux-style host on its own cached core.
struct Host<'m> {
    core: &'m HostCore,
    link: Option<HostLink<'m>>,
    to_remote: Bell,
    to_host: Bell,
    schedule: VecDeque<(u64, Action)>,
    probes: u32,
}

impl<'m> Host<'m> {
    fn new(core: &'m HostCore, to_remote: Bell, to_host: Bell, schedule: &[(u64, Action)]) -> Self {
        Self {
            core,
            link: None,
            to_remote,
            to_host,
            schedule: schedule.iter().copied().collect(),
            probes: 0,
        }
    }

    /// Writes table bytes from a fresh line and cleans them.
    fn put(&self, at: usize, bytes: &[u8]) {
        let (start, len) = self.core.covering_lines(at, bytes.len()).unwrap();
        self.core.invalidate(start, len).unwrap();
        self.core.write(at, bytes).unwrap();
        self.core.clean(start, len).unwrap();
    }

    fn probe(&mut self, kick: bool) {
        assert!(self.link.is_none(), "probe without a reset first");
        let mut st = status::ACKNOWLEDGE | status::DRIVER;
        self.put(VDEV + VDEV_STATUS, &[st]);
        self.put(VDEV + VDEV_GFEATURES, &VIRTIO_RPMSG_F_NS.to_ne_bytes());
        st |= status::FEATURES_OK;
        self.put(VDEV + VDEV_STATUS, &[st]);
        for (k, layout) in [VRING0, VRING1].into_iter().enumerate() {
            // `rp_find_vq`: the vring's memory zeroed, its address and
            // notify id written back.
            let zeros = vec![0u8; layout.end() - layout.start()];
            self.put(layout.start(), &zeros);
            let entry = VDEV + VDEV_VRINGS + k * VRING_LEN;
            let da = u32::try_from(PEER_BASE + layout.start() as u64).unwrap();
            self.put(entry, &da.to_ne_bytes());
            self.put(entry + 12, &(k as u32).to_ne_bytes());
        }
        let config = MasterConfig {
            vring0: VRING0,
            vring1: VRING1,
            pool: POOL,
            buf_size: BUF,
            suppression: Suppression::Flags,
            queues: QueueIds::DEFAULT,
            rpmsg_lite_compat: false,
        };
        // SAFETY: the pool is this host's alone; the link of an earlier
        // session, whose buffers covered it, was dropped at the reset.
        let rings = unsafe { MasterRings::<_, Legacy, NUM>::new(self.core, config) }.unwrap();
        st |= status::DRIVER_OK;
        self.put(VDEV + VDEV_STATUS, &[st]);
        let mut bell = self.to_remote.clone();
        if kick {
            bell.notify(QueueIds::DEFAULT.vring0).unwrap();
        }
        // Each session's link has endpoint storage of its own (the host's
        // links come and go with its sessions; the test leaks a few bytes).
        let storage: &'static mut Storage<2> = Box::leak(Box::default());
        self.link = Some(Link::new(rings, bell, storage));
        self.probes += 1;
    }

    fn reset(&mut self) {
        self.put(VDEV + VDEV_STATUS, &[0]);
        self.link = None;
    }

    fn next_at(&self) -> Option<u64> {
        self.schedule.front().map(|&(t, _)| t)
    }

    /// Runs the actions due at or before `t`; whether one rang the
    /// remote's doorbell.
    fn run_until(&mut self, t: u64) -> bool {
        let mut rang = false;
        while let Some(&(at, action)) = self.schedule.front() {
            if at > t {
                break;
            }
            self.schedule.pop_front();
            match action {
                Action::Probe { kick } => self.probe(kick),
                Action::Reset => self.reset(),
            }
            rang |= self.to_remote.is_rung();
        }
        rang
    }

    fn link(&self) -> &HostLink<'m> {
        self.link.as_ref().expect("the host has set the device up")
    }
}

/// The shared memory with the firmware's table in it, and the two cores.
fn world() -> (SimMemory, HostCore) {
    let mem = SimMemory::new(SIZE, PEER_BASE);
    mem.poke(TABLE, &table_image()).unwrap();
    let host = mem.core::<HOST_LINE>(CacheConfig::write_back(1).never_evict());
    (mem, host)
}

/// A remote core out of reset: an empty cache.
fn remote_core(mem: &SimMemory, seed: u64) -> RemoteCore {
    mem.core::<REMOTE_LINE>(CacheConfig::write_back(seed).never_evict())
}

/// What the remote's wait cost.
#[derive(Debug, Default)]
struct Waited {
    polls: u32,
    timer_wakes: u32,
    doorbell_wakes: u32,
    not_ready_reports: u32,
}

/// The remote's wait for the host, as the firmware runs it: poll; on
/// `Waiting`, sleep until the poll deadline or the next doorbell. The
/// host acts at its scheduled times meanwhile. Gives up at `end`, or when
/// the remote would sleep with neither a timer nor a doorbell to wake it.
fn wait_for_host(
    boot: &mut HostBoot,
    core: &RemoteCore,
    host: &mut Host<'_>,
    clock: &mut u64,
    end: u64,
    waited: &mut Waited,
) -> Result<[VringSpec; 2], String> {
    loop {
        waited.polls += 1;
        let poll_at = match boot.poll(core, *clock) {
            Ok(HostPoll::Ready(v)) => return Ok(v),
            Ok(HostPoll::Waiting { poll_at }) => poll_at,
            Err(Error::NotReady) => {
                waited.not_ready_reports += 1;
                *clock + 1
            }
            Err(e) => return Err(format!("remote: {e}")),
        };
        // Asleep: the next host action that rings the doorbell, or the
        // poll deadline, ends the sleep.
        let _: QueueSet = host.to_remote.take();
        loop {
            match host.next_at() {
                Some(t) if t <= poll_at && t <= end => {
                    *clock = (*clock).max(t);
                    if host.run_until(t) {
                        waited.doorbell_wakes += 1;
                        break;
                    }
                }
                _ if poll_at == u64::MAX => {
                    return Err(format!(
                        "the remote sleeps until a doorbell that never comes: it never sees \
                         DRIVER_OK (asleep since {} ms, {} polls)",
                        *clock / MS,
                        waited.polls
                    ))
                }
                _ if poll_at > end => {
                    return Err(format!(
                        "no DRIVER_OK seen by {} ms ({} polls)",
                        end / MS,
                        waited.polls
                    ))
                }
                _ => {
                    *clock = poll_at;
                    waited.timer_wakes += 1;
                    break;
                }
            }
        }
    }
}

/// The remote's rings from the vrings the host wrote back (translated into
/// the window; the buffer halves are the host's pool).
fn remote_rings(
    core: &RemoteCore,
    vrings: [VringSpec; 2],
) -> RemoteRings<'_, RemoteCore, Legacy, NUM> {
    let layout = |s: VringSpec| {
        let offset = core.translate(u64::from(s.da), 1).unwrap();
        Layout::try_legacy_at(offset, u16::try_from(s.num).unwrap(), s.align as usize).unwrap()
    };
    let config = RemoteConfig {
        vring0: layout(vrings[0]),
        vring1: layout(vrings[1]),
        vring0_buffers: BufferArea::new(POOL, NUM * BUF),
        vring1_buffers: BufferArea::new(POOL + NUM * BUF, NUM * BUF),
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
    };
    // SAFETY: the host's two buffer halves, disjoint; the remote builds no
    // other buffer over them.
    unsafe { RemoteRings::<_, Legacy, NUM>::new(core, config, remote_tables()) }.unwrap()
}

/// Brings the link up once the remote has the vrings: the remote announces
/// `echo`, the host sees it, and `count` messages go to the remote and
/// come back. Panics if anything is lost.
fn link_up(host: &mut Host<'_>, remote: &mut RemoteLink<'_>, count: u32) {
    let rep = remote.bind(40).unwrap();
    let (mut rtx, mut rrx) = remote.split();
    assert_eq!(rtx.announce(&rep, "echo"), Ok(Sent::Sent));
    let Host {
        link,
        to_remote,
        to_host,
        ..
    } = host;
    let hlink = link.as_mut().expect("the host has set the device up");
    let _ns = hlink.bind(NS_ADDR).unwrap();
    let mep = hlink.bind(ADDR_ANY).unwrap();
    let (mut htx, mut hrx) = hlink.split();
    let mut dir = NsDirectory::<1>::new();
    let mut buf = [0u8; 64];
    let _: QueueSet = to_host.take();
    let r = hrx
        .try_recv(&mut buf)
        .unwrap()
        .expect("the host never saw the remote's announcement");
    assert_eq!(r.dst, NS_ADDR);
    let addr = match dir.on_message::<Legacy>(&buf[..r.len]) {
        Some(NsEvent::Created(s)) if s.name.as_str() == "echo" => s.addr,
        other => panic!("not the announcement: {other:?}"),
    };
    assert_eq!(addr, 40);
    for k in 0..count {
        assert_eq!(htx.try_send(&mep, addr, &k.to_le_bytes()), Ok(Sent::Sent));
        let _: QueueSet = to_remote.take();
        let r = rrx
            .try_recv(&mut buf)
            .unwrap()
            .unwrap_or_else(|| panic!("message {k}"));
        assert_eq!((r.dst, &buf[..r.len]), (rep.addr(), &k.to_le_bytes()[..]));
        assert_eq!(rtx.try_send(&rep, r.src, &buf[..r.len]), Ok(Sent::Sent));
        let _: QueueSet = to_host.take();
        let r = hrx
            .try_recv(&mut buf)
            .unwrap()
            .unwrap_or_else(|| panic!("echo {k}"));
        assert_eq!(&buf[..r.len], &k.to_le_bytes(), "echo {k}");
    }
    assert_eq!(rrx.try_recv(&mut buf), Ok(None));
}

/// The status byte as memory holds it (behind both caches).
fn status_in_memory(mem: &SimMemory) -> u8 {
    let mut b = [0u8; 1];
    mem.peek(VDEV + VDEV_STATUS, &mut b).unwrap();
    b[0]
}

/// Defect 3: Linux sets `DRIVER_OK` right after starting the core; a
/// remote whose start-up takes longer boots into a status that is already
/// set. It must keep it (not clear it and wait for a `DRIVER_OK` that
/// never comes again) and come up at once. The host's start kick predates
/// the remote's mailbox and is gone.
#[test]
fn late_remote_sees_driver_ok() {
    let (mem, hcore) = world();
    let (to_remote, to_host) = (Bell::default(), Bell::default());
    let mut host = Host::new(
        &hcore,
        to_remote,
        to_host.clone(),
        &[(0, Action::Probe { kick: true })],
    );
    host.run_until(0);
    assert_eq!(
        status_in_memory(&mem) & status::DRIVER_OK,
        status::DRIVER_OK
    );

    // The remote comes out of reset 1 s later; its mailbox starts empty.
    let mut clock = SECOND;
    let _: QueueSet = host.to_remote.take();
    let rcore = remote_core(&mem, 2);
    let mut boot = HostBoot::start::<_, _, TSIZE>(&rcore, TABLE, &rcore, TIMING, clock).unwrap();
    assert_eq!(
        boot.found(),
        FoundAtBoot::Current,
        "a fresh status is not stale"
    );
    let mut waited = Waited::default();
    let vrings = wait_for_host(
        &mut boot,
        &rcore,
        &mut host,
        &mut clock,
        10 * SECOND,
        &mut waited,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(clock, SECOND, "ready at the first poll");
    assert_eq!(waited.polls, 1);
    assert_eq!(
        vrings[1].da,
        u32::try_from(PEER_BASE + VRING1.start() as u64).unwrap()
    );

    let mut rs = Storage::<1>::new();
    let mut remote: RemoteLink<'_> = Link::new(remote_rings(&rcore, vrings), to_host, &mut rs);
    link_up(&mut host, &mut remote, 32);
    assert_eq!(host.probes, 1);
    assert!(!remote.is_broken() && !host.link().is_broken());
    assert_eq!(rcore.accesses_outside_window(), 0);
}

/// Defect 3, the other half: a remote that reboots on its own (watchdog,
/// debugger) while the host's session runs finds `DRIVER_OK` from the
/// session its previous boot used. That status is stale: it is cleared,
/// the remote does not attach to rings whose state it lost, and it comes
/// up when the host starts a new session (here: recovery 2 s later).
#[test]
fn stale_status_after_warm_reboot_is_cleared() {
    let (mem, hcore) = world();
    let (to_remote, to_host) = (Bell::default(), Bell::default());
    let recovery = 3 * SECOND;
    let mut host = Host::new(
        &hcore,
        to_remote,
        to_host.clone(),
        &[
            (0, Action::Probe { kick: true }),
            (recovery, Action::Reset),
            (recovery + MS, Action::Probe { kick: true }),
        ],
    );

    // First boot: the remote attaches and the link carries traffic.
    let mut clock = 0;
    let rcore = remote_core(&mem, 2);
    let mut boot = HostBoot::start::<_, _, TSIZE>(&rcore, TABLE, &rcore, TIMING, clock).unwrap();
    assert_eq!(boot.found(), FoundAtBoot::NotReady);
    let mut waited = Waited::default();
    let vrings = wait_for_host(
        &mut boot,
        &rcore,
        &mut host,
        &mut clock,
        SECOND,
        &mut waited,
    )
    .unwrap_or_else(|e| panic!("first boot: {e}"));
    {
        let mut rs = Storage::<1>::new();
        let mut remote: RemoteLink<'_> =
            Link::new(remote_rings(&rcore, vrings), to_host.clone(), &mut rs);
        link_up(&mut host, &mut remote, 5);
        // The warm reboot: the link's state is gone with the core's RAM.
    }
    rcore.flush_all();
    drop(rcore);

    // Second boot, 1 s later, into the old session's DRIVER_OK.
    clock = SECOND;
    let rcore = remote_core(&mem, 3);
    assert_eq!(
        status_in_memory(&mem) & status::DRIVER_OK,
        status::DRIVER_OK
    );
    let mut boot = HostBoot::start::<_, _, TSIZE>(&rcore, TABLE, &rcore, TIMING, clock).unwrap();
    assert_eq!(boot.found(), FoundAtBoot::StaleCleared);
    assert_eq!(
        status_in_memory(&mem),
        0,
        "the stale status is cleared in memory"
    );
    let mut waited = Waited::default();
    let vrings = wait_for_host(
        &mut boot,
        &rcore,
        &mut host,
        &mut clock,
        10 * SECOND,
        &mut waited,
    )
    .unwrap_or_else(|e| panic!("second boot: {e}"));
    assert!(
        clock >= recovery + MS,
        "the remote waited for the host's new session (ready at {} ms)",
        clock / MS
    );
    assert!(waited.polls > 100, "it kept polling meanwhile");
    assert_eq!(
        waited.not_ready_reports, 2,
        "NotReady once per second of waiting (1 s to 3 s)"
    );
    let mut rs = Storage::<1>::new();
    let mut remote: RemoteLink<'_> = Link::new(remote_rings(&rcore, vrings), to_host, &mut rs);
    link_up(&mut host, &mut remote, 32);
    assert_eq!(host.probes, 2);
    assert!(!remote.is_broken() && !host.link().is_broken());
    assert_eq!(rcore.accesses_outside_window(), 0);
}

/// Defect 4: OpenAMP's virtio driver role sets `DRIVER_OK` and sends no
/// kick. A remote that sleeps until a doorbell never wakes; one that polls
/// on its timer sees `DRIVER_OK` within one poll interval.
#[test]
fn boot_without_start_kick() {
    let (mem, hcore) = world();
    let (to_remote, to_host) = (Bell::default(), Bell::default());
    let set_up = 250 * MS + 3;
    let mut host = Host::new(
        &hcore,
        to_remote,
        to_host.clone(),
        &[(set_up, Action::Probe { kick: false })],
    );
    let mut clock = 0;
    let rcore = remote_core(&mem, 2);
    let mut boot = HostBoot::start::<_, _, TSIZE>(&rcore, TABLE, &rcore, TIMING, clock).unwrap();
    assert_eq!(boot.found(), FoundAtBoot::NotReady);
    let mut waited = Waited::default();
    let vrings = wait_for_host(
        &mut boot,
        &rcore,
        &mut host,
        &mut clock,
        10 * SECOND,
        &mut waited,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(waited.doorbell_wakes, 0, "no doorbell was rung");
    assert!(
        clock >= set_up && clock <= set_up + TIMING.interval,
        "DRIVER_OK seen within one poll interval (set at {} us, seen at {} us)",
        set_up,
        clock
    );
    let mut rs = Storage::<1>::new();
    let mut remote: RemoteLink<'_> = Link::new(remote_rings(&rcore, vrings), to_host, &mut rs);
    link_up(&mut host, &mut remote, 32);
    assert!(!remote.is_broken() && !host.link().is_broken());
}

/// A remote that restarts by jumping to its reset vector keeps its data
/// cache, with the used indices of the session it had. If the host has
/// started a new session meanwhile (recovery: rings zeroed, `DRIVER_OK`),
/// the boot must read the used indices from memory, not from those lines,
/// or it takes the new session for its old one and clears it.
#[test]
fn soft_reset_with_a_warm_cache_keeps_the_new_session() {
    let (mem, hcore) = world();
    let (to_remote, to_host) = (Bell::default(), Bell::default());
    let recovery = SECOND;
    let mut host = Host::new(
        &hcore,
        to_remote,
        to_host.clone(),
        &[
            (0, Action::Probe { kick: true }),
            (recovery, Action::Reset),
            (recovery + MS, Action::Probe { kick: true }),
        ],
    );
    let mut clock = 0;
    let rcore = remote_core(&mem, 2);
    let mut boot = HostBoot::start::<_, _, TSIZE>(&rcore, TABLE, &rcore, TIMING, clock).unwrap();
    let mut waited = Waited::default();
    let vrings = wait_for_host(
        &mut boot,
        &rcore,
        &mut host,
        &mut clock,
        SECOND,
        &mut waited,
    )
    .unwrap_or_else(|e| panic!("first boot: {e}"));
    {
        let mut rs = Storage::<1>::new();
        let mut remote: RemoteLink<'_> =
            Link::new(remote_rings(&rcore, vrings), to_host.clone(), &mut rs);
        link_up(&mut host, &mut remote, 5);
    }
    // The remote soft-resets at 0.5 s and spends 2 s in its start-up code;
    // the host recovers at 1 s. The cache keeps the old session's lines.
    host.run_until(recovery + MS);
    let _: QueueSet = host.to_remote.take();
    clock = recovery + 2 * SECOND;
    let mut boot = HostBoot::start::<_, _, TSIZE>(&rcore, TABLE, &rcore, TIMING, clock).unwrap();
    assert_eq!(
        boot.found(),
        FoundAtBoot::Current,
        "the host's new session is current"
    );
    let mut waited = Waited::default();
    let vrings = wait_for_host(
        &mut boot,
        &rcore,
        &mut host,
        &mut clock,
        10 * SECOND,
        &mut waited,
    )
    .unwrap_or_else(|e| panic!("after the soft reset: {e}"));
    assert_eq!(waited.polls, 1);
    let mut rs = Storage::<1>::new();
    let mut remote: RemoteLink<'_> = Link::new(remote_rings(&rcore, vrings), to_host, &mut rs);
    link_up(&mut host, &mut remote, 32);
    assert_eq!(host.probes, 2);
}

/// Weak mode (`conformance::sim::WeakOrder`): the boot reads the used
/// indices after it saw `DRIVER_OK` (its acquire fence), so a new session
/// whose rings the host zeroed before `DRIVER_OK` is never taken for the
/// old one. The remote's core has been up since before the old session
/// (whose used indices were nonzero), so without the fence its loads of the
/// indices may run ahead of the status read and see the old session. The
/// status read itself may run early too: then it is `NotReady` (between
/// the sessions) or a `DRIVER_OK` whose rings are read after it; never
/// `StaleCleared`. Uncached and cached, over 16 seeds each.
#[test]
fn weak_boot_reads_the_rings_after_driver_ok() {
    let mut current = 0;
    for seed in 0..32u64 {
        let order = WeakOrder::arm_like(seed);
        let mem = SimMemory::new(SIZE, PEER_BASE).weak(if seed % 2 == 0 {
            order.uncached()
        } else {
            order
        });
        mem.poke(TABLE, &table_image()).unwrap();
        let hcore: HostCore = mem.core(CacheConfig::write_back(1).never_evict());
        let rcore = remote_core(&mem, seed);
        let mut host = Host::new(
            &hcore,
            Bell::default(),
            Bell::default(),
            &[
                (0, Action::Probe { kick: false }),
                (SECOND, Action::Reset),
                (SECOND + MS, Action::Probe { kick: false }),
            ],
        );
        host.run_until(0);
        hcore.drain_stores();
        // The old session ran: its used indices are nonzero in memory.
        for layout in [VRING0, VRING1] {
            mem.poke(layout.used_offset() + 2, &7u16.to_ne_bytes())
                .unwrap();
        }
        // Recovery: reset, rings zeroed, DRIVER_OK; the host's stores land
        // before the remote boots (time passes).
        host.run_until(SECOND + MS);
        hcore.drain_stores();
        let boot = HostBoot::start::<_, _, TSIZE>(&rcore, TABLE, &rcore, TIMING, 0).unwrap();
        assert_ne!(
            boot.found(),
            FoundAtBoot::StaleCleared,
            "seed {seed}: the new session was taken for the old one"
        );
        current += u32::from(boot.found() == FoundAtBoot::Current);
        // The host's session is intact.
        assert_eq!(
            status_in_memory(&mem) & status::DRIVER_OK,
            status::DRIVER_OK
        );
    }
    assert!(current > 0, "no boot ever found the session current");
}
