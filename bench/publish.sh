#!/usr/bin/env bash
# Publish time: how soon a new version is signed and servable, and how soon
# every incremental is ready, at --retain 8.
#
#   bench/publish.sh [RECORDS]     (default 300000 records, about 20 MB)
#
# An origin holds 9 versions (0.5 % churn each), so the next publish makes 8
# incrementals. One agent (agent-sim) watches the origin holding the
# version before. Printed: sigrelayctl publish's own time (upload, hashing,
# storing, the first round of incrementals, signing), publish -> the agent
# converged (it takes the new version by incremental), and publish -> the
# manifest lists all 8 (the rest signed in by one more manifest). The peer
# in the same run: the same 8 incrementals made one after the other, as
# the origin did before (all before signing), timed with `sigrelayctl delta`.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${1:-300000}
. bench/lib.sh
bench_init publish
json_num() { grep -o "\"$2\":[0-9.e+-]*" <<<"$1" | head -1 | cut -d: -f2; }
now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN{printf "%.2f", a-b}'; }

"$B/sigrelayctl" gen-pattern --records "$RECORDS" --seed 1 --out "$W/v1"
for i in $(seq 2 10); do
  "$B/sigrelayctl" gen-pattern --from "$W/v$((i - 1))" --churn 0.5 --seed "$i" --out "$W/v$i"
done
"$B/sigrelay-origin" --data-dir "$W/origin" --listen 127.0.0.1:0 --retain 8 2>"$W/origin.log" &
PIDS+=($!)
for _ in $(seq 1 200); do [ -s "$W/origin/listening" ] && break; sleep 0.05; done
ORIGIN=$(head -1 "$W/origin/listening")
status() { "$B/sigrelayctl" --data-dir "$W/origin" status --json; }
settled() {  # waits until no incremental is pending
  for _ in $(seq 1 1200); do status | grep -q '"incrementals_pending":\[[0-9]' || return 0; sleep 0.05; done
  echo "incrementals still pending" >&2; exit 1
}
for i in $(seq 1 9); do "$B/sigrelayctl" --data-dir "$W/origin" publish virus "$W/v$i" >/dev/null; settled; done

"$B/sigrelay-agent-sim" --server "$ORIGIN" --origin-pubkey "$W/origin/origin.pub" --agents 1 \
  --until virus=19 --timeout 120s --json >"$W/sim.json" 2>"$W/sim.err" &
SIM=$!
for _ in $(seq 1 200); do [ "$(json_num "$(status)" watchers)" -ge 1 ] && break; sleep 0.05; done
T0=$(now)
"$B/sigrelayctl" --data-dir "$W/origin" publish virus "$W/v10" >/dev/null
T_PUBLISH=$(since "$T0")
wait $SIM || { cat "$W/sim.err" >&2; exit 1; }
T_AGENT=$(awk -v a="$(json_num "$(cat "$W/sim.json")" all_converged_unix)" -v b="$T0" 'BEGIN{printf "%.2f", a-b}')
settled
T_ALL=$(since "$T0")
N=$(status | grep -o '"incrementals_from":\[[0-9,]*\]' | tr -cd ',' | wc -c)
[ $((N + 1)) -eq 8 ] || { echo "expected 8 incrementals, the manifest lists $((N + 1))" >&2; exit 1; }

# The peer: the 8 incrementals one after the other at the level the origin
# uses for this size (sigrelayctl delta uses the same codec).
T0=$(now)
for i in $(seq 2 9); do "$B/sigrelayctl" delta "$W/v$i" "$W/v10" --out "$W/d$i" >/dev/null; done
T_SERIAL=$(since "$T0")

echo
echo "machine: $(nproc) cores; pattern $(stat -c %s "$W/v10") bytes ($RECORDS records), --retain 8"
echo
echo "| publish (signed, servable) s | publish -> first agent converged s | publish -> all 8 incrementals ready s | peer: 8 incrementals one by one s |"
echo "|---:|---:|---:|---:|"
echo "| $T_PUBLISH | $T_AGENT | $T_ALL | $T_SERIAL |"
