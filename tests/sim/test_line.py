"""tern-line between two socat pty pairs: intact bytes, the line rate, bit errors, cuts, reopen."""
import json
import os
import select
import signal
import subprocess
import threading
import time
import tty

from simrun import check, done, procs, pty_pair, scratch, stop_at_exit

TERN_LINE = os.environ.get("TERN_LINE", "tern-line")

stop_at_exit()

d = scratch("line")


def open_end(path):
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd)
    return fd


class Line:
    """tern-line between A1 and B1, its stderr collected line by line."""

    def __init__(self, args, a="A1", b="B1"):
        self.p = subprocess.Popen([TERN_LINE] + args + [os.path.join(d, a), os.path.join(d, b)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        procs.append(self.p)
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        check(self.wait_for("tern-line: ready"), f"tern-line {args} is ready: {self.lines}")

    def _read(self):
        for line in self.p.stderr:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def wait_for(self, text, timeout=10, count=1):
        with self.cond:
            return self.cond.wait_for(lambda: sum(text in e for e in self.lines) >= count,
                                      timeout)

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            return self.p.wait()


def transfer(flows, timeout=20, settle=None):
    """Writes each flow's data to its wfd while reading its rfd, all flows at once.

    flows: [(wfd, data, rfd)]. Ends when every flow got as much as it sent, at the timeout,
    or (settle seconds in, all written) after a second with no byte: for lossy lines.
    Returns per flow a dict: got, t0 (first write), first and last (byte received)."""
    st = [{"off": 0, "got": bytearray(), "t0": None, "first": None, "last": None}
          for _ in flows]
    start = last_rx = time.monotonic()
    while True:
        now = time.monotonic()
        if all(len(s["got"]) >= len(f[1]) for f, s in zip(flows, st)) or now - start > timeout:
            break
        written = all(s["off"] == len(f[1]) for f, s in zip(flows, st))
        if settle is not None and written and now - start >= settle and now - last_rx >= 1.0:
            break
        wl = [f[0] for f, s in zip(flows, st) if s["off"] < len(f[1])]
        r, w, _ = select.select([f[2] for f in flows], wl, [], 0.05)
        for f, s in zip(flows, st):
            if f[0] in w:
                if s["t0"] is None:
                    s["t0"] = time.monotonic()
                try:
                    s["off"] += os.write(f[0], f[1][s["off"]:s["off"] + 4096])
                except BlockingIOError:
                    pass
            if f[2] in r:
                try:
                    b = os.read(f[2], 65536)
                except BlockingIOError:
                    b = b""
                if b:
                    t = time.monotonic()
                    s["first"] = s["first"] or t
                    s["last"] = last_rx = t
                    s["got"] += b
    return st


def drain(fd):
    try:
        while os.read(fd, 65536):
            pass
    except (BlockingIOError, OSError):
        pass


def one_hole(sent, got):
    """The length of the one run of bytes missing from got, or None if got is not so made."""
    i = 0
    while i < len(got) and got[i] == sent[i]:
        i += 1
    lost = len(sent) - len(got)
    return lost if got[i:] == sent[i + lost:] else None


def bit_errors(a, b):
    return sum(bin(x ^ y).count("1") for x, y in zip(a, b))


def read_stats(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        check(False, f"stats in {path}: {e}")
        return {"a_to_b": {}, "b_to_a": {}}


pa, (a0, a1) = pty_pair(d, "A")
pb, (b0, b1) = pty_pair(d, "B")
fa, fb = open_end(a0), open_end(b0)

# 1. Clean line, both ways at once: intact, never faster than the rate, after the latency.
baud, n, latency = 115200, 20000, 0.2
line = Line(["--baud", str(baud), "--latency-ms", "200"])
ab, ba = os.urandom(n), os.urandom(n)
st = transfer([(fa, ab, fb), (fb, ba, fa)])
for name, data, s in (("A->B", ab, st[0]), ("B->A", ba, st[1])):
    check(bytes(s["got"]) == data, f"{name}: {len(s['got'])} of {n} bytes, intact")
    if s["last"]:
        need = n * 10 / baud + latency
        took = s["last"] - s["t0"]
        check(took >= 0.99 * need, f"{name}: {n} bytes took {took:.3f} s, the line needs {need:.3f}")
        check(s["first"] - s["t0"] >= 0.99 * latency,
              f"{name}: first byte after {s['first'] - s['t0']:.3f} s, latency {latency}")
if st[0]["last"] and st[1]["last"]:
    # Full duplex: neither direction waits for the other (socat -b 64, see docs/line.md).
    check(st[1]["first"] < st[0]["last"] and st[0]["first"] < st[1]["last"],
          "both directions flowed at the same time")
check(line.stop() == 0, "SIGTERM: exit 0")

# 2. Bit errors: some bytes differ, about as many bits as the BER says, the stats count them.
stats = os.path.join(d, "ber.json")
line = Line(["--baud", str(baud), "--ber", "1e-3", "--stats", stats, "--seed", "7"])
data = os.urandom(10000)
st = transfer([(fa, data, fb)])
got = bytes(st[0]["got"])
check(len(got) == len(data), f"BER: {len(got)} of {len(data)} bytes (BER drops nothing)")
flips = bit_errors(data, got)
# 80000 bits at 1e-3: 80 expected, sd 9.
check(30 <= flips <= 160, f"BER 1e-3 over 80000 bits flipped {flips}")
check(sum(x != y for x, y in zip(data, got)) > 0, "some bytes differ")
check(line.stop() == 0, "SIGTERM with --stats: exit 0")
s = read_stats(stats)
check(s["a_to_b"].get("flipped_bits") == flips,
      f"stats count the flipped bits: {s['a_to_b']} vs {flips}")
check(s["a_to_b"].get("carried") == len(data), f"stats count the bytes: {s['a_to_b']}")
check(s["b_to_a"].get("carried") == 0, f"nothing went B->A: {s['b_to_a']}")

# 3. A scheduled cut loses one run of bytes, named on stderr.
stats = os.path.join(d, "cut.json")
line = Line(["--baud", "19200", "--cut", "0.5:0.5", "--stats", stats])
data = os.urandom(4000)
st = transfer([(fa, data, fb)], settle=2.3)
got = bytes(st[0]["got"])
check(line.wait_for("cut start (--cut 0.5:0.5)", 1) and line.wait_for("cut end", 1),
      f"the cut is named on stderr: {line.lines}")
check(line.stop() == 0, "SIGTERM after a cut: exit 0")
s = read_stats(stats)["a_to_b"]
hole = one_hole(data, got)
check(hole is not None and hole == s.get("cut_lost"),
      f"--cut: {len(got)} of {len(data)} bytes came, one run missing ({hole}), stats {s}")
# 0.5 s at 1920 bytes/s is 960 bytes; a slow machine may feed the line less.
check(s.get("cut_lost", 0) >= 200, f"the cut lost bytes: {s}")
drain(fb)

# 4. SIGUSR1 cuts now, for --cut-len.
stats = os.path.join(d, "usr1.json")
line = Line(["--baud", "19200", "--cut-len", "0.4", "--stats", stats])
data = os.urandom(4000)
timer = threading.Timer(0.6, lambda: line.p.send_signal(signal.SIGUSR1))
timer.start()
st = transfer([(fa, data, fb)], settle=2.3)
timer.join()
got = bytes(st[0]["got"])
check(line.wait_for("cut start (SIGUSR1)", 1) and line.wait_for("cut end", 1),
      f"the SIGUSR1 cut is named on stderr: {line.lines}")
check(line.stop() == 0, "SIGTERM after SIGUSR1: exit 0")
s = read_stats(stats)["a_to_b"]
hole = one_hole(data, got)
check(hole is not None and hole == s.get("cut_lost") and hole > 0,
      f"SIGUSR1: {len(got)} of {len(data)} bytes came, one run missing ({hole}), stats {s}")
drain(fb)

# 5. A side goes away and comes back: the line goes on.
line = Line(["--baud", str(baud)])
st = transfer([(fa, b"hello", fb)], timeout=5)
check(bytes(st[0]["got"]) == b"hello", "hello A->B")
# A daemon that closes and reopens its end (socat stays).
os.close(fa)
fa = open_end(a0)
st = transfer([(fa, b"again", fb), (fb, b"back", fa)], timeout=5)
check(bytes(st[0]["got"]) == b"again" and bytes(st[1]["got"]) == b"back",
      "after reopening A0 both ways work")
# The pty pair itself goes (EIO, end of file on A1) and a new one takes its place.
os.close(fa)
pa.terminate()
pa.wait()
check(line.wait_for(f"{a1}: closed", 5), f"the closed side is named: {line.lines}")
os.write(fb, b"into the void")
time.sleep(0.5)
check(line.p.poll() is None, "tern-line keeps running with a side closed")
pa, _ = pty_pair(d, "A")
check(line.wait_for(f"{a1}: open again", 5), f"tern-line reopens {a1}: {line.lines}")
fa = open_end(a0)
ab, ba = os.urandom(3000), os.urandom(3000)
st = transfer([(fa, ab, fb), (fb, ba, fa)], timeout=10)
check(bytes(st[0]["got"]) == ab, f"A->B after the reopen: {len(st[0]['got'])} of 3000")
check(bytes(st[1]["got"]) == ba, f"B->A after the reopen: {len(st[1]['got'])} of 3000")
check(line.stop() == 0, "SIGTERM after a reopen: exit 0")

# 6. Bad input: named, exit 2 for usage, 1 for a path that cannot be opened.
for args, text in [
    (["--baud", "0"], "--baud 0"),
    (["--baud", "fast"], "--baud fast"),
    (["--bits", "13"], "--bits 13"),
    (["--latency-ms", "-5"], "--latency-ms -5"),
    (["--ber", "1.5"], "--ber 1.5"),
    (["--drop", "nan"], "--drop nan"),
    (["--cut", "3"], "--cut 3"),
    (["--cut", "1:0"], "--cut 1:0"),
    (["--cut-len", "0"], "--cut-len 0"),
    (["--seed", "-1"], "--seed -1"),
    (["--frobnicate"], "--frobnicate"),
    (["--baud"], "--baud"),
    (["--baud", "4000000", "--latency-ms", "600000"], "--baud 4000000"),
]:
    p = subprocess.run([TERN_LINE] + args + [a1, b1], capture_output=True, text=True, timeout=10)
    check(p.returncode == 2 and text in p.stderr,
          f"{args}: exit {p.returncode} (want 2), stderr names '{text}': {p.stderr.strip()}")
p = subprocess.run([TERN_LINE, a1], capture_output=True, text=True, timeout=10)
check(p.returncode == 2 and "usage" in p.stderr, f"one path is a usage error: {p.stderr}")
missing = os.path.join(d, "no-such-tty")
p = subprocess.run([TERN_LINE, missing, b1], capture_output=True, text=True, timeout=10)
check(p.returncode == 1 and missing in p.stderr and "No such file" in p.stderr,
      f"a path that cannot be opened: exit {p.returncode}: {p.stderr.strip()}")
p = subprocess.run([TERN_LINE, "--help"], capture_output=True, text=True, timeout=10)
check(p.returncode == 0 and "--cut START:LEN" in p.stdout, "--help says how")

os.close(fa)
os.close(fb)
done()
