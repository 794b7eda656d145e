#!/usr/bin/env bash
# The soquete benchmark matrix: builds in release, starts soquete server and its peers
# (redis-server, nats-server, mosquitto, a raw TCP echo server, iperf3) on 127.0.0.1,
# runs the same load against each, and prints one table. Stops what it started.
#
#   bench/run.sh                  # about 3 minutes
#   SECS=1 bench/run.sh           # shorter cells
#
# Environment: SECS (seconds per cell, default 3), BASE_PORT (default 47100),
# SCALE_CONNS (default 10000), GEN_THREADS (generator threads, default 1),
# GEN_THREADS_W32 (generator threads at N=50 W=32, default 2), C100K=1 (also hold
# 100,000 connections, C100K_CONNS, about a minute more),
# CARGO_TARGET_DIR (default ./target), OUT (log directory, default a new temp dir),
# CHART (the SVG chart of the table, default $OUT/chart.svg).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SECS=${SECS:-3}
BASE_PORT=${BASE_PORT:-47100}
SCALE_CONNS=${SCALE_CONNS:-10000}
GEN_THREADS=${GEN_THREADS:-1}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$(mktemp -d /tmp/soquete-bench.XXXXXX)}
mkdir -p "$OUT"

P_SOQUETE=$((BASE_PORT + 1))
P_REDIS=$((BASE_PORT + 2))
P_NATS=$((BASE_PORT + 3))
P_MQTT=$((BASE_PORT + 4))
P_ECHO=$((BASE_PORT + 5))
P_IPERF=$((BASE_PORT + 6))
P_REF=$((BASE_PORT + 7))

say() { echo "run.sh: $*" >&2; }

# ---------------------------------------------------------------- cleanup

# stop_pid, wait_port
source bench/lib.sh
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME PORT CMD...: runs CMD in the background with logs in $OUT/NAME.{out,err};
# sets STARTED_PID (empty if it did not come up).
start() {
    local name=$1 port=$2
    shift 2
    "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" &
    local pid=$!
    PIDS+=("$pid")
    if wait_port "$port" 10 "$pid"; then
        STARTED_PID=$pid
    else
        say "$name did not start on port $port: $(tail -n 3 "$OUT/$name.err" "$OUT/$name.out" 2>/dev/null | tr '\n' ' ')"
        stop_pid "$pid"
        STARTED_PID=
    fi
}

# ---------------------------------------------------------------- build and install

# C100K=1 needs 100,000 descriptors in the server and as many in the generator:
# raise the hard limit too (root), within fs.nr_open.
C100K=${C100K:-0}
C100K_CONNS=${C100K_CONNS:-100000}
if [[ $C100K == 1 ]]; then
    want=$((C100K_CONNS + 10000))
    nr_open=$(cat /proc/sys/fs/nr_open 2>/dev/null || echo 1048576)
    ((want > nr_open)) && want=$nr_open
    ulimit -Hn "$want" 2>/dev/null || say "cannot raise the hard open-files limit to $want (not root?)"
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
say "logs in $OUT; open files limit $(ulimit -n)"

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v nats-server >/dev/null || missing+=(nats-server)
command -v mosquitto >/dev/null || missing+=(mosquitto)
command -v iperf3 >/dev/null || missing+=(iperf3)
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    if [[ $(id -u) == 0 ]]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >"$OUT/apt.log" 2>&1 ||
            say "apt-get failed (see $OUT/apt.log); those columns will be empty"
    else
        say "not root: install ${missing[*]} with apt-get; those columns will be empty"
    fi
fi
for d in /usr/sbin /usr/local/sbin /sbin; do [[ :$PATH: == *:$d:* ]] || PATH=$PATH:$d; done

say "building (release)"
CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --quiet -p soquete-bench || {
    say "the benchmark does not build"
    exit 1
}
BENCH=$TARGET_DIR/release/soquete-bench
SOQUETE=
if CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --quiet -p soquete-host 2>"$OUT/build-host.err"; then
    SOQUETE=$TARGET_DIR/release/soquete
else
    say "soquete-host does not build; soquete columns will be empty: $(grep -m1 '^error' "$OUT/build-host.err")"
fi

# ---------------------------------------------------------------- peers

declare -A PORT PID
if command -v redis-server >/dev/null; then
    start redis "$P_REDIS" redis-server --port "$P_REDIS" --bind 127.0.0.1 --save '' --appendonly no \
        --maxmemory 2gb --maxmemory-policy allkeys-lru
    [[ -n $STARTED_PID ]] && PORT[redis]=$P_REDIS PID[redis]=$STARTED_PID
fi
if command -v nats-server >/dev/null; then
    start nats "$P_NATS" nats-server -a 127.0.0.1 -p "$P_NATS"
    [[ -n $STARTED_PID ]] && PORT[nats]=$P_NATS PID[nats]=$STARTED_PID
fi
if command -v mosquitto >/dev/null; then
    cat >"$OUT/mosquitto.conf" <<EOF
listener $P_MQTT 127.0.0.1
allow_anonymous true
persistence false
log_dest stderr
log_type error
EOF
    chmod a+r "$OUT/mosquitto.conf"
    start mqtt "$P_MQTT" mosquitto -c "$OUT/mosquitto.conf"
    [[ -n $STARTED_PID ]] && PORT[mqtt]=$P_MQTT PID[mqtt]=$STARTED_PID
fi
start echo "$P_ECHO" "$BENCH" echo-server --listen "127.0.0.1:$P_ECHO"
[[ -n $STARTED_PID ]] && PORT[echo]=$P_ECHO PID[echo]=$STARTED_PID
# The core's server session on bare mio, printing nothing: the protocol's own cost.
start soquete-ref "$P_REF" "$BENCH" ref-server --listen "127.0.0.1:$P_REF"
[[ -n $STARTED_PID ]] && PORT[soquete-ref]=$P_REF PID[soquete-ref]=$STARTED_PID
if command -v iperf3 >/dev/null; then
    start iperf3 "$P_IPERF" iperf3 -s -B 127.0.0.1 -p "$P_IPERF"
    [[ -n $STARTED_PID ]] && PORT[iperf3]=$P_IPERF PID[iperf3]=$STARTED_PID
fi

# soquete server, started fresh for each variant (text output to a file, or --json).
#
# Its output file lives on tmpfs (SERVER_OUT_DIR, default /dev/shm) so that the table
# measures the server rather than the disk, and is truncated every second so that a
# few seconds at GB/s cannot fill memory (the server appends: O_APPEND). Memory is
# written once before the matrix: on VMs that back guest memory on first touch, the
# first pass over fresh pages is several times slower than any later one.
SERVER_OUT_DIR=${SERVER_OUT_DIR:-/dev/shm}
[[ -d $SERVER_OUT_DIR && -w $SERVER_OUT_DIR ]] || SERVER_OUT_DIR=$OUT
SERVER_OUT=$SERVER_OUT_DIR/soquete-bench-$$.out
warm_mib=$(awk '/MemAvailable/ { m = int($2 / 1024 / 4); print (m < 3072 ? m : 3072) }' /proc/meminfo 2>/dev/null)
dd if=/dev/zero of="$SERVER_OUT" bs=1M count="${warm_mib:-1024}" status=none 2>/dev/null
rm -f "$SERVER_OUT"
SOQ_PID=
TRUNC_PID=
start_soquete() {
    local name=$1
    shift
    SOQ_PID=
    [[ -n $SOQUETE ]] || return 1
    : >"$SERVER_OUT"
    "$SOQUETE" server --listen "127.0.0.1:$P_SOQUETE" --max-clients "${SOQ_MAX_CLIENTS:-20000}" "$@" >>"$SERVER_OUT" 2>"$OUT/$name.err" &
    local pid=$!
    PIDS+=("$pid")
    if ! wait_port "$P_SOQUETE" 10 "$pid"; then
        say "$name did not start: $(tail -n 3 "$OUT/$name.err" | tr '\n' ' ')"
        stop_pid "$pid"
        return 1
    fi
    SOQ_PID=$pid
    (while kill -0 "$pid" 2>/dev/null; do sleep 1; truncate -s 0 "$SERVER_OUT"; done) &
    TRUNC_PID=$!
    PIDS+=("$TRUNC_PID")
}
stop_soquete() {
    [[ -n $SOQ_PID ]] && stop_pid "$SOQ_PID"
    [[ -n $TRUNC_PID ]] && stop_pid "$TRUNC_PID"
    SOQ_PID= TRUNC_PID=
    rm -f "$SERVER_OUT"
}

# ---------------------------------------------------------------- the matrix

# N W S and generator threads. At N=50 W=32 one generator thread saturates before the
# fastest servers do, so that case runs two (GEN_THREADS_W32); the others run
# GEN_THREADS. The table flags a cell whose generator kept its threads >= 90 % busy.
GEN_THREADS_W32=${GEN_THREADS_W32:-2}
CASES=("1 1 64 $GEN_THREADS" "50 1 64 $GEN_THREADS" "50 32 64 $GEN_THREADS_W32" "4 8 16384 $GEN_THREADS")
COLUMNS=(soquete soquete-json soquete-ref redis nats mqtt echo)
declare -A RATE MBS P50 P99 ERR SCPU SCPU_MB SCORES GBUSY

field() { grep -o "$1=[^ ]*" <<<"$2" | head -n1 | cut -d= -f2; }

# cell COLUMN TARGET PORT SERVER_PID N W S THREADS
cell() {
    local col=$1 target=$2 port=$3 spid=$4 n=$5 w=$6 s=$7 t=$8 key="$5 $6 $7 $8" line
    [[ $target == redis ]] && redis-cli -p "$port" flushall >/dev/null 2>&1
    line=$(timeout $((SECS + 30)) "$BENCH" load --target "$target" --addr "127.0.0.1:$port" \
        -n "$n" -w "$w" -s "$s" --seconds "$SECS" --threads "$t" ${spid:+--server-pid "$spid"} 2>"$OUT/cell.err")
    if [[ -z $line ]]; then
        ERR[$col,$key]=$(tail -n1 "$OUT/cell.err")
        say "$col N=$n W=$w S=$s failed: ${ERR[$col,$key]:-timeout}"
        return
    fi
    echo "$col $line" >>"$OUT/results.txt"
    RATE[$col,$key]=$(field msgs_per_s "$line")
    MBS[$col,$key]=$(field mb_per_s "$line")
    P50[$col,$key]=$(field p50_us "$line")
    P99[$col,$key]=$(field p99_us "$line")
    SCPU[$col,$key]=$(field server_us_per_msg "$line")
    SCPU_MB[$col,$key]=$(field server_us_per_mb "$line")
    SCORES[$col,$key]=$(field server_cores "$line")
    GBUSY[$col,$key]=$(field gen_busy "$line")
}

# run_column COLUMN TARGET PORT SERVER_PID
run_column() {
    local col=$1 target=$2 port=$3 spid=$4 c
    for c in "${CASES[@]}"; do
        # shellcheck disable=SC2086
        cell "$col" "$target" "$port" "$spid" $c
    done
}

if start_soquete soquete; then
    say "soquete server (text output) on $P_SOQUETE"
    run_column soquete soquete "$P_SOQUETE" "$SOQ_PID"
    stop_soquete
else
    say "soquete server unavailable; continuing with the peers"
fi
if start_soquete soquete-json --json; then
    say "soquete server (--json) on $P_SOQUETE"
    run_column soquete-json soquete "$P_SOQUETE" "$SOQ_PID"
    stop_soquete
fi
for col in soquete-ref redis nats mqtt echo; do
    [[ -n ${PORT[$col]:-} ]] || continue
    say "$col on ${PORT[$col]}"
    run_column "$col" "${col%-ref}" "${PORT[$col]}" "${PID[$col]}"
done

# Bulk TCP throughput for the large-message case.
IPERF_BULK= IPERF_64=
iperf_mbs() {
    local json
    json=$(timeout $((SECS + 15)) iperf3 -c 127.0.0.1 -p "$P_IPERF" -t "$SECS" -J "$@" 2>/dev/null) || return
    if command -v jq >/dev/null; then
        jq -r '.end.sum_received.bits_per_second / 8e6 | floor' <<<"$json"
    else
        python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 8e6))' <<<"$json"
    fi
}
if [[ -n ${PORT[iperf3]:-} ]]; then
    say "iperf3 bulk and -l 64"
    IPERF_BULK=$(iperf_mbs)
    IPERF_64=$(iperf_mbs -l 64)
fi

# The scale case: many soquete connections, one message each, then W=1 for a while.
SCALE=
if start_soquete soquete-scale; then
    say "scale: $SCALE_CONNS soquete connections"
    SCALE=$(timeout 150 "$BENCH" scale --addr "127.0.0.1:$P_SOQUETE" -n "$SCALE_CONNS" \
        --server-pid "$SOQ_PID" --seconds "$SECS" --timeout 60 2>"$OUT/scale.err")
    [[ -n $SCALE ]] || say "scale run failed: $(tail -n1 "$OUT/scale.err")"
    stop_soquete
fi

# C100K (opt-in, C100K=1): 100,000 connections on one server, from 127.0.0.2-9 so
# that no source address runs out of its ~28,000 ephemeral ports. About a minute;
# every phase has its own time bound, and the server stops with the rest.
C100K_LINE=
if [[ $C100K == 1 ]]; then
    file_max=$(cat /proc/sys/fs/file-max 2>/dev/null)
    say "C100K: $C100K_CONNS connections; open files limit $(ulimit -n), fs.file-max $file_max, fs.nr_open $(cat /proc/sys/fs/nr_open)"
    if (($(ulimit -n) < C100K_CONNS + 1000)); then
        # Without CAP_SYS_RESOURCE (a container) the hard limit cannot be raised: hold
        # as many as fit, and say so.
        C100K_CONNS=$(($(ulimit -n) - 1000))
        say "C100K: the open files limit $(ulimit -n) caps the case at $C100K_CONNS connections"
    fi
    if [[ -n $file_max ]] && ((file_max < 2 * C100K_CONNS + 10000)); then
        say "C100K skipped: fs.file-max $file_max is below twice $C100K_CONNS"
    elif SOQ_MAX_CLIENTS=$((C100K_CONNS + 1000)) start_soquete soquete-c100k; then
        C100K_LINE=$(timeout 400 "$BENCH" scale --addr "127.0.0.1:$P_SOQUETE" -n "$C100K_CONNS" --sources 8 \
            --concurrent 512 --server-pid "$SOQ_PID" --seconds "$SECS" --timeout 120 2>"$OUT/c100k.err")
        [[ -n $C100K_LINE ]] && echo "c100k $C100K_LINE" >>"$OUT/results.txt"
        [[ -n $C100K_LINE ]] || say "C100K run failed: $(tail -n1 "$OUT/c100k.err")"
        stop_soquete
    fi
fi

# ---------------------------------------------------------------- the table

fmt_rate() { awk -v r="$1" 'BEGIN { if (r >= 1e6) printf "%.2fM", r / 1e6; else if (r >= 1e3) printf "%.1fk", r / 1e3; else printf "%.0f", r }'; }
fmt_us() { awk -v u="$1" 'BEGIN { if (u >= 1000) printf "%.1fms", u / 1000; else printf "%.0fus", u }'; }

printf '\n'
printf 'soquete benchmark — %s s per cell, generator threads in T, %s, %s cores, %s\n' \
    "$SECS" "$(date -u +%Y-%m-%d)" "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf 'cells: messages/s (MB/s for 16 KiB) and ack latency p99; ratio = soquete / best of redis, nats, mqtt\n'
printf 'soquete-json: the server with --json; soquete-ref: core session on bare mio, no output (soquete-bench ref-server)\n\n'
printf '%-22s' "case (N W S T)"
for col in "${COLUMNS[@]}"; do printf ' | %-20s' "$col"; done
printf ' | %-14s | %s\n' "ratio vs best" "soquete p50 / echo p50"
for c in "${CASES[@]}"; do
    read -r n w s t <<<"$c"
    printf '%-22s' "N=$n W=$w S=$s T=$t"
    for col in "${COLUMNS[@]}"; do
        r=${RATE[$col,$c]:-}
        if [[ -z $r ]]; then
            printf ' | %-20s' "${ERR[$col,$c]:+error}"
        elif ((s >= 4096)); then
            printf ' | %-20s' "$(fmt_rate "$r") $(printf '%.0f' "${MBS[$col,$c]}")MB/s $(fmt_us "${P99[$col,$c]}")"
        else
            printf ' | %-20s' "$(fmt_rate "$r")/s p99 $(fmt_us "${P99[$col,$c]}")"
        fi
    done
    best=0 bestname=-
    for col in redis nats mqtt; do
        r=${RATE[$col,$c]:-0}
        if awk -v a="$r" -v b="$best" 'BEGIN { exit !(a > b) }'; then best=$r bestname=$col; fi
    done
    ratio=-
    if [[ -n ${RATE[soquete,$c]:-} && $best != 0 ]]; then
        ratio=$(awk -v a="${RATE[soquete,$c]}" -v b="$best" -v n="$bestname" 'BEGIN { printf "%.2fx %s", a / b, n }')
    fi
    echo_ratio=-
    if [[ -n ${P50[soquete,$c]:-} && -n ${P50[echo,$c]:-} ]]; then
        echo_ratio=$(awk -v a="${P50[soquete,$c]}" -v b="${P50[echo,$c]}" 'BEGIN { printf "%.0fus / %.0fus = %.2fx", a, b, a / b }')
    fi
    printf ' | %-14s | %s\n' "$ratio" "$echo_ratio"
done

# Server CPU per message: what each server pays, whatever the generator could drive.
printf '\nserver CPU (user + system, all its threads) per message in us (per MB for 16 KiB), and cores it used;\n'
printf '"*" = the generator kept its threads >= 90%% busy (the cell may measure the generator); ratio = soquete / lowest of redis, nats, mqtt\n\n'
printf '%-22s' "case (N W S T)"
for col in "${COLUMNS[@]}"; do printf ' | %-17s' "$col"; done
printf ' | %-16s | %s\n' "cpu ratio vs best" "soquete / echo msgs/s"
for c in "${CASES[@]}"; do
    read -r n w s t <<<"$c"
    printf '%-22s' "N=$n W=$w S=$s T=$t"
    for col in "${COLUMNS[@]}"; do
        u=${SCPU[$col,$c]:-}
        [[ $s -ge 4096 ]] && u=${SCPU_MB[$col,$c]:-}
        if [[ -z $u ]]; then
            printf ' | %-17s' "-"
            continue
        fi
        sat=$(awk -v b="${GBUSY[$col,$c]:-0}" 'BEGIN { print (b >= 0.9 ? "*" : "") }')
        if ((s >= 4096)); then
            printf ' | %-17s' "$(printf '%.0fus/MB %.2fc%s' "$u" "${SCORES[$col,$c]}" "$sat")"
        else
            printf ' | %-17s' "$(printf '%.3fus %.2fc%s' "$u" "${SCORES[$col,$c]}" "$sat")"
        fi
    done
    best= bestname=-
    for col in redis nats mqtt; do
        u=${SCPU[$col,$c]:-}
        [[ -n $u ]] || continue
        if [[ -z $best ]] || awk -v a="$u" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$u bestname=$col; fi
    done
    ratio=-
    if [[ -n ${SCPU[soquete,$c]:-} && -n $best ]]; then
        ratio=$(awk -v a="${SCPU[soquete,$c]}" -v r="${SCPU[soquete-ref,$c]:-}" -v b="$best" -v n="$bestname" \
            'BEGIN { printf "%.2fx %s", a / b, n; if (r != "") printf " (ref %.2fx)", r / b }')
    fi
    floor=-
    if [[ -n ${RATE[soquete,$c]:-} && -n ${RATE[echo,$c]:-} ]]; then
        floor=$(awk -v a="${RATE[soquete,$c]}" -v e="${RATE[echo,$c]}" 'BEGIN { printf "%.0f%%", 100 * a / e }')
    fi
    printf ' | %-16s | %s\n' "$ratio" "$floor"
done
printf '\n'
if [[ -n $IPERF_BULK ]]; then
    big="4 8 16384 $GEN_THREADS"
    printf 'iperf3 -t %s: bulk %s MB/s, -l 64: %s MB/s' "$SECS" "$IPERF_BULK" "${IPERF_64:-?}"
    if [[ -n ${MBS[soquete,$big]:-} ]]; then
        awk -v a="${MBS[soquete,$big]}" -v b="$IPERF_BULK" 'BEGIN { printf "; soquete N=4 W=8 S=16384 = %.0f%% of bulk", 100 * a / b }'
    fi
    printf '\n'
fi
if [[ -n $SCALE ]]; then
    printf 'scale: %s of %s connections (connect %ss); server RSS %s -> %s KiB = %s bytes/connection (%s KiB under load)\n' \
        "$(field ready "$SCALE")" "$(field connections "$SCALE")" "$(field connect_secs "$SCALE")" \
        "$(field rss_before_kib "$SCALE")" "$(field rss_after_kib "$SCALE")" "$(field rss_per_conn_bytes "$SCALE")" \
        "$(field rss_load_kib "$SCALE")"
    printf '       one message each: %s acked in %ss (%s/s, p99 %s); then W=1 on all: %s/s, p50 %s, p99 %s\n' \
        "$(field oneshot_acked "$SCALE")" "$(field oneshot_secs "$SCALE")" "$(fmt_rate "$(field oneshot_msgs_per_s "$SCALE")")" \
        "$(fmt_us "$(field oneshot_p99_us "$SCALE")")" "$(fmt_rate "$(field timed_msgs_per_s "$SCALE")")" \
        "$(fmt_us "$(field timed_p50_us "$SCALE")")" "$(fmt_us "$(field timed_p99_us "$SCALE")")"
else
    printf 'scale: not measured (soquete server unavailable or the run failed)\n'
fi
if [[ -n $C100K_LINE ]]; then
    L=$C100K_LINE
    printf 'C100K: %s of %s connections from 127.0.0.2-9 in %ss (%s accepted/s); server RSS %s -> %s KiB = %s bytes/connection\n' \
        "$(field ready "$L")" "$(field connections "$L")" "$(field connect_secs "$L")" "$(fmt_rate "$(field accept_per_s "$L")")" \
        "$(field rss_before_kib "$L")" "$(field rss_after_kib "$L")" "$(field rss_per_conn_bytes "$L")"
    printf '       one message each: %s acked in %ss (p99 %s); then W=1 on all: %s/s, p50 %s, p99 %s; %s failures\n' \
        "$(field oneshot_acked "$L")" "$(field oneshot_secs "$L")" "$(fmt_us "$(field oneshot_p99_us "$L")")" \
        "$(fmt_rate "$(field timed_msgs_per_s "$L")")" "$(fmt_us "$(field timed_p50_us "$L")")" \
        "$(fmt_us "$(field timed_p99_us "$L")")" "$(field failures "$L")"
elif [[ $C100K == 1 ]]; then
    printf 'C100K: not measured (see the messages above)\n'
fi
CHART=${CHART:-$OUT/chart.svg}
if [[ -s $OUT/results.txt ]] && "$BENCH" chart --results "$OUT/results.txt" --out "$CHART" 2>"$OUT/chart.err"; then
    printf 'chart: %s\n' "$CHART"
else
    say "no chart: $(tail -n1 "$OUT/chart.err" 2>/dev/null)"
fi
printf 'raw results: %s/results.txt\n' "$OUT"
