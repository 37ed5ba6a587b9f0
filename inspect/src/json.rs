//! `--json`: the whole inspection for scripts.
//!
//! Top level: `layout`, `samples[]` (each: `label`, `rings[]`, `messages[]`,
//! `vdev`), `diagnoses[]` (each: `kind`, `ring`, `sentence`, `evidence`,
//! `fix`) and `healthy` (no diagnosis).

use serde_json::{json, Value};

use crate::decode::{Message, MessageState, Ring, Snapshot};
use crate::link::Direction;
use crate::Inspection;

/// The inspection as a JSON value.
pub fn to_json(ins: &Inspection) -> Value {
    let link = &ins.link;
    json!({
        "layout": {
            "preset": link.preset.map(|p| p.name()),
            "base": link.base,
            "base_inferred": link.base_inferred,
            "align": link.align,
            "buf_size": link.buf_size,
            "parked_tx": link.parked_tx,
            "event_idx": link.event_idx,
            "device_honors_no_interrupt": link.device_honors_no_interrupt,
            "big_endian": link.big_endian,
            "driver": link.driver_name,
            "device": link.device_name,
            "resource_table": link.vdev.map(|t| json!({
                "offset": t.table_offset,
                "vdev_offset": t.info.offset,
                "vrings": t.info.vrings.iter().map(|v| json!({
                    "da": v.da, "align": v.align, "num": v.num, "notifyid": v.notifyid
                })).collect::<Vec<_>>(),
            })),
        },
        "samples": ins.samples.iter().map(|(l, s)| sample(l, s)).collect::<Vec<_>>(),
        "diagnoses": ins.diagnoses.iter().map(|d| json!({
            "kind": d.kind.key(),
            "ring": d.ring,
            "sentence": d.sentence(),
            "evidence": d.evidence,
            "fix": d.fix,
        })).collect::<Vec<_>>(),
        "healthy": ins.diagnoses.is_empty(),
    })
}

fn sample(label: &str, s: &Snapshot) -> Value {
    json!({
        "label": label,
        "len": s.len,
        "rings": s.rings.iter().map(ring).collect::<Vec<_>>(),
        "messages": s.messages.iter().map(message).collect::<Vec<_>>(),
        "vdev": s.vdev.map(|v| json!({
            "status": v.status,
            "status_names": crate::diagnose::status_names(v.status),
            "dfeatures": v.dfeatures,
            "gfeatures": v.gfeatures,
        })),
    })
}

fn ring(r: &Ring) -> Value {
    let l = &r.layout;
    json!({
        "index": r.index,
        "direction": match r.direction {
            Direction::ToDriver => "device-to-driver",
            Direction::ToDevice => "driver-to-device",
        },
        "num": r.num(),
        "desc_offset": l.desc_offset(),
        "avail_offset": l.avail_offset(),
        "used_offset": l.used_offset(),
        "avail": {
            "flags": r.avail_flags,
            "idx": r.avail_idx,
            "ring": r.avail_ring,
            "used_event": r.used_event,
        },
        "used": {
            "flags": r.used_flags,
            "idx": r.used_idx,
            "ring": r.used_ring.iter().map(|e| json!({"id": e.id, "len": e.len})).collect::<Vec<_>>(),
            "avail_event": r.avail_event,
        },
        "used_base": r.used_base,
        "outstanding": r.outstanding,
        "indices_possible": r.indices_possible(),
        "desc": r.desc.iter().zip(&r.owners).enumerate().map(|(i, (d, o))| json!({
            "i": i,
            "addr": d.addr,
            "len": d.len,
            "flags": d.flags,
            "next": d.next,
            "owner": o.key(),
            "owner_label": o.label(r.direction),
        })).collect::<Vec<_>>(),
        "anomalies": r.anomalies,
    })
}

fn message(m: &Message) -> Value {
    json!({
        "ring": m.ring,
        "desc": m.desc,
        "offset": m.offset,
        "src": m.header.src,
        "dst": m.header.dst,
        "len": m.header.len,
        "flags": m.header.flags,
        "state": match m.state {
            MessageState::Pending => "pending",
            MessageState::Stale => "stale",
        },
        "payload_hex": m.payload.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "payload_text": crate::text::printable(&m.payload),
        "ns": m.ns.as_ref().map(|n| json!({
            "name": n.name, "addr": n.addr, "create": n.create
        })),
    })
}
