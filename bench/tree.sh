#!/usr/bin/env bash
# A deep tree on loopback: origin -> 1 relay -> 3 relays -> agents under
# each, and the time of each hop for one publish (the parent's commit to
# the child's commit, from the daemons' own JSON log timestamps), then to
# every agent converged.
#
#   bench/tree.sh [RECORDS] [AGENTS_PER_RELAY] [L2_RELAYS]
#       (default 300000 records, about 20 MB; 100 agents; 3 relays)
#
# All of it shares one machine: with one second-level relay, each hop has
# the cores to itself, as a relay on a machine of its own would.
#
# Version 1 is taken whole everywhere first; the timed publish is version 3
# at 0.5 % churn, which every hop takes by incremental and pushes on.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${1:-300000}
AGENTS=${2:-100}
FANOUT=${3:-3}
. bench/lib.sh
bench_init tree

"$B/sigrelayctl" gen-pattern --records "$RECORDS" --seed 1 --out "$W/v1"
"$B/sigrelayctl" gen-pattern --from "$W/v1" --churn 0.5 --seed 3 --out "$W/v3"

# start NAME BINARY ARGS...: a daemon with JSON logs; waits until it
# listens (addr NAME: where).
start() {
  local name=$1 bin=$2
  shift 2
  "$B/$bin" --data-dir "$W/$name" --listen 127.0.0.1:0 --log-format json "$@" \
    2>"$W/$name.log" &
  PIDS+=($!)
  for _ in $(seq 1 200); do [ -s "$W/$name/listening" ] && break; sleep 0.05; done
}
addr() { head -1 "$W/$1/listening"; }
PUB="$W/origin/origin.pub"
start origin sigrelay-origin
ORIGIN=$(addr origin)
start l1 sigrelay-relay --upstream "$ORIGIN" --origin-pubkey "$PUB"
L1=$(addr l1)
L2=()
for i in $(seq 1 "$FANOUT"); do
  start "l2-$i" sigrelay-relay --upstream "$L1" --origin-pubkey "$PUB"
  L2+=("$(addr "l2-$i")")
done
serves() { "$B/sigrelayctl" --server "$1" status --json | grep -q "\"name\":\"virus\",\"version\":$2,"; }
wait_serves() {
  for _ in $(seq 1 1200); do serves "$1" "$2" && return 0; sleep 0.05; done
  echo "$1 never served version $2" >&2
  exit 1
}

"$B/sigrelayctl" --data-dir "$W/origin" publish virus "$W/v1" >/dev/null
for r in "$L1" "${L2[@]}"; do wait_serves "$r" 1; done
SIMS=()
for i in $(seq 0 $((FANOUT - 1))); do
  "$B/sigrelay-agent-sim" --server "${L2[$i]}" --origin-pubkey "$PUB" --agents "$AGENTS" \
    --start current --until virus=3 --timeout 300s --json >"$W/sim-$i.json" 2>"$W/sim-$i.err" &
  SIMS+=($!)
done
# The agents are watching (each relay counts them) before the publish.
for i in $(seq 1 "$FANOUT"); do
  for _ in $(seq 1 600); do
    n=$("$B/sigrelayctl" --data-dir "$W/l2-$i" status --json | grep -o '"watchers":[0-9]*' | cut -d: -f2)
    [ "${n:-0}" -ge "$AGENTS" ] && break
    sleep 0.05
  done
done

"$B/sigrelayctl" --data-dir "$W/origin" publish virus "$W/v3" >/dev/null
for pid in "${SIMS[@]}"; do wait "$pid"; done

python3 - "$W" "$RECORDS" "$AGENTS" "$(stat -c %s "$W/v3")" "$FANOUT" <<'PY'
import datetime, json, sys
w, records, agents, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
fanout = int(sys.argv[5])

def ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()

def commit(name, prefix):
    for line in open(f"{w}/{name}.log"):
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("msg", "").startswith(prefix):
            return ts(e["ts"]), e["msg"]
    sys.exit(f"{name}: no '{prefix}' in its log")

origin, _ = commit("origin", "published virus 3")
l1, l1_msg = commit("l1", "synced virus 3")
l2 = [commit(f"l2-{i}", "synced virus 3") for i in range(1, fanout + 1)]
sims = [json.load(open(f"{w}/sim-{i}.json")) for i in range(fanout)]
print(f"pattern {size} bytes ({records} records), version 3 at 0.5 % churn; "
      f"{agents} agents under each of {fanout} second-level relays")
print(f"  origin commit -> relay L1 commit:      {l1 - origin:6.3f} s  ({l1_msg})")
for i, (t, msg) in enumerate(l2, 1):
    print(f"  relay L1 commit -> relay L2-{i} commit: {t - l1:6.3f} s  ({msg})")
for i, s in enumerate(sims):
    assert s["converged"] == agents, s
    print(f"  relay L2-{i + 1} commit -> its {agents} agents converged: "
          f"{s['all_converged_unix'] - l2[i][0]:6.3f} s")
print(f"  origin commit -> every agent: {max(s['all_converged_unix'] for s in sims) - origin:6.3f} s")
PY
