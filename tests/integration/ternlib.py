"""Helpers for integration tests: real tern processes in temporary node homes."""
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile

TERN = os.environ.get("TERN", "tern")
SANITIZED = os.environ.get("TERN_SANITIZED") == "1"

failures = 0
# Processes a test started and has not stopped (daemons, lines): Scratch.close kills them.
LIVE = set()


def check(cond, what):
    """Records a failed check and goes on, so one run reports every broken promise."""
    global failures
    if not cond:
        failures += 1
        print(f"FAIL: {what}", file=sys.stderr)
    return cond


def done():
    if failures:
        print(f"{failures} check(s) failed", file=sys.stderr)
        sys.exit(1)
    print("ok")
    sys.exit(0)


class Scratch:
    """A temporary directory removed at exit unless TERN_KEEP is set."""

    def __init__(self, name):
        self.path = tempfile.mkdtemp(prefix=f"tern-{name}-")

    def sub(self, name):
        p = os.path.join(self.path, name)
        os.makedirs(p, exist_ok=True)
        return p

    def close(self):
        # A test that failed half-way leaves processes behind; they would hold the test
        # runner's pipes open (it waits for them) and run on in a deleted directory.
        for p in list(LIVE):
            try:
                p.kill()
                p.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        LIVE.clear()
        if not os.environ.get("TERN_KEEP"):
            shutil.rmtree(self.path, ignore_errors=True)


def run(args, home=None, input=None, env=None, check_rc=None, binary=False):
    cmd = [TERN] + (["--home", home] if home else []) + list(args)
    e = dict(os.environ)
    e.pop("TERN_HOME", None)
    e.pop("TERN_PASSPHRASE_FILE", None)
    if env:
        e.update(env)
    p = subprocess.run(cmd, input=input, capture_output=True, env=e,
                       text=not binary, stdin=None if input is not None else subprocess.DEVNULL)
    if check_rc is not None and p.returncode != check_rc:
        shown = " ".join(a if len(a) < 80 else a[:60] + "..." for a in cmd)
        print(f"unexpected exit {p.returncode} from {shown}\n"
              f"stdout: {p.stdout[:2000]!r}\nstderr: {p.stderr[:2000]!r}", file=sys.stderr)
        check(False, f"exit code {check_rc} from {shown}")
    return p


def peak_rss_kib(args, home=None, stdin_path=None):
    """Runs tern in a child of its own and returns (returncode, peak RSS in KiB)."""
    code = (
        "import resource, subprocess, sys\n"
        "stdin = open(sys.argv[1], 'rb') if sys.argv[1] else subprocess.DEVNULL\n"
        "rc = subprocess.run(sys.argv[2:], stdin=stdin, stdout=subprocess.DEVNULL).returncode\n"
        "print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    cmd = [TERN] + (["--home", home] if home else []) + list(args)
    p = subprocess.run([sys.executable, "-c", code, stdin_path or ""] + cmd,
                       capture_output=True, text=True)
    rc, rss = p.stdout.split()
    return int(rc), int(rss)


class Node:
    def __init__(self, scratch, name, clock="untrusted", passphrase_file=None):
        self.name = name
        self.home = os.path.join(scratch.path, name)
        self.env = {"TERN_PASSPHRASE_FILE": passphrase_file} if passphrase_file else None
        p = self.run(["init", "--clock", clock], check_rc=0)
        self.init_output = p.stdout
        out = self.run(["id"], check_rc=0).stdout.splitlines()
        self.idstring = out[0]
        self.fingerprint = out[1].split(": ", 1)[1]
        self.node = out[2].split("ipn:", 1)[1].split(".")[0]

    def run(self, args, **kw):
        if self.env and "env" not in kw:
            kw["env"] = self.env
        return run(args, home=self.home, **kw)

    def add_contact(self, other, name=None):
        return self.run(["contact", "add", name or other.name, other.idstring], check_rc=0)

    def inbox(self):
        return json.loads(self.run(["inbox", "--json"], check_rc=0).stdout)

    def queue(self):
        return json.loads(self.run(["queue", "--json"], check_rc=0).stdout)["bundles"]

    def sent(self):
        return json.loads(self.run(["queue", "--json"], check_rc=0).stdout)["sent"]


def introduce(a, b):
    a.add_contact(b)
    b.add_contact(a)


def carry(src, dst, scratch, name="stick"):
    """Exports everything src has queued and imports it at dst; returns the import result."""
    stick = scratch.sub(name)
    for f in os.listdir(stick):
        os.unlink(os.path.join(stick, f))
    src.run(["bundle", "export", stick], check_rc=0)
    files = sorted(os.path.join(stick, f) for f in os.listdir(stick))
    return files, dst.run(["bundle", "import"] + files)


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def rewrite_bundle(raw, edit):
    """Decodes a bundle with cbor2, lets edit() change its blocks (lists), re-encodes it validly
    (fresh CRC-32C on the primary block), as a malicious relay could."""
    import cbor2
    blocks = cbor2.loads(raw)
    edit(blocks)
    primary = blocks[0]
    if len(primary) in (9, 11):
        primary[-1] = b"\0\0\0\0"
        primary[2] = 2
        enc = cbor2.dumps(primary)
        primary[-1] = crc32c(enc).to_bytes(4, "big")
    out = b"\x9f" + b"".join(cbor2.dumps(b) for b in blocks) + b"\xff"
    return out


def stick_names(stick, sub):
    """The names in STICK/tern/<sub>; for bundles/, the names in its subdirectories, each
    checked to be one of the 16 (lowercase 0-9, a-f, as written) and to hold only ids of its
    first hex digit (bundles/<h>/<64 hex id>.bpv)."""
    d = os.path.join(stick, "tern", sub)
    if not os.path.isdir(d):
        return []
    if sub != "bundles":
        return sorted(os.listdir(d))
    names = []
    for h in os.listdir(d):
        check(len(h) == 1 and h in "0123456789abcdef" and os.path.isdir(os.path.join(d, h)),
              f"bundles/ holds only its 16 subdirectories, names kept lowercase: {h!r}")
        inside = os.listdir(os.path.join(d, h))
        check(all(f[0] == h for f in inside), f"bundles/{h}/ holds only ids {h}...: {inside}")
        names += inside
    return sorted(names)


def free_port():
    """A TCP port on loopback that nothing holds right now, below the kernel's ephemeral
    range: a port from bind(0) is one that any outgoing connection (of this test or of a
    test running beside it) may take as its source port before the daemon binds it, or
    while a killed daemon is restarted on it."""
    import random
    import socket
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    low = max(low, 2048)
    for _ in range(200):
        port = random.randrange(1024, low)
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError("no free TCP port below the ephemeral range")


def wait_for(fn, timeout, what, every=0.05):
    """Polls fn() until it returns something true; records a failure after timeout seconds.
    Only tests poll: the daemon itself never does."""
    import time
    end = time.monotonic() + timeout * (4 if SANITIZED else 1)
    while True:
        got = fn()
        if got or time.monotonic() > end:
            check(got, f"{what} (waited {timeout} s)")
            return got
        time.sleep(every)


class Daemon:
    """A real `tern run` on a node, its log in the node home."""

    def __init__(self, node, port=None, listen=True, args=()):
        import time
        self.node = node
        self.port = (port or free_port()) if listen else None
        self.addr = f"127.0.0.1:{self.port}" if listen else None
        self.log_path = os.path.join(node.home, "daemon.log")
        cmd = [TERN, "--home", node.home, "run", "--log-level", "debug"]
        if listen:
            cmd += ["--listen", self.addr]
        cmd += list(args)
        e = dict(os.environ)
        e.pop("TERN_HOME", None)
        if node.env:
            e.update(node.env)
        self.log = open(self.log_path, "a")
        started = len(self.text()) if os.path.exists(self.log_path) else 0
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, env=e)
        LIVE.add(self.proc)
        end = time.monotonic() + (40 if SANITIZED else 10)
        # The log is appended to: only this run's lines count.
        while "tern run: node" not in self.text()[started:] and self.proc.poll() is None:
            if time.monotonic() > end:
                break
            time.sleep(0.02)
        check(self.proc.poll() is None, f"{node.name}: tern run started:\n{self.text()[-2000:]}")

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def count(self, pattern):
        return self.text().count(pattern)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=None, expect_rc=0):
        """Stops it (SIGTERM unless told) and checks its exit status."""
        import signal as sigmod
        if self.proc.poll() is None:
            self.proc.send_signal(sig or sigmod.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60 if SANITIZED else 20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            check(False, f"{self.node.name}: tern run did not stop")
        LIVE.discard(self.proc)
        self.log.close()
        if expect_rc is not None:
            check(rc == expect_rc, f"{self.node.name}: tern run exit {rc}, expected {expect_rc}:"
                  f"\n{self.text()[-3000:]}")
        return rc

    def kill(self):
        return self.stop(sig=9, expect_rc=None)


def link(a, b, b_port=None, contacts=True):
    """Makes a and b peers (and contacts); a dials b at 127.0.0.1:b_port if given."""
    if contacts:
        introduce(a, b)
    args = ["peer", "add", b.name, b.idstring]
    if b_port:
        args += ["--addr", f"127.0.0.1:{b_port}"]
    a.run(args, check_rc=0)
    b.run(["peer", "add", a.name, a.idstring], check_rc=0)


def inbox_texts(node):
    out = []
    for e in node.inbox():
        if e.get("kind") == "text":
            out.append(node.run(["read", e["id"]], check_rc=0).stdout)
    return out


class Throttle:
    """A TCP proxy on loopback that carries each direction at rate bytes/s, so a transfer
    takes long enough to be cut in the middle; cut() drops every connection at once."""

    def __init__(self, target_port, rate):
        import socket
        import threading
        self.target = target_port
        self.rate = rate
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.conns = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        import threading
        while not self.closed:
            try:
                a, _ = self.lsock.accept()
            except OSError:
                continue
            try:
                b = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                a.close()
                continue
            with self.lock:
                self.conns += [a, b]
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pump, args=(x, y), daemon=True).start()

    def _pump(self, src, dst):
        import socket
        import time
        chunk = max(1024, self.rate // 50)
        try:
            while True:
                t0 = time.monotonic()
                data = src.recv(chunk)
                if not data:
                    break
                dst.sendall(data)
                pause = len(data) / self.rate - (time.monotonic() - t0)
                if pause > 0:
                    time.sleep(pause)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        import socket
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.conns = []

    def close(self):
        self.closed = True
        self.cut()
        self.lsock.close()


def pty_pair(d, name):
    """A socat pty pair in directory d: (near, far, process); the daemon opens near."""
    import time
    near, far = os.path.join(d, name), os.path.join(d, name + ".far")
    proc = subprocess.Popen(["socat", "-b", "64", f"pty,raw,echo=0,link={near}",
                             f"pty,raw,echo=0,link={far}"],
                            stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    LIVE.add(proc)
    end = time.monotonic() + 10
    while not (os.path.exists(near) and os.path.exists(far)):
        if time.monotonic() > end or proc.poll() is not None:
            raise OSError("socat made no pty pair")
        time.sleep(0.02)
    return near, far, proc


def start_tool(cmd, log_path, ready):
    """Starts one of sim/'s programs, its output in log_path, once it says ready."""
    import time
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    LIVE.add(proc)
    end = time.monotonic() + 10
    while ready not in open(log_path).read():
        if proc.poll() is not None or time.monotonic() > end:
            raise OSError(f"{cmd[0]} did not start: " + open(log_path).read())
        time.sleep(0.02)
    return proc, log


def stop_tool(proc, log, stats_path):
    """Stops a program of sim/ and returns the counters it wrote to stats_path."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    LIVE.discard(proc)
    log.close()
    try:
        with open(stats_path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


class SerialLine:
    """A serial line for two daemons: two socat pty pairs with tern-line (sim/) carrying the
    bytes between their far ends, at a line rate, with bit errors and cuts. The daemons
    open a and b."""

    def __init__(self, scratch, baud, ber=0.0, latency_ms=0, seed=1, cut_len=5, name="line"):
        d = scratch.sub(name)
        self.a, far_a, sa = pty_pair(d, "a")
        self.b, far_b, sb = pty_pair(d, "b")
        self.socats = [sa, sb]
        self.stats_path = os.path.join(d, "stats.json")
        self.log_path = os.path.join(d, "line.log")
        self.proc, self.log = start_tool(
            [os.environ["TERN_LINE"], "--baud", str(baud), "--ber", str(ber),
             "--latency-ms", str(latency_ms), "--seed", str(seed), "--cut-len", str(cut_len),
             "--stats", self.stats_path, far_a, far_b], self.log_path, "tern-line: ready")

    def cut(self):
        """Cuts the line now, for cut_len seconds."""
        import signal
        self.proc.send_signal(signal.SIGUSR1)

    def close(self):
        """Stops the line and the pty pairs; returns tern-line's counters."""
        stats = stop_tool(self.proc, self.log, self.stats_path)
        for s in self.socats:
            s.terminate()
            s.wait()
        LIVE.difference_update(self.socats)
        return stats


def serial_link(a, b, line, baud, contacts=True):
    """Makes a and b peers over line: a on its end a, b on its end b."""
    if contacts:
        introduce(a, b)
    a.run(["peer", "add", b.name, b.idstring, "--serial", line.a, "--baud", str(baud)],
          check_rc=0)
    b.run(["peer", "add", a.name, a.idstring, "--serial", line.b, "--baud", str(baud)],
          check_rc=0)
