#!/usr/bin/env bash
# Fuzzes each target in tests/fuzz for a bounded time with libFuzzer (clang,
# with ASan and UBSan), in build-fuzz/. Inputs that crash are copied to
# tests/fuzz/corpus/TARGET/ to become regression inputs that ctest replays
# in the normal build (commit them with the fix).
#
#   scripts/fuzz.sh            # 60 s per target
#   scripts/fuzz.sh 300 fetch_stream
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(incremental_apply manifest_check trust_root config_parse fetch_stream watch_report)

scripts/install-deps.sh
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DSIGRELAY_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]/%/_fuzz}"

failed=0
for t in "${targets[@]}"; do
  work=$(mktemp -d)
  cp -r "tests/fuzz/corpus/$t/." "$work/"
  echo "fuzz: $t for ${seconds}s"
  if ! (cd "$work" && ASAN_OPTIONS=detect_leaks=0 "$OLDPWD/build-fuzz/bin/${t}_fuzz" \
        -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 "$work" \
        >"$work/log" 2>&1); then
    failed=1
    echo "fuzz: $t found a crash:" >&2
    tail -40 "$work/log" >&2
    for crash in "$work"/crash-* "$work"/leak-* "$work"/timeout-*; do
      [ -e "$crash" ] && cp "$crash" "tests/fuzz/corpus/$t/" && echo "  kept $crash" >&2
    done
  else
    grep -E "^#[0-9]+.*(DONE|pulse)" "$work/log" | tail -1
  fi
  rm -rf "$work"
done
exit "$failed"
