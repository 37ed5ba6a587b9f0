#!/usr/bin/env bash
# Removes each memory barrier and I/O barrier of the stack ONE AT A TIME,
# runs the weak-mode suites (conformance's `SimMemory::weak`: the `weak_`
# tests of the mailbox, link, fault and power suites on all four backends,
# and of vring_e2e and boot), and
# prints `killed` or `survived` per site, a table and the kill ratio. Not
# part of CI: one build and up to a minute of tests per site.
#
#   bash conformance/mutate-barriers.sh            every site
#   bash conformance/mutate-barriers.sh --list     the sites, nothing run
#   bash conformance/mutate-barriers.sh gp.rs      only sites whose file:line
#                                                  contains one of the words
#
# What a site is (non-test code; comments, doc examples and test modules
# are skipped):
#   - a fence through the window: `.release_fence()`, `.acquire_fence()`,
#     `.full_fence()` in vring/src and rpmsg/src;
#   - an I/O barrier through a register handle: `.io_wmb()`, `.io_rmb()` in
#     the backends' src (their `sim.rs` models excepted): every doorbell
#     path;
#   - the I/O barriers themselves: the body of `ipc_traits::barrier::io_wmb`
#     and `io_rmb` (what every register handle's default reaches), and the
#     defaults of `Regs32` / `Regs64`.
# How a site is removed: the statement is replaced by `let _ = ();` (for
# the barrier bodies, `let _ = wmb_impl;`, so nothing becomes dead code);
# line numbers do not move.
#
# Killed: a weak test failed, or a test binary ran past its timeout (a hang
# is a failure the suites can see). A barrier that survives must be shown
# redundant and removed, with the reason in a comment at its place.
#
# It runs in its own clone of HEAD (under $CARGO_TARGET_DIR or ./target,
# `mutate-barriers/`), so the working tree must be clean: what is tested is
# what is committed. CARGO_TARGET_DIR is honoured; MUTATE_TIMEOUT (seconds
# per test binary, default 120) bounds each run.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
REPO="$PWD"

export CARGO_TERM_COLOR=never
TIMEOUT="${MUTATE_TIMEOUT:-120}"
PY=python3

# The binaries that hold the weak tests, fastest and most direct first:
# boot; vring_e2e (re-arms on every idle transition); the mailbox suites
# (one shared word behind each doorbell, GP interrupt and interrupt entry:
# a missing I/O barrier fails the round at once); then the fault suite's
# interrupt-only echo and the power suites, which lose a wake-up. A
# mutation's run stops at its first failing binary.
TESTS=(
  boot
  vring_e2e
  mailbox_mu_imx8
  mailbox_mbox_am62x
  mailbox_msgbox_v853
  mailbox_mbox_octeon
  faults_mu_imx8
  faults_mbox_am62x
  faults_msgbox_v853
  faults_mbox_octeon
  power_mu_imx8
  power_mbox_am62x
  power_msgbox_v853
  power_mbox_octeon
)

find_sites() {
  "$PY" - "$@" <<'EOF'
import os, re, sys
words = sys.argv[1:]
roots = [
    ("vring/src", re.compile(r"\.(release_fence|acquire_fence|full_fence)\(\)")),
    ("rpmsg/src", re.compile(r"\.(release_fence|acquire_fence|full_fence)\(\)")),
]
for backend in ["mu-imx8", "mbox-am62x", "msgbox-v853", "mbox-octeon"]:
    roots.append((f"{backend}/src", re.compile(r"\.(io_wmb|io_rmb)\(\)")))
special = {
    "ipc-traits/src/barrier.rs": re.compile(r"^\s*(wmb_impl|rmb_impl)\(\);"),
    "ipc-traits/src/regs.rs": re.compile(r"^\s*crate::barrier::(io_wmb|io_rmb)\(\);"),
}
def scan(path, call):
    lines = open(path, encoding="utf-8").read().split("\n")
    skip = pending = False
    for no, line in enumerate(lines, 1):
        stripped = line.strip()
        if skip:
            if line == "}":
                skip = False
            continue
        if stripped == "#[cfg(test)]":
            pending = True
            continue
        if pending and re.match(r"mod \w+ \{$", line):
            skip, pending = True, False
            continue
        pending = False
        if stripped.startswith("//"):
            continue
        m = call.search(line.split("//")[0])
        if not m:
            continue
        site = f"{path}:{no}"
        if words and not any(w in site for w in words):
            continue
        print(f"{path}\t{no}\t{m.group(1)}\t{stripped}")
for root, call in roots:
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if not name.endswith(".rs") or name in ("tests.rs", "sim.rs"):
                continue
            scan(os.path.join(dirpath, name), call)
for path, call in special.items():
    scan(path, call)
EOF
}

if [[ "${1:-}" == "--list" ]]; then
  shift
  find_sites "$@" | awk -F'\t' '{ printf "%s:%s  %s\n", $1, $2, $4 }'
  exit 0
fi

if [[ -n "$(git status --porcelain)" ]]; then
  echo "mutate-barriers: the working tree is not clean; commit or stash first" >&2
  git status --short >&2
  exit 2
fi

TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
WORK="$TARGET/mutate-barriers"
CLONE="$WORK/src"
export CARGO_TARGET_DIR="$WORK/target"
rm -rf "$CLONE"
mkdir -p "$WORK"
git clone --quiet "$REPO" "$CLONE" || exit 2
# The sources reach ../shared (hardware sheets, golden vectors): the clone
# sees the same one.
[[ -e "$REPO/../shared" ]] && ln -sfn "$(cd "$REPO/../shared" && pwd)" "$WORK/shared"
cd "$CLONE" || exit 2
echo "mutate-barriers: in $CLONE at $(git rev-parse --short HEAD)"

mapfile -t SITES < <(find_sites "$@")

mutate() { # file line
  "$PY" - "$@" <<'EOF'
import re, sys
path, line = sys.argv[1], int(sys.argv[2])
src = open(path, encoding="utf-8").read().split("\n")
text = src[line - 1]
m = re.match(r"^(\s*)(wmb_impl|rmb_impl)\(\);", text)
if m:
    src[line - 1] = f"{m.group(1)}let _ = {m.group(2)};"
else:
    indent = re.match(r"^(\s*)", text).group(1)
    assert text.strip().endswith(");"), text
    src[line - 1] = f"{indent}let _ = (); // mutate-barriers: removed"
open(path, "w", encoding="utf-8").write("\n".join(src))
EOF
}

BUILD_LOG="$WORK/build.log"

# Builds the test targets; writes "name path" per binary, or fails.
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

# Runs the weak tests of each binary in TESTS order; prints the first
# failure ("" if none).
run_tests() {
  local t bin rc
  for t in "${TESTS[@]}"; do
    bin="$(awk -v t="$t" '$1 == t { print $2 }' "$BUILD_LOG.bins")"
    [[ -n "$bin" ]] || { echo "missing:$t"; return; }
    timeout "$TIMEOUT" "$bin" -q weak_ >/dev/null 2>&1
    rc=$?
    if [[ $rc -eq 124 ]]; then echo "$t(timeout)"; return; fi
    if [[ $rc -ne 0 ]]; then echo "$t"; return; fi
  done
  echo ""
}

echo "mutate-barriers: baseline (no site removed)"
if ! build; then
  echo "mutate-barriers: the baseline does not build:" >&2
  tail -40 "$BUILD_LOG" >&2
  exit 2
fi
base="$(run_tests)"
if [[ -n "$base" ]]; then
  echo "mutate-barriers: the baseline fails in $base; fix that first" >&2
  exit 2
fi

killed=0 survived=0 na=0
ROWS=()
for row in "${SITES[@]}"; do
  IFS=$'\t' read -r file line what text <<<"$row"
  site="$file:$line"
  printf '%-36s %-44s ' "$site" "$text"
  cp "$file" "$WORK/orig"
  mutate "$file" "$line"
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
  cp "$WORK/orig" "$file"
done

total=$((killed + survived))
echo
echo "| site | barrier | verdict |"
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
