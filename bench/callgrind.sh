#!/usr/bin/env bash
# Instructions per message of the rpmsg stack, counted by callgrind on the
# single-threaded variant (`bench instr`): the master sends one message, the
# remote polls its doorbell and receives it, 100 000 times; in the `-up`
# cases the remote sends and the master receives (the other two rings'
# paths: the device side filling offered buffers, the driver side reaping
# and posting receive buffers again).
#
# Each case runs twice, with 0 and with N messages; the difference divided by
# N is the figure (set-up and exit cost nothing). Callgrind counts are exact
# and repeat run to run.
#
#   bench/callgrind.sh                  # the figures
#   bench/callgrind.sh --breakdown      # plus where the instructions go,
#                                       # with bench instr_crate_* / fences_* lines
#   bench/callgrind.sh --suppression flags --messages 20000
set -euo pipefail
cd "$(dirname "$0")"

N=100000
SUPP=event-idx
BREAKDOWN=0
while [ $# -gt 0 ]; do
  case $1 in
    --breakdown) BREAKDOWN=1 ;;
    --suppression) SUPP=$2; shift ;;
    --messages) N=$2; shift ;;
    *) echo "usage: $0 [--breakdown] [--suppression flags|event-idx] [--messages N]" >&2; exit 2 ;;
  esac
  shift
done

command -v valgrind >/dev/null || { echo "bench FAILED: valgrind not installed" >&2; exit 1; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$(pwd)/../target/bench}
cargo build --release --quiet
BIN=$CARGO_TARGET_DIR/release/bench
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# ir CASE COUNT [extra callgrind flags]: total instructions of one run.
ir() {
  local case=$1 count=$2; shift 2
  local out="$TMP/$case-$count.out"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$@" \
    "$BIN" instr "$case" "$count" --suppression "$SUPP" >"$TMP/log" 2>&1 ||
    { cat "$TMP/log" >&2; echo "bench FAILED: $case" >&2; exit 1; }
  grep -E '^(summary|totals):' "$out" | head -1 | awk '{print $2}'
}

echo "# instructions per message (send + receive), callgrind, single thread, $N messages, suppression=$SUPP"
for case in 16-copy 496-copy 16-zerocopy 496-zerocopy 64-copy 16-copy-up 16-zerocopy-up floor-16 floor-512; do
  base=$(ir "$case" 0)
  full=$(ir "$case" "$N")
  per=$(awk -v a="$full" -v b="$base" -v n="$N" 'BEGIN { printf "%.0f", (a - b) / n }')
  name=instr_${case//-/_}
  name=${name/instr_floor_/instr_floor_}
  echo "bench $name $per instr/msg ratio=-"
done

# The sound copy primitive (ipc_traits::bytes: word-wise relaxed atomics,
# what RawRegion and the zero-copy views use) against the C library's
# memcpy: one copy into shared memory and one back out per iteration.
for len in 16 496; do
  for how in shared memcpy; do
    base=$(ir "copy-$how-$len" 0)
    full=$(ir "copy-$how-$len" "$N")
    per=$(awk -v a="$full" -v b="$base" -v n="$N" 'BEGIN { printf "%.0f", (a - b) / n }')
    echo "bench instr_copy_${how}_${len} $per instr/copy-in+out"
  done
done

# --breakdown: per case, first the lines
#   bench instr_crate_<crate>_<case> N instr/msg
#   bench fences_<case> N per/msg
# then the tables by function and source line (cg_breakdown.py says how).
# Both runs (0 and N messages) are profiled per instruction, and the crate
# and fence figures are their difference divided by N, like the totals above.
# Crates: ipc_traits, vring, rpmsg, a backend if one ran, bench, libc (libc's
# memcpy/memset/memmove/... reached from no repository frame) and other (the
# rest: std, the loader); they add up to the case's total, or a warning line
# says by how much they do not. fences_<case>: executions, in the bench
# binary, of the x86_64 instructions that are full barriers: mfence, every
# lock-prefixed instruction (fence(SeqCst) compiles to `lock or $0,(%rsp)`,
# atomic read-modify-writes to `lock add`/`lock cmpxchg`/...) and xchg with
# memory (SeqCst stores); x86 makes every one of them a full fence whatever
# the ordering in the source, so all count. lfence/sfence do not.
if [ "$BREAKDOWN" = 1 ]; then
  for case in 16-copy 496-copy 16-zerocopy 496-zerocopy 16-copy-up; do
    echo
    echo "## where the instructions go: $case"
    ir "$case" 0 --dump-instr=yes >/dev/null
    ir "$case" "$N" --dump-instr=yes >/dev/null
    python3 cg_breakdown.py "$TMP/$case-$N.out" "$N" "$BIN" 25 \
      --base "$TMP/$case-0.out" --case "${case//-/_}"
  done
fi
