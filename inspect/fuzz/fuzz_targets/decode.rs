//! The inspector over any bytes: a 16-byte header picks the layout, the
//! rest is the image (split in two halves, a first and a later image, when
//! the header asks). Decoding, diagnosis and all three renderers must never
//! panic, whatever the image or the layout.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ring_inspect::{inspect, json, svg, text, LayoutOptions, Preset, RscSource};

fuzz_target!(|data: &[u8]| {
    let Some((h, image)) = data.split_first_chunk::<16>() else {
        return;
    };
    let flags = h[6];
    let mut o = LayoutOptions {
        preset: match h[0] % 4 {
            0 => Some(Preset::RpmsgLiteMcu),
            1 => Some(Preset::RpmsgLiteLinux),
            2 => Some(Preset::LinuxRemoteproc),
            _ => None,
        },
        parked_tx: Some(flags & 1 != 0),
        event_idx: Some(flags & 2 != 0),
        device_honors_no_interrupt: Some(flags & 4 != 0),
        big_endian: flags & 8 != 0,
        ..LayoutOptions::default()
    };
    if o.preset.is_none() || flags & 0x20 != 0 {
        o.num = Some(1u16 << (h[1] % 10));
        o.align = Some(1usize << (h[2] % 13));
        o.vring0 = Some(usize::from(h[3]) * 16);
        o.vring1 = Some(usize::from(u16::from_le_bytes([h[4], h[5]])) * 16);
    }
    if flags & 0x40 != 0 {
        o.rsc_table = RscSource::Auto;
    }
    if flags & 0x80 != 0 {
        o.base = Some(u64::from(u32::from_le_bytes([h[7], h[8], h[9], h[10]])));
    }
    o.buf_size = Some(usize::from(u16::from_le_bytes([h[11], h[12]])));
    let images = if flags & 0x10 != 0 {
        let (a, b) = image.split_at(image.len() / 2);
        vec![("a".to_owned(), a.to_vec()), ("b".to_owned(), b.to_vec())]
    } else {
        vec![("a".to_owned(), image.to_vec())]
    };
    if let Ok(ins) = inspect(&images, &o) {
        let _ = text::render(&ins, true);
        let _ = json::to_json(&ins);
        let _ = svg::render(&ins);
    }
});
