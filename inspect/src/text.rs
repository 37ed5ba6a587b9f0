//! The terminal report.

use crate::decode::{Message, MessageState, Owner, Ring, Snapshot};
use crate::diagnose::{status_names, Motion};
use crate::link::{short, Direction};
use crate::Inspection;

/// ANSI styling, or none.
#[derive(Debug, Clone, Copy)]
struct Style {
    on: bool,
}

impl Style {
    fn paint(self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
    fn bold(self, s: &str) -> String {
        self.paint("1", s)
    }
    fn dim(self, s: &str) -> String {
        self.paint("2", s)
    }
    fn red(self, s: &str) -> String {
        self.paint("1;31", s)
    }
    fn green(self, s: &str) -> String {
        self.paint("32", s)
    }
    fn yellow(self, s: &str) -> String {
        self.paint("33", s)
    }
    fn owner(self, o: Owner, dir: Direction, s: &str) -> String {
        let code = match (o, dir) {
            (Owner::Device, _) => "34",
            (Owner::Returned, Direction::ToDriver) => "33",
            (Owner::Returned, Direction::ToDevice) => "32",
            (Owner::Driver, _) => "37",
            (Owner::Leaked, _) => "1;31",
        };
        self.paint(code, s)
    }
}

/// Renders the report; `color` adds ANSI colours (only for a terminal).
pub fn render(ins: &Inspection, color: bool) -> String {
    let st = Style { on: color };
    let mut o = String::new();
    let Some(now) = ins.now() else {
        return o;
    };
    let link = &ins.link;
    let labels: Vec<&str> = ins.samples.iter().map(|(l, _)| l.as_str()).collect();
    wl!(
        o,
        "{} {}",
        st.bold("ring inspector:"),
        match labels.as_slice() {
            [one] => (*one).to_owned(),
            [a, b] => format!("{a} → {b}"),
            [a, .., b] => format!("{a} … {b} ({} samples)", labels.len()),
            [] => String::new(),
        }
    );
    wl!(
        o,
        "  layout {}, {} bytes at base {:#x}{}, buffers of {} bytes, {}-endian{}{}",
        link.preset.map_or("custom", |p| p.name()),
        now.len,
        link.base,
        if link.base_inferred {
            " (inferred)"
        } else {
            ""
        },
        link.buf_size,
        if link.big_endian { "big" } else { "little" },
        if link.event_idx { ", EVENT_IDX" } else { "" },
        if link.parked_tx {
            ", free transmit buffers parked in vring1's used ring"
        } else {
            ""
        },
    );
    let first = ins.first();
    for (i, r) in now.rings.iter().enumerate() {
        o.push('\n');
        ring(&mut o, st, ins, r, first.map(|f| &f.rings[i]));
    }

    let pending: Vec<&Message> = now.pending().collect();
    o.push('\n');
    if pending.is_empty() {
        wl!(o, "{} none", st.bold("messages waiting:"));
    } else {
        wl!(o, "{}", st.bold("messages waiting:"));
        for m in &pending {
            wl!(o, "  {}", message_line(ins, m));
        }
    }
    let ns: Vec<&Message> = now.messages.iter().filter(|m| m.ns.is_some()).collect();
    if !ns.is_empty() {
        wl!(o, "{}", st.bold("name service:"));
        for m in ns {
            if let Some(n) = &m.ns {
                wl!(
                    o,
                    "  {} \"{}\" at {} from {}  {}",
                    if n.create { "create" } else { "destroy" },
                    n.name,
                    n.addr,
                    m.header.src,
                    st.dim(&format!(
                        "(vring{} desc {}, {})",
                        m.ring,
                        m.desc,
                        if m.state == MessageState::Pending {
                            "pending"
                        } else {
                            "already read"
                        }
                    ))
                );
            }
        }
    }
    if let (Some(v), Some(t)) = (now.vdev, link.vdev.as_ref()) {
        wl!(
            o,
            "{} {}: status {:#04x} {}, features offered {:#x} acknowledged {:#x}{}",
            st.bold("vdev:"),
            t.table_offset
                .map_or("resource table (file)".to_owned(), |x| format!(
                    "resource table at {x:#x}"
                )),
            v.status,
            status_names(v.status),
            v.dfeatures,
            v.gfeatures,
            if v.gfeatures & 1 != 0 {
                " (name service)"
            } else {
                ""
            },
        );
        for (k, s) in t.info.vrings.iter().enumerate() {
            wl!(
                o,
                "  vring{k}: da {:#x} align {} num {} notifyid {}",
                s.da,
                s.align,
                s.num,
                s.notifyid
            );
        }
    }

    o.push('\n');
    if ins.diagnoses.is_empty() {
        wl!(
            o,
            "{} {}",
            st.bold("diagnosis:"),
            st.green("no stuck state found")
        );
        let waiting: usize = now.rings.iter().map(work_waiting).sum();
        if ins.samples.len() < 2 && waiting > 0 {
            wl!(
                o,
                "  {}",
                st.dim(&format!(
                    "{waiting} buffer(s) wait for a side; one image cannot tell a stall from a moment: compare with a later image (--then FILE) or sample live (--live)"
                ))
            );
        }
    } else {
        wl!(o, "{}", st.bold("diagnosis:"));
        for d in &ins.diagnoses {
            wl!(o, "  {} {}", st.red("✖"), d.sentence());
        }
    }
    o
}

/// Buffers holding work for a side: messages for the device on vring1,
/// messages for the driver on vring0.
fn work_waiting(r: &Ring) -> usize {
    match r.direction {
        Direction::ToDevice if r.indices_possible() => usize::from(r.outstanding),
        Direction::ToDriver => r.held_by(Owner::Returned).len(),
        Direction::ToDevice => 0,
    }
}

fn ring(o: &mut String, st: Style, ins: &Inspection, r: &Ring, first: Option<&Ring>) {
    let link = &ins.link;
    let l = &r.layout;
    let (from, to) = match r.direction {
        Direction::ToDriver => (short(link.device_name), short(link.driver_name)),
        Direction::ToDevice => (short(link.driver_name), short(link.device_name)),
    };
    wl!(
        o,
        "{}  {from} → {to}   num {} align {}   desc {:#x} avail {:#x} used {:#x}",
        st.bold(&format!("vring{}", r.index)),
        r.num(),
        link.align,
        l.desc_offset(),
        l.avail_offset(),
        l.used_offset()
    );
    let moved = |d: u16| -> String {
        if ins.samples.len() < 2 {
            String::new()
        } else if d == 0 {
            st.dim(" (still)")
        } else if d >= 0x8000 {
            st.red(&format!(" (−{})", d.wrapping_neg()))
        } else {
            st.green(&format!(" (+{d})"))
        }
    };
    let m = first.map(|f| Motion::between(f, r)).unwrap_or_default();
    wl!(
        o,
        "  avail  idx {:>5}{:<10} flags {:#06x}{:<16} used_event  {}",
        r.avail_idx,
        moved(m.avail),
        r.avail_flags,
        if r.avail_flags & 1 != 0 {
            " NO_INTERRUPT"
        } else {
            ""
        },
        r.used_event
    );
    wl!(
        o,
        "  used   idx {:>5}{:<10} flags {:#06x}{:<16} avail_event {}",
        r.used_idx,
        moved(m.used),
        r.used_flags,
        if r.used_flags & 1 != 0 {
            " NO_NOTIFY"
        } else {
            ""
        },
        r.avail_event
    );
    // Owner map: one character per descriptor.
    let mut map = String::new();
    for (i, ow) in r.owners.iter().enumerate() {
        if i > 0 && i % 64 == 0 {
            map.push_str("\n         ");
        }
        let c = match (ow, r.direction) {
            (Owner::Device, _) => "D",
            (Owner::Returned, Direction::ToDriver) => "M",
            (Owner::Returned, Direction::ToDevice) => "f",
            (Owner::Driver, _) => ".",
            (Owner::Leaked, _) => "X",
        };
        map.push_str(&st.owner(*ow, r.direction, c));
    }
    wl!(o, "  descs  {map}");
    let counts: Vec<String> = [Owner::Device, Owner::Returned, Owner::Driver, Owner::Leaked]
        .iter()
        .filter_map(|&ow| {
            let n = r.held_by(ow).len();
            (n > 0).then(|| st.owner(ow, r.direction, &format!("{n} {}", ow.label(r.direction))))
        })
        .collect();
    wl!(
        o,
        "         {}",
        if r.indices_possible() {
            counts.join(" · ")
        } else {
            st.red("indices impossible: ownership unknown")
        }
    );
    if let Some(f) = first {
        let changed: Vec<String> = r
            .owners
            .iter()
            .zip(&f.owners)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| format!("{i}: {} → {}", b.key(), a.key()))
            .collect();
        if !changed.is_empty() {
            let shown = changed
                .iter()
                .take(6)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            let more = if changed.len() > 6 {
                format!(" (+{} more)", changed.len() - 6)
            } else {
                String::new()
            };
            wl!(o, "  moved  {shown}{more}");
        }
    }
    for a in &r.anomalies {
        wl!(o, "  {} {a}", st.yellow("!"));
    }
}

fn message_line(ins: &Inspection, m: &Message) -> String {
    let link = &ins.link;
    let to = if m.ring == 1 {
        link.device_name
    } else {
        link.driver_name
    };
    let body = m.ns.as_ref().map_or_else(
        || format!("\"{}\"", printable(&m.payload)),
        |n| {
            format!(
                "name service: {} \"{}\" at {}",
                if n.create { "create" } else { "destroy" },
                n.name,
                n.addr
            )
        },
    );
    format!(
        "vring{} desc {:<3} for {to}: {} → {}, {} bytes: {body}{}",
        m.ring,
        m.desc,
        addr(m.header.src),
        addr(m.header.dst),
        m.header.len,
        if usize::from(m.header.len) > m.payload.len() {
            "…"
        } else {
            ""
        }
    )
}

/// An endpoint address: decimal below the dynamic range, hex from 1024 on.
pub fn addr(a: u32) -> String {
    if a >= rpmsg::wire::RESERVED_ADDRESSES {
        format!("{a:#x}")
    } else {
        a.to_string()
    }
}

/// Payload bytes as text, non-printable bytes as `\xNN`.
pub fn printable(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                (c as char).to_string()
            } else {
                format!("\\x{c:02x}")
            }
        })
        .collect()
}

/// Summary line per sample for `--then`/live: how each ring moved.
pub fn motion_summary(samples: &[(String, Snapshot)]) -> Vec<String> {
    samples
        .windows(2)
        .map(|w| {
            let (a, b) = (&w[0], &w[1]);
            let parts: Vec<String> = (0..2)
                .map(|i| {
                    let m = Motion::between(&a.1.rings[i], &b.1.rings[i]);
                    format!("vring{i} avail +{} used +{}", m.avail, m.used)
                })
                .collect();
            format!("{} → {}: {}", a.0, b.0, parts.join(", "))
        })
        .collect()
}
