#!/usr/bin/python3
"""Goodput over a serial line (issue 5, "Benchmark"): two tern daemons over tern-line.

For each rate and bit error rate, a file crosses from one daemon to the other. The figure
is the file's bytes over the time from "link up" to its arrival, as a share of the line
rate (baud / 10 for 8N1). That rate is the same-run baseline: nothing can carry more than
the line. The share counts everything tern puts on the line: the bundle's head and
envelope, the session's records and MACs, the ARQ's frames and ACKs. A last run cuts the
line for 3 s in the middle of a file. "Resent" is what the sender put on the wire beyond
the clean run of the same file, set against the window the ARQ had.
"""
import argparse
import hashlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import ternlib  # noqa: E402
from ternlib import Daemon, Node, Scratch, SerialLine, serial_link  # noqa: E402


def status_peer(d):
    p = d.node.run(["status", "--json"])
    if p.returncode != 0:
        return {}
    peers = json.loads(p.stdout).get("peers", [])
    return peers[0] if peers else {}


def one(scratch, tag, baud, ber, size, cut_at=None):
    a = Node(scratch, f"a-{tag}", clock="trusted")
    b = Node(scratch, f"b-{tag}", clock="trusted")
    line = SerialLine(scratch, baud, ber=ber, latency_ms=20, seed=3, cut_len=3,
                      name=f"line-{tag}")
    serial_link(a, b, line, baud)
    src = os.path.join(scratch.path, f"file-{tag}.bin")
    with open(src, "wb") as f:
        block = hashlib.sha256(tag.encode()).digest()
        while f.tell() < size:
            block = hashlib.sha256(block).digest()
            f.write(block * 64)
        f.truncate(size)
    a.run(["send", b.name, "--file", src], check_rc=0)
    db = Daemon(b, listen=False)
    da = Daemon(a, listen=False)
    while "link up" not in da.text():
        time.sleep(0.01)
    t0 = time.monotonic()
    cut_done = cut_at is None
    at_cut = {}
    while not b.inbox():
        if not cut_done and time.monotonic() - t0 >= cut_at:
            at_cut = status_peer(da).get("serial", {})
            line.cut()
            cut_done = True
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    st = status_peer(da)
    da.stop()
    db.stop()
    line.close()
    st["at_cut"] = at_cut
    return elapsed, st


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60,
                    help="how long each file takes at the line rate")
    ap.add_argument("--bauds", default="115200,2400", help="the rates, the first also cut")
    args = ap.parse_args()
    ternlib.TERN = os.environ["TERN"]
    scratch = Scratch("bench-serial")
    rows = []
    try:
        for baud in [int(b) for b in args.bauds.split(",")]:
            rate = baud / 10
            size = int(rate * args.seconds)
            for ber in (0.0, 1e-5):
                elapsed, st = one(scratch, f"{baud}-{ber}", baud, ber, size)
                share = size / elapsed / rate
                s = st.get("serial", {})
                rows.append((baud, ber, size, elapsed, share, s, st.get("bytes_out", 0)))
                print(f"{baud:>6} baud  BER {ber:<6g} {size:>8} B in {elapsed:6.1f} s: "
                      f"{share:.3f} of the line rate ({size / elapsed:,.0f} of {rate:,.0f} B/s); "
                      f"payload {s.get('payload')}, window {s.get('window')}, "
                      f"{s.get('frames_resent')} of {s.get('frames_out')} frames resent",
                      flush=True)
        # The cut: the clean 115200 run's file once more, the line cut 3 s at mid-file.
        clean = rows[0]
        elapsed, st = one(scratch, "cut", clean[0], 0.0, clean[2], cut_at=clean[3] / 2)
        s, c = st.get("serial", {}), st["at_cut"]
        extra = st.get("bytes_out", 0) - clean[6]
        window = c.get("window", 0) * c.get("payload", 0)
        print(f"cut 3 s at {clean[0]} baud: {extra} bytes more on the wire than the clean run; "
              f"{s.get('frames_resent')} frames resent; at the cut the window was "
              f"{c.get('window')} frames of {c.get('payload')} B ({window} B): "
              f"{extra / window if window else 0:.2f} windows", flush=True)
    finally:
        scratch.close()


if __name__ == "__main__":
    main()
