#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

/// `write!` into a `String` (which cannot fail), without a result to drop.
macro_rules! w {
    ($dst:expr, $($arg:tt)*) => {
        $dst.push_str(&format!($($arg)*))
    };
}

/// `writeln!` into a `String`.
macro_rules! wl {
    ($dst:expr, $($arg:tt)*) => {{
        $dst.push_str(&format!($($arg)*));
        $dst.push('\n');
    }};
}

pub mod cli;
pub mod decode;
pub mod diagnose;
pub mod error;
pub mod image;
pub mod json;
pub mod link;
pub mod live;
pub mod svg;
pub mod text;

pub use decode::{decode, Message, MessageState, Owner, Ring, Snapshot};
pub use diagnose::{diagnose, Diagnosis, Kind};
pub use error::InspectError;
pub use image::Image;
pub use link::{LayoutOptions, LinkLayout, Preset, RscSource};

/// One inspection: the layout, every sample decoded, and what is wrong.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The resolved layout (from the first sample).
    pub link: LinkLayout,
    /// The samples in time order, each with a label (its file name, or
    /// `sample N` in live mode).
    pub samples: Vec<(String, Snapshot)>,
    /// The findings; empty for a healthy link.
    pub diagnoses: Vec<Diagnosis>,
}

impl Inspection {
    /// The latest sample.
    pub fn now(&self) -> Option<&Snapshot> {
        self.samples.last().map(|(_, s)| s)
    }

    /// The first sample.
    pub fn first(&self) -> Option<&Snapshot> {
        self.samples.first().map(|(_, s)| s)
    }
}

/// Inspects one or more images of the same region taken in time order.
///
/// # Errors
///
/// [`InspectError`] when there is no image, the images differ in size, the
/// layout cannot be resolved, or an image does not hold the rings.
pub fn inspect(
    images: &[(String, Vec<u8>)],
    opts: &LayoutOptions,
) -> Result<Inspection, InspectError> {
    let Some((_, first)) = images.first() else {
        return Err(InspectError::Usage("no image given".into()));
    };
    let link = LinkLayout::resolve(opts, &Image::new(first))?;
    let mut samples = Vec::with_capacity(images.len());
    for (label, bytes) in images {
        if bytes.len() != first.len() {
            return Err(InspectError::SizeMismatch {
                first: first.len(),
                later: bytes.len(),
            });
        }
        samples.push((label.clone(), decode(&Image::new(bytes), &link)?));
    }
    let snaps: Vec<Snapshot> = samples.iter().map(|(_, s)| s.clone()).collect();
    let diagnoses = diagnose(&link, &snaps);
    Ok(Inspection {
        link,
        samples,
        diagnoses,
    })
}
