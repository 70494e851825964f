#!/usr/bin/env python3
"""A daemon SIGKILLed in the middle of a large file, on either side: the transfer resumes
from what the receiver kept, the file arrives once and whole, and nothing is left behind."""
import glob
import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ternlib import (SANITIZED, Daemon, Node, Scratch, Throttle, check, done, free_port, link,
                     wait_for)

SIZE = (24 if SANITIZED else 64) * 1024 * 1024
# The link is held to this rate, so that a transfer lasts seconds and can be cut midway.
RATE = (4 if SANITIZED else 16) * 1024 * 1024


def staged(node):
    files = glob.glob(os.path.join(node.home, "store.db-payloads", "in-*"))
    return sum(os.path.getsize(f) for f in files)


def sent_bytes(d):
    """Bytes the sender wrote towards its one peer, as its status says (this run only)."""
    import json
    p = d.node.run(["status", "--json"])
    if p.returncode != 0:
        return 0
    return json.loads(p.stdout)["peers"][0]["bytes_out"]


def one_round(scratch, victim):
    """victim: hub or field, SIGKILLed; cut: the link alone is cut, both daemons live on."""
    f = Node(scratch, f"field-{victim}", clock="trusted")
    hub = Node(scratch, f"hub-{victim}", clock="trusted")
    port = free_port()
    proxy = Throttle(port, RATE)
    link(f, hub, proxy.port)
    src = os.path.join(scratch.path, f"big-{victim}.bin")
    with open(src, "wb") as out:
        block = os.urandom(1024 * 1024)
        for i in range(SIZE // len(block)):
            out.write(hashlib.sha256(block + bytes([i % 256])).digest() * 32768)
    want = hashlib.sha256(open(src, "rb").read()).hexdigest()
    f.run(["send", hub.name, "--file", src], check_rc=0)
    dh = Daemon(hub, port=port)
    df = Daemon(f, listen=False)
    # Kill when a third or more is staged at the hub (made durable at least once).
    wait_for(lambda: staged(hub) >= SIZE // 3, 60, f"{victim}: a third of the file was staged")
    if victim == "cut":
        # An urgent text sent now overtakes the bulk file still on its way.
        f.run(["send", hub.name, "-m", "urgent", "--priority", "urgent"], check_rc=0)
        wait_for(lambda: len(hub.inbox()) == 1, 30, "the urgent text arrived")
        kinds = [e["kind"] for e in hub.inbox()]
        check(kinds == ["text"], f"cut: the urgent text overtook the file: {kinds}")
    before = staged(hub)
    if victim == "cut":
        sent_before = sent_bytes(df)
        proxy.cut()
        print(f"link cut with {before >> 20} MiB staged at the hub")
    else:
        (dh if victim == "hub" else df).kill()
        print(f"{victim} killed with {before >> 20} MiB staged at the hub")
        (df if victim == "hub" else dh).stop()
        time.sleep(0.2)
        dh = Daemon(hub, port=port)
        df = Daemon(f, listen=False)
        sent_before = 0
    want_n = 2 if victim == "cut" else 1
    wait_for(lambda: len(hub.inbox()) == want_n, 120, f"{victim}: the file arrived after the restart")
    resent = sent_bytes(df) - sent_before
    df.stop()
    dh.stop()
    proxy.close()
    inbox = [e for e in hub.inbox() if e["kind"] == "file"]
    check(len(inbox) == 1 and len(hub.inbox()) == want_n,
          f"{victim}: delivered exactly once: {len(hub.inbox())}")
    out = scratch.sub(f"saved-{victim}")
    hub.run(["save", inbox[0]["id"], out], check_rc=0)
    saved = os.path.join(out, os.path.basename(src))
    got = hashlib.sha256(open(saved, "rb").read()).hexdigest() if os.path.exists(saved) else ""
    check(got == want, f"{victim}: the file is whole and unchanged")
    check(resent < SIZE - before // 2,
          f"{victim}: resumed: {resent >> 20} MiB sent after the restart, "
          f"{before >> 20} MiB of {SIZE >> 20} were staged")
    check(staged(hub) == 0, f"{victim}: no stage left at the hub")
    check(f.queue() == [], f"{victim}: the sender holds nothing more")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def stalled(scratch):
    """The receiver stops reading (SIGSTOP) mid-file: the sender's memory does not grow."""
    import signal
    f = Node(scratch, "field-stall", clock="trusted")
    hub = Node(scratch, "hub-stall", clock="trusted")
    port = free_port()
    proxy = Throttle(port, RATE)
    link(f, hub, proxy.port)
    src = os.path.join(scratch.path, "stall.bin")
    with open(src, "wb") as out:
        out.write(os.urandom(SIZE))
    f.run(["send", hub.name, "--file", src], check_rc=0)
    dh = Daemon(hub, port=port)
    df = Daemon(f, listen=False)
    wait_for(lambda: staged(hub) >= SIZE // 8, 60, "stall: the transfer is under way")
    dh.signal(signal.SIGSTOP)
    time.sleep(1)
    first = rss_kib(df.proc.pid)
    samples = []
    for _ in range(20):
        time.sleep(0.2)
        samples.append(rss_kib(df.proc.pid))
    grew = max(samples) - first
    print(f"sender RSS with a stalled receiver: {first} KiB, grew by {grew} KiB over 4 s")
    # ASan holds freed memory in quarantine, so RSS creeps there even when nothing leaks.
    bound = 16384 if SANITIZED else 1024
    check(grew < bound, f"stall: the sender's memory did not grow ({grew} KiB)")
    check(staged(hub) < SIZE, "stall: the hub was stopped before the end of the file")
    dh.signal(signal.SIGCONT)
    wait_for(lambda: len(hub.inbox()) == 1, 120, "stall: the file arrived once the hub read again")
    df.stop()
    dh.stop()
    proxy.close()


def main():
    scratch = Scratch("daemon-kill")
    try:
        one_round(scratch, "hub")
        one_round(scratch, "field")
        one_round(scratch, "cut")
        stalled(scratch)
    finally:
        scratch.close()
    done()


if __name__ == "__main__":
    main()
