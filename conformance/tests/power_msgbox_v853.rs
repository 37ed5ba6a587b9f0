//! The power-domain suite for `msgbox-v853`: a split-ownership link whose
//! doorbells (channel 0, raw vring ids) are also the wake interrupts: the
//! msgbox read interrupt brings the core out of WFI. Allwinner's standby
//! flow (cache-and-wake.md §7.3) is out of scope.

#[path = "fixtures/v853.rs"]
mod fixture;
use fixture::V853Doorbells;

mod power {
    conformance::power_suite!(super::V853Doorbells);
}
