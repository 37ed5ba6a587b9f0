//! The remoteproc resource table: a `const` builder for firmware images and a
//! validating reader for what Linux writes back.
//!
//! Linux finds the table in the ELF section `.resource_table`, checks it, and
//! writes into it at run time: the negotiated features, the vring addresses
//! and notify ids, and the virtio status byte of the vdev
//! (shared/docs/hw/rpmsg-wire.md §3). All fields are native-endian `u32`s
//! (§3 "All fields are u32, native-endian, and the structures are packed").
//!
//! # Examples
//!
//! ```
//! use rpmsg::rsc_table::{ResourceTable, TableBuilder, VringSpec, table_size};
//!
//! const SIZE: usize = table_size(0, 0, 1, 2);
//! #[cfg_attr(target_os = "none", link_section = ".resource_table")]
//! #[used]
//! static RESOURCE_TABLE: ResourceTable<SIZE> = TableBuilder::<SIZE>::new(1)
//!     .rpmsg_vdev(
//!         rpmsg::rsc_table::VIRTIO_RPMSG_F_NS,
//!         [VringSpec::new(0xB800_0000, 4096, 256, 0), VringSpec::new(0xB800_8000, 4096, 256, 1)],
//!     )
//!     .finish();
//!
//! let info = rpmsg::rsc_table::parse(&RESOURCE_TABLE.bytes()).unwrap();
//! assert_eq!(info.vrings[1].da, 0xB800_8000);
//! ```
//!
//! # Design notes
//!
//! The table is built as bytes in a `const fn`, so a wrong entry count or
//! size is a compile-time error (a panic during constant evaluation), and the
//! same builder serves vdev-only tables and tables with trace buffers and
//! carveouts. At run time the table is peer-written memory: [`parse`] and
//! [`VdevView`] validate everything they read.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::fmt;

use ipc_traits::shm::{check_align, check_range, SharedMemory, ShmError};

use crate::Error;

/// `RSC_CARVEOUT` (§3.1).
pub const RSC_CARVEOUT: u32 = 0;
/// `RSC_DEVMEM` (§3.1).
pub const RSC_DEVMEM: u32 = 1;
/// `RSC_TRACE` (§3.1).
pub const RSC_TRACE: u32 = 2;
/// `RSC_VDEV` (§3.1).
pub const RSC_VDEV: u32 = 3;
/// `VIRTIO_ID_RPMSG` (§2.4).
pub const VIRTIO_ID_RPMSG: u32 = 7;
/// Feature bit: the remote supports the name service (`VIRTIO_RPMSG_F_NS`,
/// §2.4).
pub const VIRTIO_RPMSG_F_NS: u32 = 1 << 0;
/// `FW_RSC_ADDR_ANY`: let Linux choose the address (§3.2).
pub const FW_RSC_ADDR_ANY: u32 = 0xFFFF_FFFF;

/// Virtio status bits Linux writes into the vdev (§3.3).
pub mod status {
    /// `VIRTIO_CONFIG_S_ACKNOWLEDGE`.
    pub const ACKNOWLEDGE: u8 = 0x01;
    /// `VIRTIO_CONFIG_S_DRIVER`.
    pub const DRIVER: u8 = 0x02;
    /// `VIRTIO_CONFIG_S_DRIVER_OK`: rings and buffers are set up.
    pub const DRIVER_OK: u8 = 0x04;
    /// `VIRTIO_CONFIG_S_FEATURES_OK`.
    pub const FEATURES_OK: u8 = 0x08;
    /// `VIRTIO_CONFIG_S_NEEDS_RESET`.
    pub const NEEDS_RESET: u8 = 0x40;
    /// `VIRTIO_CONFIG_S_FAILED`.
    pub const FAILED: u8 = 0x80;
}

const HEADER: usize = 16;
const CARVEOUT_LEN: usize = 56;
const TRACE_LEN: usize = 48;
const VDEV_LEN: usize = 28;
const VRING_LEN: usize = 20;
const NAME_LEN: usize = 32;

/// The table size for the given entries: `carveouts` carveout entries,
/// `traces` trace entries and `vdevs` vdevs with `vrings` vrings each.
pub const fn table_size(carveouts: usize, traces: usize, vdevs: usize, vrings: usize) -> usize {
    let entries = carveouts + traces + vdevs;
    HEADER
        + 4 * entries
        + carveouts * CARVEOUT_LEN
        + traces * TRACE_LEN
        + vdevs * (VDEV_LEN + vrings * VRING_LEN)
}

/// One vring of a vdev entry (`fw_rsc_vdev_vring`, §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VringSpec {
    /// Device address of the vring (Linux rewrites it, §3.2).
    pub da: u32,
    /// Alignment used for the legacy layout.
    pub align: u32,
    /// Number of descriptors (a power of two).
    pub num: u32,
    /// Notify id (Linux assigns and writes it back).
    pub notifyid: u32,
}

impl VringSpec {
    /// A vring description.
    pub const fn new(da: u32, align: u32, num: u32, notifyid: u32) -> Self {
        Self {
            da,
            align,
            num,
            notifyid,
        }
    }
}

/// Builds a resource table of exactly `N` bytes in a `const` context.
///
/// Every mistake (more entries than declared, bytes left over, a vring count
/// that is not a power of two, a name longer than 31 bytes) stops constant
/// evaluation, i.e. fails the build.
#[derive(Debug)]
pub struct TableBuilder<const N: usize> {
    bytes: [u8; N],
    declared: usize,
    added: usize,
    cursor: usize,
    /// The first rpmsg vdev (the one [`parse`] finds), 0 before one is
    /// added (offset 0 is the header, never an entry).
    vdev: VdevAt<N>,
}

const fn put_u32<const N: usize>(bytes: &mut [u8; N], at: usize, value: u32) {
    let b = value.to_ne_bytes();
    bytes[at] = b[0];
    bytes[at + 1] = b[1];
    bytes[at + 2] = b[2];
    bytes[at + 3] = b[3];
}

const fn put_name<const N: usize>(bytes: &mut [u8; N], at: usize, name: &str) {
    let name = name.as_bytes();
    assert!(
        name.len() < NAME_LEN,
        "resource name must leave room for its NUL"
    );
    let mut i = 0;
    while i < name.len() {
        bytes[at + i] = name[i];
        i += 1;
    }
}

impl<const N: usize> TableBuilder<N> {
    /// A table that will hold `entries` entries (`ver` = 1).
    pub const fn new(entries: usize) -> Self {
        assert!(
            HEADER + 4 * entries <= N,
            "table too small for its offset array"
        );
        let mut bytes = [0u8; N];
        put_u32(&mut bytes, 0, 1);
        put_u32(&mut bytes, 4, entries as u32);
        Self {
            bytes,
            declared: entries,
            added: 0,
            cursor: HEADER + 4 * entries,
            vdev: VdevAt {
                offset: 0,
                dfeatures: 0,
                vrings: [VringSpec::new(0, 0, 0, 0); 2],
            },
        }
    }

    const fn begin(mut self, kind: u32, len: usize) -> (Self, usize) {
        assert!(self.added < self.declared, "more entries than declared");
        assert!(self.cursor + len <= N, "entry does not fit the table size");
        let at = self.cursor;
        put_u32(&mut self.bytes, HEADER + 4 * self.added, at as u32);
        put_u32(&mut self.bytes, at, kind);
        self.added += 1;
        self.cursor += len;
        (self, at)
    }

    /// Adds a carveout (`fw_rsc_carveout`, §3.2).
    pub const fn carveout(self, da: u32, pa: u32, len: u32, flags: u32, name: &str) -> Self {
        let (mut s, at) = self.begin(RSC_CARVEOUT, CARVEOUT_LEN);
        put_u32(&mut s.bytes, at + 4, da);
        put_u32(&mut s.bytes, at + 8, pa);
        put_u32(&mut s.bytes, at + 12, len);
        put_u32(&mut s.bytes, at + 16, flags);
        put_name(&mut s.bytes, at + 24, name);
        s
    }

    /// Adds a trace buffer (`fw_rsc_trace`, §3.2).
    pub const fn trace(self, da: u32, len: u32, name: &str) -> Self {
        let (mut s, at) = self.begin(RSC_TRACE, TRACE_LEN);
        put_u32(&mut s.bytes, at + 4, da);
        put_u32(&mut s.bytes, at + 8, len);
        put_name(&mut s.bytes, at + 16, name);
        s
    }

    /// Adds the rpmsg vdev (`fw_rsc_vdev`, id 7, `config_len` 0) with its
    /// vrings: vring 0 carries remote→host, vring 1 host→remote (§2.1).
    pub const fn rpmsg_vdev<const V: usize>(self, dfeatures: u32, vrings: [VringSpec; V]) -> Self {
        assert!(V > 0 && V <= 2, "Linux accepts at most 2 vrings per vdev");
        let (mut s, at) = self.begin(RSC_VDEV, VDEV_LEN + V * VRING_LEN);
        put_u32(&mut s.bytes, at + 4, VIRTIO_ID_RPMSG);
        put_u32(&mut s.bytes, at + 12, dfeatures);
        s.bytes[at + 25] = V as u8;
        let mut i = 0;
        while i < V {
            let v = vrings[i];
            assert!(v.num.is_power_of_two(), "vring num must be a power of two");
            let o = at + VDEV_LEN + i * VRING_LEN;
            put_u32(&mut s.bytes, o, v.da);
            put_u32(&mut s.bytes, o + 4, v.align);
            put_u32(&mut s.bytes, o + 8, v.num);
            put_u32(&mut s.bytes, o + 12, v.notifyid);
            i += 1;
        }
        // The first rpmsg vdev is the one every reader finds; only one
        // with two vrings is usable (a reader refuses any other count).
        if s.vdev.offset == 0 && V == 2 {
            s.vdev = VdevAt {
                offset: at,
                dfeatures,
                vrings: [vrings[0], vrings[1]],
            };
        }
        s
    }

    /// The rpmsg vdev as built, for booting from this table without
    /// parsing it ([`HostBoot::start_at`],
    /// [`crate::boot::RemoteBoot::start_at`]). Use it in a `const` item
    /// next to the table's `static`, from the same builder:
    ///
    /// ```
    /// use rpmsg::rsc_table::{table_size, ResourceTable, TableBuilder, VdevAt, VringSpec};
    ///
    /// const SIZE: usize = table_size(0, 0, 1, 2);
    /// const BUILT: TableBuilder<SIZE> = TableBuilder::<SIZE>::new(1).rpmsg_vdev(
    ///     rpmsg::rsc_table::VIRTIO_RPMSG_F_NS,
    ///     [VringSpec::new(0xB800_0000, 4096, 256, 0), VringSpec::new(0xB800_8000, 4096, 256, 1)],
    /// );
    /// #[cfg_attr(target_os = "none", link_section = ".resource_table")]
    /// #[used]
    /// static RESOURCE_TABLE: ResourceTable<SIZE> = BUILT.finish();
    /// const VDEV: VdevAt<SIZE> = BUILT.vdev_at();
    ///
    /// let info = rpmsg::rsc_table::parse(&RESOURCE_TABLE.bytes()).unwrap();
    /// assert_eq!(info, VDEV.info());
    /// ```
    ///
    /// Like the rest of the builder, it fails the build (in a `const`)
    /// when there is no rpmsg vdev with two vrings.
    pub const fn vdev_at(&self) -> VdevAt<N> {
        assert!(self.vdev.offset != 0, "no rpmsg vdev with two vrings");
        self.vdev
    }

    /// The finished table; fails the build if an entry is missing or bytes
    /// are left over.
    pub const fn finish(self) -> ResourceTable<N> {
        assert!(self.added == self.declared, "fewer entries than declared");
        assert!(self.cursor == N, "table size does not match its entries");
        ResourceTable {
            bytes: UnsafeCell::new(self.bytes),
        }
    }
}

/// A resource table image, placed by the user in `.resource_table`.
///
/// Linux writes into it while the firmware runs, so the bytes live in an
/// `UnsafeCell` and are only read through raw pointers (a `static` of this
/// type is never assumed immutable).
#[repr(C, align(8))]
pub struct ResourceTable<const N: usize> {
    bytes: UnsafeCell<[u8; N]>,
}

// SAFETY: the firmware never writes the table through this type; the only
// writer is the host (Linux), outside the Rust abstract machine, and reads go
// through raw pointers (`as_ptr`) or the build-time image (`bytes`).
unsafe impl<const N: usize> Sync for ResourceTable<N> {}

impl<const N: usize> fmt::Debug for ResourceTable<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResourceTable({N} bytes)")
    }
}

impl<const N: usize> ResourceTable<N> {
    /// The table's address (to build a shared-memory window over it).
    pub const fn as_ptr(&self) -> *mut u8 {
        self.bytes.get().cast()
    }

    /// The bytes as built, for host tests and tools. On target, read the
    /// live table through a shared-memory window instead.
    pub fn bytes(&self) -> [u8; N] {
        // SAFETY: a volatile copy of the whole table through the `UnsafeCell`
        // pointer; no reference to the cell's contents is created, so a
        // concurrent host write cannot invalidate one.
        unsafe { self.bytes.get().read_volatile() }
    }
}

/// Where the rpmsg vdev sits in a table, and its vrings as last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VdevInfo {
    /// Offset of the vdev entry (its type word) in the table.
    pub offset: usize,
    /// Device features the firmware offered.
    pub dfeatures: u32,
    /// Features Linux negotiated.
    pub gfeatures: u32,
    /// The virtio status byte.
    pub status: u8,
    /// The two vrings.
    pub vrings: [VringSpec; 2],
}

/// The rpmsg vdev of a table this firmware built ([`TableBuilder::vdev_at`]):
/// where it sits in the `N`-byte table and what the firmware put in it,
/// known at build time.
///
/// The host writes only some fields of it in place (rpmsg-wire.md §3.2,
/// §3.3): the status byte, the negotiated features, each vring's `da` and
/// notify id. A boot from this value ([`VdevView::at`]) reads just those,
/// each checked as the general path checks it, and takes the table's
/// structure (entry offsets, types, vring count) and each vring's `num`
/// and `align` from the build instead of parsing them back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VdevAt<const N: usize> {
    /// Offset of the vdev entry (its type word) in the table: a multiple
    /// of 4 with the entry and its two vrings inside the `N` bytes (the
    /// builder's layout).
    offset: usize,
    dfeatures: u32,
    vrings: [VringSpec; 2],
}

impl<const N: usize> VdevAt<N> {
    /// The vdev as built: what [`parse`] reads from the table's image
    /// before the host wrote into it.
    pub const fn info(&self) -> VdevInfo {
        VdevInfo {
            offset: self.offset,
            dfeatures: self.dfeatures,
            gfeatures: 0,
            status: 0,
            vrings: self.vrings,
        }
    }
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, Error> {
    bytes
        .get(at..)
        .and_then(<[u8]>::first_chunk::<4>)
        .map(|b| u32::from_ne_bytes(*b))
        .ok_or(Error::Truncated)
}

/// Parses a table image and finds the rpmsg vdev, checking what Linux checks
/// (§3: version 1, reserved words 0, offsets inside the table) plus the
/// vring count, and that every entry offset is a multiple of 4 (all fields
/// are `u32`s: the table is read a word at a time).
///
/// # Errors
///
/// [`Error`] for every inconsistency; never panics on any input.
pub fn parse(bytes: &[u8]) -> Result<VdevInfo, Error> {
    parse_words(bytes.len(), |at| u32_at(bytes, at))
}

/// [`parse`] over a table of `len` bytes whose word at byte `at` is
/// `word(at)`: called only with `at` a multiple of 4 and `at + 4 <= len`
/// (checked here), once per word it needs (a table in shared memory is
/// read in place, each field once).
#[inline(always)]
fn parse_words(len: usize, word: impl Fn(usize) -> Result<u32, Error>) -> Result<VdevInfo, Error> {
    // Whether `at..at + n` lies in the table.
    let inside = |at: usize, n: usize| at.checked_add(n).is_some_and(|end| end <= len);
    // A header word: the table is too short without it.
    let head = |at: usize| {
        if inside(at, 4) {
            word(at)
        } else {
            Err(Error::Truncated)
        }
    };
    if head(0)? != 1 {
        return Err(Error::BadVersion);
    }
    let num = head(4)?;
    if head(8)? != 0 || head(12)? != 0 {
        return Err(Error::ReservedNotZero);
    }
    for i in 0..num as usize {
        let off = head(
            HEADER
                .checked_add(i.checked_mul(4).ok_or(Error::Truncated)?)
                .ok_or(Error::Truncated)?,
        )?;
        let at = off as usize;
        // Each bound is checked once, before the words it covers are read.
        if at % 4 != 0 || !inside(at, 4) {
            return Err(Error::EntryOutOfBounds);
        }
        if word(at)? != RSC_VDEV {
            continue;
        }
        if !inside(at, 8) {
            return Err(Error::EntryOutOfBounds);
        }
        if word(at + 4)? != VIRTIO_ID_RPMSG {
            continue;
        }
        if !inside(at, VDEV_LEN) {
            return Err(Error::EntryOutOfBounds);
        }
        // The status byte, then the vring count (and two reserved bytes).
        let [status, nvrings, ..] = word(at + 24)?.to_ne_bytes();
        if nvrings != 2 {
            return Err(Error::BadVringCount);
        }
        if !inside(at, VDEV_LEN + 2 * VRING_LEN) {
            return Err(Error::EntryOutOfBounds);
        }
        let dfeatures = word(at + 12)?;
        let gfeatures = word(at + 16)?;
        let spec = |o: usize| -> Result<VringSpec, Error> {
            let o = at + VDEV_LEN + o;
            Ok(VringSpec::new(
                word(o)?,
                word(o + 4)?,
                word(o + 8)?,
                word(o + 12)?,
            ))
        };
        return Ok(VdevInfo {
            offset: at,
            dfeatures,
            gfeatures,
            status,
            vrings: [spec(0)?, spec(VRING_LEN)?],
        });
    }
    Err(Error::NoRpmsgVdev)
}

/// The live vdev of a table in (possibly non-coherent) memory.
///
/// Every read invalidates the lines it covers first, because the host writes
/// the table behind this core's cache (§3.3 "the remote must re-read the
/// resource table from memory").
#[derive(Debug, Clone, Copy)]
pub struct VdevView {
    table_offset: usize,
    vdev_offset: usize,
    /// Each vring's `align` and `num` as this firmware built them, for a
    /// view of its own table ([`VdevView::at`]): no host writes them, so
    /// they are not read back.
    built: Option<[(u32, u32); 2]>,
}

impl VdevView {
    /// Locates the rpmsg vdev of the table at `table_offset` of `mem` (the
    /// table being `len` bytes).
    ///
    /// # Errors
    ///
    /// As for [`parse`], or a shared-memory error (`Misaligned` for a
    /// `table_offset` that is not a multiple of 4).
    pub fn locate<M: SharedMemory<Error = ShmError>, const N: usize>(
        mem: &M,
        table_offset: usize,
    ) -> Result<(Self, VdevInfo), Error> {
        let (start, len) = mem.covering_lines(table_offset, N)?;
        mem.invalidate(start, len)?;
        // Read in place, a word at a time (no copy through a zeroed
        // buffer): the whole table is checked to be in the window once,
        // and `table_offset` to be word-aligned.
        check_range(mem.len(), table_offset, N)?;
        check_align(table_offset, 4)?;
        let info = parse_words(N, |at| {
            // SAFETY: `at + 4 <= N` and `at` a multiple of 4
            // (`parse_words`' promise), so the word is inside the table,
            // which is inside the window, and 4-aligned (checked above).
            Ok(unsafe { mem.load_u32_unchecked(table_offset + at) }?)
        })?;
        Ok((
            Self {
                table_offset,
                vdev_offset: info.offset,
                built: None,
            },
            info,
        ))
    }

    /// The rpmsg vdev of this firmware's own table (`vdev`, from the
    /// builder of the `N`-byte table at `table_offset` of `mem`): nothing
    /// is parsed, the vdev is where the build put it. The reads that
    /// follow take only what the host writes from memory (status,
    /// negotiated features, each vring's `da` and notify id), checked as
    /// for a located view.
    ///
    /// # Errors
    ///
    /// As [`VdevView::locate`] for the table's place: a shared-memory
    /// error (`Misaligned` for a `table_offset` that is not a multiple of
    /// 4).
    pub fn at<M: SharedMemory<Error = ShmError>, const N: usize>(
        mem: &M,
        table_offset: usize,
        vdev: VdevAt<N>,
    ) -> Result<Self, Error> {
        check_range(mem.len(), table_offset, N)?;
        check_align(table_offset, 4)?;
        let [v0, v1] = vdev.vrings;
        Ok(Self {
            table_offset,
            vdev_offset: vdev.offset,
            built: Some([(v0.align, v0.num), (v1.align, v1.num)]),
        })
    }

    /// Each vring's `align` and `num` as built, for a view of this
    /// firmware's own table ([`VdevView::at`]).
    #[inline(always)]
    pub(crate) fn built(&self) -> [Option<(u32, u32)>; 2] {
        match self.built {
            Some([b0, b1]) => [Some(b0), Some(b1)],
            None => [None, None],
        }
    }

    fn fresh<M: SharedMemory<Error = ShmError>>(
        &self,
        mem: &M,
        at: usize,
        len: usize,
    ) -> Result<usize, Error> {
        let offset = self.table_offset + self.vdev_offset + at;
        let (start, span) = mem.covering_lines(offset, len)?;
        mem.invalidate(start, span)?;
        Ok(offset)
    }

    /// The virtio status byte as the host last wrote it.
    ///
    /// # Errors
    ///
    /// A shared-memory error.
    pub fn status<M: SharedMemory<Error = ShmError>>(&self, mem: &M) -> Result<u8, Error> {
        // The word holding the status byte (and, after it, the vring count
        // and the reserved bytes, which are not used): one load.
        let [status, ..] = self.word(mem, 24)?.to_ne_bytes();
        Ok(status)
    }

    /// The vdev's word at `at` (a multiple of 4), read fresh with one load.
    fn word<M: SharedMemory<Error = ShmError>>(&self, mem: &M, at: usize) -> Result<u32, Error> {
        let at = self.fresh(mem, at, 4)?;
        check_range(mem.len(), at, 4)?;
        check_align(at, 4)?;
        // SAFETY: `at..at + 4` is in the window and `at` 4-aligned (both
        // checked above).
        Ok(unsafe { mem.load_u32_unchecked(at) }?)
    }

    /// The features the host negotiated (`gfeatures`), as it last wrote
    /// them.
    ///
    /// # Errors
    ///
    /// A shared-memory error.
    pub fn gfeatures<M: SharedMemory<Error = ShmError>>(&self, mem: &M) -> Result<u32, Error> {
        self.word(mem, 16)
    }

    /// Whether the host has set `DRIVER_OK` (and not `NEEDS_RESET`/`FAILED`).
    ///
    /// # Errors
    ///
    /// A shared-memory error.
    pub fn driver_ok<M: SharedMemory<Error = ShmError>>(&self, mem: &M) -> Result<bool, Error> {
        let s = self.status(mem)?;
        Ok(s & status::DRIVER_OK != 0 && s & (status::NEEDS_RESET | status::FAILED) == 0)
    }

    /// Polls the status byte until the host sets `DRIVER_OK` (the remote's
    /// start-up handshake, §3.3), within `budget`; then returns the vrings
    /// as the host wrote them.
    ///
    /// # Errors
    ///
    /// [`Error::NotReady`] when the budget ran out; a shared-memory error.
    pub fn wait_driver_ok<M: SharedMemory<Error = ShmError>>(
        &self,
        mem: &M,
        mut budget: impl ipc_traits::mailbox::Budget,
    ) -> Result<[VringSpec; 2], Error> {
        while !self.driver_ok(mem)? {
            if !budget.next() {
                return Err(Error::NotReady);
            }
        }
        self.vrings(mem)
    }

    /// Clears the status byte, whatever it holds.
    ///
    /// Not for boot: a host that was first has already written a
    /// `DRIVER_OK` this would erase. [`HostBoot::start`] clears the status
    /// only when it is a previous session's.
    ///
    /// # Errors
    ///
    /// A shared-memory error.
    pub fn reset_status<M: SharedMemory<Error = ShmError>>(&self, mem: &M) -> Result<(), Error> {
        let at = self.table_offset + self.vdev_offset + 24;
        mem.write(at, &[0])?;
        let (start, span) = mem.covering_lines(at, 1)?;
        mem.clean(start, span)?;
        Ok(())
    }

    /// The vring descriptions as the host last wrote them (`da` rewritten
    /// by Linux, §3.2).
    ///
    /// # Errors
    ///
    /// A shared-memory error.
    #[inline(always)]
    pub fn vrings<M: SharedMemory<Error = ShmError>>(
        &self,
        mem: &M,
    ) -> Result<[VringSpec; 2], Error> {
        let at = self.fresh(mem, VDEV_LEN, 2 * VRING_LEN)?;
        // Eight word loads, each field read once, instead of a zeroed
        // buffer and a copy: the range is checked once here, and the
        // entry's offset must be word-aligned (every table the builder
        // makes is; a host never moves entries).
        check_range(mem.len(), at, 2 * VRING_LEN)?;
        check_align(at, 4)?;
        let word = |i: usize| {
            // SAFETY: `at + 4 * i + 4 <= at + 2 * VRING_LEN <= mem.len()`
            // for the fields read below (`i <= 8`), and `at` is 4-aligned
            // (both checked above).
            unsafe { mem.load_u32_unchecked(at + 4 * i) }
        };
        // `align` and `num` from the build when the table is this
        // firmware's own, else as the table holds them.
        let spec = |o: usize, built: Option<(u32, u32)>| -> Result<VringSpec, Error> {
            let da = word(o)?;
            let (align, num) = match built {
                Some(b) => b,
                None => (word(o + 1)?, word(o + 2)?),
            };
            Ok(VringSpec::new(da, align, num, word(o + 3)?))
        };
        let (b0, b1) = match self.built {
            Some([b0, b1]) => (Some(b0), Some(b1)),
            None => (None, None),
        };
        Ok([spec(0, b0)?, spec(VRING_LEN / 4, b1)?])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: usize = table_size(1, 1, 1, 2);
    static TABLE: ResourceTable<SIZE> = TableBuilder::<SIZE>::new(3)
        .carveout(0xB800_0000, 0, 0x10_0000, 0, "vdev0buffer")
        .trace(0x2000_0000, 0x1000, "trace0")
        .rpmsg_vdev(
            VIRTIO_RPMSG_F_NS,
            [
                VringSpec::new(0xB800_0000, 4096, 16, 0),
                VringSpec::new(0xB800_8000, 4096, 16, 1),
            ],
        )
        .finish();

    fn word(b: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn layout_matches_the_sheet() {
        let b = TABLE.bytes();
        assert_eq!(SIZE, 16 + 12 + 56 + 48 + 28 + 40);
        assert_eq!(
            (word(&b, 0), word(&b, 4), word(&b, 8), word(&b, 12)),
            (1, 3, 0, 0)
        );
        let (c, t, v) = (
            word(&b, 16) as usize,
            word(&b, 20) as usize,
            word(&b, 24) as usize,
        );
        assert_eq!((c, t, v), (28, 84, 132));
        assert_eq!(word(&b, c), RSC_CARVEOUT);
        assert_eq!(word(&b, c + 12), 0x10_0000);
        assert_eq!(&b[c + 24..c + 36], b"vdev0buffer\0");
        assert_eq!(
            (word(&b, t), word(&b, t + 4), word(&b, t + 8)),
            (RSC_TRACE, 0x2000_0000, 0x1000)
        );
        assert_eq!(
            (word(&b, v), word(&b, v + 4), word(&b, v + 12)),
            (RSC_VDEV, 7, 1)
        );
        assert_eq!((b[v + 24], b[v + 25]), (0, 2));
        assert_eq!(
            (
                word(&b, v + 28),
                word(&b, v + 32),
                word(&b, v + 36),
                word(&b, v + 40)
            ),
            (0xB800_0000, 4096, 16, 0)
        );
        assert_eq!(word(&b, v + 48), 0xB800_8000);
        assert_eq!(word(&b, v + 60), 1);
    }

    #[test]
    fn parse_finds_the_vdev_and_rejects_what_linux_rejects() {
        let b = TABLE.bytes();
        let info = parse(&b).unwrap();
        assert_eq!((info.offset, info.dfeatures, info.status), (132, 1, 0));
        assert_eq!(info.vrings[0].num, 16);

        let mut bad = b;
        bad[0..4].copy_from_slice(&2u32.to_ne_bytes());
        assert_eq!(parse(&bad), Err(Error::BadVersion));
        let mut bad = b;
        bad[9] = 1;
        assert_eq!(parse(&bad), Err(Error::ReservedNotZero));
        let mut bad = b;
        bad[24..28].copy_from_slice(&0xFFFF_FF00u32.to_ne_bytes());
        assert_eq!(parse(&bad), Err(Error::EntryOutOfBounds));
        let mut bad = b;
        bad[24..28].copy_from_slice(&133u32.to_ne_bytes());
        assert_eq!(
            parse(&bad),
            Err(Error::EntryOutOfBounds),
            "an entry offset is a multiple of 4"
        );
        let mut bad = b;
        bad[132 + 25] = 3;
        assert_eq!(parse(&bad), Err(Error::BadVringCount));
        assert_eq!(parse(&b[..10]), Err(Error::Truncated));
        let mut bad = b;
        bad[132 + 4] = 5;
        assert_eq!(parse(&bad), Err(Error::NoRpmsgVdev));
        let mut bad = b;
        bad[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(
            parse(&bad).is_ok(),
            "first vdev is found before the bogus offsets"
        );
        let mut bad = b;
        bad[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
        bad[132] = 9;
        assert!(
            parse(&bad).is_err(),
            "a huge entry count ends in an error, not a panic or a hang"
        );
    }

    #[test]
    fn parse_never_panics_on_truncations() {
        let b = TABLE.bytes();
        for cut in 0..b.len() {
            assert!(parse(&b[..cut]).is_err(), "cut at {cut}");
        }
        // Any cut inside the vdev entry (its header or its vring entries)
        // names the entry's offset.
        for cut in 132..b.len() {
            assert_eq!(
                parse(&b[..cut]),
                Err(Error::EntryOutOfBounds),
                "cut at {cut}"
            );
        }
    }
}

/// What [`VdevWatch::poll`] saw of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VdevEvent {
    /// No `DRIVER_OK` (not yet, or not again): do not touch the rings.
    Waiting,
    /// `DRIVER_OK`, as at the previous poll: the link runs.
    Running,
    /// `DRIVER_OK` went away (a virtio reset: the host's driver was
    /// removed, remoteproc stopped the device, or the host restarts): end
    /// the link's session now ([`crate::link::Link::end_session`], or
    /// [`crate::link::Link::release_session`] when the host is known to
    /// leave the old rings alone until it sets `DRIVER_OK` again).
    WentDown,
    /// `DRIVER_OK` (again): read the vrings ([`VdevView::vrings`]), build
    /// the rings and start the link, or restart it
    /// ([`crate::link::Link::restart`]) if it ran before.
    CameUp,
}

/// Watches the vdev status byte for a host restart: the Linux-master
/// counterpart of [`crate::session::PeerWatch`].
///
/// Linux resets a virtio device by writing status 0 and, when it probes
/// again, walks it back to `DRIVER_OK` (rpmsg-wire.md §3.3). A remote that
/// polls often enough sees [`VdevEvent::WentDown`] then
/// [`VdevEvent::CameUp`]. A host that resets and comes back between two
/// polls re-initialises the rings behind the remote's back; the remote's
/// ring checks then fail (an index jump breaks the ring,
/// [`crate::link::Link::is_broken`]), which is the cue to wait for
/// `DRIVER_OK` again and restart. Poll from the idle loop or on every
/// doorbell.
///
/// ```
/// use rpmsg::rsc_table::{VdevEvent, VdevWatch};
/// let mut watch = VdevWatch::new();
/// assert_eq!(watch.step(false), VdevEvent::Waiting);
/// assert_eq!(watch.step(true), VdevEvent::CameUp);
/// assert_eq!(watch.step(true), VdevEvent::Running);
/// assert_eq!(watch.step(false), VdevEvent::WentDown);
/// assert_eq!(watch.step(true), VdevEvent::CameUp);
/// assert_eq!(watch.restarts(), 1);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VdevWatch {
    up: bool,
    ups: u32,
}

impl VdevWatch {
    /// A watch that has not seen `DRIVER_OK` yet.
    pub const fn new() -> Self {
        Self { up: false, ups: 0 }
    }

    /// Reads the status byte ([`VdevView::driver_ok`]) and reports the
    /// transition.
    ///
    /// # Errors
    ///
    /// A shared-memory error.
    pub fn poll<M: SharedMemory<Error = ShmError>>(
        &mut self,
        view: &VdevView,
        mem: &M,
    ) -> Result<VdevEvent, Error> {
        Ok(self.step(view.driver_ok(mem)?))
    }

    /// The transition for a status read elsewhere (`driver_ok`: whether
    /// `DRIVER_OK` is set without `NEEDS_RESET` or `FAILED`).
    pub fn step(&mut self, driver_ok: bool) -> VdevEvent {
        let event = match (self.up, driver_ok) {
            (false, false) => VdevEvent::Waiting,
            (false, true) => {
                self.ups = self.ups.saturating_add(1);
                VdevEvent::CameUp
            }
            (true, true) => VdevEvent::Running,
            (true, false) => VdevEvent::WentDown,
        };
        self.up = driver_ok;
        event
    }

    /// Times the host came back after a reset (`CameUp` after the first).
    pub const fn restarts(&self) -> u32 {
        self.ups.saturating_sub(1)
    }
}

#[cfg(test)]
mod view_tests {
    use super::*;
    use ipc_traits::cache::Coherent;
    use ipc_traits::shm::RawRegion;

    const SIZE: usize = table_size(0, 0, 1, 2);
    static TABLE: ResourceTable<SIZE> = TableBuilder::<SIZE>::new(1)
        .rpmsg_vdev(
            VIRTIO_RPMSG_F_NS,
            [
                VringSpec::new(FW_RSC_ADDR_ANY, 16, 16, 0),
                VringSpec::new(FW_RSC_ADDR_ANY, 16, 16, 1),
            ],
        )
        .finish();

    #[test]
    fn view_sees_what_the_host_writes() {
        let base = core::ptr::NonNull::new(TABLE.as_ptr()).unwrap();
        // SAFETY: the table is a static of SIZE bytes, only accessed through
        // this window in this test.
        let shm = unsafe { RawRegion::new(base, SIZE, 0, Coherent) }.unwrap();
        let (view, info) = VdevView::locate::<_, SIZE>(&shm, 0).unwrap();
        assert_eq!(info.vrings[0].da, FW_RSC_ADDR_ANY);
        assert!(!view.driver_ok(&shm).unwrap());
        // The host rewrites the vring addresses and sets DRIVER_OK.
        shm.write(info.offset + 28, &0xB800_0000u32.to_ne_bytes())
            .unwrap();
        shm.write(
            info.offset + 24,
            &[status::ACKNOWLEDGE | status::DRIVER | status::DRIVER_OK],
        )
        .unwrap();
        assert!(view.driver_ok(&shm).unwrap());
        assert_eq!(view.vrings(&shm).unwrap()[0].da, 0xB800_0000);
        shm.write(info.offset + 24, &[status::DRIVER_OK | status::NEEDS_RESET])
            .unwrap();
        assert!(!view.driver_ok(&shm).unwrap());
        view.reset_status(&shm).unwrap();
        assert_eq!(view.status(&shm).unwrap(), 0);
        assert_eq!(
            view.wait_driver_ok(&shm, ipc_traits::mailbox::Spins::new(10)),
            Err(Error::NotReady)
        );
        shm.write(info.offset + 24, &[status::DRIVER_OK]).unwrap();
        assert_eq!(
            view.wait_driver_ok(&shm, ipc_traits::mailbox::Spins::new(0))
                .unwrap()[0]
                .da,
            0xB800_0000
        );
    }
}

/// What [`HostBoot::start`] found in the vdev status byte at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoundAtBoot {
    /// No `DRIVER_OK` (0, or a host still walking the status up): left as
    /// it is; the host sets `DRIVER_OK` when it is done.
    NotReady,
    /// `DRIVER_OK` of a session no remote has used yet: the host was
    /// first (a late remote). Kept; [`HostBoot::poll`] reports it at once.
    Current,
    /// `DRIVER_OK` left over from a session that a previous boot of this
    /// remote used (its used rings had moved): cleared to 0, and the
    /// remote waits for the host to set the device up again.
    StaleCleared,
}

/// How a remote paces its wait for the host, in ticks of its own clock
/// (any unit: SysTick periods, timer counts, loop passes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollTiming {
    /// The longest time between two looks at the status byte
    /// ([`HostPoll::Waiting::poll_at`]). This is how late a host that sends
    /// no start kick is noticed.
    pub interval: u64,
    /// After this long without `DRIVER_OK`, [`HostBoot::poll`] reports
    /// [`Error::NotReady`] once (to log it, or to give up); polling on
    /// keeps waiting, and the next report comes `patience` later.
    pub patience: u64,
}

/// What [`HostBoot::poll`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPoll {
    /// `DRIVER_OK`: the vrings as the host wrote them (`da`, `num`,
    /// `align`, notify ids). Check them against the window before use.
    Ready([VringSpec; 2]),
    /// Not yet.
    Waiting {
        /// Poll again at this tick at the latest (or earlier, on a
        /// doorbell). Sleep only in a state that a timer ends by then: the
        /// host may send no kick at all ([`HostBoot`], "Waiting for the
        /// host").
        poll_at: u64,
    },
}

/// The remote's start-up handshake with a host that owns the resource
/// table: find the vdev, clear its status only when it is known to be a
/// previous session's, then poll on a timer until the host sets
/// `DRIVER_OK`.
///
/// # Stale or current?
///
/// A remote cannot clear the status byte unconditionally at boot: a host
/// that was first (Linux probes the vdev right after starting the core, so
/// a remote with a slow start-up boots "late") has already written
/// `DRIVER_OK`, and erasing it leaves the remote waiting for a status that
/// never comes again. Only a status left over from a session this remote
/// already used may go.
///
/// The marker is the vrings' used indices. Every host that writes the
/// status byte zeroes each vring (`vring_size(num, align)` bytes) when it
/// creates its virtqueues, before `DRIVER_OK`: Linux in `rp_find_vq`
/// (rpmsg-wire.md §2.1), OpenAMP's virtio driver role in
/// `virtio_create_virtqueues`, this crate's hosts when they lay rings out.
/// Only the device (the remote) writes a used index afterwards, and every
/// remote here announces its services as soon as it is attached, which
/// moves vring 0's used index. So at boot:
///
/// - `DRIVER_OK` and both used indices 0: the session has not been used
///   by any remote ([`FoundAtBoot::Current`]); attaching to it is what the
///   host expects. This is also what a previous boot that never sent or
///   returned anything leaves, and attaching then is as right.
/// - `DRIVER_OK` and a used index that moved: a previous boot of this
///   remote ran in that session, and the rings hold its progress that this
///   boot does not know ([`FoundAtBoot::StaleCleared`]). The status is
///   cleared, and the remote waits for the host's next session (Linux:
///   recovery or a restart of the remote; both zero the vrings again).
/// - vrings that do not map into the rings window: nothing can be proven;
///   the status is kept (the vrings are reported as they are, and the
///   caller's check of them reports the problem).
///
/// What is not covered: both used indices wrapped to 0 at once (65 536
/// messages each way, exactly), read as current; and a host that resets
/// and sets the device up again between this boot's look at the used
/// indices and its clear (microseconds at boot), whose new `DRIVER_OK`
/// the clear then erases.
///
/// # Waiting for the host
///
/// Which hosts promise a start kick (a doorbell after `DRIVER_OK`):
///
/// | Host | Sets `DRIVER_OK` | Start kick |
/// |---|---|---|
/// | Linux (remoteproc + `virtio_rpmsg_bus`) | in `rpmsg_probe`, after zeroing the vrings and posting the receive buffers (rpmsg-wire.md §2.1) | one, on vring 0, right after; it predates a late remote's mailbox set-up and may be gone |
/// | OpenAMP, virtio driver role (`rpmsg_init_vdev`) | at the end of the init, after zeroing the vrings | **none** |
/// | rpmsg-lite master (`rpmsg_lite_master_init`) | has no resource table: this type does not apply | one, on its receive vring, at the end of its init; lost by a late remote |
/// | this crate's hosts (`fw-common`'s `host`, the tests) | as Linux | one, as Linux |
///
/// So a kick only shortens the wait: [`HostBoot::poll`] must run at least
/// every [`PollTiming::interval`], whatever the doorbell does. Between two
/// polls sleep only in a state that a timer ends (Cortex-M: `wfi` without
/// `SLEEPDEEP` while SysTick runs; a core that stops its timer in deep
/// sleep must not sleep deeply while it waits for the host).
///
/// # Examples
///
/// ```
/// use ipc_traits::cache::Coherent;
/// use ipc_traits::shm::{RawRegion, SharedMemory};
/// use rpmsg::rsc_table::{
///     status, table_size, FoundAtBoot, HostBoot, HostPoll, PollTiming, ResourceTable,
///     TableBuilder, VringSpec, FW_RSC_ADDR_ANY, VIRTIO_RPMSG_F_NS,
/// };
///
/// const SIZE: usize = table_size(0, 0, 1, 2);
/// static TABLE: ResourceTable<SIZE> = TableBuilder::<SIZE>::new(1)
///     .rpmsg_vdev(
///         VIRTIO_RPMSG_F_NS,
///         [VringSpec::new(FW_RSC_ADDR_ANY, 16, 16, 0), VringSpec::new(FW_RSC_ADDR_ANY, 16, 16, 1)],
///     )
///     .finish();
/// let mut rings = [0u64; 128];
/// let base = core::ptr::NonNull::new(TABLE.as_ptr()).unwrap();
/// // SAFETY: the static table and the local array are reached only
/// // through these windows.
/// let table = unsafe { RawRegion::new(base, SIZE, 0, Coherent) }.unwrap();
/// let rbase = core::ptr::NonNull::new(rings.as_mut_ptr().cast::<u8>()).unwrap();
/// // SAFETY: as above.
/// let shared = unsafe { RawRegion::new(rbase, 1024, 0x1000, Coherent) }.unwrap();
///
/// let timing = PollTiming { interval: 10, patience: 1000 };
/// let mut boot = HostBoot::start::<_, _, SIZE>(&table, 0, &shared, timing, 0).unwrap();
/// assert_eq!(boot.found(), FoundAtBoot::NotReady);
/// assert_eq!(boot.poll(&table, 5).unwrap(), HostPoll::Waiting { poll_at: 15 });
/// // The host places the vrings and sets DRIVER_OK (no kick needed).
/// let vdev = boot.info().offset;
/// table.write(vdev + 28, &0x1000u32.to_ne_bytes()).unwrap();
/// table.write(vdev + 48, &0x1200u32.to_ne_bytes()).unwrap();
/// table.write(vdev + 24, &[status::DRIVER_OK]).unwrap();
/// match boot.poll(&table, 15).unwrap() {
///     HostPoll::Ready(v) => assert_eq!(v[1].da, 0x1200),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct HostBoot {
    view: VdevView,
    info: VdevInfo,
    found: FoundAtBoot,
    timing: PollTiming,
    since: u64,
}

impl HostBoot {
    /// Boots the remote's side: locates the rpmsg vdev of the `N`-byte
    /// table at `table_offset` of `table`, and clears its status only when
    /// it is a previous session's (type docs). `rings` is the window the
    /// vrings live in (it may be `table`'s); `now` starts the patience.
    ///
    /// # Errors
    ///
    /// As for [`VdevView::locate`]; a shared-memory error.
    pub fn start<T, M, const N: usize>(
        table: &T,
        table_offset: usize,
        rings: &M,
        timing: PollTiming,
        now: u64,
    ) -> Result<Self, Error>
    where
        T: SharedMemory<Error = ShmError>,
        M: SharedMemory<Error = ShmError>,
    {
        let (view, info) = VdevView::locate::<T, N>(table, table_offset)?;
        Self::started(view, info, table, rings, timing, now)
    }

    /// [`HostBoot::start`] for this firmware's own table (`vdev`, from its
    /// builder: [`TableBuilder::vdev_at`]): the vdev is where the build put
    /// it ([`VdevView::at`]), so nothing is parsed; what the host writes is
    /// read and checked as [`HostBoot::start`] does. [`HostBoot::info`]
    /// then holds the vdev as built ([`VdevAt::info`]).
    ///
    /// # Errors
    ///
    /// As [`VdevView::at`]; a shared-memory error.
    pub fn start_at<T, M, const N: usize>(
        table: &T,
        table_offset: usize,
        vdev: VdevAt<N>,
        rings: &M,
        timing: PollTiming,
        now: u64,
    ) -> Result<Self, Error>
    where
        T: SharedMemory<Error = ShmError>,
        M: SharedMemory<Error = ShmError>,
    {
        let view = VdevView::at(table, table_offset, vdev)?;
        Self::started(view, vdev.info(), table, rings, timing, now)
    }

    /// The boot's look at the status (type docs), `view` found.
    #[inline(always)]
    fn started<T, M>(
        view: VdevView,
        info: VdevInfo,
        table: &T,
        rings: &M,
        timing: PollTiming,
        now: u64,
    ) -> Result<Self, Error>
    where
        T: SharedMemory<Error = ShmError>,
        M: SharedMemory<Error = ShmError>,
    {
        let found = if view.driver_ok(table)? {
            // The status before the rings: the host zeroes them before it
            // writes DRIVER_OK.
            table.acquire_fence();
            #[expect(
                clippy::question_mark,
                reason = "`?` moves the array through a byte-aligned temporary: a memcpy call, which links memcpy into firmware"
            )]
            let vrings = match view.vrings(table) {
                Ok(v) => v,
                Err(e) => return Err(e),
            };
            // With the feature `small`, each vring on its own (no loop):
            // the built `align` and `num` stay constants at both calls of
            // `ring_was_used`, which folds them into its one copy.
            #[cfg(feature = "small")]
            let used = {
                let at = |s: VringSpec| ring_was_used(rings, s.da, s.align, s.num);
                let used0 = at(vrings[0])?;
                at(vrings[1])? || used0
            };
            #[cfg(not(feature = "small"))]
            let used = {
                let mut used = false;
                for &spec in &vrings {
                    used |= used_index(rings, spec, None)?.is_some_and(|idx| idx != 0);
                }
                used
            };
            if used {
                view.clear_status(table)?;
                FoundAtBoot::StaleCleared
            } else {
                FoundAtBoot::Current
            }
        } else {
            FoundAtBoot::NotReady
        };
        Ok(Self {
            view,
            info,
            found,
            timing,
            since: now,
        })
    }

    /// What the status byte held at boot.
    pub const fn found(&self) -> FoundAtBoot {
        self.found
    }

    /// The vdev, for [`VdevView::vrings`] and a [`VdevWatch`] afterwards.
    pub const fn view(&self) -> &VdevView {
        &self.view
    }

    /// The vdev as read at boot (its offset in the table, the features the
    /// firmware offered), or as built after [`HostBoot::start_at`].
    pub const fn info(&self) -> &VdevInfo {
        &self.info
    }

    /// Looks at the status byte once (never blocks). Call it at boot, on
    /// every doorbell, and by [`HostPoll::Waiting::poll_at`] at the latest.
    ///
    /// # Errors
    ///
    /// [`Error::NotReady`] once per [`PollTiming::patience`] without
    /// `DRIVER_OK` (polling again keeps waiting); a shared-memory error.
    pub fn poll<T: SharedMemory<Error = ShmError>>(
        &mut self,
        table: &T,
        now: u64,
    ) -> Result<HostPoll, Error> {
        if self.view.driver_ok(table)? {
            // A `match`, not `?`: no memcpy, as in `start`.
            return match self.view.vrings(table) {
                Ok(v) => Ok(HostPoll::Ready(v)),
                Err(e) => Err(e),
            };
        }
        if now.saturating_sub(self.since) >= self.timing.patience {
            self.since = now;
            return Err(Error::NotReady);
        }
        Ok(HostPoll::Waiting {
            poll_at: now.saturating_add(self.timing.interval),
        })
    }
}

/// Whether the used index of the vring at `da` (a legacy layout of `num`
/// entries aligned to `align`), read fresh from `rings`, is not 0 (a
/// previous session's ring); `false` when the vring does not map into the
/// window as a legacy layout.
///
/// With the feature `small`: one copy for both vrings, out of line, the
/// entry's fields as scalars; the built `align` and `num` (the same
/// constants at both calls of [`HostBoot::start_at`]) fold into its checks
/// all the same, where a copy inlined per vring cost more.
#[cfg(feature = "small")]
#[inline(never)]
fn ring_was_used<M: SharedMemory<Error = ShmError>>(
    rings: &M,
    da: u32,
    align: u32,
    num: u32,
) -> Result<bool, Error> {
    let Ok(layout) = crate::boot::legacy_checks(rings, da, align, num).map(|w| w.layout()) else {
        return Ok(false);
    };
    // (The answer as one flag: the caller tests no `Option` of it.)
    Ok(used_index_in(rings, layout)?.is_some_and(|idx| idx != 0))
}

/// The used index of the vring `spec` describes, read fresh from `rings`;
/// `None` when the vring does not map into the window as a legacy layout.
#[cfg(not(feature = "small"))]
fn used_index<M: SharedMemory<Error = ShmError>>(
    rings: &M,
    spec: VringSpec,
    built: Option<(u32, u32)>,
) -> Result<Option<u16>, Error> {
    // The boot path's own check (the whole ring inside the window), with
    // the built `align` and `num` of this firmware's own table (`built`).
    let Ok(layout) = crate::boot::vring_in(rings, spec, built).map(|w| w.layout()) else {
        return Ok(None);
    };
    used_index_in(rings, layout)
}

/// `used.idx` of the ring at `layout`, checked inside `rings`.
#[inline(always)]
fn used_index_in<M: SharedMemory<Error = ShmError>>(
    rings: &M,
    layout: vring::Layout,
) -> Result<Option<u16>, Error> {
    // `used.idx` follows `used.flags`, inside the ring.
    let at = layout.used_offset() + 2;
    let (start, len) = rings.covering_lines(at, 2)?;
    rings.invalidate(start, len)?;
    // SAFETY: `vring_layout` checked that the whole ring, used ring
    // included, lies in the window (`used_offset + used_size(num) <=
    // len`, and `used_size` counts `flags` and `idx`), and the used ring
    // starts at a multiple of `align >= 4`, so `at` is 2-aligned.
    Ok(Some(unsafe { rings.load_u16_acquire_unchecked(at) }?))
}

impl VdevView {
    /// Writes status 0 over a stale status (see [`HostBoot`]), and cleans
    /// the line so the write-back reaches memory.
    ///
    /// No invalidate first: the only caller, [`HostBoot::start`], has just
    /// invalidated and read this line (`driver_ok`), so the cached copy is
    /// the host's latest and the write-back carries its neighbouring fields
    /// as the host left them. A second invalidate here would only narrow,
    /// not close, the window in which a host writing meanwhile is
    /// overwritten (the case [`HostBoot`] documents as not covered), so it
    /// was removed as redundant (`conformance/mutate-cache.sh` showed no
    /// test could tell).
    fn clear_status<M: SharedMemory<Error = ShmError>>(&self, mem: &M) -> Result<(), Error> {
        let at = self.table_offset + self.vdev_offset + 24;
        let (start, span) = mem.covering_lines(at, 1)?;
        mem.write(at, &[0])?;
        mem.clean(start, span)?;
        Ok(())
    }
}
