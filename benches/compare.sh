#!/usr/bin/env bash
# Measures, on one generated capture: the frame-iteration floor, `apitool convert` (HAR, with
# one and N threads, and witnesses), peak RSS against a 64 MB capture of the same kind,
# `apitool replay` peak RSS on baselines of a 64 MB and a 256 MB capture (python3 runs the
# loopback target, benches/replay_target.py), and
# tshark's HTTP dissection (fields output), each with wall time and peak RSS (medians of REPS
# runs, default 3) from /usr/bin/time -v and MB/s, and prints the ratios.
#
#   benches/compare.sh [SIZE] [TSHARK_SIZE]
#
# SIZE (default 1G) is the generated capture; tshark runs on its first TSHARK_SIZE bytes
# (default 64M; it manages a few MB/s, so a whole gigabyte would take many minutes), and its
# rate is computed on that prefix. Needs: cargo, /usr/bin/time, tshark (apt-get install tshark;
# skipped with a note when missing). Everything it writes goes under target/bench/.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=${1:-1G}
TSHARK_SIZE=${2:-64M}
THREADS=${THREADS:-$(nproc)}
DIR=target/bench
mkdir -p "$DIR"
# Outputs go to memory (/dev/shm) when it is there, so that the figures are the conversion's and
# not the virtual disk's writeback (1.5 GB of HAR per run; on ext4 one run took 3.5 to 5.9 s).
# OUT_DIR=target/bench measures writing to the disk instead.
OUT=${OUT_DIR:-$( [ -d /dev/shm ] && [ -w /dev/shm ] && echo /dev/shm || echo "$DIR" )}
CAP="$DIR/api-$SIZE.pcap"

to_bytes() { numfmt --from=iec "$1"; }

# The release-lto profile (fat LTO, one codegen unit) is the build every published figure is of.
cargo build --profile release-lto --quiet --bin apitool --example frame_floor --example gencap
BIN=target/release-lto/apitool
FLOOR=target/release-lto/examples/frame_floor
GEN=target/release-lto/examples/gencap

if [ ! -s "$CAP" ]; then
    echo "generating $CAP ($SIZE, seed 42)..."
    "$GEN" --size "$SIZE" --seed 42 -o "$CAP" >/dev/null
fi
BYTES=$(stat -c %s "$CAP")

# run NAME BYTES CMD...: runs CMD $REPS times (default 3; tshark once), prints one row and
# records the median wall seconds and the median peak KiB. The machines are shared and noisy:
# one run can be off by 10%, and a peak by a few MiB when the writer thread is held up.
# apitool's outputs ($OUT/apitool-out*) are removed before each run, so that no run pays for
# freeing the last run's output.
REPS=${REPS:-3}
declare -A WALL RSS MBPS
median() { printf '%s\n' "$@" | sort -n | awk '{w[NR]=$1} END {print w[int((NR+1)/2)]}'; }
run() {
    local name=$1 bytes=$2; shift 2
    local reps=$REPS
    [ "$name" = tshark ] && reps=1
    local log="$DIR/$name.time" walls=() rsss=()
    for _ in $(seq "$reps"); do
        rm -f "$OUT"/apitool-out*
        /usr/bin/time -v -o "$log" "$@" >/dev/null 2>"$DIR/$name.stderr"
        walls+=("$(awk -F': ' '/Elapsed \(wall clock\)/ {split($2,t,":"); s=0; for(i=1;i<=length(t);i++) s=s*60+t[i]; print s}' "$log")")
        rsss+=("$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")")
    done
    local wall rss
    wall=$(median "${walls[@]}")
    rss=$(median "${rsss[@]}")
    WALL[$name]=$wall
    RSS[$name]=$rss
    MBPS[$name]=$(awk -v b="$bytes" -v w="$wall" 'BEGIN { printf "%.1f", (w > 0 ? b / w / 1e6 : 0) }')
    printf '%-22s %12d %10.2f %10s %10.1f\n' "$name" "$bytes" "$wall" "${MBPS[$name]}" "$(awk -v r="$rss" 'BEGIN{print r/1024}')"
}

echo
echo "capture: $CAP ($BYTES bytes), outputs in $OUT, threads: $THREADS, machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
printf '%-22s %12s %10s %10s %10s\n' tool bytes wall_s MB/s peak_MiB
# Every tool reads the capture from the page cache: one untimed pass loads it.
"$FLOOR" "$CAP" >/dev/null
run floor "$BYTES" "$FLOOR" "$CAP"
run apitool "$BYTES" "$BIN" convert --quiet --threads "$THREADS" "$CAP" -o "$OUT/apitool-out.har"
run apitool-1thread "$BYTES" "$BIN" convert --quiet --threads 1 "$CAP" -o "$OUT/apitool-out.har"
run apitool-witness "$BYTES" "$BIN" convert --quiet --threads "$THREADS" -f witness "$CAP" -o "$OUT/apitool-out.wit"

# Memory must not grow with the capture: the same conversion on a 64 MB capture of the same
# generator, for the peak RSS ratio.
SMALL=64M
if [ "$SIZE" != "$SMALL" ]; then
    SMALL_CAP="$DIR/api-$SMALL.pcap"
    if [ ! -s "$SMALL_CAP" ]; then
        "$GEN" --size "$SMALL" --seed 42 -o "$SMALL_CAP" >/dev/null
    fi
    run apitool-$SMALL "$(stat -c %s "$SMALL_CAP")" "$BIN" convert --quiet --threads "$THREADS" "$SMALL_CAP" -o "$OUT/apitool-out-small.har"
fi
rm -f "$OUT"/apitool-out*

# Replay reads its recording as a stream: its peak RSS must not grow with the recording. The
# 64M capture and one four times larger are replayed to a loopback target (a baseline recorded
# with --record first), then the baselines are replayed against the same target: every
# exchange unchanged, so the report stays small and what is measured is the reading.
if command -v python3 >/dev/null 2>&1; then
    PORT=${REPLAY_PORT:-18931}
    python3 benches/replay_target.py "$PORT" 3600 &
    TARGET_PID=$!
    trap 'kill "$TARGET_PID" 2>/dev/null || true' EXIT
    sleep 0.5
    for S in 64M 256M; do
        C="$DIR/api-$S.pcap"
        [ -s "$C" ] || "$GEN" --size "$S" --seed 42 -o "$C" >/dev/null
        B="$DIR/replay-base-$S.har"
        [ -s "$B" ] || "$BIN" replay "$C" --target "http://127.0.0.1:$PORT" -q --record "$B" >/dev/null || true
        run "replay-$S" "$(stat -c %s "$B")" "$BIN" replay "$B" --target "http://127.0.0.1:$PORT" -q ||
            echo "replay-$S: not every exchange was unchanged (see $DIR/replay-$S.stderr)"
    done
    kill "$TARGET_PID" 2>/dev/null || true
else
    echo "replay: python3 not installed (the loopback target needs it), skipped"
fi

if command -v tshark >/dev/null 2>&1; then
    TS_CAP="$DIR/api-$SIZE-prefix-$TSHARK_SIZE.pcap"
    if [ ! -s "$TS_CAP" ]; then
        # A prefix cut at a record boundary: editcap keeps whole records.
        TS_BYTES=$(to_bytes "$TSHARK_SIZE")
        FRAMES=$(awk -v want="$TS_BYTES" -v total="$BYTES" -v n="$(capinfos -c -M "$CAP" | awk '/Number of packets/ {print $NF}')" 'BEGIN { printf "%d", n * want / total }')
        editcap -r "$CAP" "$TS_CAP" "1-$FRAMES" >/dev/null
    fi
    TSB=$(stat -c %s "$TS_CAP")
    run tshark "$TSB" tshark -r "$TS_CAP" -2 -o tcp.desegment_tcp_streams:TRUE -o http.desegment_body:TRUE \
        -o http.dechunk_body:TRUE -o http.decompress_body:TRUE -Y http -T fields \
        -e frame.number -e http.request.method -e http.request.uri -e http.response.code -e http.file_data
else
    echo "tshark: not installed (apt-get install tshark), skipped"
fi

echo
awk -v a="${MBPS[apitool]}" -v f="${MBPS[floor]}" -v one="${MBPS[apitool-1thread]}" 'BEGIN {
    printf "apitool vs floor: %.2fx slower; scaling 1 -> N threads: %.2fx\n", f / a, a / one }'
if [ -n "${RSS[apitool-$SMALL]:-}" ]; then
    awk -v big="${RSS[apitool]}" -v small="${RSS[apitool-$SMALL]}" -v size="$SIZE" 'BEGIN {
        printf "peak RSS at %s / at 64M: %.2fx\n", size, big / small }'
fi
if [ -n "${RSS[replay-256M]:-}" ]; then
    awk -v big="${RSS[replay-256M]}" -v small="${RSS[replay-64M]}" 'BEGIN {
        printf "replay peak RSS, recording from 256M / from 64M: %.2fx (%.1f MiB / %.1f MiB)\n", big / small, big / 1024, small / 1024 }'
fi
if [ -n "${MBPS[tshark]:-}" ]; then
    awk -v a="${MBPS[apitool]}" -v t="${MBPS[tshark]}" -v ra="${RSS[apitool]}" -v rt="${RSS[tshark]}" 'BEGIN {
        printf "apitool vs tshark: %.0fx faster, %.1fx less peak memory\n", a / t, rt / ra }'
fi
