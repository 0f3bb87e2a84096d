#!/usr/bin/env bash
# bench/ingest: the server's decode pipeline against ffmpeg's decode-only floor, same streams.
#   bash bench/ingest/run.sh [CAMERAS=8] [SECONDS=30]
# N simulated cameras (sub stream 640x360, 25 fps) are decoded (a) by matthan (RTSP demux,
# decode, timestamping, motion and tamper analysis at 5 fps; people detection off) and (b) by one `ffmpeg -threads 1
# -rtsp_transport tcp -i URL -f null -` per camera, each for SECONDS. The simulator runs on CPU 0,
# the measured processes on CPU 1. Prints CPU per camera, RSS per camera, frames decoded by each
# side, and the ratio matthan/ffmpeg (target <= 1.15).
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-8}
secs=${2:-30}
bin=build/release/bin
if [ ! -x "$bin/matthan" ] || [ ! -x "$bin/matthan-camsim" ]; then
  cmake --preset release >/dev/null && cmake --build --preset release >/dev/null
fi
work=$(mktemp -d /tmp/matthan-bench-ingest.XXXXXX)
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
pids=()
trap cleanup EXIT
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

coproc SIM { exec taskset -c 0 "$bin/matthan-camsim" --cameras "$n" --duration 10 --seed 3 2>"$work/camsim.log"; }
pids+=("$SIM_PID")
urls=()
while read -r -u "${SIM[0]}" kind a b c d; do
  [ "$kind" = CAMERA ] && urls+=("$d")
  [ ${#urls[@]} -ge "$n" ] && break
done

{
  echo "node_id: bench"
  echo "server: {listen: '127.0.0.1:0', data_dir: '$work/var', log_level: warn}"
  echo "analytics: {zmq_endpoint: '', people: false}"
  echo "cameras:"
  i=0
  for u in "${urls[@]}"; do i=$((i + 1)); echo "  - {id: c$i, main_url: '$u', analysis_fps: 5}"; done
} > "$work/bench.yaml"

# (a) matthan
taskset -c 1 "$bin/matthan" run --config "$work/bench.yaml" > "$work/server.out" 2>"$work/server.err" &
spid=$!
pids+=("$spid")
for _ in $(seq 1 50); do grep -q LISTENING "$work/server.out" && break; sleep 0.2; done
port=$(sed -n 's/.*:\([0-9]*\)\/$/\1/p' "$work/server.out" | head -1)
frames() { curl -s "127.0.0.1:$port/api/cameras" | grep -o '"frames_decoded":[0-9]*' | awk -F: '{s += $2} END {print s + 0}'; }
sleep 5  # connect and settle
f0=$(frames); t0=$(cpu_ticks "$spid")
sleep "$secs"
f1=$(frames); t1=$(cpu_ticks "$spid")
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$spid/status")
kill -TERM "$spid"; wait "$spid" 2>/dev/null || true
m_cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" 'BEGIN {print (b - a) / hz}')
m_frames=$((f1 - f0))

# (b) ffmpeg, decode only, the same streams for the same time.
fpids=()
i=0
for u in "${urls[@]}"; do
  i=$((i + 1))
  taskset -c 1 ffmpeg -nostdin -hide_banner -loglevel error -stats -threads 1 -rtsp_transport tcp \
    -i "$u" -t "$((secs + 5))" -f null - 2>"$work/ffmpeg$i.log" &
  fpids+=($!)
done
pids+=("${fpids[@]}")
sleep 5
ft0=0; for p in "${fpids[@]}"; do ft0=$((ft0 + $(cpu_ticks "$p"))); done
sleep "$secs"
ft1=0; frss=0
for p in "${fpids[@]}"; do
  ft1=$((ft1 + $(cpu_ticks "$p")))
  frss=$((frss + $(awk '/VmRSS/ {print $2}' "/proc/$p/status")))
done
wait "${fpids[@]}" 2>/dev/null || true
f_cpu=$(awk -v a="$ft0" -v b="$ft1" -v hz="$hz" 'BEGIN {print (b - a) / hz}')
# ffmpeg's last "frame=" of each log counts all its frames over secs+5 s: scale to the window.
f_frames=$(for i in $(seq 1 "$n"); do tr '\r' '\n' < "$work/ffmpeg$i.log" | grep -o 'frame= *[0-9]*' | tail -1 | grep -o '[0-9]*'; done | awk -v s="$secs" '{t += $1} END {printf "%d", t * s / (s + 5)}')

awk -v n="$n" -v secs="$secs" -v mc="$m_cpu" -v fc="$f_cpu" -v mf="$m_frames" -v ff="$f_frames" \
    -v mr="$rss_kb" -v fr="$frss" 'BEGIN {
  printf "bench/ingest: %d cameras (640x360 H.264, 25 fps), %d s measured\n", n, secs
  printf "%-28s %14s %14s %16s\n", "", "CPU/camera %", "RSS/camera MB", "frames decoded"
  printf "%-28s %14.2f %14.1f %16d\n", "matthan (decode+motion@5fps)", 100 * mc / secs / n, mr / 1024 / n, mf
  printf "%-28s %14.2f %14.1f %16d\n", "ffmpeg -threads 1 (floor)", 100 * fc / secs / n, fr / 1024 / n, ff
  printf "expected frames: %d per side\n", n * secs * 25
  printf "ratio matthan/ffmpeg CPU: %.3f (target <= 1.15)\n", (fc > 0 ? mc / fc : 0)
}'
