"""What the fault scripts share: reading a child's announcement line, a logged-in API client, a
minimal WebSocket client for the live view."""
import base64
import http.cookiejar
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request


def read_line(proc, prefix, timeout):
    """The first line of proc's stdout that starts with prefix (LISTENING, CAMSIM), or None."""
    end = time.time() + timeout
    while time.time() < end:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(prefix):
            return line.strip()
    return None


def checker(failures):
    """check(ok, what, detail): prints ok/FAIL and keeps what failed in failures."""
    def check(ok, what, detail=""):
        print(("ok   " if ok else "FAIL ") + what + (f" ({detail})" if detail else ""), flush=True)
        if not ok:
            failures.append(what)
    return check


def start_camsim(bin_dir, scenario, out, procs, cpu=None, timeout=300):
    """The simulator on a scenario (pinned to cpu when given), added to procs: its base URL."""
    cmd = ([] if cpu is None else ["taskset", "-c", str(cpu)]) + [
        os.path.join(bin_dir, "matthan-camsim"), "--scenario", scenario, "--cache",
        os.path.join(tempfile.gettempdir(), "matthan-it-cache")]
    camsim = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                              stderr=open(f"{out}/camsim.log", "w"), text=True)
    procs.append(camsim)
    line = read_line(camsim, "CAMSIM ", timeout)
    if not line:
        raise RuntimeError("the simulator did not start: see " + out)
    return line.split()[1]


def start_server(bin_dir, cfg, out, procs, password, cpu=None, timeout=60):
    """An admin `tester` with password, then the server (pinned to cpu when given), added to
    procs: (process, base URL, logged-in Api)."""
    matthan = os.path.join(bin_dir, "matthan")
    subprocess.run([matthan, "user", "add", "tester", "--role", "admin", "--config", cfg],
                   input=password + "\n", text=True, check=True, capture_output=True)
    cmd = ([] if cpu is None else ["taskset", "-c", str(cpu)]) + [matthan, "run", "--config", cfg]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(f"{out}/server.err", "w"),
                              text=True)
    procs.append(server)
    listening = read_line(server, "LISTENING ", timeout)
    if not listening:
        raise RuntimeError("the server did not start: see " + out)
    url = listening.split()[1].rstrip("/")
    api = Api(url)
    api.login("tester", password)
    return server, url, api


class Api:
    """The server's JSON API with a session cookie and its CSRF token."""

    def __init__(self, base):
        self.base = base
        self.csrf = ""
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def call(self, path, body=None, timeout=10):
        req = urllib.request.Request(self.base + path, method="POST" if body else "GET",
                                     data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json",
                                              "X-CSRF-Token": self.csrf})
        with self.opener.open(req, timeout=timeout) as r:
            return json.loads(r.read() or b"{}")

    def text(self, path, timeout=10):
        req = urllib.request.Request(self.base + path, headers={"X-CSRF-Token": self.csrf})
        with self.opener.open(req, timeout=timeout) as r:
            return r.read().decode()

    def login(self, user, password):
        self.csrf = self.call("/api/login", {"username": user, "password": password}).get("csrf", "")

    def cookie(self):
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)


def live_viewer(port, path, cookie, stop, counts, rcvbuf=None, read_rate=None):
    """A minimal WebSocket client (RFC 6455): appends ("binary", time, size, first fragment's
    decode time or None) per binary message
    to counts (("refused", status line) when not let in) until stop is set. rcvbuf: a small
    receive buffer (set before connecting); read_rate: read at most that many bytes a second,
    like a phone on a link slower than the stream."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Origin: http://127.0.0.1:{port}\r\nCookie: {cookie}\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    head, buf = buf.split(b"\r\n\r\n", 1)
    if b" 101 " not in head.split(b"\r\n")[0]:
        counts.append(("refused", head.split(b"\r\n")[0].decode(), 0, None))
        return
    began, taken = time.time(), len(buf)

    def need(n):
        nonlocal buf, taken
        while len(buf) < n:
            if read_rate:  # the bytes read so far may not be ahead of the rate
                time.sleep(max(0.0, began + taken / read_rate - time.time()))
            chunk = s.recv(4096 if read_rate else 65536)
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
            taken += len(chunk)

    try:
        while not stop.is_set():
            need(2)
            opcode, n = buf[0] & 0x0F, buf[1] & 0x7F
            off = 2
            if n == 126:
                need(4)
                n, off = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                need(10)
                n, off = int.from_bytes(buf[2:10], "big"), 10
            need(off + n)
            if opcode == 2:
                # The first fragment's decode time (tfdt) names the message: every viewer of
                # a stream gets the same fragments from one muxer.
                payload = buf[off:off + n]
                at = payload.find(b"tfdt")
                tfdt = None
                if at >= 4 and len(payload) >= at + 16:
                    wide = payload[at + 4] == 1
                    tfdt = int.from_bytes(payload[at + 8:at + (16 if wide else 12)], "big")
                counts.append(("binary", time.time(), n, tfdt))
            buf = buf[off + n:]
            if opcode == 8:
                break
    except (ConnectionError, OSError):
        pass
    s.close()
