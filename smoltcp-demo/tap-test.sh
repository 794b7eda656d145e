#!/usr/bin/env bash
# The smoltcp demo against the host programs through the Linux kernel's TCP stack, over
# a TAP device inside a network namespace of its own:
#   (a) smoltcp client  -> `soquete server`
#   (b) `soquete client` -> smoltcp server
# Needs root and /dev/net/tun (prints SKIP and exits 0 without them). Touches nothing
# outside the namespace it creates (soquete-tap-PID, addresses 10.77.0.0/24), and
# removes it on exit, interruption included.
#
# Environment: SOQUETE_BIN, DEMO_BIN (the binaries; built in release mode when unset),
# MESSAGES (per direction, default 3000).
set -uo pipefail

MESSAGES=${MESSAGES:-3000}
KERNEL_ADDR=10.77.0.1
SMOLTCP_ADDR=10.77.0.2
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
if [ -z "${SOQUETE_BIN:-}" ] || [ -z "${DEMO_BIN:-}" ]; then
    echo "building soquete and soquete-smoltcp-demo (release)"
    (cd "$top" && cargo build --release --quiet -p soquete-host -p soquete-smoltcp-demo) || {
        echo "FAIL: build"
        exit 1
    }
    target=${CARGO_TARGET_DIR:-$top/target}
    SOQUETE_BIN=${SOQUETE_BIN:-$target/release/soquete}
    DEMO_BIN=${DEMO_BIN:-$target/release/soquete-smoltcp-demo}
fi

ns=soquete-tap-$$
work=$(mktemp -d)
pids=()

cleanup_on_exit

ns_with_tap "$KERNEL_ADDR/24"

failed=0
tap_args=(--tap tap0 --address "$SMOLTCP_ADDR/24")

# (a) smoltcp client -> soquete server. Demo messages count from 0; the printed lines
# are checked for count and order.
# Background jobs run `ip netns exec` directly (not through in_ns), so that $! is the
# program itself (ip execs it) and kill reaches it.
ip netns exec "$ns" "$SOQUETE_BIN" server --listen "$KERNEL_ADDR:$PORT" >"$work/a-server.out" 2>"$work/a-server.err" &
pids+=($!)
if wait_for "$work/a-server.out" "^listening on" 10; then
    start=$(date +%s.%N)
    run_job ip netns exec "$ns" timeout 90 "$DEMO_BIN" "${tap_args[@]}" --connect "$KERNEL_ADDR:$PORT" \
        --name smoltcp --messages "$MESSAGES" --size 48 --time-limit 60s >"$work/a-client.out" 2>"$work/a-client.err"
    client_rc=$?
    secs=$(elapsed "$start")
    wait_for "$work/a-server.out" " left (" 10
    got=$(grep -c ": client 0 message " "$work/a-server.out")
    sed -n 's/.*: client 0 message \([0-9]*\) .*/\1/p' "$work/a-server.out" | awk '{print $1 + 1}' >"$work/a-seq"
    if [ "$client_rc" -eq 0 ] && [ "$got" -eq "$MESSAGES" ] && in_order "$work/a-seq" &&
        grep -q " left (closed by peer: normal close) after $MESSAGES messages" "$work/a-server.out"; then
        echo "PASS (a) smoltcp client -> soquete server: $got messages, in order, acknowledged, in ${secs}s"
    else
        echo "FAIL (a) smoltcp client -> soquete server: client exit $client_rc, server printed $got of $MESSAGES"
        show "$work/a-client.err" "$work/a-server.out" "$work/a-server.err"
        failed=1
    fi
else
    echo "FAIL (a): soquete server did not start"
    show "$work/a-server.err"
    failed=1
fi
kill "${pids[@]}" 2>/dev/null
wait 2>/dev/null
pids=()

# (b) soquete client -> smoltcp server, which exits after one session.
ip netns exec "$ns" timeout 120 "$DEMO_BIN" "${tap_args[@]}" --listen "$PORT" --sessions 1 \
    >"$work/b-server.out" 2>"$work/b-server.err" &
server_pid=$!
pids+=("$server_pid")
if wait_for "$work/b-server.out" "^listening on" 10; then
    seq 1 "$MESSAGES" | sed 's/^/line /' >"$work/b-input"
    start=$(date +%s.%N)
    run_job ip netns exec "$ns" timeout 90 "$SOQUETE_BIN" client --connect "$SMOLTCP_ADDR:$PORT" --name tap-test \
        <"$work/b-input" >"$work/b-client.out" 2>"$work/b-client.err"
    client_rc=$?
    secs=$(elapsed "$start")
    wait "$server_pid"
    server_rc=$?
    pids=()
    got=$(grep -c "^#1 $KERNEL_ADDR:[0-9]*: line " "$work/b-server.out")
    sed -n 's/^#1 [0-9.:]*: line \([0-9]*\)$/\1/p' "$work/b-server.out" >"$work/b-seq"
    if [ "$client_rc" -eq 0 ] && [ "$server_rc" -eq 0 ] && [ "$got" -eq "$MESSAGES" ] &&
        in_order "$work/b-seq" &&
        grep -q "^#1 $KERNEL_ADDR:[0-9]* connected as \"tap-test\"" "$work/b-server.out"; then
        echo "PASS (b) soquete client -> smoltcp server: $got messages, in order, acknowledged, in ${secs}s"
    else
        echo "FAIL (b) soquete client -> smoltcp server: client exit $client_rc, server exit $server_rc, server printed $got of $MESSAGES"
        show "$work/b-client.err" "$work/b-server.out" "$work/b-server.err"
        failed=1
    fi
else
    echo "FAIL (b): the smoltcp server did not start"
    show "$work/b-server.err"
    failed=1
fi

exit "$failed"
