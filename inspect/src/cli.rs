//! The command line.

use std::io::Write;
use std::time::Duration;

use crate::error::InspectError;
use crate::link::{LayoutOptions, Preset, RscSource};
use crate::live::{self, LiveSpec};
use crate::{inspect, json, svg, text};

/// The help text.
pub const USAGE: &str = "\
inspect: show why an RPMsg/virtio link is stuck, from images of its shared memory

usage:
  inspect [LAYOUT] [OUTPUT] IMAGE [--then LATER]...
  inspect [LAYOUT] [OUTPUT] --live /dev/mem --phys ADDR --len BYTES [--samples N] [--interval-ms MS]

layout (numbers in decimal or 0x hex):
  --preset NAME             rpmsg-lite-mcu | rpmsg-lite-linux | linux-remoteproc
  --num N --align A         queue size and ring alignment of both vrings
  --vring0 OFF --vring1 OFF image offsets of the rings (default: 0, and right behind vring0)
  --buffers OFF             image offset of the buffer pool (to infer --base)
  --buf-size N              RPMsg buffer size, header included (default 512)
  --base ADDR               address of the image's first byte as descriptors see it
                            (default: inferred from descriptors; --phys in live mode)
  --rsc-table auto|OFF      take the rings from a resource table in the image
  --rsc-table-file FILE     ... or from a table in a separate file
  --parked-tx, --no-parked-tx          free transmit buffers parked in vring1's used ring (rpmsg-lite master)
  --event-idx, --no-event-idx          VIRTIO_RING_F_EVENT_IDX negotiated
  --device-honors-no-interrupt, --device-ignores-no-interrupt
  --big-endian              legacy rings between big-endian cores

input:
  --then FILE               a later image of the same region (repeatable): shows what moved,
                            and lets stalls be told from moments
  --live DEV                sample DEV (read-only) at --phys for --len bytes, --samples times
                            (default 2), --interval-ms apart (default 500)

output:
  --json                    the whole inspection as JSON
  --svg FILE                draw both rings (slots coloured by owner, indices marked)
  --color auto|always|never colours on a terminal only by default (NO_COLOR is honoured)
  --check                   exit 1 when a stuck state is found

exit status: 0 inspected, 1 stuck state found with --check, 2 error
";

/// Parsed command line.
#[derive(Debug, Default)]
struct Args {
    layout: LayoutOptions,
    images: Vec<String>,
    live: Option<LiveSpec>,
    live_phys: Option<u64>,
    live_len: Option<usize>,
    live_samples: Option<usize>,
    live_interval: Option<u64>,
    json: bool,
    svg: Option<String>,
    color: Option<bool>,
    check: bool,
    help: bool,
}

/// Parses `0x` hex or decimal.
fn number(opt: &str, v: &str) -> Result<u64, InspectError> {
    let v = v.replace('_', "");
    let r = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse(),
    };
    r.map_err(|_| InspectError::Usage(format!("{opt}: '{v}' is not a number")))
}

fn small<T: TryFrom<u64>>(opt: &str, v: &str) -> Result<T, InspectError> {
    T::try_from(number(opt, v)?)
        .map_err(|_| InspectError::Usage(format!("{opt}: {v} is too large")))
}

fn parse(argv: &[String]) -> Result<Args, InspectError> {
    let mut a = Args::default();
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| InspectError::Usage(format!("{name} needs a value")))
        };
        let l = &mut a.layout;
        match arg.as_str() {
            "-h" | "--help" => a.help = true,
            "--preset" => {
                let v = val(arg)?;
                l.preset = Some(Preset::from_name(&v).ok_or_else(|| {
                    InspectError::Usage(format!(
                        "unknown preset '{v}' (one of: {})",
                        Preset::ALL.map(|p| p.name()).join(", ")
                    ))
                })?);
            }
            "--num" => l.num = Some(small(arg, &val(arg)?)?),
            "--align" => l.align = Some(small(arg, &val(arg)?)?),
            "--vring0" => l.vring0 = Some(small(arg, &val(arg)?)?),
            "--vring1" => l.vring1 = Some(small(arg, &val(arg)?)?),
            "--buffers" => l.buffers = Some(small(arg, &val(arg)?)?),
            "--buf-size" => l.buf_size = Some(small(arg, &val(arg)?)?),
            "--base" => l.base = Some(number(arg, &val(arg)?)?),
            "--rsc-table" => {
                let v = val(arg)?;
                l.rsc_table = if v == "auto" {
                    RscSource::Auto
                } else {
                    RscSource::At(small(arg, &v)?)
                };
            }
            "--rsc-table-file" => {
                let f = val(arg)?;
                l.rsc_table = RscSource::Bytes(read(&f)?);
            }
            "--parked-tx" => l.parked_tx = Some(true),
            "--no-parked-tx" => l.parked_tx = Some(false),
            "--event-idx" => l.event_idx = Some(true),
            "--no-event-idx" => l.event_idx = Some(false),
            "--device-honors-no-interrupt" => l.device_honors_no_interrupt = Some(true),
            "--device-ignores-no-interrupt" => l.device_honors_no_interrupt = Some(false),
            "--big-endian" => l.big_endian = true,
            "--then" => a.images.push(val(arg)?),
            "--live" => {
                a.live = Some(LiveSpec {
                    device: val(arg)?,
                    phys: 0,
                    len: 0,
                    samples: 2,
                    interval: Duration::from_millis(500),
                });
            }
            "--phys" => a.live_phys = Some(number(arg, &val(arg)?)?),
            "--len" => a.live_len = Some(small(arg, &val(arg)?)?),
            "--samples" => a.live_samples = Some(small(arg, &val(arg)?)?),
            "--interval-ms" => a.live_interval = Some(number(arg, &val(arg)?)?),
            "--json" => a.json = true,
            "--svg" => a.svg = Some(val(arg)?),
            "--color" | "--colour" => {
                a.color = match val(arg)?.as_str() {
                    "auto" => None,
                    "always" => Some(true),
                    "never" => Some(false),
                    v => {
                        return Err(InspectError::Usage(format!(
                            "--color {v}: auto, always or never"
                        )))
                    }
                }
            }
            "--check" => a.check = true,
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(InspectError::Usage(format!(
                    "unknown option {s} (see --help)"
                )));
            }
            _ => {
                if !a.images.is_empty() {
                    return Err(InspectError::Usage(format!(
                        "a second image '{arg}': give later images with --then"
                    )));
                }
                a.images.push(arg.clone());
            }
        }
    }
    if let Some(spec) = a.live.as_mut() {
        if !a.images.is_empty() {
            return Err(InspectError::Usage("--live takes no image files".into()));
        }
        spec.phys = a
            .live_phys
            .ok_or_else(|| InspectError::Usage("--live needs --phys ADDR".into()))?;
        spec.len = a
            .live_len
            .ok_or_else(|| InspectError::Usage("--live needs --len BYTES".into()))?;
        spec.samples = a.live_samples.unwrap_or(2);
        spec.interval = Duration::from_millis(a.live_interval.unwrap_or(500));
        if a.layout.base.is_none() {
            a.layout.base = Some(spec.phys);
        }
    } else if a.live_phys.is_some() || a.live_len.is_some() || a.live_samples.is_some() {
        return Err(InspectError::Usage(
            "--phys, --len and --samples go with --live".into(),
        ));
    }
    Ok(a)
}

fn read(path: &str) -> Result<Vec<u8>, InspectError> {
    std::fs::read(path).map_err(|e| InspectError::Io(format!("cannot read {path}: {e}")))
}

/// Runs the tool: writes the report to `out`, returns the exit status.
/// `tty` says whether `out` is a terminal (colours by default).
///
/// # Errors
///
/// Every [`InspectError`]: the caller prints it and exits with 2.
pub fn run(argv: &[String], out: &mut dyn Write, tty: bool) -> Result<i32, InspectError> {
    let a = parse(argv)?;
    if a.help {
        write_out(out, USAGE)?;
        return Ok(0);
    }
    let images = match &a.live {
        Some(spec) => live::sample(spec)?,
        None => {
            if a.images.is_empty() {
                return Err(InspectError::Usage("no image given (see --help)".into()));
            }
            a.images
                .iter()
                .map(|p| Ok((label(p), read(p)?)))
                .collect::<Result<Vec<_>, InspectError>>()?
        }
    };
    let ins = inspect(&images, &a.layout)?;
    if let Some(path) = &a.svg {
        std::fs::write(path, svg::render(&ins))
            .map_err(|e| InspectError::Io(format!("cannot write {path}: {e}")))?;
    }
    if a.json {
        let s = serde_json::to_string_pretty(&json::to_json(&ins))
            .map_err(|e| InspectError::Io(format!("JSON: {e}")))?;
        write_out(out, &s)?;
        write_out(out, "\n")?;
    } else {
        let color = a
            .color
            .unwrap_or(tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()));
        write_out(out, &text::render(&ins, color))?;
        if ins.samples.len() > 1 {
            for line in text::motion_summary(&ins.samples) {
                write_out(out, &format!("  {line}\n"))?;
            }
        }
    }
    Ok(if a.check && !ins.diagnoses.is_empty() {
        1
    } else {
        0
    })
}

fn label(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map_or_else(|| path.to_owned(), |f| f.to_string_lossy().into_owned())
}

fn write_out(out: &mut dyn Write, s: &str) -> Result<(), InspectError> {
    out.write_all(s.as_bytes())
        .map_err(|e| InspectError::Io(format!("cannot write the report: {e}")))
}
