#!/usr/bin/env python3
"""Soak: 16 cameras with mixed scenarios for an hour (bench, not CI).

The simulator's demo commune (`--cameras 16`: people and vehicles crossing, headlights, foliage
in the wind; camera 4 in H.265), every camera recorded and analysed with the people classifier.
Every `--every` seconds the server's RSS, open file descriptors and threads are read from /proc,
and its heap from /metrics: bytes in use (a leak grows them) and the bytes the allocator holds
beyond them (fragmentation grows them), so a rising RSS says which it is.
At the end it prints the slopes (least squares, per hour, over the run after a warm-up) and
checks: RSS, file descriptors and threads flat; every ground-truth person crossing (from the
simulator's truth log) stored as an event; every warning in the log classified (a known cause,
counted) or listed as unexplained.

    /usr/bin/python3 bench/soak/soak.py --bin build/release/bin --minutes 60
"""
import argparse
import collections
import json
import os
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                                "faults"))
from common import Api  # noqa: E402  (the fault scripts' logged-in API client)

# Warnings the soak expects, with why; anything else is unexplained.
KNOWN = [
    (r"not NTP-synchronised", "the test machine's clock has no NTP"),
    (r"media timestamps jumped", "the simulator restarts its loop timestamps"),
    (r"link degraded|link good again", "frames late while the machine is busy"),
    (r"frames? dropped|could not keep up", "analysis shed frames under load (by design)"),
    (r"WITHOUT TLS", "loopback test without a certificate"),
]


def proc_stats(pid):
    status = open(f"/proc/{pid}/status").read()
    rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024
    # Anonymous memory (the heap, thread stacks) apart from mapped files: a leak grows the first.
    anon = int(re.search(r"RssAnon:\s+(\d+) kB", status).group(1)) / 1024
    threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds, threads, anon


def malloc_arenas(pid):
    """glibc arenas besides the main one (none: jemalloc). Each reserves 64 MiB at a 64 MiB
    boundary: read-write where in use, inaccessible after that (as the flapping-camera test)."""
    heap = 64 << 20
    anon = []
    for line in open(f"/proc/{pid}/maps"):
        f = line.split()
        if len(f) == 5:
            start, end = (int(a, 16) for a in f[0].split("-"))
            anon.append((start, end, f[1]))
    n = 0
    for i, (start, end, perms) in enumerate(anon):
        if start % heap or not perms.startswith("rw"):
            continue
        size = end - start
        if i + 1 < len(anon) and anon[i + 1][0] == end and anon[i + 1][2].startswith("---"):
            size += anon[i + 1][1] - anon[i + 1][0]
        n += size == heap
    return n


def tree_mb(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass  # deleted by retention while we walked
    return total / 2**20


def slope_per_hour(points):
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    return 3600 * sum((t - mx) * (v - my) for t, v in points) / var if var else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--cameras", type=int, default=16)
    ap.add_argument("--every", type=float, default=30)
    ap.add_argument("--warmup", type=float, default=10, help="minutes not used for the slopes")
    ap.add_argument("--out", default=None)
    ap.add_argument("--keep-recordings", action="store_true",
                    help="keep the footage (16 cameras fill ~27 GB an hour)")
    ap.add_argument("--max-mb", type=int, default=15000,
                    help="recordings budget: retention deletes the oldest footage past it, so a"
                         " run of hours neither fills the disk nor skips the deleting")
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="matthan-soak-")
    os.makedirs(out, exist_ok=True)
    print("output in", out, flush=True)
    camsim = subprocess.Popen([os.path.join(args.bin, "matthan-camsim"), "--cameras",
                               str(args.cameras), "--h265", "cam4", "--truth", f"{out}/truth.jsonl"],
                              stdout=subprocess.PIPE, stderr=open(f"{out}/camsim.log", "w"),
                              text=True)
    server = None
    failures = []

    def check(ok, what, detail=""):
        print(("ok   " if ok else "FAIL ") + what + (f" ({detail})" if detail else ""), flush=True)
        if not ok:
            failures.append(what)

    try:
        line = ""
        while not line.startswith("CAMSIM "):
            line = camsim.stdout.readline()
            if not line:
                raise RuntimeError("the simulator did not start")
        base = line.split()[1]
        cfg = f"{out}/matthan.yaml"
        with open(cfg, "w") as f:
            f.write(f"node_id: soak\nserver: {{listen: '127.0.0.1:0', data_dir: '{out}/var'}}\n"
                    f"recording: {{max_mb: {args.max_mb}}}\n"
                    "analytics: {zmq_endpoint: '', people: true}\ncameras:\n")
            for i in range(1, args.cameras + 1):
                f.write(f"  - {{id: cam{i}, main_url: '{base}/cam{i}/main',"
                        f" sub_url: '{base}/cam{i}/sub'}}\n")
        password = "Soak-" + secrets.token_hex(8)
        subprocess.run([os.path.join(args.bin, "matthan"), "user", "add", "soak", "--role",
                        "admin", "--config", cfg], input=password + "\n", text=True, check=True,
                       capture_output=True)
        server = subprocess.Popen([os.path.join(args.bin, "matthan"), "run", "--config", cfg],
                                  stdout=subprocess.PIPE, stderr=open(f"{out}/server.err", "w"),
                                  text=True)
        while not line.startswith("LISTENING "):
            line = server.stdout.readline()
            if not line:
                raise RuntimeError("the server did not start")
        api = Api(line.split()[1].rstrip("/"))
        api.login("soak", password)

        def heap_mb():
            try:
                text = api.text("/metrics")
            except OSError:
                return float("nan"), float("nan")
            got = {m.group(1): float(m.group(2)) / 2**20 for m in re.finditer(
                r"^matthan_heap_(in_use|free)_bytes (\S+)$", text, re.M)}
            return got.get("in_use", float("nan")), got.get("free", float("nan"))

        t0 = time.time()
        samples = []
        end = t0 + args.minutes * 60
        while time.time() < end:
            rss, fds, threads, anon = proc_stats(server.pid)
            footage = tree_mb(f"{out}/var/recordings")
            in_use, free = heap_mb()
            samples.append((time.time() - t0, rss, fds, threads, anon, footage, in_use, free))
            with open(f"{out}/samples.csv", "a") as f:
                f.write(f"{samples[-1][0]:.0f},{rss:.1f},{fds},{threads},{anon:.1f},{footage:.0f},"
                        f"{in_use:.1f},{free:.1f}\n")
            time.sleep(args.every)
        t_end = time.time()
        arenas = malloc_arenas(server.pid)
        server.send_signal(signal.SIGTERM)
        check(server.wait(60) == 0, "the server stops cleanly after the soak")

        steady = [s for s in samples if s[0] >= args.warmup * 60] or samples
        slopes, spans = {}, {}
        for i, name in ((1, "rss_mb"), (2, "fds"), (3, "threads"), (4, "anon_mb"),
                        (6, "heap_in_use_mb"), (7, "heap_free_mb")):
            points = [(s[0], s[i]) for s in steady if s[i] == s[i]]  # a failed scrape is NaN
            if points:
                slopes[name] = slope_per_hour(points)
                spans[name] = (min(v for _, v in points), max(v for _, v in points))
        # The slope of the last third too: caches filling decelerate, a leak does not.
        last = [s for s in steady if s[0] >= steady[0][0] + 2 * (steady[-1][0] - steady[0][0]) / 3]
        slopes["rss_mb_last_third"] = slope_per_hour([(s[0], s[1]) for s in last])
        spans["rss_mb_last_third"] = (min(s[1] for s in last), max(s[1] for s in last))
        print(f"malloc arenas besides the main one: {arenas}", flush=True)
        print("slopes per hour after the warm-up: " +
              ", ".join(f"{k} {v:+.2f} (range {spans[k][0]:.0f}–{spans[k][1]:.0f})"
                        for k, v in slopes.items()), flush=True)
        rss0 = spans["rss_mb"][0]
        check(slopes["rss_mb"] < max(5.0, 0.02 * rss0), "RSS is flat",
              f"{slopes['rss_mb']:+.2f} MB/h on {rss0:.0f} MB")
        if "heap_in_use_mb" in slopes:  # which part of the heap moved with the RSS
            print(f"  heap: in use {slopes['heap_in_use_mb']:+.2f} MB/h (a leak or a cache grows"
                  f" it), allocator's free {slopes['heap_free_mb']:+.2f} MB/h (fragmentation)",
                  flush=True)
        check(spans["fds"][1] - spans["fds"][0] <= 4 and abs(slopes["fds"]) < 2,
              "file descriptors are flat", f"{spans['fds']}")
        check(spans["threads"][1] == spans["threads"][0], "threads are flat", f"{spans['threads']}")
        # Retention runs once a minute: the footage may pass the budget by about a minute of it.
        most = max(s[5] for s in samples)
        if args.max_mb:
            check(most <= args.max_mb + 1024, "retention keeps the footage within its budget",
                  f"at most {most:.0f} MB against {args.max_mb} MB")

        # Ground truth: every person crossing that ended before the stop, against the events.
        loops, actors = collections.defaultdict(list), []
        for raw in open(f"{out}/truth.jsonl"):
            e = json.loads(raw)
            if e["kind"] == "loop":
                loops[e["camera"]].append(e["start_us"])
            elif e["kind"] == "person":
                actors.append(e)
        db = sqlite3.connect(f"file:{out}/var/matthan.db?mode=ro", uri=True)
        events = collections.defaultdict(list)
        for cam, start, end_us, label in db.execute(
                "SELECT camera_id, start_us, COALESCE(end_us, start_us), label FROM event"
                " WHERE type = 'motion'"):
            events[cam].append((start, end_us, label))
        crossings = missed = 0
        missed_list = []
        for a in actors:
            for loop_start in loops[a["camera"]]:
                s = loop_start + int(a["start_s"] * 1e6)
                e = loop_start + int(a["end_s"] * 1e6)
                if s < (t0 + 30) * 1e6 or e > (t_end - 5) * 1e6:
                    continue  # cameras still connecting, or cut by the stop
                crossings += 1
                # An event for this crossing: labelled person, or started by it (a long event
                # opened earlier by foliage or headlights does not count).
                if not any(es <= e and ee >= s and (lab == "person" or es >= s - 2e6)
                           for es, ee, lab in events[a["camera"]]):
                    missed += 1
                    missed_list.append(f"{a['camera']}@{s}")
        check(crossings > 0 and missed == 0, "every ground-truth person crossing is stored as an event",
              f"{crossings - missed} of {crossings}; missed {missed_list[:5]}")

        counts, unexplained = collections.Counter(), collections.Counter()
        for raw in open(f"{out}/var/matthan.log", encoding="utf-8"):
            if " warning " not in raw and " error " not in raw:
                continue
            msg = raw.split(" ", 2)[2].strip() if raw.count(" ") >= 2 else raw
            for pattern, why in KNOWN:
                if re.search(pattern, msg):
                    counts[why] += 1
                    break
            else:
                unexplained[re.sub(r"\d+", "N", msg)[:160]] += 1
        for why, n in counts.most_common():
            print(f"  explained x{n}: {why}")
        for msg, n in unexplained.most_common(10):
            print(f"  UNEXPLAINED x{n}: {msg}")
        check(not unexplained, "no warning left unexplained", f"{sum(unexplained.values())} line(s)")
        with open(f"{out}/summary.json", "w") as f:
            json.dump({"minutes": args.minutes, "cameras": args.cameras, "slopes_per_hour": slopes,
                       "ranges": spans, "crossings": crossings, "missed": missed,
                       "warnings_explained": counts, "unexplained": unexplained}, f, indent=1)
    finally:
        for p in (server, camsim):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    if not args.keep_recordings:  # what the checks needed is read; the footage fills disks
        shutil.rmtree(f"{out}/var/recordings", ignore_errors=True)
    print(f"soak: {len(failures)} check(s) failed" if failures else "soak: all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
