#!/usr/bin/env python3
"""Records seeds for fuzz_rtp from the camera simulator: for each stream, the SDP it describes,
a NUL byte, and the first bytes it sends after PLAY over an interleaved RTSP connection (RTP and
RTCP exactly as a camera sends them). Usage: make_rtp_seeds.py BIN_DIR OUT_DIR [BYTES]"""
import os
import re
import socket
import subprocess
import sys

SCENARIO = os.path.join(os.path.dirname(__file__), "../../tests/scenarios/recording.yaml")


def request(sock, buf, method, url, cseq, extra=""):
    sock.sendall(f"{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\n{extra}\r\n".encode())
    while b"\r\n\r\n" not in buf:
        buf += sock.recv(65536)
    head, _, rest = buf.partition(b"\r\n\r\n")
    m = re.search(rb"Content-Length:\s*(\d+)", head, re.I)
    length = int(m.group(1)) if m else 0
    while len(rest) < length:
        rest += sock.recv(65536)
    return head.decode(), rest[:length], rest[length:]


def capture(url, size):
    host, port = re.match(r"rtsp://([^:/]+):(\d+)", url).groups()
    sock = socket.create_connection((host, int(port)), timeout=10)
    head, sdp, buf = request(sock, b"", "DESCRIBE", url, 1, "Accept: application/sdp\r\n")
    base = re.search(r"Content-Base:\s*(\S+)", head, re.I)
    base = base.group(1) if base else url + "/"
    video = sdp.decode().split("m=video", 1)[1]
    control = re.search(r"a=control:(\S+)", video).group(1)
    track = control if control.startswith("rtsp://") else base.rstrip("/") + "/" + control
    head, _, buf = request(sock, buf, "SETUP", track, 2,
                           "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n")
    session = re.search(r"Session:\s*([^;\r\n]+)", head).group(1)
    head, _, buf = request(sock, buf, "PLAY", url, 3, f"Session: {session}\r\nRange: npt=0-\r\n")
    data = bytearray(buf)
    while len(data) < size:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    return sdp + b"\0" + bytes(data[:size])


def main():
    bin_dir, out = sys.argv[1], sys.argv[2]
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 60000
    os.makedirs(out, exist_ok=True)
    sim = subprocess.Popen([os.path.join(bin_dir, "matthan-camsim"), "--scenario", SCENARIO],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        base = None
        for line in sim.stdout:
            if line.startswith("CAMSIM "):
                base = line.split()[1]
                break
        for cam in ("rec-h264", "rec-h265"):
            for stream in ("main", "sub"):
                seed = capture(f"{base}/{cam}/{stream}", size)
                path = os.path.join(out, f"{cam}-{stream}")
                with open(path, "wb") as f:
                    f.write(seed)
                print(path, len(seed))
    finally:
        sim.terminate()
        sim.wait()


if __name__ == "__main__":
    main()
