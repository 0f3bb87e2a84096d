#!/usr/bin/env bash
# Installs every build, test and run dependency of Mắt Thần from Debian 12's packages.
# Idempotent: installs only what is missing, so a second run takes a second.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache git
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev ffmpeg
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstrtspserver-1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools gstreamer1.0-rtsp
  libopencv-dev libturbojpeg0-dev
  libzmq3-dev cppzmq-dev libsqlite3-dev sqlite3 nlohmann-json3-dev libspdlog-dev libyaml-cpp-dev
  libssl-dev libsodium-dev libcurl4-openssl-dev tzdata
  libboost1.81-dev libboost-json1.81-dev libboost-program-options1.81-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-format curl procps util-linux openssl
  libjemalloc-dev libsystemd-dev libpango1.0-dev libcairo2-dev libxlsxwriter-dev fonts-dejavu-core poppler-utils python3-openpyxl
  faketime e2fsprogs iproute2 nftables
  chromium
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${#missing[@]} package(s): ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all ${#packages[@]} packages present"
fi

# The browser tests: Node.js (Debian's when the machine has none) and playwright-core from the
# lockfile (no browser download: the tests drive Debian's chromium).
cd "$(dirname "$0")/.."
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "install-deps: installing nodejs npm"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
fi
if [ ! -d tests/browser/node_modules/playwright-core ] ||
   [ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]; then
  (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
