#!/usr/bin/env bash
# The smoltcp demo's loopback bytes/s beside smoltcp's own loopback benchmark
# (smoltcp-demo/examples/loopback_benchmark.rs, from the same smoltcp version), in the
# same run, at the same socket buffer sizes (the demo's 4 KiB and the benchmark's
# 64 KiB) and on the same links (the demo's Ethernet-like one: 1,500-byte MTU,
# checksums; and smoltcp's Loopback as it is: 65,535-byte MTU, no checksums).
# Ethernet medium, one connection; the demo sends 1,000-byte messages.
#
#   bench/smoltcp.sh              # about a minute: RUNS=3 pairs per cell, the demo and the
#                                 # benchmark taking turns; medians, and the median ratio
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

# demo_once BUFFERS LINK: bytes/s of one demo run (the wall-time line of its summary).
demo_once() {
    local args=(--clients 1 --messages "$MESSAGES" --size "$SIZE" --quiet --medium ethernet --socket-buffers "$1")
    [[ $2 == raw ]] && args+=(--raw-link)
    local out
    out=$("$DEMO" "${args[@]}") || {
        echo "demo failed ($*): $(tail -n1 <<<"$out")" | tee -a "$FAILED" >&2
        echo 0
        return
    }
    grep '^wall time:' <<<"$out" | grep -o '[0-9]* bytes/s' | cut -d' ' -f1
}

# ref_once BUFFERS LINK: bytes/s of one run of smoltcp's benchmark.
ref_once() {
    local rate
    rate=$("$REF" --socket-buffers "$1" --link "$2" --medium ethernet --bytes "$BYTES" | grep -o 'bytes_per_s=[0-9]*' | cut -d= -f2)
    [[ -n $rate ]] || { echo "benchmark failed ($*)" | tee -a "$FAILED" >&2; rate=0; }
    echo "$rate"
}

printf 'smoltcp demo beside smoltcp loopback_benchmark — %s, %s cores, load %s; %s x %s B, median of %s\n' \
    "$(date -u +%Y-%m-%dT%H:%MZ)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$MESSAGES" "$SIZE" "$RUNS"
[[ $PROFILE == dev ]] && printf '(debug build: a smoke test that both run, not figures)\n'
# The two take turns, and the ratio is the median of each pair's: the machine's speed
# drifts between runs (the benchmark's own figure moves by half here), and a pair run
# back to back sees the same machine.
printf '%-15s | %-14s | %-18s | %-18s | %s\n' "socket buffers" "link" "demo MB/s" "benchmark MB/s" "demo / benchmark"
for buffers in 4096 65536; do
    for link in ethernet-like raw; do
        pairs=()
        for i in $(seq "$RUNS"); do
            pairs+=("$(demo_once "$buffers" "$link") $(ref_once "$buffers" "$link")")
        done
        d=$(printf '%s\n' "${pairs[@]}" | cut -d' ' -f1 | median)
        r=$(printf '%s\n' "${pairs[@]}" | cut -d' ' -f2 | median)
        ratio=$(printf '%s\n' "${pairs[@]}" | awk '$2 > 0 { print 100 * $1 / $2 }' | median)
        awk -v b="$buffers" -v l="$link" -v d="$d" -v r="$r" -v q="$ratio" 'BEGIN {
            printf "%-15s | %-14s | %-18.0f | %-18.0f | %s\n", b, l, d / 1e6, r / 1e6, (q != "" ? sprintf("%.0f%%", q) : "-")
        }'
    done
done
[[ -s $FAILED ]] && exit 1
exit 0
