# Sourced by every bench/*.sh from the repository's top: bench_init NAME
# installs what the benches need, builds, and sets B (the binaries) and W (a
# scratch directory, removed at exit after every PID in PIDS is killed and
# BENCH_CLEANUP, when a bench sets it, is run). wait_file FILE waits for a
# daemon's listening file.
bench_init() {
  scripts/install-deps.sh
  cmake -S . -B build -G Ninja >/dev/null
  cmake --build build >/dev/null
  B=$PWD/build/bin
  W=$(mktemp -d "/tmp/sigrelay-$1.XXXXXX")
  PIDS=()
  trap bench_cleanup EXIT
}

# Waits up to 30 s for FILE to be non-empty (a daemon's listening file).
wait_file() { for _ in $(seq 1 600); do [ -s "$1" ] && return; sleep 0.05; done; echo "no $1" >&2; exit 1; }

bench_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "${BENCH_CLEANUP:-}" ]; then eval "$BENCH_CLEANUP" || true; fi
  wait 2>/dev/null || true
  rm -rf "$W"
}
