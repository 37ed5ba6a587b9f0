//! Our `rpmsg` remote over the rings Linux set up: the configuration that
//! maps the vhost-user queues and Linux's buffer pools onto
//! [`rpmsg::rings::RemoteRings`].
//!
//! Queue 0 is vring0 (the remote transmits into Linux's receive buffers),
//! queue 1 is vring1 (Linux transmits); both virtio 1.x little-endian
//! ([`vring::Virtio1`]), at the three independent addresses Linux chose per
//! ring, with the notification suppression the driver accepted: flags,
//! or `EVENT_IDX` when [`crate::BackendConfig::with_event_idx`] offered it
//! and Linux kept it.
#![deny(unsafe_code)]

use rpmsg::rings::{QueueIds, RemoteConfig};
use vring::{BufferArea, Error, Layout, Suppression};

use crate::areas::RpmsgAreas;
use crate::backend::QueueConfig;
use crate::protocol::VIRTIO_RING_F_EVENT_IDX;

/// The suppression scheme for the virtio features the driver accepted
/// ([`crate::Ready::features`]).
pub const fn suppression(features: u64) -> Suppression {
    if features & VIRTIO_RING_F_EVENT_IDX != 0 {
        Suppression::EventIdx
    } else {
        Suppression::Flags
    }
}

/// The remote's ring configuration for `queues` (queue 0 and 1 from
/// [`crate::Ready::queues`]), the buffer areas from
/// [`crate::rpmsg_areas`] and the negotiated `features`
/// ([`crate::Ready::features`]).
///
/// # Errors
///
/// A queue is missing or its layout is invalid.
pub fn remote_config(
    queues: &[QueueConfig],
    areas: &RpmsgAreas,
    features: u64,
) -> Result<RemoteConfig, Error> {
    let layout = |q: Option<&QueueConfig>| {
        let q = q.ok_or(Error::BadNum)?;
        Layout::split(q.num, q.desc, q.avail, q.used)
    };
    Ok(RemoteConfig {
        vring0: layout(queues.first())?,
        vring1: layout(queues.get(1))?,
        vring0_buffers: BufferArea::new(areas.rx.0, areas.rx.1),
        vring1_buffers: BufferArea::new(areas.tx.0, areas.tx.1),
        suppression: suppression(features),
        queues: QueueIds::DEFAULT,
    })
}
