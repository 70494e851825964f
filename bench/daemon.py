#!/usr/bin/python3
"""Two daemons on loopback: tern against a raw socket copy and NNCP's daemon, in one run.

Workloads, each from node A to node B over TCP on 127.0.0.1 (issue 4, "Benchmark"):
  (a) one file of random bytes (--size-mib, default 1024);
  (b) many distinct 200-byte text messages (--messages, default 10000);
  (c) peak RSS of A's daemon while many short bundles are queued (--queued, default 100000),
      first with B down (A dials a closed port and backs off, --down-seconds), then with B up
      until B holds them all or --up-seconds pass (a memory measurement: how many arrived is
      reported, not verified).

What is timed, the same for both tools: the data is already queued in A's spool (tern send,
nncp-file / nncp-exec: the submit cost is bench/sneakernet.py's business) and B's listener is
already up (tern run --listen, nncp-daemon -bind). The clock starts when A's dialer starts
(tern run, nncp-call) and stops when B holds everything durably as the user receives it:
  tern: B's inbox lists every message (polled with `tern inbox --json`), then, for the file,
        `tern save` has written it out (NNCP's toss writes the plain file; tern's inbox holds
        it sealed, so the save is counted);
  NNCP: every packet is in B's spool, checked and fsynced by B's daemon (nncp-call itself
        stays online for an idle deadline, not counted), then nncp-toss at B has decrypted
        and delivered them (the file into incoming/, the texts through an exec handle).
Node creation and queueing are outside the clock. Each delivery is verified (file bytes;
message count, distinct ids, sizes and a sample of contents), so no figure comes from a
transfer that did not happen. Same-run baseline: a raw TCP copy of the same bytes over
loopback (Python sockets: sendfile / one send per message; the receiver writes a file and
fsyncs it at the end), the floor for moving the bytes durably.

Goals (reported, not enforced; exit 1 only if a transfer failed): (a) tern >= 3x NNCP's
MiB/s, (b) >= 20x NNCP's messages/s, (c) daemon peak RSS (VmHWM) <= 16 MiB with 100,000
bundles queued.

Run with Debian's python (/usr/bin/python3 bench/daemon.py); TERN names the tern binary
(default build-bench/relay/tern, else `tern` on PATH). NNCP is Debian's `nncp` package;
without it tern runs against the raw copy alone.
"""
import argparse
import filecmp
import json
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # the import below must not leave files in the tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sneakernet import (MESSAGE_BYTES, TERN_READ_SAMPLE, TransferFailed, check,  # noqa: E402
                        child_env, find_tern, make_messages, make_random_file, nncp_keys,
                        nncp_version, run, settle_disk)

GOAL_FILE = 3.0
GOAL_TEXTS = 20.0
GOAL_RSS_KIB = 16 << 10
NNCP_TOOLS = ("nncp-cfgnew", "nncp-file", "nncp-exec", "nncp-daemon", "nncp-call", "nncp-toss")
# How often B's inbox is listed while tern transfers: every POLL_S, or twice as long as the
# last listing took, whichever is longer. A listing is a process whose cost grows with the
# inbox (about 0.1 s of CPU at 10,000 entries), taken from the daemons on a 2-core machine:
# this keeps it under a third of one core. The resolution of tern's figures is that interval.
POLL_S = 0.1


# ---- processes ----------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    """Whether something listens on 127.0.0.1:port, read from /proc: connecting to find out
    would be a stranger's connection in the daemon's log."""
    want = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[1].endswith(want) and fields[3] == "0A":
                return True
    return False


def wait_listening(proc, port, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not listening(port):
        check(proc.poll() is None, f"{what} exited with {proc.returncode} before listening")
        check(time.monotonic() < deadline, f"{what} does not listen on port {port}")
        time.sleep(0.02)


def vm_hwm_kib(pid):
    """Peak resident set of a running process (VmHWM), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise TransferFailed(f"no VmHWM for pid {pid}")


class Daemon:
    """A long-running process (tern run, nncp-daemon) with its output in a log file."""

    def __init__(self, cmd, log, name):
        self.name, self.log = name, log
        self.out = open(log, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=subprocess.STDOUT, env=child_env())

    def hwm_kib(self):
        check(self.proc.poll() is None, f"{self.name} exited early with {self.proc.returncode}"
              f"\n{self.tail()}")
        return vm_hwm_kib(self.proc.pid)

    def tail(self, n=15):
        with open(self.log, errors="replace") as f:
            return "".join(f.readlines()[-n:])

    def stop(self):
        """SIGTERM, as an operator stops it; returns its peak RSS in KiB read just before."""
        hwm = self.hwm_kib() if self.proc.poll() is None else None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = "killed after 60 s"
        self.out.close()
        # A daemon that does not stop cleanly is a finding, not a failed transfer.
        if rc != 0 and rc != -signal.SIGTERM:
            print(f"warning: {self.name} did not stop cleanly ({rc}):\n{self.tail()}",
                  file=sys.stderr)
        return hwm


def run_timed(cmd):
    """Runs one command to completion: (seconds, peak RSS of it in KiB); raises on failure."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, env=child_env())
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    seconds = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        shown = " ".join(shlex.quote(a) for a in cmd)
        raise TransferFailed(f"exit {p.returncode} from {shown}\n"
                             f"{out.decode(errors='replace')[-2000:]}")
    return seconds, usage.ru_maxrss


class Result:
    """Seconds per stage in order, plus peak RSS per process (KiB)."""

    def __init__(self):
        self.seconds, self.rss = {}, {}

    def total(self):
        return sum(self.seconds.values())


# ---- raw socket baseline ------------------------------------------------------------------
#
# The receiver is a separate process (no shared GIL with the sender): it accepts one
# connection, writes what it reads into a file, fsyncs it and exits. The clock runs from the
# sender's connect to the receiver's exit.

RAW_RECEIVER = r"""
import os, socket, sys
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0))
ls.listen(1)
print(ls.getsockname()[1], flush=True)
c, _ = ls.accept()
buf = bytearray(1 << 20)
view = memoryview(buf)
with open(sys.argv[1], "wb") as f:
    while True:
        n = c.recv_into(buf)
        if not n:
            break
        f.write(view[:n])
    f.flush()
    os.fsync(f.fileno())
"""


def raw_copy(work, send):
    """Runs the receiver, calls send(sock) on a connection to it; returns (Result, path)."""
    dst = os.path.join(work, "received")
    rx = subprocess.Popen(["/usr/bin/python3", "-c", RAW_RECEIVER, dst],
                          stdout=subprocess.PIPE, env=child_env())
    port = int(rx.stdout.readline())
    settle_disk()
    res = Result()
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        send(s)
    check(rx.wait(timeout=600) == 0, "raw: the receiver failed")
    res.seconds["copy"] = time.perf_counter() - t0
    return res, dst


def raw_file(work, src):
    def send(s):
        with open(src, "rb") as f:
            s.sendfile(f)
    res, got = raw_copy(work, send)
    check(filecmp.cmp(src, got, shallow=False), "raw: the received file differs")
    return res


def raw_texts(work, messages):
    bodies = [(m + "\n").encode() for m in messages]

    def send(s):
        for b in bodies:  # one write per message, as a sender of separate messages does
            s.sendall(b)
    res, got = raw_copy(work, send)
    with open(got) as f:
        check(f.read().splitlines() == messages, "raw: the received messages differ")
    return res


# ---- tern ---------------------------------------------------------------------------------

class TernPair:
    """Nodes A and B, each the other's contact; A dials B at 127.0.0.1:port, B listens."""

    def __init__(self, binary, root, port):
        self.binary, self.root, self.port = binary, root, port
        self.home = {n: os.path.join(root, n) for n in ("A", "B")}
        self.daemons = {}
        ids = {}
        for n in ("A", "B"):
            self.tern(n, "init", "--clock", "untrusted")
            ids[n] = self.tern(n, "id").decode().splitlines()[0]
        for me, other in (("A", "B"), ("B", "A")):
            self.tern(me, "contact", "add", other, ids[other])
        self.tern("A", "peer", "add", "B", ids["B"], "--addr", f"127.0.0.1:{port}")
        self.tern("B", "peer", "add", "A", ids["A"])

    def tern(self, node, *args, stdin_path=None):
        return run([self.binary, "--home", self.home[node]] + list(args), stdin_path=stdin_path)

    def start(self, node):
        cmd = [self.binary, "--home", self.home[node], "run"]
        if node == "B":
            cmd += ["--listen", f"127.0.0.1:{self.port}"]
        d = Daemon(cmd, os.path.join(self.root, f"{node}.log"), f"tern run ({node})")
        self.daemons[node] = d
        if node == "B":
            wait_listening(d.proc, self.port, "tern run (B)")
        return d

    def stop_all(self):
        """Stops the daemons still running; returns {node: VmHWM KiB}."""
        return {n: d.stop() for n, d in self.daemons.items() if d.out and not d.out.closed}

    def inbox(self, node="B"):
        return json.loads(self.tern(node, "inbox", "--json"))

    def sent_states(self):
        return [e["state"] for e in json.loads(self.tern("A", "queue", "--json"))["sent"]]

    def wait_inbox(self, count, timeout, progress=None, poll_s=POLL_S):
        """Lists B's inbox until it holds count entries; returns the listing."""
        deadline = time.monotonic() + timeout
        while True:
            t0 = time.monotonic()
            inbox = self.inbox()
            took = time.monotonic() - t0
            if len(inbox) >= count:
                return inbox
            for d in self.daemons.values():
                check(d.proc.poll() is None, f"{d.name} exited with {d.proc.returncode}:\n"
                      f"{d.tail()}")
            if time.monotonic() > deadline:
                raise TransferFailed(f"tern: {len(inbox)} of {count} in B's inbox after "
                                     f"{timeout:g} s\nA: {self.daemons['A'].tail()}\n"
                                     f"B: {self.daemons['B'].tail()}")
            if progress:
                progress(len(inbox))
            time.sleep(max(poll_s, 2 * took))


def tern_link(pair, count, timeout):
    """B listening, then the clock: A's daemon starts, B's inbox fills. Returns (s, inbox)."""
    pair.start("B")
    settle_disk()
    t0 = time.perf_counter()
    pair.start("A")
    inbox = pair.wait_inbox(count, timeout)
    return time.perf_counter() - t0, inbox


def receipts_seen(pair, count, wait_s=15.0):
    """How many of A's sent messages A already knows as delivered (receipts flowing back),
    waiting at most wait_s for all of them: information, not part of the figures."""
    deadline = time.monotonic() + wait_s
    while True:
        n = sum(1 for s in pair.sent_states() if s == "delivered")
        if n >= count or time.monotonic() > deadline:
            return n
        time.sleep(0.5)


def tern_file(work, binary, src, timeout):
    pair = TernPair(binary, os.path.join(work, "nodes"), free_port())
    out = os.path.join(work, "saved")
    os.makedirs(out)
    pair.tern("A", "send", "B", "--file", src)
    res = Result()
    try:
        res.seconds["link"], inbox = tern_link(pair, 1, timeout)
        files = [e for e in inbox if e["kind"] == "file"]
        check(len(files) == 1, f"tern: {len(files)} files in B's inbox, expected 1")
        t0 = time.perf_counter()
        pair.tern("B", "save", files[0]["id"], out)
        res.seconds["save"] = time.perf_counter() - t0
        res.receipts = receipts_seen(pair, 1)
    finally:
        hwm = pair.stop_all()
    res.rss = {"tern run A": hwm.get("A"), "tern run B": hwm.get("B")}
    got = os.path.join(out, os.path.basename(src))
    check(os.path.isfile(got) and filecmp.cmp(src, got, shallow=False),
          "tern: the saved file differs from the one sent")
    return res


def write_lines(path, lines):
    with open(path, "w") as f:
        f.write("".join(m + "\n" for m in lines))


def tern_texts(work, binary, messages, timeout):
    pair = TernPair(binary, os.path.join(work, "nodes"), free_port())
    lines = os.path.join(work, "messages.txt")
    write_lines(lines, messages)
    queued = pair.tern("A", "send", "B", "--lines", stdin_path=lines).decode().splitlines()
    check(len(queued) >= 1, "tern: send --lines said nothing")
    res = Result()
    try:
        res.seconds["link"], inbox = tern_link(pair, len(messages), timeout)
        verify_tern_texts(pair, inbox, messages)
        res.receipts = receipts_seen(pair, len(messages))
    finally:
        hwm = pair.stop_all()
    res.rss = {"tern run A": hwm.get("A"), "tern run B": hwm.get("B")}
    return res


def verify_tern_texts(pair, inbox, messages):
    texts = [e for e in inbox if e["kind"] == "text"]
    check(len(texts) == len(messages),
          f"tern: {len(texts)} texts in B's inbox, expected {len(messages)}")
    check(len({e["id"] for e in texts}) == len(texts), "tern: duplicate ids in B's inbox")
    check(all(e["size"] == MESSAGE_BYTES for e in texts),
          f"tern: a delivered text is not {MESSAGE_BYTES} bytes")
    sent = set(messages)
    for e in random.Random(2).sample(texts, min(TERN_READ_SAMPLE, len(texts))):
        text = pair.tern("B", "read", e["id"]).decode()
        check(text in sent or text.rstrip("\n") in sent,
              f"tern: message {e['id']} reads back as text that was not sent")


def short_lines(count):
    """Distinct short texts for the queue-memory run."""
    return [f"q{i:07d}" for i in range(count)]


def tern_queued(work, binary, count, down_s, up_s):
    """(c): A's daemon with count bundles queued, B down for down_s, then up for up_s at
    most. B's inbox is listed once a second: the listing grows to count entries."""
    pair = TernPair(binary, os.path.join(work, "nodes"), free_port())
    lines = os.path.join(work, "queued.txt")
    write_lines(lines, short_lines(count))
    print(f"  queueing {count} bundles at A ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    pair.tern("A", "send", "B", "--lines", stdin_path=lines)
    res = Result()
    res.seconds["queue"] = time.perf_counter() - t0
    try:
        a = pair.start("A")
        time.sleep(down_s)
        res.rss["A, B down"] = a.hwm_kib()
        print(f"  B up, A offering {count} bundles ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        pair.start("B")

        last = [0, time.monotonic()]

        def progress(n):
            if time.monotonic() - last[1] > 10:
                print(f"  {n} of {count} in B's inbox", file=sys.stderr, flush=True)
                last[1] = time.monotonic()
        try:
            inbox = pair.wait_inbox(count, up_s, progress, poll_s=1.0)
            res.seconds["deliver"] = time.perf_counter() - t0
            res.delivered = len(inbox)
        except TransferFailed:
            # A memory measurement: what arrived in up_s is reported, and the rate.
            res.seconds["deliver"] = None
            res.delivered = len(pair.inbox())
            res.seconds["up"] = time.perf_counter() - t0
    finally:
        hwm = pair.stop_all()
    res.rss["A, B up (to the end)"] = hwm.get("A")
    res.rss["B"] = hwm.get("B")
    return res


# ---- NNCP ---------------------------------------------------------------------------------
#
# As bench/sneakernet.py, but online: nncp-file / nncp-exec encrypt packets for B into A's
# spool (untimed, as tern's send is). B's nncp-daemon listens on 127.0.0.1; nncp-call at A
# makes a Noise-IK session with it (NNCP's SP protocol) and pushes every packet; B's daemon
# writes each into its spool, hashes it as it arrives (BLAKE3 Merkle tree; -nock is not used),
# fsyncs it, renames it into rx/, fsyncs the directory and tells A, which removes its copy.
# Both tools keep their defaults for durability (NNCPNOSYNC is removed from the environment).
#
# nncp-call does not exit when the spool is empty: it stays online until neither side has
# sent anything for `onlinedeadline` (10 s by default). Timing it to its exit would count that
# idle wait, so the "call" stage ends when every packet A had is in B's rx/ (checked and
# durable), seen by listing that directory as often as tern's inbox is listed. The call is
# then ended (SIGTERM, untimed, as tern's daemons are stopped untimed) and nncp-toss at B
# decrypts, verifies and delivers (file into incoming/, exec handle), timed.

def nncp_available():
    return all(shutil.which(t) for t in NNCP_TOOLS)


def nncp_packets(directory):
    """Names of the whole packets in a spool directory (no .part, .nock or .hdr files)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return set()
    return {n for n in names if len(n) == 52 and n.isalnum()}


class NncpPair:
    """Nodes A and B, neighbours of each other; A calls B at 127.0.0.1:port."""

    def __init__(self, root, port):
        self.root, self.port = root, port
        keys = {n: nncp_keys() for n in ("A", "B")}
        check(all("noisepub" in k for k in keys.values()), "nncp-cfgnew: no noise keys")
        self.cfg, self.incoming, self.mailbox, self.spool = {}, {}, {}, {}
        for me, other in (("A", "B"), ("B", "A")):
            home = os.path.join(root, me)
            self.spool[me] = os.path.join(home, "spool")
            os.makedirs(self.spool[me])
            self.incoming[me] = os.path.join(home, "incoming")
            os.makedirs(self.incoming[me])
            self.mailbox[me] = os.path.join(home, "mailbox")
            public = {k: keys[other][k] for k in ("id", "exchpub", "signpub", "noisepub")}
            public["incoming"] = self.incoming[me]
            public["exec"] = {"mail": ["/bin/sh", "-c",
                                       "cat >> " + shlex.quote(self.mailbox[me])]}
            if other == "B":
                public["addrs"] = {"lo": f"127.0.0.1:{port}"}
            config = {
                "spool": self.spool[me],
                "log": os.path.join(home, "log"),
                "noprogress": True,
                "self": keys[me],
                "neigh": {
                    "self": {k: keys[me][k] for k in ("id", "exchpub", "signpub", "noisepub")},
                    other: public,
                },
            }
            self.cfg[me] = os.path.join(home, "config.hjson")
            with open(self.cfg[me], "w") as f:
                json.dump(config, f, indent=1)
            os.chmod(self.cfg[me], 0o600)
        self.tx = os.path.join(self.spool["A"], keys["B"]["id"], "tx")
        self.rx = os.path.join(self.spool["B"], keys["A"]["id"], "rx")

    def nncp(self, node, tool, *args, input=None):
        return run([tool, "-cfg", self.cfg[node], "-quiet"] + list(args), input=input)

    def daemon(self):
        d = Daemon(["nncp-daemon", "-cfg", self.cfg["B"], "-quiet", "-noprogress",
                    "-bind", f"127.0.0.1:{self.port}"],
                   os.path.join(self.root, "B-daemon.log"), "nncp-daemon (B)")
        wait_listening(d.proc, self.port, "nncp-daemon")
        return d

    def call_and_toss(self, res, timeout):
        want = nncp_packets(self.tx)
        check(want, f"nncp: no packets in {self.tx}")
        log = open(os.path.join(self.root, "A-call.log"), "ab")
        settle_disk()
        t0 = time.perf_counter()
        call = subprocess.Popen(["nncp-call", "-cfg", self.cfg["A"], "-quiet", "-noprogress",
                                 "B"], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=child_env())
        try:
            while not want <= nncp_packets(self.rx):
                check(call.poll() is None, f"nncp: nncp-call exited ({call.returncode}) with "
                      f"{len(want - nncp_packets(self.rx))} of {len(want)} packets not at B")
                check(time.perf_counter() - t0 < timeout,
                      f"nncp: not all packets at B after {timeout:g} s")
                time.sleep(POLL_S)
            res.seconds["call"] = time.perf_counter() - t0
        finally:
            if call.poll() is None:
                call.send_signal(signal.SIGTERM)
            _, _, usage = os.wait4(call.pid, 0)
            call.returncode = 0
            log.close()
        res.rss["nncp-call A"] = usage.ru_maxrss
        res.seconds["toss"], res.rss["nncp-toss B"] = run_timed(
            ["nncp-toss", "-cfg", self.cfg["B"], "-quiet"])


def nncp_file(work, src, timeout):
    pair = NncpPair(os.path.join(work, "nodes"), free_port())
    pair.nncp("A", "nncp-file", src, "B:")
    res = Result()
    d = pair.daemon()
    try:
        pair.call_and_toss(res, timeout)
    finally:
        res.rss["nncp-daemon B"] = d.stop()
    got = os.path.join(pair.incoming["B"], os.path.basename(src))
    check(os.path.isfile(got) and filecmp.cmp(src, got, shallow=False),
          "nncp: the tossed file differs from the one sent")
    return res


def nncp_texts(work, messages, timeout):
    pair = NncpPair(os.path.join(work, "nodes"), free_port())
    # NNCP has no batch submission: one nncp-exec per message, as a user or an MTA runs it.
    print(f"  queueing {len(messages)} nncp-exec packets at A (untimed) ...", file=sys.stderr,
          flush=True)
    for m in messages:
        pair.nncp("A", "nncp-exec", "B", "mail", input=(m + "\n").encode())
    res = Result()
    d = pair.daemon()
    try:
        pair.call_and_toss(res, timeout)
    finally:
        res.rss["nncp-daemon B"] = d.stop()
    got = []
    if os.path.exists(pair.mailbox["B"]):
        with open(pair.mailbox["B"]) as f:
            got = f.read().splitlines()
    check(len(got) == len(messages), f"nncp: {len(got)} messages in B's mailbox, "
          f"expected {len(messages)}")
    check(sorted(got) == sorted(messages), "nncp: B's mailbox differs from what was sent")
    return res


# ---- running and reporting ----------------------------------------------------------------

def measure(root, name, fn, *args, keep=False):
    """Runs one tool on one workload in a directory of its own, removed afterwards so that
    the next tool starts with the disk as free as this one had it."""
    work = os.path.join(root, name)
    os.makedirs(work)
    print(f"running {name} ...", file=sys.stderr, flush=True)
    try:
        return fn(work, *args)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def mib(kib):
    return "-" if kib is None else f"{kib / 1024:.1f} MiB"


def report(title, unit, amount, raw, tern, nncp, goal):
    print(f"\n== {title}")
    print(f"{'run':<34}{'seconds':>10}{unit:>12}")
    rate = {}
    for name, r in (("raw socket copy", raw), ("tern", tern), ("nncp", nncp)):
        if r is None:
            continue
        if len(r.seconds) > 1:
            for stage, s in r.seconds.items():
                print(f"  {name + ': ' + stage:<32}{s:>10.3f}")
        rate[name] = amount / r.total()
        print(f"{name + (' end to end' if len(r.seconds) > 1 else ''):<34}"
              f"{r.total():>10.3f}{rate[name]:>12.1f}")
    if "link" in tern.seconds and len(tern.seconds) > 1:
        print(f"{'tern, link only (without save)':<34}{tern.seconds['link']:>10.3f}"
              f"{amount / tern.seconds['link']:>12.1f}")
    for r in (tern, nncp):
        for proc, kib in (r.rss.items() if r else ()):
            print(f"  peak RSS {proc:<24}{mib(kib):>22}")
    print(f"  tern: A knows {tern.receipts} of them delivered (receipts, within 15 s after)")
    print(f"ratio tern/raw {unit}: {rate['tern'] / rate['raw socket copy']:.3f}")
    if nncp is None:
        print("ratio tern/nncp: NNCP not run")
        return
    ratio = rate["tern"] / rate["nncp"]
    verdict = "met" if ratio >= goal else f"NOT met (needs {goal / ratio:.2f}x more)"
    print(f"ratio tern/nncp {unit}: {ratio:.2f}   goal >= {goal:g}x: {verdict}")


def report_queued(count, down_s, res):
    print(f"\n== (c) tern run at A with {count} bundles queued for B")
    print(f"queueing them (tern send --lines, untimed above): {res.seconds['queue']:.2f} s")
    for what, kib in res.rss.items():
        print(f"  peak RSS {'tern run ' + what:<34}{mib(kib):>12}")
    d = res.seconds["deliver"]
    if d is None:
        up = res.seconds["up"]
        print(f"B up: {res.delivered} of {count} delivered in {up:.0f} s (--up-seconds; "
              f"{res.delivered / up:.0f} bundles/s, including A's redial)")
    else:
        print(f"B up: all {count} delivered in {d:.2f} s ({count / d:.0f} bundles/s, "
              f"including A's redial after {down_s:g} s of backoff)")
    peak = max(v for k, v in res.rss.items() if k.startswith("A"))
    verdict = "met" if peak <= GOAL_RSS_KIB else f"NOT met (by {mib(peak - GOAL_RSS_KIB)})"
    print(f"A's daemon peak RSS {mib(peak)}   goal <= {mib(GOAL_RSS_KIB)}: {verdict}")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-mib", type=int, default=1024, help="size of the file, workload (a)")
    p.add_argument("--messages", type=int, default=10000, help="text messages, workload (b)")
    p.add_argument("--queued", type=int, default=100000,
                   help="bundles queued at A for the memory measurement (c); 0 skips it")
    p.add_argument("--down-seconds", type=float, default=10.0,
                   help="(c): how long A's daemon runs with B down")
    p.add_argument("--up-seconds", type=float, default=60.0,
                   help="(c): how long B's daemon runs at most, taking the queued bundles")
    p.add_argument("--timeout", type=float, default=900.0,
                   help="seconds a tern transfer may take before it counts as failed")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 64 MiB, 1000 messages, 5000 queued, 3 s down, 20 s up")
    p.add_argument("--no-nncp", action="store_true", help="skip NNCP even when installed")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    a = p.parse_args()
    if a.quick:
        a.size_mib, a.messages, a.queued, a.down_seconds, a.up_seconds = 64, 1000, 5000, 3, 20
    if a.size_mib < 1 or a.messages < 1 or a.queued < 0:
        p.error("--size-mib and --messages must be at least 1, --queued at least 0")
    return a


def on_sigterm(signum, frame):
    """SIGTERM or SIGHUP ends the run as Ctrl-C does: the daemons are stopped, the scratch
    directory removed (the default action would leave both behind)."""
    raise KeyboardInterrupt


def main():
    args = parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGHUP, on_sigterm)
    sys.stdout.reconfigure(line_buffering=True)
    tern = find_tern()
    if not tern:
        sys.exit("daemon: no tern binary: build build-bench/ or set TERN")
    with_nncp = nncp_available() and not args.no_nncp
    try:
        tern_version = run([tern, "--version"]).decode().strip()
    except TransferFailed as e:
        sys.exit(f"daemon: {e}")
    print(f"tern: {tern} ({tern_version})")
    print(f"nncp: {nncp_version()}" if with_nncp else
          "nncp: not run (Debian package `nncp`): tern against the raw copy alone")
    print(f"command: {' '.join(shlex.quote(a) for a in sys.argv)}")

    root = tempfile.mkdtemp(prefix="tern-bench-daemon-")
    print(f"scratch: {root}")
    try:
        src = os.path.join(root, "payload.bin")
        make_random_file(src, args.size_mib << 20)
        messages = make_messages(args.messages)

        raw = measure(root, "raw-file", raw_file, src, keep=args.keep)
        t = measure(root, "tern-file", tern_file, tern, src, args.timeout, keep=args.keep)
        n = (measure(root, "nncp-file", nncp_file, src, args.timeout, keep=args.keep)
             if with_nncp else None)
        report(f"(a) one {args.size_mib} MiB file, A -> B over TCP on loopback", "MiB/s",
               args.size_mib, raw, t, n, GOAL_FILE)
        os.unlink(src)

        raw = measure(root, "raw-texts", raw_texts, messages, keep=args.keep)
        t = measure(root, "tern-texts", tern_texts, tern, messages, args.timeout,
                    keep=args.keep)
        n = (measure(root, "nncp-texts", nncp_texts, messages, args.timeout,
                         keep=args.keep)
             if with_nncp else None)
        report(f"(b) {args.messages} texts of {MESSAGE_BYTES} bytes, A -> B over TCP on "
               "loopback", "msg/s", args.messages, raw, t, n, GOAL_TEXTS)

        if args.queued:
            q = measure(root, "tern-queued", tern_queued, tern, args.queued,
                        args.down_seconds, args.up_seconds, keep=args.keep)
            report_queued(args.queued, args.down_seconds, q)
    except TransferFailed as e:
        print(f"daemon: transfer failed: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("daemon: interrupted", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
