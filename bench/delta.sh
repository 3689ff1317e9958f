#!/usr/bin/env bash
# Incremental size and speed: sigrelay's codec against its peers, one run.
#
#   bench/delta.sh [RECORDS] [VERSIONS]     (default 400000 records, 5 versions)
#
# Generates a series of pattern versions (0.5 % churn each) and, for the
# incremental from the first and from the next-to-last version to the newest,
# prints size, build time and apply time for: sigrelay's codec (what the
# origin serves), zstd -19 --long --patch-from, xdelta3 -9; plus the full file
# compressed with zstd -19 and the floor: the added records alone, compressed.
set -euo pipefail
cd "$(dirname "$0")/.."
RECORDS=${1:-400000}
VERSIONS=${2:-5}
. bench/lib.sh
bench_init delta
CTL=$B/sigrelayctl

"$CTL" gen-pattern --records "$RECORDS" --seed 1 --out "$W/v1"
for i in $(seq 2 "$VERSIONS"); do
  "$CTL" gen-pattern --from "$W/v$((i - 1))" --churn 0.5 --seed "$i" --out "$W/v$i"
done
NEW=$W/v$VERSIONS
SIZE=$(stat -c %s "$NEW")

secs() { /usr/bin/time -f %e "$@" 2>&1 >/dev/null | tail -1; }

row() {  # name bytes build apply
  printf '| %-36s | %10s | %7s | %8s | %7s |\n' "$1" "$2" \
    "$(awk -v b="$2" -v f="$SIZE" 'BEGIN{printf "%.2f%%", 100*b/f}')" "$3" "$4"
}

echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "input: $RECORDS records, newest version $SIZE bytes, 0.5 % churn per version, $VERSIONS versions"
for FROM in 1 $((VERSIONS - 1)); do
  OLD=$W/v$FROM
  echo
  echo "### incremental v$FROM -> v$VERSIONS ($((VERSIONS - FROM)) version(s) apart)"
  echo
  printf '| %-36s | %10s | %7s | %8s | %7s |\n' method bytes "of full" "build s" "apply s"
  echo "|--------------------------------------|-----------:|--------:|---------:|--------:|"
  b=$(secs "$CTL" delta "$OLD" "$NEW" --out "$W/sr")
  a=$(secs "$CTL" patch "$OLD" "$W/sr" --out "$W/sr.out")
  cmp -s "$W/sr.out" "$NEW" || { echo "sigrelay codec did not rebuild v$VERSIONS" >&2; exit 1; }
  row "sigrelay (zstd patch-from, level 12)" "$(stat -c %s "$W/sr")" "$b" "$a"
  b=$(secs zstd -q -f -T1 -19 --long=27 --patch-from="$OLD" "$NEW" -o "$W/z19")
  a=$(secs zstd -q -f -d --long=27 --patch-from="$OLD" "$W/z19" -o "$W/z19.out")
  cmp -s "$W/z19.out" "$NEW"
  row "zstd -19 --long --patch-from" "$(stat -c %s "$W/z19")" "$b" "$a"
  b=$(secs xdelta3 -f -9 -e -s "$OLD" "$NEW" "$W/xd")
  a=$(secs xdelta3 -f -d -s "$OLD" "$W/xd" "$W/xd.out")
  cmp -s "$W/xd.out" "$NEW"
  row "xdelta3 -9" "$(stat -c %s "$W/xd")" "$b" "$a"
  b=$(secs zstd -q -f -T1 -19 "$NEW" -o "$W/full.zst")
  a=$(secs zstd -q -f -d "$W/full.zst" -o "$W/full.out")
  row "full file, zstd -19" "$(stat -c %s "$W/full.zst")" "$b" "$a"
  comm -13 "$OLD" "$NEW" > "$W/added"
  zstd -q -f -19 "$W/added" -o "$W/added.zst"
  row "floor: added records alone, zstd -19" "$(stat -c %s "$W/added.zst")" "-" "-"
done
