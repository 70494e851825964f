#!/usr/bin/env python3
"""Hostile peers against a real daemon: a configured peer that sends garbage after the
handshake, one that replays a recorded session, and a flood of bogus handshakes; the daemon
ends each bad session, gives a replayer nothing it can use, and real peers carry on."""
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ternlib import Daemon, Node, Scratch, check, done, free_port, link, wait_for

EVIL = os.environ.get("EVIL_PEER", "evil_peer")


def evil(node, hub, port, mode):
    p = subprocess.run([EVIL, os.path.join(node.home, "identity.key"), hub.idstring, str(port),
                        mode], capture_output=True, text=True, timeout=60)
    return p.stdout.strip()


def flood(port, count, stop):
    """count connections at a time, each a preamble and a random 'message 1'."""
    sent = 0
    while not stop.is_set():
        socks = []
        for _ in range(count):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(b"tern\x01K\x00\x60" + os.urandom(96))
                socks.append(s)
                sent += 1
            except OSError:
                pass
        for s in socks:
            s.close()
    return sent


def main():
    scratch = Scratch("daemon-hostile")
    try:
        hub, mallory, good = (Node(scratch, n, clock="trusted")
                              for n in ("hub", "mallory", "good"))
        port = free_port()
        link(mallory, hub, port)
        link(good, hub, port)
        dh = Daemon(hub, port=port)

        out = evil(mallory, hub, port, "garbage-record")
        check(out == "bye 1", f"a garbage record gets BYE protocol: {out!r}")
        out = evil(mallory, hub, port, "garbage-frame")
        check(out == "bye -1", f"a frame that fails to decrypt is closed without a word: {out!r}")
        # The handshake answer is 2 + 48 bytes; a session would have added HELLO and more.
        out = evil(mallory, hub, port, "replay")
        check(out in ("closed after 0 bytes", "closed after 50 bytes"),
              f"a replayed session gets the handshake answer at most: {out!r}")
        # Three real sessions (the replay's recording among them); the replay made none.
        ups = dh.count("mallory: link up")
        check(ups == 3, f"the replay brought no session up: {ups}\n{dh.text()[-2000:]}")
        check(dh.count("mallory: link down") == 3, "each bad session was ended")
        check(dh.proc.poll() is None, "the hub runs on")

        # A flood of bogus handshakes while a real peer sends 20 messages.
        stop = threading.Event()
        result = []
        t = threading.Thread(target=lambda: result.append(flood(port, 50, stop)))
        t.start()
        time.sleep(0.5)
        dg = Daemon(good, listen=False)
        t0 = time.monotonic()
        for i in range(20):
            good.run(["send", "hub", "-m", f"through the flood #{i}"], check_rc=0)
        wait_for(lambda: len(hub.inbox()) == 20, 60,
                 "every real message got through the flood")
        took = time.monotonic() - t0
        stop.set()
        t.join()
        print(f"{result[0] if result else 0} bogus handshakes; 20 real messages in {took:.1f} s")
        refused = dh.count("did not authenticate")
        st = json.loads(hub.run(["status", "--json"], check_rc=0).stdout)
        # Refused when their message 1 failed, or closed unread when more kept coming.
        check(refused >= 20 and st["refused_calls"] >= 100,
              f"the bogus handshakes were refused and counted: {refused}, {st['refused_calls']}")
        check(dh.proc.poll() is None, "the hub survived the flood")
        dg.stop()

        # 80 connections that say nothing do not keep a real peer from calling in.
        silent = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(80)]
        dg = Daemon(good, listen=False)
        good.run(["send", "hub", "-m", "past the silent ones"], check_rc=0)
        wait_for(lambda: len(hub.inbox()) == 21, 10, "a real peer got in past silent callers")
        for s in silent:
            s.close()
        dg.stop()
        dh.stop()
    finally:
        scratch.close()
    done()


if __name__ == "__main__":
    main()
