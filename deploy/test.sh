#!/usr/bin/env bash
# Set-up and every test: installs what is missing, builds the ci preset (warnings are errors)
# and runs ctest (all labels but `slow`; integration tests run serially against the simulator).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
cmake --preset ci
cmake --build --preset ci
ctest --preset ci -j2
