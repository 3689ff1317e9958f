#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the demo need
# (and playwright-core from npm for the browser test).
# Idempotent: quiet and quick when everything is already there.
set -euo pipefail

# `install-deps.sh build`: only what building the binaries and the Debian
# package needs (docker/Dockerfile's build stage); `install-deps.sh docker`:
# everything, and what docker/test.sh needs.
mode=${1:-all}
packages=(
  build-essential cmake ninja-build ccache pkg-config dpkg-dev file
  protobuf-compiler protobuf-compiler-grpc libprotobuf-dev libgrpc++-dev
  libabsl-dev libc-ares-dev librocksdb-dev libzstd-dev libssl-dev
  libgtest-dev libgmock-dev libcpp-httplib-dev libjs-chart.js
)
if [ "$mode" != build ]; then
  packages+=(
    zstd clang-format clang iproute2 procps util-linux python3 openssl
    xdelta3 time nginx-light libnginx-mod-stream wrk tinyproxy dnsmasq-base chromium systemd
    clamav clamav-daemon clamdscan clamav-freshclam
    gdb  # a test child that hangs has its stacks printed before it is killed
  )
  # Node.js and npm for the browser test: the machine's own when it has them.
  command -v npm >/dev/null || packages+=(nodejs npm)
fi
[ "$mode" = docker ] && packages+=(docker.io docker-compose mmdebstrap)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

install_packages() {
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  # Packaged daemons (nginx, the benchmarks' peer) must not start on install:
  # benchmarks start their own on loopback.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    trap '$SUDO rm -f "$policy"' EXIT
  fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
[ ${#missing[@]} -eq 0 ] || install_packages

# playwright-core for tests/browser (pinned by its package-lock.json).
browser="$(dirname "$0")/../tests/browser"
if [ "$mode" != build ] && [ ! -d "$browser/node_modules/playwright-core" ]; then
  (cd "$browser" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
