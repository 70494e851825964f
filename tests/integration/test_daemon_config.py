#!/usr/bin/env python3
"""tern run with tern.conf: peers and routes from the file, per-link policy (minimum priority,
daily byte budget kept across restarts, contact windows), SIGHUP reloads without dropping
links, and a broken file stops a start but not a running daemon."""
import datetime
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ternlib import Daemon, Node, Scratch, check, done, free_port, introduce, wait_for


def write_conf(node, text):
    path = os.path.join(node.home, "tern.conf")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def texts(node):
    return sorted(node.run(["read", e["id"]], check_rc=0).stdout for e in node.inbox())


def window_not_now():
    """A 30-minute UTC window that starts 6 hours from now: closed for the whole test."""
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=6)
    end = t + datetime.timedelta(minutes=30)
    return f"{t:%H:%M}-{end:%H:%M}"


def main():
    scratch = Scratch("daemon-config")
    try:
        field, hub, other = (Node(scratch, n, clock="trusted") for n in ("field", "hub", "other"))
        introduce(field, hub)
        port = free_port()
        # Everything from the files: no `tern peer add` at all.
        write_conf(hub, f"listen = 127.0.0.1:{port}\n\n[peer field]\nid = {field.idstring}\n")
        write_conf(field, f"""log-level = debug
[peer hub]
id = {hub.idstring}
addr = 127.0.0.1:{port}
min-priority = normal
bytes-per-day = 64k
[route]
default = hub
""")
        p = field.run(["config", "check"])
        check(p.returncode == 0, f"the field's file checks: {p.stderr}")
        field.run(["send", "hub", "-m", "bulk waits", "--priority", "bulk"], check_rc=0)
        field.run(["send", "hub", "-m", "normal goes"], check_rc=0)
        field.run(["send", "hub", "-m", "urgent goes", "--priority", "urgent"], check_rc=0)
        big = os.path.join(scratch.path, "big.bin")
        with open(big, "wb") as f:
            f.write(os.urandom(100 * 1024))
        field.run(["send", "hub", "--file", big], check_rc=0)  # over the day's 64 KiB
        dh = Daemon(hub)
        df = Daemon(field, listen=False)
        wait_for(lambda: len(hub.inbox()) >= 2, 20, "normal and urgent messages went")
        time.sleep(1)
        check(texts(hub) == ["normal goes", "urgent goes"],
              f"only those at or above min-priority, within the budget: {texts(hub)}")
        check(len(field.queue()) == 2, f"the bulk text and the big file wait: {field.queue()}")
        st = json.loads(field.run(["status", "--json"], check_rc=0).stdout)
        check(st["peers"][0]["name"] == "hub" and st["peers"][0]["up"],
              f"the peer from the file is up: {st['peers']}")

        # The budget is kept across a restart: the big file still does not go.
        df.stop()
        df = Daemon(field, listen=False)
        wait_for(lambda: df.count("link up") >= 1, 10, "the field is back")
        time.sleep(1)
        check(len(hub.inbox()) == 2, "a restart did not refill the day's budget")

        # SIGHUP with a raised budget and no priority floor: all goes, and no link drops.
        downs = dh.count("link down")
        write_conf(field, f"""[peer hub]
id = {hub.idstring}
addr = 127.0.0.1:{port}
bytes-per-day = 10M
[route]
default = hub
""")
        df.signal(signal.SIGHUP)
        wait_for(lambda: len(hub.inbox()) == 4, 20, "after SIGHUP the rest went")
        check(dh.count("link down") == downs, "the reload dropped no link")

        # SIGHUP adding a peer from the file at the hub: the new office can call in.
        introduce(other, hub)
        write_conf(hub, f"listen = 127.0.0.1:{port}\n\n[peer field]\nid = {field.idstring}\n"
                        f"\n[peer other]\nid = {other.idstring}\n")
        dh.signal(signal.SIGHUP)
        wait_for(lambda: "2 peers" in dh.text(), 10, "the hub read its file again")
        write_conf(other, f"[peer hub]\nid = {hub.idstring}\naddr = 127.0.0.1:{port}\n")
        do = Daemon(other, listen=False)
        other.run(["send", "hub", "-m", "from the new office"], check_rc=0)
        wait_for(lambda: len(hub.inbox()) == 5, 20, "the new peer's message arrived")
        check(dh.count("link down") == downs, "adding a peer dropped no link")

        # A broken file on SIGHUP: logged with its line, the daemon goes on as it was.
        write_conf(hub, f"listen = 127.0.0.1:{port}\n[peer field]\nid = {field.idstring}\n"
                        "bogus = 1\n")
        dh.signal(signal.SIGHUP)
        wait_for(lambda: "tern.conf:4:" in dh.text(), 10, "the bad line was named")
        check(dh.proc.poll() is None, "the hub runs on after a bad reload")
        do.stop()
        df.stop()
        dh.stop()

        # ...and at start the same file stops the daemon with exit 1.
        p = hub.run(["run"])
        check(p.returncode == 1 and "tern.conf:4:" in p.stderr,
              f"a broken file stops a start: {p.returncode} {p.stderr[-300:]}")

        # A contact window that is closed now: the field does not call at all.
        write_conf(field, f"""[peer hub]
id = {hub.idstring}
addr = 127.0.0.1:{port}
window = {window_not_now()}
""")
        write_conf(hub, f"listen = 127.0.0.1:{port}\n[peer field]\nid = {field.idstring}\n")
        dh = Daemon(hub)
        field.run(["send", "hub", "-m", "waits for the window"], check_rc=0)
        df = Daemon(field, listen=False)
        time.sleep(2)
        check("link up" not in df.text().split("tern run: node")[-1],
              "no link outside the contact window")
        check(len(field.queue()) == 1, "the message waits for the window")
        df.stop()
        dh.stop()
    finally:
        scratch.close()
    done()


if __name__ == "__main__":
    main()
