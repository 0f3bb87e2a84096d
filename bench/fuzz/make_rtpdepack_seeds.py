#!/usr/bin/env python3
"""Seeds for fuzz_rtpdepack from the fuzz_rtp seeds (recorded from the simulator): the RTP
packets of channel 0, each behind a 16-bit length, after a codec byte (0 H.264, 1 H.265).
Usage: make_rtpdepack_seeds.py [MAX_PACKETS]  (run from the repository root)."""
import glob
import os
import sys

limit = int(sys.argv[1]) if len(sys.argv) > 1 else 120
out_dir = "bench/fuzz/corpus/rtpdepack"
os.makedirs(out_dir, exist_ok=True)
for path in sorted(glob.glob("bench/fuzz/corpus/rtp/rec-*")):
    data = open(path, "rb").read()
    sdp, _, stream = data.partition(b"\0")
    out = bytearray([1 if b"H265" in sdp.upper() else 0])
    at, n = 0, 0
    while at + 4 <= len(stream) and n < limit:
        if stream[at] != 0x24:
            at += 1
            continue
        ch, ln = stream[at + 1], int.from_bytes(stream[at + 2:at + 4], "big")
        pkt = stream[at + 4:at + 4 + ln]
        at += 4 + ln
        if ch == 0 and len(pkt) == ln:
            out += ln.to_bytes(2, "big") + pkt
            n += 1
    name = os.path.join(out_dir, os.path.basename(path))
    open(name, "wb").write(out)
    print(f"{name}: {n} packets, {len(out)} bytes")
