//! Byte order of ring fields, chosen once per ring as a type parameter.
//!
//! Legacy rings are in the driver's native byte order; virtio 1.x rings are
//! little-endian (rpmsg-wire.md §1.5). rpmsg over remoteproc can never
//! negotiate `VIRTIO_F_VERSION_1`, so it is always [`Legacy`]; a ring served
//! to a virtio 1.x driver (vhost-user) is [`Virtio1`]. The conversion is
//! resolved at compile time: on a little-endian core both are the identity.
#![deny(unsafe_code)]

mod sealed {
    pub trait Sealed {}
}

/// A ring byte order (sealed: [`Legacy`] or [`Virtio1`]).
pub trait Endian: sealed::Sealed + 'static {
    /// Converts a 16-bit field as stored in memory (read natively) to its
    /// value.
    fn u16_from_stored(v: u16) -> u16;
    /// Converts a 16-bit value to what must be stored natively.
    fn u16_to_stored(v: u16) -> u16;
    /// Decodes a 16-bit field from its bytes.
    fn u16_from(b: [u8; 2]) -> u16;
    /// Encodes a 16-bit field.
    fn u16_to(v: u16) -> [u8; 2];
    /// Decodes a 32-bit field from its bytes.
    fn u32_from(b: [u8; 4]) -> u32;
    /// Encodes a 32-bit field.
    fn u32_to(v: u32) -> [u8; 4];
    /// Decodes a 64-bit field from its bytes.
    fn u64_from(b: [u8; 8]) -> u64;
    /// Encodes a 64-bit field.
    fn u64_to(v: u64) -> [u8; 8];
}

/// Legacy virtio: fields in the native byte order of the driver, which for
/// remoteproc is also ours (both sides run the same endianness; big-endian
/// on OCTEON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Legacy;

/// Virtio 1.x: every field little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Virtio1;

impl sealed::Sealed for Legacy {}
impl sealed::Sealed for Virtio1 {}

impl Endian for Legacy {
    #[inline(always)]
    fn u16_from_stored(v: u16) -> u16 {
        v
    }
    #[inline(always)]
    fn u16_to_stored(v: u16) -> u16 {
        v
    }
    #[inline(always)]
    fn u16_from(b: [u8; 2]) -> u16 {
        u16::from_ne_bytes(b)
    }
    #[inline(always)]
    fn u16_to(v: u16) -> [u8; 2] {
        v.to_ne_bytes()
    }
    #[inline(always)]
    fn u32_from(b: [u8; 4]) -> u32 {
        u32::from_ne_bytes(b)
    }
    #[inline(always)]
    fn u32_to(v: u32) -> [u8; 4] {
        v.to_ne_bytes()
    }
    #[inline(always)]
    fn u64_from(b: [u8; 8]) -> u64 {
        u64::from_ne_bytes(b)
    }
    #[inline(always)]
    fn u64_to(v: u64) -> [u8; 8] {
        v.to_ne_bytes()
    }
}

impl Endian for Virtio1 {
    #[inline(always)]
    fn u16_from_stored(v: u16) -> u16 {
        u16::from_le(v)
    }
    #[inline(always)]
    fn u16_to_stored(v: u16) -> u16 {
        v.to_le()
    }
    #[inline(always)]
    fn u16_from(b: [u8; 2]) -> u16 {
        u16::from_le_bytes(b)
    }
    #[inline(always)]
    fn u16_to(v: u16) -> [u8; 2] {
        v.to_le_bytes()
    }
    #[inline(always)]
    fn u32_from(b: [u8; 4]) -> u32 {
        u32::from_le_bytes(b)
    }
    #[inline(always)]
    fn u32_to(v: u32) -> [u8; 4] {
        v.to_le_bytes()
    }
    #[inline(always)]
    fn u64_from(b: [u8; 8]) -> u64 {
        u64::from_le_bytes(b)
    }
    #[inline(always)]
    fn u64_to(v: u64) -> [u8; 8] {
        v.to_le_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtio1_is_little_endian_everywhere_and_legacy_is_native() {
        assert_eq!(Virtio1::u32_to(0x0102_0304), [4, 3, 2, 1]);
        assert_eq!(Virtio1::u16_from([0x34, 0x12]), 0x1234);
        assert_eq!(Virtio1::u64_to(1)[0], 1);
        // A stored native u16 whose bytes are [1, 0] is 1 in virtio 1.x.
        assert_eq!(Virtio1::u16_from_stored(u16::from_ne_bytes([1, 0])), 1);
        assert_eq!(Legacy::u32_to(0x0102_0304), 0x0102_0304u32.to_ne_bytes());
        assert_eq!(Legacy::u16_from_stored(0xabcd), 0xabcd);
        for v in [0u16, 1, 0x1234, 0xffff] {
            assert_eq!(Virtio1::u16_from_stored(Virtio1::u16_to_stored(v)), v);
            assert_eq!(Virtio1::u16_to_stored(v).to_ne_bytes(), v.to_le_bytes());
        }
    }
}
