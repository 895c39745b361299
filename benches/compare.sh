#!/usr/bin/env bash
# Measures apitool on two corpora, each row with wall time and peak RSS (medians of REPS runs,
# default 3) from /usr/bin/time -v and MB/s, and prints the ratios:
#
# - the recorded corpus (default first): a 64 MB capture of real servers and clients
#   (testdata/tools/record-bench.sh: nginx with gzip, a Python app streaming NDJSON with gzip/br,
#   curl, ab and python-requests, an event stream, a long poll and connections still open at
#   the end) and a SIZE capture made of time-shifted copies of it with distinct clients
#   (examples/capcopies.rs; 16 copies for 1G, as a rotated capture would hold them): HAR to
#   /dev/null, HAR to a file (its peak RSS is the memory figure), witnesses to /dev/null, on
#   both; tshark on the 64 MB capture;
# - the generated corpus (examples/gencap.rs, seed 42): the frame-iteration floor,
#   `apitool convert` (HAR with N threads and with one, witnesses), peak RSS against a 64 MB
#   capture of the same kind, and tshark on its first TSHARK_SIZE bytes.
# - replay: `apitool replay` peak RSS on baselines of a 64 MB and a 256 MB generated capture
#   (python3 runs the loopback target, benches/replay_target.py).
#
#   benches/compare.sh [SIZE] [TSHARK_SIZE]
#   CORPUS=recorded|generated|both (default both)  REPS=3  THREADS=$(nproc)  OUT_DIR=...
#
# SIZE (default 1G) is the size of the large capture of each corpus; tshark manages a few MB/s,
# so it runs on the recorded 64 MB capture and on the generated capture's first TSHARK_SIZE
# bytes (default 64M), and its rate is computed on what it read. GENCAP_ARGS adds options to
# the generator (e.g. "--profile recorded", whose captures are kept apart from the default's).
#
# Recording needs root, nginx, tcpdump, curl, ab (apache2-utils) and python3 with requests and
# brotli; record-bench.sh installs what is missing when it can. When the recorded capture is
# not in target/bench/ and cannot be made, the script says why and measures the generator only.
# A recording is kept and reused: delete target/bench/recorded-64M.pcap to record anew (the
# traffic's timing is the machine's, so two recordings are alike, not identical).
# Needs: cargo, /usr/bin/time, tshark (apt-get install tshark; skipped with a note when
# missing). Everything it writes goes under target/bench/ (outputs: see OUT_DIR below).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=${1:-1G}
TSHARK_SIZE=${2:-64M}
THREADS=${THREADS:-$(nproc)}
CORPUS=${CORPUS:-both}
case $CORPUS in recorded|generated|both) ;; *) echo "compare.sh: CORPUS must be recorded, generated or both" >&2; exit 2 ;; esac
GENCAP_ARGS=${GENCAP_ARGS:-}
DIR=target/bench
mkdir -p "$DIR"
# Outputs go to memory (/dev/shm) when it is there, so that the figures are the conversion's and
# not the virtual disk's writeback (1.5 GB of HAR per run; on ext4 one run took 3.5 to 5.9 s).
# OUT_DIR=target/bench measures writing to the disk instead.
OUT=${OUT_DIR:-$( [ -d /dev/shm ] && [ -w /dev/shm ] && echo /dev/shm || echo "$DIR" )}
GTAG=$(printf '%s' "$GENCAP_ARGS" | tr -c 'A-Za-z0-9' '-' | sed 's/^-*//; s/-*$//')
CAP="$DIR/api${GTAG:+-$GTAG}-$SIZE.pcap"

to_bytes() { numfmt --from=iec "$1"; }

# The release-lto profile (fat LTO, one codegen unit) is the build every published figure is of.
cargo build --profile release-lto --quiet --bin apitool --example frame_floor --example gencap --example capcopies
BIN=target/release-lto/apitool
FLOOR=target/release-lto/examples/frame_floor
GEN=target/release-lto/examples/gencap
COPIES=target/release-lto/examples/capcopies

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
    case $name in tshark*) reps=1 ;; esac
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


# ---------------------------------------------------------------- recorded corpus
REC_SMALL="$DIR/recorded-64M.pcap"
REC_BIG="$DIR/recorded-$SIZE.pcap"
recorded_ok=
if [ "$CORPUS" != generated ]; then
    if [ ! -s "$REC_SMALL" ]; then
        if why=$(testdata/tools/record-bench.sh --check) || [ "$(id -u)" = 0 ]; then
            echo "recording $REC_SMALL (real servers and clients in a private network namespace)..."
            testdata/tools/record-bench.sh 64M "$REC_SMALL" >/dev/null || rm -f "$REC_SMALL"
        else
            echo "recorded corpus: cannot record ($why); measuring the generator only"
        fi
    fi
    if [ -s "$REC_SMALL" ]; then
        # The copies are remade when the recording is newer than they are.
        if [ "$SIZE" != 64M ] && { [ ! -s "$REC_BIG" ] || [ "$REC_SMALL" -nt "$REC_BIG" ]; }; then
            "$COPIES" "$REC_SMALL" --size "$SIZE" -o "$REC_BIG"
        fi
        recorded_ok=1
    else
        echo "recorded corpus: $REC_SMALL is missing (see testdata/tools/record-bench.sh); measuring the generator only"
    fi
fi
if [ -n "$recorded_ok" ]; then
    RB=$(stat -c %s "$REC_SMALL")
    echo
    echo "recorded corpus: $REC_SMALL ($RB bytes) and $REC_BIG, outputs in $OUT, threads: $THREADS, machine: $(nproc) cores"
    printf '%-22s %12s %10s %10s %10s\n' tool bytes wall_s MB/s peak_MiB
    "$FLOOR" "$REC_SMALL" >/dev/null
    run rec64-har-null "$RB" "$BIN" convert --quiet --threads "$THREADS" "$REC_SMALL" -o /dev/null
    run rec64-har-file "$RB" "$BIN" convert --quiet --threads "$THREADS" "$REC_SMALL" -o "$OUT/apitool-out.har"
    run rec64-witness-null "$RB" "$BIN" convert --quiet --threads "$THREADS" -f witness "$REC_SMALL" -o /dev/null
    if [ "$REC_BIG" != "$REC_SMALL" ]; then
        RBB=$(stat -c %s "$REC_BIG")
        "$FLOOR" "$REC_BIG" >/dev/null
        run recbig-har-null "$RBB" "$BIN" convert --quiet --threads "$THREADS" "$REC_BIG" -o /dev/null
        run recbig-har-file "$RBB" "$BIN" convert --quiet --threads "$THREADS" "$REC_BIG" -o "$OUT/apitool-out.har"
        run recbig-witness-null "$RBB" "$BIN" convert --quiet --threads "$THREADS" -f witness "$REC_BIG" -o /dev/null
    fi
    rm -f "$OUT"/apitool-out*
    if command -v tshark >/dev/null 2>&1; then
        run tshark-rec64 "$RB" tshark -r "$REC_SMALL" -2 -o tcp.desegment_tcp_streams:TRUE -o http.desegment_body:TRUE \
            -o http.dechunk_body:TRUE -o http.decompress_body:TRUE -Y http -T fields \
            -e frame.number -e http.request.method -e http.request.uri -e http.response.code -e http.file_data
    else
        echo "tshark: not installed (apt-get install tshark), skipped"
    fi
fi
[ "$CORPUS" = recorded ] && [ -z "$recorded_ok" ] && { echo "compare.sh: no recorded corpus" >&2; exit 1; }

# ---------------------------------------------------------------- generated corpus
if [ "$CORPUS" != recorded ]; then
if [ ! -s "$CAP" ]; then
    echo "generating $CAP ($SIZE, seed 42${GENCAP_ARGS:+, $GENCAP_ARGS})..."
    # shellcheck disable=SC2086
    "$GEN" --size "$SIZE" --seed 42 $GENCAP_ARGS -o "$CAP" >/dev/null
fi
BYTES=$(stat -c %s "$CAP")
echo
echo "capture: $CAP ($BYTES bytes), outputs in $OUT, threads: $THREADS, machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
printf '%-22s %12s %10s %10s %10s\n' tool bytes wall_s MB/s peak_MiB
# Every tool reads the capture from the page cache: one untimed pass loads it.
"$FLOOR" "$CAP" >/dev/null
run floor "$BYTES" "$FLOOR" "$CAP"
run apitool "$BYTES" "$BIN" convert --quiet --threads "$THREADS" "$CAP" -o "$OUT/apitool-out.har"
run apitool-1thread "$BYTES" "$BIN" convert --quiet --threads 1 "$CAP" -o "$OUT/apitool-out.har"
run apitool-witness "$BYTES" "$BIN" convert --quiet --threads "$THREADS" -f witness "$CAP" -o "$OUT/apitool-out.wit"
run apitool-null "$BYTES" "$BIN" convert --quiet --threads "$THREADS" "$CAP" -o /dev/null
run apitool-witness-null "$BYTES" "$BIN" convert --quiet --threads "$THREADS" -f witness "$CAP" -o /dev/null

# Memory must not grow with the capture: the same conversion on a 64 MB capture of the same
# generator, for the peak RSS ratio.
SMALL=64M
if [ "$SIZE" != "$SMALL" ]; then
    SMALL_CAP="$DIR/api${GTAG:+-$GTAG}-$SMALL.pcap"
    if [ ! -s "$SMALL_CAP" ]; then
        # shellcheck disable=SC2086
        "$GEN" --size "$SMALL" --seed 42 $GENCAP_ARGS -o "$SMALL_CAP" >/dev/null
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
    TS_CAP="$DIR/api${GTAG:+-$GTAG}-$SIZE-prefix-$TSHARK_SIZE.pcap"
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

fi

echo
if [ -n "${MBPS[apitool]:-}" ]; then
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
fi
if [ -n "$recorded_ok" ]; then
    r() { printf '%s' "${MBPS[$1]:-}"; }
    m() { [ -n "${RSS[$1]:-}" ] && awk -v r="${RSS[$1]}" 'BEGIN { printf "%.1f MiB", r / 1024 }'; }
    echo
    echo "| | 64 MB recorded | $SIZE recorded | generator $SIZE |"
    echo "|---|---:|---:|---:|"
    echo "| HAR to /dev/null | $(r rec64-har-null) MB/s | $(r recbig-har-null) MB/s | $(r apitool-null) MB/s |"
    echo "| peak RSS (HAR to a file) | $(m rec64-har-file) | $(m recbig-har-file) | $(m apitool) |"
    echo "| witnesses to /dev/null | $(r rec64-witness-null) MB/s | $(r recbig-witness-null) MB/s | $(r apitool-witness-null) MB/s |"
    if [ -n "${MBPS[tshark-rec64]:-}" ]; then
        awk -v a="${MBPS[rec64-har-null]}" -v t="${MBPS[tshark-rec64]}" 'BEGIN {
            printf "| tshark, same capture | %.1f MB/s (apitool %.0fx) | | |\n", t, a / t }'
    fi
fi
