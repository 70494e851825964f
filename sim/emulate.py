#!/usr/bin/python3
"""Emulation with real processes: runs a real `tern run` for every node of a small scenario,
each in a network namespace of its own, the links veth pairs with tc tbf for the rate and
sim/link_proxy.py for delay, loss and cuts, links taken down and up on schedule; sends real
messages and files with the CLI and checks that each arrives exactly once (docs/sim.md,
"Emulation with real processes").

    emulate.py SCENARIO [--tern PATH] [--out DIR] [--store-dir DIR] [--seed N] [--keep]
    emulate.py --cleanup

Needs root (network namespaces). Exit status: 0 when every message was delivered exactly
once and intact, 1 when an invariant broke or the run failed, 2 for a usage or scenario
error, 77 when it cannot run here (not root, no `ip netns`). Standard library only.
"""
import argparse
import fcntl
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PREFIX = "ternemu-"
LOCK_DIR = "/run/tern-emu"
PORT = 4556
SKIP = 77

# ---- the scenario ------------------------------------------------------------------------

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
RANGE_RE = re.compile(r"\[(\d+)-(\d+)\]")


class ScenarioError(Exception):
    pass


def parse_duration(t):
    """'500ms', '90s', '15m', '1m30s': seconds (a float). None if it is no duration."""
    if not t or not t[0].isdigit():
        return None
    total, pos = 0.0, 0
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", t):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    return total if pos == len(t) and pos else None


def parse_size(t):
    m = re.fullmatch(r"(\d+)(KiB|MiB|GiB)?", t)
    if not m:
        return None
    return int(m.group(1)) * {None: 1, "KiB": 1024, "MiB": 1 << 20, "GiB": 1 << 30}[m.group(2)]


def parse_rate(t):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(bps|kbps|Mbps|Gbps)", t)
    if not m:
        return None
    v = float(m.group(1)) * {"bps": 1, "kbps": 1e3, "Mbps": 1e6, "Gbps": 1e9}[m.group(2)]
    return int(round(v)) if 8 <= v <= 1e10 else None


def parse_probability(t):
    """'1%', '0.5%', '0.01': a probability in [0, 1)."""
    try:
        v = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        return None
    return v if 0 <= v < 1 else None


def expand(line):
    """A range [A-B] makes one line per number; the same range may appear more than once."""
    ranges = set(RANGE_RE.findall(line))
    if not ranges:
        return [line]
    if len(ranges) > 1:
        raise ScenarioError("two different ranges on one line")
    a, b = (int(x) for x in ranges.pop())
    if b < a or b - a > 1000:
        raise ScenarioError(f"range [{a}-{b}] is empty or too long")
    return [RANGE_RE.sub(str(i), line) for i in range(a, b + 1)]


class Scenario:
    """The subset of tern-sim's scenario syntax that real time can do, and four link options
    of its own (loss, cut, stall, down) and one traffic option (count)."""

    def __init__(self, text, name="scenario"):
        self.name = name
        self.duration = None
        self.nodes = []
        self.links = []      # dicts: a, b, rate, latency, loss, cut, stall, down [(t, len)]
        self.routes = []     # (node, dest, next)
        self.flows = []      # dicts: src, dst, kind, period, lo, hi, priority, lifetime, ...
        errors = []
        for no, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            try:
                for one in expand(line):
                    self.statement(one.split())
            except ScenarioError as e:
                errors.append(f"line {no}: {e}")
        if not errors:
            try:
                self.finish()
            except ScenarioError as e:
                errors.append(str(e))
        if errors:
            raise ScenarioError("\n".join(errors))

    def node(self, name):
        if name not in self.nodes:
            raise ScenarioError(f"no node named '{name}' (declare it with a node line first)")
        return name

    def linked(self, a, b):
        return any({l["a"], l["b"]} == {a, b} for l in self.links)

    def statement(self, tok):
        kw = tok[0]
        if kw == "duration":
            d = parse_duration(tok[1]) if len(tok) == 2 else None
            if not d or d < 1:
                raise ScenarioError("duration: give one duration of 1s or more, like 60s")
            self.duration = d
        elif kw == "node":
            if len(tok) < 2:
                raise ScenarioError("node: give one or more names")
            for n in tok[1:]:
                if not NAME_RE.match(n) or n[0] in "-.":
                    raise ScenarioError(f"node: '{n}' is not a name (1 to 32 of A-Z a-z 0-9 _ - .)")
                if n in self.nodes:
                    raise ScenarioError(f"node: '{n}' is declared twice")
                self.nodes.append(n)
        elif kw == "link":
            self.link(tok)
        elif kw == "route":
            if len(tok) != 4:
                raise ScenarioError("route: write 'route NODE DEST NEXT' (DEST a node or default)")
            n, dest, nxt = self.node(tok[1]), tok[2], self.node(tok[3])
            if dest != "default":
                self.node(dest)
            if not self.linked(n, nxt):
                raise ScenarioError(f"route of {n} goes via {nxt}, which has no link to it")
            self.routes.append((n, dest, nxt))
        elif kw == "traffic":
            self.traffic(tok)
        elif kw == "routing":
            if tok[1:] != ["static"]:
                raise ScenarioError("routing: the daemon routes statically; only 'routing static'")
        elif kw in ("sample", "crash", "courier"):
            raise ScenarioError(f"'{kw}' is not emulated (yet)")
        else:
            raise ScenarioError(f"'{kw}' is not duration, node, link, route, traffic or routing")

    def link(self, tok):
        if len(tok) < 3:
            raise ScenarioError("link: give two node names")
        a, b = self.node(tok[1]), self.node(tok[2])
        if a == b:
            raise ScenarioError(f"link: '{a}' cannot link to itself")
        if self.linked(a, b):
            raise ScenarioError(f"link: {a} and {b} are already linked")
        l = {"a": a, "b": b, "rate": 1000000, "latency": 0.05, "loss": 0.0, "cut": 0.0,
             "stall": None, "down": [], "contact": []}
        i = 3
        while i < len(tok):
            k = tok[i]
            if k in ("down", "contact"):
                if i + 2 >= len(tok):
                    raise ScenarioError(f"link: {k} wants a start and a length, like {k} 10s 5s")
                t, n = parse_duration(tok[i + 1]), parse_duration(tok[i + 2])
                if t is None or not n:
                    raise ScenarioError(f"link: {k} '{tok[i + 1]} {tok[i + 2]}' is not two "
                                        "durations (the second above 0)")
                l[k].append((t, n))
                i += 3
                continue
            if k in ("window", "random", "cost"):
                raise ScenarioError(f"link: '{k}' is not emulated (real time: use down or contact)")
            if i + 1 >= len(tok):
                raise ScenarioError(f"link: '{k}' wants a value")
            v = tok[i + 1]
            if k == "rate":
                l["rate"] = parse_rate(v)
                if l["rate"] is None:
                    raise ScenarioError(f"link: rate '{v}' is not a rate like 64kbps or 2Mbps")
            elif k in ("latency", "stall"):
                l[k] = parse_duration(v)
                if l[k] is None:
                    raise ScenarioError(f"link: {k} '{v}' is not a duration like 600ms")
            elif k in ("loss", "cut"):
                l[k] = parse_probability(v)
                if l[k] is None:
                    raise ScenarioError(f"link: {k} '{v}' is not a probability like 1% or 0.01")
            else:
                raise ScenarioError(f"link: unknown option '{k}'")
            i += 2
        self.links.append(l)

    def traffic(self, tok):
        if len(tok) < 7 or tok[3] not in ("every", "poisson") or tok[5] != "size":
            raise ScenarioError("traffic: write 'traffic FROM TO every DUR size BYTES ...'")
        src, dst = self.node(tok[1]), self.node(tok[2])
        if src == dst:
            raise ScenarioError(f"traffic: '{src}' sending to itself crosses no link")
        period = parse_duration(tok[4])
        if not period or period < 0.001:
            raise ScenarioError(f"traffic: {tok[3]} '{tok[4]}' is not a duration of 1ms or more")
        lo, _, hi = tok[6].partition("-")
        lo, hi = parse_size(lo), parse_size(hi or lo)
        if lo is None or hi is None or hi < lo or lo < 1 or hi > 64 << 20:
            raise ScenarioError(f"traffic: size '{tok[6]}' is not a size or range of sizes "
                                "(1 byte to 64 MiB, like 200 or 1KiB-64KiB)")
        f = {"src": src, "dst": dst, "kind": tok[3], "period": period, "lo": lo, "hi": hi,
             "priority": "normal", "lifetime": None, "start": 0.0, "stop": None, "count": None}
        i = 7
        while i < len(tok):
            k = tok[i]
            if i + 1 >= len(tok):
                raise ScenarioError(f"traffic: '{k}' wants a value")
            v = tok[i + 1]
            if k == "priority":
                if v not in ("bulk", "normal", "urgent"):
                    raise ScenarioError(f"traffic: priority '{v}' is not bulk, normal or urgent")
                f[k] = v
            elif k == "lifetime":
                if parse_duration(v) is None:
                    raise ScenarioError(f"traffic: lifetime '{v}' is not a duration")
                f[k] = v
            elif k in ("start", "stop"):
                f[k] = parse_duration(v)
                if f[k] is None:
                    raise ScenarioError(f"traffic: {k} '{v}' is not a duration")
            elif k == "count":
                if not v.isdigit() or int(v) < 1:
                    raise ScenarioError(f"traffic: count '{v}' is not a number of messages")
                f[k] = int(v)
            else:
                raise ScenarioError(f"traffic: unknown option '{k}'")
            i += 2
        if f["stop"] is not None and f["stop"] < f["start"]:
            raise ScenarioError("traffic: stop comes before start")
        self.flows.append(f)

    def finish(self):
        if self.duration is None:
            raise ScenarioError("no duration line (how long the run may last, like 60s)")
        if not self.nodes:
            raise ScenarioError("no node line")
        if len(self.links) > 250:
            raise ScenarioError("at most 250 links")
        for f in self.flows:
            if f["stop"] is None:
                f["stop"] = self.duration
            if f["stop"] > self.duration:
                raise ScenarioError(f"traffic {f['src']} {f['dst']}: stops after the duration")


# ---- processes and namespaces -------------------------------------------------------------


def sh(args, check=True, **kw):
    p = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {p.returncode}: {p.stderr.strip()}")
    return p


def netns_list():
    p = sh(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def netns_kill_and_delete(ns):
    """Kills whatever still runs in the namespace, then deletes it (and its veths)."""
    p = sh(["ip", "netns", "pids", ns], check=False)
    for pid in p.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    sh(["ip", "netns", "del", ns], check=False)


def clean_leftovers(log):
    """Deletes the namespaces of runs that are no longer alive: a run holds a flock on
    LOCK_DIR/RUNID.lock for as long as its namespaces exist, so a lock that can be taken
    (or is gone) marks a leftover. Namespaces of live runs beside this one are left alone."""
    os.makedirs(LOCK_DIR, exist_ok=True)
    stale = {}
    for ns in netns_list():
        if not ns.startswith(PREFIX):
            continue
        run_id = ns[len(PREFIX):].split("-", 1)[0]
        if run_id not in stale:
            path = os.path.join(LOCK_DIR, run_id + ".lock")
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                stale[run_id] = None
            else:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    stale[run_id] = (fd, path)
                except BlockingIOError:
                    os.close(fd)
                    continue
        if run_id in stale:
            log(f"removing leftover namespace {ns}")
            netns_kill_and_delete(ns)
    # Node homes of killed runs (no namespace left, or just removed): any whose lock is free.
    for base in {"/dev/shm", tempfile.gettempdir()}:
        try:
            names = os.listdir(base)
        except OSError:
            continue
        for name in names:
            m = re.fullmatch(r"tern-emu-([0-9a-f]{8})-.+", name)
            if m and os.path.exists(os.path.join(base, name, ".kept")):
                continue
            if not m or m.group(1) in stale:
                if m:
                    shutil.rmtree(os.path.join(base, name), ignore_errors=True)
                continue
            path = os.path.join(LOCK_DIR, m.group(1) + ".lock")
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                log(f"removing leftover node homes {base}/{name}")
                shutil.rmtree(os.path.join(base, name), ignore_errors=True)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            log(f"removing leftover node homes {base}/{name}")
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
            os.unlink(path)
            os.close(fd)
    for held in stale.values():
        if held:
            os.unlink(held[1])
            os.close(held[0])
    return len(stale)


class Emulation:
    """One run: creates everything, runs it, and undoes all of it in close()."""

    def __init__(self, sc, args):
        self.sc = sc
        self.args = args
        self.tern = args.tern
        self.rng = random.Random(args.seed)
        self.run_id = "%08x" % random.SystemRandom().getrandbits(32)
        self.procs = []          # (name, Popen) to stop at the end
        self.namespaces = []
        self.lock_fd = None
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        # Held until everything of this run is gone: others' clean-up leaves it alone.
        os.makedirs(LOCK_DIR, exist_ok=True)
        self.lock_fd = os.open(os.path.join(LOCK_DIR, self.run_id + ".lock"),
                               os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        base = args.store_dir or ("/dev/shm" if os.access("/dev/shm", os.W_OK) else None)
        self.dir = tempfile.mkdtemp(prefix=f"tern-emu-{self.run_id}-", dir=base)
        self.out = args.out
        self.homes = {}
        self.ids = {}            # node -> (idstring, ipn node number)
        self.daemons = {}        # node -> Popen
        self.listen = {n: [] for n in sc.nodes}
        self.peer_addr = {}      # (dialer, listener) -> address dialled
        self.proxies = []        # (link index, Popen, stats path)
        self.msgs = {}           # tag -> dict: flow, k, src, dst, kind, t_submit, bundles, sha
        self.seen = {n: {} for n in sc.nodes}   # node -> {message id: (tag, t, kind)}
        self.receipts = {}       # bundle id -> time the delivered event came home
        self.bundle_msg = {}     # bundle id -> message id, from the senders' events
        self.events_log = []
        self.t0 = None
        self.last_poll = 0.0

    def log(self, text):
        t = "" if self.t0 is None else f"[{time.monotonic() - self.t0:7.2f}] "
        print(f"emulate: {t}{text}", file=sys.stderr, flush=True)

    # ---- set-up ---------------------------------------------------------------------

    def ns(self, suffix):
        return f"{PREFIX}{self.run_id}-{suffix}"

    def add_ns(self, name):
        sh(["ip", "netns", "add", name])
        self.namespaces.append(name)
        sh(["ip", "-n", name, "link", "set", "lo", "up"])

    def tbf(self, ns, dev, rate):
        """The rate of one direction: tbf on the egress of the veth end a node sends on."""
        bps = rate / 8
        burst = max(3200, int(bps / 250))          # 4 ms of line, two full frames at least
        limit = max(32768, int(bps * 0.25))        # a quarter second of queue
        sh(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf",
            "rate", f"{rate}bit", "burst", str(burst), "limit", str(limit)])

    def veth(self, ns1, dev1, addr1, ns2, dev2, addr2):
        sh(["ip", "link", "add", dev1, "netns", ns1, "type", "veth", "peer", "name", dev2,
            "netns", ns2])
        for ns, dev, addr in ((ns1, dev1, addr1), (ns2, dev2, addr2)):
            sh(["ip", "-n", ns, "addr", "add", addr + "/30", "dev", dev])
            sh(["ip", "-n", ns, "link", "set", dev, "up"])

    def proxied(self, l):
        return l["latency"] > 0 or l["loss"] > 0 or l["cut"] > 0

    def setup_net(self):
        for n in self.sc.nodes:
            self.add_ns(self.ns("n-" + n))
        for i, l in enumerate(self.sc.links):
            a, b = self.ns("n-" + l["a"]), self.ns("n-" + l["b"])
            dev = f"tl{i}"
            if self.proxied(l):
                # a -- [link namespace: the proxy] -- b; a dials the proxy, which dials b.
                ln = self.ns(f"l{i}")
                self.add_ns(ln)
                self.veth(a, dev, f"10.201.{i}.1", ln, "ta", f"10.201.{i}.2")
                self.veth(ln, "tb", f"10.202.{i}.1", b, dev, f"10.202.{i}.2")
                l["ns"], l["down_devs"] = ln, [(a, dev), (ln, "ta")]
                dial, listen = f"10.201.{i}.2:{PORT}", f"10.202.{i}.2:{PORT}"
            else:
                self.veth(a, dev, f"10.201.{i}.1", b, dev, f"10.201.{i}.2")
                l["ns"], l["down_devs"] = None, [(a, dev), (b, dev)]
                dial = listen = f"10.201.{i}.2:{PORT}"
            self.tbf(a, dev, l["rate"])
            self.tbf(b, dev, l["rate"])
            l["dial"], l["listen"] = dial, listen
            self.listen[l["b"]].append(listen)
            self.peer_addr[(l["a"], l["b"])] = dial

    def cli(self, node, args, check=True, input=None):
        p = subprocess.run([self.tern, "--home", self.homes[node]] + args, input=input,
                           capture_output=True, text=True,
                           stdin=None if input is not None else subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise RuntimeError(f"{node}: tern {' '.join(args)}: exit {p.returncode}: "
                               f"{p.stderr.strip()}")
        return p

    def setup_nodes(self):
        for n in self.sc.nodes:
            self.homes[n] = os.path.join(self.dir, n)
            self.cli(n, ["init", "--clock", "trusted"])
            out = self.cli(n, ["id"]).stdout.splitlines()
            self.ids[n] = (out[0], out[2].split("ipn:", 1)[1].split(".")[0])
        for l in self.sc.links:
            a, b = l["a"], l["b"]
            self.cli(a, ["peer", "add", b, self.ids[b][0], "--addr", l["dial"]])
            self.cli(b, ["peer", "add", a, self.ids[a][0]])
        pairs = {(f["src"], f["dst"]) for f in self.sc.flows}
        for s, d in pairs | {(d, s) for s, d in pairs}:
            self.cli(s, ["contact", "add", d, self.ids[d][0]])
        for n, dest, nxt in self.sc.routes:
            target = "default" if dest == "default" else f"ipn:{self.ids[dest][1]}"
            self.cli(n, ["route", "add", target, nxt])

    def delivered_bundles(self, n):
        """The bundles node n sent whose delivery receipt came home, from the API's `sent`
        (the CLI's `tern queue --json` names messages, not bundles)."""
        out, offset = set(), 0
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(10)
                s.connect(os.path.join(self.homes[n], "api.sock"))
                f = s.makefile("r", encoding="utf-8", errors="replace")
                while True:
                    s.sendall(f"sent limit=1000 offset={offset}\n".encode())
                    rep = json.loads(f.readline())
                    entries = rep.get("sent", [])
                    out |= {e.get("bundle") for e in entries if e.get("state") == "delivered"}
                    offset += len(entries)
                    if not rep.get("more") or not entries:
                        return out
        except (OSError, ValueError):
            return out

    def spawn(self, name, ns, cmd, log_path):
        logf = open(log_path, "a")
        p = subprocess.Popen(["ip", "netns", "exec", ns] + cmd, stdin=subprocess.DEVNULL,
                             stdout=logf, stderr=logf, start_new_session=True)
        logf.close()
        self.procs.append((name, p))
        return p

    @staticmethod
    def wait_log(p, path, text, timeout=20):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with open(path, errors="replace") as f:
                if text in f.read():
                    return True
            if p.poll() is not None:
                return False
            time.sleep(0.02)
        return False

    def start_proxies(self):
        for i, l in enumerate(self.sc.links):
            if not l["ns"]:
                continue
            stats = os.path.join(self.dir, f"proxy{i}.json")
            logp = os.path.join(self.dir, f"proxy{i}.log")
            cmd = [sys.executable, os.path.join(HERE, "link_proxy.py"), "--listen", l["dial"],
                   "--connect", l["listen"], "--latency-ms", str(l["latency"] * 1000),
                   "--loss", str(l["loss"]), "--cut-per-mib", str(l["cut"]),
                   "--seed", str(self.args.seed * 1000 + i), "--stats", stats]
            if l["stall"] is not None:
                cmd += ["--stall-ms", str(l["stall"] * 1000)]
            p = self.spawn(f"proxy {l['a']}-{l['b']}", l["ns"], cmd, logp)
            if not self.wait_log(p, logp, "link-proxy: ready"):
                raise RuntimeError(f"link proxy {l['a']}-{l['b']} did not start: "
                                   + open(logp).read()[-1000:])
            self.proxies.append((i, p, stats))

    def start_daemon(self, n):
        logp = os.path.join(self.homes[n], "daemon.log")
        start = os.path.getsize(logp) if os.path.exists(logp) else 0
        cmd = [self.tern, "--home", self.homes[n], "run", "--log-level", "debug"]
        for a in self.listen[n]:
            cmd += ["--listen", a]
        p = self.spawn(f"tern run {n}", self.ns("n-" + n), cmd, logp)
        end = time.monotonic() + 20
        while time.monotonic() < end and p.poll() is None:
            with open(logp, errors="replace") as f:
                f.seek(start)
                if "tern run: node" in f.read():
                    break
            time.sleep(0.02)
        if p.poll() is not None or time.monotonic() >= end:
            raise RuntimeError(f"tern run on {n} did not start: " + open(logp).read()[-1500:])
        self.daemons[n] = p

    def check_listeners(self):
        """Each daemon listens on its namespace's addresses, and on nothing else."""
        bad = []
        for n in self.sc.nodes:
            p = sh(["ip", "netns", "exec", self.ns("n-" + n), "ss", "-Htln"], check=False)
            got = sorted(line.split()[3] for line in p.stdout.splitlines() if line.strip())
            want = sorted(self.listen[n])
            if p.returncode == 0 and got != want:
                bad.append(f"{n} listens on {got}, configured {want}")
        return bad

    # ---- the run --------------------------------------------------------------------

    def subscribe(self, n):
        """Collects node n's inbox and receipt events from its API socket, as they come."""
        path = os.path.join(self.homes[n], "api.sock")
        after = 0
        while not self.stopping.is_set():
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(path)
                s.sendall(f"subscribe after={after}\n".encode())
                f = s.makefile("r", encoding="utf-8", errors="replace")
                s.settimeout(0.5)
                buf = ""
                while not self.stopping.is_set():
                    try:
                        chunk = f.readline()
                    except (socket.timeout, TimeoutError):
                        continue
                    if not chunk:
                        break
                    buf += chunk
                    if not buf.endswith("\n"):
                        continue
                    line, buf = buf, ""
                    ev = json.loads(line)
                    now = time.monotonic()
                    kind = ev.get("event")
                    if kind in ("message", "file"):
                        after = max(after, ev.get("seq", 0))
                        self.on_inbox(n, ev, now)
                    elif kind in ("forwarded", "delivered"):
                        with self.lock:
                            self.bundle_msg[ev.get("bundle")] = ev.get("id")
                            if kind == "delivered":
                                self.receipts.setdefault(ev.get("bundle"), now)
                s.close()
            except (OSError, ValueError):
                pass
            self.stopping.wait(0.2)

    def on_inbox(self, n, ev, now):
        if ev["event"] == "message":
            text = ev.get("text") or ""
            tag = " ".join(text.split(" ", 4)[:4]) if text.startswith("emu ") else None
        else:
            name = ev.get("name") or ""
            tag = name[:-4].replace("-", " ", 3) if name.startswith("emu-") else None
        with self.lock:
            self.seen[n].setdefault(ev["id"], (tag, now, ev["event"]))

    def send(self, fi, f, k, size):
        tag = f"emu {self.run_id} {fi} {k}"
        m = {"flow": fi, "k": k, "src": f["src"], "dst": f["dst"], "size": size,
             "kind": "file" if size >= 4096 else "text", "sha": None, "bundles": []}
        args = ["send", f["dst"], "--priority", f["priority"]]
        if f["lifetime"]:
            args += ["--lifetime", f["lifetime"]]
        if m["kind"] == "file":
            path = os.path.join(self.dir, "out", f"emu-{self.run_id}-{fi}-{k}.bin")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            data = random.Random(f"{self.args.seed}/{fi}/{k}").randbytes(size)
            with open(path, "wb") as fh:
                fh.write(data)
            m["sha"] = hashlib.sha256(data).hexdigest()
            args += ["--file", path]
        else:
            args += ["-m", (tag + " " + "x" * size)[:max(size, len(tag))]]
        m["t_submit"] = time.monotonic()
        with self.lock:
            self.msgs[tag] = m
        p = self.cli(f["src"], args, check=False)
        m["bundles"] = [x for x in p.stdout.split() if len(x) == 64]
        if p.returncode != 0:
            m["send_error"] = p.stderr.strip()
            self.log(f"tern send on {f['src']} failed: {p.stderr.strip()}")

    def flow(self, fi, f):
        """Makes one flow's messages at their times (one tern send at a time)."""
        rng = random.Random(f"{self.args.seed}/flow/{fi}")
        t, k = f["start"], 0
        while t < f["stop"] and (f["count"] is None or k < f["count"]):
            if self.stopping.wait(max(0.0, self.t0 + t - time.monotonic())):
                return
            self.send(fi, f, k, rng.randint(f["lo"], f["hi"]))
            k += 1
            t += f["period"] if f["kind"] == "every" else rng.expovariate(1 / f["period"])

    def link_plan(self):
        """(time, link index, up?) for every change of a link's state."""
        plan = []
        for i, l in enumerate(self.sc.links):
            for t, n in l["down"]:
                plan += [(t, i, False), (t + n, i, True)]
            if l["contact"]:
                plan.append((0.0, i, False))
                for t, n in l["contact"]:
                    plan += [(t, i, True), (t + n, i, False)]
        return sorted(plan, key=lambda e: (e[0], e[2]))

    def set_link(self, i, up):
        l = self.sc.links[i]
        for ns, dev in l["down_devs"]:
            sh(["ip", "-n", ns, "link", "set", dev, "up" if up else "down"], check=False)
        self.events_log.append({"t": round(time.monotonic() - self.t0, 3),
                                "link": f"{l['a']}-{l['b']}", "up": up})
        self.log(f"link {l['a']}-{l['b']} {'up' if up else 'down'}")

    def settled(self):
        with self.lock:
            if len(self.msgs) < self.expected:
                return False
            got = {t for n in self.seen for (t, _, _) in self.seen[n].values()}
            if not all(tag in got for tag in self.msgs):
                return False
            missing = [(m["src"], b) for m in self.msgs.values() for b in m["bundles"]
                       if b not in self.receipts]
        if not missing:
            return True
        # The events tell of changes only; the senders' stores have the whole story.
        if time.monotonic() - self.last_poll < 1.0:
            return False
        self.last_poll = time.monotonic()
        for n in {src for src, _ in missing}:
            home = self.delivered_bundles(n)
            with self.lock:
                for src, b in missing:
                    if src == n and b in home:
                        self.receipts.setdefault(b, time.monotonic())
        with self.lock:
            return all(b in self.receipts for _, b in missing)

    def count_expected(self):
        n = 0
        for fi, f in enumerate(self.sc.flows):
            rng = random.Random(f"{self.args.seed}/flow/{fi}")
            t, k = f["start"], 0
            while t < f["stop"] and (f["count"] is None or k < f["count"]):
                rng.randint(f["lo"], f["hi"])
                k += 1
                t += f["period"] if f["kind"] == "every" else rng.expovariate(1 / f["period"])
            n += k
        return n

    def run(self):
        clean_leftovers(self.log)
        self.setup_net()
        self.setup_nodes()
        self.start_proxies()
        for n in self.sc.nodes:
            self.start_daemon(n)
        bad_listen = self.check_listeners()
        for n in self.sc.nodes:
            threading.Thread(target=self.subscribe, args=(n,), daemon=True).start()
        self.expected = self.count_expected()
        self.t0 = time.monotonic()
        self.log(f"run {self.run_id}: {len(self.sc.nodes)} nodes, {len(self.sc.links)} links, "
                 f"{self.expected} messages, at most {self.sc.duration:g} s")
        flows = [threading.Thread(target=self.flow, args=(fi, f), daemon=True)
                 for fi, f in enumerate(self.sc.flows)]
        for t in flows:
            t.start()
        plan = self.link_plan()
        end = self.t0 + self.sc.duration
        last_plan = plan[-1][0] if plan else 0.0
        while time.monotonic() < end:
            now = time.monotonic() - self.t0
            while plan and plan[0][0] <= now:
                _, i, up = plan.pop(0)
                self.set_link(i, up)
            dead = [n for n, p in self.daemons.items() if p.poll() is not None]
            if dead:
                self.log(f"tern run exited on {', '.join(dead)}")
                break
            if now >= last_plan and not any(t.is_alive() for t in flows) and self.settled():
                break
            time.sleep(0.05)
        wall = time.monotonic() - self.t0
        self.stopping.set()
        for t in flows:
            t.join(timeout=30)
        return self.report(wall, bad_listen)

    # ---- the report -----------------------------------------------------------------

    def report(self, wall, bad_listen):
        # The inbox as the CLI shows it: every entry, to count duplicates by what they say.
        per_tag = {}
        unexpected = 0
        corrupt = []
        latencies = []
        for n in self.sc.nodes:
            inbox = json.loads(self.cli(n, ["inbox", "--json"]).stdout or "[]")
            for e in inbox:
                with self.lock:
                    known = self.seen[n].get(e["id"])
                tag = known[0] if known else None
                if known is None:
                    if e["kind"] == "text":
                        text = self.cli(n, ["read", e["id"]], check=False).stdout
                        if text.startswith("emu "):
                            tag = " ".join(text.split(" ", 4)[:4])
                    elif (e.get("name") or "").startswith("emu-"):
                        tag = e["name"][:-4].replace("-", " ", 3)
                m = self.msgs.get(tag)
                if m is None or m["dst"] != n:
                    unexpected += 1
                    continue
                per_tag[tag] = per_tag.get(tag, 0) + 1
                if per_tag[tag] == 1:
                    t = known[1] if known else time.monotonic()
                    latencies.append(t - m["t_submit"])
                    m["latency"] = t - m["t_submit"]
                if m["kind"] == "file" and per_tag[tag] == 1:
                    d = os.path.join(self.dir, "saved", n, e["id"])
                    os.makedirs(d, exist_ok=True)
                    self.cli(n, ["save", e["id"], d], check=False)
                    files = os.listdir(d)
                    got = None
                    if len(files) == 1:
                        with open(os.path.join(d, files[0]), "rb") as fh:
                            got = hashlib.sha256(fh.read()).hexdigest()
                    if got != m["sha"]:
                        corrupt.append(tag)
        submitted = sum(1 for m in self.msgs.values() if "send_error" not in m)
        delivered = sum(1 for t in self.msgs if per_tag.get(t))
        duplicates = sum(c - 1 for c in per_tag.values() if c > 1)
        lost = [t for t, m in self.msgs.items() if not per_tag.get(t) and "send_error" not in m]
        bundles = [b for m in self.msgs.values() for b in m["bundles"]]
        # Receipts: what the senders' stores say (the events only tell of changes).
        home = set()
        for n in self.sc.nodes:
            home |= self.delivered_bundles(n)
        receipts = sum(1 for b in bundles if b in home)
        latencies.sort()

        def rank(q):
            if not latencies:
                return None
            return round(latencies[min(len(latencies) - 1,
                                       max(0, int(-(-q * len(latencies) // 1)) - 1))], 3)

        nodes = {}
        for n in self.sc.nodes:
            st = self.cli(n, ["status", "--json"], check=False).stdout
            q = self.cli(n, ["queue", "--json"], check=False).stdout
            try:
                status = json.loads(st)
            except ValueError:
                status = {}
            try:
                queued = len(json.loads(q).get("bundles", []))
            except ValueError:
                queued = None
            nodes[n] = {"status": status, "queued_end": queued}
        self.stop_processes()
        for n in self.sc.nodes:
            logp = os.path.join(self.homes[n], "daemon.log")
            text = open(logp, errors="replace").read()
            nodes[n].update({
                "daemon_exit": self.daemons[n].returncode if n in self.daemons else None,
                "links_up": text.count("link up"),
                "warnings": sum(1 for line in text.splitlines() if " warn " in line
                                or " error " in line),
            })
        links = []
        for i, l in enumerate(self.sc.links):
            e = {"a": l["a"], "b": l["b"], "rate_bps": l["rate"], "latency_s": l["latency"],
                 "loss": l["loss"], "cut_per_mib": l["cut"], "dial": l["dial"],
                 "listen": l["listen"], "down": l["down"], "contact": l["contact"]}
            for j, _, path in self.proxies:
                if j == i:
                    try:
                        with open(path) as fh:
                            e["proxy"] = json.load(fh)
                    except (OSError, ValueError):
                        e["proxy"] = None
            links.append(e)
        flows = []
        for fi, f in enumerate(self.sc.flows):
            ms = [m for m in self.msgs.values() if m["flow"] == fi]
            lat = sorted(m["latency"] for m in ms if "latency" in m)
            flows.append({"from": f["src"], "to": f["dst"], "submitted": len(ms),
                          "delivered": len(lat),
                          "latency_max_s": round(lat[-1], 3) if lat else None})
        problems = []
        if lost:
            problems.append(f"{len(lost)} lost: " + ", ".join(sorted(lost)[:10]))
        if duplicates:
            problems.append(f"{duplicates} duplicates")
        if unexpected:
            problems.append(f"{unexpected} inbox entries that were never sent there")
        if corrupt:
            problems.append(f"{len(corrupt)} files not intact: " + ", ".join(corrupt[:10]))
        if submitted != len(self.msgs) or len(self.msgs) != self.expected:
            problems.append(f"{self.expected} messages due, {len(self.msgs)} made, "
                            f"{submitted} queued by tern send")
        for n, v in nodes.items():
            if v["daemon_exit"] != 0:
                problems.append(f"tern run on {n} exited {v['daemon_exit']}")
        problems += bad_listen
        if self.out:
            os.makedirs(self.out, exist_ok=True)
            with open(os.path.join(self.out, "messages.csv"), "w") as fh:
                fh.write("from,to,flow,k,kind,size,submitted_s,latency_s,copies,receipt_s\n")
                for t, m in sorted(self.msgs.items(), key=lambda x: x[1]["t_submit"]):
                    lat = m.get("latency")
                    rc = [self.receipts[b] - m["t_submit"] for b in m["bundles"]
                          if b in self.receipts]
                    fh.write(f"{m['src']},{m['dst']},{m['flow']},{m['k']},{m['kind']},"
                             f"{m['size']},{m['t_submit'] - self.t0:.3f},"
                             f"{'' if lat is None else f'{lat:.3f}'},{per_tag.get(t, 0)},"
                             f"{f'{rc[0]:.3f}' if rc else ''}\n")
        rep = {
            "scenario": self.sc.name, "run": self.run_id, "seed": self.args.seed,
            "wall_s": round(wall, 3),
            "messages": {"due": self.expected, "submitted": submitted, "delivered": delivered,
                         "duplicates": duplicates, "lost": len(lost), "unexpected": unexpected,
                         "files": sum(1 for m in self.msgs.values() if m["kind"] == "file"),
                         "files_corrupt": len(corrupt), "receipts": receipts,
                         "receipts_due": len(bundles)},
            "latency_s": {"p50": rank(0.5), "p90": rank(0.9), "max": rank(1.0)},
            "flows": flows, "links": links, "link_events": self.events_log, "nodes": nodes,
            "problems": problems, "ok": not problems,
        }
        return rep

    # ---- clean-up -------------------------------------------------------------------

    def stop_processes(self):
        """Daemons first (SIGTERM, they must exit 0), then proxies; SIGKILL after 10 s."""
        for _, p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        end = time.monotonic() + 10
        for _, p in self.procs:
            try:
                p.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def close(self):
        self.stopping.set()
        try:
            self.stop_processes()
        finally:
            for ns in reversed(self.namespaces):
                netns_kill_and_delete(ns)
            self.namespaces = []
            if self.out:
                keep = os.path.join(self.out, "nodes")
                os.makedirs(keep, exist_ok=True)
                for n, h in self.homes.items():
                    src = os.path.join(h, "daemon.log")
                    if os.path.exists(src):
                        shutil.copy(src, os.path.join(keep, f"{n}.log"))
                for i, _, path in self.proxies:
                    if os.path.exists(path):
                        shutil.copy(path, os.path.join(keep, f"proxy{i}.json"))
            if self.args.keep:
                open(os.path.join(self.dir, ".kept"), "w").close()
                print(f"emulate: kept {self.dir}", file=sys.stderr)
            else:
                shutil.rmtree(self.dir, ignore_errors=True)
            if self.lock_fd is not None:
                try:
                    os.unlink(os.path.join(LOCK_DIR, self.run_id + ".lock"))
                except OSError:
                    pass
                os.close(self.lock_fd)
                self.lock_fd = None


def can_run():
    """None if namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth, tc)"
    if not shutil.which("ip") or not shutil.which("tc"):
        return "needs iproute2 (ip, tc)"
    probe = f"{PREFIX}probe{os.getpid()}"
    p = sh(["ip", "netns", "add", probe], check=False)
    if p.returncode != 0:
        return f"ip netns add fails: {p.stderr.strip()}"
    try:
        q = sh(["ip", "link", "add", "tp0", "netns", probe, "type", "veth", "peer", "name",
                "tp1", "netns", probe], check=False)
        if q.returncode != 0:
            return f"no veth pairs: {q.stderr.strip()}"
        q = sh(["ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev", "tp0", "root", "tbf",
                "rate", "1mbit", "burst", "3200", "limit", "32768"], check=False)
        if q.returncode != 0:
            return f"no tc tbf: {q.stderr.strip()}"
    finally:
        sh(["ip", "netns", "del", probe], check=False)
    return None


def summary(rep):
    m, lat = rep["messages"], rep["latency_s"]
    fmt = lambda v: "-" if v is None else f"{v:.2f} s"
    lines = [
        f"emulation {rep['scenario']} (run {rep['run']}, seed {rep['seed']}): "
        f"{rep['wall_s']:.1f} s",
        f"  messages: {m['submitted']} submitted, {m['delivered']} delivered, "
        f"{m['duplicates']} duplicates, {m['lost']} lost ({m['files']} files, "
        f"{m['files_corrupt']} not intact); receipts home {m['receipts']}/{m['receipts_due']}",
        f"  latency: p50 {fmt(lat['p50'])}, p90 {fmt(lat['p90'])}, max {fmt(lat['max'])}",
    ]
    for l in rep["links"]:
        p = l.get("proxy") or {}
        lines.append(f"  link {l['a']}-{l['b']}: {l['rate_bps']} bit/s, "
                     f"{l['latency_s'] * 1000:g} ms, loss {l['loss']:g}, cut {l['cut_per_mib']:g}"
                     f"/MiB; connections {p.get('connections', '-')}, "
                     f"bytes {p.get('bytes_up', '-')}/{p.get('bytes_down', '-')}, "
                     f"stalls {p.get('stalls', '-')}, cuts {p.get('cuts', '-')}")
    for n, v in rep["nodes"].items():
        lines.append(f"  node {n}: links up {v['links_up']}, queued at end {v['queued_end']}, "
                     f"exit {v['daemon_exit']}, warnings {v['warnings']}")
    for pr in rep["problems"]:
        lines.append(f"  BROKEN: {pr}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(prog="emulate.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", nargs="?")
    ap.add_argument("--tern", default=os.environ.get("TERN", "tern"))
    ap.add_argument("--out", help="directory for report.json and the daemons' logs")
    ap.add_argument("--store-dir", help="where node homes live (default /dev/shm)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the node homes")
    ap.add_argument("--cleanup", action="store_true",
                    help="only remove what killed runs left behind")
    args = ap.parse_args()
    if not args.scenario and not args.cleanup:
        ap.print_usage(sys.stderr)
        sys.exit(2)
    if args.cleanup:
        why = can_run()
        if why:
            print(f"emulate: cannot run here: {why}", file=sys.stderr)
            sys.exit(SKIP)
        n = clean_leftovers(lambda t: print(f"emulate: {t}", file=sys.stderr))
        print(f"emulate: {n} leftover run(s) removed", file=sys.stderr)
        sys.exit(0)
    try:
        with open(args.scenario) as f:
            sc = Scenario(f.read(), os.path.basename(args.scenario))
    except OSError as e:
        print(f"emulate: {args.scenario}: {e.strerror}", file=sys.stderr)
        sys.exit(2)
    except ScenarioError as e:
        for line in str(e).splitlines():
            print(f"emulate: {args.scenario}: {line}", file=sys.stderr)
        sys.exit(2)
    if shutil.which(args.tern) is None and not os.access(args.tern, os.X_OK):
        print(f"emulate: {args.tern}: no tern to run (give --tern or $TERN)", file=sys.stderr)
        sys.exit(2)
    args.tern = os.path.abspath(shutil.which(args.tern) or args.tern)
    why = can_run()
    if why:
        print(f"emulate: cannot run here: {why}", file=sys.stderr)
        sys.exit(SKIP)

    def on_signal(sig, _):
        raise KeyboardInterrupt(f"signal {sig}")

    # SIGINT too: a shell starts a background job with SIGINT ignored.
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    em = Emulation(sc, args)
    rep = None
    try:
        rep = em.run()
    except KeyboardInterrupt:
        print("emulate: interrupted; cleaning up", file=sys.stderr)
    except (RuntimeError, OSError) as e:
        print(f"emulate: {e}", file=sys.stderr)
    finally:
        # Signals during the clean-up must not cut it short.
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        em.close()
    if rep is None:
        sys.exit(1)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "report.json"), "w") as f:
            json.dump(rep, f, indent=1)
    print(summary(rep))
    sys.exit(0 if rep["ok"] else 1)


if __name__ == "__main__":
    main()
