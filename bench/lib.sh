# Sourced by every bench/*.sh from the repository's top: bench_init NAME
# installs what the benches need, builds, and sets B (the binaries) and W (a
# scratch directory, removed at exit after every PID in PIDS is killed and
# BENCH_CLEANUP, when a bench sets it, is run).
bench_init() {
  scripts/install-deps.sh
  cmake -S . -B build -G Ninja >/dev/null
  cmake --build build >/dev/null
  B=$PWD/build/bin
  W=$(mktemp -d "/tmp/sigrelay-$1.XXXXXX")
  PIDS=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "${BENCH_CLEANUP:-}" ]; then eval "$BENCH_CLEANUP" || true; fi
  wait 2>/dev/null || true
  rm -rf "$W"
}
