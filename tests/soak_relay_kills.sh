#!/usr/bin/env bash
# Soak: the relay SIGKILL-during-download test with many more kills than the
# suite's 20 (default 200), repeated ROUNDS times (default 3). Bounded: it
# stops by itself. Uses the build from scripts/test.sh.
#
#   tests/soak_relay_kills.sh [KILLS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --build build >/dev/null
SIGRELAY_RELAY_KILLS=${1:-200} SIGRELAY_BIN_DIR=$PWD/build/bin \
  build/bin/relay_integration_test \
  --gtest_filter='RelayTest.SigkillDuringFullDownloadResumesAndLosesNothing' \
  --gtest_repeat="${2:-3}" --gtest_shuffle
