//! Decoding one image: both vrings, who holds each buffer, the RPMsg
//! messages in the buffers, the vdev of a resource table.
//!
//! # Who holds a buffer
//!
//! Shared memory does not record the private cursors of the two sides, so
//! ownership is inferred from the indices, assuming in-order completion (as
//! every RPMsg implementation does):
//!
//! - `outstanding = avail.idx − (used.idx − used_base)` buffers were
//!   published and not yet returned: the last `outstanding` entries of the
//!   available ring are **with the device** (`used_base` is `num` on a
//!   transmit ring where rpmsg-lite's master parks its free buffers in the
//!   used ring, else 0);
//! - of the last `num − outstanding` used entries, those not re-published
//!   are **back with the driver** (on vring0 a message the driver has to
//!   read, on vring1 a consumed buffer that is free again);
//! - any other descriptor is in **no ring**: free at the driver where that
//!   is the convention (Linux's transmit buffers), **leaked** where every
//!   buffer lives in a ring (receive rings, rpmsg-lite's parked transmit
//!   ring).

use rpmsg::wire::{Header, NsAction, NsMessage, HEADER_LEN, NS_ADDR, NS_MSG_LEN};
use vring::layout::Layout;
use vring::notify::{DESC_F_INDIRECT, DESC_F_NEXT};
use vring::Virtio1;

use crate::error::InspectError;
use crate::image::Image;
use crate::link::{Direction, LinkLayout};

/// Resource tables are in the host's byte order (as `rsc_table::parse`
/// reads them).
const NATIVE_BE: bool = cfg!(target_endian = "big");

/// How many payload bytes a [`Message`] keeps.
pub const PAYLOAD_PREVIEW: usize = 48;

/// One descriptor (`struct vring_desc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Desc {
    /// Buffer address as the peer sees it.
    pub addr: u64,
    /// Buffer length.
    pub len: u32,
    /// `VRING_DESC_F_*`.
    pub flags: u16,
    /// Next descriptor of a chain.
    pub next: u16,
}

/// One used-ring element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsedElem {
    /// Head descriptor id.
    pub id: u32,
    /// Bytes written by the device.
    pub len: u32,
}

/// Who holds a descriptor (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    /// Published in the available ring and not returned.
    Device,
    /// Returned in the used ring and not re-published.
    Returned,
    /// In no ring, which is legitimate here (free at the driver).
    Driver,
    /// In no ring where every buffer should be in one.
    Leaked,
}

impl Owner {
    /// A short label for this owner on a ring of direction `dir`.
    pub const fn label(self, dir: Direction) -> &'static str {
        match (self, dir) {
            (Self::Device, Direction::ToDriver) => "empty, with device",
            (Self::Device, Direction::ToDevice) => "message for device",
            (Self::Returned, Direction::ToDriver) => "message for driver",
            (Self::Returned, Direction::ToDevice) => "consumed, free",
            (Self::Driver, _) => "free at driver",
            (Self::Leaked, _) => "leaked",
        }
    }

    /// A stable identifier for JSON and CSS.
    pub const fn key(self) -> &'static str {
        match self {
            Self::Device => "device",
            Self::Returned => "returned",
            Self::Driver => "driver",
            Self::Leaked => "leaked",
        }
    }
}

/// One decoded vring.
#[derive(Debug, Clone)]
pub struct Ring {
    /// 0 or 1.
    pub index: usize,
    /// Which way it carries messages.
    pub direction: Direction,
    /// Where it sits.
    pub layout: Layout,
    /// The descriptor table.
    pub desc: Vec<Desc>,
    /// `avail.flags`.
    pub avail_flags: u16,
    /// `avail.idx`.
    pub avail_idx: u16,
    /// `avail.ring[]`.
    pub avail_ring: Vec<u16>,
    /// `used_event` (meaningful with `EVENT_IDX`).
    pub used_event: u16,
    /// `used.flags`.
    pub used_flags: u16,
    /// `used.idx`.
    pub used_idx: u16,
    /// `used.ring[]`.
    pub used_ring: Vec<UsedElem>,
    /// `avail_event` (meaningful with `EVENT_IDX`).
    pub avail_event: u16,
    /// The used index this ring starts at (0, or `num` when parked).
    pub used_base: u16,
    /// Buffers published and not returned, as the indices say (more than
    /// `num` means the indices are impossible).
    pub outstanding: u16,
    /// How many of the newest used entries are counted as returned.
    pub returned_window: u16,
    /// Whether every buffer must live in a ring (leak detection applies).
    pub all_in_rings: bool,
    /// Owner of each descriptor.
    pub owners: Vec<Owner>,
    /// Impossible states found in this ring, one sentence each.
    pub anomalies: Vec<String>,
}

impl Ring {
    /// Queue size.
    pub fn num(&self) -> u16 {
        self.layout.num()
    }

    /// Descriptors held by `owner`.
    pub fn held_by(&self, owner: Owner) -> Vec<u16> {
        (0..self.num())
            .filter(|&i| self.owners.get(usize::from(i)) == Some(&owner))
            .collect()
    }

    /// Whether the indices are within what the ring allows.
    pub fn indices_possible(&self) -> bool {
        self.outstanding <= self.num()
    }

    /// The position of available-ring index `idx`.
    pub fn pos(&self, idx: u16) -> usize {
        usize::from(idx & (self.num() - 1))
    }
}

/// A decoded name-service message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsInfo {
    /// Service name.
    pub name: String,
    /// Announced endpoint address.
    pub addr: u32,
    /// Create (`true`) or destroy.
    pub create: bool,
}

/// What the buffer of a message is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    /// Sent and not yet consumed by its receiver.
    Pending,
    /// An old message left in a buffer that has since been consumed.
    Stale,
}

/// An RPMsg message found in a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Ring of the descriptor.
    pub ring: usize,
    /// Descriptor id.
    pub desc: u16,
    /// Image offset of the buffer.
    pub offset: usize,
    /// The header.
    pub header: Header,
    /// The first payload bytes (up to [`PAYLOAD_PREVIEW`]).
    pub payload: Vec<u8>,
    /// Whether it waits for its receiver.
    pub state: MessageState,
    /// The name-service message, when addressed to 53.
    pub ns: Option<NsInfo>,
}

/// One image, decoded.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Image size in bytes.
    pub len: usize,
    /// vring0 and vring1.
    pub rings: [Ring; 2],
    /// Every message found in a buffer of either ring.
    pub messages: Vec<Message>,
    /// The vdev status byte and features, re-read from this image when the
    /// table is inside it.
    pub vdev: Option<VdevState>,
}

/// The live fields of the rpmsg vdev entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VdevState {
    /// Device features offered by the remote.
    pub dfeatures: u32,
    /// Features the driver acknowledged.
    pub gfeatures: u32,
    /// The virtio status byte.
    pub status: u8,
}

impl Snapshot {
    /// Messages still waiting for their receiver.
    pub fn pending(&self) -> impl Iterator<Item = &Message> {
        self.messages
            .iter()
            .filter(|m| m.state == MessageState::Pending)
    }
}

/// Decodes `image` with `link`.
///
/// # Errors
///
/// [`InspectError::Truncated`] when a ring leaves the image,
/// [`InspectError::NotAVring`] when the bytes at a ring's place are not a
/// ring (flags and entries that no implementation writes).
pub fn decode(image: &Image<'_>, link: &LinkLayout) -> Result<Snapshot, InspectError> {
    let r0 = decode_ring(image, link, 0)?;
    let r1 = decode_ring(image, link, 1)?;
    let rings = [r0, r1];
    let mut messages = Vec::new();
    for ring in &rings {
        for i in 0..ring.num() {
            if let Some(m) = message(image, link, ring, i) {
                messages.push(m);
            }
        }
    }
    let vdev = match &link.vdev {
        Some(t) => Some(match t.table_offset {
            // Re-read: the second image of a pair has its own status.
            Some(off) => {
                let at = off + t.info.offset;
                VdevState {
                    dfeatures: image.u32(at + 12, NATIVE_BE)?,
                    gfeatures: image.u32(at + 16, NATIVE_BE)?,
                    status: image.slice(at + 24, 1)?.first().copied().unwrap_or(0),
                }
            }
            None => VdevState {
                dfeatures: t.info.dfeatures,
                gfeatures: t.info.gfeatures,
                status: t.info.status,
            },
        }),
        None => None,
    };
    Ok(Snapshot {
        len: image.len(),
        rings,
        messages,
        vdev,
    })
}

fn decode_ring(image: &Image<'_>, link: &LinkLayout, index: usize) -> Result<Ring, InspectError> {
    let l = link.rings[index];
    let be = link.big_endian;
    let num = l.num();
    let desc = (0..num)
        .map(|i| {
            let o = l.desc_entry_offset(i);
            Ok(Desc {
                addr: image.u64(o, be)?,
                len: image.u32(o + 8, be)?,
                flags: image.u16(o + 12, be)?,
                next: image.u16(o + 14, be)?,
            })
        })
        .collect::<Result<Vec<_>, InspectError>>()?;
    let avail_ring = (0..num)
        .map(|p| image.u16(l.avail_entry_offset(p), be))
        .collect::<Result<Vec<_>, _>>()?;
    let used_ring = (0..num)
        .map(|p| {
            let o = l.used_entry_offset(p);
            Ok(UsedElem {
                id: image.u32(o, be)?,
                len: image.u32(o + 4, be)?,
            })
        })
        .collect::<Result<Vec<_>, InspectError>>()?;
    let avail_flags = image.u16(l.avail_offset(), be)?;
    let used_flags = image.u16(l.used_offset(), be)?;

    // Bytes no implementation writes: reject instead of "diagnosing" noise.
    let bad_avail = avail_ring.iter().filter(|&&h| h >= num).count();
    let bad_used = used_ring.iter().filter(|e| e.id >= u32::from(num)).count();
    let half = usize::from(num / 2).max(1);
    if bad_avail > half || bad_used > half || (avail_flags > 1 && used_flags > 1) {
        return Err(InspectError::NotAVring {
            ring: index,
            reason: format!(
                "{bad_avail} of {num} available entries and {bad_used} of {num} used entries name descriptors >= {num}; avail.flags {avail_flags:#x}, used.flags {used_flags:#x}"
            ),
        });
    }

    let mut ring = Ring {
        index,
        direction: LinkLayout::direction(index),
        layout: l,
        desc,
        avail_flags,
        avail_idx: image.u16(l.avail_offset() + 2, be)?,
        avail_ring,
        used_event: image.u16(l.used_event_offset(), be)?,
        used_flags,
        used_idx: image.u16(l.used_offset() + 2, be)?,
        used_ring,
        avail_event: image.u16(l.avail_event_offset(), be)?,
        used_base: link.used_base(index),
        outstanding: 0,
        returned_window: 0,
        all_in_rings: false,
        owners: Vec::new(),
        anomalies: Vec::new(),
    };
    assign_owners(&mut ring, link);
    check_descriptors(&mut ring, link, image.len());
    Ok(ring)
}

/// Fills `outstanding`, `returned_window`, `owners` and the index anomalies.
fn assign_owners(r: &mut Ring, link: &LinkLayout) {
    let num = r.num();
    let n = usize::from(num);
    let consumed = r.used_idx.wrapping_sub(r.used_base);
    r.outstanding = r.avail_idx.wrapping_sub(consumed);
    let mut owners = vec![None::<Owner>; n];
    if r.outstanding > num {
        let parked_hint = if !link.parked_tx
            && r.index == 1
            && r.used_idx.wrapping_sub(r.avail_idx) == num
        {
            " (used.idx − avail.idx = num: this looks like rpmsg-lite's master parking its transmit buffers; use an rpmsg-lite preset or --parked-tx)"
        } else {
            ""
        };
        let ahead = r.outstanding.wrapping_neg();
        r.anomalies.push(if ahead < 0x8000 {
            format!(
                "used.idx {} is {ahead} ahead of what avail.idx {} published: the device returned buffers it was never given{parked_hint}",
                r.used_idx, r.avail_idx
            )
        } else {
            format!(
                "avail.idx {} and used.idx {} put {} buffers with the device, more than the ring's {num}",
                r.avail_idx, r.used_idx, r.outstanding
            )
        });
        r.owners = vec![Owner::Driver; n];
        return;
    }
    // With the device: the newest `outstanding` available entries.
    for k in 0..r.outstanding {
        let idx = r.avail_idx.wrapping_sub(1).wrapping_sub(k);
        let head = r.avail_ring[r.pos(idx)];
        match owners.get_mut(usize::from(head)) {
            Some(Some(Owner::Device)) => r.anomalies.push(format!(
                "descriptor {head} is published twice among the {} outstanding entries (avail.ring[{}])",
                r.outstanding,
                r.pos(idx)
            )),
            Some(slot) => *slot = Some(Owner::Device),
            None => r.anomalies.push(format!(
                "avail.ring[{}] = {head} names no descriptor (num {num})",
                r.pos(idx)
            )),
        }
    }
    // Returned: the newest used entries not re-published. A used ring that
    // never wrapped holds only `used.idx` entries (rings start zeroed; an
    // entry past the index means an earlier lap).
    let mut window = num - r.outstanding;
    let lapped = r.used_ring[usize::from(r.used_idx).min(n)..]
        .iter()
        .any(|e| e.id != 0 || e.len != 0);
    if !lapped && r.used_idx < window {
        window = r.used_idx;
    }
    r.returned_window = window;
    for k in 0..window {
        let idx = r.used_idx.wrapping_sub(1).wrapping_sub(k);
        let e = r.used_ring[r.pos(idx)];
        let id = usize::try_from(e.id).unwrap_or(usize::MAX);
        match owners.get_mut(id) {
            Some(slot @ None) => *slot = Some(Owner::Returned),
            Some(Some(_)) => {}
            None => r.anomalies.push(format!(
                "used.ring[{}].id = {} names no descriptor (num {num})",
                r.pos(idx),
                e.id
            )),
        }
        if let Some(d) = r.desc.get(id) {
            if e.len > d.len && d.len != 0 {
                r.anomalies.push(format!(
                    "used.ring[{}] reports {} bytes written into descriptor {id} of {} bytes",
                    r.pos(idx),
                    e.len,
                    d.len
                ));
            }
        }
    }
    // Every buffer lives in a ring on receive rings once the driver posted
    // a full ring, and on a parked transmit ring.
    let posted_all = r.avail_idx >= num || r.used_idx >= num || lapped;
    r.all_in_rings = match r.direction {
        Direction::ToDriver => posted_all,
        Direction::ToDevice => link.parked_tx,
    };
    let free = if r.all_in_rings {
        Owner::Leaked
    } else {
        Owner::Driver
    };
    r.owners = owners.into_iter().map(|o| o.unwrap_or(free)).collect();
}

fn check_descriptors(r: &mut Ring, link: &LinkLayout, image_len: usize) {
    let num = r.num();
    for (i, d) in r.desc.iter().enumerate() {
        if !matches!(r.owners.get(i), Some(Owner::Device | Owner::Returned)) {
            continue;
        }
        if d.flags & DESC_F_NEXT != 0 && d.next >= num {
            r.anomalies
                .push(format!("descriptor {i} chains to {} (num {num})", d.next));
        }
        if d.flags & DESC_F_INDIRECT != 0 {
            r.anomalies.push(format!(
                "descriptor {i} is INDIRECT, which RPMsg never uses"
            ));
        }
        if d.len == 0 {
            r.anomalies
                .push(format!("descriptor {i} is in a ring with length 0"));
        }
        if d.addr != 0 && link.offset_of(d.addr, 1, image_len).is_none() && link.base_inferred {
            r.anomalies.push(format!(
                "descriptor {i} points at {:#x}, outside the image at base {:#x}",
                d.addr, link.base
            ));
        }
    }
}

/// The message in the buffer of descriptor `i`, if its header is plausible.
fn message(image: &Image<'_>, link: &LinkLayout, ring: &Ring, i: u16) -> Option<Message> {
    let d = ring.desc.get(usize::from(i))?;
    let size = usize::try_from(d.len).ok()?.min(link.buf_size);
    let offset = link.offset_of(d.addr, size, image.len())?;
    let raw: [u8; HEADER_LEN] = image.slice(offset, HEADER_LEN).ok()?.try_into().ok()?;
    let header = Header::decode::<Virtio1>(&le_header(raw, link.big_endian));
    if header.src == 0 && header.dst == 0 && header.len == 0 {
        return None;
    }
    let len = usize::from(header.len);
    if len > size.saturating_sub(HEADER_LEN) {
        return None;
    }
    let payload = image
        .slice(offset + HEADER_LEN, len.min(PAYLOAD_PREVIEW))
        .ok()?
        .to_vec();
    let owner = ring.owners.get(usize::from(i)).copied();
    let state = match (ring.direction, owner) {
        (Direction::ToDevice, Some(Owner::Device))
        | (Direction::ToDriver, Some(Owner::Returned)) => MessageState::Pending,
        _ => MessageState::Stale,
    };
    let ns = (header.dst == NS_ADDR && len == NS_MSG_LEN)
        .then(|| image.slice(offset + HEADER_LEN, NS_MSG_LEN).ok())
        .flatten()
        .and_then(|b| {
            let mut b: [u8; NS_MSG_LEN] = b.try_into().ok()?;
            if link.big_endian {
                b[32..36].reverse();
                b[36..40].reverse();
            }
            NsMessage::decode::<Virtio1>(&b).ok()
        })
        .map(|m| NsInfo {
            name: m.name.as_str().to_owned(),
            addr: m.addr,
            create: m.action == NsAction::Create,
        });
    Some(Message {
        ring: ring.index,
        desc: i,
        offset,
        header,
        payload,
        state,
        ns,
    })
}

/// A header's bytes with every field little-endian, so that the project's
/// decoder ([`Header::decode`] with [`Virtio1`]) reads a big-endian one too.
fn le_header(mut b: [u8; HEADER_LEN], big: bool) -> [u8; HEADER_LEN] {
    if big {
        for (s, e) in [(0, 4), (4, 8), (8, 10), (10, 12), (12, 14), (14, 16)] {
            b[s..e].reverse();
        }
    }
    b
}
