#!/usr/bin/env python3
"""tern backup / restore: a hub backed up while its daemon takes in messages, restored into a
new home that then serves as the hub; every bad backup refused with nothing left behind."""
import fcntl
import os
import stat
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ternlib import Daemon, Node, Scratch, check, done, free_port, link, run, wait_for


def lists(node):
    """What an operator would compare: identity, contacts, peers, routes."""
    return (node.run(["id"], check_rc=0).stdout,
            node.run(["contact", "list", "--json"], check_rc=0).stdout,
            node.run(["peer", "list", "--json"], check_rc=0).stdout,
            node.run(["route", "list"], check_rc=0).stdout)


class Restored(Node):
    """A node home made by restore, not by init."""

    def __init__(self, name, home):
        self.name, self.home, self.env = name, home, None


def refused(args, env, home, why, what):
    """A restore or backup that must fail with why on stderr and leave home as it was."""
    before = sorted(os.listdir(home)) if os.path.isdir(home) else None
    p = run(args, home=home, env=env)
    check(p.returncode == 1, f"{what}: exit {p.returncode}, expected 1 ({p.stderr!r})")
    check(why in p.stderr, f"{what}: stderr names the problem ({why!r}): {p.stderr!r}")
    after = sorted(os.listdir(home)) if os.path.isdir(home) else None
    check(after == before, f"{what}: the home is as it was: {before} -> {after}")
    return p


def main():
    scratch = Scratch("backup")
    try:
        pw = os.path.join(scratch.path, "pass")
        with open(pw, "w") as f:
            f.write("a long backup passphrase\n")
        wrong = os.path.join(scratch.path, "wrong")
        with open(wrong, "w") as f:
            f.write("not the passphrase\n")
        env = {"TERN_PASSPHRASE_FILE": pw}

        field, hub = Node(scratch, "field"), Node(scratch, "hub")
        port = free_port()
        link(field, hub, port)
        hub.run(["route", "add", "default", "field"], check_rc=0)
        with open(os.path.join(hub.home, "tern.conf"), "w") as f:
            f.write("# the hub's daemon\nkeepalive = 20s\n")
        big = os.urandom(2_500_000)  # a payload file beside the store, not in it
        big_path = os.path.join(scratch.path, "survey.bin")
        with open(big_path, "wb") as f:
            f.write(big)
        dh = Daemon(hub, port=port)
        df = Daemon(field, listen=False)
        field.run(["send", "hub", "-m", "the first report"], check_rc=0)
        field.run(["send", "hub", "--file", big_path], check_rc=0)
        wait_for(lambda: len(hub.inbox()) >= 2, 30, "the hub has the report and the file")

        # The backup is taken while the field office keeps sending and the hub storing.
        stop = threading.Event()

        def keep_sending():
            i = 0
            while not stop.is_set() and i < 40:
                field.run(["send", "hub", "-m", f"during the backup {i}"])
                i += 1

        sender = threading.Thread(target=keep_sending)
        sender.start()
        bkp = os.path.join(scratch.path, "hub.tbk")
        p = hub.run(["backup", bkp], env=env, check_rc=0)
        stop.set()
        sender.join()
        check("1 payload file" in p.stdout, f"backup names the payload file: {p.stdout!r}")
        check(stat.S_IMODE(os.stat(bkp).st_mode) == 0o600, "the backup file is 0600")
        raw = open(bkp, "rb").read()
        key = open(os.path.join(hub.home, "identity.key"), "rb").read()
        for needle, what in ((b"the first report", "a message"), (big[1000:1032], "the file"),
                             (key[-40:], "the secret key"), (b"keepalive", "tern.conf"),
                             (hub.idstring.encode(), "the identity"), (b"SQLite", "the store")):
            check(needle not in raw, f"{what} does not appear in the backup in the clear")

        # Restored while the hub still runs: the same node, everything it had.
        new = os.path.join(scratch.path, "hub2")
        p = run(["restore", bkp], home=new, env=env, check_rc=0)
        check("1 payload file" in p.stdout, f"restore names the payload file: {p.stdout!r}")
        check(stat.S_IMODE(os.stat(new).st_mode) == 0o700, "the restored home is 0700")
        check(stat.S_IMODE(os.stat(os.path.join(new, "identity.key")).st_mode) == 0o600,
              "the restored key is 0600")
        check(not [n for n in os.listdir(new) if n.startswith(".")],
              f"no staging left in the home: {os.listdir(new)}")
        hub2 = Restored("hub2", new)
        dh.stop()
        check(lists(hub2) == lists(hub), "identity, contacts, peers and routes restored")
        with open(os.path.join(new, "tern.conf")) as f:
            check("keepalive = 20s" in f.read(), "tern.conf restored")
        inbox = hub2.inbox()
        texts = [hub2.run(["read", e["id"]], check_rc=0).stdout for e in inbox
                 if e["kind"] == "text"]
        check("the first report" in texts, f"the report is in the restored inbox: {texts[:3]}")
        check(len(inbox) <= len(hub.inbox()), "the restored inbox holds no more than the hub's")
        f_id = [e["id"] for e in inbox if e["kind"] == "file"]
        out = scratch.sub("saved")
        if check(len(f_id) == 1, f"the file is in the restored inbox: {inbox}"):
            hub2.run(["save", f_id[0], out], check_rc=0)
            with open(os.path.join(out, "survey.bin"), "rb") as f:
                check(f.read() == big, "the restored file is byte for byte the one sent")

        # The restored home is the hub now: the field office's next message reaches it.
        d2 = Daemon(hub2, port=port)
        field.run(["send", "hub", "-m", "after the restore"], check_rc=0)
        wait_for(lambda: "after the restore" in [
            hub2.run(["read", e["id"]]).stdout for e in hub2.inbox() if e["kind"] == "text"],
            30, "the restored hub takes in a new message")
        d2.stop()
        df.stop()

        # Refusals, each naming the problem, each leaving the home untouched.
        refused(["backup", bkp], env, hub.home, "already exists", "backup over a file")
        check(open(bkp, "rb").read() == raw, "the existing backup is unchanged")
        other = os.path.join(scratch.path, "other.tbk")
        refused(["backup", other], None, hub.home, "TERN_PASSPHRASE_FILE",
                "backup with no passphrase and no terminal")
        check(not os.path.exists(other), "a failed backup leaves no file")
        refused(["backup", other], env, os.path.join(scratch.path, "nobody"),
                "no identity here", "backup of a home with no node")

        target = os.path.join(scratch.path, "hub3")
        refused(["restore", bkp], {"TERN_PASSPHRASE_FILE": wrong}, target,
                "wrong passphrase", "wrong passphrase")
        check(not os.path.exists(target), "a refused restore leaves no home behind")
        refused(["restore", bkp], env, hub.home, "a node already lives here",
                "restore over a node")

        def bad(name, data, why):
            path = os.path.join(scratch.path, name)
            with open(path, "wb") as f:
                f.write(data)
            refused(["restore", path], env, target, why, name)
            check(not os.path.exists(target), f"{name}: no home left behind")

        bad("random", os.urandom(5000), "not a tern backup")
        bad("empty", b"", "not a tern backup")
        bad("header-only", raw[:80], "cut short")
        bad("half", raw[:len(raw) // 2], "cut short")
        bad("no-last-byte", raw[:-1], "cut short")
        # The first chunk ends 80 + 4 + 65553 bytes in: whole chunks, but not the final one.
        bad("at-a-chunk-boundary", raw[:80 + 4 + 65536 + 17], "does not authenticate"
            if len(raw) <= 80 + 2 * (4 + 65553) else "cut short")
        flipped = bytearray(raw)
        flipped[len(raw) // 2] ^= 0x10
        bad("flipped", bytes(flipped), "does not authenticate")
        bad("trailing", raw + b"\0", "bytes after the end")
        salt = bytearray(raw)
        salt[30] ^= 1
        bad("salt", bytes(salt), "wrong passphrase (or a damaged header)")

        # A daemon's lock on the home (here held by this test) stops a restore.
        os.makedirs(target, mode=0o700)
        with open(os.path.join(target, "daemon.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            refused(["restore", bkp], env, target, "daemon runs on this home",
                    "restore under a running daemon")
        # A home with a stray store is not filled over it.
        open(os.path.join(target, "store.db"), "w").close()
        refused(["restore", bkp], env, target, "already exists", "restore over a store")
        p = run(["backup"], home=hub.home, env=env)
        check(p.returncode == 2, f"backup with no FILE is a usage error: {p.returncode}")
        p = run(["restore", bkp, "extra"], home=target, env=env)
        check(p.returncode == 2, f"restore with two arguments is a usage error: {p.returncode}")
    finally:
        scratch.close()
    done()


if __name__ == "__main__":
    main()
