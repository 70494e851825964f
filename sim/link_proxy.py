#!/usr/bin/python3
"""A TCP link proxy for sim/emulate.py: forwards each connection to one address, adding a
one-way delay, loss as retransmission stalls, and cuts, so that two real daemons see a long,
lossy link between them (netem is missing on some kernels; the rate is tc tbf's job).

    link_proxy.py --listen HOST:PORT --connect HOST:PORT [--latency-ms MS] [--loss P]
                  [--stall-ms MS] [--cut-per-mib P] [--seed N] [--stats FILE]

What the link does to the bytes of each direction (docs/sim.md, "Emulation with real
processes"):
- delay: every chunk read leaves the proxy MS milliseconds after it arrived, in order;
- loss: each 1,448-byte segment of a chunk is lost with probability P. TCP repairs a loss,
  so what the application sees is a stall: a chunk with a lost segment, and every chunk
  behind it, leaves STALL ms later (default: 200 ms, Linux's least retransmission timeout,
  or two latencies if more). One stall per chunk, however many of its segments were lost
  (SACK repairs them in one round);
- cut: the connection is cut (both sides get a reset, what was in the proxy is lost) with
  probability P per MiB carried, either way: a link that breaks in the middle of a
  transfer.

SIGUSR1 cuts every connection now. SIGTERM or SIGINT writes the counters to --stats (JSON)
and exits 0. "link-proxy: ready" on stderr says it listens. Standard library only.
"""
import argparse
import collections
import json
import math
import os
import random
import selectors
import signal
import socket
import struct
import sys
import time

SEGMENT = 1448
CHUNK = 16384
# What a direction may hold in the proxy before it stops reading: the delay line is fed at
# the link's rate (tbf sits before it), so this bounds rate x latency, not the sender.
QUEUE_CAP = 4 << 20


def parse_addr(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"'{text}' is not HOST:PORT")
    return host.strip("[]"), int(port)


class Direction:
    """The bytes from src to dst: a FIFO of (due time, data)."""

    def __init__(self, src, dst, key):
        self.src, self.dst, self.key = src, dst, key
        self.q = collections.deque()
        self.queued = 0
        self.last_due = 0.0
        self.eof = False
        self.shut = False


class Pair:
    def __init__(self, client, server, peer):
        self.client, self.server, self.peer = client, server, peer
        self.up = Direction(client, server, "up")
        self.down = Direction(server, client, "down")
        self.closed = False


class Proxy:
    def __init__(self, args):
        self.a = args
        self.rng = random.Random(args.seed)
        self.latency = args.latency_ms / 1000.0
        self.stall = (args.stall_ms if args.stall_ms is not None
                      else max(200.0, 2 * args.latency_ms)) / 1000.0
        self.sel = selectors.DefaultSelector()
        self.pairs = []
        self.stats = {"connections": 0, "refused_upstream": 0, "bytes_up": 0,
                      "bytes_down": 0, "stalls": 0, "cuts": 0, "cuts_requested": 0,
                      "queue_max": 0, "peers": []}
        self.lsock = socket.socket(socket.AF_INET6 if ":" in args.listen[0] else socket.AF_INET)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(args.listen)
        self.lsock.listen(64)
        self.lsock.setblocking(False)
        self.sel.register(self.lsock, selectors.EVENT_READ, None)
        self.stop = False
        self.cut_now = False

    # ---- connections --------------------------------------------------------------

    def accept(self):
        try:
            c, peer = self.lsock.accept()
        except OSError:
            return
        try:
            s = socket.create_connection(self.a.connect, timeout=5)
        except OSError:
            self.stats["refused_upstream"] += 1
            self.reset(c)
            return
        for x in (c, s):
            x.setblocking(False)
            x.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        p = Pair(c, s, peer)
        self.pairs.append(p)
        self.stats["connections"] += 1
        if f"{peer[0]}" not in self.stats["peers"]:
            self.stats["peers"].append(f"{peer[0]}")
        self.update(p)

    @staticmethod
    def reset(s):
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        s.close()

    def close(self, p, cut=False):
        if p.closed:
            return
        p.closed = True
        for s in (p.client, p.server):
            try:
                self.sel.unregister(s)
            except (KeyError, ValueError):
                pass
            self.reset(s)
        self.pairs.remove(p)
        if cut:
            self.stats["cuts"] += 1

    def update(self, p):
        """Registers each socket for what its pair needs now."""
        for s, rd, wr in ((p.client, p.up, p.down), (p.server, p.down, p.up)):
            ev = 0
            if not rd.eof and rd.queued < QUEUE_CAP:
                ev |= selectors.EVENT_READ
            if wr.q and wr.q[0][0] <= time.monotonic():
                ev |= selectors.EVENT_WRITE
            try:
                key = self.sel.get_key(s)
            except KeyError:
                key = None
            if ev and key is None:
                self.sel.register(s, ev, p)
            elif ev and key.events != ev:
                self.sel.modify(s, ev, p)
            elif not ev and key is not None:
                self.sel.unregister(s)

    # ---- the link -----------------------------------------------------------------

    def on_read(self, p, d):
        try:
            data = d.src.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close(p)
            return
        now = time.monotonic()
        if not data:
            d.eof = True
            self.flush(p, d)
            return
        self.stats["bytes_" + d.key] += len(data)
        if self.a.cut_per_mib > 0:
            keep = (1.0 - self.a.cut_per_mib) ** (len(data) / 1048576.0)
            if self.rng.random() >= keep:
                self.close(p, cut=True)
                return
        due = max(now + self.latency, d.last_due)
        if self.a.loss > 0:
            segs = math.ceil(len(data) / SEGMENT)
            if self.rng.random() >= (1.0 - self.a.loss) ** segs:
                due += self.stall
                self.stats["stalls"] += 1
        d.last_due = due
        d.q.append((due, data))
        d.queued += len(data)
        self.stats["queue_max"] = max(self.stats["queue_max"], d.queued)

    def flush(self, p, d):
        """Writes what is due of d; half-closes dst once src ended and all is written."""
        now = time.monotonic()
        while d.q and d.q[0][0] <= now:
            due, data = d.q[0]
            try:
                n = d.dst.send(data)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close(p)
                return
            d.queued -= n
            if n < len(data):
                d.q[0] = (due, data[n:])
                return
            d.q.popleft()
        if d.eof and not d.q and not d.shut:
            d.shut = True
            try:
                d.dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            if p.up.shut and p.down.shut:
                self.close(p)

    def next_due(self):
        dues = [d.q[0][0] for p in self.pairs for d in (p.up, p.down) if d.q]
        return min(dues) if dues else None

    def run(self):
        print("link-proxy: ready", file=sys.stderr, flush=True)
        while not self.stop:
            if self.cut_now:
                self.cut_now = False
                for p in list(self.pairs):
                    self.stats["cuts_requested"] += 1
                    self.close(p)
            for p in list(self.pairs):
                if not p.closed:
                    self.update(p)
            nd = self.next_due()
            timeout = 0.5 if nd is None else max(0.0, min(0.5, nd - time.monotonic()))
            for key, ev in self.sel.select(timeout):
                if key.data is None:
                    self.accept()
                    continue
                p = key.data
                if p.closed:
                    continue
                s = key.fileobj
                rd, wr = (p.up, p.down) if s is p.client else (p.down, p.up)
                if ev & selectors.EVENT_READ:
                    self.on_read(p, rd)
                if not p.closed and ev & selectors.EVENT_WRITE:
                    self.flush(p, wr)
            for p in list(self.pairs):
                for d in (p.up, p.down):
                    if not p.closed and d.q and d.q[0][0] <= time.monotonic():
                        self.flush(p, d)

    def write_stats(self):
        if not self.a.stats:
            return
        tmp = self.a.stats + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.stats, f)
        os.replace(tmp, self.a.stats)


def probability(text):
    v = float(text)
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a probability in [0, 1)")
    return v


def main():
    ap = argparse.ArgumentParser(prog="link_proxy.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", type=parse_addr, required=True)
    ap.add_argument("--connect", type=parse_addr, required=True)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--loss", type=probability, default=0.0)
    ap.add_argument("--stall-ms", type=float, default=None)
    ap.add_argument("--cut-per-mib", type=probability, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--stats")
    args = ap.parse_args()
    try:
        proxy = Proxy(args)
    except OSError as e:
        print(f"link-proxy: listen on {args.listen[0]}:{args.listen[1]}: {e.strerror}",
              file=sys.stderr)
        sys.exit(1)

    def on_stop(*_):
        proxy.stop = True

    def on_cut(*_):
        proxy.cut_now = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGUSR1, on_cut)
    try:
        proxy.run()
    finally:
        proxy.write_stats()


if __name__ == "__main__":
    main()
