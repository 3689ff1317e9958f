#!/usr/bin/env bash
# Relay memory per idle agent: RSS before and after N agents (agent-sim, one
# TCP connection each) open their Watch streams and sit idle. The peer, same
# run: bench/grpc_floor, a bare gRPC server holding N idle Watch streams
# (one connection each, one small message answered): what gRPC itself keeps
# per idle connection and stream.
#
#   bench/idle_agents.sh [N] [RUNS]     (default 5000 agents, 3 runs)
#
# One address holds at most half the relay's descriptors: past that (10,000
# agents under a 20,000-descriptor limit) run it with
# RELAY_FLAGS="--front 127.0.0.1", as the agents all come from loopback.
#
# Prints each run's bytes per agent; RELAY_FLAGS adds relay flags.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5000}
RUNS=${2:-3}
. bench/lib.sh
bench_init idle
rss_kb() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }

"$B/sigrelayctl" gen-pattern --records 3000 --seed 1 --out "$W/v1" >/dev/null
"$B/sigrelay-origin" --data-dir "$W/o" --listen 127.0.0.1:0 2>"$W/o.log" &
PIDS+=($!)
wait_file "$W/o/listening"
ORIGIN=$(head -1 "$W/o/listening")
"$B/sigrelayctl" --data-dir "$W/o" publish virus "$W/v1" >/dev/null
floor_bytes() {  # bytes per idle stream of a bare gRPC server, N streams
  "$B/grpc_floor" serve >"$W/floor.port" 2>/dev/null &
  local fp=$! hp r0 r1
  wait_file "$W/floor.port"
  r0=$(rss_kb $fp)
  "$B/grpc_floor" hold --server "127.0.0.1:$(cat "$W/floor.port")" --clients "$N" >"$W/hold.out" &
  hp=$!
  for _ in $(seq 1 1200); do grep -q ready "$W/hold.out" 2>/dev/null && break; sleep 0.1; done
  grep -q ready "$W/hold.out" || { echo "grpc_floor hold did not get ready" >&2; exit 1; }
  sleep 2  # as for the relay below
  r1=$(rss_kb $fp)
  kill $hp $fp 2>/dev/null || true
  wait $hp $fp 2>/dev/null || true
  rm -f "$W/floor.port" "$W/hold.out"
  echo $(((r1 - r0) * 1024 / N))
}
echo "| run | agents | relay RSS before MiB | after MiB | bytes per idle agent | bare gRPC bytes per idle stream | relay / bare |"
echo "|---|---|---|---|---|---|---|"
for run in $(seq 1 "$RUNS"); do
  rm -rf "$W/r"
  "$B/sigrelay-relay" --data-dir "$W/r" --listen 127.0.0.1:0 --upstream "$ORIGIN" \
    --origin-pubkey "$W/o/origin.pub" --max-conns-per-peer $((N + 1000)) ${RELAY_FLAGS:-} \
    2>"$W/r.log" &
  RP=$!
  wait_file "$W/r/listening"
  for _ in $(seq 1 200); do
    "$B/sigrelayctl" --server "$(head -1 "$W/r/listening")" status 2>/dev/null | grep -q "virus 1" && break
    sleep 0.05
  done
  R0=$(rss_kb $RP)
  "$B/sigrelay-agent-sim" --server "$(head -1 "$W/r/listening")" --agents "$N" \
    --connections per-agent --origin-pubkey "$W/o/origin.pub" --start current \
    --start-source "$ORIGIN" --until virus=99 --timeout 120s >/dev/null 2>"$W/sim.err" &
  SP=$!
  w=0
  for _ in $(seq 1 1200); do
    # A status call the busy relay does not answer is tried again.
    w=$("$B/sigrelayctl" --data-dir "$W/r" status --json 2>/dev/null |
      grep -o '"watchers":[0-9]*' | cut -d: -f2 || true)
    [ "${w:-0}" -ge "$N" ] && break
    sleep 0.1
  done
  sleep 2  # the last streams' first pushes written
  R1=$(rss_kb $RP)
  kill $SP $RP 2>/dev/null || true
  wait $SP $RP 2>/dev/null || true
  PER=$(((R1 - R0) * 1024 / N))
  FLOOR=$(floor_bytes)
  echo "| $run | ${w:-0} | $((R0 / 1024)) | $((R1 / 1024)) | $PER | $FLOOR | $(awk -v a="$PER" -v b="$FLOOR" 'BEGIN{printf "%.2f", a/b}') |"
done
