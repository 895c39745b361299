#!/usr/bin/env bash
# Records the benchmark corpus: real servers and clients on loopback (needs root).
#
#   sudo testdata/tools/record-bench.sh [SIZE [OUT]]     (default 64M, target/bench/recorded-SIZE.pcap)
#   testdata/tools/record-bench.sh --check               (say what is missing; install nothing)
#
# As record.sh: everything runs inside a private network namespace (unshare -n)
# whose only interface is its own loopback (MTU 1500, offloads off, so that TCP
# segments are Ethernet-sized as on a real wire); nothing reaches the host's
# network.  Inside it:
#   - bench_app.py --gen-static writes nginx's files (JSON, JS, CSS, HTML up to
#     1.4 MB; binaries up to 4 MB; deterministic for the seed, not zeros);
#   - nginx (bench-nginx.conf, gzip for text) serves them on 127.0.0.1:8080;
#   - bench_app.py serves the API on 127.0.0.1:8082: chunked NDJSON streamed
#     with gzip or br, JSON pages, POSTs, a server-sent event stream, long polls;
#   - tcpdump records both ports; bench_client.py drives python-requests, curl
#     and ab against them, keeps an event stream and a long poll open and leaves
#     idle keep-alive connections;
#   - once the capture holds SIZE bytes, tcpdump is stopped first, then the
#     clients and servers: the capture ends with exchanges still open.
# The traffic's timing is the machine's, so two recordings differ; the files
# served do not (SEED, default 1).  Needs nginx, tcpdump, curl, ab
# (apache2-utils), unshare, ip, python3 with requests and brotli; it installs
# them with apt-get and pip when they are missing and it can, and otherwise
# names what is missing and exits with status 2.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PY=${PYTHON:-python3}
SEED=${SEED:-1}

missing() {  # prints what is missing, one word each
    local t
    for t in tcpdump nginx curl ab unshare ip; do
        command -v "$t" >/dev/null 2>&1 || echo "$t"
    done
    "$PY" -c 'import requests' 2>/dev/null || echo "python3-requests"
    "$PY" -c 'import brotli' 2>/dev/null || echo "python3-brotli"
}

if [[ "${1:-}" == "--check" ]]; then
    m=$(missing | tr '\n' ' ')
    [[ $EUID -eq 0 ]] || m+="root "
    if [[ -n "$m" ]]; then echo "record-bench.sh: missing: $m"; exit 2; fi
    exit 0
fi

if [[ "${1:-}" != "--inside" ]]; then
    SIZE=${1:-64M}
    OUT=${2:-$REPO/target/bench/recorded-$SIZE.pcap}
    if [[ $EUID -ne 0 ]]; then
        echo "record-bench.sh: needs root (network namespace, tcpdump, ethtool)" >&2
        exit 2
    fi
    if [[ -n "$(missing)" ]]; then
        echo "record-bench.sh: installing $(missing | tr '\n' ' ')" >&2
        pkgs=()
        for t in $(missing); do
            case $t in
                tcpdump|nginx|curl) pkgs+=("$t") ;;
                ab) pkgs+=(apache2-utils) ;;
                unshare) pkgs+=(util-linux) ;;
                ip) pkgs+=(iproute2) ;;
            esac
        done
        if [[ ${#pkgs[@]} -gt 0 ]] && command -v apt-get >/dev/null; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" ethtool >/dev/null \
                || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" ethtool >/dev/null; } || true
        fi
        if ! "$PY" -c 'import requests, brotli' 2>/dev/null; then
            "$PY" -m pip install --quiet requests brotli 2>/dev/null \
                || "$PY" -m pip install --quiet --break-system-packages requests brotli 2>/dev/null || true
        fi
        if [[ -n "$(missing)" ]]; then
            echo "record-bench.sh: missing: $(missing | tr '\n' ' ')(apt-get install nginx tcpdump apache2-utils curl; pip install requests brotli)" >&2
            exit 2
        fi
    fi
    BYTES=$(numfmt --from=iec "$SIZE")
    mkdir -p "$(dirname "$OUT")"
    exec timeout 1800 unshare -n bash "${BASH_SOURCE[0]}" --inside "$BYTES" "$OUT"
fi
BYTES=$2
OUT=$3

NETNS_NAME=record-bench.sh NETNS_WAIT=200
# shellcheck source=netns.sh
. "$HERE/netns.sh"

"$PY" "$HERE/bench_app.py" --gen-static "$TMP/www" --seed "$SEED"
sed -e "s#@TMP@#$TMP#g" -e "s#@ROOT@#$TMP/www#g" "$HERE/bench-nginx.conf" >"$TMP/nginx.conf"
nginx -p "$TMP" -c "$TMP/nginx.conf" -g 'daemon off;' 2>>"$TMP/nginx-stderr.log" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
timeout 1800 "$PY" "$HERE/bench_app.py" --port 8082 --ready "$TMP/app.ready" 2>>"$TMP/app-stderr.log" &
APP_PID=$!
PIDS+=("$APP_PID")
wait_for nginx timeout 2 curl -s -o /dev/null http://127.0.0.1:8080/robots.txt
wait_for bench_app.py test -e "$TMP/app.ready"

# A 64 MiB kernel buffer, so that tcpdump keeps up with loopback at full speed.
timeout 1800 tcpdump -i lo -s 0 -B 65536 -U -n -Z root -w "$OUT" 'tcp port 8080 or tcp port 8082' 2>"$TMP/tcpdump.err" &
TD_PID=$!
PIDS+=("$TD_PID")
wait_for tcpdump grep -q "listening on" "$TMP/tcpdump.err"
sleep 0.2

timeout 1800 "$PY" "$HERE/bench_client.py" --root "$TMP/www" --stop "$TMP/stop" --deadline 1500 --seed "$SEED" \
    2>>"$TMP/client-stderr.log" &
CL_PID=$!
PIDS+=("$CL_PID")

# Until the capture holds BYTES (tcpdump writes in blocks; the last block lands when it stops).
for _ in $(seq 1 150000); do
    [[ $(stat -c %s "$OUT" 2>/dev/null || echo 0) -ge $BYTES ]] && break
    kill -0 "$CL_PID" 2>/dev/null || { echo "record-bench.sh: clients ended early" >&2; cat "$TMP/client-stderr.log" >&2; exit 1; }
    sleep 0.01
done
# The capture ends first, with the traffic in full flow; the clients after it.
stop "$TD_PID"
touch "$TMP/stop"
stop "$CL_PID"
stop "$APP_PID"
stop "$NGINX_PID"
grep -E "packets (captured|received|dropped)" "$TMP/tcpdump.err" | sed 's/^/tcpdump: /' >&2 || true
if [[ -s "$TMP/client-stderr.log" ]]; then
    echo "record-bench.sh: client messages:" >&2
    tail -5 "$TMP/client-stderr.log" >&2
fi
printf 'record-bench.sh: wrote %s (%d bytes)\n' "$OUT" "$(stat -c %s "$OUT")"
