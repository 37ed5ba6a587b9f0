//! The `--linux` row: finding the user-mode Linux kernel, and printing what
//! `linux_peer::demo::echo` measured in the table's columns.

use std::path::PathBuf;

use linux_peer::demo::EchoReport;
use linux_peer::uml;

/// The row's name in the first column.
pub const NAME: &str = "linux";

/// What the row's columns mean where they differ from the SoC rows.
pub const FOOTNOTE: &str = "\
linux: user-mode Linux 6.12 (its own virtio_rpmsg_bus and rpmsg_char) is the master; our
remote, on a host thread, announces rpmsg-raw and the guest echoes through /dev/rpmsgN.
RTT is timed on our side, from send to checked echo; sent counts our calls plus Linux's
kicks; suppressed counts ours only; memory is coherent, so no cache lines.";

/// The kernel the linux-peer tests boot, or how to build it.
pub fn kernel() -> Result<PathBuf, String> {
    match uml::find_kernel() {
        Ok(Some(kernel)) => Ok(kernel),
        Ok(None) => Err(format!(
            "--linux needs a user-mode Linux kernel, and none is built on this machine.\n\
             Build it once (from the repository root; about 1.5 to 6 minutes, then cached):\n\
             \n    bash linux-peer/build-kernel.sh\n\
             \nor point {} at a kernel binary.",
            uml::KERNEL_ENV
        )),
        Err(why) => Err(format!("--linux: {why}")),
    }
}

/// The row, in the columns of `print_header`.
pub fn print(r: &EchoReport) {
    println!(
        "{:<7} {:<22} {:>9} {:>10} {:>8.1} µs {:>8} {:>10} {:>9} {:>11} {:>6}",
        NAME,
        "UML / host, coherent",
        r.messages,
        r.bytes,
        r.rtt_median().as_secs_f64() * 1e6,
        r.calls_sent + r.kicks_received,
        r.calls_suppressed,
        "-",
        "-",
        r.errors,
    );
}

/// The run's phases, for the lines below the table.
pub fn timings(r: &EchoReport) -> String {
    format!(
        "linux: booted to the first kick in {:.2} s, {} echoes in {:.2} s, \
         powered off {:.2} s after the service was destroyed.",
        r.boot.as_secs_f64(),
        r.messages,
        r.exchange.as_secs_f64(),
        r.shutdown.as_secs_f64()
    )
}
