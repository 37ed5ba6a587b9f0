//! Where the two vrings and the buffers of a link sit in an image, and what
//! the two sides' conventions are.
//!
//! A [`LinkLayout`] is resolved from [`LayoutOptions`] (command-line options,
//! a preset, and optionally a resource table found in the image). The ring
//! offsets come from [`vring::layout`]; nothing here recomputes them.
//!
//! Facts: shared/docs/hw/rpmsg-wire.md §1.2 (legacy layout), §3 (resource
//! table); shared/vectors/rpmsg-lite/README.md (rpmsg-lite placements, the
//! master's transmit buffers parked in vring1's used ring).

use std::fmt;

use rpmsg::rsc_table::{self, VdevInfo};
use vring::layout::{align_up, checked_vring_size, rpmsg_lite, Layout};

use crate::error::InspectError;
use crate::image::Image;

/// A named set of defaults for a known kind of link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// rpmsg-lite master and remote on two MCUs: `VRING_ALIGN` 16, vring1
    /// right behind vring0, buffers behind vring1 (vector set `mcu-align16`).
    RpmsgLiteMcu,
    /// rpmsg-lite master on an i.MX layout that Linux could also read:
    /// `VRING_ALIGN` 0x1000, vring1 at 0x8000, buffers at 0x10000 (vector
    /// set `linux-align4096`).
    RpmsgLiteLinux,
    /// Linux remoteproc is the master (virtio driver of both rings): 256
    /// entries, 4096 alignment, each vring page-aligned after the other,
    /// buffers behind them; a resource table in the image overrides these.
    LinuxRemoteproc,
}

impl Preset {
    /// Every preset, for help texts.
    pub const ALL: [Preset; 3] = [
        Self::RpmsgLiteMcu,
        Self::RpmsgLiteLinux,
        Self::LinuxRemoteproc,
    ];

    /// The name used on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::RpmsgLiteMcu => "rpmsg-lite-mcu",
            Self::RpmsgLiteLinux => "rpmsg-lite-linux",
            Self::LinuxRemoteproc => "linux-remoteproc",
        }
    }

    /// Parses a command-line name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == s)
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where to look for a resource table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RscSource {
    /// Do not use one.
    #[default]
    None,
    /// Scan the image for one (4-byte aligned, version 1, an rpmsg vdev).
    Auto,
    /// At this offset of the image.
    At(usize),
    /// In a separate file (the firmware's `.resource_table` section, or a
    /// copy read from the remote's memory).
    Bytes(Vec<u8>),
}

/// What the user said about the layout; every `None` takes the preset's
/// value (or the resource table's).
#[derive(Debug, Clone, Default)]
pub struct LayoutOptions {
    /// Defaults for a known kind of link.
    pub preset: Option<Preset>,
    /// Queue size of both vrings.
    pub num: Option<u16>,
    /// `align` of both vrings (legacy layout).
    pub align: Option<usize>,
    /// Image offset of vring0.
    pub vring0: Option<usize>,
    /// Image offset of vring1.
    pub vring1: Option<usize>,
    /// Image offset of the buffer pool (used to infer the base address).
    pub buffers: Option<usize>,
    /// Size of one RPMsg buffer, header included.
    pub buf_size: Option<usize>,
    /// The address (as written in descriptors) of the image's first byte.
    pub base: Option<u64>,
    /// Whether the master parks its free transmit buffers in vring1's used
    /// ring (rpmsg-lite).
    pub parked_tx: Option<bool>,
    /// Whether `VIRTIO_RING_F_EVENT_IDX` was negotiated.
    pub event_idx: Option<bool>,
    /// Whether the device side honours `VRING_AVAIL_F_NO_INTERRUPT`
    /// (rpmsg-lite's remote does not: it notifies on every send).
    pub device_honors_no_interrupt: Option<bool>,
    /// Where the resource table is.
    pub rsc_table: RscSource,
    /// Ring and message fields are big-endian (a legacy ring between
    /// big-endian cores).
    pub big_endian: bool,
}

/// Which way a ring carries messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The device (remote) fills buffers the driver (master) posted: vring0
    /// of an RPMsg link, the master's receive ring.
    ToDriver,
    /// The driver (master) posts filled buffers for the device to read:
    /// vring1, the master's transmit ring.
    ToDevice,
}

/// The resolved description of one link in one image.
#[derive(Debug, Clone)]
pub struct LinkLayout {
    /// The preset it came from, if any.
    pub preset: Option<Preset>,
    /// The address (as written in descriptors) of the image's first byte.
    pub base: u64,
    /// Whether [`LinkLayout::base`] was inferred from descriptor addresses.
    pub base_inferred: bool,
    /// vring0 and vring1.
    pub rings: [Layout; 2],
    /// Ring alignment (for the report).
    pub align: usize,
    /// Size of one RPMsg buffer, header included.
    pub buf_size: usize,
    /// Whether the master parks its free transmit buffers in vring1's used
    /// ring (so vring1's used index starts at `num`).
    pub parked_tx: bool,
    /// Whether `EVENT_IDX` is in use.
    pub event_idx: bool,
    /// Whether the device honours `VRING_AVAIL_F_NO_INTERRUPT`.
    pub device_honors_no_interrupt: bool,
    /// Ring and message fields are big-endian.
    pub big_endian: bool,
    /// The resource table, when one was found.
    pub vdev: Option<VdevTable>,
    /// What the driver side is called in reports ("the master", "Linux").
    pub driver_name: &'static str,
    /// What the device side is called in reports.
    pub device_name: &'static str,
}

/// The rpmsg vdev of a resource table, as found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VdevTable {
    /// Offset of the table in the image (`None`: read from a separate file).
    pub table_offset: Option<usize>,
    /// What the project's parser made of it.
    pub info: VdevInfo,
}

impl LinkLayout {
    /// The direction of vring `i` (0 or 1): RPMsg's fixed roles.
    pub const fn direction(i: usize) -> Direction {
        if i == 0 {
            Direction::ToDriver
        } else {
            Direction::ToDevice
        }
    }

    /// The used index a ring starts at: `num` for a parked transmit ring,
    /// else 0.
    pub fn used_base(&self, i: usize) -> u16 {
        if i == 1 && self.parked_tx {
            self.rings[1].num()
        } else {
            0
        }
    }

    /// Resolves the layout of `image` from `opts`.
    ///
    /// # Errors
    ///
    /// [`InspectError`] when the options are incomplete or inconsistent, a
    /// requested resource table is missing or malformed, or a ring does not
    /// fit the image.
    pub fn resolve(opts: &LayoutOptions, image: &Image<'_>) -> Result<Self, InspectError> {
        let vdev = find_table(opts, image)?;
        let preset = opts.preset;
        let (mut num, mut align, parked, honors, names) = match preset {
            Some(Preset::RpmsgLiteMcu) => (16, 16, true, false, ("the master", "the remote")),
            Some(Preset::RpmsgLiteLinux) => (
                16,
                rpmsg_lite::LINUX_VRING_ALIGN,
                true,
                false,
                ("the master", "the remote"),
            ),
            Some(Preset::LinuxRemoteproc) => (256, 4096, false, true, ("Linux", "the remote")),
            None => (0, 0, false, true, ("the driver", "the device")),
        };
        let mut v0 = 0usize;
        let mut v1: Option<usize> = None;
        let mut base = opts.base;
        let mut event_idx = false;
        if let Some(t) = &vdev {
            let [r0, r1] = t.info.vrings;
            if r0.num != r1.num || r0.align != r1.align {
                return Err(InspectError::Layout(format!(
                    "the resource table's vrings differ (num {}/{}, align {}/{}); give --vring0/--vring1 and --num",
                    r0.num, r1.num, r0.align, r1.align
                )));
            }
            num = u16::try_from(r0.num).map_err(|_| {
                InspectError::Layout(format!("resource table vring num {} is too large", r0.num))
            })?;
            align = r0.align as usize;
            let b = base.unwrap_or(0);
            let off = |da: u32| -> Result<usize, InspectError> {
                u64::from(da)
                    .checked_sub(b)
                    .and_then(|o| usize::try_from(o).ok())
                    .filter(|&o| o < image.len())
                    .ok_or_else(|| {
                        InspectError::Layout(format!(
                            "the resource table puts a vring at da {da:#x}, outside the image at base {b:#x}; pass --base (the address of the image's first byte)"
                        ))
                    })
            };
            v0 = off(r0.da)?;
            v1 = Some(off(r1.da)?);
            base = Some(b);
            event_idx = t.info.gfeatures & (1 << vring::notify::VIRTIO_RING_F_EVENT_IDX) != 0;
        }
        if let Some(n) = opts.num {
            num = n;
        }
        if let Some(a) = opts.align {
            align = a;
        }
        if num == 0 || align == 0 {
            return Err(InspectError::Usage(
                "no layout: give --preset, or --num and --align (and --vring0/--vring1 if the rings are not at 0 and right behind it)".into(),
            ));
        }
        if let Some(o) = opts.vring0 {
            v0 = o;
        }
        let l0 = Layout::try_legacy_at(v0, num, align)
            .map_err(|e| InspectError::Layout(format!("vring0 at {v0:#x}: {e}")))?;
        let stride = match preset {
            _ if v1.is_some() => None,
            Some(Preset::RpmsgLiteMcu) => {
                checked_vring_size(usize::from(num), align).and_then(|s| align_up(s, align))
            }
            Some(Preset::RpmsgLiteLinux) => Some(rpmsg_lite::LINUX_VRING_STRIDE),
            // Linux: each vring in its own page-aligned allocation.
            Some(Preset::LinuxRemoteproc) => {
                checked_vring_size(usize::from(num), align).and_then(|s| align_up(s, 4096))
            }
            None => checked_vring_size(usize::from(num), align).and_then(|s| align_up(s, align)),
        };
        let v1 = match (opts.vring1, v1, stride) {
            (Some(o), _, _) | (None, Some(o), _) => o,
            (None, None, Some(s)) => v0
                .checked_add(s)
                .ok_or(InspectError::Layout("vring1 offset overflows".into()))?,
            (None, None, None) => {
                return Err(InspectError::Layout("vring size overflows".into()));
            }
        };
        let l1 = Layout::try_legacy_at(v1, num, align)
            .map_err(|e| InspectError::Layout(format!("vring1 at {v1:#x}: {e}")))?;
        for (i, l) in [l0, l1].iter().enumerate() {
            l.check(image.len(), 1)
                .map_err(|_| InspectError::Truncated {
                    what: format!("vring{i}"),
                    need: l.end(),
                    len: image.len(),
                })?;
        }
        if l0.overlaps(l1.start(), l1.end() - l1.start()) {
            return Err(InspectError::Layout(format!(
                "vring0 ({:#x}..{:#x}) and vring1 ({:#x}..{:#x}) overlap",
                l0.start(),
                l0.end(),
                l1.start(),
                l1.end()
            )));
        }
        let buffers = opts.buffers.or(match preset {
            Some(Preset::RpmsgLiteLinux) => Some(2 * rpmsg_lite::LINUX_VRING_STRIDE),
            // Behind vring1, one ring stride after it.
            Some(_) => l1
                .desc_offset()
                .checked_sub(l0.desc_offset())
                .and_then(|s| l1.desc_offset().checked_add(s)),
            None => None,
        });
        let mut link = Self {
            preset,
            base: base.unwrap_or(0),
            base_inferred: false,
            rings: [l0, l1],
            align,
            buf_size: opts.buf_size.unwrap_or(rpmsg::wire::DEFAULT_BUF_SIZE),
            parked_tx: opts.parked_tx.unwrap_or(parked),
            event_idx: opts.event_idx.unwrap_or(event_idx),
            device_honors_no_interrupt: opts.device_honors_no_interrupt.unwrap_or(honors),
            big_endian: opts.big_endian,
            vdev,
            driver_name: names.0,
            device_name: names.1,
        };
        if link.buf_size < rpmsg::wire::HEADER_LEN || link.buf_size > (1 << 24) {
            return Err(InspectError::Usage(format!(
                "buffer size {} is not between 16 bytes and 16 MiB",
                link.buf_size
            )));
        }
        if base.is_none() {
            if let Some(b) = buffers.and_then(|pool| link.infer_base(image, pool)) {
                link.base = b;
                link.base_inferred = true;
            }
        }
        Ok(link)
    }

    /// The base that puts vring0's lowest non-zero descriptor address at the
    /// buffer pool's offset, if every non-zero address of both rings then
    /// falls inside the image.
    fn infer_base(&self, image: &Image<'_>, pool: usize) -> Option<u64> {
        let mut addrs = Vec::new();
        for l in &self.rings {
            for i in 0..l.num() {
                let a = image.u64(l.desc_entry_offset(i), self.big_endian).ok()?;
                if a != 0 {
                    addrs.push(a);
                }
            }
        }
        let low = *addrs.iter().min()?;
        let base = low.checked_sub(pool as u64)?;
        let len = image.len() as u64;
        addrs.iter().all(|&a| a - base < len).then_some(base)
    }

    /// The image offset of a peer address `addr` spanning `len` bytes, if
    /// it lies inside an image of `image_len` bytes.
    pub fn offset_of(&self, addr: u64, len: usize, image_len: usize) -> Option<usize> {
        let off = usize::try_from(addr.checked_sub(self.base)?).ok()?;
        (off.checked_add(len)? <= image_len).then_some(off)
    }
}

/// Finds the resource table `opts` asks for.
fn find_table(opts: &LayoutOptions, image: &Image<'_>) -> Result<Option<VdevTable>, InspectError> {
    let bytes = image.bytes();
    match &opts.rsc_table {
        RscSource::None if opts.preset == Some(Preset::LinuxRemoteproc) => Ok(scan(bytes)),
        RscSource::None => Ok(None),
        RscSource::Auto => scan(bytes).map(Some).ok_or_else(|| {
            InspectError::RscTable("no resource table with an rpmsg vdev in the image".into())
        }),
        RscSource::At(off) => {
            let tail = bytes.get(*off..).ok_or_else(|| {
                InspectError::RscTable(format!(
                    "offset {off:#x} is past the end of the image ({:#x} bytes)",
                    bytes.len()
                ))
            })?;
            let info = rsc_table::parse(tail)
                .map_err(|e| InspectError::RscTable(format!("at {off:#x}: {e}")))?;
            Ok(Some(VdevTable {
                table_offset: Some(*off),
                info,
            }))
        }
        RscSource::Bytes(b) => {
            let info = rsc_table::parse(b).map_err(|e| InspectError::RscTable(e.to_string()))?;
            Ok(Some(VdevTable {
                table_offset: None,
                info,
            }))
        }
    }
}

/// The first 4-byte aligned offset holding a version-1 table with an rpmsg
/// vdev whose two vrings look sane (power-of-two `num` and `align`).
fn scan(bytes: &[u8]) -> Option<VdevTable> {
    (0..bytes.len().saturating_sub(16))
        .step_by(4)
        .filter(|&o| {
            // Cheap pre-filter: ver 1, 1..=64 entries, reserved words 0.
            let w = |k: usize| {
                bytes
                    .get(o + 4 * k..o + 4 * k + 4)
                    .and_then(|s| <[u8; 4]>::try_from(s).ok())
                    .map(u32::from_ne_bytes)
            };
            w(0) == Some(1)
                && w(1).is_some_and(|n| (1..=64).contains(&n))
                && w(2) == Some(0)
                && w(3) == Some(0)
        })
        .find_map(|o| {
            let info = rsc_table::parse(bytes.get(o..)?).ok()?;
            info.vrings
                .iter()
                .all(|v| v.num.is_power_of_two() && v.num <= 32768 && v.align.is_power_of_two())
                .then_some(VdevTable {
                    table_offset: Some(o),
                    info,
                })
        })
}

/// A side's name without its article, for headings ("the remote" → "remote").
pub fn short(name: &str) -> &str {
    name.strip_prefix("the ").unwrap_or(name)
}
