#!/usr/bin/env bash
# Builds (or finds in the cache) the user-mode Linux kernel the linux-peer
# tests boot, and prints the path of the stripped binary on stdout.
#
#   linux-peer/build-kernel.sh            build if not cached, print the path
#   linux-peer/build-kernel.sh --lookup   print the path if cached, else exit 1
#   linux-peer/build-kernel.sh --key      print the cache key
#
# Recipe (docs/linux-peer.md, "Shortest path to a CI test", step 1): Debian's
# linux-source-6.12, our two patches (patches/*.patch, GPL-2.0), tinyconfig
# plus kernel.config, `make ARCH=um linux`, strip. The cache key hashes the
# source package version, the fragment, the patches and RECIPE below, so a
# change to any of them rebuilds. Cache location:
#   ${RPMSG_RS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rpmsg-rs}/uml-<key>/linux
# Progress goes to stderr, the full build log to <cache>/build-<key>.log.
set -euo pipefail

# Bump when the build steps below change in a way that changes the binary.
RECIPE=1
SRC_PKG=linux-source-6.12
SRC_TAR=/usr/src/linux-source-6.12.tar.xz
PACKAGES=(linux-source-6.12 flex bison bc busybox-static cpio)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fragment="$here/kernel.config"
cache_base="${RPMSG_RS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rpmsg-rs}"

say() { printf 'build-kernel: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

mode=build
case "${1:-}" in
    "") ;;
    --lookup) mode=lookup ;;
    --key) mode=key ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
esac

installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

ensure_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        installed "$p" || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    say "installing ${missing[*]}"
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
        "${sudo[@]}" apt-get update >&2
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
    fi
}

cache_key() {
    local version
    version=$(dpkg-query -W -f='${Version}' "$SRC_PKG" 2>/dev/null) || return 1
    [[ -n "$version" ]] || return 1
    {
        printf 'recipe %s\npackage %s %s\n' "$RECIPE" "$SRC_PKG" "$version"
        printf 'fragment\n'
        cat "$fragment"
        local p
        for p in "$here"/patches/*.patch; do
            printf 'patch %s\n' "$(basename "$p")"
            cat "$p"
        done
    } | sha256sum | cut -c1-16
}

if [[ $mode == build ]]; then
    ensure_packages
fi
key=$(cache_key) || {
    [[ $mode == build ]] && die "$SRC_PKG is not installed"
    exit 1
}
out_dir="$cache_base/uml-$key"
binary="$out_dir/linux"

case $mode in
    key) echo "$key"; exit 0 ;;
    lookup) [[ -x "$binary" ]] && { echo "$binary"; exit 0; }; exit 1 ;;
esac

if [[ -x "$binary" ]]; then
    say "cached ($key)"
    echo "$binary"
    exit 0
fi

mkdir -p "$cache_base"
# One build at a time per cache; a second caller waits, then finds the result.
exec 9>"$cache_base/.build.lock"
flock 9
if [[ -x "$binary" ]]; then
    say "cached ($key), built by a concurrent run"
    echo "$binary"
    exit 0
fi

[[ -r "$SRC_TAR" ]] || die "$SRC_TAR missing although $SRC_PKG is installed"
work=$(mktemp -d "$cache_base/build-$key.XXXXXX")
log="$cache_base/build-$key.log"
: >"$log"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

run() {
    # Runs a build step with its output in the log; shows the tail on failure.
    if ! "$@" >>"$log" 2>&1; then
        say "step failed: $*"
        tail -n 40 "$log" >&2
        die "kernel build failed (full log: $log)"
    fi
}

start=$SECONDS
jobs=$(nproc 2>/dev/null || echo 2)
say "building UML kernel $key with -j$jobs (log: $log)"

say "unpacking $SRC_TAR"
run tar -xf "$SRC_TAR" -C "$work" --strip-components=1
cd "$work"

for p in "$here"/patches/*.patch; do
    say "applying $(basename "$p")"
    run patch -p1 --forward --batch -i "$p"
done

say "configuring: tinyconfig + kernel.config"
run make ARCH=um tinyconfig
run scripts/kconfig/merge_config.sh -m .config "$fragment"
run make ARCH=um olddefconfig

# merge_config only warns when an option does not survive (an unmet
# dependency): check every line of the fragment against the final .config.
bad=0
while IFS= read -r line; do
    [[ -z "$line" || "$line" == \#* ]] && continue
    name=${line%%=*}
    value=${line#*=}
    if [[ "$value" == n ]]; then
        if grep -q "^$name=" .config; then
            say "config: $name should be unset, got $(grep "^$name=" .config)"
            bad=1
        fi
    elif ! grep -qxF "$line" .config; then
        say "config: wanted $line, got: $(grep -E "^(# )?$name[= ]" .config || echo absent)"
        bad=1
    fi
done <"$fragment"
((bad == 0)) || die "the configuration does not match kernel.config"

say "compiling"
run make ARCH=um -j"$jobs" linux
run strip linux
mkdir -p "$work/out"
mv linux "$work/out/linux"
cp .config "$work/out/config"
printf '%s\n' "$SRC_PKG $(dpkg-query -W -f='${Version}' "$SRC_PKG")" >"$work/out/source"
# Publish atomically: readers either see no directory or a complete one.
rm -rf "$out_dir"
mv -T "$work/out" "$out_dir"

say "built in $((SECONDS - start)) s: $(stat -c %s "$binary") bytes"
echo "$binary"
