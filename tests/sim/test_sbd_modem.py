"""tern-sbd-modem on a socat pty pair, the test as the DTE: SBDWB, sessions, MO/MT files."""
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

TERN_SBD_MODEM = os.environ.get("TERN_SBD_MODEM", "tern-sbd-modem")
if not SOCAT:
    print("skipped: socat is not installed (Debian: socat; bash .ci/setup installs it)")
    sys.exit(77)

IMEI = "300234010999990"
stop_at_exit()

d = scratch("sbd")
mo_dir, mt_dir = os.path.join(d, "mo"), os.path.join(d, "mt")
os.mkdir(mo_dir)
os.mkdir(mt_dir)


class Modem:
    """tern-sbd-modem on P1, its stderr collected line by line."""

    def __init__(self, args, tty_path):
        self.p = subprocess.Popen([TERN_SBD_MODEM] + args + [tty_path],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        procs.append(self.p)
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        check(self.wait_for("tern-sbd-modem: ready"),
              f"tern-sbd-modem {args} is ready: {self.lines}")

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


class Dte:
    """The far end of the pty: what the daemon would do, byte by byte."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.buf = bytearray()

    def close(self):
        os.close(self.fd)

    def send(self, data):
        off = 0
        while off < len(data):
            select.select([], [self.fd], [], 1)
            try:
                off += os.write(self.fd, data[off:])
            except BlockingIOError:
                pass

    def _fill(self, deadline):
        r, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
        if r:
            try:
                self.buf += os.read(self.fd, 4096)
            except BlockingIOError:
                pass

    def until(self, pattern, timeout=5):
        """Everything up to and including pattern, or None at the timeout (kept in buf)."""
        deadline = time.monotonic() + timeout
        while pattern not in self.buf and time.monotonic() < deadline:
            self._fill(deadline)
        i = self.buf.find(pattern)
        if i < 0:
            return None
        out = bytes(self.buf[:i + len(pattern)])
        del self.buf[:i + len(pattern)]
        return out

    def exactly(self, n, timeout=5):
        deadline = time.monotonic() + timeout
        while len(self.buf) < n and time.monotonic() < deadline:
            self._fill(deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def quiet(self, seconds):
        """What came within seconds (b"" if nothing): for what must not come."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._fill(deadline)
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def command(self, line, timeout=5):
        """Sends an AT line (echo off) and returns the response up to its final result."""
        self.send(line.encode() + b"\r")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for end in (b"\r\nOK\r\n", b"\r\nERROR\r\n"):
                if self.buf.endswith(end):
                    out = bytes(self.buf)
                    self.buf.clear()
                    return out
            self._fill(deadline)
        out = bytes(self.buf)
        self.buf.clear()
        return out


def checksum(data):
    s = sum(data) & 0xFFFF
    return bytes([s >> 8, s & 0xFF])


def sbdwb(dte, payload, cs=None):
    """AT+SBDWB=len, READY, the bytes and their checksum: the result line's digit."""
    dte.send(b"AT+SBDWB=%d\r" % len(payload))
    ready = dte.until(b"READY\r\n")
    check(ready == b"READY\r\n", f"SBDWB={len(payload)}: READY exactly, got {ready!r}")
    dte.send(payload + (checksum(payload) if cs is None else cs))
    return dte.until(b"\r\nOK\r\n")


def sbdix(dte, timeout=10):
    """AT+SBDIX: the six fields and how long the session took."""
    t0 = time.monotonic()
    dte.send(b"AT+SBDIX\r")
    out = dte.until(b"\r\nOK\r\n", timeout)
    took = time.monotonic() - t0
    if not out or not out.startswith(b"\r\n+SBDIX: "):
        check(False, f"SBDIX answered {out!r}")
        return None, took
    fields = out[len(b"\r\n+SBDIX: "):out.index(b"\r\n", 2)].decode()
    return [int(x) for x in fields.split(", ")], took


def sbdrb(dte):
    dte.send(b"AT+SBDRB\r")
    head = dte.exactly(2)
    n = head[0] << 8 | head[1] if len(head) == 2 else 0
    msg = dte.exactly(n)
    cs = dte.exactly(2)
    ok = dte.until(b"\r\nOK\r\n")
    check(ok == b"\r\nOK\r\n", f"SBDRB ends with OK: {ok!r}")
    check(cs == checksum(msg), f"SBDRB checksum {cs.hex()} of {n} bytes")
    return msg


def mo_file(momsn):
    return os.path.join(mo_dir, f"{IMEI}_{momsn:06d}.sbd")


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def put_mt(name, data):
    """As a gateway would: the whole file appears at once."""
    tmp = os.path.join(mt_dir, "." + name)
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, os.path.join(mt_dir, name))


def read_stats(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        check(False, f"stats in {path}: {e}")
        return {}


socat, (p0, p1) = pty_pair(d, "P")
dte = Dte(p0)
stats = os.path.join(d, "stats.json")
modem = Modem(["--mo-dir", mo_dir, "--mt-dir", mt_dir, "--imei", IMEI, "--csq", "4",
               "--session-ms", "400", "--wb-timeout-s", "1", "--fail", "2:35", "--stats", stats],
              p1)

# 1. Command mode: echo, OK, ERROR, the IMEI, the signal.
dte.send(b"AT\r")
check(dte.until(b"\r\nOK\r\n") == b"AT\r\r\nOK\r\n", "AT is echoed and answered OK")
dte.send(b"ATE0\r")
check(dte.until(b"\r\nOK\r\n") == b"ATE0\r\r\nOK\r\n", "ATE0 is still echoed, then OK")
check(dte.command("AT&K0") == b"\r\nOK\r\n", "AT&K0: OK, no echo any more")
check(dte.command("AT+CGSN") == f"\r\n{IMEI}\r\n\r\nOK\r\n".encode(), "AT+CGSN gives the IMEI")
check(dte.command("AT+CSQ") == b"\r\n+CSQ:4\r\n\r\nOK\r\n", "AT+CSQ gives --csq")
check(dte.command("AT+CSQF") == b"\r\n+CSQF:4\r\n\r\nOK\r\n", "AT+CSQF too")
check(dte.command("AT+FROB") == b"\r\nERROR\r\n", "an unknown command: ERROR")
check(dte.command("AT+SBDMTA=0") == b"\r\nOK\r\n", "AT+SBDMTA=0: OK")

# 2. SBDWB: good, bad checksum (2), bad length (3, no READY), timeout (1, no OK).
payload = bytes(range(256)) + b"\r\nOK\r\nAT\r" + os.urandom(340 - 256 - 9)
check(len(payload) == 340, "the payload is the 9602's largest MO message")
check(sbdwb(dte, payload) == b"\r\n0\r\n\r\nOK\r\n", "SBDWB=340 with a good checksum: 0")
check(sbdwb(dte, b"oops", b"\x00\x00") == b"\r\n2\r\n\r\nOK\r\n", "a bad checksum: 2")
for n in (0, 341):
    out = dte.command(f"AT+SBDWB={n}")
    check(out == b"\r\n3\r\n\r\nOK\r\n", f"SBDWB={n}: 3 without READY: {out!r}")
dte.send(b"AT+SBDWB=10\r")
check(dte.until(b"READY\r\n") == b"READY\r\n", "SBDWB=10: READY")
t0 = time.monotonic()
dte.send(b"abc")
out = dte.until(b"\r\n1\r\n", 5)
took = time.monotonic() - t0
check(out == b"\r\n1\r\n", f"3 of 12 bytes within --wb-timeout-s 1: 1 ({out!r})")
check(0.5 <= took <= 3, f"the timeout came after {took:.2f} s, want 1")
check(dte.quiet(0.3) == b"", "no OK follows result 1 (RockBLOCK's reference)")
check(dte.command("AT") == b"\r\nOK\r\n", "back in command mode after the timeout")
check(dte.command("AT+SBDS") == b"\r\n+SBDS: 1, 0, 0, -1\r\n\r\nOK\r\n",
      "SBDS: a message in MO, MOMSN 0, MT empty")

# 3. Session 1 succeeds: the MO file holds exactly the payload, written whole.
put_mt("0001.sbd", b"hello")
put_mt("0002.sbd", os.urandom(270))
put_mt("0003.sbd", b"x" * 271)
fields, took = sbdix(dte)
check(fields == [0, 0, 1, 1, 5, 2], f"session 1: MO sent, MT 0001 (5 bytes), 2 queued: {fields}")
check(took >= 0.39, f"the session took {took:.3f} s, --session-ms 400")
check(read(mo_file(0)) == payload, f"{mo_file(0)} holds exactly the 340 bytes")
check(not [n for n in os.listdir(mo_dir) if n.startswith(".")], "no temp file is left in --mo-dir")
check(not os.path.exists(os.path.join(mt_dir, "0001.sbd")), "0001.sbd was taken from --mt-dir")
check(sbdrb(dte) == b"hello", "SBDRB gives the MT message")
check(dte.command("AT+SBDRT") == b"\r\n+SBDRT:\r\nhello\r\n\r\nOK\r\n", "SBDRT too")

# 4. Session 2 fails as scripted (35), nothing moves; the retry, session 3, succeeds.
fields, took = sbdix(dte)
check(fields == [35, 1, 2, 0, 0, 0], f"session 2 fails with --fail 2:35: {fields}")
check(read(mo_file(1)) is None, "a failed session writes no MO file")
check(os.path.exists(os.path.join(mt_dir, "0002.sbd")), "a failed session takes no MT file")
# Input during a session is ignored until the result.
t0 = time.monotonic()
dte.send(b"AT+SBDIX\r")
time.sleep(0.1)
dte.send(b"AT\rAT+CSQ\r")
out = dte.until(b"\r\nOK\r\n")
check(out is not None and out.startswith(b"\r\n+SBDIX: 0, 1, 1, 2, 270, 1\r\n"),
      f"session 3, the retry: the same MOMSN 1, MT 0002 (270 bytes): {out!r}")
check(dte.quiet(0.3) == b"", "what came during the session got no answer")
check(read(mo_file(1)) == payload, "the MO buffer is kept until SBDD0: sent again as 1")
check(len(sbdrb(dte)) == 270, "SBDRB gives all 270 bytes")

# 5. SBDD0, then a mailbox check; too big an MT message; then nothing waiting.
check(dte.command("AT+SBDD0") == b"\r\n0\r\n\r\nOK\r\n", "SBDD0: 0")
fields, _ = sbdix(dte)
check(fields == [1, 2, 2, 0, 0, 0], f"session 4: 271 bytes are too big (MO 1, MT 2): {fields}")
check(read(mo_file(2)) is None, "an empty MO buffer writes no file")
check(read(os.path.join(mt_dir, "0003.sbd.bad")) == b"x" * 271, "0003.sbd renamed .bad")
check(sbdrb(dte) == b"", "the session cleared the MT buffer: SBDRB gives length 0")
fields, _ = sbdix(dte)
check(fields == [0, 3, 0, 0, 0, 0], f"session 5: nothing waits: {fields}")
check(dte.command("AT+SBDS") == b"\r\n+SBDS: 0, 4, 0, -1\r\n\r\nOK\r\n", "SBDS after 4 successes")
check(dte.command("AT+SBDWT=text mode") == b"\r\nOK\r\n", "SBDWT=<text>: OK")
fields, _ = sbdix(dte)
check(fields == [0, 4, 0, 0, 0, 0] and read(mo_file(4)) == b"text mode",
      f"session 6 sends the text: {fields}")
check(dte.command("AT+SBDC") == b"\r\n0\r\n\r\nOK\r\n", "SBDC: 0")
check(dte.command("AT+SBDS") == b"\r\n+SBDS: 1, 0, 0, -1\r\n\r\nOK\r\n", "SBDC cleared MOMSN")

check(modem.wait_for("tern-sbd-modem: session ", 2, count=6), "one stderr line per session")
session_lines = [e for e in modem.lines if "tern-sbd-modem: session " in e]
check(len(session_lines) == 6 and "(failed: --fail)" in session_lines[1] and "took 0.4" in
      session_lines[0], f"each line says the result and the time: {session_lines}")
check(modem.stop() == 0, "SIGTERM: exit 0")
s = read_stats(stats)
want = {"sessions": 6, "sessions_failed": 1, "mo_messages": 3, "mo_bytes": 340 + 340 + 9,
        "mt_messages": 2, "mt_bytes": 275, "wb_ok": 1, "wb_checksum": 1, "wb_size": 2,
        "wb_timeout": 1}
check(s == want, f"--stats: {s}, want {want}")

# 6. No signal: every session fails with 32.
modem = Modem(["--mo-dir", mo_dir, "--csq", "0", "--session-ms", "100"], p1)
check(dte.command("ATE0").endswith(b"\r\nOK\r\n"), "a new modem: ATE0")
check(dte.command("AT+CSQ") == b"\r\n+CSQ:0\r\n\r\nOK\r\n", "--csq 0")
fields, _ = sbdix(dte)
check(fields == [32, 0, 2, 0, 0, 0], f"CSQ 0: no network service (32): {fields}")
check(modem.stop() == 0, "SIGTERM: exit 0")


# 7. --fail-rate: the same seed fails the same sessions.
def failures(seed):
    m = Modem(["--mo-dir", mo_dir, "--session-ms", "0", "--fail-rate", "0.5", "--seed", str(seed)],
              p1)
    dte.command("ATE0")
    got = ""
    for _ in range(20):
        f, _ = sbdix(dte)
        got += "1" if f and f[0] >= 5 else "0"
    check(m.stop() == 0, f"--fail-rate 0.5 --seed {seed}: SIGTERM, exit 0")
    return got


a, b, c = failures(3), failures(3), failures(4)
check(a == b and "1" in a and "0" in a, f"--fail-rate 0.5 --seed 3 twice: {a} {b}")
check(a != c, f"another seed fails other sessions: {a} {c}")

# 8. The pty pair goes away and comes back: the modem reopens it.
modem = Modem(["--mo-dir", mo_dir], p1)
dte.close()
socat.terminate()
socat.wait()
check(modem.wait_for(f"{p1}: closed", 5), f"the closed tty is named: {modem.lines}")
socat, _ = pty_pair(d, "P")
check(modem.wait_for(f"{p1}: open again", 5), f"tern-sbd-modem reopens {p1}: {modem.lines}")
dte = Dte(p0)
check(dte.command("AT").endswith(b"\r\nOK\r\n"), "AT after the reopen")
check(modem.stop() == 0, "SIGTERM after a reopen: exit 0")

# 9. Bad input: named, exit 2 for usage, 1 for a path that cannot be opened.
for args, text in [
    (["--csq", "6"], "--csq 6"),
    (["--imei", "12345"], "--imei 12345"),
    (["--session-ms", "-1"], "--session-ms -1"),
    (["--wb-timeout-s", "0"], "--wb-timeout-s 0"),
    (["--fail", "0"], "--fail 0"),
    (["--fail", "3:4"], "--fail 3:4"),
    (["--fail", "2,2"], "--fail 2,2"),
    (["--fail-rate", "1.5"], "--fail-rate 1.5"),
    (["--seed", "x"], "--seed x"),
    (["--momsn", "65536"], "--momsn 65536"),
    (["--frobnicate"], "--frobnicate"),
    (["--csq"], "--csq"),
]:
    p = subprocess.run([TERN_SBD_MODEM, "--mo-dir", mo_dir] + args + [p1], capture_output=True,
                       text=True, timeout=10)
    check(p.returncode == 2 and text in p.stderr,
          f"{args}: exit {p.returncode} (want 2), stderr names '{text}': {p.stderr.strip()}")
p = subprocess.run([TERN_SBD_MODEM, p1], capture_output=True, text=True, timeout=10)
check(p.returncode == 2 and "--mo-dir" in p.stderr, f"--mo-dir is required: {p.stderr.strip()}")
missing = os.path.join(d, "no-such-tty")
p = subprocess.run([TERN_SBD_MODEM, "--mo-dir", mo_dir, missing], capture_output=True, text=True,
                   timeout=10)
check(p.returncode == 1 and missing in p.stderr and "No such file" in p.stderr,
      f"a tty that cannot be opened: exit {p.returncode}: {p.stderr.strip()}")
for opt in ("--mo-dir", "--mt-dir"):
    args = ["--mo-dir", mo_dir, opt, missing] if opt == "--mt-dir" else [opt, missing]
    p = subprocess.run([TERN_SBD_MODEM] + args + [p1], capture_output=True, text=True, timeout=10)
    check(p.returncode == 1 and f"{opt} {missing}" in p.stderr,
          f"{opt} that cannot be opened: exit {p.returncode}: {p.stderr.strip()}")
p = subprocess.run([TERN_SBD_MODEM, "--help"], capture_output=True, text=True, timeout=10)
check(p.returncode == 0 and "--fail LIST" in p.stdout, "--help says how")

dte.close()
done()
