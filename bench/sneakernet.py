#!/usr/bin/python3
"""Sneakernet end to end, tern against NNCP, two nodes on this machine, one run.

Workloads, each from node A to node B through a "stick" directory:
  (a) one file of random bytes (--size-mib, default 100);
  (b) many 200-byte text messages (--messages, default 10000).
Stages: submit, export to the stick, import from it, deliver. Every stage is a separate
process, as a user would run it, timed by wall clock. Each delivery is verified (file bytes,
message count and content), so no figure comes from a transfer that did not happen.

Both tools get the same input, the same file system (one scratch directory under $TMPDIR or
/tmp) and their default durability. Goals: (a) tern >= 2x NNCP's MiB/s, (b) >= 20x NNCP's
messages/s. Goals are reported, not enforced: the exit status is 1 only if a transfer failed.

Run with Debian's python (/usr/bin/python3 bench/sneakernet.py); TERN names the tern binary
(default build-bench/relay/tern, else `tern` on PATH). NNCP is Debian's `nncp` package; without
it tern runs alone.
"""
import argparse
import contextlib
import filecmp
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = ("submit", "export", "import", "deliver")
GOAL_FILE = 2.0
GOAL_TEXTS = 20.0
MESSAGE_BYTES = 200
# Texts read back one by one from tern's store to check content, beyond the count and sizes:
# reading all 10,000 would cost a process each and prove little more.
TERN_READ_SAMPLE = 25
NNCP_TOOLS = ("nncp-cfgnew", "nncp-file", "nncp-exec", "nncp-xfer", "nncp-toss")
# Variables that would point either tool at another node or spool, or, for NNCPNOSYNC, turn
# off NNCP's fsyncs and so compare tern's durable writes with NNCP's undurable ones.
FOREIGN_ENV = ("TERN_HOME", "TERN_PASSPHRASE_FILE", "NNCPCFG", "NNCPSPOOL", "NNCPLOG",
               "NNCPNOSYNC", "NNCPDEADLINE")


class TransferFailed(Exception):
    """A command failed or a delivery did not match what was sent."""


def child_env():
    env = dict(os.environ)
    for name in FOREIGN_ENV:
        env.pop(name, None)
    return env


def run(cmd, input=None, stdin_path=None):
    """Runs one command to completion; returns its stdout (bytes) or raises TransferFailed."""
    # Never the terminal's stdin: a tool that asks for something there would hang the run.
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    try:
        p = subprocess.run(cmd, input=input, stdin=stdin if input is None else None,
                           capture_output=True, env=child_env())
    except OSError as e:
        raise TransferFailed(f"cannot run {cmd[0]}: {e}") from e
    finally:
        if stdin_path:
            stdin.close()
    if p.returncode != 0:
        shown = " ".join(shlex.quote(a) for a in cmd)
        raise TransferFailed(f"exit {p.returncode} from {shown}\n"
                             f"{p.stderr.decode(errors='replace')[-2000:]}")
    return p.stdout


class Stopwatch:
    """Seconds per stage, in the order the stages ran."""

    def __init__(self):
        self.seconds = {}

    @contextlib.contextmanager
    def stage(self, name):
        t0 = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - t0

    def total(self):
        return sum(self.seconds.values())


def settle_disk():
    """Flushes what setup and the previous tool left dirty, so that a tool's fsyncs write
    its own data only."""
    os.sync()


def check(cond, what):
    if not cond:
        raise TransferFailed(what)


# ---- inputs -------------------------------------------------------------------------------

def make_random_file(path, size):
    """Incompressible bytes, so neither tool gains from compression."""
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(os.urandom(n))
            left -= n


def make_messages(count):
    """Distinct printable texts of MESSAGE_BYTES each, so a lost or duplicated one shows."""
    rng = random.Random(1)
    letters = "abcdefghijklmnopqrstuvwxyz     "
    out = []
    for i in range(count):
        head = f"message {i:07d}: "
        body = "".join(rng.choice(letters) for _ in range(MESSAGE_BYTES - len(head)))
        out.append(head + body)
    return out


# ---- tern ---------------------------------------------------------------------------------

def find_tern():
    path = os.environ.get("TERN")
    if path:
        return path
    built = os.path.join(REPO, "build-bench", "relay", "tern")
    if os.access(built, os.X_OK):
        return built
    return shutil.which("tern")


class TernPair:
    """Nodes A and B, each the other's contact (end-to-end) and sneakernet peer (custody)."""

    def __init__(self, binary, root):
        self.binary = binary
        self.home = {n: os.path.join(root, n) for n in ("A", "B")}
        ids = {}
        for n in ("A", "B"):
            self.tern(n, "init", "--clock", "untrusted")
            ids[n] = self.tern(n, "id").decode().splitlines()[0]
        for me, other in (("A", "B"), ("B", "A")):
            self.tern(me, "contact", "add", other, ids[other])
            self.tern(me, "peer", "add", other, ids[other], "--sneakernet")

    def tern(self, node, *args, stdin_path=None):
        return run([self.binary, "--home", self.home[node]] + list(args), stdin_path=stdin_path)

    def send_file(self, path):
        self.tern("A", "send", "B", "--file", path)

    def send_lines(self, path):
        """All lines of the file, one message each, in one process; returns the output lines."""
        return self.tern("A", "send", "B", "--lines", stdin_path=path).decode().splitlines()

    def export(self, stick):
        self.tern("A", "export", stick)

    def import_(self, stick):
        self.tern("B", "import", stick)

    def inbox(self):
        return json.loads(self.tern("B", "inbox", "--json"))

    def save(self, msg_id, outdir):
        self.tern("B", "save", msg_id, outdir)

    def read(self, msg_id):
        return self.tern("B", "read", msg_id).decode()


def tern_file(work, binary, src):
    pair = TernPair(binary, os.path.join(work, "nodes"))
    stick, out = os.path.join(work, "stick"), os.path.join(work, "saved")
    os.makedirs(stick)
    os.makedirs(out)
    settle_disk()
    sw = Stopwatch()
    with sw.stage("submit"):
        pair.send_file(src)
    with sw.stage("export"):
        pair.export(stick)
    with sw.stage("import"):
        pair.import_(stick)
    # Delivery is getting the file out where the user wants it: find it in the inbox, save it.
    with sw.stage("deliver"):
        files = [e for e in pair.inbox() if e["kind"] == "file"]
        check(len(files) == 1, f"tern: {len(files)} files in B's inbox, expected 1")
        pair.save(files[0]["id"], out)
    got = os.path.join(out, os.path.basename(src))
    check(os.path.isfile(got) and filecmp.cmp(src, got, shallow=False),
          "tern: the saved file differs from the one sent")
    return sw


def tern_texts(work, binary, messages):
    pair = TernPair(binary, os.path.join(work, "nodes"))
    stick = os.path.join(work, "stick")
    os.makedirs(stick)
    lines = os.path.join(work, "messages.txt")
    with open(lines, "w") as f:
        f.write("".join(m + "\n" for m in messages))
    settle_disk()
    sw = Stopwatch()
    with sw.stage("submit"):
        queued = pair.send_lines(lines)
    check(len(queued) == len(messages),
          f"tern: send --lines reported {len(queued)} messages, expected {len(messages)}")
    with sw.stage("export"):
        pair.export(stick)
    with sw.stage("import"):
        pair.import_(stick)
    # import already delivers into B's inbox; listing it is what a user does next, and it is
    # timed, so tern's figure includes a step that NNCP's does not.
    with sw.stage("deliver"):
        inbox = pair.inbox()
    verify_tern_texts(pair, inbox, messages)
    return sw


def verify_tern_texts(pair, inbox, messages):
    texts = [e for e in inbox if e["kind"] == "text"]
    check(len(texts) == len(messages),
          f"tern: {len(texts)} texts in B's inbox, expected {len(messages)}")
    check(len({e["id"] for e in texts}) == len(texts), "tern: duplicate ids in B's inbox")
    check(all(e["size"] == MESSAGE_BYTES for e in texts),
          f"tern: a delivered text is not {MESSAGE_BYTES} bytes")
    sent = set(messages)
    for e in random.Random(2).sample(texts, min(TERN_READ_SAMPLE, len(texts))):
        text = pair.read(e["id"])
        check(text in sent or text.rstrip("\n") in sent,
              f"tern: message {e['id']} reads back as text that was not sent")


# ---- NNCP ---------------------------------------------------------------------------------
#
# What NNCP does here, with its defaults (fsync on: NNCPNOSYNC is removed from the
# environment). nncp-file and nncp-exec encrypt the payload into a packet for B (ephemeral
# X25519, ChaCha20-Poly1305 under BLAKE3-derived keys; A's Ed25519 signature covers the header
# only, not a hash of the whole payload as tern's does; nncp-exec also zstd-compresses its
# body), name it by its BLAKE3 Merkle tree hash, and write it to A's spool tx/ with fsync and
# an atomic rename. nncp-xfer -tx copies each packet into STICK/<B's id>/<A's id>/, checks the
# copy's checksum, and removes it from A's spool; nncp-xfer -rx copies packets addressed to B
# into B's spool rx/ and removes them from the stick. nncp-toss decrypts and verifies each
# packet, then writes the file into B's "incoming" directory or runs the exec handle with the
# body on its stdin, and removes the packet (the handle's `cat >>` does not fsync the mailbox;
# tern's import commits each delivery durably). No daemon and no network: NNCP's offline mode.
# No ACK packets are sent back (nncp-ack is opt-in), so NNCP writes nothing on the return
# trip, while tern's import writes custody receipts back onto the stick.

def nncp_available():
    return all(shutil.which(t) for t in NNCP_TOOLS)


def nncp_version():
    out = subprocess.run(["nncp-file", "-version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else "nncp (version unknown)"


def nncp_keys():
    """A fresh keypair set from nncp-cfgnew: its `self` section as a dict."""
    cfg = run(["nncp-cfgnew", "-nocomments"]).decode()
    section = re.search(r"^\s*self:\s*\{(.*?)\}", cfg, re.S | re.M)
    check(section is not None, "nncp-cfgnew: no self section in its output")
    keys = dict(re.findall(r"^\s*(\w+):\s*(\S+)\s*$", section.group(1), re.M))
    check({"id", "exchpub", "exchprv", "signpub", "signprv"} <= set(keys),
          "nncp-cfgnew: keys missing from its self section")
    return keys


class NncpPair:
    """Nodes A and B, each with its own spool, log and configuration, neighbours of each other.

    Each knows the other's id, exchange and signing public keys (no noise key or address:
    there is no online link). Each accepts files into its incoming/ and one exec handle,
    `mail`, which appends the body to its mailbox file, as a sendmail-like handle would.
    The configurations are written as JSON, which Hjson (NNCP's format) accepts as it is.
    """

    def __init__(self, root):
        keys = {n: nncp_keys() for n in ("A", "B")}
        self.cfg, self.incoming, self.mailbox = {}, {}, {}
        for me, other in (("A", "B"), ("B", "A")):
            home = os.path.join(root, me)
            os.makedirs(os.path.join(home, "spool"))
            self.incoming[me] = os.path.join(home, "incoming")
            os.makedirs(self.incoming[me])
            self.mailbox[me] = os.path.join(home, "mailbox")
            public = {k: keys[other][k] for k in ("id", "exchpub", "signpub")}
            public["incoming"] = self.incoming[me]
            public["exec"] = {"mail": ["/bin/sh", "-c",
                                       "cat >> " + shlex.quote(self.mailbox[me])]}
            config = {
                "spool": os.path.join(home, "spool"),
                "log": os.path.join(home, "log"),
                "noprogress": True,
                "self": keys[me],
                "neigh": {
                    "self": {k: keys[me][k] for k in ("id", "exchpub", "signpub")},
                    other: public,
                },
            }
            self.cfg[me] = os.path.join(home, "config.hjson")
            with open(self.cfg[me], "w") as f:
                json.dump(config, f, indent=1)
            os.chmod(self.cfg[me], 0o600)

    def nncp(self, node, tool, *args, input=None):
        return run([tool, "-cfg", self.cfg[node], "-quiet"] + list(args), input=input)

    def file(self, src):
        self.nncp("A", "nncp-file", src, "B:")

    def exec_mail(self, body):
        self.nncp("A", "nncp-exec", "B", "mail", input=body)

    def export(self, stick):
        self.nncp("A", "nncp-xfer", "-tx", "-mkdir", stick)

    def import_(self, stick):
        self.nncp("B", "nncp-xfer", "-rx", stick)

    def toss(self):
        self.nncp("B", "nncp-toss")


def nncp_file(work, src):
    pair = NncpPair(os.path.join(work, "nodes"))
    stick = os.path.join(work, "stick")
    os.makedirs(stick)
    settle_disk()
    sw = Stopwatch()
    with sw.stage("submit"):
        pair.file(src)
    with sw.stage("export"):
        pair.export(stick)
    with sw.stage("import"):
        pair.import_(stick)
    with sw.stage("deliver"):
        pair.toss()
    got = os.path.join(pair.incoming["B"], os.path.basename(src))
    check(os.path.isfile(got) and filecmp.cmp(src, got, shallow=False),
          "nncp: the tossed file differs from the one sent")
    return sw


def nncp_texts(work, messages):
    pair = NncpPair(os.path.join(work, "nodes"))
    stick = os.path.join(work, "stick")
    os.makedirs(stick)
    bodies = [(m + "\n").encode() for m in messages]
    settle_disk()
    sw = Stopwatch()
    # NNCP has no batch submission: one nncp-exec per message, as a user or an MTA runs it.
    with sw.stage("submit"):
        for body in bodies:
            pair.exec_mail(body)
    with sw.stage("export"):
        pair.export(stick)
    with sw.stage("import"):
        pair.import_(stick)
    with sw.stage("deliver"):
        pair.toss()
    with open(pair.mailbox["B"]) as f:
        got = f.read().splitlines()
    check(len(got) == len(messages), f"nncp: {len(got)} messages in B's mailbox, "
          f"expected {len(messages)}")
    # toss runs the packets in spool order, not submission order.
    check(sorted(got) == sorted(messages), "nncp: B's mailbox differs from what was sent")
    return sw


# ---- running and reporting ----------------------------------------------------------------

def measure(root, name, fn, *args, keep=False):
    """Runs one tool on one workload in a directory of its own, removed afterwards so that
    the next tool starts with the disk as free as this one had it."""
    work = os.path.join(root, name)
    os.makedirs(work)
    # Progress on stderr: the NNCP half of (b) alone takes minutes at the defaults.
    print(f"running {name} ...", file=sys.stderr, flush=True)
    try:
        return fn(work, *args)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def report(title, unit, amount, tern, nncp, goal):
    print(f"\n== {title}")
    if nncp:
        print("(nncp/tern: NNCP's seconds over tern's, above 1 where tern is faster)")
    cols = ["tern s"] + (["nncp s", "nncp/tern"] if nncp else [])
    print(f"{'stage':<12}" + "".join(f"{c:>12}" for c in cols))
    rows = [(s, tern.seconds[s], nncp.seconds[s] if nncp else None) for s in STAGES]
    rows.append(("end-to-end", tern.total(), nncp.total() if nncp else None))
    for stage, t, n in rows:
        line = f"{stage:<12}{t:>12.3f}"
        if nncp:
            line += f"{n:>12.3f}{n / t:>11.2f}x"
        print(line)
    t_rate = amount / tern.total()
    print(f"{unit:<12}{t_rate:>12.1f}", end="")
    if not nncp:
        print("   (NNCP not run)")
        return
    n_rate = amount / nncp.total()
    ratio = t_rate / n_rate
    print(f"{n_rate:>12.1f}")
    verdict = "met" if ratio >= goal else "NOT met"
    print(f"ratio tern/nncp {unit}: {ratio:.2f}   goal >= {goal:g}x: {verdict}")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-mib", type=int, default=100, help="size of the file, workload (a)")
    p.add_argument("--messages", type=int, default=10000, help="text messages, workload (b)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    a = p.parse_args()
    if a.size_mib < 1 or a.messages < 1:
        p.error("--size-mib and --messages must be at least 1")
    return a


def main():
    args = parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # interleaves rightly with progress on stderr
    tern = find_tern()
    if not tern:
        sys.exit("sneakernet: no tern binary: build build-bench/ or set TERN")
    with_nncp = nncp_available()
    try:
        tern_version = run([tern, "--version"]).decode().strip()
    except TransferFailed as e:
        sys.exit(f"sneakernet: {e}")
    print(f"tern: {tern} ({tern_version})")
    print(f"nncp: {nncp_version()}" if with_nncp else
          "nncp: not installed (Debian package `nncp`): tern runs alone, no ratios")

    root = tempfile.mkdtemp(prefix="tern-bench-sneakernet-")
    print(f"scratch: {root}")
    try:
        src = os.path.join(root, "payload.bin")
        make_random_file(src, args.size_mib << 20)
        messages = make_messages(args.messages)

        t = measure(root, "tern-file", tern_file, tern, src, keep=args.keep)
        n = measure(root, "nncp-file", nncp_file, src, keep=args.keep) if with_nncp else None
        report(f"(a) one {args.size_mib} MiB file, A -> stick -> B", "MiB/s",
               args.size_mib, t, n, GOAL_FILE)

        t = measure(root, "tern-texts", tern_texts, tern, messages, keep=args.keep)
        n = (measure(root, "nncp-texts", nncp_texts, messages, keep=args.keep)
             if with_nncp else None)
        report(f"(b) {args.messages} texts of {MESSAGE_BYTES} bytes, A -> stick -> B",
               "msg/s", args.messages, t, n, GOAL_TEXTS)
    except TransferFailed as e:
        print(f"sneakernet: transfer failed: {e}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
