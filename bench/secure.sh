#!/usr/bin/env bash
# The secure mode's cost in soquete server (BENCHMARKS.md, "Secure sessions"):
# throughput of encrypted sessions beside plain ones for two load cases, and the
# server's CPU time per secure handshake. Only 127.0.0.1; everything it starts is
# stopped on exit.
#
#   bash bench/secure.sh            # SECS=3 per cell, HANDSHAKES=2000
#
# The server's CPU time is read from /proc/PID/stat (user + system) around each run,
# so the figures are CPU time, not wall time: other processes on the machine slow the
# wall clock, not these.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${SECS:-3}
HANDSHAKES=${HANDSHAKES:-2000}
PORT=${PORT:-18871}

cargo build --release -q -p soquete-host -p soquete-bench
SOQ=$PWD/target/release/soquete
BENCH=$PWD/target/release/soquete-bench

DIR=$(mktemp -d)
PID=
cleanup() {
    [[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$DIR"
}
trap cleanup EXIT

"$SOQ" keygen --out "$DIR/server.key" >"$DIR/server.pub" 2>/dev/null
"$SOQ" keygen --out "$DIR/device.key" >"$DIR/device.pub" 2>/dev/null
echo "$(cat "$DIR/device.pub") bench" >"$DIR/allowed"

# Clock ticks of CPU time (user + system) the server has used.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$PID/stat"; }
HZ=$(getconf CLK_TCK)

start_server() {
    "$SOQ" server --listen "127.0.0.1:$PORT" --max-clients 20000 \
        --key "$DIR/server.key" --allowed-keys "$DIR/allowed" >/dev/null 2>"$DIR/server.err" &
    PID=$!
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "server did not start: $(cat "$DIR/server.err")" >&2
    exit 1
}
stop_server() {
    kill "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null || true
    PID=
}

field() { grep -o "$1=[^ ]*" <<<"$2" | head -n1 | cut -d= -f2; }

# run MODE ARGS...: one load run against a fresh server; prints the load line and the
# server's CPU time in ms.
run() {
    local mode=$1
    shift
    local keys=()
    [[ $mode == secure ]] && keys=(--key "$DIR/device.key" --server-key "$DIR/server.pub")
    start_server
    local before after line
    before=$(cpu_ticks)
    line=$(timeout 120 "$BENCH" load --target soquete --addr "127.0.0.1:$PORT" "$@" "${keys[@]}")
    after=$(cpu_ticks)
    stop_server
    echo "$line cpu_ms=$(((after - before) * 1000 / HZ))"
}

echo "# throughput, ${SECS}s per cell (server CPU time per message in µs)"
printf '%-18s %-7s %12s %9s %9s %9s %12s\n' case mode msgs/s MB/s p50_us p99_us cpu_us/msg
for c in "50 32 64" "4 8 16384"; do
    read -r n w s <<<"$c"
    for mode in plain secure; do
        line=$(run "$mode" -n "$n" -w "$w" -s "$s" --seconds "$SECS")
        msgs=$(field msgs_per_s "$line")
        total=$(awk -v r="$msgs" -v t="$SECS" 'BEGIN { printf "%d", r * t }')
        cpu=$(field cpu_ms "$line")
        printf '%-18s %-7s %12s %9s %9s %9s %12s\n' "N=$n W=$w S=$s" "$mode" "$msgs" \
            "$(field mb_per_s "$line")" "$(field p50_us "$line")" "$(field p99_us "$line")" \
            "$(awk -v c="$cpu" -v m="$total" 'BEGIN { printf "%.2f", m ? c * 1000 / m : 0 }')"
    done
done

echo
echo "# handshakes: $HANDSHAKES connections, each one message (server CPU time)"
for mode in plain secure; do
    line=$(run "$mode" -n "$HANDSHAKES" -w 1 -s 64 --count "$HANDSHAKES" --seconds 60)
    cpu=$(field cpu_ms "$line")
    per=$(awk -v c="$cpu" -v n="$HANDSHAKES" 'BEGIN { printf "%.0f", c * 1000 / n }')
    echo "$mode: server CPU ${cpu} ms for $HANDSHAKES connections = ${per} µs per connection"
    [[ $mode == plain ]] && plain_per=$per
    [[ $mode == secure ]] && secure_per=$per
done
awk -v p="$plain_per" -v s="$secure_per" 'BEGIN {
    printf "secure handshake: %d µs of server CPU beyond a plain connection; %.0f secure connections (handshake included) per CPU second\n", s - p, s ? 1e6 / s : 0
}'
