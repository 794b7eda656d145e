# Process helpers shared by bench/run.sh and bench/ab.sh (sourced, not run).

# Stops a process: TERM, then KILL after 3 s.
stop_pid() {
    local pid=$1 i
    kill "$pid" 2>/dev/null || return 0
    for i in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
}

# Something listens on 127.0.0.1:$1.
listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# Waits until something listens on 127.0.0.1:$1 (or $2 seconds pass) while $3 lives.
wait_port() {
    local port=$1 secs=$2 pid=$3 i
    for i in $(seq 1 $((secs * 10))); do
        kill -0 "$pid" 2>/dev/null || return 1
        listening "$port" && return 0
        sleep 0.1
    done
    return 1
}
