#!/usr/bin/env bash
# Builds the fuzz targets (clang-19, ASan + UBSan + libFuzzer) and runs each for $1 seconds
# (default 120). New corpus entries are merged into bench/fuzz/corpus/<target>; crashes are
# copied to bench/fuzz/regressions/<target> and make the script fail. See README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-120}
targets=(http config scenario media rtp rtpdepack)
cmake --preset fuzz >/dev/null
cmake --build build/fuzz -j2 --target "${targets[@]/#/fuzz_}"
out=build/fuzz/runs
mkdir -p "$out"
status=0
for t in "${targets[@]}"; do
  work="$out/$t"
  rm -rf "$work" && mkdir -p "$work/new" "$work/crashes"
  echo "== fuzz_$t for ${seconds}s"
  set +e
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "build/fuzz/bin/fuzz_$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 \
    -max_len=$([ "$t" = media ] || [ "$t" = rtp ] || [ "$t" = rtpdepack ] && echo 65536 || echo 8192) \
    -artifact_prefix="$work/crashes/" -print_final_stats=1 \
    "$work/new" "bench/fuzz/corpus/$t" "bench/fuzz/regressions/$t" >"$work/log.txt" 2>&1
  rc=$?
  set -e
  grep -E "^stat::(number_of_executed_units|peak_rss_mb|new_units_added)" "$work/log.txt" || true
  if ls "$work/crashes/"* >/dev/null 2>&1; then
    cp "$work/crashes/"* "bench/fuzz/regressions/$t/"
    echo "fuzz_$t: CRASH (rc $rc), kept in bench/fuzz/regressions/$t; see $work/log.txt"
    status=1
  fi
  # Keep what grew the coverage, minimised, next to the seeds.
  "build/fuzz/bin/fuzz_$t" -merge=1 "bench/fuzz/corpus/$t" "$work/new" >"$work/merge.txt" 2>&1 || true
done
exit $status
