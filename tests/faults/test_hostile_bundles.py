#!/usr/bin/env python3
"""Hostile bundles from a configured peer (evil_peer, built on the real byte layer) against a
real daemon, and through `tern bundle import`: a bundle replayed (the same bytes, a re-encoded
copy, the same envelope under a new bundle id), a bundle for a third node (forwarded, never
opened here), one addressed here but sealed to another node, one offered as expired and one
whose Bundle Age says it expired, and an offer too big to take. Each is refused with its reason
or taken once; the daemon's log says so; no message text appears in the hub's files.

The single-byte tampers and a peer over its stage quota are test_hostile_bundles.c (in-process:
the quota is 8 GiB per peer in a daemon, which no test should fill)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from ternlib import (Daemon, Node, Scratch, check, done, free_port, inbox_texts, introduce, link,
                     rewrite_bundle, wait_for)

EVIL = os.environ.get("EVIL_PEER", "evil_peer")
TIMEOUT = 240 if os.environ.get("TERN_SANITIZED") == "1" else 60

# enum link_refuse_reason
TOO_BIG, EXPIRED, BAD = 1, 4, 6


def offer(node, hub, port, path, size="-", expires=None):
    """evil_peer offers the bundle in path to hub as node; returns the lines it printed."""
    import subprocess
    args = [EVIL, os.path.join(node.home, "identity.key"), hub.idstring, str(port), "offer", path,
            size] + ([str(expires)] if expires is not None else [])
    p = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT)
    return p.stdout.split("\n")[:-1]


SEEN = set()


def export_one(node, scratch, name):
    """Exports what node has queued into a fresh directory; returns the one bundle file in it
    that no earlier export wrote."""
    d = scratch.sub(name)
    node.run(["bundle", "export", d], check_rc=0)
    files = [f for f in os.listdir(d) if f.endswith(".bundle") and f not in SEEN]
    check(len(files) == 1, f"{name}: one new bundle exported: {files}")
    SEEN.update(files)
    return os.path.join(d, files[0])


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def files_with(root, needles):
    """The files under root holding any of needles (bytes)."""
    hits = []
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            try:
                data = open(p, "rb").read()
            except OSError:
                continue
            hits += [f"{p}: {x[:20]!r}" for x in needles if x in data]
    return hits


def stage_files(node):
    out = []
    for d, _, names in os.walk(node.home):
        out += [n for n in names if n.startswith("in-")]
    return out


def du(root):
    total = 0
    for d, _, names in os.walk(root):
        for n in names:
            try:
                total += os.lstat(os.path.join(d, n)).st_blocks * 512
            except OSError:
                pass
    return total


def main():
    scratch = Scratch("hostile-bundles")
    try:
        hub, mallory, carol = (Node(scratch, n) for n in ("hub", "mallory", "carol"))
        port = free_port()
        link(mallory, hub, port)  # a configured peer and contact of the hub
        link(carol, hub, port)    # carol dials the hub when she is up
        introduce(mallory, carol)
        texts = {}

        def send(to, key, text):
            texts[key] = text
            mallory.run(["send", to, "-m", text], check_rc=0)
            return export_one(mallory, scratch, key)

        f_replay = send("hub", "replay", "replayed: the well at km 14 is dry")
        f_carol = send("carol", "carol", "for carol: radio check at 18:00 on channel 3")
        f_exp = send("hub", "expired", "expired: this report is stale by now")
        f_big = send("hub", "big", "too big: claimed to be four gigabytes")
        dh = Daemon(hub, port=port)

        # ---- a replayed bundle: taken once, acknowledged as held every other time ------
        out = offer(mallory, hub, port, f_replay)
        check(out == ["want 0", "ack"], f"a new bundle is wanted and acknowledged: {out}")
        check(inbox_texts(hub) == [texts["replay"]], f"delivered: {inbox_texts(hub)}")
        out = offer(mallory, hub, port, f_replay)
        check(out == ["ack"], f"the same bundle again: acknowledged as held, not wanted: {out}")
        # Re-encoded on the way (a relay set its Bundle Age): the same bundle id.
        aged = write(scratch.sub("replay") + "/aged.b", rewrite_bundle(
            open(f_replay, "rb").read(),
            lambda bl: [b.__setitem__(4, b"\x19\x03\xe8") for b in bl[1:] if b[0] == 7]))
        out = offer(mallory, hub, port, aged)
        check(out == ["ack"], f"a re-encoded copy is the same bundle, held: {out}")
        # The same sealed envelope under a new bundle id (its lifetime changed): custody is
        # taken (the sender may drop it), the message is not delivered twice.
        relife = write(scratch.sub("replay") + "/relife.b", rewrite_bundle(
            open(f_replay, "rb").read(), lambda bl: bl[0].__setitem__(7, bl[0][7] - 1000)))
        out = offer(mallory, hub, port, relife)
        check(out == ["want 0", "ack"], f"a new id, the same envelope: taken in custody: {out}")
        p = hub.run(["bundle", "import", f_replay])
        check(p.returncode == 0, f"importing it from a stick too: {p.stdout} {p.stderr}")
        check(inbox_texts(hub) == [texts["replay"]],
              f"delivered once only, however often it came: {inbox_texts(hub)}")

        # ---- for a third node: forwarded, never opened here -------------------------------
        out = offer(mallory, hub, port, f_carol)
        check(out == ["want 0", "ack"], f"a bundle for carol is taken to forward: {out}")
        check(len(hub.inbox()) == 1, "nothing for carol in the hub's inbox")
        # (The hub's delivery receipts for mallory wait there too: evil_peer takes none.)
        for_carol = lambda: [b for b in hub.queue() if b["to"] == "carol"]
        check([(b["dest"], b["origin"]) for b in for_carol()] == [(f"ipn:{carol.node}.1",
                                                                     "relayed")],
              f"it waits in the hub's queue for carol: {hub.queue()}")
        dc = Daemon(carol, listen=False)
        wait_for(lambda: inbox_texts(carol) == [texts["carol"]], 30,
                 "carol gets it from the hub once she is up")
        wait_for(lambda: not for_carol(), 30, "and the hub hands it over")
        dc.stop()

        # Addressed to the hub, sealed to carol: refused `bad`, nothing delivered.
        readdressed = write(scratch.sub("carol") + "/readdressed.b", rewrite_bundle(
            open(f_carol, "rb").read(),
            lambda bl: bl[0].__setitem__(3, [2, [int(hub.node), 1]])))
        out = offer(mallory, hub, port, readdressed)
        check(out == ["want 0", f"refuse {BAD} 0"],
              f"sealed to another node: refused as bad, for good: {out}")
        check(dh.count("not taken: cannot be opened with this node's keys") == 1,
              f"the log says why:\n{dh.text()[-1500:]}")
        p = hub.run(["bundle", "import", readdressed])
        check(p.returncode != 0 and "cannot be opened with this node's keys" in p.stdout + p.stderr,
              f"the same from a stick: {p.returncode} {p.stdout} {p.stderr}")
        check(len(hub.inbox()) == 1, "nothing more in the hub's inbox")

        # ---- expired ------------------------------------------------------------------------
        out = offer(mallory, hub, port, f_exp, expires=500)
        check(out == [f"refuse {EXPIRED} 0"], f"offered with 0.5 s left: refused expired: {out}")
        check(dh.count("refused: expired (retry after 0 s)") == 1,
              f"and logged:\n{dh.text()[-1500:]}")
        # Offered as fresh, but its Bundle Age is past its lifetime: refused when it is in.
        def age_out(bl):
            for b in bl[1:]:
                if b[0] == 7:
                    import cbor2
                    b[4] = cbor2.dumps(bl[0][7])
        stale = write(scratch.sub("expired") + "/stale.b",
                      rewrite_bundle(open(f_exp, "rb").read(), age_out))
        out = offer(mallory, hub, port, stale)
        check(out == ["want 0", f"refuse {EXPIRED} 0"],
              f"expired by its Bundle Age: refused expired: {out}")
        check(dh.count("not taken: expired (age") == 1, f"and logged:\n{dh.text()[-1500:]}")
        p = hub.run(["bundle", "import", stale])
        check(p.returncode != 0 and "expired" in p.stdout + p.stderr,
              f"the same from a stick: {p.returncode} {p.stdout} {p.stderr}")
        check(len(hub.inbox()) == 1, "nothing expired delivered")
        # The untouched copy is taken: the refusals left nothing behind that gets in its way.
        out = offer(mallory, hub, port, f_exp)
        check(out == ["want 0", "ack"], f"the bundle itself, with its lifetime: taken: {out}")

        # ---- too big: refused at the offer, no byte of it stored ---------------------------
        before = du(hub.home)
        out = offer(mallory, hub, port, f_big, size=str(4 << 30))
        check(out == [f"refuse {TOO_BIG} 0"], f"an offer of 4 GiB: refused too big: {out}")
        check(dh.count("refused: too big (retry after 0 s)") == 1,
              f"and logged:\n{dh.text()[-1500:]}")
        check(not stage_files(hub), f"nothing staged for it: {stage_files(hub)}")
        grew = du(hub.home) - before
        check(grew < 1 << 20, f"no disk used for it: the hub's home grew {grew} bytes")
        out = offer(mallory, hub, port, f_big)
        check(out == ["want 0", "ack"], f"offered at its real size, it is taken: {out}")

        check(sorted(inbox_texts(hub)) == sorted([texts["replay"], texts["expired"],
                                                  texts["big"]]),
              f"the hub holds exactly what it took, once each: {inbox_texts(hub)}")
        check(dh.proc.poll() is None, "the hub runs on")
        dh.stop()
        # Sealed bytes only: no text in the hub's store, payloads or log.
        hits = files_with(hub.home, [t.encode() for t in texts.values()])
        check(not hits, f"no message text in the hub's files: {hits}")
    finally:
        scratch.close()
    done()


if __name__ == "__main__":
    main()
