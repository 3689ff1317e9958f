#!/usr/bin/env bash
# The whole product in one minute on loopback: installs dependencies, builds,
# starts an origin and a relay chained to it, publishes generated pattern
# versions, shows the relay and a client behind it updating by incremental,
# then stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja >/dev/null
cmake --build build >/dev/null
BIN=$PWD/build/bin
WORK=$(mktemp -d /tmp/sigrelay-demo.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_listening() {  # DIR -> prints the first bound address
  for _ in $(seq 1 200); do
    [ -s "$1/listening" ] && { head -1 "$1/listening"; return; }
    sleep 0.05
  done
  echo "demo: daemon in $1 did not start; its log:" >&2
  cat "$1.log" >&2
  exit 1
}
step() { printf '\n== %s\n' "$*"; }

step "start an origin on loopback"
"$BIN/sigrelay-origin" --data-dir "$WORK/origin" --listen 127.0.0.1:0 2>"$WORK/origin.log" &
PIDS+=($!)
ORIGIN=$(wait_listening "$WORK/origin")
echo "origin serving on $ORIGIN (admin API and token: sigrelayctl --data-dir $WORK/origin; public key $WORK/origin/origin.pub)"

step "start a relay that pulls from the origin (pinned to the origin's public key)"
"$BIN/sigrelay-relay" --data-dir "$WORK/relay" --listen 127.0.0.1:0 --upstream "$ORIGIN" \
  --origin-pubkey "$WORK/origin/origin.pub" 2>"$WORK/relay.log" &
PIDS+=($!)
RELAY=$(wait_listening "$WORK/relay")
echo "relay serving on $RELAY, upstream $ORIGIN"

wait_relay_version() {  # VERSION: until the relay serves virus VERSION (pushed, no trigger)
  for _ in $(seq 1 200); do
    "$BIN/sigrelayctl" --server "$RELAY" status --json 2>/dev/null | grep -q "\"name\":\"virus\",\"version\":$1," && return
    sleep 0.05
  done
  echo "demo: relay did not get virus $1; its log:" >&2; cat "$WORK/relay.log" >&2; exit 1
}

step "generate three versions of a virus pattern (100,000 records, 0.5% churn each)"
"$BIN/sigrelayctl" gen-pattern --records 100000 --seed 1 --out "$WORK/p1"
"$BIN/sigrelayctl" gen-pattern --from "$WORK/p1" --churn 0.5 --seed 2 --out "$WORK/p2"
"$BIN/sigrelayctl" gen-pattern --from "$WORK/p2" --churn 0.5 --seed 3 --out "$WORK/p3"
ls -l "$WORK"/p1 "$WORK"/p2 "$WORK"/p3 | awk '{print $5, $9}'

step "publish the first version at the origin; the relay has it pushed; a new client of the relay takes the full file"
"$BIN/sigrelayctl" --data-dir "$WORK/origin" publish virus "$WORK/p1" | tail -1
wait_relay_version 1
"$BIN/sigrelayctl" --server "$RELAY" fetch virus --have 0 --out "$WORK/client-virus"

for n in 2 3; do
  step "publish pattern file p$n at the origin; relay and client each take only the incremental"
  HAVE=$("$BIN/sigrelayctl" --data-dir "$WORK/origin" publish virus "$WORK/p$n" | tail -1 | awk '{print $2}')
  PREV=$((HAVE - 2))
  wait_relay_version "$HAVE"
  echo "relay: $(grep "synced virus $HAVE" "$WORK/relay.log" | sed 's/.* I //')"
  "$BIN/sigrelayctl" --server "$RELAY" fetch virus --have "$PREV" --out "$WORK/incr"
  "$BIN/sigrelayctl" patch "$WORK/client-virus" "$WORK/incr" --out "$WORK/client-virus.new"
  mv "$WORK/client-virus.new" "$WORK/client-virus"
  cmp -s "$WORK/client-virus" "$WORK/p$n" && echo "client of the relay rebuilt virus $HAVE byte for byte"
done

step "stock zstd rebuilds the same from the incremental v_1.5"
"$BIN/sigrelayctl" --server "$RELAY" fetch virus --have 1 --out "$WORK/v_1.5"
zstd -q -d --patch-from="$WORK/p1" "$WORK/v_1.5" -o "$WORK/stock-rebuilt"
cmp -s "$WORK/stock-rebuilt" "$WORK/p3" && echo "zstd -d --patch-from rebuilt virus 5 byte for byte"

step "relay status"
"$BIN/sigrelayctl" --data-dir "$WORK/relay" status
echo
echo "demo done; stopping everything it started"
