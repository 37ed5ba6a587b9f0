#!/usr/bin/env bash
# Removes each cache-maintenance call site of `vring`, `rpmsg` and
# `ipc-traits` ONE AT A TIME, runs the suites that model non-coherent caches
# (conformance's `SimCore` and recording caches), and prints `killed` or
# `survived` per site and the kill ratio. Not part of CI: one build and up
# to a minute of tests per site.
#
#   bash conformance/mutate-cache.sh            every site
#   bash conformance/mutate-cache.sh --list     the sites, nothing run
#   bash conformance/mutate-cache.sh rings.rs   only sites whose file:line
#                                               contains one of the words
#
# What a site is: a method call `.clean(`, `.invalidate(` or
# `.clean_invalidate(` in non-test code (test modules, `tests.rs`, comments
# and doc examples are skipped). Every spelling the code uses goes through
# one of those names: `SharedMemory::clean/invalidate` (window offsets),
# `RingMem::clean/invalidate` (vring's ring fields), `ShmBuf::clean/
# invalidate` (buffer type-states) and `CacheMaintenance::clean/invalidate`
# (`RawRegion`'s lines).
#
# How a site is removed: the call is renamed to a no-op twin with the same
# signature (`.clean(` -> `.clean_skipped(`), which returns success and, for
# a buffer, the next type-state without touching the cache. So every
# mutation compiles and keeps its `?`, `.map_err` and `.and_then` around it;
# a site whose mutation does not compile is reported `n/a`. The twins are
# appended to ipc-traits (buf.rs, shm.rs, cache.rs) and vring (ring.rs) for
# the duration of the run; line numbers of the sites do not move.
#
# Killed: a test failed, or a test binary ran past its timeout (a hang is a
# failure the suites can see). The working tree must be clean (the script
# restores files with `git checkout`), and it is restored on exit, Ctrl-C
# included. CARGO_TARGET_DIR is honoured; MUTATE_TIMEOUT (seconds per test
# binary, default 60) bounds each run.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

export CARGO_TERM_COLOR=never
TIMEOUT="${MUTATE_TIMEOUT:-60}"
PY=python3

# The test targets that run the library over non-coherent models, fastest
# and most likely to fail first: the run of one mutation stops at its first
# failing binary. cache_maintenance pins the calls the end-to-end suites
# cannot see; the other backends' suites repeat the mu_imx8 ones over other
# doorbells (the maintenance code is the same; the eviction sequences are
# not).
TESTS=(
  cache_model
  cache_maintenance
  boot
  boot_profiles
  vring_e2e
  faults_mu_imx8
  power_mu_imx8
  power_mbox_am62x
  mailbox_mu_imx8
  faults_mbox_am62x
  mailbox_mbox_am62x
  faults_msgbox_v853
  mailbox_msgbox_v853
  power_msgbox_v853
  faults_mbox_octeon
  mailbox_mbox_octeon
  power_mbox_octeon
)

find_sites() {
  "$PY" - "$@" <<'EOF'
import os, re, sys
roots = ["ipc-traits/src", "vring/src", "rpmsg/src"]
call = re.compile(r"\.(clean|invalidate|clean_invalidate)\(")
words = sys.argv[1:]
for root in roots:
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if not name.endswith(".rs") or name == "tests.rs":
                continue
            path = os.path.join(dirpath, name)
            lines = open(path, encoding="utf-8").read().split("\n")
            skip = False
            pending_cfg_test = False
            for no, line in enumerate(lines, 1):
                stripped = line.strip()
                if skip:
                    if line == "}":
                        skip = False
                    continue
                if stripped == "#[cfg(test)]":
                    pending_cfg_test = True
                    continue
                if pending_cfg_test and re.match(r"mod \w+ \{$", line):
                    skip = True
                    pending_cfg_test = False
                    continue
                pending_cfg_test = False
                if stripped.startswith("//"):
                    continue
                code = line.split("//")[0]
                for k, m in enumerate(call.finditer(code)):
                    site = f"{path}:{no}"
                    if words and not any(w in site for w in words):
                        continue
                    text = stripped if len(stripped) <= 70 else stripped[:67] + "..."
                    print(f"{path}\t{no}\t{k}\t{m.group(1)}\t{text}")
EOF
}

if [[ "${1:-}" == "--list" ]]; then
  shift
  find_sites "$@" | awk -F'\t' '{ printf "%s:%s  %s\n", $1, $2, $5 }'
  exit 0
fi

if [[ -n "$(git status --porcelain)" ]]; then
  echo "mutate-cache: the working tree is not clean; commit or stash first" >&2
  git status --short >&2
  exit 2
fi

restore() {
  git checkout --quiet -- ipc-traits/src vring/src rpmsg/src
}
trap 'restore; echo; echo "mutate-cache: interrupted, sources restored" >&2; exit 130' INT TERM
trap restore EXIT

# --- the no-op twins (appended for the whole run) ------------------------------

cat >>ipc-traits/src/buf.rs <<'EOF'

// mutate-cache.sh: no-op twins of the buffer transitions.
#[allow(missing_docs, dead_code)]
impl<'m, M: SharedMemory + ?Sized> ShmBuf<'m, M, Dirty> {
    #[doc(hidden)]
    pub fn clean_skipped(self) -> Result<ShmBuf<'m, M, Clean>, (Self, M::Error)> {
        Ok(self.into_state())
    }
}
#[allow(missing_docs, dead_code)]
impl<'m, M: SharedMemory + ?Sized> ShmBuf<'m, M, Received> {
    #[doc(hidden)]
    pub fn invalidate_skipped(self) -> Result<ShmBuf<'m, M, Invalidated>, (Self, M::Error)> {
        Ok(self.into_state())
    }
}
EOF
cat >>ipc-traits/src/shm.rs <<'EOF'

// mutate-cache.sh: no-op twins of the window's maintenance.
#[doc(hidden)]
#[allow(missing_docs)]
pub trait SkipMaintenance: SharedMemory {
    fn clean_skipped(&self, _: usize, _: usize) -> Result<(), Self::Error> {
        Ok(())
    }
    fn invalidate_skipped(&self, _: usize, _: usize) -> Result<(), Self::Error> {
        Ok(())
    }
}
impl<T: SharedMemory + ?Sized> SkipMaintenance for T {}
EOF
cat >>ipc-traits/src/cache.rs <<'EOF'

// mutate-cache.sh: no-op twins of the cache operations.
#[doc(hidden)]
#[allow(missing_docs)]
pub trait SkipCacheMaintenance: CacheMaintenance {
    fn clean_skipped(&self, _: LineRange<Self>) {}
    fn invalidate_skipped(&self, _: LineRange<Self>) {}
    fn clean_invalidate_skipped(&self, _: LineRange<Self>) {}
}
impl<C: CacheMaintenance> SkipCacheMaintenance for C {}
EOF
cat >>vring/src/ring.rs <<'EOF'

// mutate-cache.sh: no-op twins of the ring's maintenance.
#[allow(dead_code)]
impl<M: SharedMemory + ?Sized, E: Endian> RingMem<'_, M, E> {
    pub fn clean_skipped(&self, _: usize, _: usize) -> Result<(), Error> {
        Ok(())
    }
    pub fn invalidate_skipped(&self, _: usize, _: usize) -> Result<(), Error> {
        Ok(())
    }
}
EOF

mutate() { # file line occurrence method
  "$PY" - "$@" <<'EOF'
import re, sys
path, line, k, method = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
src = open(path, encoding="utf-8").read().split("\n")
calls = list(re.finditer(r"\.(clean|invalidate|clean_invalidate)\(", src[line - 1]))
m = calls[k]
assert m.group(1) == method
src[line - 1] = src[line - 1][: m.start()] + f".{method}_skipped(" + src[line - 1][m.end():]
crate = "crate" if path.startswith("ipc-traits/") else "ipc_traits"
src.append("#[allow(unused_imports)]")
src.append(f"use {crate}::shm::SkipMaintenance as _;")
src.append("#[allow(unused_imports)]")
src.append(f"use {crate}::cache::SkipCacheMaintenance as _;")
open(path, "w", encoding="utf-8").write("\n".join(src))
EOF
}

BUILD_LOG="$(mktemp)"
cleanup_log() { rm -f "$BUILD_LOG" "$BUILD_LOG.bins" "$BUILD_LOG.orig"; }
trap 'restore; cleanup_log' EXIT

# Builds the test targets; prints "name path" per binary, or fails.
build() {
  local args=()
  for t in "${TESTS[@]}"; do args+=(--test "$t"); done
  cargo test -p conformance --no-run "${args[@]}" --message-format=json 2>"$BUILD_LOG" |
    "$PY" -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])
' >"$BUILD_LOG.bins"
  [[ ${PIPESTATUS[0]} -eq 0 ]]
}

# Runs the binaries in TESTS order; prints the first failure ("" if none).
run_tests() {
  local t bin rc
  for t in "${TESTS[@]}"; do
    bin="$(awk -v t="$t" '$1 == t { print $2 }' "$BUILD_LOG.bins")"
    [[ -n "$bin" ]] || { echo "missing:$t"; return; }
    timeout "$TIMEOUT" "$bin" -q >/dev/null 2>&1
    rc=$?
    if [[ $rc -eq 124 ]]; then echo "$t(timeout)"; return; fi
    if [[ $rc -ne 0 ]]; then echo "$t"; return; fi
  done
  echo ""
}

echo "mutate-cache: baseline (no-op twins added, no site removed)"
if ! build; then
  echo "mutate-cache: the baseline does not build:" >&2
  tail -40 "$BUILD_LOG" >&2
  exit 2
fi
base="$(run_tests)"
if [[ -n "$base" ]]; then
  echo "mutate-cache: the baseline fails in $base; fix that first" >&2
  exit 2
fi

mapfile -t SITES < <(find_sites "$@")
killed=0 survived=0 na=0
ROWS=()
for row in "${SITES[@]}"; do
  IFS=$'\t' read -r file line k method text <<<"$row"
  site="$file:$line"
  [[ "$k" != 0 ]] && site="$site#$k"
  printf '%-34s %-70s ' "$site" "$text"
  cp "$file" "$BUILD_LOG.orig"
  mutate "$file" "$line" "$k" "$method"
  if ! build; then
    verdict="n/a: did not compile"
    na=$((na + 1))
  else
    by="$(run_tests)"
    if [[ -n "$by" ]]; then
      verdict="killed ($by)"
      killed=$((killed + 1))
    else
      verdict="survived"
      survived=$((survived + 1))
    fi
  fi
  echo "$verdict"
  ROWS+=("$site"$'\t'"$text"$'\t'"$verdict")
  cp "$BUILD_LOG.orig" "$file"
done

total=$((killed + survived))
echo
echo "| site | call | verdict |"
echo "|---|---|---|"
for r in "${ROWS[@]}"; do
  IFS=$'\t' read -r s t v <<<"$r"
  echo "| $s | \`${t//|/\\|}\` | $v |"
done
echo
if [[ $total -gt 0 ]]; then
  echo "kill ratio: $killed/$total ($((100 * killed / total)) %), n/a: $na"
else
  echo "kill ratio: no site ran, n/a: $na"
fi
[[ $survived -eq 0 && $na -eq 0 ]]
