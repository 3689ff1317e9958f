#!/usr/bin/env bash
# Installs dependencies, builds everything, runs the whole test suite.
# Extra arguments go to ctest (e.g. scripts/test.sh -R Origin).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja >/dev/null
cmake --build build
cd build
ctest --output-on-failure -j "$(nproc)" "$@"
