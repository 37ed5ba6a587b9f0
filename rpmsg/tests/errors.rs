//! `?` reaches `rpmsg::Error` from every layer the quick start calls
//! (memory, table, boot, ring, mailbox), and `kind()` sorts each one.
#![allow(clippy::unwrap_used, reason = "test code")]

use rpmsg::ipc_traits::mailbox::{Error as _, ErrorKind};
use rpmsg::ipc_traits::shm::ShmError;
use rpmsg::Error;

fn up<E>(e: E) -> Result<(), Error>
where
    Error: From<E>,
{
    Err(e)?
}

#[test]
fn question_mark_converts_every_layer() {
    let shm = ShmError::Unavailable;
    assert_eq!(up(shm), Err(Error::Memory(shm)));
    assert_eq!(
        up(rpmsg::vring::Error::Broken),
        Err(Error::Ring(rpmsg::vring::Error::Broken))
    );
    assert_eq!(
        up(rpmsg::soc::imx8::backend::Error::WouldBlock),
        Err(Error::Mailbox(ErrorKind::WouldBlock))
    );
    assert_eq!(
        up(rpmsg::soc::am62x::backend::Error::Full),
        Err(Error::Mailbox(ErrorKind::WouldBlock))
    );
}

#[test]
fn kinds_sort_the_errors() {
    assert_eq!(Error::WouldBlock.kind(), ErrorKind::WouldBlock);
    assert_eq!(
        Error::Ring(rpmsg::vring::Error::Broken).kind(),
        ErrorKind::Protocol
    );
    assert_eq!(Error::NotReady.kind(), ErrorKind::WouldBlock);
    assert_eq!(Error::EventIdxUnsupported.kind(), ErrorKind::Unsupported);
    assert_eq!(Error::NoRpmsgVdev.kind(), ErrorKind::Protocol);
    assert_eq!(Error::Mailbox(ErrorKind::Other).kind(), ErrorKind::Other);
    // Every variant prints something a log can show.
    let text = Error::EventIdxUnsupported.to_string();
    assert!(text.contains("EVENT_IDX"), "{text}");
}
