//! Both roles brought up by the library's boot path ([`rpmsg::boot`]) with
//! each peer profile, on simulated non-coherent cores (the master's with
//! 64-byte lines, the remote's with 32-byte lines, neither evicting on its
//! own), then driven by doorbells only: a side looks at its rings only
//! after its doorbell rang, so a missing kick fails the test instead of
//! being covered by polling. Every doorbell is counted per queue, so a
//! useless one (for a returned buffer the peer does not wait for) shows.
//!
//! Doorbell queues: master → remote on vring 0 is the start kick and
//! returned receive buffers, on vring 1 messages; remote → master on
//! vring 0 messages, on vring 1 returned receive buffers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

use std::cell::RefCell;
use std::convert::Infallible;
use std::rc::Rc;

use conformance::sim::{CacheConfig, SimCore, SimMemory};
use ipc_traits::mailbox::{ErrorType, Notify, QueueId, QueueSet, Spins};
use rpmsg::boot::{
    master_bare, master_table, remote_bare, BareLayout, Placement, Profile, RemoteBoot, F_EVENT_IDX,
};
use rpmsg::link::ns::{NsDirectory, NsEvent};
use rpmsg::link::{Link, Sent, Storage};
use rpmsg::rings::{MasterConfig, MasterRings, QueueIds, RemoteRings};
use rpmsg::rsc_table::{
    table_size, PollTiming, TableBuilder, VdevView, VringSpec, FW_RSC_ADDR_ANY, VIRTIO_RPMSG_F_NS,
};
use rpmsg::wire::{ADDR_ANY, NS_ADDR};
use rpmsg::Error;
use vring::{Layout, Legacy, Suppression};

/// Ring tables for the test's life.
fn remote_tables<const N: usize>() -> &'static rpmsg::rings::RemoteTables<N> {
    Box::leak(Box::default())
}

const NUM: usize = 16;
const BUF: usize = 512;
const ALIGN: usize = 64;
const PEER_BASE: u64 = 0x4000_0000;
const MESSAGES: u32 = 64;

const TABLE: usize = 0;
const TSIZE: usize = table_size(0, 0, 1, 2);
const VRING0: Layout = Layout::legacy_at(128, NUM as u16, ALIGN);
const VRING1: Layout = Layout::legacy_at(up(VRING0.end()), NUM as u16, ALIGN);
const POOL: usize = up(VRING1.end());
const SIZE: usize = POOL + 2 * NUM * BUF;
const PLACEMENT: Placement = Placement {
    vrings: [VRING0.start(), VRING1.start()],
    pool: POOL,
};
const TIMING: PollTiming = PollTiming {
    interval: 10,
    patience: 1000,
};

/// The bare layout: rpmsg-lite's, vring 1 one aligned ring further.
const STRIDE: usize = up(Layout::legacy_at(0, NUM as u16, ALIGN).end());
const BARE: BareLayout = BareLayout::rpmsg_lite(0, NUM as u16, ALIGN, STRIDE);

const fn up(v: usize) -> usize {
    (v + ALIGN - 1) & !(ALIGN - 1)
}

type MasterCore = SimCore<64>;
type RemoteCore = SimCore<32>;
type MasterLink<'m> = Link<'m, MasterRings<'m, MasterCore, Legacy, NUM>, Bell>;
type RemoteLink<'m> = Link<'m, RemoteRings<'m, RemoteCore, Legacy, NUM>, Bell>;

#[derive(Default)]
struct Rung {
    pending: u32,
    counts: [u32; 2],
}

/// A doorbell that remembers what is pending and counts every ring.
#[derive(Clone, Default)]
struct Bell(Rc<RefCell<Rung>>);

impl ErrorType for Bell {
    type Error = Infallible;
}

impl Notify for Bell {
    fn notify(&mut self, queue: QueueId) -> Result<(), Infallible> {
        let mut r = self.0.borrow_mut();
        r.pending |= 1 << queue.index();
        r.counts[usize::from(queue.index())] += 1;
        Ok(())
    }
}

impl Bell {
    fn take(&self) -> QueueSet {
        QueueSet::from_bits(core::mem::take(&mut self.0.borrow_mut().pending))
    }

    fn counts(&self) -> [u32; 2] {
        self.0.borrow().counts
    }
}

fn table_image(dfeatures: u32) -> [u8; TSIZE] {
    TableBuilder::<TSIZE>::new(1)
        .rpmsg_vdev(
            dfeatures,
            [
                VringSpec::new(FW_RSC_ADDR_ANY, ALIGN as u32, NUM as u32, 0),
                VringSpec::new(FW_RSC_ADDR_ANY, ALIGN as u32, NUM as u32, 1),
            ],
        )
        .finish()
        .bytes()
}

struct World {
    mem: SimMemory,
    master: MasterCore,
    remote: RemoteCore,
    to_remote: Bell,
    to_master: Bell,
}

fn world(dfeatures: u32) -> World {
    let mem = SimMemory::new(SIZE, PEER_BASE);
    mem.poke(TABLE, &table_image(dfeatures)).unwrap();
    let master = mem.core::<64>(CacheConfig::write_back(1).never_evict());
    let remote = mem.core::<32>(CacheConfig::write_back(2).never_evict());
    World {
        mem,
        master,
        remote,
        to_remote: Bell::default(),
        to_master: Bell::default(),
    }
}

/// The master side of a table boot with `profile`.
fn master_rings<'m>(
    w: &'m World,
    profile: Profile,
    event_idx: bool,
) -> Result<MasterRings<'m, MasterCore, Legacy, NUM>, Error> {
    let (_, info) = VdevView::locate::<_, TSIZE>(&w.master, TABLE).unwrap();
    let mut bell = w.to_remote.clone();
    // SAFETY: the pool is the master's alone.
    unsafe {
        master_table::<_, _, Legacy, _, NUM>(
            &w.master, &info, &w.master, PLACEMENT, profile, event_idx, &mut bell,
        )
    }
}

/// The remote side of a table boot with `profile`: start, a bounded wait
/// for `DRIVER_OK` (no kick needed), the rings.
fn remote_rings(
    w: &World,
    profile: Profile,
    event_idx: bool,
) -> Result<RemoteRings<'_, RemoteCore, Legacy, NUM>, Error> {
    let mut boot =
        RemoteBoot::start::<_, _, TSIZE>(&w.remote, TABLE, &w.remote, profile, TIMING, 0)?;
    if event_idx {
        boot = boot.with_event_idx()?;
    }
    let vrings = boot.wait(&w.remote, Spins::new(4))?;
    // SAFETY: the master's two buffer halves; no other handle on this core.
    unsafe { boot.rings::<_, _, Legacy, NUM>(&w.remote, &w.remote, vrings, remote_tables()) }
}

/// The remote announces `echo`, the master sees it (on the remote's
/// doorbell), then `count` messages go to the remote and come back, each
/// side acting only on its doorbell.
fn echo(w: &World, master: &mut MasterLink<'_>, remote: &mut RemoteLink<'_>, count: u32) {
    let rep = remote.bind(40).unwrap();
    let _ns = master.bind(NS_ADDR).unwrap();
    let mep = master.bind(ADDR_ANY).unwrap();
    {
        let (mut rtx, mut rrx) = remote.split();
        let (mut mtx, mut mrx) = master.split();
        assert_eq!(rtx.announce(&rep, "echo"), Ok(Sent::Sent));
        let rang = w.to_master.take();
        assert!(!rang.is_empty(), "the announcement rang the master");
        let mut buf = [0u8; 64];
        let r = mrx
            .try_recv(&mut buf)
            .unwrap()
            .expect("the master never saw the announcement");
        assert_eq!(r.dst, NS_ADDR);
        let mut dir = NsDirectory::<1>::new();
        let addr = match dir.on_message::<Legacy>(&buf[..r.len]) {
            Some(NsEvent::Created(s)) if s.name.as_str() == "echo" => s.addr,
            other => panic!("not the announcement: {other:?}"),
        };
        for k in 0..count {
            assert_eq!(mtx.try_send(&mep, addr, &k.to_le_bytes()), Ok(Sent::Sent));
            let rang = w.to_remote.take();
            assert!(!rang.is_empty(), "message {k}: the master rang the remote");
            let r = rrx
                .try_recv(&mut buf)
                .unwrap()
                .unwrap_or_else(|| panic!("message {k}"));
            assert_eq!(&buf[..r.len], &k.to_le_bytes());
            assert_eq!(rtx.try_send(&rep, r.src, &buf[..r.len]), Ok(Sent::Sent));
            let rang = w.to_master.take();
            assert!(!rang.is_empty(), "echo {k}: the remote rang the master");
            let r = mrx
                .try_recv(&mut buf)
                .unwrap()
                .unwrap_or_else(|| panic!("echo {k}"));
            assert_eq!(&buf[..r.len], &k.to_le_bytes(), "echo {k}");
        }
        assert_eq!(rrx.try_recv(&mut buf), Ok(None));
    }
    assert!(!remote.is_broken() && !master.is_broken());
    assert_eq!(w.remote.accesses_outside_window(), 0);
    assert_eq!(w.master.accesses_outside_window(), 0);
}

/// Our master and our remote, table boot: one start kick, one doorbell
/// per message each way, none for returned buffers.
fn table_both_roles(profile: Profile, event_idx: bool) {
    let dfeatures = VIRTIO_RPMSG_F_NS | if event_idx { F_EVENT_IDX } else { 0 };
    let w = world(dfeatures);
    let mrings = master_rings(&w, profile, event_idx).unwrap();
    let start_kicks = u32::from(profile.start_kick());
    assert_eq!(
        w.to_remote.counts(),
        [start_kicks, 0],
        "{profile:?}: start kick"
    );
    let _: QueueSet = w.to_remote.take();
    let rrings = remote_rings(&w, profile, event_idx).unwrap();
    let (mut ms, mut rs) = (Storage::<2>::new(), Storage::<1>::new());
    let mut master: MasterLink<'_> = Link::new(mrings, w.to_remote.clone(), &mut ms);
    let mut remote: RemoteLink<'_> = Link::new(rrings, w.to_master.clone(), &mut rs);
    echo(&w, &mut master, &mut remote, MESSAGES);
    assert_eq!(
        w.to_remote.counts(),
        [start_kicks, MESSAGES],
        "{profile:?}: master → remote (vring 0: start + returned buffers, vring 1: messages)"
    );
    assert_eq!(
        w.to_master.counts(),
        [MESSAGES + 1, 0],
        "{profile:?}: remote → master (vring 0: announcement + echoes, vring 1: returned buffers)"
    );
    drop((master, remote));
    let _ = &w.mem;
}

#[test]
fn native_table_boot_no_useless_doorbells() {
    table_both_roles(Profile::Native, false);
}

#[test]
fn native_table_boot_with_event_idx() {
    table_both_roles(Profile::Native, true);
}

/// OpenAMP's conventions: no start kick (the remote sees `DRIVER_OK` by
/// polling), no `EVENT_IDX`.
#[test]
fn openamp_table_boot_without_start_kick() {
    table_both_roles(Profile::OpenAmp, false);
}

/// A remote with the Linux profile against a master that sets the device
/// up the way Linux does (status walk, vrings zeroed and placed, receive
/// buffers posted, `DRIVER_OK`, kick; `NO_INTERRUPT` on vring 1 until it
/// runs out of transmit buffers), with `EVENT_IDX` offered and accepted.
#[test]
fn linux_profile_remote_against_a_linux_style_master() {
    let w = world(VIRTIO_RPMSG_F_NS | F_EVENT_IDX);
    let mrings = master_rings(&w, Profile::Native, true).unwrap();
    let rrings = remote_rings(&w, Profile::Linux, true).unwrap();
    let _: QueueSet = w.to_remote.take();
    let (mut ms, mut rs) = (Storage::<2>::new(), Storage::<1>::new());
    let mut master: MasterLink<'_> = Link::new(mrings, w.to_remote.clone(), &mut ms);
    let mut remote: RemoteLink<'_> = Link::new(rrings, w.to_master.clone(), &mut rs);
    echo(&w, &mut master, &mut remote, MESSAGES);
    assert_eq!(w.to_remote.counts(), [1, MESSAGES]);
    assert_eq!(w.to_master.counts(), [MESSAGES + 1, 0]);
}

/// The master of an rpmsg-lite system as rpmsg-lite lays it out
/// (`rpmsg_lite_master_init`: byte-compatible rings, `NO_INTERRUPT` set on
/// both rings, pending start kick), with its own doorbell habits: it rings
/// for returned receive buffers whenever the remote's flags allow. The
/// remote takes the defaults of [`Profile::RpmsgLite`], no extra switch:
/// it rings for every message despite `NO_INTERRUPT` (or the master would
/// never look), asks the master not to ring for returned buffers, and
/// rings for none of its own.
#[test]
fn remote_with_defaults_against_an_rpmsg_lite_master() {
    let w = world(0);
    let [vring0, vring1] = BARE.vrings().unwrap();
    let config = MasterConfig {
        vring0,
        vring1,
        pool: BARE.pool().unwrap(),
        buf_size: BUF,
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
        rpmsg_lite_compat: true,
    };
    // SAFETY: the pool is the master's alone.
    let mrings = unsafe { MasterRings::<_, Legacy, NUM>::new(&w.master, config) }.unwrap();
    let mut kick = w.to_remote.clone();
    kick.notify(QueueIds::DEFAULT.vring0).unwrap();
    // The remote comes up on the start kick.
    assert!(!w.to_remote.take().is_empty());
    // SAFETY: the master's two buffer halves; no other handle on this core.
    let rrings = unsafe {
        remote_bare::<_, Legacy, NUM>(&w.remote, BARE, Profile::RpmsgLite, false, remote_tables())
    }
    .unwrap();
    let (mut ms, mut rs) = (Storage::<2>::new(), Storage::<1>::new());
    let mut master: MasterLink<'_> = Link::new(mrings, w.to_remote.clone(), &mut ms);
    let mut remote: RemoteLink<'_> = Link::new(rrings, w.to_master.clone(), &mut rs);
    echo(&w, &mut master, &mut remote, MESSAGES);
    assert_eq!(
        w.to_remote.counts(),
        [1, MESSAGES],
        "the start kick and one per message; none for returned buffers"
    );
    assert_eq!(
        w.to_master.counts(),
        [MESSAGES + 1, 0],
        "one per message despite NO_INTERRUPT; none for returned buffers"
    );
}

/// Our master on the bare layout with each bare profile, our remote with
/// the same one.
fn bare_both_roles(profile: Profile, event_idx: bool) {
    let w = world(0);
    let mut kick = w.to_remote.clone();
    // SAFETY: the pool is the master's alone.
    let mrings =
        unsafe { master_bare::<_, Legacy, _, NUM>(&w.master, BARE, profile, event_idx, &mut kick) }
            .unwrap();
    assert_eq!(w.to_remote.counts(), [1, 0], "{profile:?}: start kick");
    assert!(!w.to_remote.take().is_empty());
    // SAFETY: as above.
    let rrings = unsafe {
        remote_bare::<_, Legacy, NUM>(&w.remote, BARE, profile, event_idx, remote_tables())
    }
    .unwrap();
    let (mut ms, mut rs) = (Storage::<2>::new(), Storage::<1>::new());
    let mut master: MasterLink<'_> = Link::new(mrings, w.to_remote.clone(), &mut ms);
    let mut remote: RemoteLink<'_> = Link::new(rrings, w.to_master.clone(), &mut rs);
    echo(&w, &mut master, &mut remote, MESSAGES);
    assert_eq!(w.to_remote.counts(), [1, MESSAGES], "{profile:?}");
    assert_eq!(w.to_master.counts(), [MESSAGES + 1, 0], "{profile:?}");
}

#[test]
fn rpmsg_lite_bare_both_roles() {
    bare_both_roles(Profile::RpmsgLite, false);
}

#[test]
fn native_bare_both_roles_with_event_idx() {
    bare_both_roles(Profile::Native, true);
}

/// A side that runs out of transmit buffers while asking its peer to be
/// quiet about returns must get the doorbell for the next one back: the
/// request is withdrawn when a send finds none free.
#[test]
fn starved_sides_are_rung_for_the_next_free_buffer() {
    let w = world(VIRTIO_RPMSG_F_NS);
    let mrings = master_rings(&w, Profile::Native, false).unwrap();
    let rrings = remote_rings(&w, Profile::Native, false).unwrap();
    let _: QueueSet = w.to_remote.take();
    let (mut ms, mut rs) = (Storage::<2>::new(), Storage::<1>::new());
    let mut master: MasterLink<'_> = Link::new(mrings, w.to_remote.clone(), &mut ms);
    let mut remote: RemoteLink<'_> = Link::new(rrings, w.to_master.clone(), &mut rs);
    let rep = remote.bind(40).unwrap();
    let mep = master.bind(50).unwrap();
    let (mut rtx, mut rrx) = remote.split();
    let (mut mtx, mut mrx) = master.split();
    let mut buf = [0u8; 16];

    // The remote fills every receive buffer of the master.
    for k in 0..NUM as u32 {
        assert_eq!(rtx.try_send(&rep, 50, &k.to_le_bytes()), Ok(Sent::Sent));
    }
    assert_eq!(rtx.try_send(&rep, 50, b"x"), Ok(Sent::NoBuffer));
    let before = w.to_remote.counts()[0];
    let _: QueueSet = w.to_master.take();
    assert!(mrx.try_recv(&mut buf).unwrap().is_some());
    assert_eq!(
        w.to_remote.counts()[0],
        before + 1,
        "the starved remote is rung for the buffer returned"
    );
    let _: QueueSet = w.to_remote.take();
    assert_eq!(rtx.try_send(&rep, 50, b"x"), Ok(Sent::Sent));

    // The master fills every receive buffer of the remote.
    for k in 0..NUM as u32 {
        assert_eq!(mtx.try_send(&mep, 40, &k.to_le_bytes()), Ok(Sent::Sent));
    }
    assert_eq!(mtx.try_send(&mep, 40, b"y"), Ok(Sent::NoBuffer));
    let before = w.to_master.counts()[1];
    let _: QueueSet = w.to_remote.take();
    assert!(rrx.try_recv(&mut buf).unwrap().is_some());
    assert_eq!(
        w.to_master.counts()[1],
        before + 1,
        "the starved master is rung for the buffer returned"
    );
    let _: QueueSet = w.to_master.take();
    assert_eq!(mtx.try_send(&mep, 40, b"y"), Ok(Sent::Sent));
}

/// A profile that cannot hold is an error at boot, never a hang.
#[test]
fn mis_set_profiles_fail_at_boot() {
    // EVENT_IDX asked of stacks that never re-arm it.
    let w = world(VIRTIO_RPMSG_F_NS | F_EVENT_IDX);
    let boot =
        RemoteBoot::start::<_, _, TSIZE>(&w.remote, TABLE, &w.remote, Profile::OpenAmp, TIMING, 0)
            .unwrap();
    assert_eq!(
        boot.with_event_idx().unwrap_err(),
        Error::EventIdxUnsupported
    );
    assert_eq!(
        master_rings(&w, Profile::OpenAmp, true).err(),
        Some(Error::EventIdxUnsupported)
    );
    // SAFETY: no ring is built (the profile is refused first).
    let bare = unsafe {
        remote_bare::<_, Legacy, NUM>(&w.remote, BARE, Profile::RpmsgLite, true, remote_tables())
    };
    assert_eq!(bare.err(), Some(Error::EventIdxUnsupported));
    // A table for an rpmsg-lite master; Linux as a remote.
    assert_eq!(
        RemoteBoot::start::<_, _, TSIZE>(
            &w.remote,
            TABLE,
            &w.remote,
            Profile::RpmsgLite,
            TIMING,
            0
        )
        .err(),
        Some(Error::WrongProfile)
    );
    assert_eq!(
        master_rings(&w, Profile::Linux, false).err(),
        Some(Error::WrongProfile)
    );

    // EVENT_IDX asked for, but the firmware's table does not offer it.
    let w = world(VIRTIO_RPMSG_F_NS);
    let boot =
        RemoteBoot::start::<_, _, TSIZE>(&w.remote, TABLE, &w.remote, Profile::Linux, TIMING, 0)
            .unwrap();
    assert_eq!(
        boot.with_event_idx().unwrap_err(),
        Error::EventIdxNotOffered
    );
    assert_eq!(
        master_rings(&w, Profile::Native, true).err(),
        Some(Error::EventIdxNotOffered)
    );

    // Offered by the table, not accepted by the host: the remote learns it
    // from gfeatures, at boot.
    let w = world(VIRTIO_RPMSG_F_NS | F_EVENT_IDX);
    let _rings = master_rings(&w, Profile::Native, false).unwrap();
    assert_eq!(
        remote_rings(&w, Profile::Linux, true).err(),
        Some(Error::EventIdxNotOffered)
    );

    // No DRIVER_OK: the bounded wait ends with NotReady, not a hang.
    let w = world(VIRTIO_RPMSG_F_NS);
    assert_eq!(
        remote_rings(&w, Profile::Linux, false).err(),
        Some(rpmsg::Error::NotReady)
    );
}
