#!/usr/bin/env bash
# Every --flag the README shows exists in some sigrelay binary's --help
# (or is --help itself, zstd's --patch-from in the stock-tools example,
# systemctl's --now, curl's --data-binary in the console API example, or
# ClamAV's own flags in its section).
set -euo pipefail
readme=$1
bin=$2
help=$( ("$bin/sigrelay-origin" --help; "$bin/sigrelay-relay" --help; "$bin/sigrelay-agent-sim" --help;
         "$bin/sigrelay-agent" --help;
         "$bin/sigrelayctl" --help) 2>&1)
missing=0
for flag in $(grep -o -- '--[a-z][a-z0-9-]*' "$readme" | sort -u); do
  case "$flag" in
    --help|--patch-from|--now|--data-binary|--no-summary|--database|--reload) continue ;;
  esac
  if ! grep -q -- "$flag\b" <<<"$help"; then
    echo "README shows $flag, which no binary takes" >&2
    missing=1
  fi
done
[ "$missing" -eq 0 ] && echo "README: every flag shown exists"
exit "$missing"
