#!/usr/bin/env python3
"""Instructions per message by source function, from a callgrind profile.

Usage: cg_breakdown.py PROFILE MESSAGES BINARY [TOP] [--base PROFILE0] [--case NAME]

PROFILE must come from `valgrind --tool=callgrind --dump-instr=yes`. Most of
the stack is inlined into a few symbols in a release build with LTO, so
symbol-level totals say little. Instead every executed instruction address
is resolved with `addr2line -i` to its chain of inlined frames, and its cost
goes to the innermost frame that lies in this repository (so an iterator
from `core` inlined into `Link::flush_kicks` counts for `flush_kicks`).

Prints instructions per message by crate (the directory of that frame;
see `Profile.crates` for instructions with no repository frame) and the
full fences per message (see `is_full_fence`), then (self cost, inlined
callees from outside the repository included) by repository function and by
repository source line with its text.

--base PROFILE0: the same case run with 0 messages; the crate and fence
figures are then PROFILE minus PROFILE0, so set-up and exit cancel out (the
function and line tables stay PROFILE alone, set-up included). --case NAME:
print the crate and fence figures as `bench instr_crate_<crate>_NAME N
instr/msg` and `bench fences_NAME N per/msg` lines. A `warning:` line is
printed when the crates do not add up to the total (more than 0.5 apart).
"""
import bisect
import collections
import os
import re
import shutil
import subprocess
import sys


def parse(path):
    """Returns {(object, address): Ir} and {(object, address): function symbol}.

    Keyed by object and address: callgrind gives the addresses of a shared
    library relative to that library, so they can equal addresses of the
    executable (counted once under both, a hot instruction of ours was
    taken for libc's and its cost went to `other`)."""
    fn_names, ob_names, cost, fn_of = {}, {}, collections.Counter(), {}
    fn = ob = None
    positions = ["line"]
    skip_next = False
    last = [0, 0]

    def fname(rest):
        m = re.match(r"^\((\d+)\)\s*(.*)$", rest.strip())
        if not m:
            return rest.strip()
        if m.group(2):
            fn_names[m.group(1)] = m.group(2)
        return fn_names.get(m.group(1), "?")

    def obname(rest):
        m = re.match(r"^\((\d+)\)\s*(.*)$", rest.strip())
        if not m:
            return rest.strip()
        if m.group(2):
            ob_names[m.group(1)] = m.group(2)
        return ob_names.get(m.group(1), "?")

    with open(path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not line:
                continue
            if line.startswith("positions:"):
                positions = line.split()[1:]
                continue
            if line.startswith("ob="):
                ob = obname(line[3:])
                continue
            if line.startswith("cob="):
                obname(line[4:])
                continue
            if line.startswith("fn="):
                fn = fname(line[3:])
                continue
            if line.startswith("cfn="):
                fname(line[4:])
                continue
            if line.startswith("calls="):
                skip_next = True
                continue
            c = line[0]
            if not (c.isdigit() or c in "+-*" or line.startswith("0x")):
                continue
            parts = line.split()
            vals = []
            for i, tok in enumerate(parts[: len(positions)]):
                if tok == "*":
                    v = last[i]
                elif tok[0] == "+":
                    v = last[i] + int(tok[1:], 0)
                elif tok[0] == "-":
                    v = last[i] - int(tok[1:], 0)
                else:
                    v = int(tok, 0)
                vals.append(v)
            for i, v in enumerate(vals):
                last[i] = v
            if skip_next:
                skip_next = False
                continue
            if positions[0] != "instr":
                sys.exit("profile has no instruction addresses: run callgrind with --dump-instr=yes")
            ir = int(parts[len(positions)]) if len(parts) > len(positions) else 0
            key = (ob, vals[0])
            cost[key] += ir
            fn_of.setdefault(key, fn)
    return cost, fn_of


def load_base(binary, fn_of, mine):
    """Runtime address minus file address (PIE executables are relocated)."""
    out = subprocess.run(["nm", binary], capture_output=True, text=True).stdout
    file_main = None
    for l in out.splitlines():
        p = l.split()
        if len(p) == 3 and p[2] == "main" and p[1] in "Tt":
            file_main = int(p[0], 16)
    runtime_main = min((k[1] for k, f in fn_of.items() if f == "main" and k in mine),
                       default=None)
    if file_main is None or runtime_main is None:
        return 0
    # A relocation moves the image by whole pages. The lowest address the
    # profile attributes to `main` is not always `main`'s first instruction
    # (seen: one byte past it, which put every fence lookup one byte off and
    # printed `fences_16_zerocopy -0.00`), so round to the nearest page.
    page = 4096
    return (runtime_main - file_main + page // 2) // page * page


def resolve(binary, addrs):
    """{address: [(function, file, line), ...] innermost first}."""
    tool = shutil.which("llvm-addr2line") or "addr2line"
    inp = "\n".join(hex(a) for a in addrs) + "\n"
    out = subprocess.run(
        [tool, "-e", binary, "-i", "-f", "-C", "-a"], input=inp, capture_output=True, text=True
    ).stdout.splitlines()
    frames, cur, i = {}, None, 0
    while i < len(out):
        l = out[i]
        if re.fullmatch(r"0x[0-9a-fA-F]+", l.strip()):
            cur = int(l, 16)
            frames[cur] = []
            i += 1
            continue
        fn = l
        loc = out[i + 1] if i + 1 < len(out) else "??:0"
        file, _, ln = loc.rpartition(":")
        ln = ln.split()[0] if ln else "0"
        frames[cur].append((fn, file, int(ln) if ln.isdigit() else 0))
        i += 2
    return frames


_src = {}


def src_line(path, n):
    if path not in _src:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                _src[path] = f.read().split("\n")
        except OSError:
            _src[path] = []
    s = _src[path]
    return s[n - 1].strip() if 0 < n <= len(s) else ""


def short(fn):
    for a, b in (("$LT$", "<"), ("$GT$", ">"), ("$C$", ","), ("$u20$", " "), ("$u7b$", "{"),
                 ("$u7d$", "}"), ("$RF$", "&"), ("$BP$", "*"), ("..", "::"), ("_<", "<")):
        fn = fn.replace(a, b)
    fn = re.sub(r"::h[0-9a-f]{16}$", "", fn)
    for _ in range(4):
        fn = re.sub(r"<[^<>]*>", "", fn)
    return fn


def barriers(binary):
    """{file address: mnemonic} of the instructions that order memory:
    fences, locked read-modify-writes and `xchg` (x86 only)."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", binary], capture_output=True,
                         text=True).stdout
    found = {}
    for l in out.splitlines():
        m = re.match(r"^\s*([0-9a-f]+):\s+(\S+)", l)
        if not m:
            continue
        mn = m.group(2)
        memory_xchg = mn.startswith("xchg") and "(" in l
        if mn in ("mfence", "lfence", "sfence") or mn == "lock" or memory_xchg:
            found[int(m.group(1), 16)] = mn if mn != "lock" else "lock " + l.split()[2]
    return found


def is_full_fence(mnemonic):
    """What `fences_<case>` counts (x86_64): `mfence`, every `lock`-prefixed
    instruction and `xchg` with a memory operand (implicitly locked). These
    are the instructions a `fence(SeqCst)` (LLVM emits `lock or $0, (%rsp)`),
    a SeqCst store (`xchg`) and any atomic read-modify-write (`lock add`,
    `lock cmpxchg`, ...) compile to, and each one is a full barrier on x86
    whatever ordering the source asked for: the disassembly cannot tell a
    Relaxed RMW from a SeqCst one, so all count. `lfence` / `sfence` do not
    order stores before loads and are not counted."""
    return mnemonic is not None and mnemonic not in ("lfence", "sfence")


# Directory of this repository -> crate name in the `bench instr_crate_*` lines.
CRATES = {"ipc-traits": "ipc_traits", "vring": "vring", "rpmsg": "rpmsg", "mu-imx8": "mu_imx8",
          "mbox-am62x": "mbox_am62x", "msgbox-v853": "msgbox_v853", "mbox-octeon": "mbox_octeon",
          "bench": "bench"}
# Printed for every case; the backends only when they ran.
ALWAYS = ("ipc_traits", "vring", "rpmsg", "bench", "libc", "other")
ORDER = ("ipc_traits", "vring", "rpmsg", "mu_imx8", "mbox_am62x", "msgbox_v853", "mbox_octeon",
         "bench", "libc", "other")
# libc's memory and string routines, glibc's ifunc variants included
# (`memcpy`, `__memmove_avx_unaligned_erms`, `__memset_avx2_unaligned_erms`, `bcmp`, ...).
LIBC = re.compile(r"^_*(mem|str|stp|bcmp|bzero|wmem|wcs)")


def symbol_crate(sym):
    """`vring` for `vring::device::Device<M,E,_>::publish_used`; for a trait
    impl `<bench::doorbell::Bell as ipc_traits::..>::notify`, the crate of the
    implementing type (`bench`); for drop glue, the crate of the dropped type."""
    if sym.startswith("core::ptr::drop_in_place<"):
        sym = sym[len("core::ptr::drop_in_place<"):]  # drop glue: the type's crate
    return sym.lstrip("<&*").split("::")[0].split(" ")[-1]


class Profile:
    """One callgrind profile, each executed address resolved to its inlined frames."""

    def __init__(self, path, binary, root):
        self.root = root
        self.cost, self.fn_of = parse(path)
        self.total = sum(self.cost.values())
        self.summary = self.total
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    self.summary = int(line.split()[1])
                    break
        # Only addresses in the binary are resolved against it (libc and the
        # loader are other objects; profiles without `ob=` lines: all).
        exe = os.path.realpath(binary)
        self.mine_addr = {k for k in self.cost
                          if k[0] is None or os.path.realpath(k[0]) == exe}
        self.base = load_base(binary, self.fn_of, self.mine_addr)
        self.frames = resolve(binary, [k[1] - self.base for k in self.mine_addr])

    def chain(self, a):
        """Inlined frames of profile key `a` ((object, address)), innermost first."""
        return self.frames.get(a[1] - self.base, []) if a in self.mine_addr else []

    def mine(self, a):
        """The innermost frame that lies in this repository, or None."""
        return next((f for f in self.chain(a) if f[1].startswith(self.root + os.sep)), None)

    def crates(self):
        """Ir by crate: the directory of the innermost repository frame decides;
        with no repository frame, the crate of the enclosing symbol when it is
        one of ours, `libc` for libc's memory and string routines (by
        callgrind's symbol name), else `other`. Sums to the profile's total."""
        by_crate = collections.Counter()
        for a, ir in self.cost.items():
            mine = self.mine(a)
            sym = self.fn_of.get(a) or ""
            if mine is not None:
                crate = CRATES.get(os.path.relpath(mine[1], self.root).split(os.sep)[0], "other")
            elif a in self.mine_addr and symbol_crate(sym) in CRATES.values():
                # The debug info has only `core` lines here (no inlined-frame
                # record leads back to the caller), but the symbol that holds
                # the instruction is one of ours: it counts for that crate.
                crate = symbol_crate(sym)
            elif LIBC.match(sym):
                crate = "libc"
            else:
                crate = "other"
            by_crate[crate] += ir
        return by_crate

    def fences(self, fence_at):
        """Executions of full fences (see `is_full_fence`) in the binary."""
        return sum(ir for a, ir in self.cost.items()
                   if a in self.mine_addr and is_full_fence(fence_at.get(a[1] - self.base)))


def main():
    args = sys.argv[1:]
    opts = {}
    for flag in ("--base", "--case"):
        if flag in args:
            i = args.index(flag)
            opts[flag] = args[i + 1]
            del args[i:i + 2]
    if len(args) < 3:
        print(__doc__)
        sys.exit(2)
    path, msgs, binary = args[0], int(args[1]), args[2]
    top = int(args[3]) if len(args) > 3 else 30
    root = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    prof = Profile(path, binary, root)
    base_prof = Profile(opts["--base"], binary, root) if "--base" in opts else None
    fence_at = barriers(binary)

    # Per crate, and full fences: the N-message profile minus the 0-message
    # one when given (set-up and exit cancel out), per message.
    by_crate = prof.crates()
    ran = {c for c, v in by_crate.items() if v}
    fences = prof.fences(fence_at)
    total = prof.summary
    if base_prof is not None:
        by_crate.subtract(base_prof.crates())
        fences -= base_prof.fences(fence_at)
        total -= base_prof.summary
    per = total / msgs
    shown = [c for c in ORDER if c in ALWAYS or c in ran]
    case = opts.get("--case")
    setup = "set-up excluded" if base_prof is not None else "set-up included"
    print(f"total {per:.1f} instructions per message over {msgs} messages ({setup})")
    if case:
        for c in shown:
            print(f"bench instr_crate_{c}_{case} {round(by_crate[c] / msgs)} instr/msg")
        arch = subprocess.run(["objdump", "-f", binary], capture_output=True, text=True).stdout
        if "x86-64" in arch:
            print(f"bench fences_{case} {fences / msgs:.2f} per/msg")
        else:
            print(f"warning: fences_{case} not counted: only x86_64 disassembly is understood")
    else:
        print()
        print("instructions per message by crate:")
        for c in shown:
            print(f"{by_crate[c] / msgs:9.1f}  {c}")
    crate_sum = sum(by_crate.values()) / msgs
    if abs(crate_sum - per) > 0.5:
        print(f"warning: the crates add up to {crate_sum:.1f} instructions per message, "
              f"the total is {per:.1f}")

    # The rest is from the N-message profile alone (set-up included).
    by_fn, by_line = collections.Counter(), collections.Counter()
    for a, ir in prof.cost.items():
        mine = prof.mine(a)
        if mine is None:
            chain = prof.chain(a)
            outer = chain[-1][0] if chain else prof.fn_of.get(a, "?")
            by_fn[f"(outside the repository) {short(outer)}"] += ir
            continue
        fn, file, ln = mine
        rel = os.path.relpath(file, root)
        by_fn[f"{rel}: {short(fn)}"] += ir
        by_line[(rel, ln)] += ir
    if base_prof is not None:
        print()
        print(f"below: {prof.total / msgs:.1f} per message over {msgs} messages (set-up included)")
    by_fence = collections.Counter()
    for a, ir in prof.cost.items():
        mn = fence_at.get(a[1] - prof.base) if a in prof.mine_addr else None
        if mn is None:
            continue
        mine = prof.mine(a)
        where = f"{os.path.relpath(mine[1], root)}:{mine[2]} {short(mine[0])}" if mine else "outside"
        by_fence[(mn, where)] += ir
    if by_fence:
        n = sum(by_fence.values())
        print()
        print(f"memory barriers per message: {n / msgs:.2f} (x86: mfence, lock-prefixed, xchg)")
        for (mn, where), v in by_fence.most_common(top):
            print(f"{v / msgs:9.2f}  {mn:<10} {where}")
    print()
    print("instructions per message by function (innermost repository frame):")
    for k, v in by_fn.most_common(top):
        print(f"{v / msgs:9.1f}  {k}")
    print()
    print("instructions per message by source line:")
    for (rel, ln), v in by_line.most_common(top):
        print(f"{v / msgs:9.1f}  {rel}:{ln}  {src_line(os.path.join(root, rel), ln)[:90]}")


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        pass
