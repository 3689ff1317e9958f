#!/usr/bin/env bash
# The layering is a build fact: the CLI and the agents never link RocksDB
# (only origin and relay, through core/store, do). Reads the link commands
# ninja would run, so a stray dependency fails here, not in review.
set -euo pipefail
build_dir=$1
link_of() { ninja -C "$build_dir" -t commands "bin/$1" | tail -1; }
for bin in sigrelayctl sigrelay-agent-sim sigrelay-agent; do
  if link_of "$bin" | grep -q rocksdb; then
    echo "FAIL: $bin is linked against RocksDB; it must use only core/base, core/model, core/client" >&2
    exit 1
  fi
done
# Control: the check can see RocksDB where it belongs.
link_of sigrelay-relay | grep -q rocksdb || { echo "FAIL: cannot see RocksDB in the relay's link" >&2; exit 1; }
echo "layering: sigrelayctl, sigrelay-agent-sim and sigrelay-agent link no RocksDB"
