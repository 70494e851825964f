"""Disk full: a receiver whose node home is a small tmpfs is offered about twice what it can
take. Only temporary refusals (`disk full`, with a retry), no crash, no loss; the sender keeps
everything it could not hand over; once space frees, everything arrives, once, intact.

The receiver keeps max(256 MiB, 5 %) of its file system free (relay/link.c disk_reserve,
store_stage_admit), so "small" means 256 MiB of reserve plus CAPACITY (32 MiB) that bundles
may use; the sender offers about 2 x CAPACITY of texts and files (some large enough to be
staged in files). Three phases, checked as sets each time (every message is either still
queued at the sender, or in the receiver's inbox, never both, never neither):

1. policy: the receiver takes what fits above its reserve and refuses the rest `disk full`;
   the reserve is still free; the refusals are in both logs.
2. the disk really full: the operator grows the tmpfs and restarts the receiver; while the
   transfers run, another program fills the file system to the last byte (a ballast file
   written until ENOSPC). Every write of the store can now fail: still only temporary
   refusals, both daemons live, `tern inbox` and `tern status` still answer.
3. space frees: the operator deletes the ballast, grows the tmpfs and restarts the receiver
   (without the restart the sender offers again when the refusals' 600 s have passed).
   Everything arrives once and intact, every receipt comes home, no stage is left, both
   stores pass SQLite's integrity_check.

The mount needs root (CI runs as root): the test runs itself again in a mount namespace of
its own (`unshare -m`, or `unshare -Urm` if not root), so no mount outlives it; exit 77
(skipped) if neither works. Run by hand:

    TERN=build/relay/tern /usr/bin/python3 tests/faults/test_disk_full.py

TERN_FAULT_SEED (default 1) picks the sizes and contents; there is no long form."""
import errno
import glob
import hashlib
import json
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from ternlib import (SANITIZED, Daemon, Node, Scratch, Throttle, check, done,  # noqa: E402
                     free_port, introduce, wait_for)

MIB = 1 << 20
RESERVE = 256 * MIB
CAPACITY = 32 * MIB
SEED = int(os.environ.get("TERN_FAULT_SEED", "1"))
RATE = (4 if SANITIZED else 8) * MIB  # the link: slow enough to fill the disk mid-transfer
MARK = "TERN_DISK_FULL_NS"


def into_namespace():
    """Runs this test again in a mount namespace of its own; returns if already there."""
    if os.environ.get(MARK):
        return
    ns = ["unshare", "-m", "--propagation", "private"] if os.geteuid() == 0 else \
        ["unshare", "-Urm", "--propagation", "private"]
    try:
        probe = subprocess.run(ns + ["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", "/mnt"],
                               capture_output=True, text=True)
        why = probe.stderr.strip() if probe.returncode else ""
    except OSError as e:
        why = str(e)
    if why:
        print(f"skipped: cannot mount a tmpfs for the receiver's home: `{' '.join(ns)} mount` "
              f"failed ({why}); run as root, or where user namespaces are allowed")
        sys.exit(77)
    env = dict(os.environ, **{MARK: "1"})
    sys.stdout.flush()
    os.execvpe(ns[0], ns + [sys.executable, os.path.abspath(__file__)], env)


def mount(mnt, size, remount=False):
    opts = ("remount," if remount else "") + f"size={size},mode=0700"
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", mnt],
                       capture_output=True, text=True)
    check(p.returncode == 0, f"mount -o {opts}: {p.stderr}")


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class On:
    """Where a Node makes its home: a directory other than the scratch's."""

    def __init__(self, path):
        self.path = path


def main():
    into_namespace()
    scratch = Scratch("disk-full")
    mnt = scratch.sub("disk")
    mounted = False
    daemons = []
    proxy = None
    try:
        mount(mnt, RESERVE + CAPACITY)
        mounted = True
        proxy = run(scratch, mnt, daemons)
    finally:
        for d in daemons:
            if d.proc.poll() is None:
                d.stop()
        if proxy:
            proxy.close()
        if mounted:
            subprocess.run(["umount", mnt])
        scratch.close()
    done()


def run(scratch, mnt, daemons):
    rnd = random.Random(SEED)
    field = Node(scratch, "field", clock="trusted")
    hub = Node(On(mnt), "hub", clock="trusted")
    # The receiver's log is kept off its full disk, where it can still be read.
    os.symlink(os.path.join(scratch.path, "hub-daemon.log"), os.path.join(hub.home, "daemon.log"))
    introduce(field, hub)
    port = free_port()
    proxy = Throttle(port, RATE)
    field.run(["peer", "add", "hub", hub.idstring, "--addr", f"127.0.0.1:{proxy.port}"],
              check_rc=0)
    hub.run(["peer", "add", "field", field.idstring], check_rc=0)

    # About twice the capacity: texts, small and middling files, and files big enough to be
    # staged in a file of their own at the receiver (4 MiB and more).
    texts = ["disk-full text %04d " % i + "".join(rnd.choices("abcdefghij ", k=rnd.randint(500, 4000)))
             for i in range(300)]
    sizes = [rnd.randint(6 * MIB, 10 * MIB) for _ in range(4)] + \
            [rnd.randint(MIB, 3 * MIB) for _ in range(16)] + \
            [rnd.randint(16 << 10, 512 << 10) for _ in range(12)]
    rnd.shuffle(sizes)
    src = scratch.sub("src")
    files = {}  # name -> sha256
    for i, size in enumerate(sizes):
        name = f"file-{i:02d}.bin"
        data = rnd.randbytes(size)
        with open(os.path.join(src, name), "wb") as out:
            out.write(data)
        files[name] = hashlib.sha256(data).hexdigest()
    offered = sum(sizes) + sum(len(t) for t in texts)
    print(f"offering {offered / MIB:.1f} MiB ({len(texts)} texts, {len(files)} files) to a "
          f"receiver with {CAPACITY // MIB} MiB above its {RESERVE // MIB} MiB reserve")
    check(offered > 1.8 * CAPACITY, "about twice the capacity is offered")
    field.run(["send", "hub", "--lines"], input="\n".join(texts) + "\n", check_rc=0)
    for name in files:
        field.run(["send", "hub", "--file", os.path.join(src, name)], check_rc=0)
    total = len(texts) + len(files)

    hub_log = os.path.join(scratch.path, "hub-daemon.log")

    def log_from(path, start):
        with open(path) as f:
            return f.read()[start:]

    def start_hub():
        start = os.path.getsize(hub_log) if os.path.exists(hub_log) else 0
        d = Daemon(hub, port=port)
        daemons.append(d)
        return d, start

    dh, hub_start = start_hub()
    df = Daemon(field, listen=False)
    daemons.append(df)
    field_log = df.log_path

    def accounted(where):
        """Every message is queued at the sender or in the hub's inbox: one of the two."""
        q = field.run(["queue", "--json"], check_rc=0)
        q = json.loads(q.stdout)
        inbox = {e["id"] for e in hub.inbox()}
        waiting = {e["id"] for e in q["sent"] if e["state"] == "queued"}
        gone = {e["id"] for e in q["sent"] if e["state"] != "queued"}
        check(len(q["sent"]) == total, f"{where}: the sender knows its {total} messages")
        check(len(q["bundles"]) == len(waiting), f"{where}: a bundle for each waiting message")
        check(gone == inbox, f"{where}: what left the sender is what the hub has: "
              f"{len(gone - inbox)} left but not in, {len(inbox - gone)} in but not left")
        check(not waiting & inbox, f"{where}: nothing both waiting and delivered")
        return waiting, inbox

    def all_refused(start):
        """Every bundle still at the sender was offered and refused `disk full` since start."""
        refused = set()
        for line in log_from(field_log, start).splitlines():
            if "refused by the peer: disk full" in line:
                refused.add(line.split("bundle ", 1)[1].split()[0])
        q = json.loads(field.run(["queue", "--json"], check_rc=0).stdout)["bundles"]
        return q and {b["id"][:16] for b in q} <= refused

    def alive(where):
        for d in (dh, df):
            check(d.proc.poll() is None, f"{where}: {d.node.name} still runs:\n{d.text()[-2000:]}")

    def permanent(text):
        """Refusals that are not temporary, in a log."""
        return [x for x in text.splitlines() if "refused" in x and "disk full" not in x
                and "later" not in x and "did not authenticate" not in x]

    # ---- 1. The reserve: what fits goes in, the rest is refused `disk full`, for now.
    wait_for(lambda: all_refused(0), 120, "phase 1: every bundle left was refused disk full")
    alive("phase 1")
    waiting, inbox = accounted("phase 1")
    free1 = free_bytes(mnt)
    print(f"phase 1: {len(inbox)} delivered, {len(waiting)} waiting at the sender, "
          f"{free1 / MIB:.0f} MiB free on the receiver's disk")
    check(0 < len(inbox) < total, f"phase 1: some went in, not all: {len(inbox)} of {total}")
    check(free1 >= RESERVE - 16 * MIB, f"phase 1: the reserve stayed free ({free1 / MIB:.0f} MiB)")
    check("refused: disk full (retry after" in log_from(hub_log, hub_start),
          "phase 1: the receiver's log gives the reason")

    # ---- 2. Another program fills the disk while transfers run.
    mount(mnt, RESERVE + CAPACITY + 48 * MIB, remount=True)
    dh.stop()
    dh, hub_start2 = start_hub()
    field_start2 = os.path.getsize(field_log)
    staged = os.path.join(hub.home, "store.db-payloads", "in-*")
    before = len(inbox)
    wait_for(lambda: glob.glob(staged) or len(hub.inbox()) > before, 60,
             "phase 2: transfers resumed after the disk grew")
    mid = bool(glob.glob(staged))
    ballast = os.path.join(mnt, "ballast")
    filled = 0
    with open(ballast, "wb") as out:
        block = b"\xa5" * MIB
        try:
            while True:
                filled += os.write(out.fileno(), block)
        except OSError as e:
            check(e.errno == errno.ENOSPC, f"the ballast stops at ENOSPC: {e}")
    # A last page or two may still be free, a block smaller than a MiB: take them too.
    with open(ballast, "ab") as out:
        try:
            while True:
                filled += os.write(out.fileno(), b"\xa5" * 4096)
        except OSError:
            pass
    print(f"phase 2: ballast of {filled / MIB:.0f} MiB written "
          f"({'with a stage open' if mid else 'no stage open at that moment'}); "
          f"{free_bytes(mnt)} bytes free")
    wait_for(lambda: all_refused(field_start2), 120,
             "phase 2: every bundle left was refused disk full on the full disk")
    alive("phase 2")
    waiting2, inbox2 = accounted("phase 2")
    check(inbox <= inbox2, "phase 2: nothing delivered went away")
    p = hub.run(["inbox", "--json"])
    check(p.returncode == 0, f"phase 2: tern inbox answers on a full disk: {p.stderr}")
    p = hub.run(["status", "--json"])
    check(p.returncode == 0, f"phase 2: tern status answers on a full disk: {p.stderr}")
    print(f"phase 2: {len(inbox2)} delivered, {len(waiting2)} waiting at the sender")

    # ---- 3. Space frees: everything arrives, once, intact.
    os.unlink(ballast)
    mount(mnt, "1G", remount=True)
    dh.stop()
    dh, hub_start3 = start_hub()

    def drained():
        q = json.loads(field.run(["queue", "--json"], check_rc=0).stdout)
        return not q["bundles"] and all(e["state"] == "delivered" for e in q["sent"])

    wait_for(drained, 180, "phase 3: everything delivered, every receipt home")
    alive("phase 3")
    waiting3, inbox3 = accounted("phase 3")
    check(not waiting3 and len(inbox3) == total, f"phase 3: all {total} in: {len(inbox3)}")
    entries = hub.inbox()
    check(len(entries) == total, f"phase 3: one inbox entry each: {len(entries)} of {total}")
    got_texts = sorted(hub.run(["read", e["id"]], check_rc=0).stdout
                       for e in entries if e["kind"] == "text")
    check(got_texts == sorted(texts), "phase 3: every text once and intact")
    out = scratch.sub("saved")
    for e in entries:
        if e["kind"] == "file":
            hub.run(["save", e["id"], out], check_rc=0)
    got = {}
    for name in os.listdir(out):
        with open(os.path.join(out, name), "rb") as f:
            got[name] = hashlib.sha256(f.read()).hexdigest()
    check(got == files, f"phase 3: every file once and intact: "
          f"{sorted(n for n in files if got.get(n) != files[n])} differ or are missing, "
          f"{sorted(set(got) - set(files))} are extra")
    check(not glob.glob(staged), "phase 3: no stage left at the receiver")
    check(json.loads(hub.run(["queue", "--json"], check_rc=0).stdout)["bundles"] == [],
          "phase 3: the receiver holds nothing for anyone")

    dh.stop()
    df.stop()
    hub_text, field_text = log_from(hub_log, 0), log_from(field_log, 0)
    check(not permanent(hub_text), "no refusal but temporary ones at the receiver: "
          + "\n".join(permanent(hub_text)[:10]))
    check(not permanent(field_text), "no refusal but temporary ones at the sender: "
          + "\n".join(permanent(field_text)[:10]))
    for bad in ("AddressSanitizer", "runtime error", "quarantin", "not taken"):
        check(bad not in hub_text + field_text, f"the logs say {bad}")
    notes = [x for x in hub_text.splitlines() if " warn: " in x or " error: " in x]
    print("receiver's warnings and errors:\n  " + "\n  ".join(notes[:20]) if notes else
          "receiver: no warning or error logged")
    import sqlite3
    for n in (field, hub):
        db = sqlite3.connect(os.path.join(n.home, "store.db"))
        ok = db.execute("PRAGMA integrity_check").fetchall()
        db.close()
        check(ok == [("ok",)], f"{n.name}: the store passes integrity_check: {ok[:5]}")
    print(f"disk full: {total} messages ({offered / MIB:.1f} MiB) offered to "
          f"{CAPACITY // MIB} MiB: {len(inbox)} in at the reserve, {len(inbox2)} after the disk "
          f"was filled, {len(inbox3)} once space freed; lost {total - len(inbox3)}")
    return proxy


if __name__ == "__main__":
    main()
