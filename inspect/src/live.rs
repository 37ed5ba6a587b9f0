//! Read-only live sampling of physical memory (Linux `/dev/mem`).
//!
//! The device is opened read-only and read with `pread` at the physical
//! address: the tool never maps it writable and never writes. Any path
//! works as the "mem" device, so tests sample a regular file.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use crate::error::InspectError;

/// What to sample.
#[derive(Debug, Clone)]
pub struct LiveSpec {
    /// The memory device (normally `/dev/mem`).
    pub device: String,
    /// Physical address of the region's first byte.
    pub phys: u64,
    /// Bytes to read.
    pub len: usize,
    /// How many samples.
    pub samples: usize,
    /// Pause between samples.
    pub interval: Duration,
}

/// The largest region read in one sample (256 MiB).
pub const MAX_LEN: usize = 256 << 20;

/// Reads `spec.samples` images of the region, `spec.interval` apart.
///
/// # Errors
///
/// [`InspectError::Usage`] for a zero or oversized length or sample count,
/// [`InspectError::Io`] when the device cannot be opened or read (with the
/// usual reasons for `/dev/mem`: root, `CONFIG_STRICT_DEVMEM`, `iomem=relaxed`).
pub fn sample(spec: &LiveSpec) -> Result<Vec<(String, Vec<u8>)>, InspectError> {
    if spec.len == 0 || spec.len > MAX_LEN {
        return Err(InspectError::Usage(format!(
            "--len must be between 1 and {MAX_LEN} bytes"
        )));
    }
    if spec.samples == 0 || spec.samples > 10_000 {
        return Err(InspectError::Usage(
            "--samples must be between 1 and 10000".into(),
        ));
    }
    let f = File::open(&spec.device).map_err(|e| {
        InspectError::Io(format!(
            "cannot open {} read-only: {e}{}",
            spec.device,
            if spec.device == "/dev/mem" {
                " (needs root; a kernel with CONFIG_STRICT_DEVMEM only allows non-RAM regions unless booted with iomem=relaxed)"
            } else {
                ""
            }
        ))
    })?;
    let mut out = Vec::with_capacity(spec.samples);
    for k in 0..spec.samples {
        if k > 0 {
            std::thread::sleep(spec.interval);
        }
        let mut buf = vec![0u8; spec.len];
        f.read_exact_at(&mut buf, spec.phys).map_err(|e| {
            InspectError::Io(format!(
                "cannot read {:#x} bytes at {:#x} from {}: {e}",
                spec.len, spec.phys, spec.device
            ))
        })?;
        out.push((format!("sample {}", k + 1), buf));
    }
    Ok(out)
}
