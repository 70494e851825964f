#!/usr/bin/env python3
"""Bundles over Hayes modems: two daemons on ptys with tern-modem (sim/) as their modems and the
phone network between them. The field dials the hub when it has bundles: BUSY, then NO CARRIER,
then a call that carries them; the hub answers its RING; the idle call is hung up (+++, ATH).
The hub's reply waits for the field's next call, and a carrier lost mid-call is called again.
"""
import datetime
import json
import os
import signal
import time
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ternlib import (Daemon, Node, Scratch, check, done, inbox_texts, introduce, pty_pair,
                     start_tool, stop_tool, wait_for)

if not shutil.which("socat"):
    print("SKIP: socat is not installed (apt-get install socat)")
    sys.exit(77)

scratch = Scratch("modem")
try:
    field = Node(scratch, "field", clock="trusted")
    hub = Node(scratch, "hub", clock="trusted")
    introduce(field, hub)
    field.run(["peer", "add", hub.name, hub.idstring], check_rc=0)
    hub.run(["peer", "add", field.name, field.idstring], check_rc=0)
    d = scratch.sub("phone")
    f_tty, f_far, s1 = pty_pair(d, "field")
    h_tty, h_far, s2 = pty_pair(d, "hub")
    stats = os.path.join(d, "stats.json")
    modems, log = start_tool([os.environ["TERN_MODEM"], "--baud", "9600", "--ring-s", "1",
                              "--calls", "busy,no-carrier", "--stats", stats,
                              f"5550100={f_far}", f"5550200={h_far}"],
                             os.path.join(d, "modem.log"), "tern-modem: ready")
    field_conf = (f"[peer {hub.name}]\nserial = {f_tty}\nbaud = 19200\ndial = 5550200\n"
                  "modem-init = ATZ\nmodem-init = ATE0V1Q0X4S7=8\nidle-hangup = 4s\n"
                  "redial = 2s\ncost-per-mib = 12\n")
    with open(os.path.join(field.home, "tern.conf"), "w") as f:
        f.write(field_conf)
    with open(os.path.join(hub.home, "tern.conf"), "w") as f:
        f.write(f"[peer {field.name}]\nserial = {h_tty}\nbaud = 19200\nanswer = yes\n"
                "idle-hangup = 30s\n")
    p = field.run(["config", "check"])
    check(p.returncode == 0, f"the field's tern.conf checks: {p.stdout} {p.stderr}")

    field.run(["send", hub.name, "-m", "report over the phone line"], check_rc=0)
    blob = os.path.join(scratch.path, "survey.bin")
    with open(blob, "wb") as f:
        f.write(os.urandom(6000))
    field.run(["send", hub.name, "--file", blob], check_rc=0)
    dh = Daemon(hub, listen=False)
    df = Daemon(field, listen=False)
    wait_for(lambda: len(hub.inbox()) >= 2, 150, "both bundles at the hub")
    check(inbox_texts(hub) == ["report over the phone line"], "the text, once")
    t = df.text()
    check("call to 5550200 failed: BUSY" in t, "BUSY seen and called again")
    check("call to 5550200 failed: NO CARRIER" in t, "NO CARRIER seen and called again")
    check("CONNECT 9600" in t, "the third call connected")
    check("rings; answering" in dh.text(), "the hub answered the RING")
    wait_for(lambda: "hung up" in df.text(), 30, "the idle call hung up")
    wait_for(lambda: "ended: NO CARRIER" in dh.text(), 30, "the hub saw the field hang up")
    st = json.loads(field.run(["status", "--json"], check_rc=0).stdout)["peers"][0]
    m = st.get("modem", {})
    print("field modem:", m)
    check(m.get("state") == "idle" and m.get("calls") == 3 and m.get("connects") == 1 and
          m.get("failed") == 2, f"status: three calls, one connect, two failed: {m}")
    check(float(st.get("cost", "0")) > 0, f"the call's bytes have a cost: {st.get('cost')}")

    # The hub never dials: its reply waits for the field's next call, which a bundle makes.
    hub.run(["send", field.name, "-m", "reply from the hub"], check_rc=0)
    wait_for(lambda: dh.count("ended: NO CARRIER") >= 1, 5, "on hook")
    check(inbox_texts(field) == [], "the reply waits while the line is down")
    field.run(["send", hub.name, "-m", "second report"], check_rc=0)
    wait_for(lambda: "reply from the hub" in inbox_texts(field), 60, "the reply on the next call")
    wait_for(lambda: "second report" in inbox_texts(hub), 60, "the second report")
    wait_for(lambda: df.count("hung up") >= 2, 60, "the second call hung up when idle")

    # A carrier lost mid-call: the file resumes on the call after.
    big = os.path.join(scratch.path, "big.bin")
    with open(big, "wb") as f:
        f.write(os.urandom(40000))
    calls = df.count("calling 5550200")
    field.run(["send", hub.name, "--file", big], check_rc=0)
    wait_for(lambda: df.count("calling 5550200") > calls and "CONNECT" in df.text(), 30,
             "a call for the file")
    wait_for(lambda: df.count("CONNECT 9600") >= 3, 30, "online for the file")
    time.sleep(8)  # a few KiB of the file cross at 960 bytes a second
    modems.send_signal(signal.SIGUSR1)
    wait_for(lambda: "ended: NO CARRIER" in df.text(), 15, "the field saw the carrier go")
    wait_for(lambda: len(hub.inbox()) >= 4, 120, "the file after the next call")
    files = [e for e in hub.inbox() if e.get("kind") == "file"]
    check(len(files) == 2, f"two files at the hub, once each: {len(files)}")
    saved = scratch.sub("saved")
    for e in files:
        hub.run(["save", e["id"], saved], check_rc=0)
    check(open(os.path.join(saved, "big.bin"), "rb").read() == open(big, "rb").read(),
          "the file cut off by the carrier arrived whole")
    # Outside its contact windows the field does not call, whatever waits; when one opens,
    # it calls at once.
    wait_for(lambda: df.count("hung up") >= 3, 60, "the file's call hung up when idle")
    now = datetime.datetime.now(datetime.timezone.utc)
    hm = lambda t: t.strftime("%H:%M")
    for window, what in ((f"{hm(now + datetime.timedelta(hours=2))}-"
                          f"{hm(now + datetime.timedelta(hours=3))}", "closed"),
                         (f"{hm(now - datetime.timedelta(minutes=2))}-"
                          f"{hm(now + datetime.timedelta(minutes=60))}", "open")):
        with open(os.path.join(field.home, "tern.conf"), "w") as f:
            f.write(field_conf + f"window = {window}\n")
        reloads = df.count("SIGHUP")
        calls = df.count("calling 5550200")
        df.signal(signal.SIGHUP)
        wait_for(lambda: df.count("SIGHUP") > reloads, 10, "the field reloaded")
        if what == "closed":
            field.run(["send", hub.name, "-m", "after hours"], check_rc=0)
            time.sleep(8)
            check(df.count("calling 5550200") == calls, "no call outside the window")
    wait_for(lambda: "after hours" in inbox_texts(hub), 60, "the call once the window opened")

    # A window that opens with nothing to send still gets a call: the hub's reply comes on it.
    wait_for(lambda: df.count("hung up") >= 4, 60, "the after-hours call hung up when idle")
    hub.run(["send", field.name, "-m", "waiting at the hub"], check_rc=0)
    for window in (f"{hm(now + datetime.timedelta(hours=2))}-"
                   f"{hm(now + datetime.timedelta(hours=3))}",
                   f"{hm(now - datetime.timedelta(minutes=3))}-"
                   f"{hm(now + datetime.timedelta(minutes=61))}"):
        with open(os.path.join(field.home, "tern.conf"), "w") as f:
            f.write(field_conf + f"window = {window}\n")
        reloads = df.count("SIGHUP")
        df.signal(signal.SIGHUP)
        wait_for(lambda: df.count("SIGHUP") > reloads, 10, "the field reloaded")
        time.sleep(6)  # the policy tick (5 s) sees the window closed, then open
    wait_for(lambda: "waiting at the hub" in inbox_texts(field), 60, "a call to receive")
    check("(a contact window opened)" in df.text(), "the call was made for the window")
    df.stop()
    dh.stop()
    s = stop_tool(modems, log, stats)
    print("tern-modem:", json.dumps(s)[:600])
    s1.terminate()
    s2.terminate()
finally:
    scratch.close()
done()
