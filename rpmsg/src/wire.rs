//! The rpmsg wire format: the 16-byte message header and the 40-byte
//! name-service message (shared/docs/hw/rpmsg-wire.md §2.3, §2.4).
//!
//! Fields use the ring's byte order ([`vring::Endian`]): native for legacy
//! remoteproc rings, little-endian for virtio 1.x (Linux's `__rpmsg32`
//! follows the virtio device's endianness).
#![deny(unsafe_code)]

use core::fmt;
use core::mem::MaybeUninit;

use vring::Endian;

use crate::Error;

/// Size of `struct rpmsg_hdr` (§2.3).
pub const HEADER_LEN: usize = 16;
/// Size of `struct rpmsg_ns_msg` (§2.4).
pub const NS_MSG_LEN: usize = 40;
/// `RPMSG_NAME_SIZE` (§2.4).
pub const NAME_LEN: usize = 32;
/// `RPMSG_NS_ADDR`: the name service's address (§2.4).
pub const NS_ADDR: u32 = 53;
/// `RPMSG_ADDR_ANY` (§2.4).
pub const ADDR_ANY: u32 = 0xFFFF_FFFF;
/// `RPMSG_RESERVED_ADDRESSES`: dynamic local addresses start here (§2.4).
pub const RESERVED_ADDRESSES: u32 = 1024;
/// `RPMSG_NS_CREATE` (§2.4).
pub const NS_CREATE: u32 = 0;
/// `RPMSG_NS_DESTROY` (§2.4).
pub const NS_DESTROY: u32 = 1;
/// The default buffer size (`MAX_RPMSG_BUF_SIZE`, §2.2).
pub const DEFAULT_BUF_SIZE: usize = 512;

/// `struct rpmsg_hdr` (§2.3) without the ignored `reserved` word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Source endpoint address.
    pub src: u32,
    /// Destination endpoint address.
    pub dst: u32,
    /// Payload length in bytes.
    pub len: u16,
    /// Flags (0 on the wire today).
    pub flags: u16,
}

impl Header {
    /// Encodes the header (`reserved` written as 0, as Linux does).
    pub fn encode<O: Endian>(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&O::u32_to(self.src));
        b[4..8].copy_from_slice(&O::u32_to(self.dst));
        b[12..14].copy_from_slice(&O::u16_to(self.len));
        b[14..16].copy_from_slice(&O::u16_to(self.flags));
        b
    }

    /// [`Header::encode`] as the wire image's four 32-bit words, each as
    /// memory holds it natively (word `i` is bytes `4i..4i + 4`): a header
    /// written word by word, with no byte array in between.
    #[cfg(not(feature = "small"))]
    #[inline(always)]
    pub(crate) fn encode_words<O: Endian>(&self) -> [u32; 4] {
        let [l0, l1] = O::u16_to(self.len);
        let [f0, f1] = O::u16_to(self.flags);
        [
            u32::from_ne_bytes(O::u32_to(self.src)),
            u32::from_ne_bytes(O::u32_to(self.dst)),
            0,
            u32::from_ne_bytes([l0, l1, f0, f1]),
        ]
    }

    /// [`Header::decode`] of the wire image's 32-bit words 0, 1 and 3, each
    /// as memory holds it natively (word `i` is bytes `4i..4i + 4`;
    /// `reserved` is not read): a header read word by word, with no byte
    /// array in between.
    #[inline(always)]
    pub(crate) fn decode_words<O: Endian>(src: u32, dst: u32, len_flags: u32) -> Self {
        let [l0, l1, f0, f1] = len_flags.to_ne_bytes();
        Self {
            src: O::u32_from(src.to_ne_bytes()),
            dst: O::u32_from(dst.to_ne_bytes()),
            len: O::u16_from([l0, l1]),
            flags: O::u16_from([f0, f1]),
        }
    }

    /// Decodes a header; the `reserved` word is ignored (rpmsg-lite keeps
    /// bookkeeping there, §2.3).
    pub fn decode<O: Endian>(b: &[u8; HEADER_LEN]) -> Self {
        Self {
            src: O::u32_from([b[0], b[1], b[2], b[3]]),
            dst: O::u32_from([b[4], b[5], b[6], b[7]]),
            len: O::u16_from([b[12], b[13]]),
            flags: O::u16_from([b[14], b[15]]),
        }
    }

    /// Checks the payload length against what the peer reported as used and
    /// against the buffer size: `HEADER_LEN + len <= min(used_len, buf_size)`
    /// (Linux `rpmsg_recv_single`; rpmsg-lite reports the whole buffer as
    /// used, §2.3).
    ///
    /// # Errors
    ///
    /// [`Error::BadMessage`]: shorter than a header, or the header asks for
    /// more than the used length or the buffer holds.
    pub fn check_len(&self, used_len: usize, buf_size: usize) -> Result<usize, Error> {
        let avail = used_len.min(buf_size);
        let room = avail.checked_sub(HEADER_LEN).ok_or(Error::BadMessage)?;
        if usize::from(self.len) > room {
            return Err(Error::BadMessage);
        }
        Ok(usize::from(self.len))
    }
}

/// A service name: up to 31 bytes of UTF-8, NUL-padded on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Name {
    bytes: [u8; NAME_LEN],
    len: u8,
}

impl Name {
    /// A name from a string, or `None` if it is longer than 31 bytes or
    /// contains a NUL.
    pub const fn new(name: &str) -> Option<Self> {
        let src = name.as_bytes();
        if src.len() >= NAME_LEN {
            return None;
        }
        // Every byte written once, the padding too, over no zeroed array: a
        // 32-byte zeroing is a `memset` call on a microcontroller, which
        // the smallest image otherwise does without.
        let mut bytes = [const { MaybeUninit::<u8>::uninit() }; NAME_LEN];
        let mut i = 0;
        while i < NAME_LEN {
            let b = if i < src.len() {
                if src[i] == 0 {
                    return None;
                }
                src[i]
            } else {
                0
            };
            bytes[i] = MaybeUninit::new(b);
            i += 1;
        }
        // SAFETY: the loop above initialised every element, and
        // `MaybeUninit<u8>` has `u8`'s size and layout.
        #[allow(unsafe_code)]
        let bytes =
            unsafe { core::mem::transmute::<[MaybeUninit<u8>; NAME_LEN], [u8; NAME_LEN]>(bytes) };
        Some(Self {
            bytes,
            len: src.len() as u8,
        })
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        // Built from a `&str` or validated as UTF-8 in `decode`, so this
        // cannot fail; the fallback keeps the path panic-free regardless.
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }

    /// The 32 wire bytes (NUL-padded).
    pub const fn wire_bytes(&self) -> [u8; NAME_LEN] {
        self.bytes
    }

    /// The name up to the first NUL within the first 31 bytes; a name that
    /// fills all 32 bytes loses its last one, as Linux forces
    /// `name[RPMSG_NAME_SIZE - 1] = 0` before using it (`rpmsg_ns_cb`):
    /// rpmsg-lite's `rpmsg_ns_announce` `strncpy`s into the 32 bytes, so a
    /// 32-character name arrives without a NUL.
    fn decode(raw: &[u8; NAME_LEN]) -> Result<Self, Error> {
        let field = &raw[..NAME_LEN - 1];
        let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        let text = core::str::from_utf8(&field[..len]).map_err(|_| Error::BadAnnouncement)?;
        // At most 31 bytes without a NUL: `new` accepts it.
        Self::new(text).ok_or(Error::BadAnnouncement)
    }

    /// Whether the 32 name bytes of a name-service message hold no NUL, so
    /// that decoding drops the last one.
    fn is_cut(raw: &[u8; NAME_LEN]) -> bool {
        !raw.contains(&0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Create or destroy (§2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsAction {
    /// `RPMSG_NS_CREATE`.
    Create,
    /// `RPMSG_NS_DESTROY`.
    Destroy,
}

/// `struct rpmsg_ns_msg` (§2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NsMessage {
    /// Service name.
    pub name: Name,
    /// Address of the announcing endpoint.
    pub addr: u32,
    /// Create or destroy.
    pub action: NsAction,
}

impl NsMessage {
    /// Encodes the 40 bytes.
    pub fn encode<O: Endian>(&self) -> [u8; NS_MSG_LEN] {
        let mut b = [0u8; NS_MSG_LEN];
        b[..NAME_LEN].copy_from_slice(&self.name.wire_bytes());
        b[32..36].copy_from_slice(&O::u32_to(self.addr));
        let flags = match self.action {
            NsAction::Create => NS_CREATE,
            NsAction::Destroy => NS_DESTROY,
        };
        b[36..40].copy_from_slice(&O::u32_to(flags));
        b
    }

    /// Decodes a name-service payload, checking size, name and flags.
    ///
    /// A name without a NUL in its 32 bytes is cut to its first 31, as
    /// Linux does (`rpmsg_ns_cb` sets `name[31] = 0`; rpmsg-lite sends a
    /// 32-character name that way). [`NsMessage::name_is_cut`] tells when
    /// that happened.
    ///
    /// # Errors
    ///
    /// [`Error::BadAnnouncement`] (the caller drops the message and counts
    /// it, as Linux does for "malformed ns msg").
    pub fn decode<O: Endian>(payload: &[u8]) -> Result<Self, Error> {
        let b: &[u8; NS_MSG_LEN] = payload.try_into().map_err(|_| Error::BadAnnouncement)?;
        let mut raw = [0u8; NAME_LEN];
        raw.copy_from_slice(&b[..NAME_LEN]);
        let name = Name::decode(&raw)?;
        let addr = O::u32_from([b[32], b[33], b[34], b[35]]);
        let action = match O::u32_from([b[36], b[37], b[38], b[39]]) {
            NS_CREATE => NsAction::Create,
            NS_DESTROY => NsAction::Destroy,
            _ => return Err(Error::BadAnnouncement),
        };
        Ok(Self { name, addr, action })
    }

    /// Whether [`NsMessage::decode`] cuts the name of `payload` (32 name
    /// bytes without a NUL); `false` for a payload too short to hold a name.
    pub fn name_is_cut(payload: &[u8]) -> bool {
        payload.first_chunk::<NAME_LEN>().is_some_and(Name::is_cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_ignores_reserved() {
        let h = Header {
            src: 0x400,
            dst: 30,
            len: 5,
            flags: 0,
        };
        let mut b = h.encode::<vring::Virtio1>();
        assert_eq!(b, [0, 4, 0, 0, 30, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0]);
        b[8..12].copy_from_slice(&[0xAA, 0xBB, 3, 0]);
        assert_eq!(Header::decode::<vring::Virtio1>(&b), h);
        assert_eq!(
            Header::decode::<vring::Legacy>(&h.encode::<vring::Legacy>()),
            h
        );
    }

    /// The header stored word by word is the same bytes as the encoded one.
    #[cfg(not(feature = "small"))]
    #[test]
    fn header_words_are_the_encoded_bytes() {
        let h = Header {
            src: 0x0102_0304,
            dst: 0x0506_0708,
            len: 0x090A,
            flags: 0x0B0C,
        };
        fn bytes(w: [u32; 4]) -> Vec<u8> {
            w.iter().flat_map(|w| w.to_ne_bytes()).collect()
        }
        assert_eq!(
            bytes(h.encode_words::<vring::Virtio1>()),
            h.encode::<vring::Virtio1>()
        );
        assert_eq!(
            bytes(h.encode_words::<vring::Legacy>()),
            h.encode::<vring::Legacy>()
        );
    }

    #[test]
    fn length_is_checked_against_used_and_buffer() {
        let h = Header {
            src: 1,
            dst: 2,
            len: 496,
            flags: 0,
        };
        assert_eq!(h.check_len(512, 512), Ok(496));
        assert_eq!(h.check_len(511, 512), Err(Error::BadMessage));
        assert_eq!(h.check_len(4096, 256), Err(Error::BadMessage));
        assert_eq!(h.check_len(8, 512), Err(Error::BadMessage));
        let small = Header { len: 3, ..h };
        assert_eq!(small.check_len(19, 512), Ok(3));
    }

    #[test]
    fn ns_message_round_trip_and_rejections() {
        let m = NsMessage {
            name: Name::new("rpmsg-vector-test").unwrap(),
            addr: 30,
            action: NsAction::Create,
        };
        let b = m.encode::<vring::Virtio1>();
        assert_eq!(&b[..18], b"rpmsg-vector-test\0");
        assert_eq!(NsMessage::decode::<vring::Virtio1>(&b), Ok(m));
        assert_eq!(
            NsMessage::decode::<vring::Virtio1>(&b[..39]),
            Err(Error::BadAnnouncement)
        );
        assert!(!NsMessage::name_is_cut(&b));
        let mut long = b;
        long[..NAME_LEN].fill(b'x');
        let cut = NsMessage::decode::<vring::Virtio1>(&long).unwrap();
        assert_eq!(cut.name.as_str(), "x".repeat(31));
        assert!(NsMessage::name_is_cut(&long));
        // A NUL in the last byte only is a full 31-byte name, not a cut.
        long[NAME_LEN - 1] = 0;
        assert!(!NsMessage::name_is_cut(&long));
        assert_eq!(NsMessage::decode::<vring::Virtio1>(&long), Ok(cut));
        let mut bad = b;
        bad[0] = 0xFF;
        assert_eq!(
            NsMessage::decode::<vring::Virtio1>(&bad),
            Err(Error::BadAnnouncement)
        );
        let mut flags = b;
        flags[36] = 7;
        assert_eq!(
            NsMessage::decode::<vring::Virtio1>(&flags),
            Err(Error::BadAnnouncement)
        );
        assert!(Name::new(&"y".repeat(32)).is_none());
        assert!(Name::new("a\0b").is_none());
        assert_eq!(Name::new(&"z".repeat(31)).unwrap().as_str().len(), 31);
    }
}
