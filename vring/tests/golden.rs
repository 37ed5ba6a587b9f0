//! Golden vectors: rpmsg-lite memory images (shared/vectors/rpmsg-lite).
//!
//! The images and `vectors.json` are compiled in with `include_bytes!`, so a
//! missing vector file is a build failure of this test, never a skip.
//!
//! 1. Layout offsets equal the ones in `vectors.json` for both layouts.
//! 2. A device ring opened over images `01` and `03` pops exactly the
//!    descriptors and lengths listed there (and writes nothing).
//! 3. Our driver (playing rpmsg-lite's master) and our device (its remote),
//!    driven through the README's sequence from zeroed memory, reproduce every
//!    snapshot byte for byte: ring indices, ring entries, descriptors and the
//!    rpmsg payload bytes (which this test writes itself, as rpmsg would).
//!
//! The images were produced on a little-endian host, so they are what a
//! [`Legacy`] ring writes on a little-endian core and what a [`Virtio1`] ring
//! writes everywhere: the replay runs with `Virtio1` on every target (the
//! big-endian CI target included) and with `Legacy` on little-endian ones.
// Test helpers outside `#[test]` functions: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use core::ptr::NonNull;

use ipc_traits::buf::{Dirty, ShmBuf};
use ipc_traits::cache::Coherent;
use ipc_traits::shm::{RawRegion, SharedMemory};
use serde_json::Value;
use vring::layout::{rpmsg_lite, vring_size, Layout};
use vring::{
    BufferArea, Device, DeviceConfig, DeviceTables, Driver, DriverConfig, Endian, Suppression,
    Virtio1,
};

/// Device tables for the test's life.
fn tables<const N: usize>() -> &'static DeviceTables<N> {
    Box::leak(Box::default())
}

const SHM_BASE: u64 = 0x4000_0000;
const BUF_SIZE: usize = 512;
const NUM: u16 = 16;

macro_rules! vector_set {
    ($dir:literal) => {
        VectorSet {
            dir: $dir,
            json: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/vectors/rpmsg-lite/",
                $dir,
                "/vectors.json"
            )),
            images: [
                vector_set!(@img $dir, "01_master_init.bin"),
                vector_set!(@img $dir, "02_remote_ns_announce.bin"),
                vector_set!(@img $dir, "02b_master_ns_consumed.bin"),
                vector_set!(@img $dir, "03_master_sent_three.bin"),
                vector_set!(@img $dir, "04_remote_rx_released.bin"),
                vector_set!(@img $dir, "04h_remote_rx_hold_released.bin"),
                vector_set!(@img $dir, "05_master_sent_nocopy.bin"),
            ],
        }
    };
    (@img $dir:literal, $file:literal) => {
        (
            $file,
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/vectors/rpmsg-lite/",
                $dir,
                "/",
                $file
            ))
            .as_slice(),
        )
    };
}

struct VectorSet {
    dir: &'static str,
    json: &'static str,
    images: [(&'static str, &'static [u8]); 7],
}

static MCU_JSON: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
static LINUX_JSON: std::sync::OnceLock<Value> = std::sync::OnceLock::new();

const MCU: VectorSet = vector_set!("mcu-align16");
const LINUX: VectorSet = vector_set!("linux-align4096");

impl VectorSet {
    /// The parsed `vectors.json` (parsed once per test binary).
    fn json(&self) -> &'static Value {
        let cell = if self.dir == MCU.dir {
            &MCU_JSON
        } else {
            &LINUX_JSON
        };
        cell.get_or_init(|| serde_json::from_str(self.json).expect("vectors.json parses"))
    }

    fn image(&self, prefix: &str) -> &'static [u8] {
        self.images
            .iter()
            .find(|(f, _)| f.starts_with(prefix))
            .unwrap_or_else(|| panic!("{}: no image {prefix}", self.dir))
            .1
    }
}

fn u(v: &Value) -> usize {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}")) as usize
}

fn dump<'v>(json: &'v Value, prefix: &str) -> &'v Value {
    json["dumps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["file"].as_str().unwrap().starts_with(prefix))
        .unwrap_or_else(|| panic!("no dump {prefix}"))
}

/// The layout parameters of a set: (vring0, vring1, align, buffer area, size).
struct Geometry {
    l0: Layout,
    l1: Layout,
    buffers: usize,
    size: usize,
}

fn geometry(json: &Value) -> Geometry {
    let align = u(&json["config"]["VRING_ALIGN"]);
    let d = &json["derived"];
    Geometry {
        l0: Layout::legacy_at(u(&d["vring0_offset"]), NUM, align),
        l1: Layout::legacy_at(u(&d["vring1_offset"]), NUM, align),
        buffers: u(&d["buffer_area_offset"]),
        size: u(&json["shm_size"]),
    }
}

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Chunk([u8; 64]);

/// Runs `f` over a `RawRegion<Coherent>` holding a copy of `bytes`, seen by
/// the peer at 0x4000_0000 (the images' `shm_base`).
fn with_region<R>(bytes: &[u8], f: impl FnOnce(&RawRegion<Coherent>) -> R) -> R {
    assert_eq!(bytes.len() % 64, 0);
    let mut backing = vec![Chunk([0; 64]); bytes.len() / 64];
    for (c, b) in backing.iter_mut().zip(bytes.chunks(64)) {
        c.0.copy_from_slice(b);
    }
    let base = NonNull::new(backing.as_mut_ptr().cast::<u8>()).unwrap();
    // SAFETY: `backing` outlives `shm` (dropped after `f` returns) and is
    // accessed only through it meanwhile.
    let shm = unsafe { RawRegion::new(base, bytes.len(), SHM_BASE, Coherent) }.unwrap();
    f(&shm)
}

fn snapshot(shm: &impl SharedMemory) -> Vec<u8> {
    let mut v = vec![0; shm.len()];
    shm.read(0, &mut v).unwrap();
    v
}

fn assert_image(set: &VectorSet, shm: &impl SharedMemory, prefix: &str, g: &Geometry) {
    let got = snapshot(shm);
    let want = set.image(prefix);
    if got == want {
        return;
    }
    assert_eq!(got.len(), want.len());
    let diffs: Vec<usize> = (0..got.len()).filter(|&i| got[i] != want[i]).collect();
    if let Some(&first) = diffs.first() {
        let area = |o: usize| {
            for (name, l) in [("vring0", &g.l0), ("vring1", &g.l1)] {
                for (a, (off, len)) in ["desc", "avail", "used"].iter().zip(l.areas()) {
                    if (off..off + len).contains(&o) {
                        return format!("{name}.{a}+{}", o - off);
                    }
                }
            }
            if o >= g.buffers {
                return format!(
                    "buffer {} +{}",
                    (o - g.buffers) / BUF_SIZE,
                    (o - g.buffers) % BUF_SIZE
                );
            }
            "other".into()
        };
        panic!(
            "{}/{prefix}: {} bytes differ, first at {first:#x} ({}): got {:#04x}, want {:#04x}",
            set.dir,
            diffs.len(),
            area(first),
            got[first],
            want[first]
        );
    }
}

// ---------------------------------------------------------------- 1. layout

fn check_layout(set: &VectorSet) {
    let json = set.json();
    let g = geometry(json);
    let align = u(&json["config"]["VRING_ALIGN"]);
    let stride = u(&json["config"]["VRING_SIZE"]);
    // Where rpmsg-lite puts vring1 (vectors README, "Offsets inside the region").
    let expected_stride = if align == rpmsg_lite::LINUX_VRING_ALIGN {
        rpmsg_lite::LINUX_VRING_STRIDE
    } else {
        rpmsg_lite::mcu_vring_stride(usize::from(NUM), align)
    };
    assert_eq!(stride, expected_stride, "{}: VRING_SIZE", set.dir);
    assert_eq!(g.l1.desc_offset(), stride);
    assert_eq!(g.l0.end(), vring_size(usize::from(NUM), align));
    for d in json["dumps"].as_array().unwrap() {
        for (i, v) in d["vrings"].as_array().unwrap().iter().enumerate() {
            let l = if i == 0 { g.l0 } else { g.l1 };
            let file = d["file"].as_str().unwrap();
            assert_eq!(u(&v["num"]), usize::from(l.num()), "{file}");
            assert_eq!(u(&v["align"]), align, "{file}");
            assert_eq!(u(&v["offset"]), l.desc_offset(), "{file}");
            assert_eq!(u(&v["desc_offset"]), l.desc_offset(), "{file}");
            assert_eq!(u(&v["avail_offset"]), l.avail_offset(), "{file}");
            assert_eq!(u(&v["used_offset"]), l.used_offset(), "{file}");
            assert_eq!(u(&v["used_event_offset"]), l.used_event_offset(), "{file}");
            assert_eq!(
                u(&v["avail_event_offset"]),
                l.avail_event_offset(),
                "{file}"
            );
        }
        for q in d["library_state"]["virtqueues"].as_array().unwrap() {
            let l = if u(&q["desc_off"]) == g.l0.desc_offset() {
                g.l0
            } else {
                g.l1
            };
            assert_eq!(u(&q["desc_off"]), l.desc_offset());
            assert_eq!(u(&q["avail_off"]), l.avail_offset());
            assert_eq!(u(&q["used_off"]), l.used_offset());
        }
    }
}

#[test]
fn layout_matches_mcu_align16() {
    check_layout(&MCU);
    let g = geometry(MCU.json());
    assert_eq!(
        (g.l1.desc_offset(), g.l1.avail_offset(), g.l1.used_offset()),
        (448, 704, 752)
    );
    assert_eq!(
        (g.l0.used_event_offset(), g.l0.avail_event_offset()),
        (292, 436)
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "80 KiB images take minutes under Miri; mcu-align16 runs the same code"
)]
fn layout_matches_linux_align4096() {
    check_layout(&LINUX);
    let g = geometry(LINUX.json());
    assert_eq!(
        (g.l1.desc_offset(), g.l1.avail_offset(), g.l1.used_offset()),
        (32768, 33024, 36864)
    );
    assert_eq!(
        (g.l0.used_event_offset(), g.l0.avail_event_offset()),
        (292, 4228)
    );
}

// --------------------------------------------------- 2. device over an image

/// The remote's `vq_available_idx` for the vring at `desc_off` in a dump
/// (0 before the remote started).
fn remote_first_avail(d: &Value, desc_off: usize) -> u16 {
    d["library_state"]["virtqueues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["instance"] == "remote" && u(&q["desc_off"]) == desc_off)
        .map_or(0, |q| u(&q["vq_available_idx"]) as u16)
}

struct Expected {
    head: u16,
    offset: usize,
    len: u32,
}

/// What the device must pop from vring `i` of dump `d`, from vectors.json.
fn expected_pops(d: &Value, i: usize, first: u16) -> Vec<Expected> {
    let v = &d["vrings"][i];
    let idx = u(&v["avail"]["idx"]) as u16;
    let ring = v["avail"]["ring"].as_array().unwrap();
    let mut out = Vec::new();
    let mut pos = first;
    while pos != idx {
        let head = u(&ring[usize::from(pos % NUM)]);
        let desc = &v["desc"][head];
        assert_eq!(u(&desc["i"]), head);
        out.push(Expected {
            head: head as u16,
            offset: u(&desc["addr_offset"]),
            len: u(&desc["len"]) as u32,
        });
        pos = pos.wrapping_add(1);
    }
    out
}

fn device_over_image<E: Endian>(set: &VectorSet, prefix: &str) -> (usize, usize) {
    let json = set.json();
    let g = geometry(json);
    let d = dump(json, prefix);
    let image = set.image(prefix);
    let half = usize::from(NUM) * BUF_SIZE;
    with_region(image, |shm| {
        // vring0: the remote's transmit ring (it fills the master's empty
        // buffers); vring1: its receive ring.
        let cfg0 = DeviceConfig {
            first_avail: remote_first_avail(d, g.l0.desc_offset()),
            ..DeviceConfig::new(BufferArea::new(g.buffers, half))
        };
        let cfg1 = DeviceConfig {
            first_avail: remote_first_avail(d, g.l1.desc_offset()),
            ..DeviceConfig::new(BufferArea::new(g.buffers + half, half))
        };
        // SAFETY: the two buffer areas are disjoint and this test creates no
        // other buffer handle over them.
        let mut tx = unsafe { Device::<_, E, 16>::new(shm, g.l0, cfg0, tables()) }.unwrap();
        // SAFETY: as above.
        let mut rx = unsafe { Device::<_, E, 16>::new(shm, g.l1, cfg1, tables()) }.unwrap();

        let want0 = expected_pops(d, 0, cfg0.first_avail);
        let mut held = Vec::new();
        for w in &want0 {
            let p = tx.pop_writable().unwrap().expect("an available buffer");
            assert_eq!(
                (p.head, p.buf.offset(), p.len, p.buf.capacity()),
                (w.head, w.offset, w.len, w.len as usize)
            );
            held.push(p);
        }
        assert!(
            tx.pop_writable().unwrap().is_none(),
            "{prefix}: vring0 has no more"
        );

        let want1 = expected_pops(d, 1, cfg1.first_avail);
        let texts: Vec<(usize, String)> = d["buffers_nonzero"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    u(&b["offset"]),
                    b["payload_ascii"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        for w in &want1 {
            let p = rx.pop_readable().unwrap().expect("an available buffer");
            assert_eq!((p.head, p.buf.offset(), p.len), (w.head, w.offset, w.len));
            let r = p.buf.invalidate().unwrap().validate(p.len).unwrap();
            let mut hdr = [0u8; 16];
            r.read(0, &mut hdr).unwrap();
            let n = usize::from(u16::from_le_bytes([hdr[12], hdr[13]]));
            let mut payload = vec![0; n];
            r.read(16, &mut payload).unwrap();
            let text = &texts.iter().find(|(o, _)| *o == w.offset).unwrap().1;
            assert_eq!(String::from_utf8(payload).unwrap(), *text);
        }
        assert!(
            rx.pop_readable().unwrap().is_none(),
            "{prefix}: vring1 has no more"
        );
        assert_eq!(tx.stats().failures.total() + rx.stats().failures.total(), 0);
        // Popping reads only: the image is untouched.
        assert_eq!(
            snapshot(shm),
            image,
            "{prefix}: the device wrote while popping"
        );
        drop(held);
        (want0.len(), want1.len())
    })
}

/// Both sets; only the 64 KiB one under Miri (the code paths are the same).
fn sets() -> Vec<&'static VectorSet> {
    if cfg!(miri) {
        vec![&MCU]
    } else {
        vec![&MCU, &LINUX]
    }
}

#[test]
fn device_pops_what_image_01_lists() {
    for set in sets() {
        // Master init: 16 empty buffers on vring0, nothing on vring1 (its
        // entries are parked in vring1's *used* ring).
        assert_eq!(device_over_image::<Virtio1>(set, "01"), (16, 0));
        #[cfg(target_endian = "little")]
        assert_eq!(device_over_image::<vring::Legacy>(set, "01"), (16, 0));
    }
}

#[test]
fn device_pops_what_image_03_lists() {
    for set in sets() {
        // The remote consumed one vring0 buffer for its NS announcement and
        // the master re-posted it: 16 available from position 1; the master
        // sent three messages on vring1.
        assert_eq!(device_over_image::<Virtio1>(set, "03"), (16, 3));
        #[cfg(target_endian = "little")]
        assert_eq!(device_over_image::<vring::Legacy>(set, "03"), (16, 3));
    }
}

// ------------------------------------------------ 3. replaying the sequence

/// rpmsg header (16 bytes, little-endian in these images; vectors README).
fn rpmsg_header(src: u32, dst: u32, idx: u16, len: u16) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&src.to_le_bytes());
    h[4..8].copy_from_slice(&dst.to_le_bytes());
    h[10..12].copy_from_slice(&idx.to_le_bytes());
    h[12..14].copy_from_slice(&len.to_le_bytes());
    h
}

fn slot<'m>(
    shm: &'m RawRegion<Coherent>,
    g: &Geometry,
    k: usize,
) -> ShmBuf<'m, RawRegion<Coherent>, Dirty> {
    // SAFETY: buffer k of the images' pool; each is created once here and
    // then only moves through the rings.
    unsafe { ShmBuf::<_, Dirty>::new_unchecked(shm, g.buffers + BUF_SIZE * k, BUF_SIZE) }.unwrap()
}

fn replay<E: Endian>(set: &VectorSet, hold: bool) {
    let json = set.json();
    let g = geometry(json);
    let half = usize::from(NUM) * BUF_SIZE;
    with_region(&vec![0; g.size], |shm| {
        // rpmsg-lite master: its receive ring is vring0, its transmit ring
        // vring1; it marks every descriptor WRITE (vector 01).
        let mcfg = DriverConfig {
            suppression: Suppression::Flags,
            write_flag_on_readable: true,
        };
        // SAFETY: every buffer handed to these rings is built over `shm`.
        let mut m_rx = unsafe { Driver::<_, E, 16>::new(shm, g.l0, mcfg) }.unwrap();
        // SAFETY: as above.
        let mut m_tx = unsafe { Driver::<_, E, 16>::new(shm, g.l1, mcfg) }.unwrap();
        m_rx.disable_interrupts().unwrap();
        m_tx.disable_interrupts().unwrap();
        for k in 0..16 {
            let id = m_rx
                .add_writable(slot(shm, &g, k).clean().unwrap())
                .unwrap();
            assert_eq!(usize::from(id), k);
        }
        // The remote has not cleared NO_NOTIFY: the init kick is due.
        assert!(m_rx.publish().unwrap());
        for k in 0..16 {
            let mut b = slot(shm, &g, 16 + k);
            b.set_len(BUF_SIZE).unwrap();
            m_tx.preload_used(b.clean().unwrap(), BUF_SIZE as u32)
                .unwrap();
        }
        assert_image(set, shm, "01", &g);

        // Remote: attach, announce "rpmsg-vector-test" at address 30.
        let area0 = BufferArea::new(g.buffers, half);
        let area1 = BufferArea::new(g.buffers + half, half);
        // SAFETY: disjoint areas; the only other handles over them are the
        // master's, which are in flight (owned by the rings) whenever the
        // remote holds one.
        let mut r_tx =
            unsafe { Device::<_, E, 16>::new(shm, g.l0, DeviceConfig::new(area0), tables()) }
                .unwrap();
        // SAFETY: as above.
        let mut r_rx =
            unsafe { Device::<_, E, 16>::new(shm, g.l1, DeviceConfig::new(area1), tables()) }
                .unwrap();
        let p = r_tx.pop_writable().unwrap().unwrap();
        assert_eq!((p.head, p.len), (0, 512));
        let mut b = p.buf;
        let mut name = [0u8; 32];
        name[..17].copy_from_slice(b"rpmsg-vector-test");
        b.write(0, &rpmsg_header(30, 53, 0, 40)).unwrap();
        b.write(16, &name).unwrap();
        b.write(48, &30u32.to_le_bytes()).unwrap();
        b.write(52, &0u32.to_le_bytes()).unwrap();
        r_tx.push_used(p.head, b.clean().unwrap(), 512).unwrap();
        // The master set VRING_AVAIL_F_NO_INTERRUPT; rpmsg-lite's remote
        // kicks anyway (it only looks at used.flags), our ring reports it.
        assert!(!r_tx.publish_used().unwrap());
        assert_image(set, shm, "02", &g);

        // Master: NS message consumed, buffer re-posted.
        let used = m_rx.pop_used().unwrap().unwrap();
        assert_eq!((used.id, used.len), (0, 512));
        let r = used.buf.invalidate().unwrap().validate(used.len).unwrap();
        let mut ns = [0u8; 56];
        r.read(0, &mut ns).unwrap();
        assert_eq!(&ns[16..33], b"rpmsg-vector-test");
        assert_eq!(ns[48], 30);
        assert_eq!(m_rx.add_writable(r.recycle().clean().unwrap()).unwrap(), 0);
        assert!(m_rx.publish().unwrap());
        assert_image(set, shm, "02b", &g);

        // Master: three copying sends 0x400 -> 30, each from its parked
        // transmit buffers, each published (and kicked) on its own.
        for (k, text) in ["one", "two", "three"].iter().enumerate() {
            let used = m_tx.pop_used().unwrap().unwrap();
            assert_eq!((usize::from(used.id), used.len), (k, 512));
            let mut b = used.buf.recycle();
            b.write(0, &rpmsg_header(0x400, 30, 0, text.len() as u16))
                .unwrap();
            b.write(16, text.as_bytes()).unwrap();
            b.set_len(BUF_SIZE).unwrap();
            assert_eq!(
                usize::from(m_tx.add_readable(b.clean().unwrap()).unwrap()),
                k
            );
            assert!(m_tx.publish().unwrap());
        }
        assert_image(set, shm, "03", &g);

        // Remote: receives the three messages and returns the buffers with
        // the whole buffer length (as rpmsg-lite does).
        for (k, text) in ["one", "two", "three"].iter().enumerate() {
            let p = r_rx.pop_readable().unwrap().unwrap();
            assert_eq!((usize::from(p.head), p.len), (k, 512));
            let r = p.buf.invalidate().unwrap().validate(p.len).unwrap();
            let mut m = vec![0u8; 16 + text.len()];
            r.read(0, &mut m).unwrap();
            assert_eq!(&m[16..], text.as_bytes());
            assert_eq!(u32::from_le_bytes(m[0..4].try_into().unwrap()), 0x400);
            if hold {
                // RL_HOLD: rpmsg-lite stores the descriptor index in the
                // header's `idx` field of the held buffer.
                shm.write(r.offset() + 10, &p.head.to_le_bytes()).unwrap();
            }
            r_rx.push_used(p.head, r, 512).unwrap();
            let _kick = r_rx.publish_used().unwrap();
        }
        if hold {
            assert_image(set, shm, "04h", &g);
            return;
        }
        assert_image(set, shm, "04", &g);

        // Master: zero-copy send of "four" from the next parked buffer;
        // rpmsg_lite_alloc_tx_buffer stores the descriptor index in `idx`.
        let used = m_tx.pop_used().unwrap().unwrap();
        assert_eq!((used.id, used.len), (3, 512));
        let mut b = used.buf.recycle();
        b.write(0, &rpmsg_header(0x400, 30, used.id, 4)).unwrap();
        b.write(16, b"four").unwrap();
        b.set_len(BUF_SIZE).unwrap();
        assert_eq!(m_tx.add_readable(b.clean().unwrap()).unwrap(), 3);
        assert!(m_tx.publish().unwrap());
        assert_image(set, shm, "05", &g);

        for s in [m_rx.stats(), m_tx.stats(), r_tx.stats(), r_rx.stats()] {
            assert_eq!(s.failures.total(), 0);
        }
        assert_eq!((m_tx.stats().published, m_tx.stats().completed), (4, 4));
        assert_eq!((r_rx.stats().completed, r_rx.stats().published), (3, 3));
    });
}

#[test]
fn replay_reproduces_every_mcu_align16_snapshot() {
    replay::<Virtio1>(&MCU, false);
    replay::<Virtio1>(&MCU, true);
    #[cfg(target_endian = "little")]
    {
        replay::<vring::Legacy>(&MCU, false);
        replay::<vring::Legacy>(&MCU, true);
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "80 KiB images take minutes under Miri; mcu-align16 runs the same code"
)]
fn replay_reproduces_every_linux_align4096_snapshot() {
    replay::<Virtio1>(&LINUX, false);
    replay::<Virtio1>(&LINUX, true);
    #[cfg(target_endian = "little")]
    {
        replay::<vring::Legacy>(&LINUX, false);
        replay::<vring::Legacy>(&LINUX, true);
    }
}
