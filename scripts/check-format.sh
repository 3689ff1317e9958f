#!/usr/bin/env bash
# Fails when any C++ file differs from what clang-format (.clang-format)
# makes of it, listing the files. Fix with:
#   git ls-files '*.cc' '*.h' | xargs clang-format -i
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check-format: clang-format is not installed (scripts/install-deps.sh)" >&2; exit 1; }
drift=()
while IFS= read -r f; do
  clang-format --style=file "$f" | cmp -s - "$f" || drift+=("$f")
done < <(git ls-files '*.cc' '*.h')
if [ ${#drift[@]} -gt 0 ]; then
  echo "check-format: ${#drift[@]} file(s) differ from clang-format:" >&2
  printf '  %s\n' "${drift[@]}" >&2
  echo "fix: git ls-files '*.cc' '*.h' | xargs clang-format -i" >&2
  exit 1
fi
echo "check-format: $(git ls-files '*.cc' '*.h' | wc -l) files clean"
