#!/usr/bin/env bash
# Flash and RAM of soquete-core on a Cortex-M4F (thumbv7em-none-eabihf, opt-level "s",
# LTO): a minimal no_std client firmware (bench/footprint) against an empty baseline,
# plus the RAM of one session with Config::DEFAULT capacities.
#
# The firmware uses soquete-core with `default-features = false`: a binary-protocol
# client without the `server`, `plain`, `detect` and `log` features. The same firmware
# is then rebuilt with some of them back (bench/footprint's features) for comparison.
#
#   bench/footprint.sh            # CARGO_TARGET_DIR defaults to ./target
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=thumbv7em-none-eabihf
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/footprint

rustup target list --installed 2>/dev/null | grep -qx "$TARGET" || rustup target add "$TARGET"

# llvm-size / llvm-nm: rustup's llvm-tools if present, else the system's.
SYSROOT_BIN="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin"
find_tool() {
    local name=$1 t
    for t in "$SYSROOT_BIN/$name" "$(command -v "$name" 2>/dev/null)" /usr/lib/llvm-*/bin/"$name"; do
        [[ -n "$t" && -x "$t" ]] && { echo "$t"; return 0; }
    done
    rustup component add llvm-tools >/dev/null 2>&1 && [[ -x "$SYSROOT_BIN/$name" ]] && { echo "$SYSROOT_BIN/$name"; return 0; }
    echo "footprint.sh: $name not found (apt-get install llvm, or rustup component add llvm-tools)" >&2
    return 1
}
SIZE=$(find_tool llvm-size)
NM=$(find_tool llvm-nm)

build() { (cd bench/footprint && CARGO_TARGET_DIR=$TARGET_DIR cargo build --quiet --release --target "$TARGET" "$@"); }
build
BIN=$TARGET_DIR/$TARGET/release

# .text + .rodata of one binary.
flash() { "$SIZE" -A "$1" | awk '$1 == ".text" || $1 == ".rodata" { s += $2 } END { print s + 0 }'; }
section() { "$SIZE" -A "$1" | awk -v s="$2" '$1 == s { n += $2 } END { print n + 0 }'; }
# Sum of symbol sizes in the client whose name matches an awk regex.
# (llvm-nm prints sizes in hex; mawk has no strtonum, so bash converts.)
symbols() {
    local total=0 addr size kind name
    while read -r addr size kind name; do
        [[ -n "$name" && "$name" =~ $1 ]] && total=$((total + 16#$size))
    done < <("$NM" --print-size -C "$BIN/client")
    echo "$total"
}
symbol_size() { "$NM" --print-size "$1" | awk -v n="$2" '$4 == n { print $2 }'; }

CLIENT=$(flash "$BIN/client")
EMPTY=$(flash "$BIN/empty")
CORE=$((CLIENT - EMPTY))
SESSION=$((16#$(symbol_size "$BIN/ram" SESSION_RAM)))
CAPACITY=$((16#$(symbol_size "$BIN/ram" SESSION_CAPACITY)))

echo "soquete-core footprint on $TARGET (opt-level \"s\", LTO, panic=abort; $(rustc --version))"
echo "  soquete-core with default-features = false: binary client only, no log calls"
echo "  client firmware   .text $(section "$BIN/client" .text) + .rodata $(section "$BIN/client" .rodata) = $CLIENT bytes"
echo "  empty baseline    .text $(section "$BIN/empty" .text) + .rodata $(section "$BIN/empty" .rodata) = $EMPTY bytes"
echo "  core flash        $CORE bytes ($(awk -v b="$CORE" 'BEGIN { printf "%.1f", b / 1024 }') KiB; target <= 8192)"
echo "    of which session/wire code (incl. inlined into _start): $(symbols 'soquete_core|_start') bytes"
echo "    core::fmt (Display, ERR lines, log):                    $(symbols 'core::fmt|fmt::|Formatter|pad_integral') bytes"
echo "    compiler_builtins (memcpy/memmove/memset, u64 div):     $(symbols 'compiler_builtins|__aeabi') bytes"
echo "  session RAM       size_of::<Session<[u8; $((CAPACITY / 2))], [u8; $((CAPACITY / 2))]>>() = $SESSION bytes on $TARGET"
echo "                    capacity $CAPACITY + overhead $((SESSION - CAPACITY)) bytes (target overhead <= 512)"
echo "  largest symbols of the client firmware:"
"$NM" --print-size --size-sort -C "$BIN/client" | tail -12 | while read -r addr size kind name; do
    printf '    %6d  %s\n' "$((16#$size))" "$name"
done

# The same client with features added back (each build replaces the last).
echo "  core flash with features added back (bench/footprint features):"
variant() {
    local label=$1 features=$2
    build --features "$features"
    local core=$(($(flash "$BIN/client") - EMPTY))
    printf '    %6d  %s\n' "$core" "$label"
}
variant "+ log: the core's log calls, no logger installed" core-log
variant "+ log, log/release_max_level_off (log calls compiled out)" "core-log log-off"
variant "+ log, and a logger formatting at trace level (with core::fmt)" "core-log logger"
variant "+ explicit-ack (the firmware does not call set_explicit_ack)" explicit-ack
variant "default features (server, plain, detect, explicit-ack, log), no logger" full

# The secure layer (PROTOCOL.md §10, the core's `noise` feature) on both Cortex-M
# profiles: secure_client is the client above over the secure layer with 512-byte
# record buffers; secure_client - client is what the layer adds.
echo "  secure client (core feature noise: Noise IK, X25519, ChaCha20-Poly1305, BLAKE2s):"
for target in thumbv7em-none-eabihf thumbv6m-none-eabi; do
    rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target"
    (cd bench/footprint && CARGO_TARGET_DIR=$TARGET_DIR cargo build --quiet --release --target "$target" --features secure)
    sbin=$TARGET_DIR/$target/release
    plain=$(flash "$sbin/client")
    secure=$(flash "$sbin/secure_client")
    added=$((secure - plain))
    ram=$((16#$(symbol_size "$sbin/secure_ram" SECURE_RAM)))
    bufs=$((16#$(symbol_size "$sbin/secure_ram" SECURE_CAPACITY)))
    target_kib=$([[ $target == thumbv6m-none-eabi ]] && echo 28 || echo 24)
    echo "    $target:"
    echo "      secure client firmware .text + .rodata = $secure bytes; plain client $plain bytes"
    echo "      flash added by the secure layer  $added bytes ($(awk -v b="$added" 'BEGIN { printf "%.1f", b / 1024 }') KiB; target <= $target_kib KiB)"
    echo "      secure client over empty baseline $((secure - $(flash "$sbin/empty"))) bytes"
    echo "      secure layer RAM  size_of::<Secure<[u8; $((bufs / 2))], [u8; $((bufs / 2))]>>() = $ram bytes: buffers $bufs + state $((ram - bufs))"
done
build
