#!/usr/bin/env bash
# The whole test suite under ASan + UBSan, then under TSan (not CI: each build and run takes
# about an hour on 2 cores). A sanitizer report fails the run: halt_on_error, and the logs are
# kept under build/<preset>/sanitizer-logs.
#   bash bench/sanitizers/run.sh [asan|tsan]...   (default: both)
set -euo pipefail
cd "$(dirname "$0")/../.."
presets=("$@")
[ ${#presets[@]} -eq 0 ] && presets=(asan tsan)
status=0
for p in "${presets[@]}"; do
  logs="build/$p/sanitizer-logs"
  cmake --preset "$p" >/dev/null
  cmake --build "build/$p" -j2
  rm -rf "$logs" && mkdir -p "$logs"
  # verify_asan_link_order=0: the clock test and the browser test run the server under
  # faketime, whose LD_PRELOAD comes before the ASan runtime. fast_unwind_on_malloc=0: leak
  # stacks through libraries without frame pointers, for lsan.supp's `_dl_init`.
  export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:verify_asan_link_order=0:fast_unwind_on_malloc=0:log_path=$PWD/$logs/asan"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$PWD/$logs/ubsan"
  export LSAN_OPTIONS="suppressions=$PWD/bench/sanitizers/lsan.supp"
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1:log_path=$PWD/$logs/tsan:suppressions=$PWD/bench/sanitizers/tsan.supp"
  echo "== ctest under $p"
  # Under TSan not the detection evaluations (hours of video through the same server threads
  # the integration tests run) nor Faults.Overload (it overloads on purpose; TSan's 5-15x
  # makes every test an overload).
  skip=()
  [ "$p" = tsan ] && skip=(-LE "slow|eval" -E "Faults.Overload")
  [ ${#skip[@]} -eq 0 ] && skip=(-LE slow)
  if ! ctest --test-dir "build/$p" "${skip[@]}" --timeout 1800 --output-on-failure; then
    status=1
  fi
  # A log that only lists the suppressions used is not a report.
  if grep -lE "ERROR: |runtime error|WARNING: ThreadSanitizer" "$logs"/* >/dev/null 2>&1; then
    echo "$p: sanitizer reports in $logs:"
    grep -lE "ERROR: |runtime error|WARNING: ThreadSanitizer" "$logs"/* | xargs head -50
    status=1
  fi
done
exit $status
