#!/usr/bin/env bash
# The long forms of the fault tests (docs/design/hardening.md), against a build's binaries
# (default build/ci). Not CI: about 20 minutes.
#   bash bench/faults/run.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build/ci}
out=$(mktemp -d /tmp/matthan-faults-XXXXXX)
echo "output in $out"
# A bad link for five minutes, then the 30 s blackout.
/usr/bin/python3 tests/faults/bad_link.py --bin "$build/bin" --source . --out "$out/badlink" \
  --impair 300 --blackout 30
# 32 cameras for five minutes.
/usr/bin/python3 tests/faults/overload.py --bin "$build/bin" --out "$out/overload" \
  --cameras 32 --seconds 300
# A camera that stops and returns 100 times.
MATTHAN_FLAPS=100 "$build/bin/recording_integration_test" \
  --gtest_filter='*AFlappingCamera*'
for f in "$out"/*/summary.json; do echo "== $f"; cat "$f"; echo; done
