#!/usr/bin/env bash
# Fan-out: one relay pushing a new pattern version to N agents, against
# nginx serving the same bytes over HTTP to N concurrent clients.
#
#   bench/fanout.sh [RECORDS] [N ...]     (default 300000 records ~ 20 MB; N = 1000 10000)
#
# For each N: N agents (sigrelay-agent-sim, one TCP connection each) watch
# the relay, all holding the current version; a new version (0.5 % churn) is
# published at the origin; we measure publish -> 100 % converged and
# verified, payload bytes, relay RSS (idle per agent and peak) and relay CPU.
# Server CPU per delivered update is measured over the push alone: pushes
# are paused (sigrelayctl pushing off) while the relay syncs, then resumed;
# the peers' CPU is read from /proc over the same work (grpc_floor from its
# first call, nginx's worker over the wrk run, per response).
# Peers, same run: nginx on loopback serving the full file and the
# incremental, driven by wrk with N connections (its time for N downloads is
# N x file size / the transfer rate wrk measured); and bench/grpc_floor, a
# bare gRPC server answering one Fetch per client with the incremental's
# bytes, nothing else: the transport's own floor; and grpc_floor's push
# model (serve --push N, watch): N Watch streams held open, the same bytes
# pushed on each the relay's way (64 writes at once, one shared buffer),
# each answered by a report: the floor of what the relay does, with
# 10,000 streams open. The relay then takes one more version with those
# same trivial clients (grpc_floor watch --component virus), so relay and
# push floor are also compared doing the same client work.
#
# One address may hold only half the relay's descriptors: with 10,000 agents
# from loopback under a 20,000-descriptor limit, run it with
# RELAY_FLAGS="--front 127.0.0.1".
#
# Servers (relay, nginx, grpc_floor serve) run on CPU 0 and clients
# (agent-sim, wrk, grpc_floor load and watch) on CPU 1, as they would on separate
# machines; the origin is not pinned.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${1:-300000}
shift || true
NS=("$@")
[ ${#NS[@]} -gt 0 ] || NS=(1000 10000)
. bench/lib.sh
bench_init fanout
SERVER_CPU="taskset -c 0"
CLIENT_CPU="taskset -c 1"
[ "$(nproc)" -ge 2 ] || { SERVER_CPU=""; CLIENT_CPU=""; }
BENCH_CLEANUP='[ ! -f "$W/nginx.pid" ] || kill "$(cat "$W/nginx.pid")" 2>/dev/null'

json_num() { grep -o "\"$2\":[0-9.e+-]*" <<<"$1" | head -1 | cut -d: -f2; }
rss_kb() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/VmHWM/{print $2}' "/proc/$1/status"; }
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14+$15)/hz}' "/proc/$1/stat"; }

"$B/sigrelayctl" gen-pattern --records "$RECORDS" --seed 1 --out "$W/v1"
V=1
next_version() {  # makes $W/v$((V+1)) from $W/v$V
  "$B/sigrelayctl" gen-pattern --from "$W/v$V" --churn 0.5 --seed $((V + 1)) --out "$W/v$((V + 1))"
}

"$B/sigrelay-origin" --data-dir "$W/origin" --listen 127.0.0.1:0 2>"$W/origin.log" &
PIDS+=($!)
wait_file "$W/origin/listening"
ORIGIN=$(head -1 "$W/origin/listening")
"$B/sigrelayctl" --data-dir "$W/origin" publish virus "$W/v1" >/dev/null
start_relay() {  # a fresh relay for each N, so RSS per agent is the agents' alone
  rm -rf "$W/relay"
  $SERVER_CPU "$B/sigrelay-relay" --data-dir "$W/relay" --listen 127.0.0.1:0 --upstream "$ORIGIN" \
    --origin-pubkey "$W/origin/origin.pub" ${RELAY_FLAGS:-} 2>"$W/relay.log" &
  RELAY_PID=$!
  PIDS+=($RELAY_PID)
  wait_file "$W/relay/listening"
  RELAY=$(head -1 "$W/relay/listening")
  for _ in $(seq 1 200); do status | grep -q "\"version\":$((2 * V - 1))," && return; sleep 0.05; done
  echo "relay did not sync" >&2; exit 1
}
status() { "$B/sigrelayctl" --data-dir "$W/relay" status --json; }
wait_watchers() {  # N PID ERRFILE: until the relay has N watchers, while PID lives
  for _ in $(seq 1 1200); do
    [ "$(json_num "$(status)" watchers)" -ge "$1" ] && return
    kill -0 "$2" 2>/dev/null || { cat "$3" >&2; exit 1; }
    sleep 0.1
  done
}
wait_synced() {  # VERSION: until the relay holds it
  for _ in $(seq 1 600); do status | grep -q "\"version\":$1," && return; sleep 0.05; done
}
wait_reported() {  # VERSION N PID: until N agents reported VERSION, while PID lives
  for _ in $(seq 1 2400); do
    status | grep -q "{\"component\":\"virus\",\"version\":$1,\"agents\":$2}" && return
    kill -0 "$3" 2>/dev/null || return
    sleep 0.05
  done
}
# FANOUT_PERF=FILE: a CPU profile (FANOUT_PERF_ARGS: perf record options
# instead of -F 2999 -g); FANOUT_STAT=FILE: syscalls and context switches.
# perf_start PID SUFFIX measures PID into FILE SUFFIX until perf_stop.
perf_start() {
  [ -n "${FANOUT_PERF:-}" ] && { perf record ${FANOUT_PERF_ARGS:--F 2999 -g} -p "$1" -o "$FANOUT_PERF$2" 2>/dev/null & PERF_PID=$!; sleep 0.5; }
  [ -n "${FANOUT_STAT:-}" ] && { perf stat -e context-switches,syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvmsg,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex,syscalls:sys_enter_write,syscalls:sys_enter_read -p "$1" -o "$FANOUT_STAT$2" 2>/dev/null & PERF_PID=$!; sleep 0.5; }
  return 0
}
perf_stop() { [ -z "${FANOUT_PERF:-}${FANOUT_STAT:-}" ] || { kill -INT $PERF_PID; wait $PERF_PID || true; }; }
floor_serve() {  # ARGS...: a grpc_floor server on the server CPU; sets FLOOR_PID, FLOOR_PORT
  $SERVER_CPU "$B/grpc_floor" serve "$@" >"$W/floor.port" 2>"$W/floor.cpu" &
  FLOOR_PID=$!
  PIDS+=($FLOOR_PID)
  wait_file "$W/floor.port"
  FLOOR_PORT=$(cat "$W/floor.port")
}
floor_stop() {  # FIELD: stops the floor server and prints FIELD of its report
  kill $FLOOR_PID; wait $FLOOR_PID 2>/dev/null || true
  rm -f "$W/floor.port"
  json_num "$(cat "$W/floor.cpu")" "$1"
}

# nginx, the peer: sendfile, keepalive, one worker on the server CPU.
mkdir -p "$W/www"
chmod 755 "$W" "$W/www"
NGINX_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$W/nginx.conf" <<NGINX
worker_processes 1;
worker_rlimit_nofile 20000;
pid $W/nginx.pid;
error_log $W/nginx-error.log;
events { worker_connections 12000; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  open_file_cache max=16;  # one descriptor per file, not per request
  server { listen 127.0.0.1:$NGINX_PORT; root $W/www; }
}
NGINX
$SERVER_CPU nginx -c "$W/nginx.conf" -p "$W"

nginx_cpu() { local t=0; for p in $(pgrep -f "nginx: worker process" ); do t=$(awk -v t="$t" -v hz="$(getconf CLK_TCK)" '{printf "%.2f", t+($14+$15)/hz}' "/proc/$p/stat"); done; echo "$t"; }
nginx_time() {  # FILE N -> seconds to deliver N copies at concurrency N
  # N x size / measured transfer rate: with 10,000 concurrent 20 MB
  # downloads none completes within the run, but the rate is measured.
  local out rate size
  out=$($CLIENT_CPU wrk -t1 -c "$2" -d15s --timeout 120s "http://127.0.0.1:$NGINX_PORT/$1" 2>&1)
  if grep -qE "Non-2xx" <<<"$out"; then
    echo "nginx peer run failed:" >&2; echo "$out" >&2; exit 1
  fi
  rate=$(awk '/Transfer\/sec/{v=$2; u=substr(v, length(v)-1); n=v+0;
    if (u=="GB") n*=1073741824; else if (u=="MB") n*=1048576; else if (u=="KB") n*=1024;
    print n}' <<<"$out")
  size=$(stat -c %s "$W/www/$1")
  awk '/requests in/{print $1}' <<<"$out" >"$W/nginx.requests"
  awk -v n="$2" -v s="$size" -v r="$rate" 'BEGIN{ if (r > 0) printf "%.2f", n * s / r; else print "inf" }'
}

ROWS=()
for N in "${NS[@]}"; do
  start_relay
  next_version
  NEW=$((V + 1))
  NEWV=$((2 * NEW - 1))  # versions 1, 3, 5, ...
  BASE_RSS=$(rss_kb $RELAY_PID)
  # Start versions load from the origin, so the relay's memory before and
  # after the agents connect differs by the agents alone.
  $CLIENT_CPU "$B/sigrelay-agent-sim" --server "$RELAY" --agents "$N" --connections per-agent \
    --origin-pubkey "$W/origin/origin.pub" --start current --start-source "$ORIGIN" \
    --until "virus=$NEWV" \
    --timeout 600s --json >"$W/sim.json" 2>"$W/sim.err" &
  SIM=$!
  wait_watchers "$N" $SIM "$W/sim.err"
  IDLE_RSS=$(rss_kb $RELAY_PID)
  "$B/sigrelayctl" --data-dir "$W/relay" pushing off >/dev/null
  PUBLISHED=$(date +%s.%N)
  "$B/sigrelayctl" --data-dir "$W/origin" publish virus "$W/v$NEW" >/dev/null
  wait_synced "$NEWV"
  CPU0=$(cpu_s $RELAY_PID)
  perf_start $RELAY_PID ""  # the relay during the push
  "$B/sigrelayctl" --data-dir "$W/relay" pushing on >/dev/null
  # The push is over when every agent reported the new version (before
  # agent-sim ends its streams, which is not the push's cost).
  wait_reported "$NEWV" "$N" $SIM
  CPU1=$(cpu_s $RELAY_PID)
  perf_stop
  wait $SIM || { echo "agent-sim failed:" >&2; cat "$W/sim.err" >&2; exit 1; }
  SIMJ=$(cat "$W/sim.json")
  # Publish (upload, incrementals, signing at the origin) -> relay sync ->
  # push -> every agent fetched, rebuilt and verified.
  T_RELAY=$(awk -v a="$(json_num "$SIMJ" all_converged_unix)" -v p="$PUBLISHED" 'BEGIN{printf "%.2f", a-p}')
  T_PUSH=$(json_num "$SIMJ" seconds_to_all)
  BYTES=$(( $(json_num "$SIMJ" bytes_incremental) + $(json_num "$SIMJ" bytes_full) ))
  PEAK=$(hwm_kb $RELAY_PID)
  "$B/sigrelayctl" --server "$RELAY" fetch virus --have "$((NEWV - 2))" --out "$W/www/incr" >/dev/null
  cp "$W/v$NEW" "$W/www/full"
  chmod 644 "$W/www/full" "$W/www/incr"
  FULL=$(stat -c %s "$W/www/full")
  INCR=$(stat -c %s "$W/www/incr")
  # The relay again, driven by the push floor's own clients (grpc_floor
  # watch: each reports holding the current version, takes the push and
  # reports the next), so it and the push floor do the same work on the
  # client core.
  V=$NEW
  next_version
  $CLIENT_CPU "$B/grpc_floor" watch --server "$RELAY" --clients "$N" --component virus \
    --have "$NEWV" >/dev/null 2>"$W/watch.err" &
  WATCH=$!
  wait_watchers "$N" $WATCH "$W/watch.err"
  "$B/sigrelayctl" --data-dir "$W/relay" pushing off >/dev/null
  "$B/sigrelayctl" --data-dir "$W/origin" publish virus "$W/v$((NEW + 1))" >/dev/null
  wait_synced "$((NEWV + 2))"
  BARE0=$(cpu_s $RELAY_PID)
  "$B/sigrelayctl" --data-dir "$W/relay" pushing on >/dev/null
  wait_reported "$((NEWV + 2))" "$N" $WATCH
  BARE1=$(cpu_s $RELAY_PID)
  wait $WATCH || { echo "grpc_floor watch failed:" >&2; cat "$W/watch.err" >&2; exit 1; }
  RELAY_BARE_CPU_US=$(awk -v a="$BARE0" -v b="$BARE1" -v n="$N" 'BEGIN{printf "%.1f", (b-a)/n*1e6}')
  NEW=$((NEW + 1))
  NGX_CPU0=$(nginx_cpu)
  T_NGX_INCR=$(nginx_time incr "$N")
  NGX_CPU=$(awk -v a="$(nginx_cpu)" -v b="$NGX_CPU0" -v n="$(cat "$W/nginx.requests")" 'BEGIN{printf "%.1f", (a-b)/n*1e6}')
  T_NGX_FULL=$(nginx_time full "$N")
  floor_serve --size "$INCR" --expect "$N"
  perf_start $FLOOR_PID .floor  # the bare server, into FILE.floor
  T_FLOOR=$(json_num "$($CLIENT_CPU "$B/grpc_floor" load --server "127.0.0.1:$FLOOR_PORT" --clients "$N")" seconds)
  perf_stop
  FLOOR_CPU=$(floor_stop cpu_seconds)
  # The push model's floor: bare gRPC holding N Watch streams and pushing
  # the same bytes on each, 64 writes at once, each answered by a report.
  floor_serve --size "$INCR" --push "$N"
  $CLIENT_CPU "$B/grpc_floor" watch --server "127.0.0.1:$FLOOR_PORT" --clients "$N" >/dev/null
  PUSH_FLOOR_CPU=$(floor_stop push_cpu_seconds)
  PER_AGENT=$(( (IDLE_RSS - BASE_RSS) * 1024 / N ))
  RELAY_CPU_US=$(awk -v a="$CPU0" -v b="$CPU1" -v n="$N" 'BEGIN{printf "%.1f", (b-a)/n*1e6}')
  FLOOR_CPU_US=$(awk -v c="$FLOOR_CPU" -v n="$N" 'BEGIN{printf "%.1f", c/n*1e6}')
  PUSH_FLOOR_CPU_US=$(awk -v c="$PUSH_FLOOR_CPU" -v n="$N" 'BEGIN{printf "%.1f", c/n*1e6}')
  ROWS+=("$(printf '| %6d | %8.2f | %8.2f | %10d | %8.2f | %8.2f | %8.2f | %6.2fx | %6.2fx | %8d | %9d | %7.1f | %7.1f | %7.1f | %7.1f | %7.1f | %5.2fx | %5.2fx | %5.2fx | %5.2fx |' \
    "$N" "$T_RELAY" "$T_PUSH" "$BYTES" "$T_NGX_INCR" "$T_NGX_FULL" "$T_FLOOR" \
    "$(awk -v a="$T_PUSH" -v b="$T_NGX_INCR" 'BEGIN{printf "%.2f", a/b}')" \
    "$(awk -v a="$T_PUSH" -v b="$T_FLOOR" 'BEGIN{printf "%.2f", a/b}')" \
    "$((PEAK / 1024))" "$PER_AGENT" "$RELAY_CPU_US" "$RELAY_BARE_CPU_US" "$FLOOR_CPU_US" "$PUSH_FLOOR_CPU_US" "$NGX_CPU" \
    "$(awk -v a="$RELAY_CPU_US" -v b="$FLOOR_CPU_US" 'BEGIN{printf "%.2f", a/b}')" \
    "$(awk -v a="$RELAY_CPU_US" -v b="$PUSH_FLOOR_CPU_US" 'BEGIN{printf "%.2f", a/b}')" \
    "$(awk -v a="$RELAY_BARE_CPU_US" -v b="$PUSH_FLOOR_CPU_US" 'BEGIN{printf "%.2f", a/b}')" \
    "$(awk -v a="$RELAY_CPU_US" -v b="$NGX_CPU" 'BEGIN{printf "%.2f", a/b}')")")
  V=$NEW
  kill $RELAY_PID; wait $RELAY_PID 2>/dev/null || true
done

echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo); pattern $FULL bytes ($RECORDS records), incremental $INCR bytes (0.5 % churn)"
echo
echo "| agents | publish -> all converged s | relay push -> all converged s | bytes to agents | nginx s, N x incremental | nginx s, N x full | bare gRPC s, N x incremental | push / nginx (same bytes) | push / bare gRPC | relay peak RSS MiB | relay RSS bytes per idle agent | relay CPU us per update (push) | relay CPU us per update, push floor's clients | bare gRPC CPU us per update | bare gRPC push CPU us per update | nginx CPU us per response | CPU / bare gRPC | CPU / bare gRPC push | same clients: relay / bare gRPC push | CPU / nginx |"
echo "|-------:|---------:|---------:|-----------:|---------:|---------:|---------:|-------:|-------:|---------:|----------:|--------:|--------:|--------:|--------:|--------:|------:|------:|------:|------:|"
for r in "${ROWS[@]}"; do echo "$r"; done
