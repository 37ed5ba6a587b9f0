//! A side that polls asks the peer not to ring (`set_peer_notifications`):
//! the peer's doorbells stop, nothing is lost, and resuming re-checks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

mod common;

use common::{master_rings, region, remote_rings, Backing, Master, Quiet, Remote, SIZE};
use rpmsg::link::{Link, RxMode};
use rpmsg::session::SessionWord;

fn pair(shm: &common::M) -> (Master<'_>, Remote<'_>) {
    SessionWord::at(common::REMOTE_WORD).begin(shm, 3).unwrap();
    let (_, rings) = master_rings(shm, 1);
    let master: Master<'_> = Link::new(rings, Quiet);
    let (_, rings) = remote_rings(shm);
    let remote: Remote<'_> = Link::new(rings, Quiet);
    (master, remote)
}

/// Sends `n` messages from `from`'s endpoint to `to`'s and lets `to` take
/// each one (copying), checking order and content.
/// (`Sender`/`Receiver` let one helper serve both roles.)
fn exchange<A, B>(n: u32, from: (&A, &rpmsg::link::Endpoint), to: (&B, &rpmsg::link::Endpoint))
where
    A: Sender,
    B: Receiver,
{
    for k in 0..n {
        from.0.send(from.1, to.1.addr(), &k.to_le_bytes());
        let mut buf = [0u8; 8];
        let len = to.0.recv(to.1, &mut buf);
        assert_eq!(&buf[..len], &k.to_le_bytes(), "message {k}");
    }
}

trait Sender {
    fn send(&self, ep: &rpmsg::link::Endpoint, dst: u32, data: &[u8]);
}
trait Receiver {
    fn recv(&self, ep: &rpmsg::link::Endpoint, buf: &mut [u8]) -> usize;
}
impl Sender for Master<'_> {
    fn send(&self, ep: &rpmsg::link::Endpoint, dst: u32, data: &[u8]) {
        self.try_send(ep, dst, data).unwrap();
    }
}
impl Sender for Remote<'_> {
    fn send(&self, ep: &rpmsg::link::Endpoint, dst: u32, data: &[u8]) {
        self.try_send(ep, dst, data).unwrap();
    }
}
impl Receiver for Master<'_> {
    fn recv(&self, ep: &rpmsg::link::Endpoint, buf: &mut [u8]) -> usize {
        self.try_recv(ep, buf).unwrap().len
    }
}
impl Receiver for Remote<'_> {
    fn recv(&self, ep: &rpmsg::link::Endpoint, buf: &mut [u8]) -> usize {
        self.try_recv(ep, buf).unwrap().len
    }
}

#[test]
fn a_polling_master_silences_the_remote_without_losing_messages() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    let (master, remote) = pair(&shm);
    let mep = master.create_endpoint(1024, RxMode::Queue).unwrap();
    let rep = remote.create_endpoint(40, RxMode::Queue).unwrap();

    // Both ways with doorbells: the remote rings for what it sends.
    exchange(20, (&remote, &rep), (&master, &mep));
    let rung = remote.stats().notifications_sent;
    assert!(rung >= 20, "{rung}");

    // The master polls: the remote stops ringing, everything arrives.
    assert_eq!(master.set_peer_notifications(false), Ok(false));
    exchange(50, (&remote, &rep), (&master, &mep));
    assert_eq!(
        remote.stats().notifications_sent,
        rung,
        "no doorbell while polled"
    );
    assert!(remote.ring_stats().0.notifications_suppressed >= 50);

    // A message sent while silenced, then resuming: the re-check finds it.
    remote.try_send(&rep, 1024, b"late").unwrap();
    assert_eq!(master.set_peer_notifications(true), Ok(true));
    let mut buf = [0u8; 8];
    let r = master.try_recv(&mep, &mut buf).unwrap();
    assert_eq!(&buf[..r.len], b"late");
    exchange(5, (&remote, &rep), (&master, &mep));
    assert!(remote.stats().notifications_sent > rung, "ringing again");
}

#[test]
fn a_polling_remote_silences_the_master() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    let (master, remote) = pair(&shm);
    let mep = master.create_endpoint(1024, RxMode::Queue).unwrap();
    let rep = remote.create_endpoint(40, RxMode::Queue).unwrap();
    exchange(10, (&master, &mep), (&remote, &rep));
    let rung = master.stats().notifications_sent;
    assert!(rung >= 10);
    assert_eq!(remote.set_peer_notifications(false), Ok(false));
    exchange(50, (&master, &mep), (&remote, &rep));
    assert_eq!(master.stats().notifications_sent, rung);
    assert_eq!(
        remote.set_peer_notifications(true),
        Ok(false),
        "nothing pending"
    );
    exchange(5, (&master, &mep), (&remote, &rep));
    assert!(master.stats().notifications_sent > rung);
}
