#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for N seconds (default 15) over its committed corpus, on the
# stable toolchain, and fails on the first crash, printing the input that reproduces it.
#
#   scripts/fuzz.sh [seconds-per-target]
#
# Environment: FUZZ_TARGET_DIR (build directory, outside the clone by default),
# FUZZ_SANITIZER (address, the default, or none), FUZZ_TARGETS (a space-separated subset).
# New inputs found during the run go to a scratch directory, never into fuzz/corpus/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-15}"
sanitizer="${FUZZ_SANITIZER:-address}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-/var/tmp/livepeer-gateway-rs-fuzz-target}"
# cargo-fuzz passes nightly-only compiler flags (-Zsanitizer, sanitizer coverage); this lets the
# stable compiler accept them. No nightly toolchain is used.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

targets="${FUZZ_TARGETS:-$(cargo fuzz list --fuzz-dir fuzz)}"
echo "fuzz: $(rustc --version), sanitizer $sanitizer, ${seconds}s per target, build in $CARGO_TARGET_DIR"
cargo fuzz build --fuzz-dir fuzz --sanitizer "$sanitizer"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
summary=()
failed=0
for target in $targets; do
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus" "$scratch/$target" "fuzz/artifacts/$target"
    log="$scratch/$target.log"
    echo "fuzz: $target for ${seconds}s over $(find "$corpus" -type f | wc -l) corpus inputs"
    # The scratch directory comes first: libFuzzer writes new inputs to the first directory only.
    if cargo fuzz run --fuzz-dir fuzz --sanitizer "$sanitizer" "$target" "$scratch/$target" "$corpus" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
        summary+=("$target: ok, ${runs:-?} executions")
    else
        failed=1
        tail -n 60 "$log"
        reproducer="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)"
        summary+=("$target: FAILED, reproducer ${reproducer:-not written (see the log above)}")
        echo "fuzz: $target failed; reproduce with:"
        echo "  RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz --sanitizer $sanitizer $target ${reproducer:-<input>}"
    fi
done

printf 'fuzz: %s\n' "${summary[@]}"
exit "$failed"
