#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60), one after the other, and prints the
# executions and findings (crashes, timeouts, out-of-memory) per target.
#
#   fuzz/run.sh [SECONDS]                 all targets
#   TARGETS="http decode" fuzz/run.sh 300  some of them
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain (`rustup toolchain
# install nightly`): libFuzzer's coverage instrumentation uses unstable rustc flags. Without
# a nightly toolchain the script builds on stable with RUSTC_BOOTSTRAP=1, which also works.
#
# Corpora are seeded from testdata/ by `cargo run --example seeds` into fuzz/corpus/<target>/
# (not committed). Findings land in fuzz/artifacts/<target>/ (not committed either): fix them,
# then copy the input to fuzz/regressions/<target>/ so that `cargo test` in fuzz/ (run in CI)
# replays it. Reproduce one with `fuzz/run.sh` then
#   $TARGET_DIR/x86_64-unknown-linux-gnu/release/<target> fuzz/artifacts/<target>/<file>
#
# Environment: TARGETS (targets to run), CARGO_TARGET_DIR (build directory, default
# fuzz/target), RSS_MB (memory limit per target process, default 2048; an allocation over it
# is reported as out-of-memory), TIMEOUT (seconds per input before it counts as a hang,
# default 10), JOBS (parallel fuzzing processes per target, default 1).
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")"

SECS=${1:-60}
TARGETS=${TARGETS:-"capture wire reassembly http decode convert witness bodies keylog ws ws_conn h2 tls"}
RSS_MB=${RSS_MB:-2048}
TIMEOUT=${TIMEOUT:-10}
JOBS=${JOBS:-1}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}

if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    FUZZ=(cargo +nightly fuzz)
else
    echo "no nightly toolchain: building with RUSTC_BOOTSTRAP=1 on stable" >&2
    export RUSTC_BOOTSTRAP=1
    FUZZ=(cargo fuzz)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 2
fi

# Release build with debug assertions and overflow checks (cargo-fuzz's default).
"${FUZZ[@]}" build >&2
BIN="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"

cargo run --quiet --example seeds -- corpus >&2

mkdir -p logs
printf '%-11s %12s %9s %8s %8s %6s %7s  %s\n' target executions exec/s crashes timeouts ooms corpus "findings"
for t in $TARGETS; do
    mkdir -p "corpus/$t" "artifacts/$t"
    stamp=$(mktemp)
    # With JOBS > 1 each process writes its own fuzz-N.log; the stats are summed over them.
    par=()
    if [ "$JOBS" -gt 1 ]; then par=(-jobs="$JOBS" -workers="$JOBS"); fi
    "$BIN/$t" "corpus/$t" \
        -max_total_time="$SECS" -rss_limit_mb="$RSS_MB" -timeout="$TIMEOUT" \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 "${par[@]}" \
        >"logs/$t.log" 2>&1 || true
    logs=("logs/$t.log" fuzz-*.log)
    execs=$(awk '/stat::number_of_executed_units/ {s += $2} END {print s + 0}' "${logs[@]}")
    rate=$(awk '/stat::average_exec_per_sec/ {s += $2} END {print s + 0}' "${logs[@]}")
    rm -f fuzz-*.log
    new=$(find "artifacts/$t" -type f -newer "$stamp" | sort)
    rm -f "$stamp"
    crashes=$(printf '%s\n' "$new" | grep -c '/crash-' || true)
    timeouts=$(printf '%s\n' "$new" | grep -c '/timeout-\|/slow-unit-' || true)
    ooms=$(printf '%s\n' "$new" | grep -c '/oom-\|/leak-' || true)
    corpus=$(find "corpus/$t" -type f | wc -l)
    printf '%-11s %12s %9s %8s %8s %6s %7s  %s\n' "$t" "$execs" "$rate" "$crashes" "$timeouts" "$ooms" "$corpus" \
        "$(printf '%s ' $new)"
done
