#!/usr/bin/env python3
"""Live viewers on poor phones: a stalled one is skipped ahead, a capped one stays in budget.

One simulated camera (sub stream 640x360, 25 fps, ~600 kbit/s) and three WebSocket viewers of
its sub stream for `--seconds`:
- A reads everything: the reference;
- B has a small receive buffer and reads at half the stream's rate (a phone on a link slower
  than the camera): the server must skip it ahead to keyframes instead of queueing the video, so
  its delay behind A stays bounded (seconds, not growing with the watching time);
- C asks for a data budget (`max_kbps=128`): it must stay within it (plus two seconds' burst and
  the first GOP) and still receive pictures throughout.
Exit 0 when all of that holds.
"""
import argparse
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.request

from common import checker, live_viewer, start_camsim, start_server


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", default=None)
    ap.add_argument("--seconds", type=float, default=16)
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="matthan-live-")
    os.makedirs(out, exist_ok=True)
    shutil.rmtree(f"{out}/var", ignore_errors=True)
    failures = []

    check = checker(failures)

    procs = []
    try:
        scenario = f"{out}/live.yaml"
        with open(scenario, "w") as f:
            f.write("seed: 4\nfps: 25\nduration_s: 10\ncameras:\n  - id: cho\n"
                    "    main: {width: 1280, height: 720, bitrate_kbps: 1500}\n"
                    "    sub: {width: 640, height: 360, bitrate_kbps: 600}\n"
                    "    background: market\n    actors:\n"
                    "      - {kind: person, start_s: 1, duration_s: 8, from: [0.1, 0.85],"
                    " to: [0.9, 0.8], size: 0.3}\n")
        base = start_camsim(args.bin, scenario, out, procs)
        cfg = f"{out}/matthan.yaml"
        with open(cfg, "w") as f:
            f.write(f"node_id: live\nserver: {{listen: '127.0.0.1:0', data_dir: '{out}/var'}}\n"
                    "analytics: {zmq_endpoint: '', people: false}\ncameras:\n"
                    f"  - {{id: cho, main_url: '{base}/cho/main', sub_url: '{base}/cho/sub'}}\n")
        server, url, api = start_server(args.bin, cfg, out, procs, "Live-View-2026!")
        port = int(url.rsplit(":", 1)[1])
        for _ in range(60):
            if api.call("/api/cameras/cho")["state"] == "online":
                break
            time.sleep(0.5)
        # The stream's rate, from the server's own figure.
        rate = 0.0
        for _ in range(20):
            subs = [x for x in api.call("/api/cameras/cho")["streams"] if x["kind"] == "sub"]
            rate = subs[0]["bitrate_bps"] / 8 if subs else 0.0
            if rate > 0:
                break
            time.sleep(0.5)
        if rate <= 0:
            raise RuntimeError("no bitrate for the sub stream")
        stop = threading.Event()
        counts = {"a": [], "b": [], "c": []}
        path = "/api/cameras/cho/live?stream=sub"
        threads = [
            threading.Thread(target=live_viewer, daemon=True,
                             args=(port, path, api.cookie(), stop, counts["a"])),
            threading.Thread(target=live_viewer, daemon=True,
                             args=(port, path + "&cap_kb=16", api.cookie(), stop, counts["b"]),
                             kwargs={"rcvbuf": 4096, "read_rate": rate / 2}),
            threading.Thread(target=live_viewer, daemon=True,
                             args=(port, path + "&max_kbps=128", api.cookie(), stop,
                                   counts["c"])),
        ]
        start = time.time()
        for t in threads:
            t.start()
        time.sleep(args.seconds)
        stop.set()
        for t in threads:
            t.join(15)
        req = urllib.request.Request(url + "/metrics", headers={"Cookie": api.cookie()})
        metrics = urllib.request.urlopen(req, timeout=10).read().decode()
        server.send_signal(signal.SIGTERM)
        check(server.wait(60) == 0, "the server stops cleanly")

        def stats(name, since=0.0):
            msgs = [(t, n) for k, t, n, _ in counts[name] if k == "binary" and t >= start + since]
            return len(msgs), sum(n for _, n in msgs)

        a_all, b_all, c_all = stats("a"), stats("b"), stats("c")
        print(f"A {a_all[0]} messages {a_all[1]} bytes; B {b_all[0]} / {b_all[1]};"
              f" C {c_all[0]} / {c_all[1]}", flush=True)
        check(a_all[0] > 4 * args.seconds, "the reference viewer receives the stream",
              f"{a_all[0]} messages")
        # B: how far behind A it is, message by message (named by its first fragment's decode
        # time: every viewer gets the same fragments from the one muxer).
        sent = {d: t for k, t, n, d in counts["a"] if k == "binary" and d is not None}
        lags = [(t - start, t - sent[d]) for k, t, n, d in counts["b"]
                if k == "binary" and d in sent]
        # (B getting fewer bytes than A proves nothing: reading at half the rate, it would with
        # or without the skip. Its delay behind A is what tells.)
        late = [lag for t, lag in lags if t > args.seconds - 4]
        mid = [lag for t, lag in lags if args.seconds / 2 - 2 < t <= args.seconds / 2 + 2]
        check(bool(late) and max(late) < 4.0,
              "its delay behind live stays bounded (skipped to keyframes, not queued)",
              f"last 4 s: {max(late) if late else float('nan'):.2f} s behind")
        check(bool(late) and bool(mid) and max(late) < max(mid) + 1.5,
              "and does not grow with the watching time",
              f"{max(mid) if mid else float('nan'):.2f} s mid-way, "
              f"{max(late) if late else float('nan'):.2f} s at the end")
        skipped = sum(float(v) for v in re.findall(
            r'^matthan_live_skipped_total\{camera="cho",stream="sub"\} (\S+)$', metrics, re.M))
        check(skipped > 0, "the server counts the fragments it skipped", f"{skipped:.0f}")
        # C: within 128 kbit/s plus 2 s of burst and the first GOP (~1 s here).
        budget = 128_000 / 8 * (args.seconds + 2) + a_all[1] / args.seconds
        check(c_all[1] <= budget, "a viewer with a data budget stays within it",
              f"{c_all[1]} bytes, budget {budget:.0f}, uncapped {a_all[1]}")
        c_late = stats("c", args.seconds - 6)
        check(c_late[0] >= 2, "and still sees pictures throughout", f"{c_late[0]} in the last 6 s")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    print(f"live viewers: {len(failures)} check(s) failed" if failures
          else "live viewers: all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
