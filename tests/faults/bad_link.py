#!/usr/bin/env python3
"""A bad link between a camera and the server, made with the kernel's own tools.

The simulator serving camera link-1 runs in its own network namespace behind a veth pair. Its
link gets, for `--impair` seconds: a bandwidth cap below what the camera sends (tc tbf, 1 Mbit/s
against ~1.8 Mbit/s), 5 % packet loss (nftables `numgen random`), and 200 ± 100 ms of delay with
jitter (an ordered relay on the host: this kernel has no sch_netem, see docs/design/hardening.md);
then a blackout of `--blackout` seconds (every packet dropped); then it is clean again. Camera
ctl-1 is served on a clean link by a second simulator.

What must hold (exit 0), the short form in CI and the same script with longer phases in bench/:
- link-1 is reported degraded (API `streams[].link`, the log) while the link is bad, goes
  offline in the blackout, reconnects by itself and is reported good again;
- what arrived was recorded: segments during the bad phase, every file decodes (without an
  error, except for frames the simulator itself sent incomplete while the link was bad), the
  blackout is indexed as a gap;
- events are detected on what arrives (the person crossing every 20 s);
- ctl-1 is untouched: online throughout, never degraded, no gap.
Needs root (network namespaces, tc, nft); exits 77 (skipped) without them.
"""
import argparse
import asyncio
import datetime
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

from common import checker, read_line, start_server

SKIP = 77


def sh(*cmd, check=True, ns=None):
    if ns:
        cmd = ("ip", "netns", "exec", ns) + cmd
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r


class Relay:
    """An ordered TCP relay that can hold every chunk 100-300 ms (delay with jitter, in order)."""

    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.delay = False
        self.loop = asyncio.new_event_loop()
        self.port = None
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait(10)

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)

        async def start():
            server = await asyncio.start_server(self._client, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    async def _pipe(self, reader, writer):
        queue = asyncio.Queue()

        async def release():
            while True:
                at, data = await queue.get()
                if data is None:
                    break
                wait = at - self.loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            writer.close()

        task = asyncio.ensure_future(release())
        last = 0.0
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                now = self.loop.time()
                at = now + random.uniform(0.1, 0.3) if self.delay else now
                last = max(last, at)  # TCP keeps order: a chunk never overtakes the one before
                await queue.put((last, data))
        except (ConnectionError, OSError):
            pass
        await queue.put((0, None))
        try:
            await task
        except (ConnectionError, OSError):
            pass

    async def _client(self, reader, writer):
        try:
            up_r, up_w = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_w), self._pipe(up_r, writer),
                             return_exceptions=True)








def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--out", default=None)
    ap.add_argument("--baseline", type=float, default=12)
    ap.add_argument("--impair", type=float, default=30)
    ap.add_argument("--blackout", type=float, default=30)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIP: needs root for network namespaces, tc and nft")
        return SKIP
    for tool in ("ip", "tc", "nft"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            print(f"SKIP: {tool} is not installed")
            return SKIP
    out = args.out or tempfile.mkdtemp(prefix="matthan-badlink-")
    os.makedirs(out, exist_ok=True)
    shutil.rmtree(f"{out}/var", ignore_errors=True)  # a rerun starts from an empty server
    tag = os.getpid() % 100000
    ns, host_if, cam_if = f"mtcam{tag}", f"mth{tag}", f"mtc{tag}"
    net = f"10.231.{tag % 250}"
    procs = []
    failures = []

    check = checker(failures)

    try:
        try:
            sh("ip", "netns", "add", ns)
        except RuntimeError as e:
            print(f"SKIP: cannot make a network namespace: {e}")
            return SKIP
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", cam_if)
        sh("ip", "link", "set", cam_if, "netns", ns)
        sh("ip", "addr", "add", f"{net}.1/30", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh("ip", "addr", "add", f"{net}.2/30", "dev", cam_if, ns=ns)
        sh("ip", "link", "set", cam_if, "up", ns=ns)
        sh("ip", "link", "set", "lo", "up", ns=ns)
        scenario = os.path.join(args.source, "tests/scenarios/badlink.yaml")
        cache = os.path.join(tempfile.gettempdir(), "matthan-it-cache")
        camsim = os.path.join(args.bin, "matthan-camsim")
        far = subprocess.Popen(["ip", "netns", "exec", ns, camsim, "--scenario", scenario,
                                "--address", f"{net}.2", "--cache", cache],
                               stdout=subprocess.PIPE, stderr=open(f"{out}/camsim-far.log", "w"),
                               text=True)
        procs.append(far)
        near = subprocess.Popen([camsim, "--scenario", scenario, "--cache", cache],
                                stdout=subprocess.PIPE, stderr=open(f"{out}/camsim-near.log", "w"),
                                text=True)
        procs.append(near)
        far_line = read_line(far, "CAMSIM ", 300)
        near_line = read_line(near, "CAMSIM ", 300)
        if not far_line or not near_line:
            raise RuntimeError("the simulators did not start: see " + out)
        far_port = int(re.search(r":(\d+)", far_line.split()[1].split("//")[1]).group(1))
        relay = Relay(f"{net}.2", far_port)
        far_base = f"rtsp://127.0.0.1:{relay.port}"
        near_base = near_line.split()[1]

        cfg = f"{out}/matthan.yaml"
        with open(cfg, "w") as f:
            f.write(f"node_id: badlink\nserver: {{listen: '127.0.0.1:0', data_dir: '{out}/var'}}\n"
                    "analytics: {zmq_endpoint: '', people: false}\n"
                    "recording: {segment_s: 10}\ncameras:\n"
                    f"  - {{id: link-1, hamlet: ap-1, main_url: '{far_base}/link-1/main',"
                    f" sub_url: '{far_base}/link-1/sub'}}\n"
                    f"  - {{id: ctl-1, hamlet: ap-2, main_url: '{near_base}/ctl-1/main',"
                    f" sub_url: '{near_base}/ctl-1/sub'}}\n")
        server, _, api = start_server(args.bin, cfg, out, procs, "Bad-Link-2026!", timeout=30)

        samples = []  # (phase, t, {camera: (state, {stream: quality}, issues)})

        def sample(phase):
            cams = {}
            for c in api.call("/api/cameras")["cameras"]:
                cams[c["id"]] = (c["state"], {s["kind"]: s["link"]["quality"] for s in c["streams"]},
                                 [s["link"]["issues"] for s in c["streams"] if s["link"]["issues"]],
                                 {s["kind"]: s["reconnects"] for s in c["streams"]},
                                 {s["kind"]: s.get("rtp_lost", 0) for s in c["streams"]},
                                 # link-1's main stream in, against what its recorder took
                                 # and skipped waiting for a keyframe: where footage went
                                 ([s.get("packets_in", 0) for s in c["streams"]
                                   if s["kind"] == "main"] or [0])[0],
                                 (c.get("recording") or {}).get("packets", 0),
                                 (c.get("recording") or {}).get("skipped_before_keyframe", 0))
            samples.append((phase, time.time(), cams))
            return cams

        def run_phase(phase, seconds):
            end = time.time() + seconds
            while time.time() < end:
                sample(phase)
                time.sleep(1)

        print(f"output in {out}", flush=True)
        run_phase("baseline", args.baseline)
        check(sample("baseline")["link-1"][1] == {"main": "good", "sub": "good"},
              "link-1 starts good on a clean link")
        # The bad link.
        t_bad = time.time()
        sh("tc", "qdisc", "add", "dev", cam_if, "root", "tbf", "rate", "1mbit", "burst", "32kbit",
           "latency", "400ms", ns=ns)
        sh("nft", "add", "table", "inet", "mt", ns=ns)
        sh("nft", "add", "chain", "inet", "mt", "out",
           "{ type filter hook output priority 0; }", ns=ns)
        sh("nft", "add", "chain", "inet", "mt", "in", "{ type filter hook input priority 0; }",
           ns=ns)
        sh("nft", "add", "rule", "inet", "mt", "out", "oifname", cam_if, "numgen", "random", "mod",
           "100", "<", "5", "drop", ns=ns)
        relay.delay = True
        run_phase("bad", args.impair)
        # The blackout: nothing in or out.
        t_black = time.time()
        sh("nft", "add", "rule", "inet", "mt", "out", "oifname", cam_if, "drop", ns=ns)
        sh("nft", "add", "rule", "inet", "mt", "in", "iifname", cam_if, "drop", ns=ns)
        run_phase("blackout", args.blackout)
        # Clean again.
        t_clean = time.time()
        sh("nft", "delete", "table", "inet", "mt", ns=ns)
        sh("tc", "qdisc", "del", "dev", cam_if, "root", ns=ns)
        relay.delay = False
        end = time.time() + 60
        recovered_at = None
        while time.time() < end:
            cams = sample("recovery")
            st, quality = cams["link-1"][:2]
            if st == "online" and all(q == "good" for q in quality.values()):
                recovered_at = time.time()
                break
            time.sleep(1)
        time.sleep(3)
        final = sample("end")
        iso = lambda t: urllib.parse.quote(
            datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat())
        link_api = api.call(f"/api/cameras/link-1/recordings?from={iso(t_bad)}&to={iso(t_black)}")
        server.send_signal(signal.SIGTERM)
        server.wait(30)

        # What the user would check.
        bad = [s[2]["link-1"] for s in samples if s[0] == "bad"]
        degraded = [c for c in bad if "degraded" in c[1].values()]
        check(len(degraded) > 0, "link-1 is reported degraded while its link is bad",
              f"{len(degraded)} of {len(bad)} samples")
        issues = [i for c in degraded for i in c[2]]
        check(bool(issues), "the API says what is wrong with the link", issues[-1] if issues else "")
        black = [s[2]["link-1"][0] for s in samples if s[0] == "blackout"]
        check("offline" in black, "link-1 goes offline in the blackout", ",".join(sorted(set(black))))
        check(recovered_at is not None, "link-1 reconnects by itself and its link is good again",
              f"after {recovered_at - t_clean:.1f} s" if recovered_at else "never")
        check(final["link-1"][3]["main"] >= 1, "the reconnect is counted", str(final["link-1"][3]))
        first_online = next(i for i, s in enumerate(samples) if s[2]["ctl-1"][0] == "online")
        ctl_states = {s[2]["ctl-1"][0] for s in samples[first_online:]}
        ctl_quality = {q for s in samples[first_online:] for q in s[2]["ctl-1"][1].values()}
        check(ctl_states == {"online"} and ctl_quality == {"good"},
              "ctl-1 on its clean link stays online and good throughout",
              f"states {ctl_states}, quality {ctl_quality}")
        log = open(f"{out}/var/matthan.log", encoding="utf-8").read()
        check("camera link-1 main: link degraded" in log or "camera link-1 sub: link degraded" in log,
              "the log says link-1's link degraded")

        db = sqlite3.connect(f"file:{out}/var/matthan.db?mode=ro", uri=True)
        us = lambda t: int(t * 1e6)
        segs = db.execute("SELECT camera_id, path, start_us, end_us, state FROM segment"
                          " WHERE stream = 'main' ORDER BY camera_id, start_us").fetchall()
        during_bad = [s for s in segs if s[0] == "link-1" and s[2] < us(t_black) and s[3] > us(t_bad)]
        covered = sum(min(s[3], us(t_black)) - max(s[2], us(t_bad)) for s in during_bad) / 1e6
        # Per second over the bad phase: main-stream packets in, recorder packets, skipped.
        flow = []
        for (ph, t, cams), (_, t_before, before) in zip(samples[1:], samples[:-1]):
            if ph == "bad" and "link-1" in cams and "link-1" in before:
                flow.append([round(t - t_bad, 1)] +
                            [cams["link-1"][k] - before["link-1"][k] for k in (5, 6, 7)] +
                            [t - t_before])
        # The recorder counts every packet it takes, skipped ones (waiting for a keyframe after
        # a cut) too: those are not in the recording.
        arrived = sum(f[1] for f in flow)
        recorded = sum(f[2] - f[3] for f in flow)
        # Every main-stream packet that arrived is in the recording; a few may be read at the
        # phase's last sample before the recorder's batch (100 ms) took them.
        all_kept = arrived > 0 and arrived - recorded <= 5
        # The recording spans the time something arrived; a TCP stall of several seconds under
        # netem (nothing in) is a hole in the recording too, and indexed as such.
        arrived_s = sum(f[4] for f in flow if f[1] > 0)
        check(covered > 0.5 * arrived_s, "what arrived over the bad link was recorded",
              f"{covered:.1f} s of the {arrived_s:.0f} s of the {args.impair:.0f} s bad phase"
              " in which packets arrived")
        if covered <= 0.5 * arrived_s or not all_kept:
            print("  link-1 main per sample in the bad phase (s, packets in, recorded, skipped):")
            print("  " + " ".join(f"{f[0]}:{f[1]}/{f[2]}/{f[3]}" for f in flow))
        check(all_kept, "every packet that arrived over the bad link was recorded",
              f"{recorded} of {arrived} main-stream packets")
        # Over the capped link the simulator itself drops RTP packets its TCP backlog cannot hold
        # (that is how 1.8 Mbit/s fits in 1), so a frame of link-1 sent while the link was bad
        # can arrive incomplete, and is recorded as it arrived. Such files must still open and
        # decode to the end; every other file (ctl-1, link-1 before and after) without an error.
        broken, damaged, damaged_paths = [], [], []
        for cam, path, start, end, _ in segs:
            impaired = cam == "link-1" and start < us(t_clean) and end > us(t_bad)
            r = subprocess.run(["ffmpeg", "-v", "error", "-xerror", "-i", path, "-f", "null", "-"],
                               capture_output=True, text=True)
            if r.returncode == 0:
                continue
            if impaired:
                lenient = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "null", "-"],
                                         capture_output=True, text=True)
                if lenient.returncode == 0:
                    damaged.append(os.path.basename(path))
                    damaged_paths.append(path)
                    continue
            broken.append(f"{path}: {r.stderr.strip()[:200]}")
        check(not broken, "every recorded file decodes (outside the bad phase: without an error)",
              "; ".join(broken[:3]) or f"{len(damaged)} file(s) of the bad phase hold a frame the "
              f"simulator sent incomplete: {', '.join(damaged[:5])}")
        # Frames that arrived with RTP packets missing are marked in the index (and the API):
        # every file that decodes only leniently has some, the clean camera none.
        marked = dict(db.execute("SELECT path, damaged_frames FROM segment"))
        unmarked = [os.path.basename(p) for p in damaged_paths if marked.get(p, 0) == 0]
        ctl_marked = sum(marked[s[1]] for s in segs if s[0] == "ctl-1")
        api_marked = sum(s.get("damaged_frames", 0) for s in link_api["segments"]
                         if s["stream"] == "main")
        rtp_lost = max(s[2]["link-1"][4]["main"] for s in samples)
        check(not unmarked and ctl_marked == 0 and (api_marked > 0 or rtp_lost == 0),
              "frames that arrived damaged are marked in the index",
              f"link-1 bad phase {api_marked} frame(s) in the API, {rtp_lost} RTP packet(s) lost;"
              f" unmarked files that decode only leniently: {unmarked[:3]}; ctl-1 {ctl_marked}")
        gaps = db.execute("SELECT start_us, end_us FROM gap WHERE camera_id = 'link-1' AND"
                          " stream = 'main' AND start_us < ?1 AND end_us > ?2",
                          (us(t_clean), us(t_black))).fetchall()
        gap_s = sum(min(e, us(t_clean)) - max(s, us(t_black)) for s, e in gaps) / 1e6
        around = ""
        if gap_s <= 0.8 * args.blackout:  # what was indexed around the blackout, to see why
            rel = lambda v: f"{(v - us(t_black)) / 1e6:+.1f}"
            rows = [f"segment {rel(s[2])}..{rel(s[3])} {s[4]}" for s in segs
                    if s[0] == "link-1" and s[3] > us(t_black) - 10e6 and s[2] < us(t_clean) + 30e6]
            rows += [f"gap {rel(a)}..{rel(b)} {why}" for a, b, why in db.execute(
                "SELECT start_us, end_us, reason FROM gap WHERE camera_id = 'link-1' AND"
                " stream = 'main' AND end_us > ?1", (us(t_black) - 10e6,))]
            around = f" (s from the blackout's start, which lasted {t_clean - t_black:.1f} s: " + \
                "; ".join(rows) + ")"
        check(gap_s > 0.8 * args.blackout, "the blackout is indexed as a gap",
              f"{gap_s:.1f} s of {args.blackout:.0f} s{around}")
        ctl_gaps = db.execute("SELECT COUNT(*) FROM gap WHERE camera_id = 'ctl-1' AND"
                              " reason != 'restart'").fetchone()[0]
        check(ctl_gaps == 0, "ctl-1 has no gap", f"{ctl_gaps} gap(s)")
        events = db.execute("SELECT COUNT(*) FROM event WHERE camera_id = 'link-1' AND"
                            " type IN ('motion', 'person') AND start_us BETWEEN ?1 AND ?2",
                            (us(t_bad), us(t_black))).fetchone()[0]
        check(events >= 1, "a person crossing is detected on what arrives over the bad link",
              f"{events} event(s) in the bad phase")
        with open(f"{out}/summary.json", "w") as f:
            json.dump({"degraded_samples": len(degraded), "bad_samples": len(bad),
                       "recorded_s_in_bad_phase": covered, "blackout_gap_s": gap_s,
                       "recovered_after_s": recovered_at - t_clean if recovered_at else None,
                       "events_in_bad_phase": events, "issues": issues[-3:],
                       "main_flow_in_bad_phase": flow}, f, indent=1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
    print(f"bad link: {len(failures)} check(s) failed" if failures else "bad link: all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
