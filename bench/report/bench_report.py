#!/usr/bin/env python3
"""The operation report at the scale of a large commune: 120 cameras, two years of history
(state changes, server restarts, daily rollups, gaps, 1 million events, exports, cases), built
by `matthan report` in every format. Reference in the same run: Python's sqlite3 reading the same
rows the report reads (events of the period, state changes, rollups) — the floor any report pays.

  python3 bench/report/bench_report.py --bin build/release/bin [--cameras 120] [--events 1000000]
"""
import argparse, os, random, shutil, sqlite3, subprocess, sys, tempfile, time
from datetime import datetime, timedelta, timezone

ap = argparse.ArgumentParser()
ap.add_argument("--bin", required=True)
ap.add_argument("--cameras", type=int, default=120)
ap.add_argument("--events", type=int, default=1_000_000)
ap.add_argument("--days", type=int, default=730)
args = ap.parse_args()
matthan = os.path.abspath(os.path.join(args.bin, "matthan"))
work = tempfile.mkdtemp(prefix="matthan-bench-report-")
TZ = timezone(timedelta(hours=7))
end_day = datetime(2026, 11, 1, tzinfo=TZ)
start_day = end_day - timedelta(days=args.days)
us = lambda d: int(d.timestamp() * 1_000_000)
A, B = us(start_day), us(end_day)

cams = [f"cam{i:03d}" for i in range(args.cameras)]
hamlets = [f"thon{i}" for i in range(12)]
with open(f"{work}/matthan.yaml", "w") as f:
    f.write(f"node_id: bench\nserver: {{listen: '127.0.0.1:0', data_dir: '{work}/var'}}\n")
    f.write("analytics: {zmq_endpoint: '', people: false}\norganisation:\n  communes:\n")
    f.write("    - code: '10105'\n      name: Xã Minh Phú\n      hamlets: [" +
            ", ".join(f"{{code: {h}, name: Thôn {h[4:]}}}" for h in hamlets) + "]\ncameras:\n")
    for i, c in enumerate(cams):
        f.write(f"  - {{id: {c}, commune: '10105', hamlet: {hamlets[i % 12]}, "
                f"main_url: 'rtsp://127.0.0.1:9/{c}'}}\n")
subprocess.run([matthan, "hold", "--list", "--config", f"{work}/matthan.yaml"], check=True,
               capture_output=True)
db = sqlite3.connect(f"{work}/var/matthan.db")
rng = random.Random(7)
t0 = time.time()
# Weekly restarts with an hour down.
runs, t = [], A - 86_400_000_000
while t < B:
    e = t + 7 * 86_400_000_000
    runs.append((f"r{len(runs)}", "bench", t, e, 1))
    t = e + 3_600_000_000
db.executemany("INSERT INTO server_run VALUES (?,?,?,?,?)", runs)
# Four state changes a day per camera (online, then a short drop), and a row at each run start.
states = []
for c in cams:
    for r in runs:
        states.append(("bench", c, "camera", "online", r[2], ""))
    t = A
    while t < B:
        t += rng.randint(3, 9) * 3_600_000_000
        states.append(("bench", c, "camera", "offline", t, ""))
        t += rng.randint(1, 30) * 60_000_000
        states.append(("bench", c, "camera", "online", t, ""))
db.executemany("INSERT INTO camera_state_change (node_id, camera_id, stream, state, start_us, error)"
               " VALUES (?,?,?,?,?,?)", states)
days = [(start_day + timedelta(days=d)).strftime("%Y-%m-%d") for d in range(args.days)]
db.executemany("INSERT INTO rollup_day (node_id, camera_id, stream, day, recorded_us, gap_us, gaps)"
               " VALUES ('bench', ?, 'main', ?, ?, ?, ?)",
               [(c, d, 80_000_000_000, 6_400_000_000, 4) for c in cams for d in days])
types = ["motion", "person", "tamper", "motion", "motion"]
reviews = ["new", "new", "confirmed", "false_alarm"]
db.executemany("INSERT INTO event (id, node_id, camera_id, type, start_us, end_us, review_state)"
               " VALUES (?, 'bench', ?, ?, ?, ?, ?)",
               ((f"E{i:08d}", cams[i % len(cams)], types[i % 5], s, s + 5_000_000, reviews[i % 4])
                for i, s in enumerate(sorted(rng.randrange(A, B) for _ in range(args.events)))))
db.executemany("INSERT INTO export_job (id, node_id, cameras, start_us, end_us, reason,"
               " requesting_unit, created_by, created_us, state) VALUES (?, 'bench', ?, 0, 1, 'r',"
               " ?, 'x', ?, 'done')",
               [(f"X{i}", f'["{cams[i % len(cams)]}"]', ["Công an xã", "Công an huyện"][i % 2],
                 rng.randrange(A, B)) for i in range(500)])
db.executemany("INSERT INTO case_file (id, node_id, commune, category, title, status,"
               " footage_helped, occurred_us, created_by, created_us, updated_us) VALUES"
               " (?, 'bench', '10105', ?, 't', 'closed', ?, ?, 'x', 0, 0)",
               [(f"C{i}", ["theft", "assault", "other"][i % 3], i % 2, rng.randrange(A, B))
                for i in range(300)])
db.commit()
print(f"seeded {len(cams)} cameras, {args.days} days: {len(states)} state changes, "
      f"{len(runs)} server runs, {args.events} events in {time.time() - t0:.1f} s")

# Reference: the rows the report reads, read by Python's sqlite3.
t0 = time.time()
db.execute("SELECT type, review_state, camera_id, start_us FROM event WHERE node_id = 'bench' AND"
           " start_us >= ? AND start_us < ?", (A, B)).fetchall()
for c in cams:
    db.execute("SELECT state, start_us FROM camera_state_change WHERE node_id = 'bench' AND"
               " camera_id = ? AND stream = 'camera' AND start_us < ? ORDER BY start_us", (c, B)).fetchall()
    db.execute("SELECT SUM(recorded_us) FROM rollup_day WHERE node_id = 'bench' AND camera_id = ?"
               " AND stream = 'main' AND day >= ? AND day <= ?", (c, days[0], days[-1])).fetchall()
ref = time.time() - t0
db.close()
print(f"reference (python sqlite3 reads the same rows): {ref:.2f} s")

first, last = days[0], days[-1]
for fmt in ["json", "csv", "xlsx", "html", "pdf"]:
    t0 = time.time()
    r = subprocess.run([matthan, "report", "--config", f"{work}/matthan.yaml", "--commune", "10105",
                        "--from", first, "--to", last, "--format", fmt, "--out", f"{work}/r.{fmt}"],
                       capture_output=True, text=True)
    took = time.time() - t0
    if r.returncode != 0:
        print(r.stderr)
        sys.exit(1)
    print(f"matthan report --format {fmt:4s}: {took:6.2f} s  ({took / ref:4.1f}x the reference),"
          f" {os.path.getsize(f'{work}/r.{fmt}') / 1024:.0f} KiB")
shutil.rmtree(work)
