//! The rpmsg-lite golden images (shared/vectors/rpmsg-lite): our remote
//! role, started over the master's state, must write exactly what
//! rpmsg-lite's remote wrote; our master role must lay out and send exactly
//! what rpmsg-lite's master did.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a failure is a test failure"
)]

use core::ptr::NonNull;
use std::cell::RefCell;
use std::rc::Rc;

use ipc_traits::cache::Coherent;
use ipc_traits::mailbox::{ErrorType, Notify, QueueId};
use ipc_traits::shm::RawRegion;
use rpmsg::link::{Link, Message, NsEvent, RxMode};
use rpmsg::rings::{MasterConfig, MasterRings, QueueIds, RemoteConfig, RemoteRings};
use vring::{BufferArea, Layout, Suppression};

/// The images are little-endian (rpmsg-lite on x86-64). On a little-endian
/// host that is the legacy (native) order rpmsg-lite uses; on a big-endian
/// host the same bytes are read as virtio 1.x (little-endian) rings.
#[cfg(target_endian = "little")]
type Legacy = vring::Legacy;
#[cfg(target_endian = "big")]
type Legacy = vring::Virtio1;

const BASE: u64 = 0x4000_0000;
const NUM: usize = 16;
const BUF: usize = 512;

struct Geometry {
    dir: &'static str,
    size: usize,
    vring1: usize,
    align: usize,
    pool: usize,
}

const MCU: Geometry = Geometry {
    dir: "mcu-align16",
    size: 0x10000,
    vring1: 448,
    align: 16,
    pool: 896,
};
const LINUX: Geometry = Geometry {
    dir: "linux-align4096",
    size: 0x14000,
    vring1: 0x8000,
    align: 4096,
    pool: 65536,
};

/// The golden images, compiled in (so the test also runs under Miri,
/// which isolates it from the file system).
macro_rules! vectors {
    ($($name:literal),+ $(,)?) => {
        fn image(g: &Geometry, name: &str) -> Vec<u8> {
            let bytes: &[u8] = match (g.dir, name) {
                $(
                    ("mcu-align16", $name) => include_bytes!(concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/../../shared/vectors/rpmsg-lite/mcu-align16/",
                        $name,
                        ".bin"
                    )),
                    ("linux-align4096", $name) => include_bytes!(concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/../../shared/vectors/rpmsg-lite/linux-align4096/",
                        $name,
                        ".bin"
                    )),
                )+
                (dir, name) => panic!("no golden vector {dir}/{name}"),
            };
            bytes.to_vec()
        }
    };
}

vectors!(
    "01_master_init",
    "02_remote_ns_announce",
    "02b_master_ns_consumed",
    "03_master_sent_three",
    "04_remote_rx_released",
    "05_master_sent_nocopy",
);

/// Page-aligned backing memory holding a copy of an image.
struct Region {
    words: Vec<u64>,
    len: usize,
}

impl Region {
    fn new(bytes: &[u8]) -> Self {
        // 4096 spare bytes so that a page-aligned start exists inside.
        let mut r = Self {
            words: vec![0u64; bytes.len().div_ceil(8) + 512],
            len: bytes.len(),
        };
        let off = r.offset();
        let dst = unsafe_bytes(&mut r.words);
        dst[off..off + bytes.len()].copy_from_slice(bytes);
        r
    }

    fn offset(&self) -> usize {
        let addr = self.words.as_ptr() as usize;
        (4096 - addr % 4096) % 4096
    }

    fn shm(&mut self) -> RawRegion<Coherent> {
        let off = self.offset();
        let base = NonNull::new(unsafe_bytes(&mut self.words)[off..].as_mut_ptr()).unwrap();
        // SAFETY: the backing vector lives as long as the region in every
        // test, and is only accessed through it while the region exists.
        unsafe { RawRegion::new(base, self.len, BASE, Coherent) }.unwrap()
    }

    fn bytes(&mut self) -> Vec<u8> {
        let off = self.offset();
        unsafe_bytes(&mut self.words)[off..off + self.len].to_vec()
    }
}

fn unsafe_bytes(words: &mut [u64]) -> &mut [u8] {
    let len = words.len() * 8;
    // SAFETY: u64 storage viewed as bytes: same allocation, no padding, u8
    // has no alignment or validity requirements.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), len) }
}

/// Records every doorbell.
#[derive(Clone, Default)]
struct Kicks(Rc<RefCell<Vec<u8>>>);
impl ErrorType for Kicks {
    type Error = core::convert::Infallible;
}
impl Notify for Kicks {
    fn notify(&mut self, q: QueueId) -> Result<(), Self::Error> {
        self.0.borrow_mut().push(q.index());
        Ok(())
    }
}

fn remote_config(g: &Geometry) -> RemoteConfig {
    RemoteConfig {
        vring0: Layout::legacy_at(0, NUM as u16, g.align),
        vring1: Layout::legacy_at(g.vring1, NUM as u16, g.align),
        vring0_buffers: BufferArea::new(g.pool, NUM * BUF),
        vring1_buffers: BufferArea::new(g.pool + NUM * BUF, NUM * BUF),
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
    }
}

fn master_config(g: &Geometry) -> MasterConfig {
    MasterConfig {
        vring0: Layout::legacy_at(0, NUM as u16, g.align),
        vring1: Layout::legacy_at(g.vring1, NUM as u16, g.align),
        pool: g.pool,
        buf_size: BUF,
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
        rpmsg_lite_compat: true,
    }
}

type RemoteLink<'m> = Link<'m, RemoteRings<'m, RawRegion<Coherent>, Legacy, NUM>, Kicks, 4, 4, 4>;
type MasterLink<'m> = Link<'m, MasterRings<'m, RawRegion<Coherent>, Legacy, NUM>, Kicks, 4, 4, 4>;

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

fn remote_announces_over_master_init(g: &Geometry) {
    let mut region = Region::new(&image(g, "01_master_init"));
    let kicks = Kicks::default();
    {
        let shm = region.shm();
        // SAFETY: the two buffer areas are disjoint and only the rings hand
        // out buffers over them.
        let rings = unsafe { RemoteRings::<_, Legacy, NUM>::new(&shm, remote_config(g)) }.unwrap();
        let link: RemoteLink<'_> = Link::new(rings, kicks.clone());
        let ep = link.create_endpoint(30, RxMode::Callback).unwrap();
        link.announce(&ep, "rpmsg-vector-test").unwrap();
    }
    let want = image(g, "02_remote_ns_announce");
    let got = region.bytes();
    assert_eq!(
        first_difference(&got, &want),
        None,
        "{}: image differs from 02",
        g.dir
    );
    assert_eq!(got, want);
    assert!(
        kicks.0.borrow().is_empty(),
        "avail.flags = NO_INTERRUPT in 01: no kick"
    );
}

#[test]
fn remote_for_an_rpmsg_lite_master_kicks_despite_no_interrupt() {
    let g = &MCU;
    let mut region = Region::new(&image(g, "01_master_init"));
    let kicks = Kicks::default();
    let shm = region.shm();
    // SAFETY: as in the tests above.
    let rings = unsafe { RemoteRings::<_, Legacy, NUM>::new(&shm, remote_config(g)) }
        .unwrap()
        .notify_always(true);
    let link: RemoteLink<'_> = Link::new(rings, kicks.clone());
    let ep = link.create_endpoint(30, RxMode::Callback).unwrap();
    link.announce(&ep, "rpmsg-vector-test").unwrap();
    assert_eq!(
        kicks.0.borrow().as_slice(),
        [0],
        "vq0 kicked for the announcement"
    );
}

#[test]
fn remote_ns_announcement_reproduces_02_mcu() {
    remote_announces_over_master_init(&MCU);
}

#[test]
fn remote_ns_announcement_reproduces_02_linux() {
    remote_announces_over_master_init(&LINUX);
}

fn remote_receives_three_and_releases(g: &Geometry) {
    let mut region = Region::new(&image(g, "03_master_sent_three"));
    let kicks = Kicks::default();
    let mut got = Vec::new();
    {
        let shm = region.shm();
        // SAFETY: as above.
        let rings = unsafe { RemoteRings::<_, Legacy, NUM>::new(&shm, remote_config(g)) }.unwrap();
        let link: RemoteLink<'_> = Link::new(rings, kicks.clone());
        let _ep = link.create_endpoint(30, RxMode::Callback).unwrap();
        let n = link
            .poll(|m: Message<'_>| {
                got.push((
                    m.src,
                    m.dst,
                    String::from_utf8_lossy(m.payload).into_owned(),
                ))
            })
            .unwrap();
        assert_eq!(n, 3);
        assert_eq!(link.stats().messages_received, 3);
    }
    assert_eq!(
        got,
        [
            (0x400, 30, "one".to_string()),
            (0x400, 30, "two".to_string()),
            (0x400, 30, "three".to_string())
        ]
    );
    let want = image(g, "04_remote_rx_released");
    let bytes = region.bytes();
    assert_eq!(
        first_difference(&bytes, &want),
        None,
        "{}: image differs from 04",
        g.dir
    );
}

#[test]
fn remote_delivers_03_and_release_reproduces_04_mcu() {
    remote_receives_three_and_releases(&MCU);
}

#[test]
fn remote_delivers_03_and_release_reproduces_04_linux() {
    remote_receives_three_and_releases(&LINUX);
}

fn remote_receives_zero_copy_message(g: &Geometry) {
    let mut region = Region::new(&image(g, "05_master_sent_nocopy"));
    let shm = region.shm();
    // SAFETY: as above.
    let rings = unsafe { RemoteRings::<_, Legacy, NUM>::new(&shm, remote_config(g)) }.unwrap();
    let link: RemoteLink<'_> = Link::new(rings, Kicks::default());
    let ep = link.create_endpoint(30, RxMode::Queue).unwrap();
    let mut texts = Vec::new();
    let mut buf = [0u8; 496];
    while let Ok(r) = link.try_recv(&ep, &mut buf) {
        assert_eq!(r.src, 0x400);
        texts.push(String::from_utf8_lossy(&buf[..r.len]).into_owned());
    }
    assert_eq!(texts, ["one", "two", "three", "four"]);
}

#[test]
fn remote_delivers_the_zero_copy_message_of_05_mcu() {
    remote_receives_zero_copy_message(&MCU);
}

#[test]
fn remote_delivers_the_zero_copy_message_of_05_linux() {
    remote_receives_zero_copy_message(&LINUX);
}

fn master_sequence(g: &Geometry) {
    let mut region = Region::new(&vec![0u8; g.size]);
    let kicks = Kicks::default();
    let shm = region.shm();
    // SAFETY: the pool belongs to the master link alone.
    let rings = unsafe { MasterRings::<_, Legacy, NUM>::new(&shm, master_config(g)) }.unwrap();
    let master: MasterLink<'_> = Link::new(rings, kicks.clone());
    let snapshot = |r: &RawRegion<Coherent>| {
        let mut v = vec![0u8; g.size];
        ipc_traits::shm::SharedMemory::read(r, 0, &mut v).unwrap();
        v
    };
    assert_eq!(
        first_difference(&snapshot(&shm), &image(g, "01_master_init")),
        None,
        "{}: 01",
        g.dir
    );

    // The remote (ours, already checked against 02) announces.
    {
        // SAFETY: the remote's buffer areas are the master's pool halves;
        // in this single-threaded test the master touches them only
        // through its rings, which never hand out a buffer the device holds.
        let rings = unsafe { RemoteRings::<_, Legacy, NUM>::new(&shm, remote_config(g)) }.unwrap();
        let remote: RemoteLink<'_> = Link::new(rings, Kicks::default());
        let ep = remote.create_endpoint(30, RxMode::Callback).unwrap();
        remote.announce(&ep, "rpmsg-vector-test").unwrap();
    }
    assert_eq!(master.poll(|_| panic!("no user message yet")).unwrap(), 0);
    assert_eq!(
        master.try_ns_event().map(|e| match e {
            NsEvent::Created(s) => (s.name.as_str().to_string(), s.addr),
            other => panic!("unexpected {other:?}"),
        }),
        Some(("rpmsg-vector-test".to_string(), 30))
    );
    assert_eq!(master.lookup_service("rpmsg-vector-test"), Some(30));
    assert_eq!(
        first_difference(&snapshot(&shm), &image(g, "02b_master_ns_consumed")),
        None,
        "{}: 02b",
        g.dir
    );

    let ep = master.create_endpoint(0x400, RxMode::Callback).unwrap();
    for text in ["one", "two", "three"] {
        master.try_send(&ep, 30, text.as_bytes()).unwrap();
    }
    assert_eq!(
        first_difference(&snapshot(&shm), &image(g, "03_master_sent_three")),
        None,
        "{}: 03",
        g.dir
    );
    // Returning the consumed NS buffer kicks vq0 (as Linux's
    // `rpmsg_recv_done` does; rpmsg-lite built without
    // RL_ALLOW_CONSUMED_BUFFERS_NOTIFICATION does not, which the images
    // cannot show). used.flags = 0, so every send kicks vq1.
    assert_eq!(kicks.0.borrow().as_slice(), [0, 1, 1, 1]);
}

#[test]
fn master_reproduces_01_02b_03_mcu() {
    master_sequence(&MCU);
}

#[test]
fn master_reproduces_01_02b_03_linux() {
    master_sequence(&LINUX);
}
