# Splits the .text of a firmware image by crate, from `llvm-objdump -d -l -C`
# (disassembly with the DWARF line table and demangled symbols).
#
# Every instruction (and literal pool word) counts its bytes for one crate:
#
# - the crate whose source file the line table names for it. The line table
#   gives the innermost inlined frame, so code that LTO inlined into `main`
#   (or into another crate's function) still counts for the crate it came
#   from;
# - when that file is the toolchain's (core, compiler-builtins: generic code
#   such as `Result::map` or `ptr::read` inlined on the way), the crate of
#   the nearest project source line before it in the same function, else the
#   crate named by the function's own (demangled) symbol: so `core` counts
#   only what no project code pulled in (memcpy, the reset handler's
#   helpers, formatting).
#
# Prints `crate bytes` lines; the crates are rpmsg, vring, ipc-traits,
# mu-imx8 (the library), app (the firmware's own sources), rt (cortex-m,
# cortex-m-rt and other registry crates) and core.

function crate_of_file(f) {
    if (f ~ /\/rpmsg\/src\//) return "rpmsg"
    if (f ~ /\/vring\/src\//) return "vring"
    if (f ~ /\/ipc-traits\/src\//) return "ipc-traits"
    if (f ~ /\/mu-imx8\/src\//) return "mu-imx8"
    if (f ~ /\/firmware\//) return "app"
    if (f ~ /\/\.cargo\/registry\// || f ~ /\/cargo\/registry\//) return "rt"
    return ""                      # the toolchain's sources: sticky
}

function crate_of_symbol(s) {
    if (s ~ /rpmsg::/) return "rpmsg"
    if (s ~ /vring::/) return "vring"
    if (s ~ /ipc_traits::/) return "ipc-traits"
    if (s ~ /mu_imx8::/) return "mu-imx8"
    if (s ~ /^main$/ || s ~ /minimal_remote::/) return "app"
    if (s ~ /cortex_m/ || s ~ /^(Reset|__pre_init|DefaultHandler|HardFault|__stext)/) return "rt"
    return "core"
}

# A function: `1ffe0400 <name>:`
/^[0-9a-f]+ <.*>:$/ {
    sym = $0
    sub(/^[0-9a-f]+ </, "", sym)
    sub(/>:$/, "", sym)
    fn_crate = crate_of_symbol(sym)
    current = fn_crate
    next
}

# A source line: `; /path/file.rs:123`
/^; \// {
    file = $2
    sub(/:[0-9]+$/, "", file)
    c = crate_of_file(file)
    if (c != "") current = c
    next
}

# An instruction or a data word: `addr: hex hex<TAB>mnemonic`
/^ *[0-9a-f]+:/ {
    split($0, parts, "\t")
    raw = parts[1]
    sub(/^ *[0-9a-f]+: */, "", raw)
    n = split(raw, hex, " ")
    bytes = 0
    for (i = 1; i <= n; i++) bytes += length(hex[i]) / 2
    total[current] += bytes
}

END {
    for (c in total) print c, total[c]
}
