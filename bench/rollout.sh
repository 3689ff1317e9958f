#!/usr/bin/env bash
# Staged rollout: what staging costs over a plain push, and the bytes of
# health reporting.
#
#   bench/rollout.sh [N] [RECORDS]     (default 10000 agents, 30000 records ~ 2 MB)
#
# origin <- relay A <- relay B <- N agents (sigrelay-agent-sim, all
# healthy). Version 3 is published with --rollout none (everyone at once),
# then version 5 with canary=1%:0s,early=10%:0s,broad (zero bake: the gate
# promotes as soon as each ring's health reports reach the origin). For
# each: publish -> relay B counting all N agents on it (their own reports:
# installed and verified) and -> the origin counting all N (status fleet,
# the sums two hops up, what the gate decides on). Bytes: what the agents sent relay B
# during the staged run (their reports, fetch requests, HTTP/2 framing; ss
# counters), per agent; and what relay B sent relay A (its fleet sums up
# the tree, and its sync's requests), per hop.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
RECORDS=${2:-30000}
. bench/lib.sh
bench_init rollout

json_num() { grep -o "\"$2\":[0-9.e+-]*" <<<"$1" | head -1 | cut -d: -f2; }
port_of() { head -1 "$1/listening" | sed 's/.*://'; }
# Bytes received (sport = PORT: on the server's side) or sent (dport = PORT:
# on the client's side) over every established loopback connection.
ss_sum() { ss -tinH state established "( $1 = :$2 )" | { grep -o "$3:[0-9]*" || true; } | cut -d: -f2 | awk '{s+=$1} END {print s+0}'; }

"$B/sigrelayctl" gen-pattern --records "$RECORDS" --seed 1 --out "$W/v1"
"$B/sigrelayctl" gen-pattern --from "$W/v1" --churn 0.5 --seed 3 --out "$W/v3"
"$B/sigrelayctl" gen-pattern --from "$W/v3" --churn 0.5 --seed 5 --out "$W/v5"

"$B/sigrelay-origin" --data-dir "$W/origin" --listen 127.0.0.1:0 --max-agents 100000 2>"$W/origin.log" &
PIDS+=($!)
wait_file "$W/origin/listening"
ORIGIN=$(head -1 "$W/origin/listening")
"$B/sigrelayctl" --data-dir "$W/origin" publish virus "$W/v1" >/dev/null
for r in a b; do
  up=$ORIGIN
  [ "$r" = b ] && up=$(head -1 "$W/a/listening")
  "$B/sigrelay-relay" --data-dir "$W/$r" --listen 127.0.0.1:0 --upstream "$up" \
    --origin-pubkey "$W/origin/origin.pub" --max-backoff 1s 2>"$W/$r.log" &
  PIDS+=($!)
  wait_file "$W/$r/listening"
done
RELAY_B=$(head -1 "$W/b/listening")
origin_on() {  # agents the origin counts on virus $1
  "$B/sigrelayctl" --data-dir "$W/origin" status --json |
    grep -o "{\"component\":\"virus\",\"version\":$1,\"agents\":[0-9]*" |
    awk -F: '{s+=$NF} END {print s+0}'
}
for _ in $(seq 1 600); do
  "$B/sigrelayctl" --server "$RELAY_B" status 2>/dev/null | grep -q "virus 1" && break; sleep 0.05
done

relay_b_on() {  # agents relay B itself counts on virus $1 (their own reports, one hop)
  "$B/sigrelayctl" --data-dir "$W/b" status --json |
    grep -o "\"agent_versions\":\[[^]]*" | grep -o "\"version\":$1,\"agents\":[0-9]*" |
    awk -F: '{s+=$NF} END {print s+0}'
}
# The agents stay connected through both runs (shared connections, 32
# agents each), so the byte counters cover the same connections.
"$B/sigrelay-agent-sim" --server "$RELAY_B" --agents "$N" --origin-pubkey "$W/origin/origin.pub" \
  --start current --start-source "$ORIGIN" --unhealthy 0 --until virus=99 --timeout 900s \
  >"$W/sim.out" 2>"$W/sim.err" &
SIM=$!
PIDS+=($SIM)

run() {  # run VERSION PLAN: publish, then time convergence
  local v=$1 plan=$2
  for _ in $(seq 1 1200); do
    [ "$(origin_on $((v - 2)))" -ge "$N" ] && break
    kill -0 $SIM 2>/dev/null || { cat "$W/sim.err" >&2; exit 1; }
    sleep 0.1
  done
  local in0 up0 published agents="" seen=""
  in0=$(ss_sum sport "$(port_of "$W/b")" bytes_received)
  up0=$(ss_sum dport "$(port_of "$W/a")" bytes_sent)
  published=$(date +%s.%N)
  "$B/sigrelayctl" --data-dir "$W/origin" publish virus "$W/v$v" --rollout "$plan" >/dev/null
  for _ in $(seq 1 12000); do
    [ -z "$agents" ] && [ "$(relay_b_on "$v")" -ge "$N" ] && agents=$(date +%s.%N)
    [ "$(origin_on "$v")" -ge "$N" ] && { seen=$(date +%s.%N); break; }
    sleep 0.05
  done
  [ -n "$agents" ] || agents=$seen
  local in1 up1
  in1=$(ss_sum sport "$(port_of "$W/b")" bytes_received)
  up1=$(ss_sum dport "$(port_of "$W/a")" bytes_sent)
  T_AGENTS=$(awk -v a="$agents" -v p="$published" 'BEGIN{printf "%.2f", a-p}')
  T_ORIGIN=$(awk -v a="$seen" -v p="$published" 'BEGIN{printf "%.2f", a-p}')
  PER_AGENT=$(( (in1 - in0) / N ))
  PER_HOP=$((up1 - up0))
}

run 3 none
PLAIN_AGENTS=$T_AGENTS PLAIN_ORIGIN=$T_ORIGIN PLAIN_AGENT_BYTES=$PER_AGENT PLAIN_HOP=$PER_HOP
run 5 canary=1%:0s,early=10%:0s,broad
DECISIONS=$(grep -c "rollout of virus 5" "$W/origin.log" || true)
echo "| agents | plain: publish -> all agents on it s | plain: -> origin counts all s | staged (3 rings, zero bake): -> all agents s | staged: -> origin counts all s | staged / plain (agents) | gate decisions | bytes agents sent relay B per agent, plain / staged | bytes relay B sent relay A, plain / staged |"
echo "|---|---|---|---|---|---|---|---|---|"
echo "| $N | $PLAIN_AGENTS | $PLAIN_ORIGIN | $T_AGENTS | $T_ORIGIN | $(awk -v s="$T_AGENTS" -v p="$PLAIN_AGENTS" 'BEGIN{printf "%.1f", s/p}') | $DECISIONS | $PLAIN_AGENT_BYTES / $PER_AGENT | $PLAIN_HOP / $PER_HOP |"
