#!/usr/bin/env python3
"""The daemon's log: one line per event, journald's priority prefix and no timestamp under
journald, levels that filter, and never a key, a passphrase or a message's content, even at
debug level. (And status's unknown times, which come before the first line of a link.)"""
import base64
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ternlib import Daemon, Node, Scratch, check, done, free_port, link, wait_for

STAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warn|info|debug): \S")
JOURNAL = re.compile(r"^<[3467]>\S")


def secrets(node):
    """The secret keys of a node with an unprotected key file, in the forms a log might use."""
    key = open(os.path.join(node.home, "identity.key"), "rb").read()
    out = []
    for raw in (key[10:42], key[47:79]):  # the signing seed, the current box key
        out += [raw.hex(), raw.hex().upper(), base64.b64encode(raw).decode(),
                base64.b32encode(raw).decode().rstrip("=").lower()]
        out += [raw[i:i + 8].hex() for i in range(0, 32, 8)]  # a part of one, too
    return out


def main():
    scratch = Scratch("daemon-log")
    try:
        pw = os.path.join(scratch.path, "pass")
        with open(pw, "w") as f:
            f.write("correct horse battery staple\n")
        field = Node(scratch, "field", passphrase_file=pw)
        hub = Node(scratch, "hub")
        hub.env = {"JOURNAL_STREAM": "8:4242"}  # as systemd sets it for a service's stderr
        port = free_port()
        link(field, hub, port)
        text = "Pump repaired at the northern well, code 7731"
        name = "staff-list-kebri.csv"
        content = b"".join(b"row %06d: a name and a phone number\n" % i for i in range(3000))
        path = os.path.join(scratch.path, name)
        with open(path, "wb") as f:
            f.write(content)
        dh = Daemon(hub, port=port)
        # Before the first contact, status says so: null in JSON (docs/api.md), "never".
        st = json.loads(hub.run(["status", "--json"], check_rc=0).stdout)
        p = [x for x in st["peers"] if x["name"] == "field"]
        check(p and p[0]["last_contact"] is None and p[0]["up_since"] is None,
              f"unknown times are null in status --json: {p}")
        check("never" in hub.run(["status"], check_rc=0).stdout, "status text says never")
        df = Daemon(field, listen=False)
        field.run(["send", "hub", "-m", text], check_rc=0)
        field.run(["send", "hub", "--file", path], check_rc=0)
        wait_for(lambda: len(hub.inbox()) == 2, 30, "the hub has the text and the file")
        wait_for(lambda: all(e["state"] == "delivered" for e in field.sent()), 30,
                 "receipts came home")
        df.stop()
        dh.stop()

        logs = {"field": df.text(), "hub": dh.text()}
        forbidden = [(text, "the message"), (text.split(",")[0], "part of the message"),
                     (name, "the file's name"), ("correct horse", "the passphrase"),
                     (content[:24].decode(), "the file's content"),
                     (content[:24].hex(), "the file's content in hex")]
        forbidden += [(s, "a secret key of the hub") for s in secrets(hub)]
        for who, log in logs.items():
            check(log.count("acknowledged") >= 4,
                  f"{who}: a debug line for each bundle each way: {log[-800:]!r}")
            for needle, what in forbidden:
                check(needle not in log, f"{who}'s log holds {what}")

        # The field office's key file is sealed: its secrets are not on disk to compare. The
        # hub's are, and so are both identities' public parts, which a log may name.
        for line in logs["field"].splitlines():
            if not check(STAMPED.match(line), f"field: a timestamped line: {line!r}"):
                break
        for line in logs["hub"].splitlines():
            if not check(JOURNAL.match(line) and not STAMPED.match(line[3:]),
                         f"hub (journald): a priority prefix, no timestamp: {line!r}"):
                break
        check("<6>" in logs["hub"] and "<7>" in logs["hub"], "info and debug priorities used")

        # A peer that cannot be reached is worth one info line, not one per retry.
        lost = Node(scratch, "lost")
        lost.run(["peer", "add", "hub", hub.idstring, "--addr", f"127.0.0.1:{free_port()}"],
                 check_rc=0)
        dl = Daemon(lost, listen=False, args=["--log-level", "info"])
        wait_for(lambda: "cannot connect" in dl.text(), 10, "the failed call is logged")
        time.sleep(3.5)  # retries after 1 s and 2 s or so (backoff with jitter)
        dl.stop()
        check(dl.count("cannot connect") == 1,
              f"one line for the failed calls at info level: {dl.text()[-600:]!r}")

        # A level filters: at warn, a clean start and stop logs no info or debug line.
        before = len(dh.text())
        d = Daemon(hub, port=port, args=["--log-level", "warn"])
        d.stop()
        tail = d.text()[before:]
        check(not re.search(r"^<[67]>", tail, re.M), f"nothing below warn at --log-level warn: "
              f"{tail[:300]!r}")
    finally:
        scratch.close()
    done()


if __name__ == "__main__":
    main()
