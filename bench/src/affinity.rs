//! Pinning the calling thread to one core (`sched_setaffinity`).
#![allow(unsafe_code)]

use crate::common::Failure;

/// Pins the calling thread to `core`.
///
/// # Errors
///
/// The core does not exist or the kernel refused (the setup requires both
/// cores: the measurement is not run unpinned).
pub fn pin(core: usize) -> Result<(), Failure> {
    if core >= libc::CPU_SETSIZE as usize {
        return Err(Failure::new(format!("core {core} beyond CPU_SETSIZE")));
    }
    // SAFETY: `cpu_set_t` is a plain bit array; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `core < CPU_SETSIZE` (checked), so the bit lies inside `set`.
    unsafe { libc::CPU_SET(core, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is a valid, initialised
    // `cpu_set_t` of the size passed.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(Failure::new(format!(
            "cannot pin to core {core}: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// Where the two measurement threads run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The master's (producer's) core and the remote's (consumer's) core.
    pub cores: [usize; 2],
    /// Run them `SCHED_FIFO` (priority 1), so other processes on a shared
    /// machine do not preempt them in the middle of a measurement.
    pub realtime: bool,
}

/// Which placement a measurement uses (`None`: anywhere, normal priority;
/// for tests).
pub type Cores = Option<Placement>;

/// Pins the calling thread as `cores` says for side `which` (0: master or
/// producer, 1: remote or consumer).
///
/// # Errors
///
/// As for [`pin`] and [`realtime`].
pub fn place(cores: Cores, which: usize) -> Result<(), Failure> {
    let Some(p) = cores else {
        return Ok(());
    };
    pin(p.cores[which & 1])?;
    if p.realtime {
        realtime()?;
    }
    Ok(())
}

/// Makes the calling thread `SCHED_FIFO` at priority 1.
///
/// # Errors
///
/// The kernel refused (not privileged).
pub fn realtime() -> Result<(), Failure> {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid, initialised
    // `sched_param`.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc != 0 {
        return Err(Failure::new(format!(
            "cannot switch to SCHED_FIFO: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// The core the calling thread runs on now, if the kernel says.
pub fn current_core() -> Option<usize> {
    // SAFETY: `sched_getcpu` takes no arguments and only returns a number.
    let c = unsafe { libc::sched_getcpu() };
    usize::try_from(c).ok()
}
