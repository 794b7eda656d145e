# Shell pieces shared by the end-to-end scripts that run the host programs against
# another network stack (smoltcp-demo/tap-test.sh, embassy-demo/tap-test.sh,
# firmware/qemu-test.sh). Sourced, not run. The sourcing script sets `ns` (the name of
# the network namespace it may create) and `work` (its scratch folder) first, and
# appends the PIDs of its background jobs to `pids`.

# tap_unavailable: prints why a TAP device in a namespace cannot be made here (or is
# not wanted: SOQUETE_TAP=no); prints nothing when it can.
tap_unavailable() {
    if [ "${SOQUETE_TAP:-}" = no ]; then
        echo "SOQUETE_TAP=no"
    elif [ "$(id -u)" -ne 0 ]; then
        echo "needs root (network namespace and TAP device)"
    elif [ ! -c /dev/net/tun ]; then
        echo "/dev/net/tun is missing (no TUN/TAP support)"
    elif ! command -v ip >/dev/null 2>&1; then
        echo "the ip command (iproute2) is missing"
    fi
}

# ns_with_tap ADDR/PREFIX: creates the namespace `$ns` with loopback up and a TAP
# device tap0 holding ADDR/PREFIX; exits the script if the namespace cannot be made.
ns_with_tap() {
    ip netns add "$ns" || { echo "FAIL: cannot create network namespace $ns"; exit 1; }
    in_ns ip link set lo up
    in_ns ip tuntap add dev tap0 mode tap
    in_ns ip addr add "$1" dev tap0
    in_ns ip link set tap0 up
}

in_ns() { ip netns exec "$ns" "$@"; }

# cleanup: stops our jobs and everything left in our namespace, removes both the
# namespace and the scratch folder. Installed for EXIT by `cleanup_on_exit`.
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null
    done
    # Anything still running inside the namespace is ours.
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null
    wait 2>/dev/null
    ip netns del "$ns" 2>/dev/null
    rm -rf "$work"
}

cleanup_on_exit() {
    trap cleanup EXIT
    trap 'echo "interrupted"; exit 130' INT TERM
}

# run_job CMD...: runs CMD in the background and waits for it, so that a signal to the
# script is handled at once (bash runs traps only between foreground commands).
run_job() {
    "$@" <&0 &
    local pid=$!
    pids+=("$pid")
    wait "$pid"
}

# elapsed START: seconds since START (from date +%s.%N).
elapsed() {
    awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.2f", e - s }'
}

# wait_for FILE PATTERN SECONDS [PID]: until a line of FILE matches; false after
# SECONDS, or as soon as PID (when given) has exited.
wait_for() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        if [ -n "${4:-}" ]; then
            kill -0 "$4" 2>/dev/null || return 1
        fi
        sleep 0.1
    done
    return 1
}

# in_order FILE: FILE's lines are exactly the numbers 1..MESSAGES.
in_order() {
    cmp -s "$1" <(seq 1 "$MESSAGES")
}

# show FILE...: the last lines of each FILE (SHOW_LINES, default 5), for a failure.
show() {
    local f
    for f in "$@"; do
        echo "--- $(basename "$f") (last lines)"
        tail -n "${SHOW_LINES:-5}" "$f"
    done
}
