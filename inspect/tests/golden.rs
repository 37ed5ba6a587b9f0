//! Every golden image of shared/vectors/rpmsg-lite (both layouts) decodes
//! with the facts of its `vectors.json` and no warning, alone and in
//! sequence.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use ring_inspect::{inspect, LayoutOptions, MessageState, Preset};
use serde_json::Value;

fn dir(set: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/vectors/rpmsg-lite")
        .join(set)
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The messages each image holds for a receiver (vectors README,
/// "Sequence and files"): (ring, src, dst, text or NS name).
fn pending(file: &str) -> Vec<(usize, u32, u32, &'static str)> {
    match &file[..3] {
        "02_" => vec![(0, 30, 53, "rpmsg-vector-test")],
        "03_" => vec![
            (1, 1024, 30, "one"),
            (1, 1024, 30, "two"),
            (1, 1024, 30, "three"),
        ],
        "05_" => vec![(1, 1024, 30, "four")],
        _ => vec![],
    }
}

fn check_set(set: &str, preset: Preset) {
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir(set).join("vectors.json")).unwrap())
            .unwrap();
    let opts = LayoutOptions {
        preset: Some(preset),
        ..LayoutOptions::default()
    };
    let mut all = Vec::new();
    for d in json["dumps"].as_array().unwrap() {
        let file = d["file"].as_str().unwrap();
        let bytes = std::fs::read(dir(set).join(file)).unwrap();
        all.push((file.to_owned(), bytes.clone()));
        let ins = inspect(&[(file.to_owned(), bytes)], &opts).unwrap();
        assert!(
            ins.diagnoses.is_empty(),
            "{set}/{file}: {:#?}",
            ins.diagnoses
        );
        assert_eq!(ins.link.base, u(&json["shm_base"]), "{file}: base inferred");
        let s = ins.now().unwrap();

        // Ring fields as vectors.json lists them.
        for (i, v) in d["vrings"].as_array().unwrap().iter().enumerate() {
            let r = &s.rings[i];
            assert_eq!(
                r.layout.desc_offset() as u64,
                u(&v["desc_offset"]),
                "{file}"
            );
            assert_eq!(
                r.layout.used_offset() as u64,
                u(&v["used_offset"]),
                "{file}"
            );
            assert_eq!(u64::from(r.avail_idx), u(&v["avail"]["idx"]), "{file}");
            assert_eq!(u64::from(r.avail_flags), u(&v["avail"]["flags"]), "{file}");
            assert_eq!(u64::from(r.used_idx), u(&v["used"]["idx"]), "{file}");
            assert_eq!(u64::from(r.used_flags), u(&v["used"]["flags"]), "{file}");
            for (k, e) in v["used"]["ring"].as_array().unwrap().iter().enumerate() {
                assert_eq!(u64::from(r.used_ring[k].id), u(&e["id"]), "{file}");
                assert_eq!(u64::from(r.used_ring[k].len), u(&e["len"]), "{file}");
            }
            for (k, e) in v["desc"].as_array().unwrap().iter().enumerate() {
                assert_eq!(r.desc[k].addr, u(&e["addr"]), "{file}");
                assert_eq!(u64::from(r.desc[k].len), u(&e["len"]), "{file}");
                assert_eq!(u64::from(r.desc[k].flags), u(&e["flags"]), "{file}");
            }
            assert!(r.anomalies.is_empty(), "{file}: {:?}", r.anomalies);
        }

        // Every non-zero buffer decodes to its header and payload.
        for b in d["buffers_nonzero"].as_array().unwrap() {
            let off = u(&b["offset"]) as usize;
            let m = s
                .messages
                .iter()
                .find(|m| m.offset == off)
                .unwrap_or_else(|| panic!("{file}: no message at {off:#x}"));
            assert_eq!(u64::from(m.header.src), u(&b["hdr"]["src"]), "{file}");
            assert_eq!(u64::from(m.header.dst), u(&b["hdr"]["dst"]), "{file}");
            assert_eq!(u64::from(m.header.len), u(&b["hdr"]["len"]), "{file}");
            let hex: String = m.payload.iter().map(|x| format!("{x:02x}")).collect();
            assert!(
                b["payload_hex"].as_str().unwrap().starts_with(&hex),
                "{file}"
            );
            if let Some(ns) = b.get("ns_msg") {
                let got = m.ns.as_ref().expect("NS decoded");
                assert_eq!(got.name, ns["name"].as_str().unwrap(), "{file}");
                assert_eq!(u64::from(got.addr), u(&ns["addr"]), "{file}");
                assert!(got.create, "{file}");
            }
        }

        // Pending messages, their sources and texts, the announced name.
        let got: Vec<(usize, u32, u32, String)> = s
            .pending()
            .map(|m| {
                let text = m.ns.as_ref().map_or_else(
                    || String::from_utf8_lossy(&m.payload).into_owned(),
                    |n| n.name.clone(),
                );
                (m.ring, m.header.src, m.header.dst, text)
            })
            .collect();
        let want: Vec<(usize, u32, u32, String)> = pending(file)
            .into_iter()
            .map(|(r, a, b, t)| (r, a, b, t.to_owned()))
            .collect();
        assert_eq!(got, want, "{set}/{file}");
        if file != "01_master_init.bin" {
            let ns: Vec<&str> = s
                .messages
                .iter()
                .filter_map(|m| m.ns.as_ref().map(|n| n.name.as_str()))
                .collect();
            assert_eq!(
                ns,
                [json["checks_from_run"]["ns_cb_name"].as_str().unwrap()],
                "{file}"
            );
        }
        assert!(s
            .messages
            .iter()
            .all(|m| m.state == MessageState::Stale || !want.is_empty()));
    }

    // In sequence: every consecutive pair, and the whole run, move without
    // a warning (04h is a variant of 04 from another run: leave it out).
    let run: Vec<_> = all
        .into_iter()
        .filter(|(f, _)| !f.starts_with("04h"))
        .collect();
    for w in run.windows(2) {
        let ins = inspect(w, &opts).unwrap();
        assert!(
            ins.diagnoses.is_empty(),
            "{set} {} → {}: {:#?}",
            w[0].0,
            w[1].0,
            ins.diagnoses
        );
    }
    let ins = inspect(&run, &opts).unwrap();
    assert!(ins.diagnoses.is_empty(), "{:#?}", ins.diagnoses);
}

#[test]
fn mcu_align16_images_decode_with_their_facts_and_no_warning() {
    check_set("mcu-align16", Preset::RpmsgLiteMcu);
}

#[test]
fn linux_align4096_images_decode_with_their_facts_and_no_warning() {
    check_set("linux-align4096", Preset::RpmsgLiteLinux);
}

#[test]
fn the_same_images_through_explicit_options() {
    // No preset: the layout spelled out, as for a platform we do not know.
    let bytes = std::fs::read(dir("mcu-align16").join("03_master_sent_three.bin")).unwrap();
    let opts = LayoutOptions {
        num: Some(16),
        align: Some(16),
        vring1: Some(448),
        base: Some(0x4000_0000),
        parked_tx: Some(true),
        device_honors_no_interrupt: Some(false),
        ..LayoutOptions::default()
    };
    let ins = inspect(&[("03".into(), bytes.clone())], &opts).unwrap();
    assert!(ins.diagnoses.is_empty());
    assert_eq!(ins.now().unwrap().pending().count(), 3);
    // Without --parked-tx the parked transmit buffers are impossible, and
    // the report says what the pattern looks like.
    let plain = LayoutOptions {
        parked_tx: Some(false),
        ..opts
    };
    let ins = inspect(
        &[(
            "01".into(),
            std::fs::read(dir("mcu-align16").join("01_master_init.bin")).unwrap(),
        )],
        &plain,
    )
    .unwrap();
    assert_eq!(ins.diagnoses.len(), 1);
    assert!(
        ins.diagnoses[0].evidence.contains("parking"),
        "{}",
        ins.diagnoses[0].evidence
    );
}
