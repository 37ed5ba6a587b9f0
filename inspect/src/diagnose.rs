//! The known stuck states, each found from the images and explained in one
//! sentence with its evidence and the likely fix.
//!
//! One image shows *state*; only two or more show whether anything *moves*.
//! So the rules are in two groups:
//!
//! - conclusive from one image: impossible indices or ring entries
//!   ([`Kind::IndexCorrupt`]), a descriptor in neither ring
//!   ([`Kind::BuffersLeaked`]), a vdev without `DRIVER_OK` whose rings the
//!   driver already uses ([`Kind::DriverOkNotSet`]) or marked failed
//!   ([`Kind::VdevFailed`]), an `EVENT_IDX` event more than a whole ring
//!   behind with work waiting ([`Kind::EventIdxNotRearmed`]);
//! - stalls, which need a later image (or live samples) in which the ring
//!   did not move while work waited: [`Kind::StartKickMissing`],
//!   [`Kind::NotificationsSuppressed`], [`Kind::EventIdxNotRearmed`],
//!   [`Kind::RingFullPeerIdle`], and [`Kind::Stalled`] when the memory
//!   shows no cause (a lost doorbell, a peer that stopped).
//!
//! A single image of a healthy link, however busy, produces no diagnosis:
//! work in flight is reported as a fact, with a hint to sample again.

use std::fmt;

use rpmsg::rsc_table::status;
use vring::notify::{AVAIL_F_NO_INTERRUPT, USED_F_NO_NOTIFY};

use crate::decode::{Owner, Ring, Snapshot};
use crate::link::LinkLayout;

/// A known stuck state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The driver published, the device never consumed, no used entry ever.
    StartKickMissing,
    /// Notifications are suppressed in a direction the other side relies on.
    NotificationsSuppressed,
    /// An `EVENT_IDX` event index was not re-armed (it lags behind).
    EventIdxNotRearmed,
    /// The vdev status lacks `DRIVER_OK`.
    DriverOkNotSet,
    /// The vdev status says `FAILED` or `NEEDS_RESET`.
    VdevFailed,
    /// An index jumped, went backwards, or is impossible (corruption or a
    /// stale cache line).
    IndexCorrupt,
    /// A descriptor is held by neither ring.
    BuffersLeaked,
    /// A ring is full (or drained) and the peer that should empty it is idle.
    RingFullPeerIdle,
    /// Work waits and nothing moves, with no cause visible in memory.
    Stalled,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 9] = [
        Self::DriverOkNotSet,
        Self::VdevFailed,
        Self::IndexCorrupt,
        Self::BuffersLeaked,
        Self::StartKickMissing,
        Self::NotificationsSuppressed,
        Self::EventIdxNotRearmed,
        Self::RingFullPeerIdle,
        Self::Stalled,
    ];

    /// A stable identifier (JSON, tests, `--check` output).
    pub const fn key(self) -> &'static str {
        match self {
            Self::StartKickMissing => "start-kick-missing",
            Self::NotificationsSuppressed => "notifications-suppressed",
            Self::EventIdxNotRearmed => "event-idx-not-rearmed",
            Self::DriverOkNotSet => "driver-ok-not-set",
            Self::VdevFailed => "vdev-failed",
            Self::IndexCorrupt => "index-corrupt",
            Self::BuffersLeaked => "buffers-leaked",
            Self::RingFullPeerIdle => "ring-full-peer-idle",
            Self::Stalled => "stalled",
        }
    }

    /// The human title.
    pub const fn title(self) -> &'static str {
        match self {
            Self::StartKickMissing => "start kick missing",
            Self::NotificationsSuppressed => "notifications suppressed",
            Self::EventIdxNotRearmed => "EVENT_IDX not re-armed",
            Self::DriverOkNotSet => "DRIVER_OK not set",
            Self::VdevFailed => "vdev failed",
            Self::IndexCorrupt => "impossible index",
            Self::BuffersLeaked => "buffers leaked",
            Self::RingFullPeerIdle => "ring full, peer idle",
            Self::Stalled => "stalled",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// Which stuck state.
    pub kind: Kind,
    /// The ring it concerns, if one.
    pub ring: Option<usize>,
    /// What the memory shows.
    pub evidence: String,
    /// What to change.
    pub fix: String,
}

impl Diagnosis {
    /// The one-sentence explanation: state, evidence, likely fix.
    pub fn sentence(&self) -> String {
        let ring = self.ring.map(|r| format!("vring{r}: ")).unwrap_or_default();
        format!(
            "{ring}{}: {}; likely fix: {}.",
            self.kind.title(),
            self.evidence,
            self.fix
        )
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sentence())
    }
}

/// How one ring moved between two samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Motion {
    /// `avail.idx` advance (wrapping).
    pub avail: u16,
    /// `used.idx` advance (wrapping).
    pub used: u16,
}

impl Motion {
    /// Between ring `a` (earlier) and `b` (later).
    pub fn between(a: &Ring, b: &Ring) -> Self {
        Self {
            avail: b.avail_idx.wrapping_sub(a.avail_idx),
            used: b.used_idx.wrapping_sub(a.used_idx),
        }
    }

    /// Whether neither index moved.
    pub const fn is_still(self) -> bool {
        self.avail == 0 && self.used == 0
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

fn list(ids: &[u16]) -> String {
    let mut s: Vec<String> = ids.iter().take(8).map(u16::to_string).collect();
    if ids.len() > 8 {
        s.push(format!("… ({} in all)", ids.len()));
    }
    s.join(", ")
}

/// Everything wrong with the link, from its samples in time order (the
/// last is the state to explain; one sample allows only the conclusive
/// rules).
pub fn diagnose(link: &LinkLayout, samples: &[Snapshot]) -> Vec<Diagnosis> {
    let Some(now) = samples.last() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let (drv, dev) = (link.driver_name, link.device_name);

    // --- the vdev -------------------------------------------------------
    let mut vdev_blocks = false;
    if let Some(v) = now.vdev {
        let used_rings = now.rings.iter().any(|r| r.avail_idx != 0);
        let never_moved = samples.len() > 1 && still(samples, 0) && still(samples, 1);
        if v.status & (status::FAILED | status::NEEDS_RESET) != 0 {
            vdev_blocks = true;
            out.push(Diagnosis {
                kind: Kind::VdevFailed,
                ring: None,
                evidence: format!(
                    "the vdev status is {:#04x} ({}), so neither side may use the rings",
                    v.status,
                    status_names(v.status)
                ),
                fix: format!(
                    "read the {drv} log for the probe error, then reset the vdev (status 0) and restart the remote"
                ),
            });
        } else if v.status & status::DRIVER_OK == 0 && (used_rings || never_moved) {
            vdev_blocks = true;
            let seen = if used_rings {
                format!(
                    "although {drv} already published buffers (vring0 avail.idx {}, vring1 avail.idx {})",
                    now.rings[0].avail_idx, now.rings[1].avail_idx
                )
            } else {
                "and nothing moved between the samples".to_owned()
            };
            out.push(Diagnosis {
                kind: Kind::DriverOkNotSet,
                ring: None,
                evidence: format!(
                    "the vdev status is {:#04x} ({}) without DRIVER_OK {seen}, and the {dev} does not touch the rings before DRIVER_OK",
                    v.status,
                    status_names(v.status)
                ),
                fix: format!(
                    "{drv} must finish probing the vdev (virtio_device_ready sets DRIVER_OK; look for a probe error), and a {dev} that polls a cached copy of the table must invalidate it before each read"
                ),
            });
        }
    }

    // --- structure: conclusive from one image ------------------------------
    for (i, r) in now.rings.iter().enumerate() {
        if !r.anomalies.is_empty() {
            let shown: Vec<&str> = r.anomalies.iter().take(3).map(String::as_str).collect();
            let more = r.anomalies.len().saturating_sub(3);
            out.push(Diagnosis {
                kind: Kind::IndexCorrupt,
                ring: Some(i),
                evidence: format!(
                    "{}{}",
                    shown.join("; "),
                    if more > 0 {
                        format!(" (and {more} more)")
                    } else {
                        String::new()
                    }
                ),
                fix: "re-initialise the link, and if it recurs check the cache maintenance of the ring (clean after writing, invalidate before reading, no index sharing a cache line with the other side's fields) and that nothing else writes the region".to_owned(),
            });
            continue;
        }
        let leaked = r.held_by(Owner::Leaked);
        if !leaked.is_empty() {
            let who = leak_culprit(r, &leaked, drv, dev);
            out.push(Diagnosis {
                kind: Kind::BuffersLeaked,
                ring: Some(i),
                evidence: format!(
                    "{} ({}) in neither the available nor the used ring: {} with {dev}, {} back with {drv}, out of {}; {who}",
                    plural(leaked.len(), "descriptor", "descriptors"),
                    list(&leaked),
                    r.outstanding,
                    r.held_by(Owner::Returned).len(),
                    r.num()
                ),
                fix: if i == 0 {
                    format!("{drv} must re-post every receive buffer it reaps (release held buffers), and {dev} must return every buffer it takes")
                } else {
                    format!("{dev} must return every buffer it takes, and {drv} must publish or give back every transmit buffer it allocates")
                },
            });
        }
    }
    if let Some(d) = event_far_behind(link, now) {
        out.push(d);
    }

    // --- motion between samples ------------------------------------------
    for w in samples.windows(2) {
        let [a, b] = w else { continue };
        for i in 0..2 {
            if let Some(d) = moved_wrongly(&a.rings[i], &b.rings[i]) {
                if !out
                    .iter()
                    .any(|o| o.kind == Kind::IndexCorrupt && o.ring == Some(i))
                {
                    out.push(d);
                }
            }
        }
    }

    // --- stalls: need time ------------------------------------------------
    if samples.len() < 2 || vdev_blocks {
        return out;
    }
    let broken = |i: usize| {
        out.iter().any(|o| {
            o.ring == Some(i) && matches!(o.kind, Kind::IndexCorrupt | Kind::EventIdxNotRearmed)
        })
    };
    let (b0, b1) = (broken(0), broken(1));
    let span = if samples.len() == 2 {
        "between the two images".to_owned()
    } else {
        format!("over {} samples", samples.len())
    };
    let [rx, tx] = &now.rings;
    let device_never_ran = rx.used_idx == rx.used_base
        && tx.used_idx == tx.used_base
        && still(samples, 0)
        && still(samples, 1);
    let mut stalls = Vec::new();
    if device_never_ran && !b0 && !b1 && (tx.outstanding > 0 || rx.avail_idx != 0) {
        let (ring, what) = if tx.outstanding > 0 {
            (
                1,
                format!(
                    "{drv} published {} on vring1",
                    plural(usize::from(tx.outstanding), "message", "messages")
                ),
            )
        } else {
            (
                0,
                format!("{drv} posted {} receive buffers on vring0", rx.outstanding),
            )
        };
        stalls.push(Diagnosis {
            kind: Kind::StartKickMissing,
            ring: Some(ring),
            evidence: format!(
                "{what} but {dev} never used a buffer on either ring (vring0 used.idx {}, vring1 used.idx {}: their initial values, not even a name-service announcement) and nothing moved {span}",
                rx.used_idx, tx.used_idx
            ),
            fix: format!(
                "kick each vring once after {dev} is known to listen (or repeat the start kick until the first used entry appears), and have {dev} check its rings once after enabling its interrupt instead of waiting for the first kick"
            ),
        });
    } else {
        if !b1 && still(samples, 1) && tx.outstanding > 0 {
            stalls.push(tx_stall(link, tx, &span));
        }
        let waiting = rx.held_by(Owner::Returned).len();
        if !b0 && still(samples, 0) && waiting > 0 {
            stalls.push(rx_stall(link, rx, waiting, &span));
        }
    }
    out.extend(stalls);
    out
}

/// Whether ring `i` kept both indices over all samples.
fn still(samples: &[Snapshot], i: usize) -> bool {
    samples
        .windows(2)
        .all(|w| Motion::between(&w[0].rings[i], &w[1].rings[i]).is_still())
}

/// How far `event` lags behind `idx` (0 when at or ahead of it).
fn lag(idx: u16, event: u16) -> u16 {
    let d = idx.wrapping_sub(event);
    if d < 0x8000 {
        d
    } else {
        0
    }
}

/// The device's consumption point on the transmit ring and how far its
/// `avail_event` lags behind it; the driver's reap point on the receive ring
/// and how far `used_event` lags behind it.
fn event_lags(now: &Snapshot) -> (u16, u16) {
    let [rx, tx] = &now.rings;
    let consumed = tx.avail_idx.wrapping_sub(tx.outstanding);
    let reaped = rx
        .used_idx
        .wrapping_sub(rx.num().wrapping_sub(rx.outstanding));
    (lag(consumed, tx.avail_event), lag(reaped, rx.used_event))
}

fn event_far_behind(link: &LinkLayout, now: &Snapshot) -> Option<Diagnosis> {
    if !link.event_idx || now.rings.iter().any(|r| !r.anomalies.is_empty()) {
        return None;
    }
    let [rx, tx] = &now.rings;
    let (dev_lag, drv_lag) = event_lags(now);
    if dev_lag >= tx.num() && tx.outstanding > 0 {
        return Some(event_diag(link, 1, tx, dev_lag, "far behind"));
    }
    let waiting = rx.held_by(Owner::Returned).len();
    if rx.all_in_rings && drv_lag >= rx.num() && waiting > 0 {
        return Some(event_diag(link, 0, rx, drv_lag, "far behind"));
    }
    None
}

fn event_diag(link: &LinkLayout, i: usize, r: &Ring, lag: u16, how: &str) -> Diagnosis {
    let (drv, dev) = (link.driver_name, link.device_name);
    if i == 1 {
        Diagnosis {
            kind: Kind::EventIdxNotRearmed,
            ring: Some(1),
            evidence: format!(
                "{dev}'s avail_event is {} ({how}: {lag} entries behind the {} it has consumed), so {drv}'s later publications (avail.idx {}) never crossed it and never kicked, while {} wait",
                r.avail_event,
                r.avail_idx.wrapping_sub(r.outstanding),
                r.avail_idx,
                plural(usize::from(r.outstanding), "message", "messages")
            ),
            fix: format!(
                "{dev} must write avail_event = its next available index, fence, and re-check avail.idx every time it goes idle (virtio 1.x §2.7.10)"
            ),
        }
    } else {
        let reaped = r.used_idx.wrapping_sub(r.num().wrapping_sub(r.outstanding));
        Diagnosis {
            kind: Kind::EventIdxNotRearmed,
            ring: Some(0),
            evidence: format!(
                "{drv}'s used_event is {} ({how}: {lag} entries behind the {reaped} it has reaped), so {dev}'s completions (used.idx {}) never crossed it and never interrupted, while {} wait",
                r.used_event,
                r.used_idx,
                plural(r.held_by(Owner::Returned).len(), "message", "messages")
            ),
            fix: format!(
                "{drv} must write used_event = its next used index, fence, and re-check used.idx whenever it finds the used ring empty"
            ),
        }
    }
}

/// A stall of the transmit ring: messages wait for the device.
fn tx_stall(link: &LinkLayout, r: &Ring, span: &str) -> Diagnosis {
    let (drv, dev) = (link.driver_name, link.device_name);
    let msgs = plural(usize::from(r.outstanding), "message", "messages");
    if r.used_idx == r.used_base {
        return Diagnosis {
            kind: Kind::StartKickMissing,
            ring: Some(1),
            evidence: format!(
                "{drv} published {msgs} on vring1 (avail.idx {}) but {dev} never consumed one there (used.idx {} is its initial value) and nothing moved {span}",
                r.avail_idx, r.used_idx
            ),
            fix: format!(
                "make sure the first kick on vring1 reaches {dev} (its notify id, the mailbox channel) and that {dev} services vring1 once after it starts, not only on a kick"
            ),
        };
    }
    if link.event_idx {
        let consumed = r.avail_idx.wrapping_sub(r.outstanding);
        let l = lag(consumed, r.avail_event);
        if l > 0 {
            return event_diag(link, 1, r, l, "not re-armed");
        }
    } else if r.used_flags & USED_F_NO_NOTIFY != 0 {
        return Diagnosis {
            kind: Kind::NotificationsSuppressed,
            ring: Some(1),
            evidence: format!(
                "{dev} set VRING_USED_F_NO_NOTIFY (used.flags {:#x}), so {drv} does not kick it, yet {dev} is not polling: {msgs} wait (avail.idx {}, used.idx {}) and nothing moved {span}",
                r.used_flags, r.avail_idx, r.used_idx
            ),
            fix: format!(
                "{dev} must clear NO_NOTIFY and re-check avail.idx before it stops polling (enable, fence, re-check)"
            ),
        };
    }
    if r.outstanding == r.num() {
        return Diagnosis {
            kind: Kind::RingFullPeerIdle,
            ring: Some(1),
            evidence: format!(
                "all {} buffers of vring1 hold messages for {dev} (avail.idx {}, used.idx {}), so {drv} cannot send, and {dev} consumed nothing {span}",
                r.num(),
                r.avail_idx,
                r.used_idx
            ),
            fix: format!(
                "find why {dev} stopped servicing vring1 (hung task, masked mailbox interrupt, lost doorbell); give it a periodic ring poll so one lost kick cannot wedge the link"
            ),
        };
    }
    Diagnosis {
        kind: Kind::Stalled,
        ring: Some(1),
        evidence: format!(
            "{msgs} wait for {dev} (avail.idx {}, used.idx {}), notifications are not suppressed, and nothing moved {span}",
            r.avail_idx, r.used_idx
        ),
        fix: format!(
            "the kick was lost or {dev} is not running: check the mailbox (pending bit, interrupt mask) and that {dev}'s interrupt handler reads vring1; a periodic ring poll recovers lost kicks"
        ),
    }
}

/// A stall of the receive ring: messages wait for the driver.
fn rx_stall(link: &LinkLayout, r: &Ring, waiting: usize, span: &str) -> Diagnosis {
    let (drv, dev) = (link.driver_name, link.device_name);
    let msgs = plural(waiting, "message", "messages");
    if link.event_idx {
        let reaped = r.used_idx.wrapping_sub(r.num().wrapping_sub(r.outstanding));
        let l = lag(reaped, r.used_event);
        if l > 0 && r.all_in_rings {
            return event_diag(link, 0, r, l, "not re-armed");
        }
    } else if r.avail_flags & AVAIL_F_NO_INTERRUPT != 0 && link.device_honors_no_interrupt {
        return Diagnosis {
            kind: Kind::NotificationsSuppressed,
            ring: Some(0),
            evidence: format!(
                "{drv} set VRING_AVAIL_F_NO_INTERRUPT (avail.flags {:#x}), which {dev} honours, yet {drv} is not polling: {msgs} wait (used.idx {}) and nothing moved {span}",
                r.avail_flags, r.used_idx
            ),
            fix: format!(
                "{drv} must clear NO_INTERRUPT and re-check used.idx before it sleeps (virtqueue_enable_cb, then poll once)"
            ),
        };
    }
    if r.outstanding == 0 {
        return Diagnosis {
            kind: Kind::RingFullPeerIdle,
            ring: Some(0),
            evidence: format!(
                "all {} buffers of vring0 hold messages for {drv} (avail.idx {}, used.idx {}), so {dev} has no buffer left to send in, and {drv} read nothing {span}",
                r.num(),
                r.avail_idx,
                r.used_idx
            ),
            fix: format!(
                "find why {drv} stopped reading vring0 (blocked reader, masked interrupt); it must release or re-post buffers it holds"
            ),
        };
    }
    Diagnosis {
        kind: Kind::Stalled,
        ring: Some(0),
        evidence: format!(
            "{msgs} wait for {drv} (used.idx {}, {} empty buffers with {dev}) and nothing moved {span}",
            r.used_idx, r.outstanding
        ),
        fix: format!(
            "the interrupt was lost or {drv} is not reading: check the mailbox and {drv}'s receive path; a periodic ring poll recovers lost interrupts"
        ),
    }
}

/// An index that went backwards, or ring entries written past an index that
/// did not move (a stale cache line hiding the newer index).
fn moved_wrongly(a: &Ring, b: &Ring) -> Option<Diagnosis> {
    let m = Motion::between(a, b);
    let back = |d: u16| d >= 0x8000;
    let fix = "make sure the side that writes this index cleans its cache line after every write and the reader invalidates before every read, and that no cache line holds fields of both sides".to_owned();
    if back(m.avail) || back(m.used) {
        let (name, from, to) = if back(m.avail) {
            ("avail.idx", a.avail_idx, b.avail_idx)
        } else {
            ("used.idx", a.used_idx, b.used_idx)
        };
        return Some(Diagnosis {
            kind: Kind::IndexCorrupt,
            ring: Some(b.index),
            evidence: format!(
                "{name} went backwards from {from} to {to} between samples, which no writer does: an older cache line was written back over the newer index (or the ring was re-initialised)"
            ),
            fix,
        });
    }
    let (pa, pu) = (b.pos(b.avail_idx), b.pos(b.used_idx));
    if m.used == 0 && a.used_ring.get(pu) != b.used_ring.get(pu) {
        return Some(Diagnosis {
            kind: Kind::IndexCorrupt,
            ring: Some(b.index),
            evidence: format!(
                "used.ring[{pu}] changed between samples but used.idx stayed at {}: the entry was written and the index update is not visible (a stale cache line, or a missing write-back of used.idx)",
                b.used_idx
            ),
            fix,
        });
    }
    if m.avail == 0 && a.avail_ring.get(pa) != b.avail_ring.get(pa) {
        return Some(Diagnosis {
            kind: Kind::IndexCorrupt,
            ring: Some(b.index),
            evidence: format!(
                "avail.ring[{pa}] changed between samples but avail.idx stayed at {}: the entry was written and the index update is not visible (a stale cache line, or a missing write-back of avail.idx)",
                b.avail_idx
            ),
            fix,
        });
    }
    None
}

/// Who last had the leaked descriptors, from the stale ring entries.
fn leak_culprit(r: &Ring, leaked: &[u16], drv: &str, dev: &str) -> String {
    let in_used = leaked.iter().any(|&id| {
        r.used_ring
            .iter()
            .any(|e| e.id == u32::from(id) && e.len != 0)
    });
    if in_used {
        format!("a stale used entry shows {dev} returned them, so {drv} reaped them and never gave them back")
    } else {
        format!("no used entry names them, so {dev} took them and never returned them")
    }
}

/// The names of the virtio status bits set in `s`.
pub fn status_names(s: u8) -> String {
    let names = [
        (status::ACKNOWLEDGE, "ACKNOWLEDGE"),
        (status::DRIVER, "DRIVER"),
        (status::DRIVER_OK, "DRIVER_OK"),
        (status::FEATURES_OK, "FEATURES_OK"),
        (status::NEEDS_RESET, "NEEDS_RESET"),
        (status::FAILED, "FAILED"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(b, _)| s & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if set.is_empty() {
        "reset".to_owned()
    } else {
        set.join("|")
    }
}
