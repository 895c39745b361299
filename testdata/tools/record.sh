#!/usr/bin/env bash
# Re-record apitool's test captures from scratch (needs root).
#
#   sudo testdata/tools/record.sh [SCENARIO...]      (default: all)
#
# Everything runs inside a private network namespace (unshare -n) whose only
# interface is its own loopback: servers bind 127.0.0.1 / ::1, nothing can
# reach or disturb the host's network.  Loopback gets MTU 1500 and offloads
# off so that TCP segments are Ethernet-sized, as on a real wire.
#
# Per scenario: start tools/server.py (fresh, so its connection counter
# starts at 0), start tcpdump on lo for the scenario's ports, wait until it
# listens, run `client.py SCENARIO` (which drives curl / ab / its own raw
# socket client and writes NAME.truth.tsv from the client's view), give
# tcpdump a moment to flush, stop everything by PID.
# Then run tools/derive.py to rebuild the derived captures.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TD=$(dirname "$HERE")
PY=${PYTHON:-python3}

ALL=(keepalive pipelined chunked-gzip br zstd deflate stacked head continue-100
     status-204-304 close-delimited post-bodies ipv6 connect-upgrade big-body
     concurrent http10 sse ws wss h2c-prior h2c-upgrade grpc
     tls13 tls12 tls-keyupdate tls-dsb tls-h2 tls-hrr)

if [[ "${1:-}" != "--inside" ]]; then
    if [[ $EUID -ne 0 ]]; then
        echo "record.sh: needs root (network namespace, tcpdump, ethtool)" >&2
        exit 1
    fi
    for tool in tcpdump nginx curl ab unshare ip openssl editcap; do
        command -v "$tool" >/dev/null || { echo "record.sh: missing $tool" >&2; exit 1; }
    done
    # Python packages for the br/zstd endpoints; installed before entering
    # the namespace (which has no network).
    if ! "$PY" -c 'import brotli, zstandard' 2>/dev/null; then
        "$PY" -m pip install --quiet brotli zstandard \
            || "$PY" -m pip install --quiet --break-system-packages brotli zstandard
    fi
    # The WebSocket scenarios (ws.py) use the websockets library.
    if ! "$PY" -c 'import websockets.asyncio.server' 2>/dev/null; then
        "$PY" -m pip install --quiet 'websockets>=14' \
            || "$PY" -m pip install --quiet --break-system-packages 'websockets>=14'
    fi
    # hyper-h2 for the h2c Upgrade server (h2_server.py).
    if ! "$PY" -c 'import h2' 2>/dev/null; then
        "$PY" -m pip install --quiet h2 \
            || "$PY" -m pip install --quiet --break-system-packages h2
    fi
    # grpcio for the gRPC scenario (grpc_app.py).
    if ! "$PY" -c 'import grpc' 2>/dev/null; then
        "$PY" -m pip install --quiet grpcio \
            || "$PY" -m pip install --quiet --break-system-packages grpcio
    fi
    exec timeout 900 unshare -n bash "${BASH_SOURCE[0]}" --inside "$@"
fi
shift

SCENARIOS=("$@")
[[ ${#SCENARIOS[@]} -gt 0 ]] || SCENARIOS=("${ALL[@]}")

NETNS_NAME=record.sh NETNS_WAIT=100
# shellcheck source=netns.sh
. "$HERE/netns.sh"

# Static files for nginx, fixed contents and mtimes (stable ETags).
"$PY" "$HERE/server.py" --gen-static "$TMP/www"
# A throwaway self-signed certificate for the TLS servers, made anew at each recording.
mkdir -p "$TMP/tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=api.test \
    -addext subjectAltName=DNS:api.test -keyout "$TMP/tls/key.pem" -out "$TMP/tls/cert.pem" 2>/dev/null
sed -e "s#@TMP@#$TMP#g" -e "s#@ROOT@#$TMP/www#g" "$HERE/nginx.conf" >"$TMP/nginx.conf"
nginx -p "$TMP" -c "$TMP/nginx.conf" -g 'daemon off;' 2>>"$TMP/nginx-stderr.log" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")

wait_for nginx timeout 2 curl -s -o /dev/null http://127.0.0.1:8080/robots.txt


record() {
    local name=$1 ports=$2 srvhost=$3
    local out="$TD/$name.pcap" truth="$TD/$name.truth.tsv"
    local work="$TMP/work-$name" slog="$TMP/server-$name.log"
    local filter="" p
    for p in $ports; do filter+="${filter:+ or }tcp port $p"; done
    mkdir -p "$work"
    : >"$TMP/access.log"
    : >"$slog"
    rm -f "$TD/$name.keys"

    rm -f "$TMP/srv.ready"
    timeout 120 "$PY" "$HERE/server.py" --host "$srvhost" --port 8081 \
        --log "$slog" --ready "$TMP/srv.ready" 2>>"$TMP/server-stderr.log" &
    local srv=$!
    PIDS+=("$srv")
    wait_for "server.py" test -e "$TMP/srv.ready"
    local h2srv=""
    if [[ " $ports " == *" 8083 "* ]]; then
        # The HTTP/2 server for Upgrade: h2c; its log is the server's view.
        rm -f "$TMP/h2.ready"
        : >"$slog"
        timeout 120 "$PY" "$HERE/h2_server.py" --port 8083 --log "$slog" \
            --ready "$TMP/h2.ready" 2>>"$TMP/server-stderr.log" &
        h2srv=$!
        PIDS+=("$h2srv")
        wait_for "h2_server.py" test -e "$TMP/h2.ready"
    fi

    timeout 120 tcpdump -i lo -s 0 -U --immediate-mode -n -Z root -w "$out" "$filter" 2>"$TMP/tcpdump.err" &
    local td=$!
    PIDS+=("$td")
    wait_for "tcpdump" grep -q "listening on" "$TMP/tcpdump.err"
    sleep 0.2

    local args=(--truth "$truth" --work "$work" --nginx-root "$TMP/www" --keys "$TD/$name.keys")
    [[ " $ports " == *" 8081 "* || " $ports " == *" 8083 "* ]] && args+=(--server-log "$slog")
    [[ " $ports " == *" 8080 "* ]] && args+=(--nginx-log "$TMP/access.log")
    [[ $name == tls* ]] && args+=(--nginx-log "$TMP/access.log")
    if ! timeout 120 "$PY" "$HERE/client.py" "$name" "${args[@]}"; then
        echo "record.sh: scenario $name failed" >&2
        stop "$td"; stop "$srv"
        [[ -z $h2srv ]] || stop "$h2srv"
        return 1
    fi
    sleep 0.5
    stop "$td"
    stop "$srv"
    [[ -z $h2srv ]] || stop "$h2srv"
    if [[ $name == tls-dsb ]]; then
        # The keys go into the capture as a Decryption Secrets Block; no key file is kept.
        editcap --inject-secrets "tls,$TD/$name.keys" "$out" "$TD/$name.pcapng"
        rm -f "$out" "$TD/$name.keys"
        out="$TD/$name.pcapng"
    fi
    printf '%-18s %7d bytes  %s exchanges\n' "$(basename "$out")" "$(stat -c %s "$out")" \
        "$(($(wc -l <"$truth") - 1))"
}

ports_of() {
    case $1 in
        keepalive|big-body|concurrent|http10) echo 8080 ;;
        tls13|tls-keyupdate|tls-dsb) echo 8443 ;;
        tls12) echo "8443 8444" ;;
        tls-h2) echo 8445 ;;
        tls-hrr) echo 8446 ;;
        head|status-204-304|ipv6) echo "8080 8081" ;;
        h2c-prior) echo 8082 ;;
        h2c-upgrade) echo 8083 ;;
        *) echo 8081 ;;
    esac
}

# WebSocket scenarios: tools/ws.py's echo server and client (its record of every frame is the
# truth: NAME.messages.tsv, and the handshakes). wss: the same over TLS with a certificate made
# here and the client's key log in wss.keys; its handshakes go to wss.truth.tsv.
record_ws() {
    local name=$1 port=8084 out="$TD/$1.pcap" args=() srvargs=()
    if [[ $name == wss ]]; then
        port=8447
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
            -addext subjectAltName=IP:127.0.0.1 -keyout "$TMP/ws.key" -out "$TMP/ws.crt" 2>/dev/null
        srvargs=(--cert "$TMP/ws.crt" --key "$TMP/ws.key")
        rm -f "$TD/wss.keys"
        args=(--tls "$TMP/ws.crt" --keylog "$TD/wss.keys" --handshakes "$TD/wss.truth.tsv")
    fi
    rm -f "$TMP/ws.ready"
    timeout 120 "$PY" "$HERE/ws.py" serve --port "$port" --ready "$TMP/ws.ready" "${srvargs[@]}" \
        2>>"$TMP/ws-stderr.log" &
    local srv=$!
    PIDS+=("$srv")
    wait_for "ws.py serve" test -e "$TMP/ws.ready"
    timeout 120 tcpdump -i lo -s 0 -U --immediate-mode -n -Z root -w "$out" "tcp port $port" 2>"$TMP/tcpdump.err" &
    local td=$!
    PIDS+=("$td")
    wait_for "tcpdump" grep -q "listening on" "$TMP/tcpdump.err"
    sleep 0.2
    if ! timeout 120 "$PY" "$HERE/ws.py" client --port "$port" --name "$name" --truth-dir "$TD" "${args[@]}"; then
        echo "record.sh: scenario $name failed" >&2
        cat "$TMP/ws-stderr.log" >&2
        stop "$td"; stop "$srv"
        return 1
    fi
    sleep 0.5
    stop "$td"
    stop "$srv"
    # The capture must hold the whole session: both FINs of each of the three connections
    # (tcpdump dropping the tail of its buffer at exit would cut the last connection short).
    local fins
    fins=$(tcpdump -r "$out" -n 'tcp[tcpflags] & tcp-fin != 0' 2>/dev/null | wc -l)
    if [[ $fins -ne 6 ]]; then
        echo "record.sh: $name.pcap has $fins FIN segments, not 6: the capture is incomplete" >&2
        return 1
    fi
    printf '%-18s %7d bytes  %s messages\n' "$name.pcap" "$(stat -c %s "$out")" \
        "$(($(wc -l <"$TD/$name.messages.tsv") - 1))"
}

# gRPC: tools/grpc_app.py's grpcio server on 127.0.0.1:50051 (h2c) and its client, whose record
# of every call (grpc.calls.tsv) and message (grpc.messages.tsv) is the truth; the client checks
# it against the server's log before writing it.
record_grpc() {
    local name=$1 port=50051 out="$TD/$1.pcap" slog="$TMP/grpc-server.log"
    : >"$slog"
    rm -f "$TMP/grpc.ready"
    timeout 120 "$PY" "$HERE/grpc_app.py" serve --port "$port" --ready "$TMP/grpc.ready" \
        --log "$slog" 2>>"$TMP/grpc-stderr.log" &
    local srv=$!
    PIDS+=("$srv")
    wait_for "grpc_app.py serve" test -e "$TMP/grpc.ready"
    timeout 120 tcpdump -i lo -s 0 -U --immediate-mode -n -Z root -w "$out" "tcp port $port" 2>"$TMP/tcpdump.err" &
    local td=$!
    PIDS+=("$td")
    wait_for "tcpdump" grep -q "listening on" "$TMP/tcpdump.err"
    sleep 0.2
    if ! timeout 120 "$PY" "$HERE/grpc_app.py" client --port "$port" --calls "$TD/$name.calls.tsv" \
        --messages "$TD/$name.messages.tsv" --server-log "$slog"; then
        echo "record.sh: scenario $name failed" >&2
        cat "$TMP/grpc-stderr.log" >&2
        stop "$td"; stop "$srv"
        return 1
    fi
    sleep 0.5
    stop "$td"
    stop "$srv"
    printf '%-18s %7d bytes  %s calls\n' "$name.pcap" "$(stat -c %s "$out")" \
        "$(($(wc -l <"$TD/$name.calls.tsv") - 1))"
}

for s in "${SCENARIOS[@]}"; do
    host=127.0.0.1
    [[ $s == ipv6 ]] && host=::1
    case $s in
        ws|wss) record_ws "$s" ;;
        grpc) record_grpc "$s" ;;
        *) record "$s" "$(ports_of "$s")" "$host" ;;
    esac
done

stop "$NGINX_PID"
