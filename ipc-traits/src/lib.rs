#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), no_std)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// MIPS targets are tier 3 (nightly and `-Zbuild-std` only); inline asm on
// them is still feature-gated. `barrier` needs it for `sync`.
#![cfg_attr(
    any(target_arch = "mips", target_arch = "mips64"),
    feature(asm_experimental_arch)
)]

pub mod barrier;
pub mod buf;
pub mod bytes;
pub mod cache;
mod error;
pub mod mailbox;
pub mod power;
pub mod regs;
pub mod shm;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim_faults;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim_order;

pub use error::Error;

mod sealed {
    /// Seals the type-state marker traits: only this crate names new states.
    pub trait Sealed {}
}

/// Declares a contract module's error vocabulary: `ErrorKind`, the `Error`
/// trait, `ErrorType`, and the forwarding implementations (embedded-hal
/// style), so every contract spells its errors the same way.
macro_rules! error_vocabulary {
    (
        $(#[$kind_meta:meta])*
        kinds { $( $(#[$vm:meta])* $variant:ident => $text:literal, )+ }
    ) => {
        $(#[$kind_meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorKind {
            $( $(#[$vm])* $variant, )+
        }

        impl core::fmt::Display for ErrorKind {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(match self { $( Self::$variant => $text, )+ })
            }
        }

        /// A concrete error that maps onto an [`ErrorKind`].
        pub trait Error: core::fmt::Debug {
            /// The generic kind of this error.
            fn kind(&self) -> ErrorKind;
        }

        impl Error for ErrorKind {
            #[inline]
            fn kind(&self) -> ErrorKind {
                *self
            }
        }

        impl Error for core::convert::Infallible {
            #[inline]
            fn kind(&self) -> ErrorKind {
                match *self {}
            }
        }

        impl core::error::Error for ErrorKind {}

        /// Names the error type of an implementation.
        pub trait ErrorType {
            /// The concrete error.
            type Error: Error;
        }

        impl<T: ErrorType + ?Sized> ErrorType for &mut T {
            type Error = T::Error;
        }

        impl<T: ErrorType + ?Sized> ErrorType for &T {
            type Error = T::Error;
        }
    };
}
pub(crate) use error_vocabulary;
