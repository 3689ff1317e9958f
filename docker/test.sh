#!/usr/bin/env bash
# Brings up docker/compose.yaml (two sites: origin and relay A on an IPv4
# network, relay B behind relay A over IPv6, 20 simulated agents behind each
# relay, 20 more through the hardened nginx front of relay A: the "front"
# profile), publishes two versions at the origin, checks that the agents at
# both sites converge and that the second version travelled by incremental
# (relays and agents), that the front holds one address to 32 connections,
# that each relay's console answers, then tears it all
# down, removing what it made (containers, networks, volumes, images). As
# root; starts dockerd when none runs (and stops it after), with
# addresses only in 198.18.0.0/15 and fd00::/8. Builds the base image with
# mmdebstrap from the Debian mirror (Docker Hub is not needed).
#
#   docker/test.sh                  # about 10 minutes on 2 cores, most of it the image build
#   REUSE_IMAGE=1 docker/test.sh    # use (and keep) an image sigrelay:test built before
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh docker

log=$(mktemp -d /tmp/sigrelay-docker.XXXXXX)
started_dockerd=""
built_base=""
if ! docker info >/dev/null 2>&1; then
  # What dockerd changes on the host (its bridge, iptables chains and the
  # FORWARD policy, IP forwarding) is put back as it was when it stops.
  iptables_before=$(iptables-save 2>/dev/null || true)
  forwarding_before=$(sysctl -n net.ipv4.ip_forward)
  dockerd --bip 198.18.250.1/24 --default-address-pool base=198.19.0.0/16,size=24 \
    >"$log/dockerd.log" 2>&1 &
  started_dockerd=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { cat "$log/dockerd.log"; exit 1; }
fi

project=sigrelaytest
# The hardened front in front of relay A, with agents through it.
export COMPOSE_PROFILES=front
compose=(docker-compose -p "$project" -f docker/compose.yaml)
cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    "${compose[@]}" logs --no-color --tail 40 >"$log/compose.log" 2>&1 || true
    # What the front serves: its config test and a TLS handshake from here.
    front=$("${compose[@]}" ps -q front 2>/dev/null || true)
    if [ -n "$front" ]; then
      docker exec "$front" sh -c 'nginx -t; openssl x509 -in /etc/sigrelay/tls/front.pem -noout -ext subjectAltName,basicConstraints; tail -30 /var/log/nginx/access.log' >"$log/front.txt" 2>&1 || true
      docker cp "$front:/etc/sigrelay/tls/front.pem" "$log/front.pem" >/dev/null 2>&1 || true
      python3 -c 'import socket,ssl,sys; c=ssl.create_default_context(cafile=sys.argv[1]); c.set_alpn_protocols(["h2"]); s=c.wrap_socket(socket.create_connection(("198.18.20.11",443),timeout=5),server_hostname="198.18.20.11"); print("front TLS ok, ALPN", s.selected_alpn_protocol())' "$log/front.pem" >>"$log/front.txt" 2>&1 || true
    fi
    echo "docker/test.sh: failed; last logs in $log/compose.log" >&2
  fi
  "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
  if [ -z "${REUSE_IMAGE:-}" ]; then
    docker image rm sigrelay:test sigrelay-front:test >/dev/null 2>&1 || true
    docker image prune -f --filter label=sigrelay-build-stage=1 >/dev/null 2>&1 || true
    [ -z "$built_base" ] || docker image rm "$BASE" >/dev/null 2>&1 || true
  fi
  if [ -n "$started_dockerd" ]; then
    kill "$started_dockerd" 2>/dev/null || true
    wait "$started_dockerd" 2>/dev/null || true
    ip link delete docker0 2>/dev/null || true
    [ -z "$iptables_before" ] || iptables-restore <<<"$iptables_before" || true
    sysctl -qw net.ipv4.ip_forward="$forwarding_before" || true
  fi
  [ "$rc" -ne 0 ] || rm -rf "$log"
}
trap cleanup EXIT

export BASE=sigrelay-base:bookworm
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  echo "docker/test.sh: building $BASE with mmdebstrap"
  mmdebstrap --variant=minbase --include=ca-certificates bookworm "$log/base.tar" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" >"$log/mmdebstrap.log" 2>&1
  docker import "$log/base.tar" "$BASE" >/dev/null
  built_base=1
  rm -f "$log/base.tar"
fi

if [ -z "${REUSE_IMAGE:-}" ] || ! docker image inspect sigrelay:test >/dev/null 2>&1; then
  echo "docker/test.sh: building the image (scripts/install-deps.sh build, cmake, cpack)"
  "${compose[@]}" build >"$log/build.log" 2>&1 || { tail -40 "$log/build.log"; exit 1; }
fi
"${compose[@]}" up -d origin relay-a relay-b >"$log/up.log" 2>&1 || { cat "$log/up.log"; exit 1; }

# The console API of a node, from inside its container, with its token.
status() {
  "${compose[@]}" exec -T "$1" sh -c \
    'curl -fsS -H "Authorization: Bearer $(cat /var/lib/sigrelay/*/admin.token)" http://127.0.0.1:8080/api/v1/status'
}
# Waits up to $2 seconds for the Python expression $3 over status of $1 (s).
wait_for() {
  local node=$1 secs=$2 expr=$3
  for _ in $(seq "$secs"); do
    if status "$node" 2>/dev/null | python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if ($expr) else 1)"; then
      return 0
    fi
    sleep 1
  done
  echo "docker/test.sh: $node never reached: $expr" >&2
  status "$node" >&2 || true
  return 1
}
version_of='{c["name"]: c["version"] for c in s["components"]}.get("virus")'
agents_on='sum(int(a["agents"]) for a in s["agentVersions"] if a["component"] == "virus" and a["version"] == '

publish() {
  "${compose[@]}" exec -T origin sh -c "$1 && sigrelayctl --data-dir /var/lib/sigrelay/origin publish virus $2"
}
publish "sigrelayctl gen-pattern --records 30000 --seed 1 --out /var/lib/sigrelay/p1" /var/lib/sigrelay/p1
for relay in relay-a relay-b; do wait_for "$relay" 120 "$version_of == 1"; done
# The agents start once their relay is ready (/readyz: it holds a manifest).
"${compose[@]}" up -d >>"$log/up.log" 2>&1 || { cat "$log/up.log"; exit 1; }
wait_for relay-a 120 "${agents_on}1) == 40"
wait_for relay-b 120 "${agents_on}1) == 20"
echo "docker/test.sh: version 1 at both sites, 20 agents on it behind each relay and 20 through the front"

publish "sigrelayctl gen-pattern --from /var/lib/sigrelay/p1 --seed 3 --out /var/lib/sigrelay/p3" \
  /var/lib/sigrelay/p3
for agents in agents-a agents-b agents-front; do
  id=$("${compose[@]}" ps -q "$agents")
  rc=$(docker wait "$id")
  docker logs "$id" >"$log/$agents.json" 2>&1
  [ "$rc" -eq 0 ] || { echo "$agents exited $rc:"; cat "$log/$agents.json"; exit 1; }
done
for relay in relay-a relay-b; do
  wait_for "$relay" 30 "$version_of == 3"
  # The relay took version 3 by incremental, and its agents got theirs
  # inside the pushes (20 incrementals pushed, no full file fetched again).
  wait_for "$relay" 30 'any(u["component"] == "virus" and u["version"] == 3 and u["how"] == "incremental" for u in s["relay"]["lastUpdates"])'
  wait_for "$relay" 30 'int(s["transfers"]["pushed"]) >= 20'
done
wait_for relay-a 30 "${agents_on}3) == 40"
wait_for relay-b 30 "${agents_on}3) == 20"
echo "docker/test.sh: version 3 reached both sites by incremental; 60 agents converged, 20 through the front"

# The front holds one address to 32 connections: 100 idle ones from the
# host, and all but 32 are closed at once.
python3 - <<'PY'
import select, socket, time
conns = [socket.create_connection(("198.18.20.11", 443), timeout=5) for _ in range(100)]
pending, closed, deadline = set(conns), 0, time.time() + 5
while pending and time.time() < deadline:
    readable, _, _ = select.select(list(pending), [], [], max(0, deadline - time.time()))
    for c in readable:
        pending.discard(c)
        closed += 1  # a refused connection reads EOF (or a reset)
for c in conns: c.close()
assert closed >= 68, f"only {closed} of 100 idle connections closed by the front"
print(f"docker/test.sh: the front closed {closed} of 100 idle connections from one address")
PY

# Each relay's console, from the host: the page and the health endpoints
# (relay B only over IPv6 from its site; checked inside its container).
curl -fsS http://198.18.20.11:8080/readyz >/dev/null
curl -fsS http://198.18.20.11:8080/ | grep "sigrelay console" >/dev/null
"${compose[@]}" exec -T relay-b sh -c 'curl -fsS "http://[fd00:5:2::12]:8080/readyz" && curl -fsS "http://[fd00:5:2::12]:8080/" | grep "sigrelay console" >/dev/null' >/dev/null
status relay-b | python3 -c 'import json,sys; s=json.load(sys.stdin); u=s["relay"]["upstreams"][0]; assert u["address"] == "[fd00:5:2::11]:7443" and u["state"] == "ok", u'
echo "docker/test.sh: both relay consoles answer; relay B follows relay A over IPv6"
echo "docker/test.sh: ok"
