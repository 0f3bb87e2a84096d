#!/usr/bin/env bash
# The demo: installs what is missing, builds (release), starts the camera simulator with a
# simulated commune (8 cameras in 3 hamlets, people crossing now and then) and the server on its
# embedded defaults (SQLite, data under ./var), prints the URL and serves until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
cmake --preset release >/dev/null
cmake --build --preset release
bin=build/release/bin
mkdir -p var
port=${MATTHAN_PORT:-8080}

echo "demo: starting the camera simulator (the first run renders and encodes the scenes, ~1 min)"
coproc CAMSIM { exec "$bin/matthan-camsim" --cameras "${MATTHAN_DEMO_CAMERAS:-8}" --duration 40 \
  --truth var/camsim-truth.jsonl 2>var/camsim.log; }
camsim_pid=$CAMSIM_PID
trap 'kill $camsim_pid $server_pid 2>/dev/null || true' EXIT INT TERM
server_pid=""
base=""
cameras=()
while read -r -u "${CAMSIM[0]}" kind a b c d; do
  case "$kind" in
    CAMSIM) base=$a ;;
    CAMERA) cameras+=("$a $b $c $d") ;;
  esac
  [ -n "$base" ] && [ ${#cameras[@]} -ge "${MATTHAN_DEMO_CAMERAS:-8}" ] && break
done
[ -n "$base" ] || { echo "demo: the simulator did not start; see var/camsim.log" >&2; exit 1; }

{
  echo "# Written by deploy/demo.sh: the simulated commune on $base"
  echo "node_id: demo-node"
  echo "server:"
  echo "  listen: 127.0.0.1:$port"
  echo "  data_dir: ./var"
  echo "defaults:"
  echo "  analysis_fps: 5"
  echo "# 8 simulated cameras record ~14 GB an hour: the demo keeps the newest 2 GB (retention"
  echo "# deletes the oldest unheld footage first; exports and holds are never deleted)."
  echo "recording:"
  echo "  max_mb: 2048"
  echo "  retention_interval_s: 10"
  echo "organisation:"
  echo "  communes:"
  echo "    - code: xa-demo"
  echo "      name: \"Xã Demo\""
  echo "      model: \"Mô hình camera an ninh xã Demo\""
  echo "      hamlets:"
  for h in $(for cam in "${cameras[@]}"; do read -r _ hamlet _ _ <<<"$cam"; echo "$hamlet"; done | sort -u); do
    echo "        - {code: $h, name: \"$h\"}"
  done
  echo "cameras:"
  for cam in "${cameras[@]}"; do
    read -r id hamlet main sub <<<"$cam"
    echo "  - {id: $id, name: \"Camera $id\", commune: xa-demo, hamlet: $hamlet, main_url: \"$main\", sub_url: \"$sub\","
    echo "     masks: [[[0, 0], [0.45, 0], [0.45, 0.07], [0, 0.07]]]}   # the simulator's frame-index strip"
  done
} > var/demo.yaml

"$bin/matthan" run --config var/demo.yaml > var/server.out &
server_pid=$!
for _ in $(seq 1 50); do grep -q LISTENING var/server.out 2>/dev/null && break; sleep 0.2; done
grep -q LISTENING var/server.out || { echo "demo: the server did not start; see var/matthan.log" >&2; exit 1; }
# No default password: the first run makes an admin with a random one and prints it once.
password="$(head -c 12 /dev/urandom | base64 | tr -d '/+=' | head -c 14)-7a"
if printf '%s\n' "$password" | "$bin/matthan" user add admin --role admin --config var/demo.yaml >/dev/null 2>&1; then
  login="user admin, password $password (shown once; change it: $bin/matthan user passwd admin --config var/demo.yaml)"
else
  login="user admin, with the password printed on the first run (reset: $bin/matthan user passwd admin --config var/demo.yaml)"
fi
echo
echo "Mắt Thần is running: open http://127.0.0.1:$port/"
echo "Log in with $login"
echo "Ctrl-C stops the server and the simulator."
wait "$server_pid"
