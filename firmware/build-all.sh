#!/usr/bin/env bash
# Builds the firmware examples, prints their sizes, and runs the two emulated
# images (and their fault-injected variants, which must fail).
#
#   bash firmware/build-all.sh          everything
#   FIRMWARE_LINT=0 bash ...            skip fmt/clippy/host tests
#
# Installs what it needs when missing (rustup targets, nightly rust-src,
# llvm-tools, QEMU). Every step runs, is timed, and is counted; the exit
# status is non-zero if any step failed. Timeouts sit inside the QEMU
# runners (.cargo/config.toml of qemu-m4 and qemu-a64), so a hung image
# fails instead of hanging. The build goes to $FIRMWARE_TARGET_DIR
# (default: firmware/target), whatever CARGO_TARGET_DIR the caller has.
set -uo pipefail
FW="$(cd "$(dirname "$0")" && pwd)"
cd "$FW" || exit 2
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export DEBIAN_FRONTEND=noninteractive
export CARGO_TARGET_DIR="${FIRMWARE_TARGET_DIR:-$FW/target}"
LINT="${FIRMWARE_LINT:-1}"

TARGETS="thumbv7em-none-eabihf riscv32imac-unknown-none-elf aarch64-unknown-none"
# name (= directory and binary) : target (directory under the target dir) : toolchain
EXAMPLES="minimal-remote:thumbv7em-none-eabihf:stable imx8mm-m4:thumbv7em-none-eabihf:stable am62x-m4f:thumbv7em-none-eabihf:stable v853-e907:riscv32imac-unknown-none-elf:stable octeon:mips64-octeon-none:nightly"

PASS=0 FAIL=0 FAILED=()
now_ms() { local t=${EPOCHREALTIME//[!0-9]/}; echo $((10#$t / 1000)); }
# `set -e` is off inside an `if` condition (bash), so each step function
# chains its commands itself (`|| return 1`, or an `rc` it returns).
step() {                                  # step NAME function [args...]
  local name=$1 t0 ms
  shift
  t0=$(now_ms)
  echo "::: [fw-$name] start"
  if ( set -e; "$@" ); then
    PASS=$((PASS + 1)); ms=$(( $(now_ms) - t0 ))
    echo "::: [fw-$name] ok ($((ms / 1000)).$((ms % 1000 / 100))s)"
  else
    FAIL=$((FAIL + 1)); FAILED+=("$name"); ms=$(( $(now_ms) - t0 ))
    echo "::: [fw-$name] FAILED ($((ms / 1000)).$((ms % 1000 / 100))s)"
  fi
}

# --- set-up -------------------------------------------------------------------

setup_rust() {
  local have missing=()
  have=$(rustup target list --installed)
  for t in $TARGETS; do grep -qx "$t" <<<"$have" || missing+=("$t"); done
  [ ${#missing[@]} -eq 0 ] || rustup target add "${missing[@]}"
  rustup component list --installed | grep -q '^llvm-tools' || rustup component add llvm-tools
  rustup +nightly component list --installed | grep -q '^rust-src' ||
    rustup component add --toolchain nightly rust-src
}

setup_qemu() {
  command -v qemu-system-arm >/dev/null && command -v qemu-system-aarch64 >/dev/null && return 0
  local had_utils=0
  dpkg -s qemu-utils >/dev/null 2>&1 && had_utils=1
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  # qemu-system-arm also holds qemu-system-aarch64.
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends qemu-system-arm >/dev/null
  # Gotcha (docs/toolchain.md): installing it removes a newer qemu-utils.
  if [ "$had_utils" -eq 1 ] && ! dpkg -s qemu-utils >/dev/null 2>&1; then
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends qemu-utils >/dev/null
  fi
  command -v qemu-system-arm >/dev/null && command -v qemu-system-aarch64 >/dev/null
}

# --- lint and host tests ------------------------------------------------------

lint() {
  local d rc=0
  (cd common && cargo fmt -- --check && cargo test -q && cargo clippy -q --all-targets -- -D warnings) || rc=1
  for d in qemu-m4 qemu-a64 minimal-remote imx8mm-m4 am62x-m4f v853-e907; do
    echo "--- lint $d"
    (cd "$d" && cargo fmt -- --check && cargo clippy -q --release -- -D warnings) || rc=1
  done
  echo "--- lint octeon"
  (cd octeon && cargo +nightly fmt -- --check && cargo +nightly clippy -q --release -- -D warnings) || rc=1
  return $rc
}

# --- build and sizes ----------------------------------------------------------

LLVM_BIN="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin"
SIZES=()

# text/data/bss of an ELF, from its section headers: allocated sections
# only; NOBITS is bss except the stack and heap reservations (riscv-rt
# declares them as sections), writable PROGBITS is data, the rest is text.
size_of() {
  local elf=$1 text=0 data=0 bss=0 name type size flg
  while read -r name type size flg; do
    case $flg in *A*) ;; *) continue ;; esac
    case $name in .stack|.heap) continue ;; esac
    if [ "$type" = NOBITS ]; then bss=$((bss + 16#$size))
    elif [[ $flg == *W* ]]; then data=$((data + 16#$size))
    else text=$((text + 16#$size)); fi
  done < <("$LLVM_BIN/llvm-readobj" --elf-output-style=GNU -S "$elf" | awk '
    /^ *\[ *[0-9]+\]/ {
      line = $0; sub(/^ *\[ *[0-9]+\] +/, "", line); n = split(line, f, / +/)
      flg = (f[7] ~ /^[A-Z]+$/) ? f[7] : "-"
      print f[1], f[2], f[5], flg
    }')
  echo "$text $data $bss"
}

build_one() {                             # build_one NAME TARGET TOOLCHAIN
  local name=$1 target=$2 tc=$3 elf text data bss
  echo "--- build $name ($target, $tc)"
  (cd "$name" && cargo "+$tc" build --release) || return 1
  elf="$CARGO_TARGET_DIR/$target/release/$name"
  [ -f "$elf" ] || { echo "no ELF at $elf"; return 1; }
  read -r text data bss < <(size_of "$elf")
  SIZES+=("$(printf '%-10s %-30s %8d %8d %8d' "$name" "$target" "$text" "$data" "$bss")")
  if [ "$name" = minimal-remote ]; then
    code_split "$elf"
  fi
}

# The size benchmark (README "Size"): the minimal remote's library code,
# split by crate from the DWARF line table (code-split.awk says how each
# instruction is attributed, including what LTO inlined into main), and
# its image (.text + .rodata).
code_split() {
  local elf=$1 split lib=0 crate bytes image hex
  split=$("$LLVM_BIN/llvm-objdump" -d -l -C --section=.text "$elf" | awk -f "$FW/code-split.awk" | sort)
  [ -n "$split" ] || { echo "no disassembly of $elf"; return 1; }
  while read -r crate bytes; do
    echo "bench code_text_crate_${crate//-/_} $bytes bytes ratio=-"
    case $crate in rpmsg|vring|ipc-traits|mu-imx8) lib=$((lib + bytes)) ;; esac
  done <<<"$split"
  image=0
  for hex in $("$LLVM_BIN/llvm-readobj" --elf-output-style=GNU -S "$elf" | awk '
    / \.(text|rodata) / { line = $0; sub(/^ *\[ *[0-9]+\] +/, "", line); split(line, f, / +/); print f[5] }'); do
    image=$((image + 16#$hex))
  done
  echo "bench code_text_remote $lib bytes ratio=-"
  echo "bench code_text_image $image bytes ratio=-"
}

build_examples() {
  local e name target tc rc=0
  SIZES=()
  for e in $EXAMPLES; do
    IFS=: read -r name target tc <<<"$e"
    build_one "$name" "$target" "$tc" || rc=1
  done
  printf '%-10s %-30s %8s %8s %8s\n' example target text data bss
  printf '%s\n' "${SIZES[@]}"
  return $rc
}

# --- emulated runs ------------------------------------------------------------

expect_failure() {                        # expect_failure DIR FEATURE
  local rc=0
  (cd "$1" && cargo run -q --release --features "$2") || rc=$?
  if [ "$rc" -eq 1 ]; then
    echo "--- $1 with $2 failed as it must (exit 1)"
    return 0
  fi
  echo "--- $1 with $2: expected exit 1, got $rc"
  return 1
}

qemu_m4() {
  expect_failure qemu-m4 fault-lose-kicks || return 1
  expect_failure qemu-m4 fault-corrupt || return 1
  (cd qemu-m4 && cargo run -q --release)
}

qemu_a64() {
  expect_failure qemu-a64 fault-lose-kicks || return 1
  (cd qemu-a64 && cargo run -q --release)
}

step setup-rust setup_rust
step setup-qemu setup_qemu
[ "$LINT" = 1 ] && step lint lint
step build-examples build_examples
step qemu-m4 qemu_m4
step qemu-a64-smp2 qemu_a64

[ ${#FAILED[@]} -gt 0 ] && echo "firmware failed steps: ${FAILED[*]}"
echo "firmware: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
