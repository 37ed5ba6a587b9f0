//! `--svg FILE`: each ring drawn as a circle of slots coloured by who holds
//! the buffer, with the indices marked.
//!
//! Outer band: the available ring's slots (the descriptor id in each),
//! inner band: the used ring's. A slot's colour is its descriptor's owner
//! when the entry is current, pale grey when it is an old entry, white
//! when never written. ▲ marks where the next `avail.idx` entry goes, ▼
//! the next `used.idx` entry. Below each circle, every descriptor as a
//! square; below both, the diagnosis.

use crate::decode::{Owner, Ring};
use crate::link::{short, Direction};
use crate::Inspection;

const W: f64 = 1100.0;
const FONT: &str = "DejaVu Sans, Helvetica, Arial, sans-serif";
const STALE: &str = "#e5e7eb";
const STALE_TEXT: &str = "#9ca3af";
const INK: &str = "#111827";
const MUTED: &str = "#6b7280";

/// The fill colour of an owner on a ring of direction `dir`.
pub const fn colour(o: Owner, dir: Direction) -> &'static str {
    match (o, dir) {
        (Owner::Device, _) => "#2563eb",
        (Owner::Returned, Direction::ToDriver) => "#f59e0b",
        (Owner::Returned, Direction::ToDevice) => "#10b981",
        (Owner::Driver, _) => "#94a3b8",
        (Owner::Leaked, _) => "#dc2626",
    }
}

/// Escapes text for XML.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => o.push('?'),
            c => o.push(c),
        }
    }
    o
}

fn polar(cx: f64, cy: f64, r: f64, a: f64) -> (f64, f64) {
    (cx + r * a.cos(), cy + r * a.sin())
}

/// An annular sector between angles `a0`..`a1` and radii `r0`..`r1`.
fn sector(cx: f64, cy: f64, r0: f64, r1: f64, a0: f64, a1: f64) -> String {
    let large = i32::from(a1 - a0 > std::f64::consts::PI);
    let (x0, y0) = polar(cx, cy, r1, a0);
    let (x1, y1) = polar(cx, cy, r1, a1);
    let (x2, y2) = polar(cx, cy, r0, a1);
    let (x3, y3) = polar(cx, cy, r0, a0);
    format!(
        "M{x0:.2},{y0:.2} A{r1},{r1} 0 {large} 1 {x1:.2},{y1:.2} L{x2:.2},{y2:.2} A{r0},{r0} 0 {large} 0 {x3:.2},{y3:.2} Z"
    )
}

/// Greedy word wrap at `width` characters.
fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in s.split_whitespace() {
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

/// One slot's look.
struct Slot {
    fill: &'static str,
    text: &'static str,
    label: Option<String>,
    stroke: &'static str,
}

fn avail_slot(r: &Ring, p: u16) -> Slot {
    let num = r.num();
    let back = r.avail_idx.wrapping_sub(1).wrapping_sub(p) & (num - 1);
    let head = r.avail_ring.get(usize::from(p)).copied().unwrap_or(0);
    if back >= r.avail_idx && r.avail_idx < num {
        return Slot {
            fill: "#ffffff",
            text: STALE_TEXT,
            label: None,
            stroke: "#d1d5db",
        };
    }
    if r.indices_possible() && back < r.outstanding {
        let o = r
            .owners
            .get(usize::from(head))
            .copied()
            .unwrap_or(Owner::Leaked);
        return Slot {
            fill: colour(o, r.direction),
            text: "#ffffff",
            label: Some(head.to_string()),
            stroke: "#ffffff",
        };
    }
    Slot {
        fill: STALE,
        text: STALE_TEXT,
        label: Some(head.to_string()),
        stroke: "#ffffff",
    }
}

fn used_slot(r: &Ring, p: u16) -> Slot {
    let num = r.num();
    let back = r.used_idx.wrapping_sub(1).wrapping_sub(p) & (num - 1);
    let e = r.used_ring.get(usize::from(p)).copied();
    let id = e.map_or(0, |e| e.id);
    if back >= r.used_idx && r.used_idx < num && e.is_some_and(|e| e.id == 0 && e.len == 0) {
        return Slot {
            fill: "#ffffff",
            text: STALE_TEXT,
            label: None,
            stroke: "#d1d5db",
        };
    }
    let owner = usize::try_from(id)
        .ok()
        .and_then(|i| r.owners.get(i))
        .copied();
    if r.indices_possible() && back < r.returned_window && owner == Some(Owner::Returned) {
        return Slot {
            fill: colour(Owner::Returned, r.direction),
            text: "#ffffff",
            label: Some(id.to_string()),
            stroke: "#ffffff",
        };
    }
    Slot {
        fill: STALE,
        text: STALE_TEXT,
        label: Some(id.to_string()),
        stroke: "#ffffff",
    }
}

/// Renders the latest sample of `ins` as an SVG document.
pub fn render(ins: &Inspection) -> String {
    let mut body = String::new();
    let Some(now) = ins.now() else {
        return String::new();
    };
    let link = &ins.link;

    // Title.
    let labels: Vec<&str> = ins.samples.iter().map(|(l, _)| l.as_str()).collect();
    let title = match labels.as_slice() {
        [one] => (*one).to_owned(),
        [a, .., b] => format!("{a} → {b}"),
        [] => String::new(),
    };
    w!(
        body,
        r##"<text x="40" y="46" font-size="24" font-weight="700" fill="{INK}">Ring inspector<tspan dx="14" font-size="16" font-weight="400" fill="{MUTED}">{}</tspan></text>"##,
        esc(&title)
    );
    w!(
        body,
        r##"<text x="40" y="72" font-size="13" fill="{MUTED}">layout {} · base {:#x} · {} bytes · buffers of {} bytes{}{}</text>"##,
        link.preset.map_or("custom", |p| p.name()),
        link.base,
        now.len,
        link.buf_size,
        if link.event_idx { " · EVENT_IDX" } else { "" },
        if link.parked_tx {
            " · free transmit buffers parked in vring1's used ring"
        } else {
            ""
        }
    );

    let cy = 392.0;
    let mut strip_bottom: f64 = 0.0;
    for (i, r) in now.rings.iter().enumerate() {
        let cx = W / 4.0 + W / 2.0 * i as f64;
        strip_bottom = strip_bottom.max(ring(&mut body, ins, r, cx, cy));
    }

    // Legend.
    let mut y = strip_bottom + 34.0;
    let legend = [
        ("#2563eb", "with the device"),
        ("#f59e0b", "message for the driver"),
        ("#10b981", "consumed, free again"),
        ("#94a3b8", "free at the driver"),
        ("#dc2626", "leaked"),
        (STALE, "old entry"),
        ("#ffffff", "never written"),
    ];
    let mut x = 40.0;
    for (c, t) in legend {
        w!(
            body,
            r##"<rect x="{x}" y="{:.1}" width="14" height="14" rx="3" fill="{c}" stroke="#d1d5db"/><text x="{:.1}" y="{:.1}" font-size="12" fill="{MUTED}">{t}</text>"##,
            y - 11.0,
            x + 20.0,
            y
        );
        x += 34.0 + t.len() as f64 * 6.9;
    }
    y += 24.0;
    w!(
        body,
        r##"<text x="40" y="{y:.1}" font-size="12" fill="{MUTED}">▲ next available entry (avail.idx) · ▼ next used entry (used.idx) · outer band: available ring, inner band: used ring; each slot shows the descriptor it names</text>"##
    );

    // Diagnosis.
    y += 40.0;
    w!(
        body,
        r##"<text x="40" y="{y:.1}" font-size="16" font-weight="700" fill="{INK}">Diagnosis</text>"##
    );
    y += 26.0;
    if ins.diagnoses.is_empty() {
        w!(
            body,
            r##"<text x="40" y="{y:.1}" font-size="14" fill="#059669">✔ no stuck state found</text>"##
        );
        y += 22.0;
    }
    for d in &ins.diagnoses {
        let lines = wrap(&d.sentence(), 142);
        let h = 20.0 * lines.len() as f64 + 12.0;
        w!(
            body,
            r##"<rect x="32" y="{:.1}" width="{:.1}" height="{h:.1}" rx="6" fill="#fef2f2" stroke="#fecaca"/><text x="44" y="{:.1}" font-size="14" font-weight="700" fill="#dc2626">✖</text>"##,
            y - 17.0,
            W - 64.0,
            y
        );
        for (k, line) in lines.iter().enumerate() {
            w!(
                body,
                r##"<text x="64" y="{:.1}" font-size="13" fill="{INK}">{}</text>"##,
                y + 20.0 * k as f64,
                esc(line)
            );
        }
        y += h + 10.0;
    }
    let height = y + 20.0;
    format!(
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height:.0}" viewBox="0 0 {W} {height:.0}" font-family="{FONT}">
<rect width="100%" height="100%" fill="#ffffff"/>
{body}
</svg>
"##
    )
}

/// Draws one ring centred at `cx, cy`; returns the bottom of its drawing.
fn ring(o: &mut String, ins: &Inspection, r: &Ring, cx: f64, cy: f64) -> f64 {
    let link = &ins.link;
    let num = r.num();
    let (from, to) = match r.direction {
        Direction::ToDriver => (short(link.device_name), short(link.driver_name)),
        Direction::ToDevice => (short(link.driver_name), short(link.device_name)),
    };
    w!(
        o,
        r##"<text x="{cx}" y="108" text-anchor="middle" font-size="18" font-weight="700" fill="{INK}">vring{} <tspan font-weight="400" fill="{MUTED}">{} → {}</tspan></text>"##,
        r.index,
        esc(from),
        esc(to)
    );
    w!(
        o,
        r##"<text x="{cx}" y="128" text-anchor="middle" font-size="12" fill="{MUTED}">avail.idx {} · used.idx {} · avail.flags {:#x} · used.flags {:#x}{}</text>"##,
        r.avail_idx,
        r.used_idx,
        r.avail_flags,
        r.used_flags,
        if link.event_idx {
            format!(
                " · used_event {} · avail_event {}",
                r.used_event, r.avail_event
            )
        } else {
            String::new()
        }
    );

    // Slots: at most 256 drawn; larger rings are binned.
    let bins = num.min(256);
    let per = num / bins;
    let step = std::f64::consts::TAU / f64::from(bins);
    let gap = if bins <= 64 { 0.012 } else { 0.0 };
    let start = -std::f64::consts::FRAC_PI_2;
    let (ro0, ro1, ri0, ri1) = (152.0, 196.0, 102.0, 142.0);
    let font = match bins {
        0..=16 => 14.0,
        17..=32 => 10.0,
        33..=64 => 7.5,
        _ => 0.0,
    };
    for b in 0..bins {
        let a0 = start + step * f64::from(b) + gap;
        let a1 = start + step * f64::from(b + 1) - gap;
        let p = b * per;
        for (slot, r0, r1) in [(avail_slot(r, p), ro0, ro1), (used_slot(r, p), ri0, ri1)] {
            w!(
                o,
                r##"<path d="{}" fill="{}" stroke="{}" stroke-width="1"/>"##,
                sector(cx, cy, r0, r1, a0, a1),
                slot.fill,
                slot.stroke
            );
            if let (Some(l), true) = (&slot.label, font > 0.0) {
                let (x, y) = polar(cx, cy, (r0 + r1) / 2.0, (a0 + a1) / 2.0);
                w!(
                    o,
                    r##"<text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="{font}" font-weight="600" fill="{}">{l}</text>"##,
                    y + font * 0.36,
                    slot.text
                );
            }
        }
        // Position numbers around the outside.
        let every = (bins / 16).max(1);
        let marked = |i: u16| (i & (num - 1)) / per == b;
        if b % every == 0 && !marked(r.avail_idx) && !marked(r.used_idx) {
            let (x, y) = polar(cx, cy, 207.0, start + step * (f64::from(b) + 0.5));
            w!(
                o,
                r##"<text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="9" fill="{STALE_TEXT}">{p}</text>"##,
                y + 3.0
            );
        }
    }

    // Index markers.
    // `gap`: the used marker sits between the bands and gets a leader line
    // out to its label.
    let mark = |o: &mut String,
                idx: u16,
                tip: f64,
                base: f64,
                colour: &str,
                label: &str,
                dy: f64| {
        let pos = f64::from((idx & (num - 1)) / per);
        let a = start + step * (pos + 0.5);
        let (xt, yt) = polar(cx, cy, tip, a);
        let (xl, yl) = polar(cx, cy, base, a - 0.05);
        let (xr, yr) = polar(cx, cy, base, a + 0.05);
        w!(
            o,
            r##"<path d="M{xt:.1},{yt:.1} L{xl:.1},{yl:.1} L{xr:.1},{yr:.1} Z" fill="{colour}"/>"##
        );
        let (lx, ly) = polar(cx, cy, 240.0, a);
        if base < ro0 {
            let (x0, y0) = polar(cx, cy, base, a);
            let (x1, y1) = polar(cx, cy, 228.0, a);
            w!(
                o,
                r##"<line x1="{x0:.1}" y1="{y0:.1}" x2="{x1:.1}" y2="{y1:.1}" stroke="{colour}" stroke-width="1.2" stroke-dasharray="3 2"/>"##
            );
        }
        let width = label.chars().count() as f64 * 7.4;
        let (anchor, x) = if lx < cx - 20.0 {
            ("end", lx.max(8.0 + width))
        } else if lx > cx + 20.0 {
            ("start", lx.min(W - 8.0 - width))
        } else {
            ("middle", lx)
        };
        // A label pushed back inside the canvas moves off its marker.
        let dy = if (x - lx).abs() > 1.0 { dy - 20.0 } else { dy };
        let lx = x;
        w!(
            o,
            r##"<text x="{lx:.1}" y="{:.1}" text-anchor="{anchor}" font-size="12" font-weight="700" fill="{colour}">{label}</text>"##,
            ly + 4.0 + dy
        );
    };
    let same = (r.avail_idx & (num - 1)) / per == (r.used_idx & (num - 1)) / per;
    let below = |a: u16| {
        // Labels in the lower half stack downwards, in the upper half upwards.
        let ang = start + step * (f64::from((a & (num - 1)) / per) + 0.5);
        if ang.sin() > 0.0 {
            15.0
        } else {
            -15.0
        }
    };
    mark(
        o,
        r.avail_idx,
        ro1 + 2.0,
        ro1 + 16.0,
        "#1e3a8a",
        &format!("▲ avail.idx {}", r.avail_idx),
        0.0,
    );
    mark(
        o,
        r.used_idx,
        ri1 + 1.0,
        ri1 + 9.0,
        "#b45309",
        &format!("▼ used.idx {}", r.used_idx),
        if same { below(r.used_idx) } else { 0.0 },
    );
    if link.event_idx {
        mark(
            o,
            r.avail_event,
            ro1 + 2.0,
            ro1 + 16.0,
            "#7c3aed",
            &format!("avail_event {}", r.avail_event),
            2.0 * below(r.avail_event),
        );
        mark(
            o,
            r.used_event,
            ri1 + 1.0,
            ri1 + 9.0,
            "#7c3aed",
            &format!("used_event {}", r.used_event),
            3.0 * below(r.used_event),
        );
    }

    // Centre: who holds what.
    let dev = r.held_by(Owner::Device).len();
    let ret = r.held_by(Owner::Returned).len();
    let leaked = r.held_by(Owner::Leaked).len();
    let (big, small, c) = if !r.indices_possible() {
        ("?".to_owned(), "indices impossible".to_owned(), "#dc2626")
    } else {
        (
            dev.to_string(),
            format!(
                "{} with {}",
                if r.direction == Direction::ToDevice {
                    "messages"
                } else {
                    "empty buffers"
                },
                link.device_name
            ),
            "#2563eb",
        )
    };
    w!(
        o,
        r##"<text x="{cx}" y="{:.1}" text-anchor="middle" font-size="30" font-weight="700" fill="{c}">{}</text><text x="{cx}" y="{:.1}" text-anchor="middle" font-size="11" fill="{MUTED}">{}</text>"##,
        cy - 8.0,
        esc(&big),
        cy + 10.0,
        esc(&small)
    );
    let back = if r.direction == Direction::ToDriver {
        format!("{ret} for {}", link.driver_name)
    } else {
        format!("{ret} free again")
    };
    w!(
        o,
        r##"<text x="{cx}" y="{:.1}" text-anchor="middle" font-size="12" font-weight="600" fill="{}">{}</text>"##,
        cy + 30.0,
        colour(Owner::Returned, r.direction),
        esc(&back)
    );
    if leaked > 0 {
        w!(
            o,
            r##"<text x="{cx}" y="{:.1}" text-anchor="middle" font-size="12" font-weight="700" fill="#dc2626">{leaked} leaked</text>"##,
            cy + 46.0
        );
    }

    // Descriptor strip.
    let top = cy + 250.0;
    let cols = num.min(32);
    let size = ((440.0 / f64::from(cols)) - 2.0).min(24.0);
    let shown = num.min(256);
    let rows = shown.div_ceil(cols);
    let x0 = cx - (f64::from(cols) * (size + 2.0)) / 2.0;
    w!(
        o,
        r##"<text x="{x0:.1}" y="{:.1}" font-size="11" fill="{MUTED}">descriptors{}</text>"##,
        top - 6.0,
        if num > shown {
            format!(" (first {shown} of {num})")
        } else {
            String::new()
        }
    );
    for i in 0..shown {
        let (cxi, ryi) = (i % cols, i / cols);
        let x = x0 + f64::from(cxi) * (size + 2.0);
        let y = top + f64::from(ryi) * (size + 2.0);
        let ow = r
            .owners
            .get(usize::from(i))
            .copied()
            .unwrap_or(Owner::Driver);
        w!(
            o,
            r##"<rect x="{x:.1}" y="{y:.1}" width="{size:.1}" height="{size:.1}" rx="3" fill="{}"><title>descriptor {i}: {}</title></rect>"##,
            colour(ow, r.direction),
            ow.label(r.direction)
        );
        if size >= 16.0 {
            w!(
                o,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10" font-weight="600" fill="#ffffff">{i}</text>"##,
                x + size / 2.0,
                y + size / 2.0 + 3.5
            );
        }
    }
    top + f64::from(rows) * (size + 2.0)
}
