//! The power-domain suite for `mbox-octeon`: a split-ownership link whose
//! doorbell bits are also the wake interrupts (a mailbox write raises CIU
//! IP2 and wakes a core from `WAIT`, cache-and-wake.md §7.4 [inferred]).
//! OCTEON memory is coherent and never powered down in hardware; the
//! simulation still powers the regions down to check the protocol.

#[path = "fixtures/octeon.rs"]
mod fixture;
use fixture::Octeon;

mod power {
    conformance::power_suite!(super::Octeon);
}
