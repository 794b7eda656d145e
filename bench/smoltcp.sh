#!/usr/bin/env bash
# The smoltcp demo's loopback bytes/s beside smoltcp's own loopback benchmark
# (smoltcp-demo/examples/loopback_benchmark.rs, from the same smoltcp version), in the
# same run, at the same socket buffer sizes (the demo's 4 KiB and the benchmark's
# 64 KiB) and on the same links (the demo's Ethernet-like one: 1,500-byte MTU,
# checksums; and smoltcp's Loopback as it is: 65,535-byte MTU, no checksums).
# Ethernet medium, one connection; the demo sends 1,000-byte messages.
#
#   bench/smoltcp.sh              # about 30 s: median of RUNS=3 runs per cell
#   SMOKE=1 bench/smoltcp.sh      # a few seconds: one small run per cell, debug build
#                                 # (the one `cargo test` made already; for CI)
set -uo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
SMOKE=${SMOKE:-0}
RUNS=${RUNS:-3}
MESSAGES=${MESSAGES:-300000}
PROFILE=release
if [[ $SMOKE == 1 ]]; then
    RUNS=1
    MESSAGES=5000
    PROFILE=dev
fi
SIZE=1000
BYTES=$((MESSAGES * SIZE))

CARGO_TARGET_DIR=$TARGET_DIR cargo build --profile "$PROFILE" --quiet -p soquete-smoltcp-demo \
    --bin soquete-smoltcp-demo --example loopback_benchmark || exit 1
DIR=$TARGET_DIR/$([[ $PROFILE == dev ]] && echo debug || echo release)
DEMO=$DIR/soquete-smoltcp-demo
REF=$DIR/examples/loopback_benchmark

FAILED=$(mktemp)
trap 'rm -f "$FAILED"' EXIT

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# demo_rate BUFFERS LINK: bytes/s of the demo (the wall-time line of its summary).
demo_rate() {
    local args=(--clients 1 --messages "$MESSAGES" --size "$SIZE" --quiet --medium ethernet --socket-buffers "$1")
    [[ $2 == raw ]] && args+=(--raw-link)
    local i out
    for i in $(seq "$RUNS"); do
        out=$("$DEMO" "${args[@]}") || {
            echo "demo failed ($*): $(tail -n1 <<<"$out")" | tee -a "$FAILED" >&2
            echo 0
            continue
        }
        grep '^wall time:' <<<"$out" | grep -o '[0-9]* bytes/s' | cut -d' ' -f1
    done | median
}

# ref_rate BUFFERS LINK: bytes/s of smoltcp's benchmark.
ref_rate() {
    local i
    for i in $(seq "$RUNS"); do
        "$REF" --socket-buffers "$1" --link "$2" --medium ethernet --bytes "$BYTES" | grep -o 'bytes_per_s=[0-9]*' | cut -d= -f2 ||
            echo "benchmark failed ($*)" | tee -a "$FAILED" >&2
    done | median
}

printf 'smoltcp demo beside smoltcp loopback_benchmark — %s, %s cores, load %s; %s x %s B, median of %s\n' \
    "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$MESSAGES" "$SIZE" "$RUNS"
[[ $PROFILE == dev ]] && printf '(debug build: a smoke test that both run, not figures)\n'
printf '%-15s | %-14s | %-18s | %-18s | %s\n' "socket buffers" "link" "demo MB/s" "benchmark MB/s" "demo / benchmark"
for buffers in 4096 65536; do
    for link in ethernet-like raw; do
        d=$(demo_rate "$buffers" "$link")
        r=$(ref_rate "$buffers" "$link")
        awk -v b="$buffers" -v l="$link" -v d="$d" -v r="$r" 'BEGIN {
            printf "%-15s | %-14s | %-18.0f | %-18.0f | %s\n", b, l, d / 1e6, r / 1e6, (r > 0 ? sprintf("%.0f%%", 100 * d / r) : "-")
        }'
    done
done
[[ -s $FAILED ]] && exit 1
exit 0
