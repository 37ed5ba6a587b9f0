//! The remote's two boot paths against a host that writes anything into
//! the fields it owns (rpmsg-wire.md §3.2, §3.3: the vdev's status and
//! negotiated features, each vring's device address and notify id): the
//! typed boot (`RemoteBoot::start_at`, reading the table the firmware
//! built at the place the build recorded) and the parsing boot
//! (`RemoteBoot::start`) must agree on every input (same readiness, same
//! vrings, same configuration or the same error, with and without
//! `EVENT_IDX`) and never panic; an accepted configuration is attached
//! (the ring's own checks still refuse, with a typed error, rings over the
//! buffers).
#![no_main]

use core::ptr::NonNull;

use ipc_traits::cache::Coherent;
use ipc_traits::mailbox::Spins;
use ipc_traits::shm::{RawRegion, SharedMemory};
use libfuzzer_sys::fuzz_target;
use rpmsg::boot::{Profile, RemoteBoot};
use rpmsg::rings::RemoteTables;
use rpmsg::rsc_table::{
    table_size, PollTiming, TableBuilder, VdevAt, VringSpec, FW_RSC_ADDR_ANY, VIRTIO_RPMSG_F_NS,
};
use vring::Legacy;

/// `VIRTIO_RING_F_EVENT_IDX`, as the firmware offers it.
const F_EVENT_IDX: u32 = 1 << 29;
/// A vdev behind a carveout, so that its offset is not the first entry's.
const SIZE: usize = table_size(1, 0, 1, 2);
const BUILT: TableBuilder<SIZE> = TableBuilder::<SIZE>::new(2)
    .carveout(0x1000, 0, 0x2000, 0, "vdev0buffer")
    .rpmsg_vdev(
        VIRTIO_RPMSG_F_NS | F_EVENT_IDX,
        [
            VringSpec::new(FW_RSC_ADDR_ANY, 16, NUM as u32, 0),
            VringSpec::new(FW_RSC_ADDR_ANY, 16, NUM as u32, 1),
        ],
    );
const VDEV: VdevAt<SIZE> = BUILT.vdev_at();
/// The shared window: device addresses `BASE..BASE + LEN`.
const BASE: u64 = 0x1000;
const LEN: usize = 8192;
const NUM: usize = 4;

/// The rings' tables: leased by an attach and given back when the rings
/// drop, so one serves every input.
static TABLES: RemoteTables<NUM> = RemoteTables::new();

fuzz_target!(|data: &[u8]| {
    // status, then gfeatures, da0, notifyid0, da1, notifyid1 (LE), then a
    // byte choosing where the addresses point when it is even (inside the
    // window, aligned or not), so the accepting paths are reached too.
    let mut word = [0u32; 5];
    let Some((&status, rest)) = data.split_first() else {
        return;
    };
    for (i, w) in word.iter_mut().enumerate() {
        let b = rest.get(4 * i..4 * i + 4).unwrap_or(&[0; 4]);
        *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    let [gfeatures, mut da0, id0, mut da1, id1] = word;
    if rest.get(20).is_some_and(|b| b % 2 == 0) {
        // Inside the window: the low 13 bits pick the place.
        da0 = BASE as u32 + (da0 % LEN as u32);
        da1 = BASE as u32 + (da1 % LEN as u32);
    }

    let image = BUILT.finish().bytes();
    let mut tbacking = vec![0u64; SIZE.div_ceil(8)];
    let tptr = NonNull::new(tbacking.as_mut_ptr().cast::<u8>()).unwrap();
    // SAFETY: the vector is reached only through this window while it lives.
    let table = unsafe { RawRegion::new(tptr, SIZE, 0, Coherent) }.unwrap();
    table.write(0, &image).unwrap();
    let mut rbacking = vec![0u64; LEN / 8];
    let rptr = NonNull::new(rbacking.as_mut_ptr().cast::<u8>()).unwrap();
    // SAFETY: as above.
    let mut rings = unsafe { RawRegion::new(rptr, LEN, BASE, Coherent) }.unwrap();
    // Wherever vring 0 lands, its descriptors name the host's receive
    // buffers: every 16 bytes, the address of one of four 512-byte buffers
    // from window offset 4096.
    for k in 0..LEN / 16 {
        let buf = BASE + 4096 + 512 * (k % 4) as u64;
        rings.write(16 * k, &buf.to_le_bytes()).unwrap();
    }

    let vdev = VDEV.info().offset;
    let put = |at: usize, v: u32| table.write(vdev + at, &v.to_le_bytes()).unwrap();
    put(16, gfeatures);
    put(28, da0);
    put(40, id0);
    put(48, da1);
    put(60, id1);
    table.write(vdev + 24, &[status]).unwrap();

    let timing = PollTiming {
        interval: 1,
        patience: 2,
    };
    let parsed = RemoteBoot::start::<_, _, SIZE>(&table, 0, &rings, Profile::Linux, timing, 0);
    let typed = RemoteBoot::start_at(&table, 0, VDEV, &rings, Profile::Linux, timing, 0);
    let (parsed, typed) = match (parsed, typed) {
        (Ok(p), Ok(t)) => (p, t),
        (p, t) => {
            assert_eq!(p.err(), t.err(), "the same refusal at start");
            return;
        }
    };
    let pv = parsed.wait(&table, Spins::new(2));
    let tv = typed.wait(&table, Spins::new(2));
    assert_eq!(pv, tv, "the same readiness and vrings");
    let Ok(vrings) = tv else {
        return;
    };
    let pc = parsed.config(&table, &rings, vrings);
    let tc = typed.config(&table, &rings, vrings);
    assert_eq!(pc, tc, "the same configuration");
    let (pe, te) = (parsed.with_event_idx(), typed.with_event_idx());
    assert_eq!(pe.is_ok(), te.is_ok(), "EVENT_IDX: the same answer");
    if let (Ok(pe), Ok(te)) = (pe, te) {
        assert_eq!(
            pe.config(&table, &rings, vrings),
            te.config(&table, &rings, vrings),
            "the same configuration with EVENT_IDX"
        );
    }
    if tc.is_ok() {
        // Accepted: the rings attach (or refuse with a typed error, as the
        // ring's own checks may), and give the tables back when they drop.
        let attached = typed.rings_in::<_, _, Legacy, NUM>(&table, &mut rings, vrings, &TABLES);
        drop(attached);
    }
});
