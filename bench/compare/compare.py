#!/usr/bin/python3
"""Side by side: Mắt Thần, Motion 4.5.1 (default and tuned) and ffmpeg decode-only, same streams.

One simulator (`matthan-camsim`, pinned to CPU 0) serves the cameras; each system in turn is run
on CPU 1 against the same cameras for the same window and measured:
- CPU per camera: utime+stime of its process(es) from /proc/PID/stat over the window, divided by
  the cameras; RSS per camera: the largest VmRSS sum seen in the window, divided likewise; the
  simulator's own CPU over the same window beside it; wake-ups per camera a second: the
  voluntary context switches of all its threads (/proc/PID/task/*/status), each a sleep that
  ended, over the window;
- events against the simulator's ground truth: recall (person crossings that overlap an event),
  false events per camera-hour (events that overlap no person or vehicle), events per
  camera-hour and the share of time spent inside an event;
- the analysed rate and recording loss (frames missing from the recorded main stream, read off
  the frame-index strip the simulator burns into every frame).
`--sustain` then steps the cameras (4, 8, 16, 24, 32, …) per system and reports the largest
count where every sub stream is analysed at its full configured rate and the main stream is
recorded without a lost frame. Output: results.md, results.json and PNG plots in --out.

    /usr/bin/python3 bench/compare/compare.py --bin build/release/bin --cameras 8 --seconds 600 \
        --sustain --out /tmp/compare
See bench/compare/README.md.
"""
import argparse
import collections
import datetime
import json
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                                "faults"))
from common import Api  # noqa: E402  (the fault scripts' logged-in API client)

HERE = os.path.dirname(os.path.abspath(__file__))
HZ = os.sysconf("SC_CLK_TCK")
SYSTEMS = ("matthan", "matthan-libav", "matthan-base", "motion-default", "motion-tuned", "ffmpeg",
           "ffmpeg-rec")
LABEL = {"matthan": "Mắt Thần", "matthan-libav": "Mắt Thần (libav RTSP)",
         "matthan-base": "Mắt Thần (--base-bin)",
         "motion-default": "Motion 4.5.1 default",
         "motion-tuned": "Motion 4.5.1 tuned", "ffmpeg": "ffmpeg decode-only (floor)",
         "ffmpeg-rec": "ffmpeg decode + main copy (floor with recording)"}
MATTHAN_ANALYSIS_FPS = 10


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# ---------------------------------------------------------------------------------------------
# /proc

def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    except (OSError, IndexError, ValueError):
        return None


def wakeups(pid):
    """Voluntary context switches of every thread the process has now (a thread that ended in
    the window takes its count with it)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/status") as f:
                m = re.search(r"^voluntary_ctxt_switches:\s+(\d+)", f.read(), re.M)
            total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            m = re.search(r"VmRSS:\s+(\d+) kB", f.read())
        return int(m.group(1)) if m else 0
    except OSError:
        return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drain(stream, path, on_line=None):
    """Keep copying a child's pipe to a file so that it never fills up and blocks the child;
    on_line(line) sees every line too."""
    def copy():
        with open(path, "a") as f:
            for line in stream:
                f.write(line)
                f.flush()
                if on_line:
                    on_line(line)
    threading.Thread(target=copy, daemon=True).start()


def pinned(cpu, argv):
    return ["taskset", "-c", str(cpu)] + argv


def stop_process(p, timeout=60, sig=signal.SIGTERM):
    if p is None or p.poll() is not None:
        return p.returncode if p is not None else None
    try:
        p.send_signal(sig)
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait()


# ---------------------------------------------------------------------------------------------
# The simulator

class Camsim:
    def __init__(self, args, cameras, out):
        self.truth = os.path.join(out, "truth.jsonl")
        cmd = [os.path.join(args.bin, "matthan-camsim"), "--truth", self.truth]
        if args.scenario:
            cmd += ["--scenario", args.scenario]
        else:
            cmd += ["--cameras", str(cameras), "--duration", str(args.loop_s), "--seed",
                    str(args.seed)]
        if args.cache:
            cmd += ["--cache", args.cache]
        log("simulator:", " ".join(cmd), "(first run renders and encodes every scene: minutes)")
        self.proc = subprocess.Popen(pinned(args.sim_cpu, cmd), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True,
                                     stderr=open(os.path.join(out, "camsim.log"), "w"))
        self.cameras = []  # (id, main_url, sub_url)
        if args.scenario:  # as many CAMERA lines as the scenario has cameras
            cameras = len(re.findall(r"^\s*-\s*\{?\s*id:", open(args.scenario).read(), re.M))
        end = time.time() + args.render_timeout
        while time.time() < end and len(self.cameras) < cameras:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the simulator stopped: see camsim.log")
            parts = line.split()
            if parts and parts[0] == "CAMERA" and len(parts) >= 5:
                self.cameras.append((parts[1], parts[3], parts[4]))
        if not self.cameras:
            raise RuntimeError("the simulator announced no camera")
        self.replies = queue.Queue()  # "ok drops ..." answers, read off stdout by the drain
        drain(self.proc.stdout, os.path.join(out, "camsim.out"),
              lambda line: line.startswith("ok drops") and self.replies.put(line.split()))
        # The simulator is its own process behind taskset's exec: same pid.
        self.pid = self.proc.pid

    def drops(self):
        """Main-stream pictures the simulator itself dropped so far (its sender queue full), per
        camera; None if it does not answer."""
        try:
            self.proc.stdin.write("drops\n")
            self.proc.stdin.flush()
            words = self.replies.get(timeout=10)
        except (OSError, queue.Empty):
            return None
        out = {}
        for w in words[3:]:
            stream, _, n = w.partition("=")
            cam, _, kind = stream.partition("/")
            if kind == "main":
                out[cam] = int(n)
        return out

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def probe_stream(url):
    """width, height and frame rate of a stream or a file (one ffprobe)."""
    rtsp = ["-rtsp_transport", "tcp"] if url.startswith("rtsp") else []
    r = subprocess.run(["ffprobe", "-v", "error"] + rtsp + ["-select_streams", "v:0",
                        "-show_entries", "stream=width,height,r_frame_rate", "-of", "json", url],
                       capture_output=True, text=True, timeout=30)
    s = json.loads(r.stdout or "{}").get("streams", [{}])[0]
    num, _, den = s.get("r_frame_rate", "25/1").partition("/")
    fps = float(num) / float(den or 1) if float(den or 1) else 25.0
    return int(s.get("width", 640)), int(s.get("height", 360)), fps


def read_truth(path):
    loops, actors = collections.defaultdict(list), []
    with open(path) as f:
        for raw in f:
            e = json.loads(raw)
            if e["kind"] == "loop":
                loops[e["camera"]].append(e["start_us"] / 1e6)
            else:
                actors.append(e)
    spans = collections.defaultdict(list)  # camera -> [(kind, start, end)] in wall seconds
    for a in actors:
        for start in loops[a["camera"]]:
            spans[a["camera"]].append((a["kind"], start + a["start_s"], start + a["end_s"]))
    return loops, spans


# ---------------------------------------------------------------------------------------------
# Frame-index strip (tools/camsim/src/frame_code.cpp): 26 blocks of height/45 px in the top-left
# corner, 2 sync blocks, 20 index bits, 4 check bits. Loss is read off the recorded video.

def _check_nibble(index):
    return (~sum((index >> (4 * i)) & 0xF for i in range(5))) & 0xF


def read_codes(path, height):
    b = max(4, height // 45)
    w, h = 27 * b, 2 * b
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-i", path, "-an", "-vsync", "passthrough", "-vf",
           f"crop={w}:{h}:0:0,format=gray", "-f", "rawvideo", "-"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    codes, size, n = [], w * h, b // 2
    while True:
        frame = p.stdout.read(size)
        if len(frame) < size:
            break
        means = []
        for i in range(26):
            cx, cy = b + i * b + b // 4, b + b // 4
            s = 0
            for y in range(cy, cy + n):
                s += sum(frame[y * w + cx:y * w + cx + n])
            means.append(s // (n * n))
        if means[0] - means[1] < 80:
            codes.append(None)
            continue
        thr = (means[0] + means[1]) // 2
        index = 0
        for i in range(2, 22):
            index = (index << 1) | (means[i] > thr)
        check = 0
        for i in range(22, 26):
            check = (check << 1) | (means[i] > thr)
        codes.append(index if check == _check_nibble(index) else None)
    p.wait()
    return codes


def code_loss(codes, modulo):
    """Frames missing between consecutive readable codes (wrapping at the loop length)."""
    missing = unreadable = dup = 0
    prev, unread_since = None, 0
    for c in codes:
        if c is None:
            unreadable += 1
            unread_since += 1
            continue
        if prev is not None:
            d = (c - prev) % modulo
            if d == 0:
                dup += 1
            elif d < modulo // 2:
                missing += max(0, d - 1 - unread_since)
        prev, unread_since = c, 0
    return {"frames": len(codes), "missing": missing, "unreadable": unreadable, "duplicate": dup}


def files_loss(groups, height, modulo):
    """groups: lists of files that are each one recording in order (Mắt Thần: every segment of
    a camera; Motion: the movies of one event, split by movie_max_time). A frame missing inside
    a file or between two files of a group is lost; nothing is expected between groups."""
    total = {"files": sum(len(g) for g in groups), "frames": 0, "missing": 0, "unreadable": 0,
             "duplicate": 0}
    for group in groups:
        codes = []
        for path in group:
            codes += read_codes(path, height)
        for k, v in code_loss(codes, modulo).items():
            total[k] += v
    return total


# ---------------------------------------------------------------------------------------------
# Scoring against the ground truth

def score(events, spans, cams, t0, t1, slack):
    """events: camera -> [(start, end)] wall seconds. Returns per camera and overall figures."""
    per = {}
    for cam in cams:
        evs = sorted(events.get(cam, []))
        crossings = [(s, e) for k, s, e in spans.get(cam, []) if k == "person"
                     and s >= t0 and s + min(3.0, e - s) <= t1]
        hit = sum(1 for s, e in crossings
                  if any(es <= e + slack and ee >= s - slack for es, ee in evs))
        objects = [(s, e) for k, s, e in spans.get(cam, []) if k in ("person", "vehicle")]
        in_window = [(es, ee) for es, ee in evs if t0 <= es <= t1]
        false = [(es, ee) for es, ee in in_window
                 if not any(s <= ee + slack and e >= es - slack for s, e in objects)]
        covered, last = 0.0, t0
        for es, ee in evs:  # union of the events clipped to the window
            a, b = max(es, last), min(ee, t1)
            if b > a:
                covered += b - a
                last = b
        per[cam] = {"crossings": len(crossings), "detected": hit, "events": len(in_window),
                    "false_events": len(false), "time_in_event_s": round(covered, 1),
                    "false_list": [[round(a, 2), round(b, 2)] for a, b in false[:20]]}
    hours = len(cams) * (t1 - t0) / 3600
    tot = {k: sum(p[k] for p in per.values())
           for k in ("crossings", "detected", "events", "false_events", "time_in_event_s")}
    tot["recall"] = tot["detected"] / tot["crossings"] if tot["crossings"] else None
    tot["false_per_cam_hour"] = tot["false_events"] / hours if hours else None
    tot["events_per_cam_hour"] = tot["events"] / hours if hours else None
    tot["time_in_event_share"] = tot["time_in_event_s"] / (len(cams) * (t1 - t0))
    return per, tot


# ---------------------------------------------------------------------------------------------
# Measuring one system

class Window:
    """CPU ticks, RSS and the simulator's CPU over the measuring window; `sample` is called
    every `every` seconds with the elapsed time (status polling)."""

    def __init__(self, pids_fn, sim_pid):
        self.pids_fn, self.sim_pid = pids_fn, sim_pid

    def run(self, seconds, sample=None, every=2.0):
        pids = self.pids_fn()
        c0 = {p: cpu_ticks(p) for p in pids}
        v0 = {p: wakeups(p) for p in pids}
        s0 = cpu_ticks(self.sim_pid)
        self.t0 = time.time()
        rss_max = 0
        end = self.t0 + seconds
        while True:
            rss_max = max(rss_max, sum(rss_kb(p) for p in pids))
            if sample:
                sample(time.time() - self.t0)
            now = time.time()
            if now >= end:
                break
            time.sleep(min(every, end - now))
        c1 = {p: cpu_ticks(p) for p in pids}
        v1 = {p: wakeups(p) for p in pids}
        s1 = cpu_ticks(self.sim_pid)
        self.t1 = time.time()
        dead = [p for p in pids if c1[p] is None or c0[p] is None]
        self.cpu_s = sum(c1[p] - c0[p] for p in pids if p not in dead) / HZ
        self.wakeups = sum(v1[p] - v0[p] for p in pids
                           if p not in dead and v0[p] is not None and v1[p] is not None)
        self.sim_cpu_s = (s1 - s0) / HZ if s0 is not None and s1 is not None else None
        self.rss_kb = rss_max
        self.dead = dead
        return self


def summary(name, cams, w, extra):
    n, secs = len(cams), w.t1 - w.t0
    r = {"system": name, "label": LABEL[name], "cameras": n, "t0": w.t0, "t1": w.t1,
         "window_s": round(secs, 1), "cpu_s": round(w.cpu_s, 2),
         "cpu_pct_per_camera": 100 * w.cpu_s / secs / n,
         "rss_mb_per_camera": w.rss_kb / 1024 / n,
         "wakeups_per_camera_s": w.wakeups / secs / n,
         "sim_cpu_pct": 100 * w.sim_cpu_s / secs if w.sim_cpu_s is not None else None,
         "processes_died": len(w.dead)}
    r.update(extra)
    return r


def align(ctx, lead=0.3):
    """Wait for the simulator's next loop start (less `lead` s), so that every system's window
    sees the same part of the scenario."""
    if not ctx.args.align or not getattr(ctx, "aligning", True):
        return
    loops, _ = read_truth(ctx.truth)
    starts = sorted(loops.get(ctx.cams[0][0], []))
    if not starts:
        return
    period = (starts[-1] - starts[-2]) if len(starts) >= 2 else ctx.args.loop_s
    nxt = starts[-1]
    while nxt - lead < time.time():
        nxt += period
    time.sleep(max(0.0, nxt - lead - time.time()))


def run_matthan(ctx, cams, warmup, seconds, work, name="matthan"):
    os.makedirs(work, exist_ok=True)
    cfg = os.path.join(work, "matthan.yaml")
    with open(cfg, "w") as f:
        f.write("node_id: compare\n"
                f"server: {{listen: '127.0.0.1:0', data_dir: '{work}/var', log_level: warn}}\n"
                "analytics: {zmq_endpoint: '', people: true}\n"
                f"defaults: {{analysis_fps: {MATTHAN_ANALYSIS_FPS}"
                + (", rtsp_client: libavformat" if name == "matthan-libav" else "")
                + "}\ncameras:\n")
        for cam, main, sub in cams:
            f.write(f"  - {{id: {cam}, main_url: '{main}', sub_url: '{sub}'}}\n")
    binary = os.path.join(ctx.args.base_bin if name == "matthan-base" else ctx.args.bin, "matthan")
    password = "Cmp-" + secrets.token_hex(8)
    added = subprocess.run([binary, "user", "add", "bench", "--role", "admin", "--config", cfg],
                           input=password + "\n", text=True, capture_output=True)
    if added.returncode != 0:
        raise RuntimeError(f"matthan user add: {added.stderr.strip() or added.stdout.strip()} "
                           f"(is {work} left from an earlier run?)")
    server = subprocess.Popen(pinned(ctx.args.cpu, [binary, "run", "--config", cfg]),
                              stdout=subprocess.PIPE, text=True,
                              stderr=open(os.path.join(work, "server.err"), "w"))
    try:
        url = None
        end = time.time() + 60
        while time.time() < end and url is None:
            line = server.stdout.readline()
            if not line:
                break
            if line.startswith("LISTENING "):
                url = line.split()[1].rstrip("/")
        if url is None:
            raise RuntimeError("matthan did not start: see " + work)
        drain(server.stdout, os.path.join(work, "server.out"))
        api = Api(url)
        api.login("bench", password)

        def cameras():
            return {c["id"]: c for c in api.call("/api/cameras")["cameras"]}

        def stream(c, kind):
            return next((s for s in c.get("streams", []) if s["kind"] == kind), {})

        end = time.time() + 30 + 2 * len(cams)
        while time.time() < end:
            cs = cameras()
            if all(cs.get(cam, {}).get("state") == "online" and stream(cs[cam], "sub").get(
                    "frames_decoded", 0) > 0 for cam, _, _ in cams):
                break
            time.sleep(1)
        time.sleep(warmup)
        align(ctx)
        first = cameras()
        samples = collections.defaultdict(list)

        def sample(_):
            for cam, c in cameras().items():
                samples[cam].append(c.get("fps_analysed", 0))

        w = Window(lambda: [server.pid], ctx.sim_pid).run(seconds, sample, every=5)
        last = cameras()
        secs = w.t1 - w.t0
        per, rec_api_ok = {}, True
        for cam, _, _ in cams:
            a, b = first.get(cam, {}), last.get(cam, {})
            sa, sb = stream(a, "sub"), stream(b, "sub")
            ma, mb = stream(a, "main"), stream(b, "main")
            ra, rb = a.get("recording", {}), b.get("recording", {})
            nominal = (sb.get("link") or {}).get("nominal_fps") or ctx.sub_fps
            p = {"state": b.get("state"),
                 "analysis_fps_configured": b.get("analysis_fps_configured"),
                 "fps_analysed": (b.get("frames_analysed", 0) - a.get("frames_analysed", 0)) / secs,
                 "fps_analysed_api_mean": statistics.mean(samples[cam]) if samples[cam] else None,
                 "frames_dropped": b.get("frames_dropped", 0) - a.get("frames_dropped", 0),
                 # The server's own clock on its analysis (motion and people check) per frame,
                 # averaged since it started: the analysis share of the CPU, free of the noise
                 # of whole-process CPU between runs.
                 "analyse_ms": b.get("analyse_ms_avg"),
                 "sub_fps_decoded": (sb.get("frames_decoded", 0) - sa.get("frames_decoded", 0)) / secs,
                 "sub_nominal_fps": nominal,
                 "sub_decode_errors": sb.get("decode_errors", 0) - sa.get("decode_errors", 0),
                 "reconnects": (sb.get("reconnects", 0) - sa.get("reconnects", 0)) +
                               (mb.get("reconnects", 0) - ma.get("reconnects", 0)),
                 "main_packets_in": mb.get("packets_in", 0) - ma.get("packets_in", 0),
                 "recorded_packets": rb.get("packets", 0) - ra.get("packets", 0),
                 "rec_lost_frames": rb.get("lost_frames", 0),
                 "rec_errors": rb.get("errors", 0),
                 "rec_queue_over_limit": bool(rb.get("queue_over_limit")),
                 "rec_not_recorded_packets": rb.get("not_recorded_packets", 0)}
            p["full_rate"] = (p["fps_analysed"] >= 0.9 * (p["analysis_fps_configured"] or
                                                           MATTHAN_ANALYSIS_FPS)
                              and p["frames_dropped"] == 0
                              and p["sub_fps_decoded"] >= 0.9 * nominal)
            p["rec_api_ok"] = (p["rec_lost_frames"] == 0 and p["rec_errors"] == 0 and
                               not p["rec_queue_over_limit"] and p["rec_not_recorded_packets"] == 0
                               and p["recorded_packets"] >= p["main_packets_in"] - 2 * nominal)
            rec_api_ok &= p["rec_api_ok"]
            per[cam] = p
        t_stop = time.time()
    finally:
        code = stop_process(server, 60)
    events = collections.defaultdict(list)
    db = sqlite3.connect(f"file:{work}/var/matthan.db?mode=ro", uri=True)
    for cam, s, e in db.execute("SELECT camera_id, start_us, end_us FROM event"
                                " WHERE type = 'motion'"):
        events[cam].append((s / 1e6, e / 1e6 if e is not None else t_stop))
    segments = collections.defaultdict(list)  # one group: the camera's continuous recording
    try:
        rows = db.execute("SELECT camera_id, path FROM segment WHERE stream = 'main'"
                          " ORDER BY camera_id, start_us").fetchall()
    except sqlite3.Error:
        rows = []
    for cam, path in rows:
        if not os.path.isabs(path):
            for base in (os.path.join(work, "var", "recordings"), os.path.join(work, "var")):
                if os.path.exists(os.path.join(base, path)):
                    path = os.path.join(base, path)
                    break
        segments[cam].append(path)
    db.close()
    return summary(name, cams, w, {"per_camera": per, "events": events,
                                        "recordings": {c: [f] for c, f in segments.items()},
                                        "exit_code": code,
                                        "recording_api_ok": rec_api_ok,
                                        "analysis_fps": MATTHAN_ANALYSIS_FPS})


def motion_conf(variant, work, port, cams, hook, width, height):
    """The package's default motion.conf with the benchmark's plumbing (and, for `tuned`, the
    overlay in motion-tuned.conf); one camera file per camera."""
    def parse(path):
        out = []
        for raw in open(path):
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            key, _, value = line.partition(" ")
            out.append((key, value.strip()))
        return out

    conf = parse(os.path.join(HERE, "motion-default.conf"))
    plumbing = {"daemon": "off", "setup_mode": "off", "log_file": f"{work}/motion.log",
                "log_level": "7", "target_dir": f"{work}/movies", "pid_file": f"{work}/motion.pid",
                "webcontrol_port": "0", "stream_port": str(port), "stream_localhost": "on"}
    drop = {"video_device", "width", "height"}  # the camera files describe the cameras
    overlay = dict(parse(os.path.join(HERE, "motion-tuned.conf"))) if variant == "tuned" else {}
    keys = dict(conf)
    merged = []
    for key, value in conf:
        if key in drop:
            continue
        merged.append((key, overlay.get(key, plumbing.get(key, value))))
    for key, value in list(plumbing.items()) + list(overlay.items()):
        if key not in keys:
            merged.append((key, value))
            keys[key] = value
    path = os.path.join(work, "motion.conf")
    template = open(os.path.join(HERE, "motion-camera.conf")).read()
    with open(path, "w") as f:
        f.write(f"# generated by bench/compare/compare.py: Motion {variant}\n")
        for key, value in merged:
            f.write(f"{key} {value}\n")
        for i, (cam, main, sub) in enumerate(cams, 1):
            cpath = os.path.join(work, f"camera{i}.conf")
            with open(cpath, "w") as c:
                c.write(template.replace("@CAMERA_NUM@", str(i)).replace("@CAMERA_ID@", cam)
                        .replace("@SUB_URL@", sub).replace("@MAIN_URL@", main)
                        .replace("@WIDTH@", str(width)).replace("@HEIGHT@", str(height))
                        .replace("@HOOK@", hook))
            f.write(f"camera {cpath}\n")  # "These specifications should be the LAST lines"
    return path, dict(merged)


def run_motion(ctx, variant, cams, warmup, seconds, work):
    os.makedirs(os.path.join(work, "movies"), exist_ok=True)
    hook = os.path.join(work, "hook.sh")
    events_log = os.path.join(work, "events.log")
    with open(hook, "w") as f:
        f.write(f'#!/bin/sh\necho "$* $(date +%s.%N)" >> {events_log}\n')
    os.chmod(hook, 0o755)
    port = free_port()
    conf, settings = motion_conf(variant.split("-")[1], work, port, cams, hook,
                                 ctx.sub_width, ctx.sub_height)
    framerate = int(settings.get("framerate", 15))
    # Motion sees the whole picture as changed for ~6 s after connecting; the event that opens
    # then lasts until event_gap (+ post_capture) after the last motion. The window starts after
    # it unless --no-motion-settle.
    gap = float(settings.get("event_gap", 60)) + float(settings.get("post_capture", 0)) / framerate
    if ctx.args.motion_settle:
        warmup = max(warmup, 10 + gap)
    proc = subprocess.Popen(pinned(ctx.args.cpu, [ctx.args.motion, "-n", "-c", conf]),
                            stdout=open(os.path.join(work, "motion.out"), "w"),
                            stderr=subprocess.STDOUT)

    def status():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json", timeout=5) as r:
                return {c["id"]: c for c in json.loads(r.read())["camera_status"]}
        except (OSError, ValueError, KeyError):
            return {}

    try:
        end = time.time() + 30 + 5 * len(cams)  # Motion opens each stream twice, sub then main
        while time.time() < end:
            st = status()
            if len(st) >= len(cams) and all(c.get("fps", 0) > 0 for c in st.values()):
                break
            if proc.poll() is not None:
                raise RuntimeError(f"motion exited: see {work}/motion.log")
            time.sleep(1)
        time.sleep(warmup)
        align(ctx)
        first = status()
        fps = collections.defaultdict(list)

        def sample(_):
            for i, c in status().items():
                fps[i].append(c.get("fps", 0))

        log_size0 = os.path.getsize(f"{work}/motion.log") if os.path.exists(
            f"{work}/motion.log") else 0
        w = Window(lambda: [proc.pid], ctx.sim_pid).run(seconds, sample, every=2)
        last = status()
        t_stop = time.time()
    finally:
        code = stop_process(proc, 90)
    time.sleep(0.5)  # the end hooks run in children
    # Events: start/end hook lines; the end hook runs event_gap (+ post_capture) after the last
    # motion, so that is taken off; an event still open at the stop ends at the stop.
    starts, events = {}, collections.defaultdict(list)
    if os.path.exists(events_log):
        for raw in open(events_log):
            parts = raw.split()
            if len(parts) < 4:
                continue
            kind, num, ev, t = parts[0], int(parts[1]), parts[2], float(parts[-1])
            cam = cams[num - 1][0]
            if kind == "start":
                starts[(cam, ev)] = t
            elif kind == "end" and (cam, ev) in starts:
                s = starts.pop((cam, ev))
                e = t_stop if t >= t_stop - 0.2 else max(s, t - gap)
                events[cam].append((s, e))
    for (cam, _), s in starts.items():
        events[cam].append((s, t_stop))
    # Log lines during the window that mean lost or broken input.
    problems = collections.Counter()
    if os.path.exists(f"{work}/motion.log"):
        with open(f"{work}/motion.log", errors="replace") as f:
            f.seek(log_size0)
            for line in f:
                for pat in ("Reconnecting", "Ignoring packet with invalid data", "Error",
                            "lost", "BAD TIMING", "Unable"):
                    if pat in line:
                        problems[pat] += 1
    # Movies "%t-%v-%Y%m%d%H%M%S.mp4": grouped by camera and event (movie_max_time splits one
    # event's recording into several files, which must join without a missing frame).
    groups = collections.defaultdict(list)
    for name in sorted(os.listdir(os.path.join(work, "movies"))):
        m = re.match(r"(\d+)-(\d+)-(\d+)", name)
        if m and name.endswith((".mp4", ".mkv")) and 0 < int(m.group(1)) <= len(cams):
            groups[(cams[int(m.group(1)) - 1][0], int(m.group(2)))].append(
                (m.group(3), os.path.join(work, "movies", name)))
    movies = collections.defaultdict(list)
    for (cam, _), files in sorted(groups.items()):
        movies[cam].append([path for _, path in sorted(files)])
    per = {}
    for i, (cam, _, _) in enumerate(cams, 1):
        samples = fps.get(i, [])
        a, b = first.get(i, {}), last.get(i, {})
        p = {"framerate": framerate,
             "fps_analysed": statistics.median(samples) if samples else 0,
             "fps_min": min(samples) if samples else 0,
             "missing_frames": b.get("missing_frame_counter", 0) - a.get("missing_frame_counter", 0),
             "lost_connection": b.get("lost_connection", 0),
             "movies": sum(len(g) for g in movies.get(cam, []))}
        p["full_rate"] = (p["fps_analysed"] >= 0.9 * framerate and p["missing_frames"] == 0
                          and not p["lost_connection"])
        per[cam] = p
    return summary(variant, cams, w, {"per_camera": per, "events": events, "recordings": movies,
                                      "exit_code": code, "log_problems": dict(problems),
                                      "analysis_fps": framerate, "warmup_s": warmup,
                                      "settings": {k: settings[k] for k in sorted(settings)}})


def run_ffmpeg(ctx, cams, warmup, seconds, work, with_main=False):
    """One ffmpeg per camera decoding the sub stream; with_main: the same process also receives
    the main stream and passes it through to nothing (-c copy), the RTSP work a recorder has."""
    os.makedirs(work, exist_ok=True)
    procs = []
    for cam, main, sub in cams:
        prog = os.path.join(work, f"{cam}.progress")
        cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-progress", prog,
               "-stats_period", "1", "-threads", "1", "-rtsp_transport", "tcp", "-i", sub]
        if with_main:
            cmd += ["-rtsp_transport", "tcp", "-i", main, "-map", "0:v", "-f", "null", "-",
                    "-map", "1", "-c", "copy", "-f", "null", "-"]
        else:
            cmd += ["-f", "null", "-"]
        procs.append((cam, prog, subprocess.Popen(
            pinned(ctx.args.cpu, cmd),
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, f"{cam}.err"), "w"))))

    def frames(prog):
        """(frames decoded, when that progress block was written)"""
        try:
            with open(prog) as f:
                found = re.findall(r"^frame=(\d+)", f.read(), re.M)
            return (int(found[-1]) if found else 0), os.path.getmtime(prog)
        except OSError:
            return 0, time.time()

    try:
        end = time.time() + 30
        while time.time() < end and not all(frames(p)[0] > 0 for _, p, _ in procs):
            time.sleep(0.5)
        time.sleep(warmup)
        f0 = {cam: frames(p) for cam, p, _ in procs}
        w = Window(lambda: [p.pid for _, _, p in procs], ctx.sim_pid).run(seconds)
        f1 = {cam: frames(p) for cam, p, _ in procs}
    finally:
        for _, _, p in procs:
            stop_process(p, 10, signal.SIGINT)
    per = {}
    for cam, _, _ in cams:
        (n0, m0), (n1, m1) = f0[cam], f1[cam]
        fps = (n1 - n0) / (m1 - m0) if m1 > m0 else 0.0
        per[cam] = {"sub_fps_decoded": fps, "full_rate": fps >= 0.9 * ctx.sub_fps}
    return summary("ffmpeg-rec" if with_main else "ffmpeg", cams, w,
                   {"per_camera": per, "analysis_fps": ctx.sub_fps})


RUNNERS = {"matthan": run_matthan,
           "matthan-libav": lambda c, *a: run_matthan(c, *a, name="matthan-libav"),
           "matthan-base": lambda c, *a: run_matthan(c, *a, name="matthan-base"),
           "ffmpeg": run_ffmpeg,
           "ffmpeg-rec": lambda c, *a: run_ffmpeg(c, *a, with_main=True),
           "motion-default": lambda c, *a: run_motion(c, "motion-default", *a),
           "motion-tuned": lambda c, *a: run_motion(c, "motion-tuned", *a)}


def loop_frames(ctx, loops):
    """Frames in one simulator loop: from the truth's loop starts, else from --loop-s."""
    for starts in loops.values():
        if len(starts) >= 2:
            return int(round((starts[1] - starts[0]) * ctx.sub_fps))
    return int(round(ctx.args.loop_s * ctx.sub_fps / 50.0 + 0.4999)) * 50


def check_recordings(ctx, r):
    """Recording loss read off the video (frame-index strip) of what the system wrote."""
    if r["system"].startswith("ffmpeg"):
        return
    if not ctx.args.frame_check:
        r["recording_loss"] = None
        return
    modulo = loop_frames(ctx, read_truth(ctx.truth)[0])
    if ctx.main_height is None:
        first = next((f for gs in r.get("recordings", {}).values() for g in gs for f in g
                      if os.path.exists(f)), None)
        if first:
            ctx.main_width, ctx.main_height, _ = probe_stream(first)
    loss = {}
    for cam in r["per_camera"]:
        groups = [[f for f in g if os.path.exists(f)] for g in r.get("recordings", {}).get(cam, [])]
        loss[cam] = files_loss([g for g in groups if g], ctx.main_height, modulo)
    r["recording_loss_per_camera"] = loss
    r["recording_loss"] = {k: sum(v[k] for v in loss.values())
                           for k in ("files", "frames", "missing", "unreadable", "duplicate")}


def sim_drops(before, after):
    """{camera: main-stream pictures the simulator dropped between two `drops` answers}, only
    those with any; None when either answer is missing."""
    if before is None or after is None:
        return None
    return {c: n - before.get(c, 0) for c, n in after.items() if n > before.get(c, 0)}


def sustained(r):
    """(ok, why not)"""
    why = []
    if not r["per_camera"]:
        why.append("no camera measured")
    if r.get("processes_died"):
        why.append(f"{r['processes_died']} process(es) died")
    slow = [c for c, p in r["per_camera"].items() if not p["full_rate"]]
    if slow:
        # Which part fell short (medians over the slow cameras): analysis, dropping or decode.
        ps = [r["per_camera"][c] for c in slow]

        def med(key):
            vals = [p[key] for p in ps if p.get(key) is not None]
            return statistics.median(vals) if vals else None

        parts = [f"{k} {fmt(med(k), '{:.1f}')}" for k in
                 ("fps_analysed", "frames_dropped", "sub_fps_decoded") if med(k) is not None]
        why.append(f"{len(slow)} camera(s) below full rate"
                   + (f" (median {', '.join(parts)})" if parts else ""))
    if r["system"].startswith("matthan") and not r.get("recording_api_ok", False):
        why.append("recorder reports loss, errors or overflow")
    loss = r.get("recording_loss")
    if not r["system"].startswith("ffmpeg") and loss is not None:
        if loss["missing"]:
            why.append(f"{loss['missing']} recorded frame(s) missing")
        if not loss["files"]:
            # Motion records only during events: nothing recorded means nothing could be
            # checked, which is reported, not counted as a pass.
            why.append("nothing recorded")
    drops = r.get("sim_drops")
    if drops:
        # Pictures the simulator never sent (2 s unsent: it stalled, or the system read too
        # slowly): a loss on those cameras is not necessarily the system's, nor its pass.
        why.append("the simulator's sender dropped " + ", ".join(
            f"{n} main-stream picture(s) of {c}" for c, n in sorted(drops.items())))
    elif drops is None:
        why.append("the simulator did not say what it dropped")
    if r["system"].startswith("motion") and r.get("log_problems", {}).get("Reconnecting"):
        why.append(f"{r['log_problems']['Reconnecting']} reconnection(s)")
    return not why, "; ".join(why)


# ---------------------------------------------------------------------------------------------
# Report

def fmt(v, spec="{:.2f}", none="–"):
    return none if v is None else spec.format(v)


def fmt_loss(loss):
    if loss is None:
        return "–"
    if not loss.get("files"):
        return "nothing recorded"
    return f"{loss['missing']} / {loss['frames']}"


def report(ctx, results, sustain, out):
    by = {r["system"]: r for r in results}
    lines = [f"# bench/compare — {datetime.datetime.now().isoformat(timespec='seconds')}", "",
             f"Simulated cameras: sub {ctx.sub_width}x{ctx.sub_height} @ {ctx.sub_fps:g} fps, "
             f"main {ctx.main_width or '?'}x{ctx.main_height or '?'}; simulator "
             + (f"scenario {ctx.args.scenario}" if ctx.args.scenario else
                f"--seed {ctx.args.seed}, {ctx.args.loop_s:g} s loop")
             + f", on CPU {ctx.args.sim_cpu}; measured systems on CPU {ctx.args.cpu}.", ""]
    if results:
        lines += [
             f"{len(ctx.cams)} cameras, {ctx.args.seconds:g} s measured per system after "
             f"{ctx.args.warmup:g} s warm-up"
             + (", each window starting at a loop start" if ctx.args.align else "")
             + f"; slack {ctx.args.slack:g} s on event overlaps."
             + "".join(f" {r['label']}: {r['warmup_s']:g} s warm-up, past its start-up event."
                       for r in results if r.get("warmup_s", 0) > ctx.args.warmup), "",
             "| system | analysed fps (measured of configured) | CPU/camera (% of a core) | RSS/camera MB "
             "| wake-ups /camera/s | simulator CPU % "
             "| recall (person crossings) | false events /camera-hour | events /camera-hour "
             "| time in event | recording loss (frames missing / read) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        sc = r.get("score") or {}
        loss = r.get("recording_loss")
        recall = (f"{sc['recall']:.0%} ({sc['detected']}/{sc['crossings']})"
                  if sc.get("recall") is not None else "–")
        rates = [p.get("fps_analysed", p.get("sub_fps_decoded")) or 0
                 for p in r["per_camera"].values()]
        lines.append(
            f"| {r['label']} | {fmt(statistics.mean(rates) if rates else None, '{:.1f}')} "
            f"of {fmt(r.get('analysis_fps'), '{:g}')} "
            f"| {r['cpu_pct_per_camera']:.2f} | {r['rss_mb_per_camera']:.1f} "
            f"| {fmt(r.get('wakeups_per_camera_s'), '{:.0f}')} "
            f"| {fmt(r['sim_cpu_pct'])} | {recall} "
            f"| {fmt(sc.get('false_per_cam_hour'), '{:.1f}')} ({sc.get('false_events', '–')}) "
            f"| {fmt(sc.get('events_per_cam_hour'), '{:.1f}')} "
            f"| {fmt(sc.get('time_in_event_share'), '{:.0%}')} "
            f"| {fmt_loss(loss)} |")
    if ctx.args.rounds > 1 and results:
        lines += ["", f"CPU/camera and wake-ups are the medians of {ctx.args.rounds} rounds "
                  "taken in turn; every round's CPU/camera (%): "
                  + "; ".join(f"{r['label']} " + ", ".join(f"{c:.2f}" for c in r["cpu_rounds"])
                              for r in results if r.get("cpu_rounds"))
                  + ". Events and recordings are the first round's; the simulator's drops, every round's."]
    if results:
        lines += ["", "## Targets (ratios computed from the figures above, nothing assumed)", ""]
    m = by.get("matthan")

    def ratio(a, b):
        return a / b if a is not None and b else None

    def per_round(a, b):
        """The ratio round by round, when both systems ran every round."""
        ra, rb = a.get("cpu_rounds"), b.get("cpu_rounds")
        if not ra or not rb or len(ra) != len(rb):
            return ""
        return " (round by round: " + ", ".join(f"{x / y:.2f}×" for x, y in zip(ra, rb)) + ")"

    if m:
        mc, ms = m["cpu_pct_per_camera"], m.get("score") or {}
        for name in ("motion-default", "motion-tuned"):
            o = by.get(name)
            if not o:
                continue
            os_ = o.get("score") or {}
            rr = ratio(mc, o["cpu_pct_per_camera"])

            def better(a, b, lower=False):
                if a is None or b is None:
                    return "not measured"
                if a == b:
                    return "NOT met (equal)"
                return "met" if (a < b if lower else a > b) else "NOT met"

            lines.append(
                f"- CPU/camera Mắt Thần ÷ {o['label']}: {fmt(rr, '{:.2f}')}×{per_round(m, o)} "
                f"(target ≤ 0.5×: "
                f"{'met' if rr is not None and rr <= 0.5 else 'NOT met'}); recall "
                f"{fmt(ms.get('recall'), '{:.0%}')} vs {fmt(os_.get('recall'), '{:.0%}')} "
                f"(target better: {better(ms.get('recall'), os_.get('recall'))}); false "
                f"events/camera-hour {fmt(ms.get('false_per_cam_hour'), '{:.1f}')} vs "
                f"{fmt(os_.get('false_per_cam_hour'), '{:.1f}')} (target fewer: "
                f"{better(ms.get('false_per_cam_hour'), os_.get('false_per_cam_hour'), True)})")
            floor = by.get("ffmpeg")
            if rr is not None and rr > 0.5 and floor:
                # Analysis at 10 of 25 fps still decodes every picture (P-pictures reference
                # the one before), so no analysing system can go below decoding alone.
                half, fc = 0.5 * o["cpu_pct_per_camera"], floor["cpu_pct_per_camera"]
                lines.append(
                    f"  - 0.5× {o['label']} is {half:.2f} % per camera, "
                    + (f"below what ffmpeg spends only decoding the same sub stream "
                       f"({fc:.2f} %, {half / fc:.2f}× of it): out of reach of any system "
                       f"that decodes every sub-stream picture" if half < fc else
                       f"{half / fc:.2f}× the decode-only floor ({fc:.2f} %): Mắt Thần spends "
                       f"{mc - half:.2f} points per camera too much"))
        f = by.get("ffmpeg")
        if f:
            rr = ratio(mc, f["cpu_pct_per_camera"])
            lines.append(f"- CPU/camera Mắt Thần ÷ ffmpeg decode-only of the same sub stream: "
                         f"{fmt(rr, '{:.2f}')}×{per_round(m, f)} (target ≤ 1.15×: "
                         f"{'met' if rr is not None and rr <= 1.15 else 'NOT met'})")
        f = by.get("ffmpeg-rec")
        if f:
            rr = ratio(mc, f["cpu_pct_per_camera"])
            lines.append(f"- CPU/camera Mắt Thần ÷ ffmpeg decoding the same sub stream and "
                         f"receiving the main stream (the same RTSP work, no analysis, no "
                         f"files): {fmt(rr, '{:.2f}')}× (not a target of the issue; shown for "
                         f"like-for-like work)")
        f = by.get("matthan-base")
        if f:
            rr = ratio(mc, f["cpu_pct_per_camera"])
            lines.append(f"- CPU/camera Mắt Thần ÷ the same server built from "
                         f"{ctx.args.base_bin} (an A/B of a change): {fmt(rr, '{:.2f}')}×"
                         f"{per_round(m, f)}")
        f = by.get("matthan-libav")
        if f:
            rr = ratio(mc, f["cpu_pct_per_camera"])
            lines.append(f"- CPU/camera Mắt Thần ÷ the same server reading RTSP through "
                         f"libavformat (rtsp_client: libavformat): {fmt(rr, '{:.2f}')}× (what "
                         f"our own RTSP client saves; not a target)")
        lines.append(f"- Mắt Thần's own CPU per camera: {mc:.2f} % of a core (target ≤ 3 %: "
                     f"{'met' if mc <= 3 else 'NOT met'}); extrapolated to 64 cameras: "
                     f"{64 * mc / 100:.2f} cores of the 2 (linear extrapolation from "
                     f"{m['cameras']} cameras on one core, not measured at 64)")
    if results:
        def dropped(r):
            d = r.get("sim_drops")
            return "not answered" if d is None else str(sum(d.values()))
        lines.append("- Main-stream pictures the simulator's sender dropped (2 s unsent: the "
                     "simulator stalled or the system read too slowly) while each system ran: "
                     + ", ".join(f"{r['label']} {dropped(r)}" for r in results))
    if sustain:
        lines += ["", "## Largest number of cameras sustained (one core)", "",
                  "Sustained: every camera's sub stream analysed at its full configured rate "
                  "(≥ 90 %, nothing dropped, every sub frame decoded) and the main stream "
                  "recorded with no frame missing (frame-index strip of the recorded video; "
                  "Mắt Thần also: no lost frame, write error or queue overflow in /api/cameras; "
                  "Motion also: no reconnection in its log). ffmpeg only decodes (and receives). "
                  f"{ctx.args.sustain_seconds:g} s measured per step after "
                  f"{ctx.args.sustain_warmup:g} s warm-up.", "",
                  "| system | largest N sustained | steps (N: CPU/camera %, ok) | first failure |",
                  "|---|---|---|---|"]
        for name, steps in sustain.items():
            best = max((s["cameras"] for s in steps if s["sustained"]), default=0)
            detail = ", ".join(f"{s['cameras']}: {s['cpu_pct_per_camera']:.1f} "
                               f"{'ok' if s['sustained'] else 'FAIL'}" for s in steps)
            fail = next((f"N={s['cameras']}: {s['why_not']}" for s in steps
                         if not s["sustained"]), "none up to the last step")
            lines.append(f"| {LABEL[name]} | {best or 'none'} | {detail} | {fail} |")
    if not results:
        lines.append("")
        return finish(lines, out)
    lines += ["", "## Per camera", "",
              "| system | camera | analysed fps | analysis ms/frame | full rate "
              "| person crossings hit | events | false events | time in event s "
              "| recording missing / frames |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        per_score = r.get("score_per_camera") or {}
        loss = r.get("recording_loss_per_camera") or {}
        for cam, p in r["per_camera"].items():
            s = per_score.get(cam, {})
            lo = loss.get(cam)
            lines.append(
                f"| {r['label']} | {cam} | {fmt(p.get('fps_analysed', p.get('sub_fps_decoded')), '{:.1f}')} "
                f"| {fmt(p.get('analyse_ms'), '{:.3f}')} "
                f"| {'yes' if p.get('full_rate') else 'NO'} "
                f"| {s.get('detected', '–')}/{s.get('crossings', '–')} | {s.get('events', '–')} "
                f"| {s.get('false_events', '–')} | {s.get('time_in_event_s', '–')} "
                f"| {fmt_loss(lo)} |")
    lines += ["", "CPU and RSS per camera are the process totals divided by the cameras "
              "(one process serves all cameras, except ffmpeg: one process per camera)."]
    return finish(lines, out)


def finish(lines, out):
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text)
    return text


def plots(results, sustain, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = [r["label"] for r in results]
    if results:
        fig, ax = plt.subplots(1, 2, figsize=(12, 4.5))
        cpu = [r["cpu_pct_per_camera"] for r in results]
        ax[0].bar_label(ax[0].bar(names, cpu, color="#4477aa"), fmt="%.2f")
        ax[0].axhline(3, color="red", linestyle="--", linewidth=1, label="target 3 %")
        sim = [r["sim_cpu_pct"] / r["cameras"] if r["sim_cpu_pct"] is not None else 0
               for r in results]
        ax[0].plot(names, sim, "o", color="grey", label="simulator (CPU 0), per camera")
        ax[0].set_ylabel("% of one core per camera")
        n = max((len(r.get("cpu_rounds") or []) for r in results), default=0)
        ax[0].set_title("CPU per camera" + (f" (median of {n} rounds)" if n > 1 else ""))
        ax[0].set_ylim(0, max(cpu + [3]) * 1.35)  # room for the legend above the bars
        ax[0].legend(loc="upper left", fontsize=8)
        ax[1].bar_label(ax[1].bar(names, [r["rss_mb_per_camera"] for r in results],
                                  color="#66aa55"), fmt="%.1f")
        ax[1].set_ylim(0, max(r["rss_mb_per_camera"] for r in results) * 1.15)
        ax[1].set_ylabel("MB per camera")
        ax[1].set_title("RSS per camera")
        for a in ax:
            a.tick_params(axis="x", labelrotation=20, labelsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "cpu_rss.png"), dpi=110)
        plt.close(fig)

    scored = [r for r in results if r.get("score")]
    if scored:
        fig, ax = plt.subplots(1, 2, figsize=(12, 4.5))
        ax[0].bar_label(ax[0].bar([r["label"] for r in scored],
                                  [100 * (r["score"]["recall"] or 0) for r in scored],
                                  color="#4477aa"), fmt="%.0f %%")
        ax[0].set_ylim(0, 110)
        ax[0].set_ylabel("% of person crossings inside an event")
        ax[0].set_title("Recall")
        fp = [r["score"]["false_per_cam_hour"] or 0 for r in scored]
        ax[1].bar_label(ax[1].bar([r["label"] for r in scored], fp, color="#cc6677"),
                        fmt="%.1f")
        ax[1].set_ylim(0, max(fp + [1]) * 1.15)
        ax[1].set_ylabel("events overlapping no person or vehicle")
        ax[1].set_title("False events per camera-hour")
        for a in ax:
            a.tick_params(axis="x", labelrotation=20, labelsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "detection.png"), dpi=110)
        plt.close(fig)

    if sustain:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for name, steps in sustain.items():
            xs = [s["cameras"] for s in steps]
            ys = [s["cpu_pct_per_camera"] * s["cameras"] for s in steps]
            line, = ax.plot(xs, ys, "-o", label=LABEL[name])
            bad = [(x, y) for x, y, s in zip(xs, ys, steps) if not s["sustained"]]
            if bad:
                ax.plot(*zip(*bad), "x", color=line.get_color(), markersize=12)
        ax.axhline(100, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("cameras")
        ax.set_ylabel("% of one core (total)")
        ax.set_title("Cameras sustained on one core (x: not sustained)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out, "sustain.png"), dpi=110)
        plt.close(fig)


# ---------------------------------------------------------------------------------------------

class Ctx:
    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="build/release/bin", help="matthan and matthan-camsim")
    ap.add_argument("--base-bin", default=None,
                    help="another build of matthan, run as system matthan-base (A/B a change)")
    ap.add_argument("--motion", default=shutil.which("motion") or "/usr/bin/motion")
    ap.add_argument("--out", default=None)
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--cameras", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=300, help="measuring window per system")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the systems this many times, in turn (A B A B ...): CPU and "
                         "wake-ups are the median of the rounds, every round's CPU is printed "
                         "and each ratio is given per round; events and recordings are the "
                         "first round's")
    ap.add_argument("--warmup", type=float, default=30, help="after every camera is connected")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--loop-s", type=float, default=40, help="simulator loop length")
    ap.add_argument("--scenario", default=None, help="a camsim scenario YAML instead of --cameras")
    ap.add_argument("--cache", default=None, help="camsim scene cache")
    ap.add_argument("--render-timeout", type=float, default=3600)
    ap.add_argument("--no-motion-settle", dest="motion_settle", action="store_false",
                    help="do not stretch Motion's warm-up past its start-up event")
    ap.add_argument("--no-align", dest="align", action="store_false",
                    help="do not start each event window at a simulator loop start")
    ap.add_argument("--slack", type=float, default=1.0, help="s allowed around event overlaps")
    ap.add_argument("--cpu", type=int, default=1, help="CPU of the measured systems")
    ap.add_argument("--sim-cpu", type=int, default=0, help="CPU of the simulator")
    ap.add_argument("--no-frame-check", dest="frame_check", action="store_false",
                    help="skip reading recording loss off the recorded video")
    ap.add_argument("--no-compare", dest="compare", action="store_false",
                    help="only the --sustain steps")
    ap.add_argument("--sustain", action="store_true", help="find the largest N sustained")
    ap.add_argument("--steps", default="4,8,16,24,32,40,48")
    ap.add_argument("--sustain-seconds", type=float, default=60)
    ap.add_argument("--sustain-warmup", type=float, default=20)
    args = ap.parse_args()
    systems = [s for s in args.systems.split(",") if s]
    for s in systems:
        if s not in SYSTEMS:
            ap.error(f"unknown system {s} ({', '.join(SYSTEMS)})")
    for tool in ("taskset", "ffmpeg", "ffprobe"):
        if not shutil.which(tool):
            ap.error(f"{tool} is not installed")
    # A full disk stops Mắt Thần's recorder (storage alarm): the run would measure less work.
    where = os.path.dirname(os.path.abspath(args.out)) if args.out else tempfile.gettempdir()
    free_gb = shutil.disk_usage(where).free / 1e9
    if free_gb < 5:
        ap.error(f"only {free_gb:.1f} GB free where the systems record: free 5 GB or more")
    if "matthan-base" in systems and not (args.base_bin and os.path.exists(
            os.path.join(args.base_bin, "matthan"))):
        ap.error("matthan-base needs --base-bin DIR with a matthan binary")
    if any(s.startswith("motion") for s in systems) and not os.path.exists(args.motion):
        ap.error("motion is not installed (apt-get install -y motion)")
    if not os.path.exists(os.path.join(args.bin, "matthan-camsim")):
        ap.error(f"{args.bin}/matthan-camsim not found (build the release preset, or --bin)")
    if any(s.startswith("motion") for s in systems):
        running = subprocess.run(["pgrep", "-x", "motion"], capture_output=True, text=True).stdout
        if running.strip():
            log("WARNING: a motion daemon is already running (pid " + " ".join(running.split()) +
                "), e.g. the package's motion.service: it shares the CPUs and ports 8080/8081; "
                "stop it (systemctl disable --now motion) for a clean measurement")
    steps = sorted({int(x) for x in args.steps.split(",") if x}) if args.sustain else []
    out = os.path.abspath(args.out or tempfile.mkdtemp(prefix="matthan-compare-"))
    os.makedirs(out, exist_ok=True)
    log("output in", out)

    ctx = Ctx()
    ctx.args = args
    need = max([args.cameras if args.compare else 0] + steps)
    sim = Camsim(args, need, out)
    results, sustain = [], {}
    try:
        ctx.sim_pid = sim.pid
        ctx.cams = sim.cameras[:args.cameras]
        ctx.sub_width, ctx.sub_height, ctx.sub_fps = probe_stream(sim.cameras[0][2])
        ctx.main_width = ctx.main_height = None  # read off the first recording
        ctx.truth = sim.truth
        log(f"{len(sim.cameras)} cameras; sub {ctx.sub_width}x{ctx.sub_height} @ {ctx.sub_fps:g}"
            " fps")
        # Machines drift over minutes (the floor read 1.29 and 1.46 % an hour apart on one
        # machine), so rounds taken in turn pair each system with the others' nearby runs.
        rounds = {}
        for k in range(args.rounds if args.compare else 0):
            for name in systems:
                log(f"{LABEL[name]}: {len(ctx.cams)} cameras, {args.warmup:g} s warm-up, "
                    f"{args.seconds:g} s measured"
                    + (f", round {k + 1} of {args.rounds}" if args.rounds > 1 else ""))
                d0 = sim.drops()
                try:
                    r = RUNNERS[name](ctx, ctx.cams, args.warmup, args.seconds,
                                      os.path.join(out, name if k == 0 else f"{name}-r{k + 1}"))
                except Exception as e:
                    log(f"  {LABEL[name]} failed, left out of the table: {e}")
                    continue
                r["sim_drops"] = sim_drops(d0, sim.drops())
                rounds.setdefault(name, []).append(r)
                if len(rounds[name]) == 1:
                    results.append(r)
                ms = [p["analyse_ms"] for p in r["per_camera"].values() if p.get("analyse_ms")]
                log(f"  CPU/camera {r['cpu_pct_per_camera']:.2f} %, "
                    f"RSS/camera {r['rss_mb_per_camera']:.1f} MB, "
                    f"{r['wakeups_per_camera_s']:.0f} wake-ups/camera/s"
                    + (f", analysis {statistics.mean(ms):.3f} ms/frame" if ms else ""))
        for r in results if args.rounds > 1 else []:
            runs = rounds[r["system"]]
            r["cpu_rounds"] = [x["cpu_pct_per_camera"] for x in runs]
            r["cpu_pct_per_camera"] = statistics.median(r["cpu_rounds"])
            r["wakeups_per_camera_s"] = statistics.median(x["wakeups_per_camera_s"] for x in runs)
            # A picture the simulator dropped in any round is reported, not only the first's.
            drops = [x["sim_drops"] for x in runs]
            r["sim_drops"] = None if None in drops else {
                c: sum(d.get(c, 0) for d in drops) for c in set().union(*drops)}
        ctx.aligning = False  # the steps measure load, not detection
        for name in systems if steps else []:
            sustain[name] = []
            for n in steps:
                if n > len(sim.cameras):
                    break
                log(f"sustain {LABEL[name]}: {n} cameras")
                try:
                    d0 = sim.drops()
                    r = RUNNERS[name](ctx, sim.cameras[:n], args.sustain_warmup,
                                      args.sustain_seconds,
                                      os.path.join(out, f"sustain-{name}-{n}"))
                    r["sim_drops"] = sim_drops(d0, sim.drops())
                    check_recordings(ctx, r)
                    r["sustained"], r["why_not"] = sustained(r)
                    step = {k: r[k] for k in ("cameras", "cpu_pct_per_camera",
                                              "rss_mb_per_camera", "sustained", "why_not")}
                    step["recording_loss"] = r.get("recording_loss")
                    step["sim_drops"] = r.get("sim_drops")
                    step["full_rate"] = sum(p["full_rate"] for p in r["per_camera"].values())
                except Exception as e:  # a system that cannot even start at N is not sustained
                    log(f"  failed: {e}")
                    step = {"cameras": n, "cpu_pct_per_camera": float("nan"),
                            "rss_mb_per_camera": float("nan"), "sustained": False,
                            "why_not": f"failed: {e}"}
                sustain[name].append(step)
                log(f"  {'sustained' if step['sustained'] else 'NOT sustained: ' + step['why_not']}"
                    f"; CPU/camera {step['cpu_pct_per_camera']:.2f} %")
                if not step["sustained"]:
                    break
    finally:
        sim.close()
    # Scoring and recording checks after every run (the decoding does not disturb a window).
    if results:
        loops, spans = read_truth(sim.truth)
        for r in results:
            cams = [c for c, _, _ in ctx.cams]
            if not r["system"].startswith("ffmpeg"):
                r["score_per_camera"], r["score"] = score(r["events"], spans, cams, r["t0"],
                                                          r["t1"], args.slack)
            check_recordings(ctx, r)
    text = report(ctx, results, sustain, out)
    plots(results, sustain, out)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"args": vars(args), "results": results, "sustain": sustain}, f, indent=1,
                  default=str)
    print(text)
    log("wrote", os.path.join(out, "results.md"), "and the PNG plots beside it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
