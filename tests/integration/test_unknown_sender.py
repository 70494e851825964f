#!/usr/bin/env python3
"""A short text from a node that is a peer but not yet a contact: the recipient cannot verify
its sender, so it refuses it for now (not for ever), says so at warn level, and takes it once
the operator adds the contact; the sender keeps it queued meanwhile."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ternlib import Daemon, Node, Scratch, check, done, free_port, inbox_texts, wait_for


def main():
    scratch = Scratch("unknown-sender")
    try:
        field, hub = Node(scratch, "field"), Node(scratch, "hub")
        port = free_port()
        field.run(["peer", "add", "hub", hub.idstring, "--addr", f"127.0.0.1:{port}"], check_rc=0)
        hub.run(["peer", "add", "field", field.idstring], check_rc=0)
        field.add_contact(hub)  # the field knows the hub; the hub does not know the field
        field.run(["send", "hub", "-m", "from a new office"], check_rc=0)
        dh = Daemon(hub, port=port, args=["--log-level", "info"])
        df = Daemon(field, listen=False)
        wait_for(lambda: "not taken" in dh.text(), 20, "the hub says why it did not take it")
        check("sender unknown: add them as a contact" in dh.text(),
              f"the hub's log names the cause at warn level: {dh.text()[-500:]!r}")
        check(not hub.inbox(), "nothing unverified in the hub's inbox")
        check([e["state"] for e in field.sent()] == ["queued"],
              f"the field keeps it queued, not handed over: {field.sent()}")
        df.stop()

        # The operator adds the contact; the next session offers it again and it goes in.
        hub.add_contact(field)
        df = Daemon(field, listen=False)
        wait_for(lambda: inbox_texts(hub) == ["from a new office"], 20,
                 "taken once the sender is a contact")
        wait_for(lambda: [e["state"] for e in field.sent()] == ["delivered"], 20,
                 "and the delivery receipt comes home")
        df.stop()
        dh.stop()
    finally:
        scratch.close()
    done()


if __name__ == "__main__":
    main()
