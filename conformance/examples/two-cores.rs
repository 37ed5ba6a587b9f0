//! Two simulated cores exchange messages through non-coherent shared memory.
//!
//! Foundation demo: core A fills a line-aligned buffer (`ShmBuf<Dirty>`),
//! cleans it, and publishes a sequence number; core B polls the number,
//! invalidates, validates the length and reads. Each side runs on its own
//! thread with its own simulated write-back cache that evicts lines at random.
//! The full RPMsg demo over the four mailbox simulations replaces this once
//! the `rpmsg` crate lands.
//!
//! Usage: `cargo run --release -p conformance --example two-cores -- [--messages N]`

use std::process::ExitCode;
use std::thread;
use std::time::Instant;

use conformance::sim::{CacheConfig, SimMemory};
use ipc_traits::buf::{Dirty, Received, ShmBuf};
use ipc_traits::shm::SharedMemory;

const LINE: usize = 64;
const SEQ: usize = 0; // A → B: sequence number of the buffer just published
const ACK: usize = LINE; // B → A: last sequence number consumed
const LEN: usize = 2 * LINE; // A → B: payload length
const BUF: usize = 4 * LINE; // the payload slot
const SLOT: usize = 512;

fn payload(seq: u32, out: &mut [u8]) -> usize {
    let len = (seq as usize * 37) % (SLOT - 4) + 4;
    for (i, b) in out[..len].iter_mut().enumerate() {
        *b = (seq as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
    len
}

fn main() -> ExitCode {
    let mut messages = 10_000u32;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--messages" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => messages = n,
                None => {
                    eprintln!("--messages needs a number");
                    return ExitCode::FAILURE;
                }
            },
            "--help" | "-h" => {
                println!("two-cores [--messages N]: two simulated cores exchange N messages through non-coherent shared memory");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other}; try --help");
                return ExitCode::FAILURE;
            }
        }
    }

    let mem = SimMemory::new(BUF + SLOT, 0x4000_0000);
    let core_a = mem.core::<LINE>(CacheConfig::write_back(1));
    let core_b = mem.core::<LINE>(CacheConfig::write_back(2));
    let started = Instant::now();

    let receiver = thread::spawn(
        move || -> Result<(u64, conformance::sim::CacheStats), String> {
            let mut bytes = 0u64;
            let mut expect = [0u8; SLOT];
            for seq in 1..=messages {
                let mut spins = 0u64;
                loop {
                    core_b.invalidate(SEQ, LINE).map_err(|e| e.to_string())?;
                    if core_b.load_u32_acquire(SEQ).map_err(|e| e.to_string())? == seq {
                        break;
                    }
                    spins += 1;
                    if spins > 100_000_000 {
                        return Err(format!("message {seq} never arrived"));
                    }
                    thread::yield_now();
                }
                core_b.invalidate(LEN, LINE).map_err(|e| e.to_string())?;
                let len = core_b.load_u32_acquire(LEN).map_err(|e| e.to_string())?;
                // SAFETY: core A handed the slot over by publishing `seq` and does
                // not touch it again until it sees our acknowledgement.
                let rx = unsafe { ShmBuf::<_, Received>::new_unchecked(&core_b, BUF, SLOT) }
                    .map_err(|e| e.to_string())?;
                let rx = rx.invalidate().map_err(|(_, e)| e.to_string())?;
                let rx = rx.validate(len).map_err(|(_, e)| e.to_string())?;
                let mut got = vec![0u8; rx.len()];
                rx.read(0, &mut got).map_err(|e| e.to_string())?;
                let want = payload(seq, &mut expect);
                if got != expect[..want] {
                    return Err(format!("message {seq} corrupted"));
                }
                bytes += got.len() as u64;
                core_b
                    .store_u32_release(ACK, seq)
                    .map_err(|e| e.to_string())?;
                core_b.clean(ACK, LINE).map_err(|e| e.to_string())?;
            }
            Ok((bytes, core_b.stats()))
        },
    );

    let mut scratch = [0u8; SLOT];
    let sender: Result<(), String> = (|| {
        for seq in 1..=messages {
            // SAFETY: the slot is ours: the receiver acknowledged seq - 1.
            let mut tx = unsafe { ShmBuf::<_, Dirty>::new_unchecked(&core_a, BUF, SLOT) }
                .map_err(|e| e.to_string())?;
            let len = payload(seq, &mut scratch);
            tx.write(0, &scratch[..len]).map_err(|e| e.to_string())?;
            let clean = tx.clean().map_err(|(_, e)| e.to_string())?;
            let _record = clean.into_published();
            core_a
                .store_u32_release(LEN, len as u32)
                .map_err(|e| e.to_string())?;
            core_a.clean(LEN, LINE).map_err(|e| e.to_string())?;
            core_a
                .store_u32_release(SEQ, seq)
                .map_err(|e| e.to_string())?;
            core_a.clean(SEQ, LINE).map_err(|e| e.to_string())?;
            let mut spins = 0u64;
            loop {
                core_a.invalidate(ACK, LINE).map_err(|e| e.to_string())?;
                if core_a.load_u32_acquire(ACK).map_err(|e| e.to_string())? == seq {
                    break;
                }
                spins += 1;
                if spins > 100_000_000 {
                    return Err(format!("message {seq} never acknowledged"));
                }
                thread::yield_now();
            }
        }
        Ok(())
    })();

    let received = receiver
        .join()
        .unwrap_or_else(|_| Err("receiver panicked".into()));
    let elapsed = started.elapsed();
    let sa = core_a.stats();
    match (sender, received) {
        (Ok(()), Ok((bytes, sb))) => {
            println!("two simulated cores, non-coherent write-back caches (64-byte lines, random eviction)");
            println!(
                "{:<10} {:>10} {:>10} {:>15} {:>19} {:>10} {:>7}",
                "messages",
                "bytes",
                "time",
                "cleaned (A)",
                "invalidated (B)",
                "evictions",
                "errors"
            );
            println!(
                "{:<10} {:>10} {:>10.1?} {:>15} {:>19} {:>10} {:>7}",
                messages,
                bytes,
                elapsed,
                sa.lines_cleaned,
                sb.lines_invalidated,
                sa.evictions + sb.evictions,
                0
            );
            ExitCode::SUCCESS
        }
        (s, r) => {
            eprintln!("exchange failed: sender {s:?}, receiver {r:?}");
            ExitCode::FAILURE
        }
    }
}
