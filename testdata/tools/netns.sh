# Sourced by record.sh and record-bench.sh inside their private network namespace: loopback
# as a wire (MTU 1500, offloads off, so TCP segments are Ethernet-sized), a scratch directory
# TMP, the PIDS of everything started (killed on exit), and two helpers.
#   NETNS_NAME   the calling script's name, for messages
#   NETNS_WAIT   polls of 0.1 s wait_for makes before giving up

ip link set lo up
ip link set lo mtu 1500
ethtool -K lo tso off gso off gro off tx off >/dev/null 2>&1 || true

TMP=$(mktemp -d "/tmp/apitool-${NETNS_NAME%.sh}.XXXXXX")
chmod 755 "$TMP"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT

wait_for() {  # wait_for DESCRIPTION COMMAND...: poll until COMMAND succeeds, NETNS_WAIT times
    local what=$1 i
    shift
    for i in $(seq 1 "$NETNS_WAIT"); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "$NETNS_NAME: timed out waiting for $what" >&2
    return 1
}

stop() {  # stop PID: terminate one process we started and reap it
    kill "$1" 2>/dev/null || true
    timeout 10 tail --pid="$1" -f /dev/null || kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
