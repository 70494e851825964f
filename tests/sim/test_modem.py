"""tern-modem between socat pty pairs, the test as the DTEs: AT commands, calls, data, faults."""
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import tty

from simrun import SOCAT, check, done, procs, pty_pair, scratch, stop_at_exit

TERN_MODEM = os.environ.get("TERN_MODEM", "tern-modem")
if not SOCAT:
    print("SKIP: socat is not installed (apt-get install socat; .ci/setup does)")
    sys.exit(77)  # meson: skipped

stop_at_exit()

d = scratch("modem")


class Dte:
    """The terminal side of one modem: what it has read so far sits in buf until taken."""

    def __init__(self, path):
        self.path = path
        self.open()

    def open(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.buf = bytearray()

    def close(self):
        os.close(self.fd)

    def _read(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if r:
            try:
                self.buf += os.read(self.fd, 65536)
            except BlockingIOError:
                pass

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        off = 0
        while off < len(data):
            _, w, _ = select.select([], [self.fd], [], 5)
            if w:
                off += os.write(self.fd, data[off:])

    def wait_for(self, text, timeout=5.0):
        if isinstance(text, str):
            text = text.encode()
        deadline = time.monotonic() + timeout
        while text not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._read(left)
        return True

    def read_for(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._read(deadline - time.monotonic())

    def take(self):
        b = bytes(self.buf)
        self.buf.clear()
        return b

    def at(self, command, want, timeout=5.0, what=None):
        """Sends a command line and checks that want comes back; returns all that came."""
        self.read_for(0.05)
        self.take()
        self.send(command)
        ok = self.wait_for(want, timeout)
        got = self.take()
        check(ok, f"{what or command!r}: want {want!r}, got {got!r}")
        return got


class Modem:
    """tern-modem on the given NUMBER=NAME1 pairs, its stderr collected line by line."""

    def __init__(self, args, modems):
        argv = [TERN_MODEM] + args + [f"{n}={os.path.join(d, p + '1')}" for n, p in modems]
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        procs.append(self.p)
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        check(self.wait_for("tern-modem: ready"), f"tern-modem {args} is ready: {self.lines}")

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


def transfer(flows, timeout=20):
    """Writes each flow's data to its writer while its reader reads, all flows at once.

    flows: [(writer Dte, data, reader Dte)]. Returns per flow: got, t0 (first write) and
    last (last byte received)."""
    st = [{"off": 0, "got": bytearray(), "t0": None, "last": None} for _ in flows]
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if all(len(s["got"]) >= len(f[1]) for f, s in zip(flows, st)):
            break
        wl = [f[0].fd for f, s in zip(flows, st) if s["off"] < len(f[1])]
        r, w, _ = select.select([f[2].fd for f in flows], wl, [], 0.05)
        for f, s in zip(flows, st):
            if f[0].fd in w:
                if s["t0"] is None:
                    s["t0"] = time.monotonic()
                try:
                    s["off"] += os.write(f[0].fd, f[1][s["off"]:s["off"] + 4096])
                except BlockingIOError:
                    pass
            if f[2].fd in r:
                try:
                    b = os.read(f[2].fd, 65536)
                except BlockingIOError:
                    b = b""
                if b:
                    s["last"] = time.monotonic()
                    s["got"] += b
    return st


def connect(caller, callee, number, modem, count):
    """caller dials number, callee answers with ATA; both see CONNECT."""
    caller.take()
    callee.take()
    caller.send(f"ATD{number}\r")
    check(callee.wait_for("\r\nRING\r\n"), f"RING at the called modem: {callee.buf!r}")
    callee.send("ATA\r")
    ok = caller.wait_for("\r\nCONNECT 19200\r\n") and callee.wait_for("\r\nCONNECT 19200\r\n")
    check(ok, f"CONNECT 19200 at both ends: {caller.buf!r} {callee.buf!r}")
    check(modem.wait_for("connected to", count=count), f"the connect is logged: {modem.lines}")
    caller.take()
    callee.take()


def escape(dte):
    """Guard time, +++, guard time: OK in command state."""
    time.sleep(1.2)
    dte.take()
    dte.send("+++")
    check(dte.wait_for("\r\nOK\r\n", 3), f"+++ with guard times gives OK: {dte.buf!r}")
    dte.take()


def read_stats(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        check(False, f"stats in {path}: {e}")
        return {"modems": [{}, {}, {}]}


pa, (a0, a1) = pty_pair(d, "A")
pb, (b0, b1) = pty_pair(d, "B")
pc, (c0, c1) = pty_pair(d, "C")
A, B, C = Dte(a0), Dte(b0), Dte(c0)
baud = 19200
stats = os.path.join(d, "stats.json")
three = [("100", "A"), ("200", "B"), ("300", "C")]

# 1. Commands, as V.250 words them.
modem = Modem(["--baud", str(baud), "--latency-ms", "50", "--ring-s", "0.5", "--train-ms",
               "200", "--stats", stats], three)
A.at("AT\r", b"AT\r\r\nOK\r\n", what="echo and OK")
A.at("at\r", b"\r\nOK\r\n")
A.at("ATE0\r", b"\r\nOK\r\n")
got = A.at("AT\r", b"\r\nOK\r\n")
check(got == b"\r\nOK\r\n", f"E0: no echo: {got!r}")
A.at("ATI\r", b"\r\ntern-modem 100\r\n\r\nOK\r\n")
A.at("ATV0\r", b"0\r")
A.at("ATJ\r", b"4\r", what="V0 ERROR")
A.at("ATV1S7=2S7?\r", b"\r\n002\r\n\r\nOK\r\n")
A.at("ATFROB\r", b"\r\nERROR\r\n")
A.at("ATS7=50\r", b"\r\nOK\r\n")
for dte in (B, C):
    dte.at("ATE0\r", b"\r\nOK\r\n")

# 2. A call: RING, ATA, CONNECT with the rate; data both ways, intact, at the line rate.
connect(A, B, "T200", modem, 1)
check(modem.wait_for("100 dials 200") and modem.wait_for("200 answers 100"),
      f"dial and answer are logged: {modem.lines}")
n = 4000
ab, ba = os.urandom(n), os.urandom(n)
st = transfer([(A, ab, B), (B, ba, A)])
for name, data, s in (("A->B", ab, st[0]), ("B->A", ba, st[1])):
    check(bytes(s["got"]) == data, f"{name}: {len(s['got'])} of {n} bytes, intact")
    if s["last"]:
        need = n * 10 / baud
        took = s["last"] - s["t0"]
        check(0.99 * need <= took <= 1.5 * need + 0.5,
              f"{name}: {n} bytes took {took:.3f} s at {baud} baud (the line needs {need:.3f})")

# 3. "+++" inside data is data; with the guard times it escapes, ATO goes back, ATH hangs up.
A.send("x+++y")
check(B.wait_for("x+++y"), f"+++ inside data arrives as data: {B.buf!r}")
A.read_for(1.5)
check(b"OK" not in A.buf, f"no escape without the guard times: {A.take()!r}")
escape(A)
A.at("ATO\r", b"\r\nCONNECT 19200\r\n")
B.take()
A.send("after ATO")
check(B.wait_for("after ATO"), f"data again after ATO: {B.buf!r}")
escape(A)
B.take()
A.at("ATH\r", b"\r\nOK\r\n")
check(B.wait_for("\r\nNO CARRIER\r\n"), f"the far end gets NO CARRIER: {B.buf!r}")
check(modem.wait_for("100 hangs up on 200") and
      modem.wait_for("200 carrier lost (far end hung up)"), f"hangup logged: {modem.lines}")
B.at("AT\r", b"\r\nOK\r\n", what="the far end is back in command state")

# 4. BUSY while in a call (auto-answer this time), and for oneself.
B.at("ATS0=1\r", b"\r\nOK\r\n")
A.take()
A.send("ATD200\r")
check(A.wait_for("\r\nCONNECT 19200\r\n") and B.wait_for("\r\nCONNECT 19200\r\n"),
      f"S0=1 answers by itself: {A.buf!r} {B.buf!r}")
C.at("ATD200\r", b"\r\nBUSY\r\n", what="a modem in a call is BUSY")
C.at("ATD300\r", b"\r\nBUSY\r\n", what="dialing oneself is BUSY")
check(modem.wait_for("300 BUSY"), f"BUSY is logged: {modem.lines}")

# 5. SIGUSR1 drops the carrier: both ends get NO CARRIER.
A.take()
B.take()
modem.p.send_signal(signal.SIGUSR1)
check(A.wait_for("\r\nNO CARRIER\r\n") and B.wait_for("\r\nNO CARRIER\r\n"),
      f"SIGUSR1: NO CARRIER at both ends: {A.buf!r} {B.buf!r}")
check(modem.wait_for("carrier lost (carrier dropped)", count=2), f"logged: {modem.lines}")

# 6. NO ANSWER after S7; the ringing stops. Unknown number: NO CARRIER after S7.
B.at("ATZ\r", b"\r\nOK\r\n")
B.at("ATE0\r", b"\r\nOK\r\n")
t0 = time.monotonic()
C.at("ATS7=2D200\r", b"\r\nNO ANSWER\r\n", timeout=5)
t = time.monotonic() - t0
check(1.9 <= t <= 3.5, f"NO ANSWER after S7=2: {t:.2f} s")
check(B.buf.count(b"RING") >= 3 or B.wait_for("RING"), f"the called modem rang: {B.buf!r}")
# A RING written just before NO ANSWER may still be in the pty: let it arrive, then listen.
B.read_for(0.3)
B.take()
B.read_for(1.2)
check(b"RING" not in B.buf, f"the ringing stopped: {B.buf!r}")
t0 = time.monotonic()
C.at("ATS7=1D999\r", b"\r\nNO CARRIER\r\n", timeout=4)
t = time.monotonic() - t0
check(0.9 <= t <= 2.5, f"an unknown number: NO CARRIER after S7=1: {t:.2f} s")
check(modem.wait_for("300 NO CARRIER (number not on the network)"), f"logged: {modem.lines}")

# 7. Any character while dialing aborts with NO CARRIER.
C.take()
C.send("ATD200\r")
check(B.wait_for("RING"), f"ringing: {B.buf!r}")
C.send(" ")
check(C.wait_for("\r\nNO CARRIER\r\n"), f"a character aborts the dial: {C.buf!r}")

# 8. A side that goes away comes back.
C.close()
pc.terminate()
pc.wait()
check(modem.wait_for(f"{c1}: closed", 5), f"the closed side is named: {modem.lines}")
pc, _ = pty_pair(d, "C")
check(modem.wait_for(f"{c1}: open again", 5), f"tern-modem reopens {c1}: {modem.lines}")
C.open()
C.at("AT\r", b"\r\nOK\r\n", what="AT after the reopen")

# 9. --stats on SIGTERM.
time.sleep(0.2)
check(modem.stop() == 0, "SIGTERM: exit 0")
s = read_stats(stats)
m = {e.get("number"): e for e in s.get("modems", [])}
a, b, c = m.get("100", {}), m.get("200", {}), m.get("300", {})
check(a.get("dials") == 2 and a.get("connects") == 2 and a.get("hangups") == 1,
      f"stats of 100: {a}")
check(a.get("bytes_to_line", 0) >= n and b.get("bytes_from_line", 0) >= n, f"bytes: {a} {b}")
check(a.get("line", {}).get("carried", 0) >= n, f"line counters of 100: {a.get('line')}")
check(b.get("rings", 0) >= 2 and b.get("connects") == 2, f"stats of 200: {b}")
check(b.get("no_carrier") == 2, f"200 lost carrier twice: {b}")
check(c.get("busy") == 2 and c.get("no_answer") == 1 and c.get("no_carrier") == 2,
      f"stats of 300: {c}")
check(0.5 < a.get("seconds_online", 0) < 60, f"seconds online: {a.get('seconds_online')}")
check(a.get("tty") == a1, f"tty named: {a.get('tty')}")

# 10. --calls scripts the outcomes; --carrier-s drops every connection.
two = [("100", "A"), ("200", "B")]
modem = Modem(["--baud", str(baud), "--train-ms", "100", "--carrier-s", "1", "--calls",
               "busy,no-answer,no-dialtone,no-carrier,error"], two)
A.at("ATE0S7=1\r", b"\r\nOK\r\n")
B.at("ATE0\r", b"\r\nOK\r\n")
for want in ["BUSY", "NO ANSWER", "NO DIALTONE", "NO CARRIER", "ERROR"]:
    A.at("ATD200\r", f"\r\n{want}\r\n".encode(), timeout=4, what=f"--calls: {want}")
connect(A, B, "200", modem, 1)
t0 = time.monotonic()
ok = A.wait_for("\r\nNO CARRIER\r\n", 4) and B.wait_for("\r\nNO CARRIER\r\n", 4)
t = time.monotonic() - t0
check(ok and t < 2.5, f"--carrier-s 1: NO CARRIER at both ends after {t:.2f} s")
check(modem.wait_for("carrier lost (--carrier-s)", count=2), f"logged: {modem.lines}")
check(modem.stop() == 0, "SIGTERM: exit 0")

# 11. Bad input: named, exit 2 for usage, 1 for a tty that cannot be opened.
ok_args = [f"100={a1}", f"200={b1}"]
for args, text in [
    (["--baud", "0"] + ok_args, "--baud 0"),
    (["--bits", "13"] + ok_args, "--bits 13"),
    (["--latency-ms", "-5"] + ok_args, "--latency-ms -5"),
    (["--ber", "1.5"] + ok_args, "--ber 1.5"),
    (["--ring-s", "0"] + ok_args, "--ring-s 0"),
    (["--train-ms", "x"] + ok_args, "--train-ms x"),
    (["--calls", "busy,maybe"] + ok_args, "--calls busy,maybe"),
    (["--carrier-s", "-1"] + ok_args, "--carrier-s -1"),
    (["--frobnicate"] + ok_args, "--frobnicate"),
    (["--stats"], "--stats"),
    ([a1], a1),
    ([f"1x={a1}"], "1x="),
    ([f"100={a1}", f"100={b1}"], "100 given twice"),
    ([], "NUMBER=TTY"),
]:
    p = subprocess.run([TERN_MODEM] + args, capture_output=True, text=True, timeout=10)
    check(p.returncode == 2 and text in p.stderr,
          f"{args}: exit {p.returncode} (want 2), stderr names '{text}': {p.stderr.strip()}")
missing = os.path.join(d, "no-such-tty")
p = subprocess.run([TERN_MODEM, f"100={a1}", f"200={missing}"], capture_output=True, text=True,
                   timeout=10)
check(p.returncode == 1 and missing in p.stderr and "No such file" in p.stderr,
      f"a tty that cannot be opened: exit {p.returncode}: {p.stderr.strip()}")
p = subprocess.run([TERN_MODEM, "--help"], capture_output=True, text=True, timeout=10)
check(p.returncode == 0 and "--calls LIST" in p.stdout, "--help says how")

for dte in (A, B, C):
    dte.close()
done()
