#!/usr/bin/env python3
"""tern run end to end: real daemons on loopback carry messages over several hops, forward
for others, bring receipts home, survive restarts, and stay silent to strangers."""
import json
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ternlib import (Daemon, Node, Scratch, check, done, free_port, inbox_texts, introduce,
                     link, wait_for)


def status(node):
    p = node.run(["status", "--json"])
    return json.loads(p.stdout) if p.returncode == 0 else None


def delivered(node, n):
    return len(node.inbox()) >= n


def sent_states(node):
    return sorted(e["state"] for e in node.sent())


def main():
    scratch = Scratch("daemon")
    try:
        f1, r, hub, f2 = (Node(scratch, n, clock="trusted") for n in ("f1", "r", "hub", "f2"))
        ports = {n: free_port() for n in ("r", "hub")}
        # f1 -> r -> hub <- f2: f1 and f2 dial; r dials the hub; routes by default.
        link(f1, r, ports["r"], contacts=False)
        link(r, hub, ports["hub"], contacts=False)
        link(f2, hub, ports["hub"], contacts=False)
        introduce(f1, f2)
        introduce(f1, hub)
        f1.run(["route", "add", "default", "r"], check_rc=0)
        r.run(["route", "add", "default", "hub"], check_rc=0)
        f2.run(["route", "add", "default", "hub"], check_rc=0)
        hub.run(["route", "add", "f1", "r"], check_rc=0)

        # No daemon yet: status says so on stderr and exits 1; --json still gives a document.
        p = r.run(["status"])
        check(p.returncode == 1 and p.stdout == "" and p.stderr ==
              "tern: status: no daemon runs on this node home (start it with tern run)\n",
              f"status without a daemon: {p.returncode} {p.stdout!r} {p.stderr!r}")
        p = r.run(["status", "--json"])
        check(p.returncode == 1 and json.loads(p.stdout or "null") == {"running": False} and
              "tern: status: no daemon runs" in p.stderr,
              f"status --json without a daemon: {p.returncode} {p.stdout!r} {p.stderr!r}")

        # Queued before any daemon runs: sent once links come up.
        f1.run(["send", "f2", "-m", "across three hops"], check_rc=0)
        f1.run(["send", "hub", "-m", "to the hub", "--priority", "urgent"], check_rc=0)
        d = {n.name: Daemon(n, port=ports.get(n.name)) for n in (hub, r)}
        d["f1"] = Daemon(f1, listen=False)
        d["f2"] = Daemon(f2, listen=False)
        wait_for(lambda: delivered(f2, 1), 20, "f2 got f1's message over f1 -> r -> hub -> f2")
        wait_for(lambda: delivered(hub, 1), 20, "hub got f1's message")
        check(inbox_texts(f2) == ["across three hops"], f"f2's inbox: {inbox_texts(f2)}")
        wait_for(lambda: sent_states(f1) == ["delivered", "delivered"], 20,
                 f"delivery receipts came home to f1: {sent_states(f1)}")
        wait_for(lambda: not r.queue() and not hub.queue(), 10, "relays hold nothing")

        # Sent while the daemons run: offered at once, without a restart or a rescan tick.
        t0 = time.monotonic()
        f2.run(["send", "f1", "-m", "a reply while running"], check_rc=0)
        wait_for(lambda: delivered(f1, 1), 5, "f2's reply reached f1 while the daemons ran")
        print(f"reply delivered in {time.monotonic() - t0:.2f} s over 3 hops")

        st = status(r)
        if check(st is not None, "tern status --json answers while the daemon runs"):
            peers = {p["name"]: p for p in st["peers"]}
            check(peers["hub"]["up"] and peers["hub"]["direction"] == "outbound",
                  f"r's link to the hub is up: {peers.get('hub')}")
            check(peers["f1"]["up"] and peers["f1"]["direction"] == "inbound",
                  f"f1's link to r is up: {peers.get('f1')}")
            check(peers["hub"]["bytes_out"] > 0 and peers["hub"]["bytes_in"] > 0,
                  "bytes each way are counted")
        text = r.run(["status"], check_rc=0).stdout
        check("hub" in text and "up" in text, f"tern status prints the links: {text}")

        # Without a route a bundle waits (counted), and goes as soon as a route is added.
        f1.run(["route", "remove", "default"], check_rc=0)
        f1.run(["send", "f2", "-m", "waited for a route"], check_rc=0)
        time.sleep(0.5)
        st = status(f1)
        check(st is not None and st["no_route"] == 1, f"f1 counts it without a route: {st}")
        f1.run(["route", "add", "default", "r"], check_rc=0)
        wait_for(lambda: delivered(f2, 2), 10, "sent once the route was added")

        # The hub restarts: what f1 sends meanwhile waits at r and goes once it is back.
        d["hub"].stop()
        f1.run(["send", "f2", "-m", "while the hub was down"], check_rc=0)
        wait_for(lambda: len(r.queue()) == 1, 10, "r holds the bundle while the hub is down")
        d["hub"] = Daemon(hub, port=ports["hub"])
        wait_for(lambda: delivered(f2, 3), 30, "delivered after the hub came back")
        check(sorted(inbox_texts(f2)) == ["across three hops", "waited for a route",
                                          "while the hub was down"],
              f"nothing lost or doubled at f2: {inbox_texts(f2)}")

        # A stranger who knows r's identity string calls: no session, and not a byte back.
        eve = Node(scratch, "eve", clock="trusted")
        eve.run(["peer", "add", "r", r.idstring, "--addr", d["r"].addr], check_rc=0)
        d["eve"] = Daemon(eve, listen=False)
        wait_for(lambda: d["r"].count("did not authenticate") >= 1, 10,
                 "r refused the stranger")
        check("link up" not in d["eve"].text(), "the stranger never got a session")
        for junk in (b"GET / HTTP/1.0\r\n\r\n", b"tern\x01K\xff\xff" + os.urandom(300),
                     b"tern\x01K\x00\x40" + os.urandom(64), os.urandom(4096)):
            with socket.create_connection(("127.0.0.1", ports["r"]), timeout=10) as s:
                s.sendall(junk)
                s.shutdown(socket.SHUT_WR)
                try:
                    got = s.recv(100)
                except ConnectionResetError:
                    got = b""
                check(got == b"", f"garbage {junk[:8]!r}... got no reply: {got!r}")
        d["eve"].stop()

        # SIGHUP with a new peer in the store: it can call in, and no link drops.
        f3 = Node(scratch, "f3", clock="trusted")
        link(f3, r, ports["r"])
        downs = d["r"].count("link down")
        d["r"].signal(signal.SIGHUP)
        d["f3"] = Daemon(f3, listen=False)
        wait_for(lambda: d["f3"].count("link up") >= 1, 10, "f3 got a link after SIGHUP")
        f3.run(["send", "r", "-m", "new here"], check_rc=0)
        wait_for(lambda: delivered(r, 1), 10, "f3's message reached r")
        check(d["r"].count("link down") == downs, "SIGHUP dropped no link")

        # A routing loop (r's default is the hub, the hub's route for ghost is r): the hop
        # limit ends it; the bundle is dropped, not carried round for ever.
        ghost = Node(scratch, "ghost", clock="trusted")
        introduce(f1, ghost)
        hub.run(["contact", "add", "ghost", ghost.idstring], check_rc=0)
        hub.run(["route", "add", "ghost", "r"], check_rc=0)
        f1.run(["send", "ghost", "-m", "round and round"], check_rc=0)
        wait_for(lambda: d["r"].count("hop limit") + d["hub"].count("hop limit") >= 1, 20,
                 "the looping bundle reached its hop limit and was dropped")
        wait_for(lambda: not r.queue() and not hub.queue(), 10, "nobody holds the looping bundle")

        for name in ("f3", "f1", "f2", "r", "hub"):
            d[name].stop()

        # Expired while waiting: dropped at the first purge and counted.
        f1.run(["route", "add", "default", "hub"], check_rc=1)  # hub is no peer of f1's
        f1.run(["send", "f2", "-m", "too late", "--lifetime", "1s"], check_rc=0)
        time.sleep(1.5)
        d["f1"] = Daemon(f1, listen=False, args=["--log-level", "info"])
        wait_for(lambda: d["f1"].count("expired bundles dropped") >= 1, 10,
                 "the expired bundle was purged")
        st = status(f1)
        check(st is not None and st["expired"] >= 1, f"status counts it: {st}")
        d["f1"].stop()
        check(" info: stopped" in d["r"].text(), "r logged a clean stop")
    finally:
        scratch.close()
    done()


if __name__ == "__main__":
    main()
