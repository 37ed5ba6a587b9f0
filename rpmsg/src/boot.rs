//! Bringing a link up, for both roles, against each peer stack.
//!
//! A [`Profile`] names the stack on the other side and fixes the
//! conventions that differ between stacks (rpmsg-wire.md §2.1, §3.3):
//!
//! | Profile | the peer is | start kick | `DRIVER_OK` | we ring after each send | we ring for returned buffers | `EVENT_IDX` |
//! |---|---|---|---|---|---|---|
//! | [`Profile::Linux`] | Linux remoteproc + `virtio_rpmsg_bus` (master) | sends one on vring 0; may predate us | in the table | when its flags ask | when its flags ask | may be offered (Linux re-arms) |
//! | [`Profile::RpmsgLite`] | NXP rpmsg-lite (either role) | master sends one on vring 0 and its remote waits for it | none (no table) | always (its master leaves `NO_INTERRUPT` set) | never (it polls for free buffers) | never |
//! | [`Profile::OpenAmp`] | OpenAMP (either role) | its driver role sends none | in the table (its remote polls for it) | when its flags ask | when its flags ask | never (its rpmsg layer never re-arms) |
//! | [`Profile::Native`] | this crate | sent and expected | in the table, or none | when its flags ask | when its flags ask | may be offered |
//!
//! Every profile also asks the peer to be quiet about the buffers it hands
//! back while this side has transmit buffers ([`Conventions::quiet_returns`]),
//! and buffers are 512 bytes ([`DEFAULT_BUF_SIZE`]).
//!
//! # Remote
//!
//! - From a resource table (Linux, OpenAMP's driver role, our master):
//!   [`RemoteBoot::start`] finds the vdev and clears a stale status
//!   ([`HostBoot`]), [`RemoteBoot::poll`] (non-blocking, on a timer) or
//!   [`RemoteBoot::wait`] (bounded) waits for `DRIVER_OK` without relying
//!   on a kick, and [`RemoteBoot::rings`] builds the rings from what the
//!   host wrote (vrings, notify ids, negotiated features, the buffers it
//!   posted).
//! - From a bare shared layout (an rpmsg-lite master): [`remote_bare`],
//!   after the master's start kick.
//!
//! # Master
//!
//! - For a remote with a resource table (OpenAMP's device role, ours):
//!   [`master_table`] lays the rings out where the table says, writes the
//!   negotiated features and the status where the remote reads them, and
//!   sends the start kick.
//! - For a remote on a bare layout (rpmsg-lite, ours): [`master_bare`].
//!
//! A profile that cannot hold (`EVENT_IDX` asked of a peer that does not
//! re-arm or did not offer it, a table for an rpmsg-lite master) is a
//! [`Error`] at boot, never a hang.
#![allow(unsafe_code)]

use ipc_traits::cache::CacheMaintenance;
use ipc_traits::mailbox::{Budget, Notify, QueueId};
use ipc_traits::shm::{check_align, check_range, RawRegion, SharedMemory, ShmError};
use vring::layout::InWindow;
use vring::notify::VIRTIO_RING_F_EVENT_IDX;
use vring::{BufferArea, Endian, Layout, Suppression};

use crate::rings::{
    CheckedConfig, Conventions, MasterConfig, MasterRings, QueueIds, RemoteConfig, RemoteRings,
    RemoteTables,
};
#[cfg(doc)]
use crate::rsc_table::TableBuilder;
use crate::rsc_table::{
    status, HostBoot, HostPoll, PollTiming, VdevAt, VdevInfo, VringSpec, FW_RSC_ADDR_ANY,
    VIRTIO_RPMSG_F_NS,
};
use crate::wire::DEFAULT_BUF_SIZE;
use crate::Error;

/// The `EVENT_IDX` feature bit in a vdev's feature words.
pub const F_EVENT_IDX: u32 = 1 << VIRTIO_RING_F_EVENT_IDX;

/// Buffers per direction at most: `MAX_RPMSG_NUM_BUFS / 2` (§2.2). With a
/// smaller vring 0, Linux uses `num` buffers per direction.
pub const MAX_BUFS_PER_DIRECTION: usize = 256;

/// The stack on the other side of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Profile {
    /// Linux remoteproc and `virtio_rpmsg_bus`: always the master.
    Linux,
    /// NXP rpmsg-lite, either role, on a bare shared layout.
    RpmsgLite,
    /// OpenAMP, either role, with a resource table.
    OpenAmp,
    /// This crate's own stack, either role.
    Native,
}

impl Profile {
    /// The profile's name, for messages (a `&str`, so that printing a
    /// profile does not link `Debug` formatting into firmware).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Linux => "Linux",
            Self::RpmsgLite => "rpmsg-lite",
            Self::OpenAmp => "OpenAMP",
            Self::Native => "this stack",
        }
    }

    /// Whether a master of this stack kicks vring 0 once the rings are laid
    /// out (a remote never relies on it: [`RemoteBoot`] polls), and whether
    /// a remote of this stack needs that kick ([`master_table`],
    /// [`master_bare`] send it for every profile but OpenAMP's remote,
    /// which polls the status byte).
    pub const fn start_kick(self) -> bool {
        !matches!(self, Self::OpenAmp)
    }

    /// Whether this stack re-arms `EVENT_IDX` (so it may be offered).
    pub const fn event_idx(self) -> bool {
        matches!(self, Self::Linux | Self::Native)
    }

    /// Whether this stack sets up with a resource table (as master: writes
    /// `DRIVER_OK`; as remote: reads it).
    pub const fn uses_table(self) -> bool {
        !matches!(self, Self::RpmsgLite)
    }

    /// Bytes per buffer (header included).
    pub const fn buf_size(self) -> usize {
        DEFAULT_BUF_SIZE
    }

    /// The doorbell conventions for talking to this stack.
    pub const fn conventions(self) -> Conventions {
        match self {
            Self::RpmsgLite => Conventions {
                notify_always: true,
                announce_returns: false,
                quiet_returns: true,
                return_with_next_look: false,
            },
            Self::Linux | Self::OpenAmp => Conventions {
                notify_always: false,
                announce_returns: true,
                quiet_returns: true,
                return_with_next_look: false,
            },
            Self::Native => Conventions {
                notify_always: false,
                announce_returns: true,
                quiet_returns: true,
                return_with_next_look: true,
            },
        }
    }
}

/// The layout of the vring `spec` describes, placed where the table says.
///
/// One pass over the facts: `num` must fit 16 bits, the layout checks
/// `num` and `align` (powers of two, `num <= 32768`) and its own
/// arithmetic, the ring's start is translated once and its end compared
/// with the window.
///
/// # Errors
///
/// [`Error::BadVring`] (`num` or `align` zero, not a power of two, or too
/// large), [`Error::VringOutsideWindow`], a layout error ([`Error::Ring`]:
/// `MisalignedArea`, `Overflow`; on memory that is not coherent,
/// `SharedCacheLine`: [`Layout::check`]). Never panics on any table
/// content.
#[inline]
pub fn vring_layout<M: SharedMemory<Error = ShmError>>(
    shared: &M,
    spec: VringSpec,
) -> Result<Layout, Error> {
    legacy_in(shared, spec.da, spec.align, spec.num).map(|w| w.layout())
}

/// [`vring_layout`] with the entry's fields as scalars: one copy of the
/// checks, its arguments in registers (a `VringSpec` by value goes
/// through a copy on the stack). The layout comes checked against
/// `shared` as [`Layout::check`] does, so the rings attach to it without
/// a second check ([`InWindow`]).
#[inline(never)]
fn legacy_in<M: SharedMemory<Error = ShmError>>(
    shared: &M,
    da: u32,
    align: u32,
    num: u32,
) -> Result<InWindow<'_, M>, Error> {
    legacy_checks(shared, da, align, num)
}

/// The layout of a vring of this firmware's own table (`built`: its
/// `align` and `num` as the build put them, [`crate::rsc_table::VdevAt`]),
/// from `spec` as read back: when `spec` carries the built `align` and
/// `num` (always, for the vrings [`crate::rsc_table::VdevView::vrings`]
/// read), the checks are inlined with the built values, which are
/// constants where the boot is inlined, so the layout arithmetic folds at
/// build time and only the host's `da` is checked at run time; otherwise
/// (no build values, or other ones) the general check, [`legacy_in`].
/// The same errors either way.
///
/// With the feature `small` only: each inlined copy is smaller than a
/// call in an image whose errors all end alike (firmware/minimal-remote),
/// but larger in one that reports each (about 800 bytes more in
/// firmware/imx8mm-m4), where the out-of-line check stays.
#[inline(always)]
pub(crate) fn vring_in<M: SharedMemory<Error = ShmError>>(
    shared: &M,
    spec: VringSpec,
    built: Option<(u32, u32)>,
) -> Result<InWindow<'_, M>, Error> {
    match built {
        Some((align, num)) if cfg!(feature = "small") && align == spec.align && num == spec.num => {
            legacy_checks(shared, spec.da, align, num)
        }
        _ => legacy_in(shared, spec.da, spec.align, spec.num),
    }
}

/// The body of [`legacy_in`], [`vring_in`] and, with the feature `small`,
/// the boot's look at the used indices (`rsc_table::ring_was_used`).
#[inline(always)]
pub(crate) fn legacy_checks<M: SharedMemory<Error = ShmError>>(
    shared: &M,
    da: u32,
    align: u32,
    num: u32,
) -> Result<InWindow<'_, M>, Error> {
    let num = u16::try_from(num).map_err(|_| Error::BadVring)?;
    let outside = Error::VringOutsideWindow;
    let offset = shared.translate(u64::from(da), 0).map_err(|_| outside)?;
    // `u32` fits `usize` on every target of this crate; a value that did
    // not would fail the layout's alignment check the same way.
    let align = usize::try_from(align).unwrap_or(0);
    // Checked arithmetic: the layout errors on an absurd `align`, and its
    // end does not overflow; then the whole ring must be inside the window.
    let layout = Layout::try_legacy_at(offset, num, align).map_err(|e| match e {
        vring::Error::BadNum | vring::Error::BadAlign => Error::BadVring,
        e => Error::Ring(e),
    })?;
    // The used ring is the legacy layout's last area, and the layout
    // checked that its end does not overflow.
    if layout.used_offset() + vring::layout::used_size(usize::from(num)) > shared.len() {
        return Err(outside);
    }
    // The cache-line rule of the window's memory (nothing to check when it
    // is coherent).
    if M::LINE > 1 {
        layout.check(shared.len(), M::LINE)?;
    }
    // SAFETY: the ring ends inside the window (checked above: its end is
    // the used ring's), which is `Layout::check`'s first rule, and the
    // second (cache lines) was checked above whenever it applies.
    Ok(unsafe { InWindow::new_unchecked(layout, shared) })
}

/// The queue ids the two vrings' notify ids stand for.
///
/// Both tested before either is built: one compare and branch each
/// ([`Error::BadNotifyId`] for either), where a `?` on each id's own
/// `Result` packed and unpacked its tag.
#[inline(always)]
fn queue_ids(ids: [u32; 2]) -> Result<QueueIds, Error> {
    let max = u32::from(QueueId::MAX);
    if ids[0] >= max || ids[1] >= max {
        return Err(Error::BadNotifyId);
    }
    match (
        u8::try_from(ids[0]).ok().and_then(QueueId::new),
        u8::try_from(ids[1]).ok().and_then(QueueId::new),
    ) {
        (Some(vring0), Some(vring1)) => Ok(QueueIds { vring0, vring1 }),
        _ => Err(Error::BadNotifyId),
    }
}

/// Flags, or `EVENT_IDX` when asked for and allowed by `profile` and
/// `features` (the peer's offer or the negotiated set).
fn suppression(profile: Profile, event_idx: bool, features: u32) -> Result<Suppression, Error> {
    if !event_idx {
        return Ok(Suppression::Flags);
    }
    if !profile.event_idx() {
        return Err(Error::EventIdxUnsupported);
    }
    if features & F_EVENT_IDX == 0 {
        return Err(Error::EventIdxNotOffered);
    }
    Ok(Suppression::EventIdx)
}

/// Where the remote finds its rings and the host's buffers, from the vrings
/// the host wrote back and the receive buffers it posted on vring 0 before
/// `DRIVER_OK` (the lowest address is the buffer block's start: Linux
/// allocates one block of `2 * num` buffers, receive half first, §2.2).
///
/// # Errors
///
/// Any value the host wrote that does not fit the window: see
/// [`Error`]. Never panics on any table or ring content.
pub fn remote_config<M: SharedMemory<Error = ShmError>>(
    shared: &M,
    vrings: [VringSpec; 2],
    suppression: Suppression,
) -> Result<RemoteConfig, Error> {
    remote_config_in(shared, vrings, [None; 2], suppression).map(|c| c.config())
}

/// [`remote_config`], the layouts kept as checked against `shared`.
#[inline(always)]
fn remote_config_in<M: SharedMemory<Error = ShmError>>(
    shared: &M,
    vrings: [VringSpec; 2],
    built: [Option<(u32, u32)>; 2],
    suppression: Suppression,
) -> Result<CheckedConfig<'_, M>, Error> {
    let (vring0, vring1) = (
        vring_in(shared, vrings[0], built[0])?,
        vring_in(shared, vrings[1], built[1])?,
    );
    let per = usize::from(vring0.layout().num()).min(MAX_BUFS_PER_DIRECTION);
    // The host wrote the descriptors before DRIVER_OK; read them from
    // memory, not from a stale line. The remote has written nothing there.
    let table = vring0.layout().desc_offset();
    let (start, len) = shared.covering_lines(table, per * 16)?;
    shared.invalidate(start, len)?;
    // The descriptors' range is checked once (the layout put the ring in
    // the window; this states it where the loads rely on it), then each
    // address is two word loads, not a copy through a buffer.
    check_range(shared.len(), table, per * 16)?;
    check_align(table, 4)?;
    let mut lowest = u64::MAX;
    for i in 0..per {
        let at = table + 16 * i;
        // SAFETY: descriptor `i < per` lies in `table..table + per * 16`,
        // inside the window, and `at` is 4-aligned (both checked above).
        let (a, b) = unsafe {
            (
                shared.load_u32_unchecked(at)?.to_ne_bytes(),
                shared.load_u32_unchecked(at + 4)?.to_ne_bytes(),
            )
        };
        // Legacy rings are in the host's byte order, which is ours (§1.5):
        // the two words' bytes in memory order are the address's.
        let raw = [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]];
        lowest = lowest.min(u64::from_ne_bytes(raw));
    }
    let half = per * DEFAULT_BUF_SIZE;
    let offset = shared
        .translate(lowest, 2 * half)
        .map_err(|_| Error::BuffersOutsideWindow)?;
    let queues = queue_ids([vrings[0].notifyid, vrings[1].notifyid])?;
    Ok(CheckedConfig {
        vring0,
        vring1,
        vring0_buffers: BufferArea::new(offset, half),
        vring1_buffers: BufferArea::new(offset + half, half),
        suppression,
        queues,
    })
}

/// The remote's start-up against a host that owns the resource table
/// (Linux, OpenAMP's driver role, this crate's master): see the module
/// docs. Nothing here waits for a kick.
#[derive(Debug, Clone, Copy)]
pub struct RemoteBoot {
    host: HostBoot,
    profile: Profile,
    event_idx: bool,
}

impl RemoteBoot {
    /// Locates the rpmsg vdev of the `N`-byte table at `table_offset` of
    /// `table` and clears its status only when it is a previous session's
    /// ([`HostBoot::start`]). `rings` is the window the vrings live in (it
    /// may be `table`'s); `timing` paces [`RemoteBoot::poll`] from `now`.
    ///
    /// # Errors
    ///
    /// [`Error::WrongProfile`] for [`Profile::RpmsgLite`] (no table:
    /// [`remote_bare`]); a table or shared-memory error.
    pub fn start<T, M, const N: usize>(
        table: &T,
        table_offset: usize,
        rings: &M,
        profile: Profile,
        timing: PollTiming,
        now: u64,
    ) -> Result<Self, Error>
    where
        T: SharedMemory<Error = ShmError>,
        M: SharedMemory<Error = ShmError>,
    {
        if !profile.uses_table() {
            return Err(Error::WrongProfile);
        }
        Ok(Self {
            host: HostBoot::start::<T, M, N>(table, table_offset, rings, timing, now)?,
            profile,
            event_idx: false,
        })
    }

    /// [`RemoteBoot::start`] for this firmware's own table: `vdev` comes
    /// from the builder of the table at `table_offset` of `table`
    /// ([`TableBuilder::vdev_at`]), so the table is not parsed
    /// ([`HostBoot::start_at`]); the host's writes are read and checked as
    /// after [`RemoteBoot::start`], with the same errors.
    ///
    /// # Errors
    ///
    /// As [`RemoteBoot::start`], but never a parse error.
    pub fn start_at<T, M, const N: usize>(
        table: &T,
        table_offset: usize,
        vdev: VdevAt<N>,
        rings: &M,
        profile: Profile,
        timing: PollTiming,
        now: u64,
    ) -> Result<Self, Error>
    where
        T: SharedMemory<Error = ShmError>,
        M: SharedMemory<Error = ShmError>,
    {
        if !profile.uses_table() {
            return Err(Error::WrongProfile);
        }
        Ok(Self {
            host: HostBoot::start_at(table, table_offset, vdev, rings, timing, now)?,
            profile,
            event_idx: false,
        })
    }

    /// Asks for `EVENT_IDX` (the table must offer it in `dfeatures`, and
    /// the host must accept it).
    ///
    /// # Errors
    ///
    /// [`Error::EventIdxUnsupported`] when the profile's stack never
    /// re-arms it (OpenAMP); [`Error::EventIdxNotOffered`] when the
    /// firmware's table does not offer it.
    pub fn with_event_idx(mut self) -> Result<Self, Error> {
        suppression(self.profile, true, self.host.info().dfeatures)?;
        self.event_idx = true;
        Ok(self)
    }

    /// The underlying handshake (what was found at boot, the vdev).
    pub const fn host(&self) -> &HostBoot {
        &self.host
    }

    /// Looks at the status byte once (never blocks): see
    /// [`HostBoot::poll`]. Call it at boot, on every doorbell, and by
    /// [`HostPoll::Waiting::poll_at`] at the latest.
    ///
    /// # Errors
    ///
    /// [`Error::NotReady`] once per patience without `DRIVER_OK`
    /// (polling again keeps waiting); a shared-memory error.
    pub fn poll<T: SharedMemory<Error = ShmError>>(
        &mut self,
        table: &T,
        now: u64,
    ) -> Result<HostPoll, Error> {
        self.host.poll(table, now)
    }

    /// Polls the status byte until `DRIVER_OK`, within `budget` (one unit
    /// per look); returns the vrings as the host wrote them.
    ///
    /// # Errors
    ///
    /// [`Error::NotReady`] when the budget ran
    /// out; a shared-memory error.
    pub fn wait<T: SharedMemory<Error = ShmError>>(
        &self,
        table: &T,
        budget: impl Budget,
    ) -> Result<[VringSpec; 2], Error> {
        self.host.view().wait_driver_ok(table, budget)
    }

    /// The configuration of the remote's rings, from the `vrings` the host
    /// wrote ([`RemoteBoot::poll`] or [`RemoteBoot::wait`]) and the
    /// features it negotiated.
    ///
    /// # Errors
    ///
    /// [`Error::EventIdxNotOffered`] when `EVENT_IDX` was asked for and
    /// the host did not accept it; every value that does not fit `shared`.
    pub fn config<T, M>(
        &self,
        table: &T,
        shared: &M,
        vrings: [VringSpec; 2],
    ) -> Result<RemoteConfig, Error>
    where
        T: SharedMemory<Error = ShmError>,
        M: SharedMemory<Error = ShmError>,
    {
        self.config_in(table, shared, vrings).map(|c| c.config())
    }

    /// [`RemoteBoot::config`], the layouts kept as checked against
    /// `shared`.
    #[inline(always)]
    fn config_in<'m, T, M>(
        &self,
        table: &T,
        shared: &'m M,
        vrings: [VringSpec; 2],
    ) -> Result<CheckedConfig<'m, M>, Error>
    where
        T: SharedMemory<Error = ShmError>,
        M: SharedMemory<Error = ShmError>,
    {
        // The negotiated features matter only for `EVENT_IDX`: without it,
        // not read (a load an image without it never uses).
        let negotiated = if self.event_idx {
            self.host.view().gfeatures(table)?
        } else {
            0
        };
        let s = suppression(self.profile, self.event_idx, negotiated)?;
        remote_config_in(shared, vrings, self.host.view().built(), s)
    }

    /// The remote's rings, following the profile's conventions, their
    /// per-entry tables in `tables`.
    ///
    /// # Errors
    ///
    /// As [`RemoteBoot::config`]; a ring error.
    ///
    /// # Safety
    ///
    /// No buffer handle over `shared`'s buffer areas exists on this core
    /// except those the rings hand out ([`RemoteRings::new`]).
    pub unsafe fn rings<'m, T, M, E, const NUM: usize>(
        &self,
        table: &T,
        shared: &'m M,
        vrings: [VringSpec; 2],
        tables: &'m RemoteTables<NUM>,
    ) -> Result<RemoteRings<'m, M, E, NUM>, Error>
    where
        T: SharedMemory<Error = ShmError>,
        M: SharedMemory<Error = ShmError>,
        E: Endian,
    {
        let config = self.config_in(table, shared, vrings)?;
        // SAFETY: forwarded from this function's contract.
        let mut rings = unsafe { RemoteRings::<M, E, NUM>::attach(config, tables) }?;
        rings.set_conventions(self.profile.conventions())?;
        Ok(rings)
    }

    /// [`RemoteBoot::rings`] over a [`RawRegion`] borrowed exclusively for
    /// the rings' life: no other handle can reach its buffers, so this is
    /// safe.
    ///
    /// # Errors
    ///
    /// As [`RemoteBoot::rings`].
    pub fn rings_in<'m, T, C, E, const NUM: usize>(
        &self,
        table: &T,
        shared: &'m mut RawRegion<C>,
        vrings: [VringSpec; 2],
        tables: &'m RemoteTables<NUM>,
    ) -> Result<RemoteRings<'m, RawRegion<C>, E, NUM>, Error>
    where
        T: SharedMemory<Error = ShmError>,
        C: CacheMaintenance,
        E: Endian,
    {
        let shared: &'m RawRegion<C> = shared;
        // SAFETY: the region is borrowed exclusively for 'm, so no buffer
        // handle over it lives (one would borrow it) and none can be made
        // except through these rings; `RawRegion::new`'s contract rules
        // out any other access to its memory on this core.
        unsafe { self.rings::<T, RawRegion<C>, E, NUM>(table, shared, vrings, tables) }
    }
}

/// Rings and buffers on a bare shared layout, as rpmsg-lite lays them out
/// (`rpmsg_lite_master_init`; vectors/rpmsg-lite README): vring 0 at
/// `base`, vring 1 at `base + vring_stride`, then `2 * num` buffers of
/// `buf_size` bytes at `base + 2 * vring_stride`, vring 0's (the master's
/// receive buffers) first. Notify ids 0 and 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BareLayout {
    /// Window offset of vring 0.
    pub base: usize,
    /// Entries per vring.
    pub num: u16,
    /// `VRING_ALIGN`.
    pub align: usize,
    /// `VRING_SIZE`: vring 1's distance from vring 0 (rpmsg-lite: each
    /// area rounded to `align`, or a platform constant such as 0x8000).
    pub vring_stride: usize,
    /// Bytes per buffer.
    pub buf_size: usize,
}

impl BareLayout {
    /// rpmsg-lite's layout at `base` with `num` entries, `align` and
    /// `vring_stride` (`VRING_SIZE`), 512-byte buffers.
    pub const fn rpmsg_lite(base: usize, num: u16, align: usize, vring_stride: usize) -> Self {
        Self {
            base,
            num,
            align,
            vring_stride,
            buf_size: DEFAULT_BUF_SIZE,
        }
    }

    /// The two vrings.
    ///
    /// # Errors
    ///
    /// An unusable `num`/`align`, or offsets that overflow.
    pub fn vrings(&self) -> Result<[Layout; 2], Error> {
        let v1 = self
            .base
            .checked_add(self.vring_stride)
            .ok_or(Error::Ring(vring::Error::BadBufferArea))?;
        let l0 = Layout::try_legacy_at(self.base, self.num, self.align)?;
        let l1 = Layout::try_legacy_at(v1, self.num, self.align)?;
        if l0.end() > v1 {
            return Err(Error::Ring(vring::Error::BadBufferArea));
        }
        Ok([l0, l1])
    }

    /// Window offset of the buffer pool.
    ///
    /// # Errors
    ///
    /// Offsets that overflow.
    pub fn pool(&self) -> Result<usize, Error> {
        self.vring_stride
            .checked_mul(2)
            .and_then(|s| s.checked_add(self.base))
            .ok_or(Error::Ring(vring::Error::BadBufferArea))
    }

    fn half(&self) -> Result<usize, Error> {
        usize::from(self.num)
            .checked_mul(self.buf_size)
            .ok_or(Error::Ring(vring::Error::BadBufferArea))
    }
}

/// The remote's rings on a bare layout (an rpmsg-lite master, or ours
/// through [`master_bare`]). Call it once the master is up (rpmsg-lite:
/// its start kick, `rpmsg_lite_wait_for_link_up`).
///
/// # Errors
///
/// [`Error::EventIdxUnsupported`] when `event_idx` is asked of a
/// stack that never re-arms it (rpmsg-lite, OpenAMP); a layout that does
/// not fit `shared`.
///
/// # Safety
///
/// As [`RemoteRings::new`]: no other buffer handle over the pool.
pub unsafe fn remote_bare<'m, M, E, const NUM: usize>(
    shared: &'m M,
    layout: BareLayout,
    profile: Profile,
    event_idx: bool,
    tables: &'m RemoteTables<NUM>,
) -> Result<RemoteRings<'m, M, E, NUM>, Error>
where
    M: SharedMemory<Error = ShmError>,
    E: Endian,
{
    if matches!(profile, Profile::Linux) {
        return Err(Error::WrongProfile);
    }
    // No table carries an offer: the profile alone decides.
    let s = suppression(profile, event_idx, F_EVENT_IDX)?;
    let [vring0, vring1] = layout.vrings()?;
    let pool = layout.pool()?;
    let half = layout.half()?;
    let config = RemoteConfig {
        vring0,
        vring1,
        vring0_buffers: BufferArea::new(pool, half),
        vring1_buffers: BufferArea::new(pool + half, half),
        suppression: s,
        queues: QueueIds::DEFAULT,
    };
    // SAFETY: forwarded from this function's contract.
    let mut rings = unsafe { RemoteRings::<M, E, NUM>::new(shared, config, tables) }?;
    rings.set_conventions(profile.conventions())?;
    Ok(rings)
}

/// Kicks vring 0 when `profile`'s remote expects it.
fn start_kick<N: Notify>(profile: Profile, notify: &mut N, queue: QueueId) -> Result<(), Error> {
    if profile.start_kick() {
        use ipc_traits::mailbox::Error as _;
        notify.notify(queue).map_err(|e| Error::Mailbox(e.kind()))?;
    }
    Ok(())
}

/// The master's rings on a bare layout for a remote of `profile`
/// (rpmsg-lite: byte-compatible with `rpmsg_lite_master_init`), then the
/// start kick on vring 0.
///
/// # Errors
///
/// [`Error::WrongProfile`] for Linux and OpenAMP (their remotes read a
/// table: [`master_table`]); [`Error::EventIdxUnsupported`]; a layout
/// that does not fit; a ring error; a failed kick.
///
/// # Safety
///
/// As [`MasterRings::new`]: the pool is this link's alone.
pub unsafe fn master_bare<'m, M, E, N, const NUM: usize>(
    shared: &'m M,
    layout: BareLayout,
    profile: Profile,
    event_idx: bool,
    notify: &mut N,
) -> Result<MasterRings<'m, M, E, NUM>, Error>
where
    M: SharedMemory<Error = ShmError>,
    E: Endian,
    N: Notify,
{
    if profile.uses_table() && !matches!(profile, Profile::Native) {
        return Err(Error::WrongProfile);
    }
    let s = suppression(profile, event_idx, F_EVENT_IDX)?;
    let [vring0, vring1] = layout.vrings()?;
    let config = MasterConfig {
        vring0,
        vring1,
        pool: layout.pool()?,
        buf_size: layout.buf_size,
        suppression: s,
        queues: QueueIds::DEFAULT,
        rpmsg_lite_compat: matches!(profile, Profile::RpmsgLite),
    };
    // SAFETY: forwarded from this function's contract.
    let mut rings = unsafe { MasterRings::<M, E, NUM>::new(shared, config) }?;
    rings.set_conventions(profile.conventions())?;
    start_kick(profile, notify, QueueIds::DEFAULT.vring0)?;
    Ok(rings)
}

/// `fw_rsc_vdev` field offsets from the entry's type word (§3.2).
const VDEV_GFEATURES: usize = 16;
const VDEV_STATUS: usize = 24;
const VDEV_VRINGS: usize = 28;
/// `fw_rsc_vdev_vring` size and field offsets (§3.2).
const VRING_LEN: usize = 20;
const VRING_DA: usize = 0;
const VRING_NOTIFYID: usize = 12;

/// Where the master puts what the remote's table left to it, as window
/// offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// vring 0 and vring 1, used when the table says `FW_RSC_ADDR_ANY`.
    pub vrings: [usize; 2],
    /// The buffer block: `2 * num` buffers of 512 bytes, receive half first.
    pub pool: usize,
}

/// Writes `bytes` at `at` of the table and cleans the lines, so the remote
/// (which invalidates before reading) sees them.
fn put<T: SharedMemory<Error = ShmError>>(
    table: &T,
    at: usize,
    bytes: &[u8],
) -> Result<(), ShmError> {
    table.write(at, bytes)?;
    let (start, len) = table.covering_lines(at, bytes.len())?;
    table.clean(start, len)
}

/// Zeroes `offset..offset + len` of the window and cleans it.
fn zero<M: SharedMemory<Error = ShmError>>(
    mem: &M,
    offset: usize,
    len: usize,
) -> Result<(), ShmError> {
    const CHUNK: [u8; 64] = [0; 64];
    let mut at = offset;
    let end = offset + len;
    while at < end {
        let n = (end - at).min(CHUNK.len());
        mem.write(at, &CHUNK[..n])?;
        at += n;
    }
    let (start, span) = mem.covering_lines(offset, len)?;
    mem.clean(start, span)
}

/// Starts a remote that has a resource table, the way Linux does
/// (rpmsg-wire.md §2.1, §3.2, §3.3): status `ACKNOWLEDGE | DRIVER`;
/// `gfeatures` := what both support (the name service, and `EVENT_IDX`
/// when asked for and allowed); `FEATURES_OK`; each vring zeroed and placed
/// (the table's `da`, or `placement` for `FW_RSC_ADDR_ANY`), `da` and
/// notify ids 0, 1 written back; every receive buffer posted on vring 0;
/// `DRIVER_OK`; then the start kick on vring 0 (not for an OpenAMP remote,
/// which polls the status byte).
///
/// `table` is a window over the remote's table (the vdev at `info.offset`,
/// as [`crate::rsc_table::VdevView::locate`] found it), `shared` the window
/// holding the rings and buffers.
///
/// # Errors
///
/// [`Error::WrongProfile`] for Linux (never a remote) and rpmsg-lite
/// (no table); [`Error::EventIdxUnsupported`] or
/// [`Error::EventIdxNotOffered`] (the remote's `dfeatures` lack it);
/// vrings or a pool that do not fit; a ring error; a failed kick.
///
/// # Safety
///
/// The buffer block (`placement.pool`, `2 * num * 512` bytes) is the
/// master's alone ([`MasterRings::new`]).
#[allow(clippy::too_many_arguments)]
pub unsafe fn master_table<'m, T, M, E, N, const NUM: usize>(
    table: &T,
    info: &VdevInfo,
    shared: &'m M,
    placement: Placement,
    profile: Profile,
    event_idx: bool,
    notify: &mut N,
) -> Result<MasterRings<'m, M, E, NUM>, Error>
where
    T: SharedMemory<Error = ShmError>,
    M: SharedMemory<Error = ShmError>,
    E: Endian,
    N: Notify,
{
    if matches!(profile, Profile::Linux | Profile::RpmsgLite) {
        return Err(Error::WrongProfile);
    }
    let s = suppression(profile, event_idx, info.dfeatures)?;
    let vdev = info.offset;
    let mut st = status::ACKNOWLEDGE | status::DRIVER;
    put(table, vdev + VDEV_STATUS, &[st])?;
    let mut gfeatures = info.dfeatures & VIRTIO_RPMSG_F_NS;
    if s == Suppression::EventIdx {
        gfeatures |= F_EVENT_IDX;
    }
    put(table, vdev + VDEV_GFEATURES, &gfeatures.to_ne_bytes())?;
    st |= status::FEATURES_OK;
    put(table, vdev + VDEV_STATUS, &[st])?;

    let mut layouts = [Layout::legacy(1, 16); 2];
    for (k, layout) in layouts.iter_mut().enumerate() {
        let mut spec = info.vrings[k];
        if spec.da == FW_RSC_ADDR_ANY {
            let addr = shared.peer_addr(placement.vrings[k])?;
            spec.da = u32::try_from(addr).map_err(|_| Error::VringOutsideWindow)?;
        }
        *layout = vring_layout(shared, spec)?;
        zero(shared, layout.start(), layout.end() - layout.start())?;
        let entry = vdev + VDEV_VRINGS + k * VRING_LEN;
        put(table, entry + VRING_DA, &spec.da.to_ne_bytes())?;
        // k < 2, so the notify id is 0 or 1.
        put(table, entry + VRING_NOTIFYID, &(k as u32).to_ne_bytes())?;
    }

    let config = MasterConfig {
        vring0: layouts[0],
        vring1: layouts[1],
        pool: placement.pool,
        buf_size: profile.buf_size(),
        suppression: s,
        queues: QueueIds::DEFAULT,
        rpmsg_lite_compat: false,
    };
    // SAFETY: the pool is the master's alone (this function's contract).
    let mut rings = unsafe { MasterRings::<M, E, NUM>::new(shared, config) }?;
    rings.set_conventions(profile.conventions())?;

    st |= status::DRIVER_OK;
    put(table, vdev + VDEV_STATUS, &[st])?;
    start_kick(profile, notify, QueueIds::DEFAULT.vring0)?;
    Ok(rings)
}

/// Resets the device the way Linux does when its driver goes away or the
/// remote is re-probed: the status byte goes back to 0 (rpmsg-wire.md
/// §3.3). The old rings stay as they are until the master lays them out
/// again ([`master_table`]).
///
/// # Errors
///
/// A shared-memory error writing the table.
pub fn reset_device<T: SharedMemory<Error = ShmError>>(
    table: &T,
    info: &VdevInfo,
) -> Result<(), ShmError> {
    put(table, info.offset + VDEV_STATUS, &[0])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use ipc_traits::cache::Coherent;
    use ipc_traits::shm::RawRegion;
    use vring::Layout;

    use super::vring_layout;
    use crate::rsc_table::VringSpec;
    use crate::Error;

    /// Every hostile `num`, `align` and `da` of a vring entry is a typed
    /// error, and a ring that fits the window exactly is accepted.
    #[test]
    fn vring_layout_checks_every_field_of_the_entry() {
        const BASE: u64 = 0x1000;
        const LEN: usize = 8192;
        let mut backing = vec![0u64; LEN / 8];
        let ptr = core::ptr::NonNull::new(backing.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: the vector is reached only through this window while it
        // lives.
        let shm = unsafe { RawRegion::new(ptr, LEN, BASE, Coherent) }.unwrap();
        let at = |da: u64, align: u32, num: u32| {
            let da = u32::try_from(da).unwrap();
            vring_layout(&shm, VringSpec::new(da, align, num, 0))
        };
        let ring = |e| Err(Error::Ring(e));
        // A 64-entry ring with 4096 alignment: 6 KiB and a few bytes.
        let size = Layout::legacy(64, 4096).end();
        assert_eq!(at(BASE, 4096, 64), Ok(Layout::legacy_at(0, 64, 4096)));
        assert_eq!(at(BASE, 4096, 1 << 16), Err(Error::BadVring));
        assert_eq!(at(BASE, 4096, 0), Err(Error::BadVring));
        assert_eq!(at(BASE, 4096, 48), Err(Error::BadVring));
        assert_eq!(at(BASE, 0, 64), Err(Error::BadVring));
        assert_eq!(at(BASE, 3000, 64), Err(Error::BadVring));
        assert_eq!(at(BASE, 1 << 31, 64), Err(Error::VringOutsideWindow));
        assert_eq!(at(BASE + 16, 4096, 64), ring(vring::Error::MisalignedArea));
        assert_eq!(at(BASE - 16, 16, 4), Err(Error::VringOutsideWindow));
        assert_eq!(at(BASE + LEN as u64, 16, 4), Err(Error::VringOutsideWindow));
        // A small ring ending exactly at the window's end fits; one more
        // aligned step does not.
        let small = Layout::legacy(4, 16).end() as u64;
        let last = (BASE + LEN as u64 - small) & !15;
        assert!(at(last, 16, 4).is_ok_and(|l| l.end() <= LEN));
        assert_eq!(at(last + 16, 16, 4), Err(Error::VringOutsideWindow));
        assert!(size > LEN - 4096);
        assert_eq!(at(BASE + 4096, 4096, 64), Err(Error::VringOutsideWindow));
        drop(backing);
    }

    /// A boot from the builder's vdev ([`RemoteBoot::start_at`]) reads what
    /// the host wrote as the parsing boot does, and refuses the same bad
    /// values with the same errors.
    #[test]
    fn typed_boot_reads_and_refuses_as_the_parsing_boot() {
        use crate::rsc_table::{
            parse, status, table_size, PollTiming, TableBuilder, VdevAt, VIRTIO_RPMSG_F_NS,
        };
        use ipc_traits::mailbox::Spins;
        use ipc_traits::shm::SharedMemory;

        use super::{Profile, RemoteBoot, F_EVENT_IDX};

        // A vdev behind a carveout and a trace, so that its offset is not
        // the first entry's.
        const SIZE: usize = table_size(1, 1, 1, 2);
        const BUILT: TableBuilder<SIZE> = TableBuilder::<SIZE>::new(3)
            .carveout(0x1000, 0, 0x2000, 0, "vdev0buffer")
            .trace(0x3000, 0x100, "trace0")
            .rpmsg_vdev(
                VIRTIO_RPMSG_F_NS | F_EVENT_IDX,
                [
                    VringSpec::new(FW_ANY, 16, 4, 0),
                    VringSpec::new(FW_ANY, 16, 4, 1),
                ],
            );
        const VDEV: VdevAt<SIZE> = BUILT.vdev_at();
        const FW_ANY: u32 = crate::rsc_table::FW_RSC_ADDR_ANY;
        const BASE: u64 = 0x1000;
        const LEN: usize = 8192;
        let image = BUILT.finish().bytes();
        let info = parse(&image).unwrap();
        assert_eq!(info, VDEV.info(), "the builder's vdev is the parsed one");

        let mut tbacking = vec![0u64; SIZE.div_ceil(8)];
        let tptr = core::ptr::NonNull::new(tbacking.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: the vector is reached only through this window while it
        // lives.
        let table = unsafe { RawRegion::new(tptr, SIZE, 0, Coherent) }.unwrap();
        table.write(0, &image).unwrap();
        let mut rbacking = vec![0u64; LEN / 8];
        let rptr = core::ptr::NonNull::new(rbacking.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: as above.
        let rings = unsafe { RawRegion::new(rptr, LEN, BASE, Coherent) }.unwrap();
        // The host's receive buffers, posted on vring 0: 4 of 512 bytes
        // per direction from window offset 4096.
        for i in 0..4u64 {
            let at = 16 * i as usize;
            rings
                .write(at, &(BASE + 4096 + 512 * i).to_ne_bytes())
                .unwrap();
        }

        let timing = PollTiming {
            interval: 1,
            patience: 10,
        };
        let boots = || {
            let parsed =
                RemoteBoot::start::<_, _, SIZE>(&table, 0, &rings, Profile::Linux, timing, 0);
            let typed = RemoteBoot::start_at(&table, 0, VDEV, &rings, Profile::Linux, timing, 0);
            (parsed.unwrap(), typed.unwrap())
        };
        let (parsed, typed) = boots();
        assert_eq!(parsed.host().info(), &info);
        assert_eq!(typed.host().info(), &info);
        // Before the host: both wait.
        let spins = || Spins::new(3);
        assert_eq!(parsed.wait(&table, spins()), Err(Error::NotReady));
        assert_eq!(typed.wait(&table, spins()), Err(Error::NotReady));

        // The host's writes (rpmsg-wire.md §3.2, §3.3).
        let vdev = info.offset;
        let put = |at: usize, v: u32| table.write(vdev + at, &v.to_ne_bytes()).unwrap();
        let set_status = |s: u8| table.write(vdev + 24, &[s]).unwrap();
        let host = |da0: u32, da1: u32, id0: u32, id1: u32, gfeatures: u32| {
            put(28, da0);
            put(40, id0);
            put(48, da1);
            put(60, id1);
            put(16, gfeatures);
        };
        let all = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
        host(0x1000, 0x1400, 0, 1, F_EVENT_IDX);
        set_status(all | status::DRIVER_OK);
        let parsed_v = parsed.wait(&table, spins()).unwrap();
        let typed_v = typed.wait(&table, spins()).unwrap();
        assert_eq!(parsed_v, typed_v);
        assert_eq!(typed_v[1], VringSpec::new(0x1400, 16, 4, 1));
        let config = |b: &RemoteBoot, v| b.config(&table, &rings, v);
        let good = config(&parsed, parsed_v).unwrap();
        assert_eq!(config(&typed, typed_v), Ok(good));
        let with_idx = |b: RemoteBoot| b.with_event_idx().unwrap();
        assert_eq!(
            config(&with_idx(typed), typed_v),
            config(&with_idx(parsed), parsed_v)
        );

        // Bad status bits: neither sees DRIVER_OK.
        for bad in [status::NEEDS_RESET, status::FAILED] {
            set_status(all | status::DRIVER_OK | bad);
            assert_eq!(parsed.wait(&table, spins()), Err(Error::NotReady));
            assert_eq!(typed.wait(&table, spins()), Err(Error::NotReady));
        }
        set_status(all | status::DRIVER_OK);

        // Each bad value the host may write: the same error from both.
        // (The negotiated features are checked first: EVENT_IDX is
        // accepted in all but the last.)
        const E: u32 = F_EVENT_IDX;
        let cases: [([u32; 5], Error); 6] = [
            ([0x1000 + 8192, 0x1400, 0, 1, E], Error::VringOutsideWindow),
            ([0x1000, 0x0800, 0, 1, E], Error::VringOutsideWindow),
            ([FW_ANY, 0x1400, 0, 1, E], Error::VringOutsideWindow),
            (
                [0x1008, 0x1400, 0, 1, E],
                Error::Ring(vring::Error::MisalignedArea),
            ),
            ([0x1000, 0x1400, 0, 300, E], Error::BadNotifyId),
            ([0x1000, 0x1400, 0, 1, 0], Error::EventIdxNotOffered),
        ];
        for ([da0, da1, id0, id1, g], e) in cases {
            host(da0, da1, id0, id1, g);
            let (parsed, typed) = boots();
            let (parsed, typed) = (with_idx(parsed), with_idx(typed));
            let pv = parsed.wait(&table, spins()).unwrap();
            let tv = typed.wait(&table, spins()).unwrap();
            assert_eq!(pv, tv);
            assert_eq!(config(&parsed, pv), Err(e), "{da0:x} {da1:x} {id1}");
            assert_eq!(config(&typed, tv), Err(e), "{da0:x} {da1:x} {id1}");
        }

        // Only the host's fields are read back: a `num` rewritten in the
        // table is the parsing boot's to check, while the typed boot keeps
        // the one it built (the host never writes it).
        host(0x1000, 0x1400, 0, 1, 0);
        put(36, 48);
        let (parsed, typed) = boots();
        let pv = parsed.wait(&table, spins()).unwrap();
        assert_eq!(config(&parsed, pv), Err(Error::BadVring));
        let tv = typed.wait(&table, spins()).unwrap();
        assert_eq!(tv[0].num, 4);
        assert!(config(&typed, tv).is_ok());
        // Vrings handed to the typed boot with another `align` or `num`
        // than it built are checked the general way, as the parsing boot
        // checks them.
        assert_eq!(config(&typed, pv), Err(Error::BadVring));
        let mut other = tv;
        other[1].align = 24;
        assert_eq!(config(&typed, other), Err(Error::BadVring));
        other[1].align = 64;
        assert_eq!(config(&typed, other), config(&parsed, other));
        drop((tbacking, rbacking));
    }
}
