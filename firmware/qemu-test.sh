#!/usr/bin/env bash
# The firmware in QEMU against the host programs, on both boards:
#   mps2-an386 (Cortex-M4F, thumbv7em-none-eabihf) and mps2-an385 (Cortex-M3, built
#   for thumbv6m-none-eabi), each
#   - over QEMU's user-mode network (no privileges):
#       firmware client -> `soquete server` on 127.0.0.1
#       `soquete client` -> firmware server, through a hostfwd on 127.0.0.1
#   - over a TAP device in a network namespace of its own (root only; SKIP otherwise):
#       the same two directions, through the Linux kernel's TCP stack.
#   - the secure image (cargo feature `secure`), both networks:
#       firmware secure client -> secure_responder (the core's example: the secure
#       layer and a server session), with keys made for the run;
#   - the secure image against `soquete server --key --allowed-keys --require-auth`,
#       with keys that `soquete keygen` made, given in their text forms.
# Every case checks both ends: the firmware's verdict (QEMU's exit status) and its
# count; the host program's exit status, and the messages it printed or had
# acknowledged, in order. One PASS or FAIL line per case, with count and time. More
# cases check that the verdict fails: a client with no server, bad parameters, a
# server that misses a message; a secure client given a wrong server key, one whose
# key the server does not allow, and one whose server's answer does not authenticate
# (each must send no message). Then each image's flash, RAM and stack.
#
# Installs nothing: it says what is missing. Touches no network but loopback and the
# namespace it creates (soquete-qemu-PID, 10.78.0.0/24), which it removes on exit.
#
# Environment: MESSAGES (per case, default 10000), SOQUETE_BIN (the host binary; built
# in release mode when unset), QEMU_TIMEOUT (seconds per QEMU run, default 60),
# SOQUETE_TAP=no (skip the TAP cases, as without root).
set -uo pipefail

MESSAGES=${MESSAGES:-10000}
QEMU_TIMEOUT=${QEMU_TIMEOUT:-60}
# The firmware gives up a little before QEMU is killed, to say why.
FW_TIME=$((QEMU_TIMEOUT > 15 ? QEMU_TIMEOUT - 10 : QEMU_TIMEOUT))
KERNEL_ADDR=10.78.0.1
GUEST_ADDR=10.78.0.2
GUEST_PORT=8800

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")

missing=()
command -v qemu-system-arm >/dev/null 2>&1 ||
    missing+=("qemu-system-arm (Debian/Ubuntu: apt-get install --no-install-recommends qemu-system-arm)")
command -v cargo >/dev/null 2>&1 || missing+=("cargo (https://rustup.rs)")
command -v python3 >/dev/null 2>&1 || missing+=("python3 (picks a free port for the hostfwd)")
if command -v rustup >/dev/null 2>&1; then
    for t in thumbv7em-none-eabihf thumbv6m-none-eabi; do
        rustup target list --installed | grep -qx "$t" || missing+=("the Rust target $t (rustup target add $t)")
    done
fi
if [ "${#missing[@]}" -gt 0 ]; then
    for m in "${missing[@]}"; do echo "MISSING: $m"; done
    echo "FAIL: qemu-test.sh cannot run without the above"
    exit 2
fi
# shellcheck source=../scripts/test-lib.sh
. "$top/scripts/test-lib.sh"
tap=$(tap_unavailable)
tap=${tap:-yes}
SHOW_LINES=6

ns=soquete-qemu-$$
work=$(mktemp -d)
echo "building the firmware for both boards (plain and secure), soquete and secure_responder (release)"
fw_target=${CARGO_TARGET_DIR:-$here/target}
for t in thumbv7em-none-eabihf thumbv6m-none-eabi; do
    # The secure image first, copied aside: both builds leave their image at the same path.
    (cd "$here" && cargo build --release --quiet --target "$t" --features secure) ||
        { echo "FAIL: secure firmware build for $t"; exit 1; }
    mkdir -p "$work/secure/$t"
    cp "$fw_target/$t/release/soquete-firmware" "$work/secure/$t/"
    (cd "$here" && cargo build --release --quiet --target "$t") || { echo "FAIL: firmware build for $t"; exit 1; }
done
if [ -z "${SOQUETE_BIN:-}" ]; then
    (cd "$top" && cargo build --release --quiet -p soquete-host) || { echo "FAIL: soquete build"; exit 1; }
    SOQUETE_BIN=${CARGO_TARGET_DIR:-$top/target}/release/soquete
fi
(cd "$top" && cargo build --release --quiet -p soquete-core --example secure_responder --features noise) ||
    { echo "FAIL: secure_responder build"; exit 1; }
RESPONDER=${CARGO_TARGET_DIR:-$top/target}/release/examples/secure_responder
pids=()
cleanup_on_exit

# fw_time FILE: the session's duration and rate as the firmware measured them.
fw_time() {
    sed -n 's/^PASS .* in \([0-9.]* s\) (\([0-9]*\) msg\/s)$/ (firmware: session \1, \2 msg\/s)/p' "$1"
}
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# soquete_server NAME COMMAND...: starts COMMAND (a `soquete server`, perhaps inside the
# namespace) with its output in NAME's files and waits until it listens; sets `server`
# (its pid) and `port` (declare them local first). FAIL and status 1 if it does not.
soquete_server() {
    local name=$1 out=$work/$1
    shift
    "$@" >"$out.server" 2>"$out.server-err" &
    server=$!
    pids+=("$server")
    if ! wait_for "$out.server" "^listening on" 10 "$server"; then
        echo "FAIL $name: soquete server did not start"
        show "$out.server-err"
        failed=1
        return 1
    fi
    port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$out.server" | head -n 1)
}

# server_printed OUT SERVER: once session #1 has left (or 10 s), stops `soquete server`
# and sets `got` to the messages it printed, their numbers in OUT.seq.
server_printed() {
    local out=$1 server=$2
    wait_for "$out.server" " left (" 10 "$server"
    kill "$server" 2>/dev/null
    wait "$server" 2>/dev/null
    got=$(grep -c '^#1 [0-9.]*:[0-9]*: [0-9]*$' "$out.server")
    sed -n 's/^#1 [0-9.]*:[0-9]*: \([0-9]*\)$/\1/p' "$out.server" >"$out.seq"
}

# client_verdict NAME WHAT FW_PASS CONNECTED: PASS or FAIL for a firmware client that
# was to send MESSAGES messages to `soquete server` (the case's fw_rc and secs, and
# server_printed's got): the firmware's line starting with FW_PASS says all were sent
# and acknowledged, the server printed CONNECTED, every message in order, and the
# session's orderly end.
client_verdict() {
    local name=$1 what=$2 fw_pass=$3 connected=$4 out=$work/$1
    if [ "$fw_rc" -eq 0 ] &&
        grep -q "$fw_pass: $MESSAGES of $MESSAGES messages sent, $MESSAGES acknowledged" "$out.fw" &&
        [ "$got" -eq "$MESSAGES" ] && in_order "$out.seq" &&
        grep -q "$connected" "$out.server" &&
        grep -q " left (closed by peer: normal close) after $MESSAGES messages" "$out.server"; then
        echo "PASS $name: $what: $got messages, in order, acknowledged, in ${secs}s$(fw_time "$out.fw")"
    else
        echo "FAIL $name: $what: QEMU exit $fw_rc, server printed $got of $MESSAGES"
        show "$out.fw" "$out.fw-err" "$out.server" "$out.server-err"
        failed=1
    fi
}

failed=0
# client_case NAME BOARD KERNEL NIC NET_ARGS LISTEN CONNECT_HOST [NS_EXEC...]:
# `soquete server` listens on LISTEN (port 0: any), the firmware connects to
# CONNECT_HOST and the port the server printed.
client_case() {
    local name=$1 board=$2 kernel=$3 nic=$4 net=$5 listen=$6 host=$7
    shift 7
    local run=("$@") out=$work/$name server port
    soquete_server "$name" "${run[@]}" "$SOQUETE_BIN" server --listen "$listen" || return
    local start
    start=$(date +%s.%N)
    run_job "${run[@]}" timeout "$QEMU_TIMEOUT" qemu-system-arm -M "$board" -nographic -monitor none \
        -serial none -semihosting-config enable=on,target=native -nic "$nic" -kernel "$kernel" \
        -append "role=client messages=$MESSAGES $net connect=$host:$port name=$name time=$FW_TIME" \
        >"$out.fw" 2>"$out.fw-err"
    local fw_rc=$?
    local secs
    secs=$(elapsed "$start")
    server_printed "$out" "$server"
    client_verdict "$name" "firmware client -> soquete server" "^PASS client" "connected as \"$name\""
}

# server_case NAME BOARD KERNEL NIC NET_ARGS CONNECT [NS_EXEC...]: the firmware
# listens on GUEST_PORT, `soquete client` connects to CONNECT.
server_case() {
    local name=$1 board=$2 kernel=$3 nic=$4 net=$5 connect=$6
    shift 6
    local run=("$@") out=$work/$name
    "${run[@]}" timeout "$QEMU_TIMEOUT" qemu-system-arm -M "$board" -nographic -monitor none \
        -serial none -semihosting-config enable=on,target=native -nic "$nic" -kernel "$kernel" \
        -append "role=server messages=$MESSAGES $net listen=$GUEST_PORT time=$FW_TIME" \
        >"$out.fw" 2>"$out.fw-err" &
    local fw=$!
    pids+=("$fw")
    if ! wait_for "$out.fw" "^listening on" 10 "$fw"; then
        echo "FAIL $name: the firmware server did not start"
        show "$out.fw" "$out.fw-err"
        failed=1
        return
    fi
    seq 1 "$MESSAGES" >"$out.input"
    local start
    start=$(date +%s.%N)
    run_job "${run[@]}" timeout "$QEMU_TIMEOUT" "$SOQUETE_BIN" client --connect "$connect" --name "$name" \
        <"$out.input" >"$out.client" 2>"$out.client-err"
    local client_rc=$?
    wait "$fw"
    local fw_rc=$?
    local secs
    secs=$(elapsed "$start")
    if [ "$client_rc" -eq 0 ] && grep -q "^sent $MESSAGES messages, $MESSAGES acknowledged" "$out.client-err" &&
        [ "$fw_rc" -eq 0 ] &&
        grep -q "^PASS server: $MESSAGES of $MESSAGES messages received in order ($MESSAGES in all)" "$out.fw" &&
        grep -q "^session from \"$name\"" "$out.fw"; then
        echo "PASS $name: soquete client -> firmware server: $MESSAGES messages, in order, acknowledged, in ${secs}s$(fw_time "$out.fw")"
    else
        echo "FAIL $name: soquete client -> firmware server: client exit $client_rc, QEMU exit $fw_rc"
        show "$out.client" "$out.client-err" "$out.fw" "$out.fw-err"
        failed=1
    fi
}

# Keys for this run: the server's and the device's, and one nobody holds.
randkey() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }
server_secret=$(randkey) device_secret=$(randkey) stranger_secret=$(randkey)
server_public=$("$RESPONDER" public "$server_secret")
device_public=$("$RESPONDER" public "$device_secret")
stranger_public=$("$RESPONDER" public "$stranger_secret")

# fw_handshake FILE: the secure handshake's time as the firmware measured it.
fw_handshake() {
    sed -n 's/^  secure handshake: \([0-9.]* ms\) from .*INIT \([0-9.]* ms\), RESP \([0-9.]* ms\)$/ (handshake \1; computing here INIT \2, RESP \3)/p' "$1"
}

# secure_run NAME BOARD KERNEL NIC NET_ARGS LISTEN CONNECT_HOST MESSAGES SERVER_KEY ALLOW [OPTION] [-- NS_EXEC...]:
# secure_responder listens on LISTEN and allows ALLOW; the firmware's secure client
# connects with the device key and SERVER_KEY. Sets fw_rc, responder_rc, got.
secure_run() {
    local name=$1 board=$2 kernel=$3 nic=$4 net=$5 listen=$6 host=$7 count=$8 server_key=$9 allow=${10}
    shift 10
    local option=()
    if [ $# -gt 0 ] && [ "$1" != "--" ]; then
        [ -n "$1" ] && option=("$1")
        shift
    fi
    [ "${1:-}" = "--" ] && shift
    local run=("$@") out=$work/$name
    "${run[@]}" "$RESPONDER" serve --listen "$listen" --key "$server_secret" --allow "$allow" "${option[@]}" \
        >"$out.server" 2>"$out.server-err" &
    local server=$!
    pids+=("$server")
    fw_rc=-1 responder_rc=-1 got=0
    if ! wait_for "$out.server" "^listening on" 10 "$server"; then
        echo "FAIL $name: secure_responder did not start"
        show "$out.server-err"
        failed=1
        return 1
    fi
    local port
    port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$out.server" | head -n 1)
    run_job "${run[@]}" timeout "$QEMU_TIMEOUT" qemu-system-arm -M "$board" -nographic -monitor none \
        -serial none -semihosting-config enable=on,target=native -nic "$nic" -kernel "$kernel" \
        -append "role=secure-client messages=$count $net connect=$host:$port name=$name time=$FW_TIME key=$device_secret server-key=$server_key" \
        >"$out.fw" 2>"$out.fw-err"
    fw_rc=$?
    # The responder ends with the connection (after at most 5 s of draining).
    local i
    for ((i = 0; i < 100; i++)); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
    kill "$server" 2>/dev/null
    wait "$server"
    responder_rc=$?
    got=$(grep -c '^message: [0-9]*$' "$out.server")
    sed -n 's/^message: \([0-9]*\)$/\1/p' "$out.server" >"$out.seq"
}

# secure_case NAME BOARD KERNEL NIC NET_ARGS LISTEN CONNECT_HOST [NS_EXEC...]: the
# secure client sends MESSAGES messages to a server that holds the expected key.
secure_case() {
    local name=$1 start
    start=$(date +%s.%N)
    secure_run "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$MESSAGES" "$server_public" "$device_public" -- "${@:8}" || return
    local out=$work/$name secs
    secs=$(elapsed "$start")
    if [ "$fw_rc" -eq 0 ] && [ "$responder_rc" -eq 0 ] &&
        grep -q "^PASS secure client: $MESSAGES of $MESSAGES messages sent, $MESSAGES acknowledged" "$out.fw" &&
        [ "$got" -eq "$MESSAGES" ] && in_order "$out.seq" &&
        grep -q "^client key $device_public: allowed" "$out.server" &&
        grep -q "^connected as \"$name\"" "$out.server" &&
        grep -q "^left (closed by peer: normal close) after $MESSAGES messages" "$out.server"; then
        echo "PASS $name: firmware secure client -> secure_responder: $got messages, in order, acknowledged, in ${secs}s$(fw_time "$out.fw")$(fw_handshake "$out.fw")"
    else
        echo "FAIL $name: firmware secure client -> secure_responder: QEMU exit $fw_rc, responder exit $responder_rc, it printed $got of $MESSAGES"
        show "$out.fw" "$out.fw-err" "$out.server" "$out.server-err"
        failed=1
    fi
}

# secure_host_case NAME BOARD KERNEL: on the user network, the secure client sends
# MESSAGES messages to `soquete server` requiring authentication. Both keys come from
# `soquete keygen`: the device's as its key file's base64 line, the server's as
# `soquete-pk:…`, the forms a user has at hand. NAME is also the session's name: at
# most 32 bytes.
secure_host_case() {
    local name=$1 board=$2 kernel=$3 out=$work/$1
    if ! "$SOQUETE_BIN" keygen --out "$out.server.key" >"$out.server.pub" 2>"$out.keygen-err" ||
        ! "$SOQUETE_BIN" keygen --out "$out.device.key" >"$out.device.pub" 2>>"$out.keygen-err"; then
        echo "FAIL $name: soquete keygen"
        show "$out.keygen-err"
        failed=1
        return
    fi
    echo "$(cat "$out.device.pub") sensor-$board" >"$out.allowed"
    local server port start
    soquete_server "$name" "$SOQUETE_BIN" server --listen 127.0.0.1:0 --key "$out.server.key" \
        --allowed-keys "$out.allowed" --require-auth || return
    start=$(date +%s.%N)
    run_job timeout "$QEMU_TIMEOUT" qemu-system-arm -M "$board" -nographic -monitor none \
        -serial none -semihosting-config enable=on,target=native -nic user,model=lan9118 -kernel "$kernel" \
        -append "role=secure-client messages=$MESSAGES $user_net connect=10.0.2.2:$port name=$name time=$FW_TIME key=$(sed -n 2p "$out.device.key") server-key=$(cat "$out.server.pub")" \
        >"$out.fw" 2>"$out.fw-err"
    local fw_rc=$? secs
    secs=$(elapsed "$start")
    server_printed "$out" "$server"
    client_verdict "$name" "firmware secure client -> soquete server --require-auth, keys from soquete keygen" \
        "^PASS secure client" "connected as \"$name\" (authenticated as \"sensor-$board\")"
}

# secure_refused NAME WHAT SERVER_KEY ALLOW OPTION FW_PATTERN SERVER_PATTERN...: on
# mps2-an386's user network, a secure client that must fail (QEMU exit 1) having sent
# no message and, since no record of it ever authenticated at the server, not even
# the key confirmation; FW_PATTERN and every SERVER_PATTERN printed.
secure_refused() {
    local name=$1 what=$2 out=$work/$1
    secure_run "$name" mps2-an386 "$work/secure/thumbv7em-none-eabihf/soquete-firmware" "user,model=lan9118" \
        "$user_net" 127.0.0.1:0 10.0.2.2 10 "$3" "$4" "$5" || return
    local fw_pattern=$6 pattern ok=yes
    shift 6
    for pattern in "$@"; do grep -q -- "$pattern" "$out.server" || ok=no; done
    if [ "$ok" = yes ] && [ "$fw_rc" -eq 1 ] &&
        grep -q "^FAIL secure client: 0 of 10 messages sent, 0 acknowledged" "$out.fw" &&
        grep -q -- "$fw_pattern" "$out.fw" && ! grep -q "^secure session established" "$out.server" &&
        [ "$got" -eq 0 ]; then
        echo "PASS $name: $what: the firmware sends no message, nothing more, and fails (QEMU exit 1)"
    else
        echo "FAIL $name: $what: QEMU exit $fw_rc, responder printed $got messages"
        show "$out.fw" "$out.fw-err" "$out.server" "$out.server-err"
        failed=1
    fi
}

boards=("mps2-an386 $fw_target/thumbv7em-none-eabihf/release/soquete-firmware"
    "mps2-an385 $fw_target/thumbv6m-none-eabi/release/soquete-firmware")
secure_boards=("mps2-an386 $work/secure/thumbv7em-none-eabihf/soquete-firmware"
    "mps2-an385 $work/secure/thumbv6m-none-eabi/soquete-firmware")
user_net="ip=10.0.2.15/24 gateway=10.0.2.2"
tap_net="ip=$GUEST_ADDR/24 gateway=none"
tap_nic="tap,ifname=tap0,script=no,downscript=no,model=lan9118"

if [ "$tap" = yes ]; then
    ns_with_tap "$KERNEL_ADDR/24"
fi

for entry in "${boards[@]}"; do
    read -r board kernel <<<"$entry"
    client_case "$board-user-client" "$board" "$kernel" "user,model=lan9118" "$user_net" 127.0.0.1:0 10.0.2.2
    hport=$(free_port)
    server_case "$board-user-server" "$board" "$kernel" \
        "user,model=lan9118,hostfwd=tcp:127.0.0.1:$hport-:$GUEST_PORT" "$user_net" "127.0.0.1:$hport"
    if [ "$tap" = yes ]; then
        client_case "$board-tap-client" "$board" "$kernel" "$tap_nic" "$tap_net" "$KERNEL_ADDR:0" "$KERNEL_ADDR" \
            ip netns exec "$ns"
        server_case "$board-tap-server" "$board" "$kernel" "$tap_nic" "$tap_net" "$GUEST_ADDR:$GUEST_PORT" \
            ip netns exec "$ns"
    else
        echo "SKIP $board-tap-*: $tap"
    fi
done

for entry in "${secure_boards[@]}"; do
    read -r board kernel <<<"$entry"
    secure_case "secure-$board-user" "$board" "$kernel" "user,model=lan9118" "$user_net" 127.0.0.1:0 10.0.2.2
    if [ "$tap" = yes ]; then
        secure_case "secure-$board-tap" "$board" "$kernel" "$tap_nic" "$tap_net" "$KERNEL_ADDR:0" "$KERNEL_ADDR" \
            ip netns exec "$ns"
    else
        echo "SKIP secure-$board-tap: $tap"
    fi
done

read -r board kernel <<<"${secure_boards[0]}"
secure_host_case "secure-$board-soquete" "$board" "$kernel"

# The secure client must refuse to talk to anyone but the server whose key it has.
# After a refusal the responder counts what the client still sends until it closes.
secure_refused secure-mps2-an386-wrong-key "a wrong server key" "$stranger_public" "$device_public" "" \
    "secure layer: refused by the server (unauthenticated): handshake failed" "^secure layer failed: handshake failed" \
    "^then the client sent 0 bytes and closed; 0 messages"
secure_refused secure-mps2-an386-unknown-key "a device key the server does not allow" "$server_public" \
    "$stranger_public" "" "secure layer: refused by the server (unauthenticated): unknown client key" \
    "^client key $device_public: not allowed, refused" "^then the client sent 0 bytes and closed; 0 messages"
# The responder accepted and answered; the client must close without confirming.
secure_refused secure-mps2-an386-tampered "a server answer that does not authenticate" "$server_public" \
    "$device_public" --tamper-resp "secure layer: server not authenticated" "^client key $device_public: allowed" \
    "^left (connection closed by peer) after 0 messages"

# The verdict can fail: a client with no server, bad parameters, and a server that
# misses a message.
board=mps2-an386 kernel=$fw_target/thumbv7em-none-eabihf/release/soquete-firmware
name=$board-user-refused out=$work/$name
port=$(free_port)
run_job timeout "$QEMU_TIMEOUT" qemu-system-arm -M "$board" -nographic -monitor none -serial none \
    -semihosting-config enable=on,target=native -nic user,model=lan9118 -kernel "$kernel" \
    -append "role=client messages=10 $user_net connect=10.0.2.2:$port time=$FW_TIME" >"$out.fw" 2>"$out.fw-err"
fw_rc=$?
if [ "$fw_rc" -eq 1 ] && grep -q "^FAIL client: 0 of 10 messages sent" "$out.fw" && grep -q "failure: NoConnection" "$out.fw"; then
    echo "PASS $name: the firmware client fails when no server listens (QEMU exit 1)"
else
    echo "FAIL $name: QEMU exit $fw_rc for a client with no server"
    show "$out.fw" "$out.fw-err"
    failed=1
fi

# Refused words, each with its reason and the usage line: a count that is not a number,
# a name longer than a HELLO carries (33 bytes), a word the firmware does not know, and
# on the secure image a public key given as the device's secret key.
bad_parameter() {
    local name=$1 board=$2 kernel=$3 word=$4 why=$5 out=$work/$1 fw_rc
    run_job timeout "$QEMU_TIMEOUT" qemu-system-arm -M "$board" -nographic -monitor none -serial none \
        -semihosting-config enable=on,target=native -nic user,model=lan9118 -kernel "$kernel" \
        -append "role=client $word" >"$out.fw" 2>"$out.fw-err"
    fw_rc=$?
    if [ "$fw_rc" -eq 1 ] && grep -qF -- "FAIL: bad parameter \"$word\": $why" "$out.fw" &&
        grep -q '^parameters (-append "..."): role=' "$out.fw"; then
        echo "PASS $name: the firmware refuses \"$word\": $why (QEMU exit 1)"
    else
        echo "FAIL $name: QEMU exit $fw_rc for \"$word\""
        show "$out.fw" "$out.fw-err"
        failed=1
    fi
}
bad_parameter "$board-bad-parameter" "$board" "$kernel" messages=ten "a count"
bad_parameter "$board-long-name" "$board" "$kernel" name=abcdefghijklmnopqrstuvwxyz0123456 "a session's name is at most 32 bytes"
bad_parameter "$board-unknown-parameter" "$board" "$kernel" mesages=10 "unknown parameter"
bad_parameter "secure-$board-public-as-secret" "$board" "$work/secure/thumbv7em-none-eabihf/soquete-firmware" \
    key=soquete-pk:hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo= "that is a public key"

name=$board-user-missing out=$work/$name
hport=$(free_port)
timeout "$QEMU_TIMEOUT" qemu-system-arm -M "$board" -nographic -monitor none -serial none \
    -semihosting-config enable=on,target=native \
    -nic "user,model=lan9118,hostfwd=tcp:127.0.0.1:$hport-:$GUEST_PORT" -kernel "$kernel" \
    -append "role=server messages=10 $user_net listen=$GUEST_PORT time=$FW_TIME" >"$out.fw" 2>"$out.fw-err" &
fw=$!
pids+=("$fw")
if wait_for "$out.fw" "^listening on" 10 "$fw"; then
    # Messages 1 to 10 without 5.
    seq 1 10 | sed 5d >"$out.input"
    run_job timeout "$QEMU_TIMEOUT" "$SOQUETE_BIN" client --connect "127.0.0.1:$hport" --name "$name" \
        <"$out.input" >"$out.client" 2>"$out.client-err"
    client_rc=$?
    wait "$fw"
    fw_rc=$?
    if [ "$client_rc" -eq 0 ] && [ "$fw_rc" -eq 1 ] &&
        grep -q "^FAIL server: 4 of 10 messages received in order (9 in all)" "$out.fw" &&
        grep -q "out of order: expected message 5" "$out.fw"; then
        echo "PASS $name: the firmware server fails when message 5 of 10 is missing (QEMU exit 1)"
    else
        echo "FAIL $name: client exit $client_rc, QEMU exit $fw_rc for a server that missed a message"
        show "$out.client-err" "$out.fw" "$out.fw-err"
        failed=1
    fi
else
    echo "FAIL $name: the firmware server did not start"
    show "$out.fw" "$out.fw-err"
    failed=1
fi

# The whole image per board: flash (.text + .rodata; the vector table besides), static
# RAM (.data + .bss) and the deepest stack any of its cases reported, then the flash
# by crate (symbol sizes; LTO inlines across crates, so this is approximate).
tool() {
    command -v "llvm-$1" 2>/dev/null || command -v "$1" 2>/dev/null
}
SIZE=$(tool size) NM=$(tool nm)
if [ -z "$SIZE" ] || [ -z "$NM" ]; then
    echo "footprint: no size/nm found (binutils, or llvm: apt-get install --no-install-recommends binutils)"
else
    section() { "$SIZE" -A "$1" | awk -v s="$2" '$1 == s { n += $2 } END { print n + 0 }'; }
    for entry in "${boards[@]}" "${secure_boards[@]}"; do
        read -r board kernel <<<"$entry"
        text=$(section "$kernel" .text) rodata=$(section "$kernel" .rodata)
        data=$(section "$kernel" .data) bss=$(section "$kernel" .bss)
        # The secure image's cases are named secure-BOARD-...; the plain image's BOARD-...
        label=$board
        [[ $kernel == "$work/secure/"* ]] && label="secure $board"
        stack=$(cat "$work/${label/ /-}"-*.fw 2>/dev/null | sed -n 's/^stack high-water mark: \([0-9]*\) bytes$/\1/p' |
            sort -n | tail -n 1)
        target=$(basename "$(dirname "$kernel")")
        [[ $target == release ]] && target=$(basename "$(dirname "$(dirname "$kernel")")")
        echo "footprint $label ($target): flash .text $text +" \
            ".rodata $rodata = $((text + rodata)) bytes (+ vector table $(section "$kernel" .vector_table));" \
            "RAM .data $data + .bss $bss = $((data + bss)) bytes, stack high-water ${stack:-?} bytes"
        # Flash by crate: the first path segment of each code or read-only symbol.
        "$NM" --print-size -C "$kernel" | python3 -c '
import re, sys
sizes = {}
for line in sys.stdin:
    f = line.split(None, 3)
    if len(f) < 4 or f[2] not in "tTrR":
        continue
    name = re.sub(r"^[<&]*(&?(mut )?\w+ as )?", "", f[3].strip())
    crate = re.sub(r"::.*", "", name)
    if re.match(r"__aeabi|__udiv|mem(cpy|move|set|cmp)$", crate):
        crate = "compiler_builtins"
    elif re.match(r"\.Lanon", crate):
        crate = "constants"
    elif crate in ("__INTERRUPTS", "Reset", "__RESET_VECTOR", "__EXCEPTIONS", "HardFault_", "DefaultHandler_"):
        crate = "cortex_m_rt"
    elif not re.fullmatch(r"soquete_core|soquete_firmware|smoltcp|core|compiler_builtins|cortex_m\w*|panic_semihosting|heapless|constants"
                          r"|noise_protocol|x25519_dalek|curve25519_dalek|chacha20\w*|poly1305|blake2|rand_chacha|ppv_lite86", crate):
        crate = "other"
    sizes[crate] = sizes.get(crate, 0) + int(f[1], 16)
for crate, size in sorted(sizes.items(), key=lambda kv: -kv[1]):
    print(f"    {size:7d}  {crate}")
'
    done
fi

exit "$failed"
