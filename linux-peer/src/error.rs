//! The transport's error: a protocol violation by the frontend, a failed
//! system call, a truncated message, or a bounded wait that ran out.
#![deny(unsafe_code)]

use std::fmt;
use std::io;

use crate::protocol::ProtocolError;

/// Why a vhost-user connection failed or a wait on it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The frontend sent a request the backend refuses.
    Protocol(ProtocolError),
    /// A system call failed.
    Io {
        /// What we were doing.
        op: &'static str,
        /// The error's kind.
        kind: io::ErrorKind,
        /// The OS error number, when there is one.
        errno: Option<i32>,
    },
    /// The connection closed in the middle of a message.
    Truncated {
        /// Bytes of the message received.
        got: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// The frontend stopped sending in the middle of a message.
    Stalled,
    /// A bounded wait ran out.
    Timeout {
        /// What we waited for.
        waiting_for: &'static str,
    },
    /// The connection closed (or was never made) before what we waited for
    /// happened.
    Closed,
    /// The server was stopped.
    Stopped,
}

impl Error {
    /// Wraps an I/O error with what we were doing.
    pub fn io(op: &'static str, e: &io::Error) -> Self {
        Self::Io {
            op,
            kind: e.kind(),
            errno: e.raw_os_error(),
        }
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Self::Protocol(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(e) => write!(f, "vhost-user protocol violation: {e}"),
            Self::Io { op, kind, errno } => match errno {
                Some(n) => write!(f, "{op}: {kind} (errno {n})"),
                None => write!(f, "{op}: {kind}"),
            },
            Self::Truncated { got, expected } => {
                write!(
                    f,
                    "connection closed mid-message ({got} of {expected} bytes)"
                )
            }
            Self::Stalled => f.write_str("frontend stalled mid-message"),
            Self::Timeout { waiting_for } => write!(f, "timed out waiting for {waiting_for}"),
            Self::Closed => f.write_str("vhost-user connection closed"),
            Self::Stopped => f.write_str("vhost-user server stopped"),
        }
    }
}

impl std::error::Error for Error {}
