//! The rpmsg-lite golden images (shared/vectors/rpmsg-lite) through the
//! link's halves ([`rpmsg::link`]): our remote role, started over the
//! master's state, must write exactly what rpmsg-lite's remote wrote; our
//! master role must lay out and send exactly what rpmsg-lite's master did.
//! Then hostile input over the same images: typed errors and counters,
//! nothing delivered that should not be.
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
use ipc_traits::shm::{RawRegion, SharedMemory};
use rpmsg::link::ns::{NsDirectory, NsEvent};
use rpmsg::link::{Link, Received, Sent, Storage};
use rpmsg::rings::{MasterConfig, MasterRings, QueueIds, RemoteConfig, RemoteRings};
use rpmsg::wire::{NsAction, NsMessage, NS_ADDR, NS_MSG_LEN};
use vring::{BufferArea, Layout, Suppression};

/// Ring tables for the test's life.
fn remote_tables<const N: usize>() -> &'static rpmsg::rings::RemoteTables<N> {
    Box::leak(Box::default())
}

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

type RemoteLink<'m> = Link<'m, RemoteRings<'m, RawRegion<Coherent>, Legacy, NUM>, Kicks>;
type MasterLink<'m> = Link<'m, MasterRings<'m, RawRegion<Coherent>, Legacy, NUM>, Kicks>;

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

fn remote_rings<'m>(
    shm: &'m RawRegion<Coherent>,
    g: &Geometry,
) -> RemoteRings<'m, RawRegion<Coherent>, Legacy, NUM> {
    // SAFETY: the two buffer areas are disjoint and only the rings hand out
    // buffers over them.
    unsafe { RemoteRings::<_, Legacy, NUM>::new(shm, remote_config(g), remote_tables()) }.unwrap()
}

fn remote_announces_over_master_init(g: &Geometry) {
    let mut region = Region::new(&image(g, "01_master_init"));
    let kicks = Kicks::default();
    {
        let shm = region.shm();
        let mut storage = Storage::<2>::new();
        let mut link: RemoteLink<'_> =
            Link::new(remote_rings(&shm, g), kicks.clone(), &mut storage);
        let ep = link.bind(30).unwrap();
        let (mut tx, _rx) = link.split();
        assert_eq!(tx.announce(&ep, "rpmsg-vector-test"), Ok(Sent::Sent));
        assert_eq!(tx.stats().messages, 1);
    }
    let want = image(g, "02_remote_ns_announce");
    let got = region.bytes();
    assert_eq!(
        first_difference(&got, &want),
        None,
        "{}: image differs from 02",
        g.dir
    );
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
    let rings = remote_rings(&shm, g).notify_always(true);
    let mut storage = Storage::<1>::new();
    let mut link: RemoteLink<'_> = Link::new(rings, kicks.clone(), &mut storage);
    let ep = link.bind(30).unwrap();
    let (mut tx, _rx) = link.split();
    assert_eq!(tx.announce(&ep, "rpmsg-vector-test"), Ok(Sent::Sent));
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

/// Receives what image 03 holds through the receive half with `ep` bound
/// (or nothing bound), checks the released image against 04.
fn remote_receives_03(g: &Geometry, bind: Option<u32>) -> (Vec<Received>, Vec<String>, u32) {
    let mut region = Region::new(&image(g, "03_master_sent_three"));
    let mut got = Vec::new();
    let mut texts = Vec::new();
    let unbound;
    {
        let shm = region.shm();
        let mut storage = Storage::<2>::new();
        let mut link: RemoteLink<'_> =
            Link::new(remote_rings(&shm, g), Kicks::default(), &mut storage);
        if let Some(addr) = bind {
            let _ep = link.bind(addr).unwrap();
        }
        let (_tx, mut rx) = link.split();
        let mut out = [0u8; 496];
        while let Some(r) = rx.try_recv(&mut out).unwrap() {
            texts.push(String::from_utf8_lossy(&out[..r.len]).into_owned());
            got.push(r);
        }
        assert_eq!(rx.try_recv(&mut out), Ok(None), "idle stays idle");
        unbound = rx.stats().unbound;
        assert_eq!(rx.stats().messages, got.len() as u32);
    }
    let want = image(g, "04_remote_rx_released");
    assert_eq!(
        first_difference(&region.bytes(), &want),
        None,
        "{}: image differs from 04",
        g.dir
    );
    (got, texts, unbound)
}

fn delivers_03(g: &Geometry) {
    let (got, texts, unbound) = remote_receives_03(g, Some(30));
    assert_eq!(texts, ["one", "two", "three"]);
    for (r, len) in got.iter().zip([3, 3, 5]) {
        assert_eq!(
            *r,
            Received {
                dst: 30,
                src: 0x400,
                len
            }
        );
    }
    assert_eq!(unbound, 0);
}

#[test]
fn remote_delivers_03_and_release_reproduces_04_mcu() {
    delivers_03(&MCU);
}

#[test]
fn remote_delivers_03_and_release_reproduces_04_linux() {
    delivers_03(&LINUX);
}

#[test]
fn unbound_destinations_are_counted_given_back_never_delivered() {
    for g in [&MCU, &LINUX] {
        // Bound elsewhere, and nothing bound: the buffers go back exactly as
        // when delivered (image 04), and nothing reaches the caller.
        for bind in [Some(31), None] {
            let (got, _, unbound) = remote_receives_03(g, bind);
            assert!(got.is_empty(), "{}: delivered {got:?}", g.dir);
            assert_eq!(unbound, 3, "{}: every stray message counted", g.dir);
        }
    }
}

fn holds_05(g: &Geometry) {
    let mut region = Region::new(&image(g, "05_master_sent_nocopy"));
    let shm = region.shm();
    let mut storage = Storage::<1>::new();
    let mut link: RemoteLink<'_> = Link::new(remote_rings(&shm, g), Kicks::default(), &mut storage);
    let _ep = link.bind(30).unwrap();
    let (_tx, mut rx) = link.split();
    let mut texts = Vec::new();
    while let Some(held) = rx.try_recv_held().unwrap() {
        assert_eq!((held.src(), held.dst()), (0x400, 30));
        let view = held.payload().unwrap();
        let mut text = vec![0u8; view.len()];
        view.copy_to(&mut text);
        assert_eq!(view, text.as_slice());
        texts.push(String::from_utf8(text).unwrap());
    }
    assert_eq!(texts, ["one", "two", "three", "four"]);
}

#[test]
fn remote_delivers_the_zero_copy_message_of_05_mcu() {
    holds_05(&MCU);
}

#[test]
fn remote_delivers_the_zero_copy_message_of_05_linux() {
    holds_05(&LINUX);
}

fn master_sequence(g: &Geometry) {
    let mut region = Region::new(&vec![0u8; g.size]);
    let kicks = Kicks::default();
    let shm = region.shm();
    // SAFETY: the pool belongs to the master link alone.
    let rings = unsafe { MasterRings::<_, Legacy, NUM>::new(&shm, master_config(g)) }.unwrap();
    let mut storage = Storage::<2>::new();
    let mut master: MasterLink<'_> = Link::new(rings, kicks.clone(), &mut storage);
    let snapshot = |r: &RawRegion<Coherent>| {
        let mut v = vec![0u8; g.size];
        r.read(0, &mut v).unwrap();
        v
    };
    let want01 = image(g, "01_master_init");
    assert_eq!(
        first_difference(&snapshot(&shm), &want01),
        None,
        "{}: 01",
        g.dir
    );
    {
        // The remote (over the same memory) announces through its halves.
        let mut rs = Storage::<1>::new();
        let mut remote: RemoteLink<'_> =
            Link::new(remote_rings(&shm, g), Kicks::default(), &mut rs);
        let ep = remote.bind(30).unwrap();
        let (mut tx, _) = remote.split();
        assert_eq!(tx.announce(&ep, "rpmsg-vector-test"), Ok(Sent::Sent));
    }
    // The name service is a message to 53, delivered to whoever binds it.
    let ns = master.bind(NS_ADDR).unwrap();
    let ep = master.bind(0x400).unwrap();
    let (mut tx, mut rx) = master.split();
    let mut out = [0u8; 496];
    let r = rx.try_recv(&mut out).unwrap().unwrap();
    assert_eq!((r.dst, r.src, r.len), (ns.addr(), 30, NS_MSG_LEN));
    let m = NsMessage::decode::<Legacy>(&out[..r.len]).unwrap();
    assert_eq!(
        (m.name.as_str(), m.addr, m.action),
        ("rpmsg-vector-test", 30, NsAction::Create)
    );
    // The name-service layer takes the same announcement.
    let mut dir = NsDirectory::<2>::default();
    match dir.on_message::<Legacy>(&out[..r.len]) {
        Some(NsEvent::Created(s)) => {
            assert_eq!((s.name.as_str(), s.addr), ("rpmsg-vector-test", 30))
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(dir.lookup_service("rpmsg-vector-test"), Some(30));
    assert_eq!(rx.try_recv(&mut out), Ok(None));
    let want02b = image(g, "02b_master_ns_consumed");
    assert_eq!(
        first_difference(&snapshot(&shm), &want02b),
        None,
        "{}: 02b",
        g.dir
    );
    for text in ["one", "two", "three"] {
        assert_eq!(tx.try_send(&ep, 30, text.as_bytes()), Ok(Sent::Sent));
    }
    let want03 = image(g, "03_master_sent_three");
    assert_eq!(
        first_difference(&snapshot(&shm), &want03),
        None,
        "{}: 03",
        g.dir
    );
    // As the old link: the consumed NS buffer's return kicks vq0, each
    // send vq1 (used.flags = 0).
    assert_eq!(kicks.0.borrow().as_slice(), [0, 1, 1, 1]);
    assert_eq!((rx.stats().doorbells, tx.stats().doorbells), (1, 3));
}

#[test]
fn master_reproduces_01_02b_03_mcu() {
    master_sequence(&MCU);
}

#[test]
fn master_reproduces_01_02b_03_linux() {
    master_sequence(&LINUX);
}

/// Window offset of the buffer behind entry `k` of vring1's available
/// ring in an image (legacy layout, little-endian).
fn avail_buffer(shm: &RawRegion<Coherent>, g: &Geometry, k: usize) -> (usize, usize) {
    let avail = g.vring1 + 16 * NUM;
    let mut id = [0u8; 2];
    shm.read(avail + 4 + 2 * k, &mut id).unwrap();
    let desc = g.vring1 + 16 * usize::from(u16::from_le_bytes(id));
    let mut addr = [0u8; 8];
    shm.read(desc, &mut addr).unwrap();
    (
        avail + 4 + 2 * k,
        (u64::from_le_bytes(addr) - BASE) as usize,
    )
}

#[test]
fn header_length_beyond_the_buffer_is_counted_and_skipped() {
    let g = &MCU;
    let mut region = Region::new(&image(g, "03_master_sent_three"));
    let shm = region.shm();
    // Message "two" claims 497 payload bytes: more than a 512-byte buffer
    // holds after its header.
    let (_, two) = avail_buffer(&shm, g, 1);
    shm.write(two + 12, &497u16.to_le_bytes()).unwrap();
    let mut storage = Storage::<1>::new();
    let mut link: RemoteLink<'_> = Link::new(remote_rings(&shm, g), Kicks::default(), &mut storage);
    let _ep = link.bind(30).unwrap();
    let (_tx, mut rx) = link.split();
    let mut out = [0u8; 496];
    let mut texts = Vec::new();
    while let Some(r) = rx.try_recv(&mut out).unwrap() {
        texts.push(String::from_utf8_lossy(&out[..r.len]).into_owned());
    }
    assert_eq!(texts, ["one", "three"]);
    assert_eq!(rx.stats().bad_header, 1);
    assert_eq!(rx.stats().unbound, 0);

    assert!(!link.is_broken(), "the bad message's buffer went back");
}

#[test]
fn a_message_at_an_unaligned_address_is_read_byte_wise() {
    // Coherent memory checks no alignment: a master may post a buffer at
    // an odd address. Message "two" moves one byte up (its descriptor
    // names the new address and the message's own length); its header
    // then cannot be read word by word and must still decode.
    let g = &MCU;
    let mut region = Region::new(&image(g, "03_master_sent_three"));
    let shm = region.shm();
    let (entry, two) = avail_buffer(&shm, g, 1);
    let mut msg = [0u8; 19];
    shm.read(two, &mut msg).unwrap();
    assert_eq!(&msg[16..], b"two");
    shm.write(two + 1, &msg).unwrap();
    let mut id = [0u8; 2];
    shm.read(entry, &mut id).unwrap();
    let desc = g.vring1 + 16 * usize::from(u16::from_le_bytes(id));
    shm.write(desc, &(BASE + two as u64 + 1).to_le_bytes())
        .unwrap();
    shm.write(desc + 8, &19u32.to_le_bytes()).unwrap();
    let mut storage = Storage::<1>::new();
    let mut link: RemoteLink<'_> = Link::new(remote_rings(&shm, g), Kicks::default(), &mut storage);
    let _ep = link.bind(30).unwrap();
    let (_tx, mut rx) = link.split();
    let mut out = [0u8; 496];
    let mut got = Vec::new();
    while let Some(r) = rx.try_recv(&mut out).unwrap() {
        got.push((
            r.src,
            r.dst,
            String::from_utf8_lossy(&out[..r.len]).into_owned(),
        ));
    }
    let texts: Vec<_> = got.iter().map(|(_, _, t)| t.as_str()).collect();
    assert_eq!(texts, ["one", "two", "three"]);
    assert_eq!((got[1].0, got[1].1), (got[0].0, got[0].1));
    assert_eq!(rx.stats().bad_header, 0);
    let (_, r) = link.ring_stats();
    assert_eq!(r.failures.total(), 0);
}

#[test]
fn a_message_sent_into_an_unaligned_buffer_is_written_byte_wise() {
    // The transmit side of the test above: the master posts its first
    // receive buffer one byte up; the header cannot be stored word by
    // word and must still land whole, in the ring's byte order.
    let g = &MCU;
    let mut region = Region::new(&image(g, "01_master_init"));
    let shm = region.shm();
    let avail = 16 * NUM;
    let mut id = [0u8; 2];
    shm.read(avail + 4, &mut id).unwrap();
    let desc = 16 * usize::from(u16::from_le_bytes(id));
    let mut addr = [0u8; 8];
    shm.read(desc, &mut addr).unwrap();
    let at = (u64::from_le_bytes(addr) - BASE) as usize + 1;
    shm.write(desc, &(BASE + at as u64).to_le_bytes()).unwrap();
    shm.write(desc + 8, &(BUF as u32 - 16).to_le_bytes())
        .unwrap();
    let mut storage = Storage::<1>::new();
    let mut link: RemoteLink<'_> = Link::new(remote_rings(&shm, g), Kicks::default(), &mut storage);
    let ep = link.bind(30).unwrap();
    let (mut tx, _rx) = link.split();
    assert_eq!(tx.try_send(&ep, 0x0403_0201, b"odd"), Ok(Sent::Sent));
    let mut got = [0u8; 19];
    shm.read(at, &mut got).unwrap();
    // Little-endian: the images' order on either host (`Legacy` above).
    let mut want = Vec::new();
    want.extend_from_slice(&30u32.to_le_bytes());
    want.extend_from_slice(&0x0403_0201u32.to_le_bytes());
    want.extend_from_slice(&[0; 4]);
    want.extend_from_slice(&3u16.to_le_bytes());
    want.extend_from_slice(&[0, 0]);
    want.extend_from_slice(b"odd");
    assert_eq!(got[..], want[..]);
}

#[test]
fn descriptor_out_of_range_is_counted_by_kind_and_skipped() {
    let g = &MCU;
    let mut region = Region::new(&image(g, "03_master_sent_three"));
    let shm = region.shm();
    let (entry, _) = avail_buffer(&shm, g, 1);
    shm.write(entry, &99u16.to_le_bytes()).unwrap();
    let mut storage = Storage::<1>::new();
    let mut link: RemoteLink<'_> = Link::new(remote_rings(&shm, g), Kicks::default(), &mut storage);
    let _ep = link.bind(30).unwrap();
    let (_tx, mut rx) = link.split();
    let mut out = [0u8; 496];
    let mut texts = Vec::new();
    while let Some(r) = rx.try_recv(&mut out).unwrap() {
        texts.push(String::from_utf8_lossy(&out[..r.len]).into_owned());
    }
    assert_eq!(texts, ["one", "three"]);

    let (_, r) = link.ring_stats();
    assert_eq!(r.failures.descriptor_index_out_of_range(), 1);
    assert_eq!(r.failures.total(), 1);
}

#[test]
fn too_short_output_keeps_the_message_for_the_next_call() {
    let g = &MCU;
    let mut region = Region::new(&image(g, "03_master_sent_three"));
    let shm = region.shm();
    let mut storage = Storage::<1>::new();
    let mut link: RemoteLink<'_> = Link::new(remote_rings(&shm, g), Kicks::default(), &mut storage);
    let _ep = link.bind(30).unwrap();
    let (_tx, mut rx) = link.split();
    let mut small = [0u8; 2];
    assert_eq!(rx.try_recv(&mut small), Err(rpmsg::Error::TooLong));
    let mut out = [0u8; 8];
    let r = rx.try_recv(&mut out).unwrap().unwrap();
    assert_eq!(&out[..r.len], b"one", "the kept message comes first");
    let r = rx.try_recv(&mut out).unwrap().unwrap();
    assert_eq!(&out[..r.len], b"two");
}

/// A notifier whose mailbox can be full.
#[derive(Clone, Default)]
struct Fifo(Rc<RefCell<(bool, Vec<u8>)>>);
impl ErrorType for Fifo {
    type Error = ipc_traits::mailbox::ErrorKind;
}
impl Notify for Fifo {
    fn notify(&mut self, q: QueueId) -> Result<(), Self::Error> {
        let mut s = self.0.borrow_mut();
        if s.0 {
            return Err(ipc_traits::mailbox::ErrorKind::WouldBlock);
        }
        s.1.push(q.index());
        Ok(())
    }
}

#[test]
fn a_refused_doorbell_is_owed_counted_and_rung_later() {
    let g = &MCU;
    let mut region = Region::new(&image(g, "01_master_init"));
    let shm = region.shm();
    let fifo = Fifo::default();
    let rings = remote_rings(&shm, g).notify_always(true);
    let mut storage = Storage::<1>::new();
    let mut link = Link::new(rings, fifo.clone(), &mut storage);
    let ep = link.bind(30).unwrap();
    let (mut tx, rx) = link.split();
    fifo.0.borrow_mut().0 = true;
    assert_eq!(
        tx.announce(&ep, "full-mailbox"),
        Ok(Sent::Sent),
        "the message is out"
    );
    assert!(tx.owes_doorbell() && rx.owes_doorbell());
    assert_eq!(
        (tx.stats().doorbells, tx.stats().doorbells_deferred),
        (0, 1)
    );
    tx.flush();
    assert!(tx.owes_doorbell(), "still full: still owed");
    fifo.0.borrow_mut().0 = false;
    let mut rx = rx;
    rx.flush();
    assert!(!tx.owes_doorbell());
    assert_eq!(
        rx.stats().doorbells,
        1,
        "the receive half rang the owed doorbell"
    );
    assert_eq!(fifo.0.borrow().1, [0]);
}

#[derive(Default)]
struct Quiet;
impl ErrorType for Quiet {
    type Error = core::convert::Infallible;
}
impl Notify for Quiet {
    fn notify(&mut self, _: QueueId) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[test]
fn halves_are_send_over_raw_memory_and_move_to_other_threads() {
    fn send<T: Send>(_: &T) {}
    let g = &MCU;
    let mut region = Region::new(&image(g, "01_master_init"));
    let shm = region.shm();
    let mut storage = Storage::<1>::new();
    let mut link = Link::new(remote_rings(&shm, g), Quiet, &mut storage);
    let ep = link.bind(30).unwrap();
    let (mut tx, mut rx) = link.split();
    send(&tx);
    send(&rx);
    // The receive half on one thread, the transmit half on another.
    std::thread::scope(|s| {
        let r = s.spawn(move || {
            let mut out = [0u8; 8];
            rx.try_recv(&mut out).unwrap()
        });
        let t = s.spawn(move || tx.announce(&ep, "from-a-thread").unwrap());
        assert_eq!(r.join().unwrap(), None, "01 holds no message");
        assert_eq!(t.join().unwrap(), Sent::Sent);
    });
    assert_eq!(link.tx_stats().messages, 1);
}
