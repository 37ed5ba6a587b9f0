//! Guest memory: the regions of `SET_MEM_TABLE`, mapped, each a
//! [`SharedMemory`] window seen by the guest at its guest physical address.
//!
//! Under UML the guest's "physical" addresses are offsets into its physmem
//! file, so `guest_addr == user_addr == mmap_offset` and one region covers
//! all of the guest's memory above the kernel image (docs/linux-peer.md,
//! "Step 3b", Addresses / Memory region). Descriptors name guest physical
//! addresses ([`SharedMemory::translate`] on a [`Region`]); ring addresses
//! from `SET_VRING_ADDR` are frontend virtual addresses
//! ([`GuestMemory::find_user`]).
//!
//! # Limits
//!
//! Mapping checks that each descriptor is a regular file at least
//! `mmap_offset + size` bytes long, so no access faults at the time of
//! mapping. A frontend that truncates the file afterwards can still make an
//! access raise `SIGBUS`; that is a frontend killing its own test.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;

use ipc_traits::cache::Coherent;
use ipc_traits::shm::ErrorType;
use ipc_traits::shm::{DirectMemory, RawRegion, SharedMemory, ShmError};

use crate::error::Error;
use crate::protocol::{MemRegion, ProtocolError};
use crate::sys::{self, Mapping};

/// One mapped region: a coherent [`SharedMemory`] window (host and guest
/// run on the same CPUs) whose peer base is the region's guest physical
/// address.
pub struct Region {
    info: MemRegion,
    shm: RawRegion<Coherent>,
    // Declared last: the window above points into it.
    _map: Mapping,
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("guest_addr", &format_args!("{:#x}", self.info.guest_addr))
            .field("size", &format_args!("{:#x}", self.info.size))
            .field("user_addr", &format_args!("{:#x}", self.info.user_addr))
            .finish()
    }
}

impl Region {
    /// What `SET_MEM_TABLE` said about this region.
    pub fn info(&self) -> &MemRegion {
        &self.info
    }

    /// The window offset of the frontend virtual range `addr..addr + len`,
    /// if it lies wholly in this region.
    pub fn user_offset(&self, addr: u64, len: usize) -> Option<usize> {
        let off = addr.checked_sub(self.info.user_addr)?;
        let end = off.checked_add(len as u64)?;
        if end > self.info.size {
            return None;
        }
        usize::try_from(off).ok()
    }
}

impl ErrorType for Region {
    type Error = ShmError;
}

impl SharedMemory for Region {
    const LINE: usize = 1;
    const COHERENT: bool = true;

    fn len(&self) -> usize {
        self.shm.len()
    }

    fn peer_base(&self) -> u64 {
        self.shm.peer_base()
    }

    fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), ShmError> {
        self.shm.read(offset, dst)
    }

    fn write(&self, offset: usize, src: &[u8]) -> Result<(), ShmError> {
        self.shm.write(offset, src)
    }

    fn load_u16_acquire(&self, offset: usize) -> Result<u16, ShmError> {
        self.shm.load_u16_acquire(offset)
    }

    fn store_u16_release(&self, offset: usize, value: u16) -> Result<(), ShmError> {
        self.shm.store_u16_release(offset, value)
    }

    fn load_u32_acquire(&self, offset: usize) -> Result<u32, ShmError> {
        self.shm.load_u32_acquire(offset)
    }

    fn store_u32_release(&self, offset: usize, value: u32) -> Result<(), ShmError> {
        self.shm.store_u32_release(offset, value)
    }

    fn clean(&self, offset: usize, len: usize) -> Result<(), ShmError> {
        self.shm.clean(offset, len)
    }

    fn invalidate(&self, offset: usize, len: usize) -> Result<(), ShmError> {
        self.shm.invalidate(offset, len)
    }
}

// SAFETY: forwards to the `RawRegion`, whose offset `o` is `as_ptr() + o`;
// the mapping it points into lives as long as `self` (field `_map`).
unsafe impl DirectMemory for Region {
    fn as_ptr(&self) -> NonNull<u8> {
        self.shm.as_ptr()
    }
}

/// Every region of one `SET_MEM_TABLE`, mapped.
#[derive(Debug)]
pub struct GuestMemory {
    regions: Vec<Region>,
}

impl GuestMemory {
    /// Maps `regions`, the i-th from `fds[i]` (the descriptors are closed
    /// afterwards; the mappings stay).
    ///
    /// # Errors
    ///
    /// [`ProtocolError::BadFdCount`] if the counts differ,
    /// [`ProtocolError::MisalignedRegion`] (file offset not page-aligned),
    /// [`ProtocolError::RegionFileTooSmall`], [`Error::Io`] (`fstat`, `mmap`).
    pub fn map(regions: &[MemRegion], fds: Vec<OwnedFd>) -> Result<Self, Error> {
        if regions.len() != fds.len() {
            return Err(ProtocolError::BadFdCount {
                request: crate::protocol::Request::SetMemTable,
                got: fds.len(),
                expected: regions.len(),
            }
            .into());
        }
        let page = sys::page_size() as u64;
        let mut mapped = Vec::with_capacity(regions.len());
        for (index, (r, fd)) in regions.iter().zip(&fds).enumerate() {
            if r.mmap_offset % page != 0 {
                return Err(ProtocolError::MisalignedRegion { index }.into());
            }
            let len =
                usize::try_from(r.size).map_err(|_| ProtocolError::RegionFileTooSmall { index })?;
            let file = sys::file_info(fd.as_fd()).map_err(|e| Error::io("fstat region", &e))?;
            let end = r.mmap_offset.checked_add(r.size);
            if !file.regular || end.is_none_or(|end| end > file.size) {
                return Err(ProtocolError::RegionFileTooSmall { index }.into());
            }
            let map = Mapping::map_shared(fd.as_fd(), len, r.mmap_offset)
                .map_err(|e| Error::io("mmap region", &e))?;
            // SAFETY: `map` is a fresh shared mapping of `len` bytes that
            // lives as long as the `Region` (it is stored next to the
            // window); no Rust object lives in it, and on this side it is
            // accessed only through this window. Host and guest share the
            // CPU caches (`Coherent`). `guest_addr + size` does not overflow
            // (checked when parsing).
            let shm = unsafe { RawRegion::new(map.ptr(), map.len(), r.guest_addr, Coherent) }
                .map_err(|_| ProtocolError::BadRegion { index })?;
            mapped.push(Region {
                info: *r,
                shm,
                _map: map,
            });
        }
        Ok(Self { regions: mapped })
    }

    /// The regions, in table order.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// The region holding the frontend virtual range `addr..addr + len`
    /// wholly, and the offset in it.
    pub fn find_user(&self, addr: u64, len: usize) -> Option<(usize, usize)> {
        self.regions
            .iter()
            .enumerate()
            .find_map(|(i, r)| r.user_offset(addr, len).map(|o| (i, o)))
    }

    /// The region holding the guest physical range `addr..addr + len`
    /// wholly, and the offset in it.
    pub fn find_guest(&self, addr: u64, len: usize) -> Option<(usize, usize)> {
        self.regions
            .iter()
            .enumerate()
            .find_map(|(i, r)| r.translate(addr, len).ok().map(|o| (i, o)))
    }
}

/// One region of a shared [`GuestMemory`], owned: clones share the
/// mapping, which lives until the last clone is dropped (so the data path
/// keeps it after the connection that mapped it closed).
#[derive(Debug, Clone)]
pub struct SharedRegion {
    mem: Arc<GuestMemory>,
    index: usize,
}

impl SharedRegion {
    /// Region `index` of `mem`, if it exists.
    pub fn new(mem: Arc<GuestMemory>, index: usize) -> Option<Self> {
        (index < mem.regions.len()).then_some(Self { mem, index })
    }

    /// The region.
    pub fn region(&self) -> &Region {
        // `new` checked the index and the regions never change.
        &self.mem.regions[self.index]
    }

    /// All of the guest memory this region belongs to.
    pub fn guest_memory(&self) -> &Arc<GuestMemory> {
        &self.mem
    }
}

impl ErrorType for SharedRegion {
    type Error = ShmError;
}

impl SharedMemory for SharedRegion {
    const LINE: usize = 1;
    const COHERENT: bool = true;

    fn len(&self) -> usize {
        self.region().len()
    }

    fn peer_base(&self) -> u64 {
        self.region().peer_base()
    }

    fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), ShmError> {
        self.region().read(offset, dst)
    }

    fn write(&self, offset: usize, src: &[u8]) -> Result<(), ShmError> {
        self.region().write(offset, src)
    }

    fn load_u16_acquire(&self, offset: usize) -> Result<u16, ShmError> {
        self.region().load_u16_acquire(offset)
    }

    fn store_u16_release(&self, offset: usize, value: u16) -> Result<(), ShmError> {
        self.region().store_u16_release(offset, value)
    }

    fn load_u32_acquire(&self, offset: usize) -> Result<u32, ShmError> {
        self.region().load_u32_acquire(offset)
    }

    fn store_u32_release(&self, offset: usize, value: u32) -> Result<(), ShmError> {
        self.region().store_u32_release(offset, value)
    }

    fn clean(&self, offset: usize, len: usize) -> Result<(), ShmError> {
        self.region().clean(offset, len)
    }

    fn invalidate(&self, offset: usize, len: usize) -> Result<(), ShmError> {
        self.region().invalidate(offset, len)
    }
}

// SAFETY: forwards to the region, which upholds the contract; the mapping
// lives as long as any clone of the `Arc` (this value holds one).
unsafe impl DirectMemory for SharedRegion {
    fn as_ptr(&self) -> NonNull<u8> {
        self.region().as_ptr()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A temporary regular file of `len` zero bytes (unlinked at once).
    pub(crate) fn backing_file(len: u64) -> OwnedFd {
        let dir = std::env::temp_dir();
        let path = dir.join(format!(
            "linux-peer-mem-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f.set_len(len).unwrap();
        f.flush().unwrap();
        f.into()
    }

    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

    fn region(guest: u64, size: u64, user: u64, off: u64) -> MemRegion {
        MemRegion {
            guest_addr: guest,
            size,
            user_addr: user,
            mmap_offset: off,
        }
    }

    #[test]
    fn maps_and_translates_guest_and_user_addresses() {
        let fd = backing_file(0x6000);
        let mem =
            GuestMemory::map(&[region(0x10_0000, 0x4000, 0x7f00_0000, 0x2000)], vec![fd]).unwrap();
        let r = &mem.regions()[0];
        assert_eq!(r.len(), 0x4000);
        assert_eq!(r.translate(0x10_0010, 16), Ok(0x10));
        assert!(r.translate(0x10_3ff8, 16).is_err());
        assert_eq!(mem.find_user(0x7f00_1000, 0x100), Some((0, 0x1000)));
        assert_eq!(mem.find_user(0x7f00_3f00, 0x101), None);
        assert_eq!(mem.find_guest(0x10_0000, 0x4000), Some((0, 0)));
        assert_eq!(mem.find_guest(0xf_ffff, 1), None);
        r.store_u32_release(8, 0xdead_beef).unwrap();
        assert_eq!(r.load_u32_acquire(8), Ok(0xdead_beef));
    }

    #[test]
    fn shared_mapping_sees_the_other_mappings_writes() {
        let fd = backing_file(0x2000);
        let fd2 = fd.try_clone().unwrap();
        let a = GuestMemory::map(&[region(0, 0x2000, 0, 0)], vec![fd]).unwrap();
        let b = GuestMemory::map(&[region(0, 0x1000, 0, 0x1000)], vec![fd2]).unwrap();
        a.regions()[0].write(0x1010, b"hello").unwrap();
        let mut buf = [0; 5];
        b.regions()[0].read(0x10, &mut buf).unwrap();
        assert_eq!(&buf, b"hello");
    }

    #[test]
    fn refuses_short_files_misaligned_offsets_and_non_files() {
        let small = backing_file(0x1000);
        assert_eq!(
            GuestMemory::map(&[region(0, 0x2000, 0, 0)], vec![small]).unwrap_err(),
            Error::Protocol(ProtocolError::RegionFileTooSmall { index: 0 })
        );
        let fd = backing_file(0x3000);
        assert_eq!(
            GuestMemory::map(&[region(0, 0x1000, 0, 0x800)], vec![fd]).unwrap_err(),
            Error::Protocol(ProtocolError::MisalignedRegion { index: 0 })
        );
        let ev = sys::eventfd().unwrap();
        assert_eq!(
            GuestMemory::map(&[region(0, 0x1000, 0, 0)], vec![ev]).unwrap_err(),
            Error::Protocol(ProtocolError::RegionFileTooSmall { index: 0 })
        );
        assert!(matches!(
            GuestMemory::map(&[region(0, 0x1000, 0, 0)], vec![]).unwrap_err(),
            Error::Protocol(ProtocolError::BadFdCount { .. })
        ));
    }
}
