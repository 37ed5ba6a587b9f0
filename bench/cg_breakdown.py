#!/usr/bin/env python3
"""Instructions per message by source function, from a callgrind profile.

Usage: cg_breakdown.py PROFILE MESSAGES BINARY [TOP]

PROFILE must come from `valgrind --tool=callgrind --dump-instr=yes`. Most of
the stack is inlined into a few symbols in a release build with LTO, so
symbol-level totals say little. Instead every executed instruction address
is resolved with `addr2line -i` to its chain of inlined frames, and its cost
goes to the innermost frame that lies in this repository (so an iterator
from `core` inlined into `Link::flush_kicks` counts for `flush_kicks`).

Prints instructions per message (self cost, inlined callees from outside the
repository included) by repository function, then by repository source line
with its text.
"""
import bisect
import collections
import os
import re
import shutil
import subprocess
import sys


def parse(path):
    """Returns {address: Ir} and {address: function symbol}."""
    fn_names, cost, fn_of = {}, collections.Counter(), {}
    fn = None
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

    with open(path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not line:
                continue
            if line.startswith("positions:"):
                positions = line.split()[1:]
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
            cost[vals[0]] += ir
            fn_of.setdefault(vals[0], fn)
    return cost, fn_of


def load_base(binary, cost, fn_of):
    """Runtime address minus file address (PIE executables are relocated)."""
    out = subprocess.run(["nm", binary], capture_output=True, text=True).stdout
    file_main = None
    for l in out.splitlines():
        p = l.split()
        if len(p) == 3 and p[2] == "main" and p[1] in "Tt":
            file_main = int(p[0], 16)
    runtime_main = min((a for a, f in fn_of.items() if f == "main"), default=None)
    if file_main is None or runtime_main is None:
        return 0
    return runtime_main - file_main


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


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        sys.exit(2)
    path, msgs, binary = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    top = int(sys.argv[4]) if len(sys.argv) > 4 else 30
    root = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    cost, fn_of = parse(path)
    total = sum(cost.values())
    base = load_base(binary, cost, fn_of)
    frames = resolve(binary, [a - base for a in cost])
    by_fn, by_line, by_crate = collections.Counter(), collections.Counter(), collections.Counter()
    for a, ir in cost.items():
        chain = frames.get(a - base, [])
        mine = next((f for f in chain if f[1].startswith(root)), None)
        if mine is None:
            outer = chain[-1][0] if chain else fn_of.get(a, "?")
            key = f"(outside the repository) {short(outer)}"
            by_fn[key] += ir
            by_crate["(outside)"] += ir
            continue
        fn, file, ln = mine
        rel = os.path.relpath(file, root)
        by_fn[f"{rel}: {short(fn)}"] += ir
        by_line[(rel, ln)] += ir
        by_crate[rel.split("/")[0]] += ir
    print(f"total {total} Ir = {total / msgs:.1f} per message over {msgs} messages (setup included)")
    fences = barriers(binary)
    by_fence = collections.Counter()
    for a, ir in cost.items():
        mn = fences.get(a - base)
        if mn is None:
            continue
        chain = frames.get(a - base, [])
        mine = next((f for f in chain if f[1].startswith(root)), None)
        where = f"{os.path.relpath(mine[1], root)}:{mine[2]} {short(mine[0])}" if mine else "outside"
        by_fence[(mn, where)] += ir
    if by_fence:
        n = sum(by_fence.values())
        print()
        print(f"memory barriers per message: {n / msgs:.2f} (x86: mfence, lock-prefixed, xchg)")
        for (mn, where), v in by_fence.most_common(top):
            print(f"{v / msgs:9.2f}  {mn:<10} {where}")
    print()
    print("instructions per message by crate:")
    for k, v in by_crate.most_common():
        print(f"{v / msgs:9.1f}  {k}")
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
