#!/usr/bin/env bash
# Big patterns in bounded memory: the peak RSS of each process while it
# publishes, syncs or installs a large pattern, against the file's size.
#
#   bench/bigpattern.sh [RECORDS]     (default 2200000 records, about 150 MB)
#
# One origin (--max-file-size 1GiB), one relay, sigrelay-agent --once and
# agent-sim (10 agents on one version), all on loopback. Phases:
#   1. publish v1 (full only); the relay takes it whole; the agent and the
#      fleet download it whole.
#   2. publish v3 (0.5 % churn); the relay takes the incremental and
#      rebuilds; the agent and the fleet take the incremental and rebuild.
# Each daemon's high-water mark is reset (/proc/PID/clear_refs) before a
# phase and read after it; the one-shot clients are measured by
# /usr/bin/time. The peer of every row is the pattern itself (the ratio
# column): what a process that holds the file in memory would cost.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${1:-2200000}
. bench/lib.sh
bench_init bigpattern

hwm_kb() { awk '/VmHWM/{print $2}' "/proc/$1/status"; }
reset_hwm() { echo 5 > "/proc/$1/clear_refs"; }
mib() { awk -v k="$1" 'BEGIN{printf "%.0f", k/1024}'; }
json_num() { grep -o "\"$2\":[0-9.e+-]*" <<<"$1" | head -1 | cut -d: -f2; }

"$B/sigrelayctl" gen-pattern --records "$RECORDS" --seed 1 --out "$W/v1"
"$B/sigrelayctl" gen-pattern --from "$W/v1" --churn 0.5 --seed 2 --out "$W/v2"
SIZE=$(stat -c %s "$W/v1")
SIZE_KB=$((SIZE / 1024))

"$B/sigrelay-origin" --data-dir "$W/origin" --listen 127.0.0.1:0 --max-file-size 1GiB \
  2>"$W/origin.log" &
ORIGIN_PID=$!
PIDS+=($ORIGIN_PID)
wait_file "$W/origin/listening"
ORIGIN=$(head -1 "$W/origin/listening")
"$B/sigrelay-relay" --data-dir "$W/relay" --listen 127.0.0.1:0 --upstream "$ORIGIN" \
  --origin-pubkey "$W/origin/origin.pub" --max-file-size 1GiB 2>"$W/relay.log" &
RELAY_PID=$!
PIDS+=($RELAY_PID)
wait_file "$W/relay/listening"
RELAY=$(head -1 "$W/relay/listening")
relay_has() {  # VERSION: waits until the relay serves virus VERSION
  for _ in $(seq 1 1200); do
    "$B/sigrelayctl" --data-dir "$W/relay" status --json | grep -q "\"name\":\"virus\",\"version\":$1," && return
    sleep 0.1
  done
  echo "relay did not take virus $1" >&2; tail "$W/relay.log" >&2; exit 1
}
agent() {  # runs sigrelay-agent --once, prints its peak RSS in KB
  /usr/bin/time -f %M -o "$W/agent.time" "$B/sigrelay-agent" --server "$RELAY" \
    --origin-pubkey "$W/origin/origin.pub" --dir "$W/agent" --components virus --once \
    2>>"$W/agent.log"
  cat "$W/agent.time"
}
fleet() {  # VERSION: 10 agents (shared versions) converge on it; prints peak RSS in KB
  /usr/bin/time -f %M -o "$W/fleet.time" "$B/sigrelay-agent-sim" --server "$RELAY" \
    --origin-pubkey "$W/origin/origin.pub" --agents 10 --start "$2" --start-source "$ORIGIN" \
    --until "virus=$1" --timeout 600s --json >"$W/fleet.json" 2>>"$W/fleet.log"
  cat "$W/fleet.time"
}

ROWS=()
row() { ROWS+=("$(printf '| %-44s | %9s | %8s |' "$1" "$(mib "$2")" \
  "$(awk -v a="$2" -v b="$SIZE_KB" 'BEGIN{printf "%.2fx", a/b}')")"); }

# Phase 1: the first version, whole everywhere.
reset_hwm $ORIGIN_PID; reset_hwm $RELAY_PID
T0=$(date +%s.%N)
"$B/sigrelayctl" --data-dir "$W/origin" publish virus "$W/v1" >/dev/null
T_PUBLISH1=$(awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN{printf "%.2f", a-b}')
row "origin, publishing v1 (full only)" "$(hwm_kb $ORIGIN_PID)"
relay_has 1
row "relay, taking v1 whole" "$(hwm_kb $RELAY_PID)"
row "sigrelay-agent --once, installing v1 whole" "$(agent)"
row "agent-sim, 10 agents downloading v1 whole" "$(fleet 1 none)"

# Phase 2: the next version, as an incremental everywhere.
reset_hwm $ORIGIN_PID; reset_hwm $RELAY_PID
T0=$(date +%s.%N)
"$B/sigrelayctl" --data-dir "$W/origin" publish virus "$W/v2" >/dev/null
T_PUBLISH2=$(awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN{printf "%.2f", a-b}')
row "origin, publishing v3 (one incremental)" "$(hwm_kb $ORIGIN_PID)"
relay_has 3
row "relay, taking v3 by incremental" "$(hwm_kb $RELAY_PID)"
grep -q "synced virus 3 .* by incremental" "$W/relay.log" || { echo "relay did not take the incremental" >&2; exit 1; }
row "sigrelay-agent --once, installing v3 by incremental" "$(agent)"
grep -q "installed virus 3 .* by incremental" "$W/agent.log" || { echo "agent did not take the incremental" >&2; exit 1; }
row "agent-sim, 10 agents rebuilding v3" "$(fleet 3 1)"
[ "$(json_num "$(cat "$W/fleet.json")" bytes_full)" = 0 ] || { echo "fleet took full files" >&2; exit 1; }

echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo); pattern $SIZE bytes ($RECORDS records), 0.5 % churn"
echo "publish v1 took ${T_PUBLISH1}s, v3 ${T_PUBLISH2}s (upload, hashing, store, incremental, signing)"
echo
echo "| process and phase                            | peak RSS MiB | / file |"
echo "|----------------------------------------------|-----------:|-------:|"
for r in "${ROWS[@]}"; do echo "$r"; done
