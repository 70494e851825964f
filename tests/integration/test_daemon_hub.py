#!/usr/bin/env python3
"""A hub daemon with 20 field daemons at once: every message between offices, through the hub,
arrives exactly once, and every sender learns it was delivered."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ternlib import Daemon, Node, Scratch, check, done, free_port, introduce, link, wait_for

FIELDS = 20
PER_FIELD = 3


def main():
    scratch = Scratch("daemon-hub")
    daemons = []
    try:
        hub = Node(scratch, "hub", clock="trusted")
        port = free_port()
        fields = [Node(scratch, f"f{i:02d}", clock="trusted") for i in range(FIELDS)]
        for f in fields:
            link(f, hub, port)
            f.run(["route", "add", "default", "hub"], check_rc=0)
        # Each office writes to the next one round the ring, and to the hub.
        for i, f in enumerate(fields):
            nxt = fields[(i + 1) % FIELDS]
            introduce(f, nxt)
            for k in range(PER_FIELD):
                f.run(["send", nxt.name, "-m", f"{f.name} to {nxt.name} #{k}"], check_rc=0)
            f.run(["send", "hub", "-m", f"{f.name} reporting"], check_rc=0)
        daemons.append(Daemon(hub, port=port))
        daemons += [Daemon(f, listen=False) for f in fields]
        wait_for(lambda: len(hub.inbox()) == FIELDS, 60, "the hub heard from every office")
        for i, f in enumerate(fields):
            prev = fields[i - 1]
            wait_for(lambda: len(f.inbox()) >= PER_FIELD, 60, f"{f.name} got its messages")
            texts = sorted(f.run(["read", e["id"]], check_rc=0).stdout for e in f.inbox())
            want = sorted(f"{prev.name} to {f.name} #{k}" for k in range(PER_FIELD))
            check(texts == want, f"{f.name}: exactly its messages, once: {texts}")
        for f in fields:
            wait_for(lambda: all(e["state"] == "delivered" for e in f.sent()), 60,
                     f"{f.name}: every message known delivered")
        check(hub.queue() == [], "the hub holds nothing")
        check(daemons[0].count("link up") >= FIELDS, "the hub had a link with every office")
    finally:
        for d in daemons:
            d.stop()
        scratch.close()
    done()


if __name__ == "__main__":
    main()
