//! Scripted set-ups: the project's own ring roles (`vring::Driver` as the
//! master, `vring::Device` as the remote) exchange RPMsg messages over an
//! in-memory window, and the tests take images of it.
// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use core::ptr::NonNull;

use ipc_traits::buf::{Dirty, ShmBuf};
use ipc_traits::cache::Coherent;
use ipc_traits::shm::{RawRegion, SharedMemory};
use ring_inspect::{LayoutOptions, Preset};
use rpmsg::rsc_table::{table_size, TableBuilder, VringSpec, VIRTIO_RPMSG_F_NS};
use rpmsg::wire::{Header, Name, NsAction, NsMessage};
use vring::layout::{rpmsg_lite, Layout};
use vring::{
    BufferArea, Device, DeviceConfig, DeviceTables, Driver, DriverConfig, Suppression, Virtio1,
};

/// Device tables for the test's life.
fn tables<const N: usize>() -> &'static DeviceTables<N> {
    Box::leak(Box::default())
}

/// Where the scripted links live.
pub const BASE: u64 = 0x4000_0000;
/// Buffer size.
pub const BUF: usize = 512;
/// Queue size.
pub const NUM: u16 = 16;

/// Where everything sits.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    pub l0: Layout,
    pub l1: Layout,
    pub buffers: usize,
    pub size: usize,
    /// A resource table at offset 0 (Linux remoteproc).
    pub table: bool,
    /// rpmsg-lite master: free transmit buffers parked in vring1's used ring.
    pub parked: bool,
}

/// The rpmsg-lite MCU layout (as the `mcu-align16` vectors).
pub fn mcu() -> Geometry {
    let stride = rpmsg_lite::mcu_vring_stride(usize::from(NUM), 16);
    Geometry {
        l0: Layout::legacy_at(0, NUM, 16),
        l1: Layout::legacy_at(stride, NUM, 16),
        buffers: 2 * stride,
        size: 0x5000,
        table: false,
        parked: true,
    }
}

/// A Linux remoteproc layout: resource table at 0, vrings at 0x1000 and
/// 0x3000 (4096-aligned), buffers at 0x5000.
pub fn remoteproc() -> Geometry {
    Geometry {
        l0: Layout::legacy_at(0x1000, NUM, 4096),
        l1: Layout::legacy_at(0x3000, NUM, 4096),
        buffers: 0x5000,
        size: 0x9000,
        table: true,
        parked: false,
    }
}

/// Options that describe `g` to the inspector.
pub fn options(g: &Geometry) -> LayoutOptions {
    if g.table {
        LayoutOptions {
            preset: Some(Preset::LinuxRemoteproc),
            base: Some(BASE),
            ..LayoutOptions::default()
        }
    } else {
        LayoutOptions {
            preset: Some(Preset::RpmsgLiteMcu),
            ..LayoutOptions::default()
        }
    }
}

/// Offset of the vdev's status byte when `g.table`.
pub const VDEV_STATUS: usize = 0x14 + 24;
/// Offset of the vdev's gfeatures when `g.table`.
pub const VDEV_GFEATURES: usize = 0x14 + 16;

const TABLE_LEN: usize = table_size(0, 0, 1, 2);

fn table(g: &Geometry) -> [u8; TABLE_LEN] {
    let da = |l: &Layout| u32::try_from(BASE).unwrap() + u32::try_from(l.desc_offset()).unwrap();
    TableBuilder::<TABLE_LEN>::new(1)
        .rpmsg_vdev(
            VIRTIO_RPMSG_F_NS,
            [
                VringSpec::new(da(&g.l0), 4096, u32::from(NUM), 0),
                VringSpec::new(da(&g.l1), 4096, u32::from(NUM), 1),
            ],
        )
        .finish()
        .bytes()
}

type Shm = RawRegion<Coherent>;

/// The master: virtio driver of both rings.
pub struct Master<'m> {
    shm: &'m Shm,
    g: Geometry,
    pub rx: Driver<'m, Shm, Virtio1, 16>,
    pub tx: Driver<'m, Shm, Virtio1, 16>,
    fresh_tx: usize,
    /// Received messages (src, text).
    pub got: Vec<(u32, Vec<u8>)>,
}

/// The remote: virtio device of both rings.
pub struct Remote<'m> {
    pub tx: Device<'m, Shm, Virtio1, 16>,
    pub rx: Device<'m, Shm, Virtio1, 16>,
    /// Received messages (src, text).
    pub got: Vec<(u32, Vec<u8>)>,
}

fn slot<'m>(shm: &'m Shm, g: &Geometry, k: usize) -> ShmBuf<'m, Shm, Dirty> {
    // SAFETY: buffer k of the pool; each is created once and then only
    // moves through the rings.
    unsafe { ShmBuf::<_, Dirty>::new_unchecked(shm, g.buffers + BUF * k, BUF) }.unwrap()
}

fn message(src: u32, dst: u32, payload: &[u8]) -> Vec<u8> {
    let h = Header {
        src,
        dst,
        len: u16::try_from(payload.len()).unwrap(),
        flags: 0,
    };
    let mut m = h.encode::<Virtio1>().to_vec();
    m.extend_from_slice(payload);
    m
}

impl<'m> Master<'m> {
    /// Initialises both rings: 16 empty receive buffers posted (and, on an
    /// rpmsg-lite layout, 16 transmit buffers parked in vring1's used ring).
    pub fn new(shm: &'m Shm, g: Geometry, suppression: Suppression) -> Self {
        if g.table {
            shm.write(0, &table(&g)).unwrap();
        }
        let cfg = DriverConfig {
            suppression,
            write_flag_on_readable: g.parked,
        };
        // SAFETY: every buffer handed to these rings is built over `shm`.
        let mut rx = unsafe { Driver::<_, Virtio1, 16>::new(shm, g.l0, cfg) }.unwrap();
        // SAFETY: as above.
        let mut tx = unsafe { Driver::<_, Virtio1, 16>::new(shm, g.l1, cfg) }.unwrap();
        if g.parked {
            rx.disable_interrupts().unwrap();
            tx.disable_interrupts().unwrap();
        }
        for k in 0..usize::from(NUM) {
            rx.add_writable(slot(shm, &g, k).clean().unwrap()).unwrap();
        }
        let _kick = rx.publish().unwrap();
        if g.parked {
            for k in 0..usize::from(NUM) {
                let mut b = slot(shm, &g, 16 + k);
                b.set_len(BUF).unwrap();
                tx.preload_used(b.clean().unwrap(), BUF as u32).unwrap();
            }
        }
        Self {
            shm,
            g,
            rx,
            tx,
            fresh_tx: 0,
            got: Vec::new(),
        }
    }

    /// Sets the vdev status byte (Linux writes it as it probes).
    pub fn set_status(&self, status: u8) {
        self.shm.write(VDEV_STATUS, &[status]).unwrap();
    }

    /// Sets the negotiated features.
    pub fn set_gfeatures(&self, f: u32) {
        self.shm.write(VDEV_GFEATURES, &f.to_ne_bytes()).unwrap();
    }

    /// Sends `text` from 0x400 to 30; `false` when no transmit buffer is free.
    pub fn send(&mut self, text: &[u8]) -> bool {
        let mut b = match self.tx.pop_used().unwrap() {
            Some(u) => u.buf.recycle(),
            None if !self.g.parked && self.fresh_tx < usize::from(NUM) => {
                self.fresh_tx += 1;
                slot(self.shm, &self.g, 16 + self.fresh_tx - 1)
            }
            None => return false,
        };
        let m = message(0x400, 30, text);
        b.write(0, &m).unwrap();
        b.set_len(if self.g.parked { BUF } else { m.len() })
            .unwrap();
        self.tx.add_readable(b.clean().unwrap()).unwrap();
        let _kick = self.tx.publish().unwrap();
        true
    }

    /// Reads up to `n` messages from vring0, re-posting each buffer
    /// unless `leak` (then the buffer is dropped: a leak).
    pub fn read(&mut self, n: usize, leak: bool) -> usize {
        let mut read = 0;
        while read < n {
            let Some(u) = self.rx.pop_used().unwrap() else {
                break;
            };
            let r = u.buf.invalidate().unwrap().validate(u.len).unwrap();
            let mut h = [0u8; 16];
            r.read(0, &mut h).unwrap();
            let hd = Header::decode::<Virtio1>(&h);
            let mut p = vec![0; usize::from(hd.len)];
            r.read(16, &mut p).unwrap();
            self.got.push((hd.src, p));
            read += 1;
            if leak {
                drop(r); // never re-posted: the ring loses it
                continue;
            }
            self.rx.add_writable(r.recycle().clean().unwrap()).unwrap();
            let _kick = self.rx.publish().unwrap();
        }
        read
    }
}

impl<'m> Remote<'m> {
    /// Attaches to the master's rings.
    pub fn new(g: &Geometry, shm: &'m Shm, suppression: Suppression) -> Self {
        let half = usize::from(NUM) * BUF;
        let c0 = DeviceConfig {
            suppression,
            ..DeviceConfig::new(BufferArea::new(g.buffers, half))
        };
        let c1 = DeviceConfig {
            suppression,
            ..DeviceConfig::new(BufferArea::new(g.buffers + half, half))
        };
        // SAFETY: disjoint buffer areas; the master's handles over them are
        // in flight whenever the remote holds one.
        let tx = unsafe { Device::<_, Virtio1, 16>::new(shm, g.l0, c0, tables()) }.unwrap();
        // SAFETY: as above.
        let rx = unsafe { Device::<_, Virtio1, 16>::new(shm, g.l1, c1, tables()) }.unwrap();
        Self {
            tx,
            rx,
            got: Vec::new(),
        }
    }

    /// Sends one message on vring0; `false` when the master left no buffer.
    pub fn send(&mut self, src: u32, dst: u32, payload: &[u8]) -> bool {
        let Some(p) = self.tx.pop_writable().unwrap() else {
            return false;
        };
        let mut b = p.buf;
        b.write(0, &message(src, dst, payload)).unwrap();
        self.tx.push_used_whole(p.head, b.clean().unwrap()).unwrap();
        let _kick = self.tx.publish_used().unwrap();
        true
    }

    /// Announces `name` at `addr`.
    pub fn announce(&mut self, name: &str, addr: u32) -> bool {
        let ns = NsMessage {
            name: Name::new(name).unwrap(),
            addr,
            action: NsAction::Create,
        };
        self.send(addr, 53, &ns.encode::<Virtio1>())
    }

    /// Consumes up to `n` messages from vring1.
    pub fn recv(&mut self, n: usize) -> usize {
        let mut k = 0;
        while k < n {
            let Some(p) = self.rx.pop_readable().unwrap() else {
                break;
            };
            let r = p.buf.invalidate().unwrap().validate(p.len).unwrap();
            let mut h = [0u8; 16];
            r.read(0, &mut h).unwrap();
            let hd = Header::decode::<Virtio1>(&h);
            let mut m = vec![0; usize::from(hd.len)];
            r.read(16, &mut m).unwrap();
            self.got.push((hd.src, m));
            self.rx.push_used_whole(p.head, r).unwrap();
            let _kick = self.rx.publish_used().unwrap();
            k += 1;
        }
        k
    }
}

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Chunk([u8; 64]);

/// Runs `f` over a zeroed window of `g.size` bytes seen by the peer at
/// [`BASE`].
pub fn with_link<R>(g: &Geometry, f: impl FnOnce(&Shm) -> R) -> R {
    let mut backing = vec![Chunk([0; 64]); g.size.div_ceil(64)];
    let base = NonNull::new(backing.as_mut_ptr().cast::<u8>()).unwrap();
    // SAFETY: `backing` outlives `shm` (dropped after `f` returns) and is
    // accessed only through it meanwhile.
    let shm = unsafe { RawRegion::new(base, g.size, BASE, Coherent) }.unwrap();
    f(&shm)
}

/// An image of the whole window.
pub fn snapshot(shm: &Shm) -> Vec<u8> {
    let mut v = vec![0; shm.len()];
    shm.read(0, &mut v).unwrap();
    v
}

/// Little-endian u16 store into an image.
pub fn put16(img: &mut [u8], off: usize, v: u16) {
    img[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
