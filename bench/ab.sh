#!/usr/bin/env bash
# Two builds of `soquete server` on one cell of the matrix, taking turns, so that a
# change is measured against the build before it on the same machine in the same
# minutes (the machine's own speed moves by more than most changes do).
#
#   bench/ab.sh BASE NEW                       # 8 pairs of 3 s at N=4 W=8 S=16384
#   PAIRS=4 SECS=2 N=50 W=32 S=64 bench/ab.sh BASE NEW -- --json
#   OUT=/dev/null bench/ab.sh BASE NEW         # output thrown away instead of tmpfs
#
# BASE and NEW are `soquete` binaries (e.g. one built from an older commit with
# `git worktree add` and its own CARGO_TARGET_DIR); words after `--` go to both
# servers. The servers print to OUT (default a tmpfs file, truncated each second as
# in bench/run.sh). Each pair's line, then for MB/s, msgs/s, server CPU per MB and per
# message and p50: both medians and the median of the pairs' ratios (NEW / BASE).
set -uo pipefail
[[ $# -ge 2 ]] || { sed -n '2,14p' "$0"; exit 2; }
BASE=$(realpath "$1") NEW=$(realpath "$2")
shift 2
[[ ${1:-} == -- ]] && shift
cd "$(dirname "$0")/.."
for bin in "$BASE" "$NEW"; do
    [[ -x $bin ]] || { echo "ab.sh: $bin is not an executable" >&2; exit 2; }
done
PAIRS=${PAIRS:-8} SECS=${SECS:-3} N=${N:-4} W=${W:-8} S=${S:-16384} THREADS=${THREADS:-1}
PORT=${PORT:-47190}
OUT=${OUT:-/dev/shm/soquete-ab-$$.out}
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release --quiet -p soquete-bench || exit 1
BENCH=$TARGET_DIR/release/soquete-bench
RESULTS=$(mktemp)

# stop_pid, listening, wait_port
source bench/lib.sh
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    rm -f "$RESULTS"
    [[ $OUT == /dev/shm/* ]] && rm -f "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run LABEL BINARY ARGS...: one cell against a fresh server; appends its line.
run() {
    local label=$1 bin=$2 pid trunc= line
    shift 2
    if listening "$PORT"; then
        echo "ab.sh: something already listens on 127.0.0.1:$PORT (PORT=...)" >&2
        exit 1
    fi
    [[ $OUT == /dev/null ]] || : >"$OUT"
    "$bin" server --listen "127.0.0.1:$PORT" --max-clients 1000 "$@" >>"$OUT" 2>/dev/null &
    pid=$!
    PIDS+=("$pid")
    if ! wait_port "$PORT" 5 "$pid"; then
        echo "ab.sh: $label ($bin) did not start listening" >&2
        exit 1
    fi
    if [[ $OUT != /dev/null ]]; then
        (while kill -0 "$pid" 2>/dev/null; do sleep 1; truncate -s 0 "$OUT"; done) &
        trunc=$!
        PIDS+=("$trunc")
    fi
    line=$(timeout $((SECS + 30)) "$BENCH" load --target soquete --addr "127.0.0.1:$PORT" \
        -n "$N" -w "$W" -s "$S" --seconds "$SECS" --threads "$THREADS" --server-pid "$pid" 2>/dev/null)
    stop_pid "$pid"
    [[ -n $trunc ]] && stop_pid "$trunc"
    PIDS=()
    if [[ -z $line ]]; then
        echo "ab.sh: the $label cell gave no result" >&2
        exit 1
    fi
    echo "$label $line" | tee -a "$RESULTS"
}

echo "N=$N W=$W S=$S, $PAIRS pairs of ${SECS} s, output to $OUT"
for _ in $(seq "$PAIRS"); do
    run base "$BASE" "$@"
    run new "$NEW" "$@"
done
awk '
    function field(name,   i, kv) {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == name) return kv[2] }
        return ""
    }
    function median(a, n,   i, j, t) {
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    BEGIN { split("mb_per_s msgs_per_s server_us_per_mb server_us_per_msg p50_us", keys, " ") }
    $1 == "base" { nb++; for (k in keys) b[keys[k], nb] = field(keys[k]) }
    $1 == "new" { nn++; for (k in keys) v[keys[k], nn] = field(keys[k]) }
    END {
        n = nb < nn ? nb : nn
        for (k = 1; k <= 5; k++) {
            key = keys[k]; m = 0
            for (i = 1; i <= n; i++) {
                if (b[key, i] == "" || v[key, i] == "" || b[key, i] == 0) continue
                m++; x[m] = b[key, i]; y[m] = v[key, i]; r[m] = v[key, i] / b[key, i]
            }
            if (m == 0) continue
            printf "%-18s base %10.2f  new %10.2f  new/base %.3f (median of %d pairs)\n", key, median(x, m), median(y, m), median(r, m), m
        }
    }' "$RESULTS"
