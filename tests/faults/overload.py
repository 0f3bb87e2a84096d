#!/usr/bin/env python3
"""More cameras than the cores can analyse.

`--cameras` (64) simulated cameras, each asking for analysis of its 640x360 sub stream at the
full 25 fps and full size (analysis_height 360) with the people classifier on, against a server
pinned to one core (the simulator on the other): far beyond what it decodes and analyses. For
`--seconds` the script watches the server; what must hold (exit 0):
- every packet of every main stream is recorded: the recorder's packets equal the packets that
  arrived (less those before the first keyframe), no write error, no queue over its limit, and
  the segment rows hold as many frames as the recorders wrote;
- analysis degrades instead of falling behind: per camera, the API reports the analysed rate
  below the configured one and the frames it dropped;
- live view keeps working: a WebSocket viewer of one camera receives fragments all along;
- nothing crashes: the server answers throughout and stops cleanly.
"""
import argparse
import collections
import json
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time

from common import checker, live_viewer, start_camsim, start_server


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", default=None)
    ap.add_argument("--cameras", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=40)
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="matthan-overload-")
    os.makedirs(out, exist_ok=True)
    shutil.rmtree(f"{out}/var", ignore_errors=True)  # a rerun starts from an empty server
    failures = []

    check = checker(failures)

    procs = []
    try:
        ids = [f"ov-{i:02d}" for i in range(args.cameras)]
        scenario = f"{out}/overload.yaml"
        with open(scenario, "w") as f:
            f.write("seed: 3\nfps: 25\nduration_s: 10\ncameras:\n")
            for i, cam in enumerate(ids):
                bg = ("road", "houses", "market")[i % 3]
                f.write(f"  - id: {cam}\n    main: {{width: 1280, height: 720, bitrate_kbps: 1000}}\n"
                        f"    sub: {{width: 640, height: 360, bitrate_kbps: 300}}\n"
                        f"    background: {bg}\n    actors:\n"
                        f"      - {{kind: person, start_s: {2 + i % 4}, duration_s: 5,"
                        f" from: [0.1, 0.85], to: [0.9, 0.8], size: 0.3}}\n")
        # The simulator on one core, the server on the other: "more cameras than the cores can
        # analyse" must hold however fast the build is (a release build nearly keeps up with 32
        # cameras on two cores). Analysis at the sub stream's full 360 rows (4x the pixels of the
        # default 180): with our own RTSP client the server kept up with 799 of 800 frames/s on
        # one core at 180 rows (2026-11-30), and once the analysis loops were vectorised, with
        # 793 of 800 at 360 rows: 64 cameras since (774 of 1 600 frames/s).
        cpus = sorted(os.sched_getaffinity(0))
        sim_cpu, server_cpu = (cpus[0], cpus[1]) if len(cpus) > 1 else (cpus[0], cpus[0])
        base = start_camsim(args.bin, scenario, out, procs, cpu=sim_cpu, timeout=900)
        cfg = f"{out}/matthan.yaml"
        with open(cfg, "w") as f:
            f.write(f"node_id: overload\nserver: {{listen: '127.0.0.1:0', data_dir: '{out}/var'}}\n"
                    "analytics: {zmq_endpoint: '', people: true, analysis_height: 360}\n"
                    "defaults: {analysis_fps: 25}\nrecording: {segment_s: 10}\ncameras:\n")
            for cam in ids:
                f.write(f"  - {{id: {cam}, main_url: '{base}/{cam}/main',"
                        f" sub_url: '{base}/{cam}/sub'}}\n")
        server, url, api = start_server(args.bin, cfg, out, procs, "Over-Load-2026!",
                                        cpu=server_cpu)
        port = int(url.rsplit(":", 1)[1])
        stop = threading.Event()
        counts = []
        viewer = threading.Thread(target=live_viewer, daemon=True,
                                  args=(port, f"/api/cameras/{ids[0]}/live?stream=sub",
                                        api.cookie(), stop, counts))
        time.sleep(5)  # the cameras connect
        viewer_start = time.time()
        viewer.start()
        slow = []
        rate_samples = collections.defaultdict(list)  # the last samples' analysed rates
        end = time.time() + args.seconds
        while time.time() < end:
            t0 = time.time()
            listed = api.call("/api/cameras", timeout=20)["cameras"]
            slow.append(time.time() - t0)
            if time.time() > end - 12:
                for c in listed:
                    rate_samples[c["id"]].append(c["fps_analysed"])
            time.sleep(2)
        cams = {c["id"]: c for c in api.call("/api/cameras")["cameras"]}
        viewer_stop = time.time()
        stop.set()
        server.send_signal(signal.SIGTERM)
        code = server.wait(60)
        check(code == 0, "the server stops cleanly under the load", f"exit {code}")

        binary = [t for k, t, *_ in counts if k == "binary"]
        refused = [t for k, t, *_ in counts if k == "refused"]
        check(not refused, "the live viewer is let in", refused[0] if refused else "")
        marks = [viewer_start + 1.0] + binary + [viewer_stop]  # a second to connect
        holes = max(b - a for a, b in zip(marks, marks[1:]))
        check(len(binary) > 4 * args.seconds and holes < 2.0,
              "live view keeps flowing under the load",
              f"{len(binary)} fragments, longest wait {holes:.2f} s")
        check(max(slow) < 5, "the API answers under the load", f"slowest {max(slow):.2f} s")
        lost, degraded = [], []
        for cam in ids:
            c = cams[cam]
            main = next(s for s in c["streams"] if s["kind"] == "main")
            rec = c["recording"]
            # Packets still queued for the recorder at the last sample are written at the stop.
            if rec["errors"] or rec["queue_over_limit"] or rec.get("lost_frames", 0):
                lost.append(f"{cam}: {rec}")
            samples = rate_samples.get(cam) or [c["fps_analysed"]]
            degraded.append((sum(samples) / len(samples), c["frames_dropped"]))
        check(not lost, "no camera lost a recording packet (no error, no overflow)",
              "; ".join(lost[:2]))
        rates = [r for r, _ in degraded]
        check(sum(rates) < 0.9 * 25 * len(ids), "the load is more than the cores can analyse",
              f"{sum(rates):.0f} of {25 * len(ids)} frames/s analysed")
        behind = [(r, d) for r, d in degraded if r < 0.9 * 25]
        check(all(d > 0 for _, d in behind),
              "each camera that falls behind reports its analysed rate and the frames it dropped",
              f"{len(behind)} of {len(ids)} behind")
        check(min(rates) > 0.5 * max(rates), "no camera is starved: the cores are shared fairly",
              f"analysed fps {min(rates):.1f}–{max(rates):.1f}")
        # The segments hold every packet the recorders took.
        db = sqlite3.connect(f"file:{out}/var/matthan.db?mode=ro", uri=True)
        rows = dict(db.execute("SELECT camera_id, SUM(frames) FROM segment WHERE stream = 'main'"
                               " GROUP BY camera_id").fetchall())
        states = dict(db.execute("SELECT state, COUNT(*) FROM segment GROUP BY state").fetchall())
        check(set(states) == {"complete"}, "every segment closed complete", str(states))
        short = []
        for cam in ids:
            main = next(s for s in cams[cam]["streams"] if s["kind"] == "main")
            arrived = main["packets_in"] - cams[cam]["recording"]["skipped_before_keyframe"]
            if rows.get(cam, 0) < arrived:  # more arrive between the last sample and the stop
                short.append(f"{cam}: {rows.get(cam, 0)} < {arrived}")
        check(not short, "the segments hold at least every packet counted in", "; ".join(short[:3]))
        with open(f"{out}/summary.json", "w") as f:
            json.dump({"cameras": args.cameras, "seconds": args.seconds,
                       "analysed_fps": sorted(rates), "live_fragments": len(binary),
                       "live_longest_wait_s": holes, "api_slowest_s": max(slow)}, f, indent=1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    print(f"overload: {len(failures)} check(s) failed" if failures else "overload: all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
