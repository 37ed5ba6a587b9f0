//! Benchmarks of the rpmsg stack against the machine's own floor.
//!
//! The setup (kept fixed so results compare with the C stacks): two threads
//! of one process pinned to cores 0 and 1, real memory
//! ([`ipc_traits::shm::RawRegion`] over a heap block, coherent), doorbells
//! by counters the peer polls, the master on core 0 sending to the remote on
//! core 1, 16 buffers of 512 bytes per direction, a sequence number in every
//! message checked by the receiver. The floor (a minimal 16-slot ring with
//! 16-, 64- and 512-byte slots, and a cache-line ping-pong) is measured in
//! the same run, alternating with the stack, and every figure is the median
//! of at least five repetitions.
//!
//! The measurement threads run `SCHED_FIFO` when the process may (root), with
//! a pause between runs to stay inside the kernel's real-time budget: on a
//! shared machine a preempted spinning thread otherwise stalls its peer and
//! the figures mean nothing. `--no-rt` measures at normal priority.
//!
//! ```text
//! bench [--reps N] [--ms N] [--samples N] [--suppression flags|event-idx] [--cores A,B]
//!       [--quick] [--only NAME-PREFIX] [--no-rt]
//! bench instr CASE COUNT [--suppression flags|event-idx]
//! ```
//!
//! `instr` runs the single-threaded variant (`CASE`: `16-copy`, `64-copy`,
//! `496-copy`, `16-zerocopy`, `64-zerocopy`, `496-zerocopy` over the link's
//! halves, the master sending; the same with `-up` appended, e.g.
//! `16-copy-up`, the remote sending; `floor-16`, `floor-512`; and `copy-shared-LEN` /
//! `copy-memcpy-LEN`, the sound shared-memory copy against memcpy) for
//! `callgrind.sh`.
#![deny(unsafe_code)]

mod affinity;
mod common;
mod copies;
mod cs;
mod doorbell;
mod floor;
mod ours;
mod window;

use std::process::ExitCode;

use vring::Suppression;

use std::time::Duration;

use common::{median, percentile, Failure, Timing};
use ours::{Api, MAX_PAYLOAD};

/// Command-line settings of a full run.
#[derive(Debug, Clone)]
struct Settings {
    reps: usize,
    window: Timing,
    warm: u32,
    samples: u32,
    suppression: Suppression,
    cores: [usize; 2],
    /// `SCHED_FIFO` measurement threads, with a pause between runs.
    realtime: bool,
    /// Measure only the figures whose name starts with this (for profiling).
    only: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            reps: 5,
            window: Timing {
                warm: Duration::from_millis(20),
                timed: Duration::from_millis(200),
            },
            warm: 2_000,
            samples: 20_000,
            suppression: Suppression::EventIdx,
            cores: [0, 1],
            realtime: true,
            only: None,
        }
    }
}

fn parse_suppression(s: &str) -> Result<Suppression, Failure> {
    match s {
        "flags" => Ok(Suppression::Flags),
        "event-idx" => Ok(Suppression::EventIdx),
        _ => Err(Failure::new(format!(
            "unknown suppression {s:?} (flags, event-idx)"
        ))),
    }
}

fn suppression_name(s: Suppression) -> &'static str {
    match s {
        Suppression::Flags => "flags",
        Suppression::EventIdx => "event-idx",
    }
}

fn number<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, Failure> {
    v.as_deref()
        .and_then(|s| s.replace('_', "").parse().ok())
        .ok_or_else(|| Failure::new(format!("{flag} needs a number")))
}

fn parse(args: impl Iterator<Item = String>) -> Result<Settings, Failure> {
    let mut s = Settings::default();
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--reps" => s.reps = number("--reps", args.next())?,
            "--ms" => s.window.timed = Duration::from_millis(number("--ms", args.next())?),
            "--samples" => s.samples = number("--samples", args.next())?,
            "--suppression" => {
                s.suppression = parse_suppression(args.next().as_deref().unwrap_or(""))?;
            }
            "--cores" => {
                let v = args.next().unwrap_or_default();
                let (a, b) = v
                    .split_once(',')
                    .ok_or_else(|| Failure::new("--cores needs A,B"))?;
                s.cores = [
                    number("--cores", Some(a.into()))?,
                    number("--cores", Some(b.into()))?,
                ];
            }
            "--only" => s.only = args.next(),
            "--no-rt" => s.realtime = false,
            "--quick" => {
                s.window.timed = Duration::from_millis(30);
                s.window.warm = Duration::from_millis(5);
                s.warm = 500;
                s.samples = 2_000;
            }
            other => return Err(Failure::new(format!("unknown argument {other:?}"))),
        }
    }
    if s.reps < 5 {
        return Err(Failure::new("at least 5 repetitions"));
    }
    if s.window.timed.is_zero() || s.samples == 0 {
        return Err(Failure::new("--ms and --samples must be > 0"));
    }
    Ok(s)
}

/// Floors, in the order they are measured within one repetition, each
/// followed by the stack figures that are compared with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Floor {
    Spsc16,
    Spsc64,
    Spsc512,
    PingPong,
}

/// One measured figure (all repetitions).
#[derive(Debug, Clone)]
struct Figure {
    name: String,
    unit: &'static str,
    /// Index of its floor in the figure list (`None` for a floor).
    floor: Option<usize>,
    values: Vec<f64>,
    /// Doorbells per message (stack throughput figures).
    kicks: Vec<f64>,
    /// The target ratio and whether it is a lower (`true`) or upper bound.
    target: Option<(f64, bool)>,
}

impl Figure {
    fn new(name: &str, unit: &'static str, floor: Option<usize>) -> Self {
        Self {
            name: name.into(),
            unit,
            floor,
            values: Vec::new(),
            kicks: Vec::new(),
            target: None,
        }
    }

    fn value(&self) -> f64 {
        median(&self.values)
    }
}

fn placement(s: &Settings) -> affinity::Cores {
    Some(affinity::Placement {
        cores: s.cores,
        realtime: s.realtime,
    })
}

/// Between two real-time runs: leaves the cores to other processes for a
/// while, so the runs stay within the kernel's real-time budget (95 % of
/// each second by default) and do not get throttled mid-measurement.
fn pause(s: &Settings) {
    if s.realtime {
        std::thread::sleep(Duration::from_millis(150));
    }
}

/// Runs every repetition; returns the figures.
fn run(s: &Settings) -> Result<Vec<Figure>, Failure> {
    let cores = placement(s);
    let mut figs = vec![
        Figure::new("floor_spsc_16", "msg/s", None),
        Figure::new("floor_spsc_64", "msg/s", None),
        Figure::new("floor_spsc_512", "msg/s", None),
        Figure::new("floor_pingpong", "ns", None),
        Figure::new("floor_pingpong_p99", "ns", None),
    ];
    let oneway: [(&str, usize, Api, usize); 6] = [
        ("oneway_16_copy", 16, Api::Copy, 0),
        ("oneway_16_zerocopy", 16, Api::ZeroCopy, 0),
        ("oneway_64_copy", 64, Api::Copy, 1),
        ("oneway_64_zerocopy", 64, Api::ZeroCopy, 1),
        ("oneway_496_copy", MAX_PAYLOAD, Api::Copy, 2),
        ("oneway_496_zerocopy", MAX_PAYLOAD, Api::ZeroCopy, 2),
    ];
    for (name, _, _, floor) in oneway {
        figs.push(Figure::new(name, "msg/s", Some(floor)));
    }
    let rtt_median = figs.len();
    figs.push(Figure::new("rtt_16_median", "ns", Some(3)));
    figs.push(Figure::new("rtt_16_p99", "ns", Some(4)));
    for f in &mut figs {
        f.target = match f.name.as_str() {
            "oneway_16_copy" => Some((0.5, true)),
            "oneway_496_copy" => Some((0.6, true)),
            "rtt_16_median" => Some((1.5, false)),
            _ => None,
        };
    }
    let wanted = |name: &str| s.only.as_deref().is_none_or(|p| name.starts_with(p));
    for rep in 0..s.reps {
        eprintln!("repetition {}/{}", rep + 1, s.reps);
        for floor in [
            Floor::Spsc16,
            Floor::Spsc64,
            Floor::Spsc512,
            Floor::PingPong,
        ] {
            let idx = floor as usize;
            if wanted(&figs[idx].name) {
                measure_floor(floor, s, &mut figs)?;
                pause(s);
            }
            if floor == Floor::PingPong {
                if !wanted("rtt_16") {
                    continue;
                }
                let v = ours::round_trip(s.samples, s.warm.min(s.samples), s.suppression, cores)?;
                pause(s);
                figs[rtt_median].values.push(median(&v));
                figs[rtt_median + 1].values.push(percentile(&v, 99.0));
                continue;
            }
            for (k, (name, len, api, f)) in oneway.iter().enumerate() {
                if *f == idx && wanted(name) {
                    let t = ours::oneway(*len, *api, s.window, s.suppression, cores)?;
                    pause(s);
                    figs[5 + k].values.push(t.rate);
                    figs[5 + k].kicks.push(t.kicks_per_msg);
                }
            }
        }
    }
    Ok(figs)
}

/// Measures one floor and records it in `figs` (indices as built in `run`).
fn measure_floor(floor: Floor, s: &Settings, figs: &mut [Figure]) -> Result<(), Failure> {
    let cores = placement(s);
    match floor {
        Floor::Spsc16 => figs[0].values.push(floor::spsc::<16>(s.window, cores)?),
        Floor::Spsc64 => figs[1].values.push(floor::spsc::<64>(s.window, cores)?),
        Floor::Spsc512 => figs[2].values.push(floor::spsc::<512>(s.window, cores)?),
        Floor::PingPong => {
            let v = floor::pingpong(s.samples, s.warm.min(s.samples), cores)?;
            figs[3].values.push(median(&v));
            figs[4].values.push(percentile(&v, 99.0));
        }
    }
    Ok(())
}

fn human(v: f64, unit: &str) -> String {
    match unit {
        "msg/s" => format!("{:.3} M msg/s", v / 1e6),
        _ => format!("{v:.1} {unit}"),
    }
}

fn report(s: &Settings, figs: &[Figure]) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "# rpmsg bench: master on core {} -> remote on core {}, one process, RawRegion<Coherent>,",
        s.cores[0], s.cores[1]
    );
    println!(
        "# polled doorbell counters, 16 x 512-byte buffers per direction, suppression={}",
        suppression_name(s.suppression)
    );
    if s.realtime {
        println!("# measurement threads SCHED_FIFO priority 1, 150 ms pause between runs");
    } else {
        println!("# measurement threads at normal priority (--no-rt, or SCHED_FIFO refused): other processes may preempt them");
    }
    println!(
        "# cpu: {cpu}; load average at the end: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "# medians of {} repetitions, floor and stack alternating; throughput runs of {} ms (after {} ms warm-up), {} round trips per latency run (after {})",
        s.reps, s.window.timed.as_millis(), s.window.warm.as_millis(), s.samples, s.warm
    );
    println!("# every message carried a sequence number; all were checked: 0 errors");
    println!();
    println!(
        "{:<22} {:>18} {:>22} {:>8} {:>10} {:>28}  target",
        "figure", "value", "floor", "ratio", "kicks/msg", "spread (min..max)"
    );
    for f in figs.iter().filter(|f| !f.values.is_empty()) {
        let v = f.value();
        let (floor, ratio) = match f.floor.filter(|&i| !figs[i].values.is_empty()) {
            Some(i) => {
                let fv = figs[i].value();
                (
                    format!("{} ({})", human(fv, figs[i].unit), figs[i].name),
                    format!("{:.3}", v / fv),
                )
            }
            None => ("-".into(), "-".into()),
        };
        let kicks = if f.kicks.is_empty() {
            "-".into()
        } else {
            format!("{:.3}", median(&f.kicks))
        };
        let lo = f.values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = f.values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let spread = format!("{}..{}", short(lo, f.unit), short(hi, f.unit));
        let target = match (f.target, f.floor.filter(|&i| !figs[i].values.is_empty())) {
            (Some((t, lower)), Some(i)) => {
                let r = v / figs[i].value();
                let met = if lower { r >= t } else { r <= t };
                format!(
                    "{} {t} {}",
                    if lower { ">=" } else { "<=" },
                    if met { "met" } else { "MISSED" }
                )
            }
            _ => String::new(),
        };
        let floor_col = if floor.len() > 22 {
            floor.split(" (").next().unwrap_or("").to_string()
        } else {
            floor
        };
        println!(
            "{:<22} {:>18} {:>22} {:>8} {:>10} {:>28}  {}",
            f.name,
            human(v, f.unit),
            floor_col,
            ratio,
            kicks,
            spread,
            target
        );
    }
    println!();
    for f in figs.iter().filter(|f| !f.values.is_empty()) {
        let v = f.value();
        let ratio = match f.floor.filter(|&i| !figs[i].values.is_empty()) {
            Some(i) => format!("{:.3}", v / figs[i].value()),
            None => "-".into(),
        };
        let value = match f.unit {
            "msg/s" => format!("{v:.0}"),
            _ => format!("{v:.1}"),
        };
        println!("bench {} {} {} ratio={}", f.name, value, f.unit, ratio);
    }
}

fn short(v: f64, unit: &str) -> String {
    match unit {
        "msg/s" => format!("{:.2}M", v / 1e6),
        _ => format!("{v:.0}"),
    }
}

/// `bench instr CASE COUNT`: the single-threaded variant.
fn instr(mut args: impl Iterator<Item = String>) -> Result<(), Failure> {
    let case = args
        .next()
        .ok_or_else(|| Failure::new("instr needs CASE COUNT"))?;
    let count: u32 = number("COUNT", args.next())?;
    let mut suppression = Suppression::EventIdx;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--suppression" => {
                suppression = parse_suppression(args.next().as_deref().unwrap_or(""))?
            }
            other => return Err(Failure::new(format!("unknown argument {other:?}"))),
        }
    }
    // One thread measures: critical sections cost what a single core's
    // interrupt mask costs, not a lock (`cs`).
    if !cs::single_core() {
        return Err(Failure::new(
            "critical sections were entered before `instr`",
        ));
    }
    let done = match case.as_str() {
        "floor-16" => floor::spsc_single::<16>(count)?,
        "floor-512" => floor::spsc_single::<512>(count)?,
        c if c.starts_with("copy-") => {
            let (how, len) = c["copy-".len()..]
                .split_once('-')
                .ok_or_else(|| Failure::new(format!("unknown case {c:?}")))?;
            copies::run(how, number("CASE", Some(len.into()))?, count)?
        }
        c => {
            let (c, way) = match c.strip_suffix("-up") {
                Some(c) => (c, ours::Way::Up),
                None => (c, ours::Way::Down),
            };
            let (len, api) = c
                .split_once('-')
                .ok_or_else(|| Failure::new(format!("unknown case {c:?}")))?;
            let len: usize = number("CASE", Some(len.into()))?;
            let api = match api {
                "copy" => Api::Copy,
                "zerocopy" => Api::ZeroCopy,
                _ => return Err(Failure::new(format!("unknown case {c:?}"))),
            };
            ours::single(len, api, count, suppression, way)?
        }
    };
    println!(
        "instr {case} {done} messages checked, suppression={}",
        suppression_name(suppression)
    );
    Ok(())
}

/// Whether this process may make a thread `SCHED_FIFO` (tried on a
/// throw-away thread).
fn realtime_permitted() -> bool {
    std::thread::spawn(|| affinity::realtime().is_ok())
        .join()
        .unwrap_or(false)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    let result = if args.peek().map(String::as_str) == Some("instr") {
        args.next();
        instr(args)
    } else {
        parse(args).and_then(|mut s| {
            if s.realtime && !realtime_permitted() {
                eprintln!("SCHED_FIFO refused: measuring at normal priority");
                s.realtime = false;
            }
            eprintln!(
                "pinning to cores {:?}; main thread on core {:?}",
                s.cores,
                affinity::current_core()
            );
            let figs = run(&s)?;
            report(&s, &figs);
            Ok(())
        })
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("bench FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> impl Iterator<Item = String> {
        v.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn defaults_and_flags_parse() {
        let s = parse(args(&[])).unwrap();
        assert_eq!((s.reps, s.cores), (5, [0, 1]));
        let s = parse(args(&[
            "--reps",
            "7",
            "--suppression",
            "flags",
            "--cores",
            "2,3",
        ]))
        .unwrap();
        assert_eq!(
            (s.reps, s.suppression, s.cores),
            (7, Suppression::Flags, [2, 3])
        );
    }

    #[test]
    fn fewer_than_five_repetitions_are_refused() {
        assert!(parse(args(&["--reps", "4"])).is_err());
        assert!(parse(args(&["--bogus"])).is_err());
    }
}
