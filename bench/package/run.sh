#!/usr/bin/env bash
# The .deb carries every runtime dependency: build it (release), install it with apt into a
# fresh Debian 12 tree made by debootstrap, and run `matthan --version`-like checks there
# (`matthan check-config` on the packaged example, `matthan report` usage). Slow (a few minutes,
# ~300 MB from Debian's mirror): not part of CI.
#   bash bench/package/run.sh [--mirror http://deb.debian.org/debian]
set -euo pipefail
cd "$(dirname "$0")/../.."
mirror="${2:-http://deb.debian.org/debian}"
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
cmake --preset release >/dev/null
cmake --build build/release -j"$(nproc)"
(cd build/release && cpack -G DEB >/dev/null)
deb="$(ls -t build/release/matthan_*.deb | head -1)"
echo "package: $deb ($(du -h "$deb" | cut -f1))"
dpkg-deb --field "$deb" Depends | tr ',' '\n' | sed 's/^ */  depends: /'
root="$(mktemp -d /tmp/matthan-pkg-XXXXXX)"
trap 'umount "$root/proc" 2>/dev/null || true; rm -rf "$root"' EXIT
start=$(date +%s)
debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
echo "debootstrap: $(( $(date +%s) - start )) s"
cp "$deb" "$root/tmp/matthan.deb"
mount -t proc proc "$root/proc"
chroot "$root" /bin/sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /tmp/matthan.deb >/dev/null"
# In the fresh tree: the binary starts, every library resolves, the example config parses.
chroot "$root" /bin/sh -c "ldd /usr/bin/matthan | grep -c 'not found' || true" | grep -qx 0
chroot "$root" /usr/bin/matthan --version
chroot "$root" /bin/sh -c "CAM_CONG_AP_1_PASSWORD=x CAM_CHO_PASSWORD=y TELEGRAM_BOT_TOKEN=1:a ZALO_OA_TOKEN=z \
  /usr/bin/matthan check-config /usr/share/doc/matthan/matthan.example.yaml"
chroot "$root" /bin/sh -c "getent passwd matthan && ls -ld /etc/matthan /var/lib/matthan /lib/systemd/system/matthan.service"
echo "package: OK in a fresh Debian 12 tree"
