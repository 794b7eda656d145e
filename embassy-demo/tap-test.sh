#!/usr/bin/env bash
# The Embassy demo (the core's async driver on embassy-net) against the host programs
# through the Linux kernel's TCP stack, over a TAP device inside a network namespace of
# its own:
#   (a) Embassy client  -> `soquete server`
#   (b) `soquete client` -> Embassy server
#   (c) both at once, the client and the server task in one executor
# Needs root and /dev/net/tun (prints SKIP and exits 0 without them). Touches nothing
# outside the namespace it creates (soquete-embassy-PID, addresses 10.78.0.0/24), and
# removes it on exit, interruption included.
#
# Environment: SOQUETE_BIN, DEMO_BIN (the binaries; built in release mode when unset),
# MESSAGES (per direction, default 3000).
set -uo pipefail

MESSAGES=${MESSAGES:-3000}
KERNEL_ADDR=10.78.0.1
EMBASSY_ADDR=10.78.0.2
PORT=8800

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
# shellcheck source=../scripts/test-lib.sh
. "$top/scripts/test-lib.sh"
why_not=$(tap_unavailable)
if [ -n "$why_not" ]; then
    echo "SKIP: tap-test.sh $why_not"
    exit 0
fi
if [ -z "${SOQUETE_BIN:-}" ]; then
    echo "building soquete (release)"
    (cd "$top" && cargo build --release --quiet -p soquete-host) || {
        echo "FAIL: build of soquete"
        exit 1
    }
    SOQUETE_BIN=${CARGO_TARGET_DIR:-$top/target}/release/soquete
fi
if [ -z "${DEMO_BIN:-}" ]; then
    echo "building soquete-embassy-demo (release)"
    (cd "$here" && cargo build --release --quiet) || {
        echo "FAIL: build of soquete-embassy-demo"
        exit 1
    }
    DEMO_BIN=${CARGO_TARGET_DIR:-$here/target}/release/soquete-embassy-demo
fi

ns=soquete-embassy-$$
work=$(mktemp -d)
pids=()

cleanup_on_exit

# numbers FILE PREFIX: the N of every line `#1 ADDR:PORT: PREFIX N`, one per line.
numbers() {
    sed -n "s/^#1 [0-9.:]*: $2\([0-9]*\)$/\1/p" "$1"
}

ns_with_tap "$KERNEL_ADDR/24"

failed=0
why=""
demo=("$DEMO_BIN" --tap tap0 --address "$EMBASSY_ADDR/24" --time-limit 60)
seq 1 "$MESSAGES" | sed 's/^/line /' >"$work/input"

# check_upload CASE OUT (adds the reason to $why when false): `soquete server` (OUT) printed the Embassy client's messages
# in order and saw it close in order.
check_upload() {
    local got
    got=$(numbers "$2" "embassy message " | wc -l)
    if [ "$got" -eq "$MESSAGES" ] && in_order <(numbers "$2" "embassy message ") &&
        grep -q " left (closed by peer: normal close) after $MESSAGES messages" "$2"; then
        return 0
    fi
    why="$why; soquete server printed $got of $MESSAGES"
    return 1
}

# check_download CASE OUT (adds the reason to $why when false): the Embassy server (OUT) printed `soquete client`'s lines in
# order, from the named client, and the session closed in order.
check_download() {
    local got
    got=$(numbers "$2" "line " | wc -l)
    if [ "$got" -eq "$MESSAGES" ] && in_order <(numbers "$2" "line ") &&
        grep -q "^#1 $KERNEL_ADDR:[0-9]* connected as \"tap-test\"" "$2" &&
        grep -q "^#1 $KERNEL_ADDR:[0-9]* left (closed by peer: normal close) after $MESSAGES messages" "$2"; then
        return 0
    fi
    why="$why; Embassy server printed $got of $MESSAGES"
    return 1
}

# start_soquete_server OUT: in the background; false if it did not start listening.
# Background jobs run `ip netns exec` directly (not through in_ns), so that $! is the
# program itself (ip execs it) and kill reaches it.
start_soquete_server() {
    ip netns exec "$ns" "$SOQUETE_BIN" server --listen "$KERNEL_ADDR:$PORT" >"$1" 2>"${1%.out}.err" &
    pids+=($!)
    wait_for "$1" "^listening on" 10
}

stop_all() {
    kill "${pids[@]}" 2>/dev/null
    wait 2>/dev/null
    pids=()
}

# (a) Embassy client -> soquete server.
why=""
if start_soquete_server "$work/a-server.out"; then
    start=$(date +%s.%N)
    ip netns exec "$ns" timeout 90 "${demo[@]}" --connect "$KERNEL_ADDR:$PORT" --messages "$MESSAGES" \
        >"$work/a-client.out" 2>"$work/a-client.err" &
    pids+=($!)
    wait $!
    client_rc=$?
    secs=$(elapsed "$start")
    wait_for "$work/a-server.out" " left (" 10
    if [ "$client_rc" -eq 0 ] && check_upload a "$work/a-server.out"; then
        echo "PASS (a) Embassy client -> soquete server: $MESSAGES messages, in order, acknowledged, in ${secs}s"
    else
        echo "FAIL (a) Embassy client -> soquete server: client exit $client_rc$why"
        show "$work/a-client.out" "$work/a-client.err" "$work/a-server.out" "$work/a-server.err"
        failed=1
    fi
else
    echo "FAIL (a): soquete server did not start"
    show "$work/a-server.err"
    failed=1
fi
stop_all

# (b) soquete client -> Embassy server, which exits after one session.
why=""
ip netns exec "$ns" timeout 90 "${demo[@]}" --listen "$PORT" --sessions 1 \
    >"$work/b-server.out" 2>"$work/b-server.err" &
server_pid=$!
pids+=("$server_pid")
if wait_for "$work/b-server.out" "^listening on" 10; then
    start=$(date +%s.%N)
    ip netns exec "$ns" timeout 90 "$SOQUETE_BIN" client --connect "$EMBASSY_ADDR:$PORT" --name tap-test \
        <"$work/input" >"$work/b-client.out" 2>"$work/b-client.err" &
    pids+=($!)
    wait $!
    client_rc=$?
    secs=$(elapsed "$start")
    wait "$server_pid"
    server_rc=$?
    if [ "$client_rc" -eq 0 ] && [ "$server_rc" -eq 0 ] && check_download b "$work/b-server.out"; then
        echo "PASS (b) soquete client -> Embassy server: $MESSAGES messages, in order, acknowledged, in ${secs}s"
    else
        echo "FAIL (b) soquete client -> Embassy server: client exit $client_rc, server exit $server_rc$why"
        show "$work/b-client.err" "$work/b-server.out" "$work/b-server.err"
        failed=1
    fi
else
    echo "FAIL (b): the Embassy server did not start"
    show "$work/b-server.err"
    failed=1
fi
stop_all

# (c) Both tasks in one Embassy process at once: its client sends to `soquete server`
# while `soquete client` sends to its server.
why=""
if start_soquete_server "$work/c-server.out"; then
    start=$(date +%s.%N)
    ip netns exec "$ns" timeout 90 "${demo[@]}" --listen "$PORT" --sessions 1 \
        --connect "$KERNEL_ADDR:$PORT" --messages "$MESSAGES" >"$work/c-demo.out" 2>"$work/c-demo.err" &
    demo_pid=$!
    pids+=("$demo_pid")
    if wait_for "$work/c-demo.out" "^listening on" 10; then
        ip netns exec "$ns" timeout 90 "$SOQUETE_BIN" client --connect "$EMBASSY_ADDR:$PORT" --name tap-test \
            <"$work/input" >"$work/c-client.out" 2>"$work/c-client.err" &
        pids+=($!)
        wait $!
        client_rc=$?
        wait "$demo_pid"
        demo_rc=$?
        secs=$(elapsed "$start")
        wait_for "$work/c-server.out" " left (" 10
        if [ "$client_rc" -eq 0 ] && [ "$demo_rc" -eq 0 ] && check_upload c "$work/c-server.out" &&
            check_download c "$work/c-demo.out"; then
            echo "PASS (c) both at once: $MESSAGES messages each way, in order, acknowledged, in ${secs}s"
        else
            echo "FAIL (c) both at once: soquete client exit $client_rc, Embassy demo exit $demo_rc$why"
            show "$work/c-client.err" "$work/c-demo.out" "$work/c-demo.err" "$work/c-server.out"
            failed=1
        fi
    else
        echo "FAIL (c): the Embassy server did not start"
        show "$work/c-demo.err"
        failed=1
    fi
else
    echo "FAIL (c): soquete server did not start"
    show "$work/c-server.err"
    failed=1
fi

exit "$failed"
