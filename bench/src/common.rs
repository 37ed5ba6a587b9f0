//! What every measurement shares: failures, bounded waiting, cache-line
//! padding, the message format with its sequence number, and the statistics.
#![deny(unsafe_code)]

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A measurement that went wrong (a sequence error, a stack error, a
/// timeout): the whole run reports failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Failure {
    /// A failure described by `what`.
    pub fn new(what: impl Into<String>) -> Self {
        Self(what.into())
    }
}

/// Pads `T` to its own pair of 64-byte cache lines (x86 prefetches lines in
/// adjacent pairs), so a field one thread writes never shares a line with a
/// field the other thread writes.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Line<T>(pub T);

/// How long any single wait may last before the measurement fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A bounded spin: every wait ends in success, in the peer thread's failure,
/// or after [`PATIENCE`].
#[derive(Debug)]
pub struct Patience<'a> {
    abort: &'a AtomicBool,
    deadline: Instant,
    spins: u32,
}

impl<'a> Patience<'a> {
    /// A wait that also gives up when `abort` is set (by the peer thread).
    pub fn new(abort: &'a AtomicBool) -> Self {
        Self {
            abort,
            deadline: Instant::now() + PATIENCE,
            spins: 0,
        }
    }

    /// One spin.
    ///
    /// # Errors
    ///
    /// The peer failed, or [`PATIENCE`] ran out while waiting for `what`.
    #[inline]
    pub fn spin(&mut self, what: &str) -> Result<(), Failure> {
        std::hint::spin_loop();
        self.spins = self.spins.wrapping_add(1);
        if self.spins & 0x3FF == 0 {
            if self.abort.load(Ordering::Relaxed) {
                return Err(Failure::new(format!("{what}: the other thread failed")));
            }
            if self.spins & 0xF_FFFF == 0 && Instant::now() > self.deadline {
                return Err(Failure::new(format!(
                    "{what}: timed out after {PATIENCE:?}"
                )));
            }
        }
        Ok(())
    }
}

/// Runs `f`; on failure raises `abort` so the other thread stops waiting.
pub fn or_abort<T>(
    abort: &AtomicBool,
    f: impl FnOnce() -> Result<T, Failure>,
) -> Result<T, Failure> {
    let out = f();
    if out.is_err() {
        abort.store(true, Ordering::Relaxed);
    }
    out
}

/// How long a throughput run lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Untimed start (caches, branch predictors, the ring filling up).
    pub warm: Duration,
    /// The timed part.
    pub timed: Duration,
}

/// Messages a timed window holds at least (it is extended until then, so a
/// thread the scheduler starved cannot leave it empty).
pub const MIN_TIMED: u64 = 1024;

/// The receiver's clock of a time-boxed throughput run: counts messages,
/// reads the time only every 64 messages (or when idle), and says when to
/// stop; the producer watches [`Meter::stop`].
#[derive(Debug)]
pub struct Meter<'a> {
    stop: &'a AtomicBool,
    window: Timing,
    begin: Instant,
    mark: Option<(Instant, u64)>,
    end: Option<(Instant, u64)>,
    count: u64,
}

impl<'a> Meter<'a> {
    /// A meter that raises `stop` when `window` is over.
    pub fn new(stop: &'a AtomicBool, window: Timing) -> Self {
        Self {
            stop,
            window,
            begin: Instant::now(),
            mark: None,
            end: None,
            count: 0,
        }
    }

    /// Whether the producer should stop.
    #[inline]
    pub fn stop(stop: &AtomicBool) -> bool {
        stop.load(Ordering::Relaxed)
    }

    /// Counts one message; `true` once the window is over.
    #[inline]
    pub fn tick(&mut self) -> bool {
        self.count += 1;
        self.count % 64 == 0 && self.check_time()
    }

    /// Looks at the clock (call it when idle too); `true` once the window
    /// is over.
    pub fn check_time(&mut self) -> bool {
        if self.end.is_some() {
            return true;
        }
        let now = Instant::now();
        match self.mark {
            None if now >= self.begin + self.window.warm => self.mark = Some((now, self.count)),
            Some((t0, n0)) if now >= t0 + self.window.timed && self.count - n0 >= MIN_TIMED => {
                self.end = Some((now, self.count));
                self.stop.store(true, Ordering::Relaxed);
                return true;
            }
            _ => {}
        }
        false
    }

    /// Messages per second over the timed part (at least [`MIN_TIMED`]
    /// messages).
    ///
    /// # Errors
    ///
    /// The window never ended or no message arrived in it.
    pub fn rate(&self) -> Result<f64, Failure> {
        match (self.mark, self.end) {
            (Some((t0, n0)), Some((t1, n1))) if n1 > n0 => {
                Ok((n1 - n0) as f64 / (t1 - t0).as_secs_f64())
            }
            _ => Err(Failure::new(
                "no message arrived in the timed window (a thread starved by the scheduler?)",
            )),
        }
    }
}

/// Writes message `seq` into `payload` (`payload.len() >= 5`): the sequence
/// number in the first four bytes (little endian) and a check byte derived
/// from it in the last byte. The bytes in between are left as they are (the
/// copying API copies them anyway).
#[inline]
pub fn stamp(payload: &mut [u8], seq: u32) {
    if let Some(head) = payload.get_mut(..4) {
        head.copy_from_slice(&seq.to_le_bytes());
    }
    if let Some(last) = payload.last_mut() {
        *last = check_byte(seq);
    }
}

/// [`stamp`] through a zero-copy view (what the link lends: the buffer is
/// shared memory, reached by copies, never by a slice).
#[inline]
pub fn stamp_view(payload: &mut ipc_traits::bytes::ShmSliceMut<'_>, seq: u32) {
    let _fits = payload.write_at(0, &seq.to_le_bytes()).is_ok();
    if let Some(last) = payload.len().checked_sub(1) {
        let _fits = payload.write_at(last, &[check_byte(seq)]).is_ok();
    }
}

/// The last byte of message `seq`.
#[inline]
pub const fn check_byte(seq: u32) -> u8 {
    (seq as u8) ^ 0x5A
}

/// Checks that received messages arrive in order, with the expected length
/// and an intact last byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqCheck {
    next: u32,
    len: usize,
}

impl SeqCheck {
    /// Expects messages `0, 1, 2, …` of `len` bytes.
    pub const fn new(len: usize) -> Self {
        Self { next: 0, len }
    }

    /// The next sequence number expected (= messages accepted so far).
    pub const fn next(&self) -> u32 {
        self.next
    }

    /// Checks one received payload.
    ///
    /// # Errors
    ///
    /// A wrong length, sequence number (lost, duplicated or reordered
    /// message) or check byte (corrupted payload).
    #[inline]
    pub fn check(&mut self, payload: &[u8]) -> Result<(), Failure> {
        let head = payload.get(..4).and_then(|h| <[u8; 4]>::try_from(h).ok());
        self.check_parts(payload.len(), head, payload.last().copied())
    }

    /// [`SeqCheck::check`] of a payload lent zero-copy: reads the four
    /// sequence bytes and the check byte through the view.
    ///
    /// # Errors
    ///
    /// As [`SeqCheck::check`].
    #[inline]
    pub fn check_view(&mut self, payload: &ipc_traits::bytes::ShmSlice<'_>) -> Result<(), Failure> {
        let mut head = [0u8; 4];
        let head = payload.read_at(0, &mut head).ok().map(|()| head);
        let last = payload.len().checked_sub(1).and_then(|l| payload.get(l));
        self.check_parts(payload.len(), head, last)
    }

    /// Checks a payload of `len` bytes whose first four bytes are `head`
    /// and last byte `last`.
    #[inline]
    fn check_parts(
        &mut self,
        len: usize,
        head: Option<[u8; 4]>,
        last: Option<u8>,
    ) -> Result<(), Failure> {
        let want = self.next;
        if len != self.len {
            return Err(Failure::new(format!(
                "message {want}: length {len} instead of {}",
                self.len
            )));
        }
        let seq = match head {
            Some(h) => u32::from_le_bytes(h),
            None => {
                return Err(Failure::new(format!(
                    "message {want}: shorter than 4 bytes"
                )))
            }
        };
        if seq != want {
            return Err(Failure::new(format!(
                "sequence error: got message {seq}, expected {want}"
            )));
        }
        if last != Some(check_byte(seq)) {
            return Err(Failure::new(format!("message {seq}: last byte corrupted")));
        }
        self.next = want.wrapping_add(1);
        Ok(())
    }
}

/// The median of `v` (mean of the two middle values for an even count);
/// `NaN` when empty.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// The `p`-th percentile of `v` (nearest rank, `0 < p <= 100`); `NaN` when
/// empty.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
    }

    #[test]
    fn stamped_messages_pass_in_order() {
        let mut check = SeqCheck::new(16);
        let mut buf = [0u8; 16];
        for seq in 0..300 {
            stamp(&mut buf, seq);
            check.check(&buf).unwrap();
        }
        assert_eq!(check.next(), 300);
    }

    #[test]
    fn a_lost_message_is_a_sequence_error() {
        let mut check = SeqCheck::new(16);
        let mut buf = [0u8; 16];
        stamp(&mut buf, 0);
        check.check(&buf).unwrap();
        stamp(&mut buf, 2);
        let e = check.check(&buf).unwrap_err();
        assert!(e.0.contains("expected 1"), "{e}");
    }

    #[test]
    fn a_duplicate_a_wrong_length_and_a_corrupt_byte_are_errors() {
        let mut check = SeqCheck::new(16);
        let mut buf = [0u8; 16];
        stamp(&mut buf, 0);
        check.check(&buf).unwrap();
        assert!(check.check(&buf).is_err(), "duplicate");
        stamp(&mut buf, 1);
        assert!(check.check(&buf[..15]).is_err(), "length");
        buf[15] ^= 1;
        assert!(check.check(&buf).is_err(), "corrupted");
        buf[15] ^= 1;
        check.check(&buf).unwrap();
    }

    #[test]
    fn the_meter_stops_after_warm_up_and_window() {
        let stop = AtomicBool::new(false);
        let w = Timing {
            warm: Duration::from_millis(2),
            timed: Duration::from_millis(5),
        };
        let mut m = Meter::new(&stop, w);
        assert!(!Meter::stop(&stop));
        let mut ticks = 0u64;
        while !m.tick() {
            ticks += 1;
        }
        assert!(Meter::stop(&stop), "the producer is told to stop");
        assert!(
            ticks >= MIN_TIMED,
            "the window holds at least MIN_TIMED messages"
        );
        assert!(m.rate().unwrap() > 0.0);
    }

    #[test]
    fn patience_gives_up_when_the_peer_aborts() {
        let abort = AtomicBool::new(true);
        let mut p = Patience::new(&abort);
        let failed = (0..2048).any(|_| p.spin("test").is_err());
        assert!(failed);
    }
}
