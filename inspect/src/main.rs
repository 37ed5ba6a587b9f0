//! `inspect`: the ring inspector's command line (see `--help`).

use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let mut out = stdout.lock();
    match ring_inspect::cli::run(&argv, &mut out, tty) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(2)),
        Err(e) => {
            eprintln!("inspect: {e}");
            ExitCode::from(2)
        }
    }
}
