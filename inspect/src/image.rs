//! Bounds-checked reads of an image: every access returns an error instead
//! of panicking, whatever the offset.

use crate::error::InspectError;

/// A memory image of the shared region.
#[derive(Debug, Clone, Copy)]
pub struct Image<'a> {
    bytes: &'a [u8],
}

impl<'a> Image<'a> {
    /// Wraps the bytes of an image.
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// The whole image.
    pub const fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Its length in bytes.
    pub const fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether it is empty.
    pub const fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// `len` bytes at `off`.
    ///
    /// # Errors
    ///
    /// [`InspectError::Truncated`] when the range leaves the image.
    pub fn slice(&self, off: usize, len: usize) -> Result<&'a [u8], InspectError> {
        off.checked_add(len)
            .and_then(|end| self.bytes.get(off..end))
            .ok_or_else(|| InspectError::Truncated {
                what: format!("a read at {off:#x}"),
                need: off.saturating_add(len),
                len: self.bytes.len(),
            })
    }

    fn array<const N: usize>(&self, off: usize, big: bool) -> Result<[u8; N], InspectError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.slice(off, N)?);
        if big {
            a.reverse();
        }
        Ok(a)
    }

    /// A `u16` at `off` (little-endian unless `big`).
    ///
    /// # Errors
    ///
    /// As [`Image::slice`].
    pub fn u16(&self, off: usize, big: bool) -> Result<u16, InspectError> {
        self.array(off, big).map(u16::from_le_bytes)
    }

    /// A `u32` at `off`.
    ///
    /// # Errors
    ///
    /// As [`Image::slice`].
    pub fn u32(&self, off: usize, big: bool) -> Result<u32, InspectError> {
        self.array(off, big).map(u32::from_le_bytes)
    }

    /// A `u64` at `off`.
    ///
    /// # Errors
    ///
    /// As [`Image::slice`].
    pub fn u64(&self, off: usize, big: bool) -> Result<u64, InspectError> {
        self.array(off, big).map(u64::from_le_bytes)
    }
}
