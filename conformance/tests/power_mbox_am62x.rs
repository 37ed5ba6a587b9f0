//! The power-domain suite for `mbox-am62x`: a split-ownership link whose
//! kicks (raw vring ids, sheet am62x-mailbox.md §4.1) are also the wake
//! interrupts. The K3 mailbox has no wake interrupt of its own (sheet §2);
//! the `NEWMSG` interrupt brings the core out of WFI, which is the strategy
//! this suite models (cache-and-wake.md §7.2 covers the suspend handshake,
//! out of scope here).

#[path = "fixtures/am62x.rs"]
mod fixture;
use fixture::KickPair;

mod power {
    conformance::power_suite!(super::KickPair);
}
