#!/usr/bin/env bash
# The Debian package: `cpack -G DEB` builds sigrelay_VERSION_amd64.deb with
# the four binaries, the systemd units, conffiles in /etc/sigrelay and the
# maintainer scripts; `systemd-analyze verify` passes on the units as
# installed (checked in the extracted package, so ExecStart's binaries are
# the packaged ones).
set -euo pipefail
build=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$build"
cpack -G DEB -B "$tmp/out" --config "$build/CPackConfig.cmake" >"$tmp/cpack.log" 2>&1 ||
  { cat "$tmp/cpack.log"; exit 1; }
deb=$(ls "$tmp"/out/sigrelay_*_amd64.deb)
echo "built $(basename "$deb") ($(stat -c %s "$deb") bytes)"
fail=0
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/sigrelay-origin ./usr/bin/sigrelay-relay ./usr/bin/sigrelay-agent \
         ./usr/bin/sigrelayctl ./lib/systemd/system/sigrelay-origin.service \
         ./lib/systemd/system/sigrelay-relay.service ./lib/systemd/system/sigrelay-agent.service \
         ./etc/sigrelay/origin.textpb ./etc/sigrelay/relay.textpb ./etc/sigrelay/agent.textpb \
         ./usr/share/sigrelay/nginx/sigrelay-front.conf \
         ./usr/share/sigrelay/nginx/sigrelay-front-stream.conf; do
  grep -q " $f\$" <<<"$contents" || { echo "missing in the package: $f"; fail=1; }
done
dpkg-deb -f "$deb" Depends | grep -q libgrpc++ || { echo "Depends lacks libgrpc++"; fail=1; }
dpkg-deb -e "$deb" "$tmp/control"
for f in postinst postrm conffiles; do
  [ -e "$tmp/control/$f" ] || { echo "control archive lacks $f"; fail=1; }
done
grep -q /etc/sigrelay/relay.textpb "$tmp/control/conffiles" || { echo "relay.textpb not a conffile"; fail=1; }

# The units, in the extracted package with the host's targets beside them.
root="$tmp/root"
dpkg-deb -x "$deb" "$root"
for d in /lib/systemd/system /usr/lib/systemd/system; do
  [ -d "$d" ] || continue
  mkdir -p "$root$d"
  cp -an "$d"/*.target "$d"/*.slice "$root$d"/ 2>/dev/null || true
done
for unit in origin relay agent; do
  file="$root/lib/systemd/system/sigrelay-$unit.service"
  grep -q '^NoNewPrivileges=true' "$file" || { echo "sigrelay-$unit: no NoNewPrivileges"; fail=1; }
  grep -q '^ProtectSystem=strict' "$file" || { echo "sigrelay-$unit: no ProtectSystem=strict"; fail=1; }
  grep -q '^StateDirectory=' "$file" || { echo "sigrelay-$unit: no StateDirectory"; fail=1; }
done
for unit in origin relay; do
  grep -q '^User=sigrelay' "$root/lib/systemd/system/sigrelay-$unit.service" ||
    { echo "sigrelay-$unit does not run as sigrelay"; fail=1; }
done
verify=$(cd "$root" && systemd-analyze verify --root="$root" lib/systemd/system/sigrelay-*.service 2>&1) ||
  { echo "$verify"; fail=1; }
[ -z "$verify" ] || { echo "systemd-analyze verify said: $verify"; fail=1; }

# The packaged binaries run, and the default origin config is one they read.
"$root/usr/bin/sigrelay-origin" --help >/dev/null || { echo "packaged origin does not run"; fail=1; }
out=$("$root/usr/bin/sigrelay-relay" --config "$root/etc/sigrelay/relay.textpb" 2>&1) && fail=1
grep -q -- "--upstream" <<<"$out" || { echo "default relay config: $out"; fail=1; }
[ "$fail" -eq 0 ] && echo "package: contents, units and configs check out"
exit "$fail"
