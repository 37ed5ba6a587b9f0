//! The network device ([`rpmsg::net`]) on every backend's simulated
//! mailbox: smoltcp on both cores, pings and a TCP echo checked byte for
//! byte; and hostile frames through the device.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

use conformance::net::{
    bad_frames, net_exchange, replies_without_a_buffer_are_counted_then_recover,
    tx_frames_beyond_the_buffer_are_dropped, NetConfig,
};

#[path = "fixtures/am62x.rs"]
mod am62x;
#[path = "fixtures/mu_imx8.rs"]
mod mu_imx8;
#[path = "fixtures/octeon.rs"]
mod octeon;
#[path = "fixtures/v853.rs"]
mod v853;

/// Four pings and 64 KiB through the echo: enough to fill both rings and
/// the TCP windows many times over.
const SHORT: NetConfig = NetConfig {
    pings: 4,
    tcp_bytes: 64 * 1024,
    seed: 0x4E_E7,
};

#[test]
fn ping_and_tcp_echo_mu_imx8() {
    net_exchange::<mu_imx8::DoorbellMu>(&SHORT);
}

#[test]
fn ping_and_tcp_echo_mbox_am62x() {
    net_exchange::<am62x::KickPair>(&SHORT);
}

#[test]
fn ping_and_tcp_echo_msgbox_v853() {
    net_exchange::<v853::V853Doorbells>(&SHORT);
}

#[test]
fn ping_and_tcp_echo_mbox_octeon() {
    net_exchange::<octeon::Octeon>(&SHORT);
}

/// An empty message, a 13-byte one, one longer than the device's frame,
/// one for another local address, 200 random frames, a good frame and an
/// ARP request: the bad ones are counted and dropped (never truncated),
/// nothing panics, the good frame arrives byte for byte and the interface
/// still answers ARP.
#[test]
fn malformed_and_oversized_frames_are_dropped_and_counted() {
    let garbage = 200;
    let r = bad_frames(garbage, 7);
    let s = r.stats;
    assert_eq!(s.rx_runt, 2, "{s:?}");
    assert_eq!(s.rx_oversized, 1, "{s:?}");
    assert_eq!(s.rx_foreign, 1, "{s:?}");
    assert_eq!(s.rx_errors, 0, "{s:?}");
    // The garbage, the good frame and the ARP request reached smoltcp.
    assert_eq!(s.rx_frames, garbage + 2, "{s:?}");
    assert_eq!(
        r.sent,
        3 + garbage + 1,
        "messages to the device's address before ARP"
    );
    assert!(r.arp_answered, "no ARP reply after the garbage: {s:?}");
}

/// Back-pressure on replies: dropped and counted while the peer holds every
/// transmit buffer, flowing again once it reads; receiving never stops.
#[test]
fn replies_without_a_buffer_are_dropped_and_counted() {
    replies_without_a_buffer_are_counted_then_recover();
}

/// A transmit frame the buffer cannot hold is dropped and counted, never
/// truncated onto the wire.
#[test]
fn oversized_transmit_frames_are_dropped_and_counted() {
    tx_frames_beyond_the_buffer_are_dropped();
}
