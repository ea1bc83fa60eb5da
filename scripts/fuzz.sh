#!/usr/bin/env bash
# Builds the libFuzzer targets (Tests/Fuzz, declared in Package.swift when FLATLINE_FUZZ=1) with
# -sanitize=fuzzer,address into .build-fuzz, and runs each from its seed corpus
# (Tests/Fuzz/corpus/TARGET, plus what earlier runs found, kept in .build-fuzz/corpus) for
# RUNS executions (default 1,000,000). Prints executions, speed and crashes per target; a crash
# leaves its input as .build-fuzz/crash-* and fails the run.
#
#   scripts/fuzz.sh [TARGET...]        RUNS=200000 scripts/fuzz.sh FuzzExposition
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-1000000}"
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(FuzzExposition FuzzNATSBodies FuzzNATSProtocol FuzzConfiguration FuzzRecording)
build=(swift build -c release --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld)
status=0
printf '%-20s %12s %12s %10s %8s\n' target executions 'exec/s' seconds crashes
for target in "${targets[@]}"; do
    mkdir -p .build-fuzz
    FLATLINE_FUZZ=1 "${build[@]}" --product "$target" >".build-fuzz/build-$target.log" 2>&1 \
        || { echo "fuzz: building $target failed (.build-fuzz/build-$target.log)" >&2; exit 1; }
    corpus=".build-fuzz/corpus/$target"
    mkdir -p "$corpus"
    log=".build-fuzz/$target.log"
    set +e
    ".build-fuzz/release/$target" "$corpus" "Tests/Fuzz/corpus/$target" -runs="$runs" -max_len=65536 \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=".build-fuzz/crash-$target-" \
        >"$log" 2>&1
    code=$?
    set -e
    executed=$(awk -F: '/stat::number_of_executed_units/ {gsub(/ /,"",$NF); print $NF}' "$log")
    speed=$(awk -F: '/stat::average_exec_per_sec/ {gsub(/ /,"",$NF); print $NF}' "$log")
    seconds=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | awk '{print $5}')
    crashes=$(find .build-fuzz -maxdepth 1 -name "crash-$target-*" | wc -l)
    printf '%-20s %12s %12s %10s %8s\n' "$target" "${executed:-?}" "${speed:-?}" "${seconds:-?}" "$crashes"
    if [ "$code" -ne 0 ] || [ "$crashes" -gt 0 ]; then
        status=1
        echo "fuzz: $target failed (exit $code); see $log" >&2
        grep -m5 -E "ERROR|Fatal|==ERROR" "$log" >&2 || true
    fi
done
exit $status
