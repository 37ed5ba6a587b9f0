//! The mailbox conformance suite for `mbox-octeon` on its simulation.
//!
//! The OCTEON CIU mailbox is a doorbell (octeon-ciu-mbox.md §3: 32 bits per
//! core, write-1-to-set / write-1-to-clear, no payload), so only the
//! doorbell suite applies: there is no word FIFO to test, and no separate
//! peer-wake handshake (a mailbox write *is* the wake, cache-and-wake.md
//! §7.4), so no `WakeLink` either. The wake path is tested in the crate's
//! own tests (`the_doorbell_is_the_peer_wake`).
//!
//! Fixture: a CN7130 model (4 cores); side A is core 0, side B is core 2
//! (not adjacent, so a wrong CSR stride shows). Queue `i` is carried by bit
//! `BITS[i]` in both directions; the bits span both 16-bit halves of the
//! mailbox, which the CIU enables separately (§3.1).

#[path = "fixtures/octeon.rs"]
mod fixture;
use fixture::Octeon;

mod doorbell {
    conformance::doorbell_suite!(super::Octeon);
}

/// The end-to-end rpmsg link suite over this backend's doorbells.
mod link {
    conformance::link_suite!(super::Octeon);
}

/// The split-link suite (`rpmsg::duplex`) over this backend's doorbells.
mod duplex {
    conformance::duplex_suite!(super::Octeon);
}
