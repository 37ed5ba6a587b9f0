//! Hostile input: random bytes, truncated files, absurd layouts and bad
//! command lines give a clear error, never a panic; and the command line
//! end to end (files, `--then`, `--json`, `--svg`, live sampling of a
//! regular file standing in for `/dev/mem`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use ring_inspect::cli::run;
use ring_inspect::{inspect, InspectError, LayoutOptions, Preset, RscSource};

fn golden(file: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/vectors/rpmsg-lite/mcu-align16")
            .join(file),
    )
    .unwrap()
}

fn preset(p: Preset) -> LayoutOptions {
    LayoutOptions {
        preset: Some(p),
        ..LayoutOptions::default()
    }
}

/// xorshift64*: deterministic noise.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn one(bytes: Vec<u8>, opts: &LayoutOptions) -> Result<ring_inspect::Inspection, InspectError> {
    inspect(&[("x".into(), bytes)], opts)
}

#[test]
fn random_bytes_are_refused_as_not_a_ring() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for p in Preset::ALL {
        let len = if p == Preset::RpmsgLiteMcu {
            0x10000
        } else {
            0x40000
        };
        let e = one(rng.bytes(len), &preset(p)).unwrap_err();
        assert!(matches!(e, InspectError::NotAVring { .. }), "{p}: {e}");
        assert!(e.to_string().contains("no vring0 at this layout"), "{e}");
    }
}

#[test]
fn truncated_images_say_so() {
    let img = golden("03_master_sent_three.bin");
    for cut in [0, 1, 100, 447, 800] {
        let e = one(img[..cut].to_vec(), &preset(Preset::RpmsgLiteMcu)).unwrap_err();
        assert!(matches!(e, InspectError::Truncated { .. }), "{cut}: {e}");
        assert!(e.to_string().contains("image truncated"), "{e}");
    }
    // Cut inside the buffers: rings decode, messages past the end are not
    // invented.
    let ins = one(img[..1000].to_vec(), &preset(Preset::RpmsgLiteMcu)).unwrap();
    assert!(ins.now().unwrap().messages.len() <= 1);
    // A later image of another size is not the same region.
    let e = inspect(
        &[
            ("a".into(), img.clone()),
            ("b".into(), img[..4096].to_vec()),
        ],
        &preset(Preset::RpmsgLiteMcu),
    )
    .unwrap_err();
    assert!(matches!(e, InspectError::SizeMismatch { .. }), "{e}");
}

#[test]
fn absurd_layouts_are_refused() {
    let img = golden("03_master_sent_three.bin");
    let cases: Vec<(&str, LayoutOptions)> = vec![
        ("no layout", LayoutOptions::default()),
        (
            "num 12",
            LayoutOptions {
                num: Some(12),
                ..preset(Preset::RpmsgLiteMcu)
            },
        ),
        (
            "num 0",
            LayoutOptions {
                num: Some(0),
                ..preset(Preset::RpmsgLiteMcu)
            },
        ),
        (
            "num 32768",
            LayoutOptions {
                num: Some(32768),
                ..preset(Preset::RpmsgLiteMcu)
            },
        ),
        (
            "align 24",
            LayoutOptions {
                align: Some(24),
                ..preset(Preset::RpmsgLiteMcu)
            },
        ),
        (
            "align huge",
            LayoutOptions {
                align: Some(1 << 62),
                ..preset(Preset::RpmsgLiteMcu)
            },
        ),
        (
            "vring1 past the end",
            LayoutOptions {
                vring1: Some(usize::MAX - 15),
                ..preset(Preset::RpmsgLiteMcu)
            },
        ),
        (
            "vring0 misaligned",
            LayoutOptions {
                vring0: Some(8),
                ..preset(Preset::RpmsgLiteMcu)
            },
        ),
        (
            "rings overlap",
            LayoutOptions {
                vring1: Some(16),
                ..preset(Preset::RpmsgLiteMcu)
            },
        ),
        (
            "buffer size 0",
            LayoutOptions {
                buf_size: Some(0),
                ..preset(Preset::RpmsgLiteMcu)
            },
        ),
        (
            "table past the end",
            LayoutOptions {
                rsc_table: RscSource::At(1 << 40),
                ..preset(Preset::RpmsgLiteMcu)
            },
        ),
        (
            "no table",
            LayoutOptions {
                rsc_table: RscSource::Auto,
                ..preset(Preset::RpmsgLiteMcu)
            },
        ),
        (
            "table of garbage",
            LayoutOptions {
                rsc_table: RscSource::Bytes(vec![1, 0, 0, 0, 255, 255, 255, 255]),
                ..LayoutOptions::default()
            },
        ),
    ];
    for (what, opts) in cases {
        let e = one(img.clone(), &opts).expect_err(what);
        let msg = e.to_string();
        assert!(!msg.is_empty(), "{what}");
        println!("{what}: {msg}");
    }
}

#[test]
fn mutated_golden_images_never_panic() {
    let mut rng = Rng(7);
    let base = golden("05_master_sent_nocopy.bin");
    let mut decoded = 0;
    for _ in 0..3000 {
        let mut img = base.clone();
        // Scribble on the rings and the first buffers.
        for _ in 0..(rng.next() % 8 + 1) {
            let at = (rng.next() % 2000) as usize;
            img[at] = rng.next() as u8;
        }
        let later = if rng.next() % 2 == 0 {
            let mut l = img.clone();
            let at = (rng.next() % 900) as usize;
            l[at] ^= 0xff;
            vec![("a".into(), img.clone()), ("b".into(), l)]
        } else {
            vec![("a".into(), img.clone())]
        };
        if let Ok(ins) = inspect(&later, &preset(Preset::RpmsgLiteMcu)) {
            decoded += 1;
            // Every renderer copes with whatever was decoded.
            let _ = ring_inspect::text::render(&ins, true);
            let _ = ring_inspect::json::to_json(&ins);
            let svg = ring_inspect::svg::render(&ins);
            assert!(svg.starts_with("<?xml"));
        }
    }
    assert!(decoded > 1000, "{decoded}");
}

fn cli(args: &[&str]) -> (Result<i32, InspectError>, String) {
    let argv: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let mut out = Vec::new();
    let r = run(&argv, &mut out, false);
    (r, String::from_utf8(out).unwrap())
}

#[test]
fn bad_command_lines_are_usage_errors() {
    for args in [
        &[][..],
        &["--preset"],
        &["--preset", "nope", "x.bin"],
        &["--num", "sixteen", "x.bin"],
        &["--num", "70000", "x.bin"],
        &["--bogus"],
        &["a.bin", "b.bin"],
        &["--live", "/dev/null"],
        &["--phys", "0x1000", "a.bin"],
        &["--color", "pink", "a.bin"],
    ] {
        let (r, _) = cli(args);
        let e = r.expect_err(&format!("{args:?}"));
        assert!(matches!(e, InspectError::Usage(_)), "{args:?}: {e}");
    }
    let (r, _) = cli(&["--preset", "rpmsg-lite-mcu", "/nonexistent/image.bin"]);
    assert!(matches!(r, Err(InspectError::Io(_))));
    let (r, out) = cli(&["--help"]);
    assert_eq!(r.unwrap(), 0);
    assert!(out.contains("--live"));
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ring-inspect-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn command_line_end_to_end() {
    let a = tmp("03.bin");
    let b = tmp("04.bin");
    std::fs::write(&a, golden("03_master_sent_three.bin")).unwrap();
    std::fs::write(&b, golden("04_remote_rx_released.bin")).unwrap();
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let (r, out) = cli(&["--preset", "rpmsg-lite-mcu", a, "--then", b, "--check"]);
    assert_eq!(r.unwrap(), 0, "{out}");
    assert!(out.contains("no stuck state found"), "{out}");
    assert!(out.contains("(+3)"), "{out}");
    assert!(!out.contains('\x1b'), "no colours when not a terminal");

    // The same image twice: the remote never consumed the three messages.
    let svg = tmp("stuck.svg");
    let (r, out) = cli(&[
        "--preset",
        "rpmsg-lite-mcu",
        a,
        "--then",
        a,
        "--check",
        "--json",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(r.unwrap(), 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["healthy"], false);
    assert_eq!(v["diagnoses"][0]["kind"], "start-kick-missing");
    assert_eq!(v["samples"][1]["rings"][1]["outstanding"], 3);
    let drawing = std::fs::read_to_string(&svg).unwrap();
    assert!(drawing.contains("start kick missing"));
    let (r, out) = cli(&["--preset", "rpmsg-lite-mcu", a, "--color", "always"]);
    assert_eq!(r.unwrap(), 0);
    assert!(out.contains('\x1b'));
}

#[test]
fn live_mode_samples_a_memory_device_read_only() {
    // A regular file stands in for /dev/mem: the region at "physical"
    // address 0x4000_0000 is at that offset of a sparse file.
    let mem = tmp("mem");
    let img = golden("03_master_sent_three.bin");
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(&mem).unwrap();
        f.write_all_at(&img, 0x4000_0000).unwrap();
    }
    let before = std::fs::metadata(&mem).unwrap().modified().unwrap();
    let m = mem.to_str().unwrap();
    let (r, out) = cli(&[
        "--preset",
        "rpmsg-lite-mcu",
        "--live",
        m,
        "--phys",
        "0x40000000",
        "--len",
        "0x10000",
        "--samples",
        "3",
        "--interval-ms",
        "1",
        "--check",
    ]);
    // Nothing moves in a file: the three messages were never consumed.
    assert_eq!(r.unwrap(), 1, "{out}");
    assert!(out.contains("sample 1 … sample 3 (3 samples)"), "{out}");
    assert!(out.contains("start kick missing"), "{out}");
    assert!(out.contains("over 3 samples"), "{out}");
    assert_eq!(std::fs::metadata(&mem).unwrap().modified().unwrap(), before);
    // Past the end of the device: a clear error.
    let (r, _) = cli(&[
        "--preset",
        "rpmsg-lite-mcu",
        "--live",
        m,
        "--phys",
        "0x7fff0000",
        "--len",
        "0x10000",
    ]);
    assert!(matches!(r, Err(InspectError::Io(_))));
    let (r, _) = cli(&[
        "--preset",
        "rpmsg-lite-mcu",
        "--live",
        m,
        "--phys",
        "0",
        "--len",
        "0",
    ]);
    assert!(matches!(r, Err(InspectError::Usage(_))));
    std::fs::remove_file(&mem).unwrap();
}
