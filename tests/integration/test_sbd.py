#!/usr/bin/env python3
"""Bundles over Iridium SBD: a field daemon with tern-sbd-modem (sim/) on a pty, the hub taking
the gateway's files with `tern sbd ingest`. A 2 KiB message goes in 340-byte messages with one
session failing and retried; a short text costs one message; the hub's bundles come back as MT
messages with `tern sbd outbox`, fetched by mailbox checks only while some wait; a re-ingest adds
nothing and a damaged file is refused with its reason."""
import glob
import json
import os
import re
import shutil
import signal
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ternlib import (Daemon, Node, Scratch, check, done, inbox_texts, introduce, pty_pair,
                     start_tool, stop_tool, wait_for)

if not shutil.which("socat"):
    print("SKIP: socat is not installed (apt-get install socat)")
    sys.exit(77)

scratch = Scratch("sbd")
try:
    field = Node(scratch, "field", clock="trusted")
    hub = Node(scratch, "hub", clock="trusted")
    introduce(field, hub)
    field.run(["peer", "add", hub.name, hub.idstring], check_rc=0)
    hub.run(["peer", "add", field.name, field.idstring], check_rc=0)
    d = scratch.sub("modem")
    near, far, socat = pty_pair(d, "tty")
    mo, mt = scratch.sub("mo"), scratch.sub("mt")
    stats = os.path.join(d, "stats.json")
    # Session 2 fails (no network service): the second message of the parcel is retried.
    modem, log = start_tool([os.environ["TERN_SBD_MODEM"], "--mo-dir", mo, "--mt-dir", mt,
                             "--session-ms", "200", "--fail", "2", "--stats", stats, far],
                            os.path.join(d, "modem.log"), "tern-sbd-modem: ready")
    with open(os.path.join(field.home, "tern.conf"), "w") as f:
        f.write(f"[peer {hub.name}]\nsbd = {near}\nsbd-retry = 2s\n")

    report = "".join(f"line {i:03d} of the situation report from the field office.\n"
                     for i in range(40))[:2048]
    check(len(report) == 2048, "a 2 KiB report")
    field.run(["send", hub.name, "-m", report], check_rc=0)
    df = Daemon(field, listen=False)
    wait_for(lambda: "sent over SBD" in df.text(), 60, "the report sent over SBD")
    pieces = sorted(glob.glob(os.path.join(mo, "*.sbd")))
    sizes = [os.path.getsize(p) for p in pieces]
    print(f"report: {len(pieces)} MO messages of {sizes} bytes")
    check(len(pieces) >= 7 and all(s <= 340 for s in sizes) and max(sizes) == 340,
          f"2 KiB in 340-byte messages: {sizes}")
    check("SBD session failed" in df.text(), "the scripted failure was seen")
    st = json.loads(field.run(["status", "--json"], check_rc=0).stdout)["peers"][0]
    print("field status:", st.get("sbd"))
    check(st.get("sbd", {}).get("failed") == 1 and st["sbd"]["parcels_out"] == 1,
          f"status counts one failed session and one parcel: {st.get('sbd')}")
    check(st["bytes_out"] == sum(sizes), f"bytes out {st['bytes_out']} == {sum(sizes)}")
    # Nothing of the bundle's primary block crosses the gateway: not the hub's node number.
    blob = b"".join(open(p, "rb").read() for p in pieces)
    check(struct.pack(">I", int(hub.node)) not in blob and report[:40].encode() not in blob,
          "the gateway sees neither the destination nor the text")

    # The hub takes the gateway's files in any order; all but one first: it waits, and the
    # last line counts the messages of the run that still wait.
    p = hub.run(["sbd", "ingest", pieces[1]])
    check(p.returncode == 0 and p.stderr.endswith("\n1 message waits for the rest of its parcel\n"),
          f"one message waits: {p.stderr!r}")
    p = hub.run(["sbd", "ingest"] + pieces[1:][::-1])
    check(p.returncode == 0 and "messages here" in p.stdout, f"partial ingest: {p.stdout}")
    check(p.stderr.endswith(f"\n{len(pieces) - 1} messages wait for the rest of their parcel\n"),
          f"partial ingest: {len(pieces) - 1} wait (one given twice): {p.stderr!r}")
    check(hub.inbox() == [], "nothing delivered before the parcel is whole")
    p = hub.run(["sbd", "ingest", pieces[0]])
    check(p.returncode == 0 and "delivered" in p.stdout, f"whole: {p.stdout} {p.stderr}")
    check("wait" not in p.stderr, f"nothing waits once the parcel is whole: {p.stderr!r}")
    check(inbox_texts(hub) == [report], "the report arrived whole")
    # Every message again in one run: spooled, then whole by the last file: none waits.
    p = hub.run(["sbd", "ingest"] + pieces)
    check(p.returncode == 0 and "duplicate" in p.stdout, f"re-ingest: {p.stdout}")
    check("wait" not in p.stderr, f"a parcel made whole in the same run waits not: {p.stderr!r}")
    check(len(hub.inbox()) == 1, "a re-ingest adds nothing")

    # A short text: one message.
    before = len(glob.glob(os.path.join(mo, "*.sbd")))
    field.run(["send", hub.name, "-m", "pump fixed"], check_rc=0)
    wait_for(lambda: df.count("sent over SBD") >= 2, 60, "the short text sent")
    new = sorted(set(glob.glob(os.path.join(mo, "*.sbd"))) - set(pieces))
    check(len(new) == 1, f"a short text costs one SBD message: {len(new)} (had {before})")
    p = hub.run(["sbd", "ingest"] + new)
    check(p.returncode == 0 and "delivered" in p.stdout, f"short text at the hub: {p.stdout}")
    check("pump fixed" in inbox_texts(hub), "the short text arrived")

    # Damage: a flipped byte makes the parcel unopenable; garbage is not tern's.
    bad = os.path.join(scratch.path, "bad.sbd")
    data = bytearray(open(new[0], "rb").read())
    data[len(data) // 2] ^= 0x20
    open(bad, "wb").write(data)
    junk = os.path.join(scratch.path, "junk.sbd")
    open(junk, "wb").write(b"hello from someone else's modem")
    p = hub.run(["sbd", "ingest", bad, junk])
    check(p.returncode == 1 and "no peer's key opens it" in p.stderr and
          "not a tern SBD message" in p.stderr, f"damage refused: {p.stderr}")
    check(len(hub.inbox()) == 2, "damage delivered nothing")

    # The other way: the hub's messages (and its delivery receipts for the two above) as MT
    # files; the field's next session brings the first, and checks follow while more wait.
    for i in range(3):
        hub.run(["send", field.name, "-m", f"hub reply {i}"], check_rc=0)
    out = scratch.sub("outbox")
    p = hub.run(["sbd", "outbox", field.name, out])
    mts = sorted(glob.glob(os.path.join(out, "*.sbd")))
    check(p.returncode == 0 and "5 bundles" in p.stderr and
          all(os.path.getsize(m) <= 270 for m in mts), f"outbox: {p.stderr} {mts}")
    p = hub.run(["sbd", "outbox", field.name, scratch.sub("outbox2")])
    check(os.listdir(os.path.join(scratch.path, "outbox2")) == [], "each is written once")
    for i, m in enumerate(mts):
        shutil.copy(m, os.path.join(mt, f"{i:04d}.sbd"))
    field.run(["send", hub.name, "-m", "anything for us?"], check_rc=0)
    wait_for(lambda: len(field.inbox()) >= 3, 60, "the hub's three replies at the field")
    check(sorted(inbox_texts(field)) == [f"hub reply {i}" for i in range(3)],
          "the replies, once each")
    def fetched():
        s = json.loads(field.run(["status", "--json"], check_rc=0).stdout)["peers"][0]["sbd"]
        return s["mt_messages"] == len(mts) and s["state"] == "idle"
    wait_for(fetched, 60, f"all {len(mts)} MT messages fetched")
    # The two messages the hub took are shown delivered (its receipts came back over SBD).
    wait_for(lambda: [e["state"] for e in field.sent()].count("delivered") == 2, 30,
             "the hub's delivery receipts at the field")
    # Sessions that sent (the field's receipts) brought MT messages for nothing; a check of its
    # own only while the gateway said more wait, and none once none do.
    checks = df.count("checking the SBD mailbox")
    check(checks <= len(mts) - 1, f"{checks} mailbox checks for {len(mts)} MT messages")
    time.sleep(4)
    check(df.count("checking the SBD mailbox") == checks, "no check once none wait")

    # With nothing to send, a message waiting at the gateway comes with sbd-check's checks.
    hub.run(["send", field.name, "-m", "hub reply 3"], check_rc=0)
    out3 = scratch.sub("outbox3")
    hub.run(["sbd", "outbox", field.name, out3], check_rc=0)
    for m in sorted(glob.glob(os.path.join(out3, "*.sbd"))):
        shutil.copy(m, os.path.join(mt, "9" + os.path.basename(m)))
    with open(os.path.join(field.home, "tern.conf"), "a") as f:
        f.write("sbd-check = 2s\n")
    df.signal(signal.SIGHUP)
    wait_for(lambda: "hub reply 3" in inbox_texts(field), 30, "a checked mailbox's message")
    check(df.count("checking the SBD mailbox (sbd-check)") >= 1, "it came with a check")

    # SIGKILL in the middle of a parcel: the next run sends the same parcel's remaining
    # messages, not a new parcel from the start (each message is paid for).
    long_text = "".join(f"line {i:03d} of the long report, sent over many sessions.\n"
                        for i in range(70))
    seen = set(glob.glob(os.path.join(mo, "*.sbd")))
    field.run(["send", hub.name, "-m", long_text], check_rc=0)
    fresh = lambda: sorted(set(glob.glob(os.path.join(mo, "*.sbd"))) - seen)
    wait_for(lambda: len(fresh()) >= 4, 60, "4 messages of the long report")
    df.kill()
    count = int(re.findall(r"goes over SBD in (\d+) messages", df.text())[-1])
    start = len(df.text())
    df = Daemon(field, listen=False)
    wait_for(lambda: "sent over SBD" in df.text()[start:], 90, "the long report after the restart")
    check("goes on over SBD" in df.text()[start:], "the restart took the parcel up")
    got = fresh()
    # Others may have gone meanwhile (the field's receipts): the report's are those of its count.
    heads = [open(g, "rb").read()[:9] for g in got]
    mine = [h for h in heads if h[8] == count]
    print(f"long report: {count} messages in its parcel, {len(mine)} sent across the kill")
    check(len({h[1:7] for h in mine}) == 1, "one parcel, not a new one after the restart")
    check({h[7] for h in mine} == set(range(count)) and len(mine) <= count + 1,
          f"{len(mine)} sent for a parcel of {count}: the one in the air at the kill twice")
    p = hub.run(["sbd", "ingest"] + got)
    check(p.returncode == 0 and long_text in inbox_texts(hub), f"whole at the hub: {p.stderr}")
    df.stop()
    s = stop_tool(modem, log, stats)
    print("modem:", s)
    socat.terminate()
finally:
    scratch.close()
done()
