"""Crashes, as sets: bundles submitted at a field daemon travel field -> relay -> hub (three real
`tern run` on loopback) while a seeded killer SIGKILLs a random one of the three at random
moments and starts it again; some of the `tern send` processes are SIGKILLed mid-call too.
What happened is recorded here, outside the system under test, and checked as sets once the
kills stopped and the network drained:

- submitted: what the field confirmed (`tern send` ids on stdout, exit 0; an API `send`
  reply). A send killed mid-call (or an API call cut by a killed daemon) is "maybe": it may
  or may not have gone in, but never twice. A send that failed (exit 1, an error reply)
  submitted nothing.
- acknowledged: the field's own view (`tern queue --json` while it runs, the API's `sent` at
  the end): every submitted message forwarded, then delivered (its receipt came home), and no
  state going back.
- delivered: the hub's inbox through its API (`inbox`, then `read` of every entry), counted
  by serial number, so that dedupe cannot hide a duplicate.

lost = submitted - delivered, duplicated (a serial delivered twice), unexpected (delivered
but never attempted, or failed), corrupted (a text whose digest does not match): all 0.
Also: every queue empty, every daemon stopped cleanly at the end, every store passes
SQLite's integrity_check. Each text is "crash SERIAL PAD DIGEST", DIGEST a SHA-256 of the
serial and PAD.

Short form (the `faults` suite): TERN_FAULT_BUNDLES=1000 over TERN_FAULT_KILLS=20 kills.
Long form (about 20 minutes on 2 cores):

    TERN_FAULT_BUNDLES=10000 TERN_FAULT_KILLS=200 TERN_FAULT_SEED=7 \\
        TERN=build/relay/tern /usr/bin/python3 tests/faults/test_crash.py

TERN_FAULT_SEED (default 1) picks victims, moments and the submission mix; thread timing
still varies from run to run, so a failure prints what it saw, and TERN_FAULT_LOG=PATH keeps
the event record (one JSON object a line). TERN_KEEP=1 keeps the node homes and logs."""
import hashlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from ternlib import (LIVE, SANITIZED, TERN, Daemon, Node, Scratch, check, done,  # noqa: E402
                     free_port, introduce, link, wait_for)

BUNDLES = int(os.environ.get("TERN_FAULT_BUNDLES", "1000"))
KILLS = int(os.environ.get("TERN_FAULT_KILLS", "20"))
SEED = int(os.environ.get("TERN_FAULT_SEED", "1"))
# Mean wait between a kill's victim being back (links up again) and the next kill.
MEAN_S = 1.5 if SANITIZED else 1.0
# Reconnects back off up to 5 minutes after sessions cut short (relay/daemon_conn.c).
RECOVER_S = 420
HEX = set("0123456789abcdef")


def text_of(serial):
    """The text of serial: checkable on its own, of varied length."""
    r = random.Random(SEED * 1000003 + serial)
    # Now and then a long one, so that more kills land in the middle of a transfer.
    n = r.randint(10_000, 200_000) if r.random() < 0.02 else r.randint(8, 300)
    pad = "".join(r.choices("abcdefghijklmnopqrstuvwxyz0123456789-", k=n))
    digest = hashlib.sha256(f"{serial} {pad}".encode()).hexdigest()[:16]
    return f"crash {serial:06d} {pad} {digest}"


def parse(text):
    """(serial, intact) of a delivered text; serial None if it is none of ours."""
    parts = text.split(" ")
    if len(parts) != 4 or parts[0] != "crash" or not parts[1].isdigit():
        return None, False
    serial = int(parts[1])
    digest = hashlib.sha256(f"{serial} {parts[2]}".encode()).hexdigest()[:16]
    return serial, digest == parts[3] and text == text_of(serial)


class Record:
    """The test's own account of events, in memory and one JSON object a line in a file."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.out = open(path, "w")
        self.confirmed = {}  # serial -> bundle id (or None from an API reply without one)
        self.maybe = set()
        self.failed = set()
        self.attempted = set()
        self.bundle_serial = {}
        self.kills = {"field": 0, "relay": 0, "hub": 0}
        self.send_kills = 0

    def log(self, ev, **kw):
        with self.lock:
            self.out.write(json.dumps({"t": round(time.monotonic(), 3), "ev": ev, **kw}) + "\n")

    def submitted(self, serial, bundle):
        with self.lock:
            self.confirmed[serial] = bundle
            self.maybe.discard(serial)
            if bundle:
                self.bundle_serial[bundle] = serial
        self.log("submitted", serial=serial, bundle=bundle)

    def close(self):
        self.out.close()


class Api:
    """One connection to a daemon's api.sock (docs/api.md)."""

    def __init__(self, home, timeout=60):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout * (4 if SANITIZED else 1))
        self.sock.connect(os.path.join(home, "api.sock"))
        self.lines = self.sock.makefile("rb")

    def send_raw(self, data):
        self.sock.sendall(data)

    def reply(self):
        """The next reply (events are skipped: no subscription here)."""
        while True:
            line = self.lines.readline()
            if not line:
                raise ConnectionError("the daemon closed the connection")
            msg = json.loads(line)
            if "ok" in msg:
                return msg

    def call(self, line):
        self.send_raw(line.encode() + b"\n")
        return self.reply()

    def close(self):
        self.lines.close()
        self.sock.close()


def main():
    scratch = Scratch("crash")
    rec = Record(os.environ.get("TERN_FAULT_LOG") or os.path.join(scratch.path, "events.jsonl"))
    daemons = {}
    t0 = time.monotonic()
    try:
        run_all(scratch, rec, daemons)
    finally:
        for d in daemons.values():
            if d.proc.poll() is None:
                d.stop()
        rec.close()
        scratch.close()
    print(f"crash: wall time {time.monotonic() - t0:.0f} s")
    done()


def run_all(scratch, rec, daemons):
    field, relay, hub = (Node(scratch, n, clock="trusted") for n in ("field", "relay", "hub"))
    nodes = {"field": field, "relay": relay, "hub": hub}
    ports = {"relay": free_port(), "hub": free_port()}
    link(field, relay, ports["relay"], contacts=False)
    link(relay, hub, ports["hub"], contacts=False)
    introduce(field, hub)
    # The field reaches the hub through the relay; the hub's receipts go home the same way.
    field.run(["route", "add", "default", "relay"], check_rc=0)
    hub.run(["route", "add", "default", "relay"], check_rc=0)

    def start(name):
        return Daemon(nodes[name], port=ports.get(name), listen=name in ports)

    for name in ("hub", "relay", "field"):
        daemons[name] = start(name)

    cond = threading.Condition()
    state = {"kills": 0, "stop": False}

    def links_up():
        """Every link of the chain is up: both of the relay's, as it says."""
        p = relay.run(["status", "--json"])
        if p.returncode != 0:
            return False
        try:
            peers = json.loads(p.stdout)["peers"]
        except (ValueError, KeyError):
            return False
        return len(peers) == 2 and all(x["up"] for x in peers)

    def killer():
        rnd = random.Random(SEED * 2 + 1)
        for i in range(KILLS):
            # Mostly in the thick of it (links up, bundles moving); sometimes again at once,
            # while the last victim recovers (its start-up, its peers' reconnect).
            if rnd.random() < 0.8:
                wait_for(links_up, RECOVER_S, f"kill {i}: the links came back up", every=0.1)
                pause = rnd.uniform(0, 2 * MEAN_S)
            else:
                pause = rnd.uniform(0, 0.3)
            time.sleep(pause)  # the random moment of the fault, not a synchronisation
            victim = rnd.choice(("field", "relay", "hub"))
            daemons[victim].kill()
            rec.kills[victim] += 1
            rec.log("killed", victim=victim, n=i)
            time.sleep(rnd.uniform(0, 0.5))  # down for a moment, or not at all
            daemons[victim] = start(victim)
            rec.log("restarted", victim=victim)
            with cond:
                state["kills"] = i + 1
                cond.notify_all()

    send_s = [0.05]  # how long a tern send takes here, a moving average

    def send_cli(rnd, serials):
        """tern send (-m for one, --lines for several), sometimes SIGKILLed mid-call."""
        texts = [text_of(s) for s in serials]
        if len(serials) == 1 and len(texts[0]) < 1000 and rnd.random() < 0.5:
            args, stdin = ["-m", texts[0]], None
        else:
            args, stdin = ["--lines"], ("\n".join(texts) + "\n").encode()
        cmd = [TERN, "--home", field.home, "send", "hub"] + args
        env = dict(os.environ)
        env.pop("TERN_HOME", None)
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        LIVE.add(proc)
        started = time.monotonic()
        if rnd.random() < 0.15:
            # Anywhere in a call of the usual length: before, during or after its commit.
            timer = threading.Timer(rnd.uniform(0, 1.2 * send_s[0]), proc.send_signal,
                                    (signal.SIGKILL,))
            timer.start()
            out, err = proc.communicate(stdin, timeout=600)
            timer.cancel()
        else:
            out, err = proc.communicate(stdin, timeout=600)
            if proc.returncode == 0:
                send_s[0] = 0.8 * send_s[0] + 0.2 * (time.monotonic() - started)
        LIVE.discard(proc)
        killed = proc.returncode == -signal.SIGKILL
        if killed:
            rec.send_kills += 1
        # An id on stdout is a durable commit: whole lines only, in the order of the texts.
        ids = [w for w in out.decode(errors="replace").split("\n")[:-1]
               if len(w) == 64 and set(w) <= HEX]
        for s, bid in zip(serials, ids):
            rec.submitted(s, bid)
        rest = serials[len(ids):]
        if proc.returncode == 0:
            check(not rest, f"tern send exit 0 but {len(rest)} ids missing: {err[-300:]!r}")
        elif killed:
            rec.maybe.update(rest)
            rec.log("maybe", serials=rest, how="tern send killed")
        else:
            rec.failed.update(rest)
            rec.log("failed", serials=rest, rc=proc.returncode, err=err.decode()[-300:])

    def send_api(serials):
        """API sends, pipelined on one connection to the field's daemon (which may die)."""
        try:
            api = Api(field.home)
        except OSError:
            return False  # down right now: the CLI instead
        pending = list(serials)
        try:
            api.send_raw(b"".join(b"send to=hub length=%d\n" % len(text_of(s)) +
                                  text_of(s).encode() for s in serials))
            while pending:
                r = api.reply()
                s = pending.pop(0)
                if r.get("ok"):
                    rec.submitted(s, r["bundles"][0]["id"])
                else:
                    rec.failed.add(s)
                    rec.log("failed", serials=[s], reply=r)
        except (OSError, ConnectionError, ValueError):
            pass
        finally:
            api.close()
        if pending:
            rec.maybe.update(pending)
            rec.log("maybe", serials=pending, how="API connection cut")
        return True

    acks = {}  # message id -> the furthest state the field showed

    def poll_acks():
        rank = {"queued": 0, "forwarded": 1, "delivered": 2}
        p = field.run(["queue", "--json"])
        if p.returncode != 0:
            return
        for e in json.loads(p.stdout)["sent"]:
            old = acks.get(e["id"], "queued")
            check(rank[e["state"]] >= rank[old],
                  f"message {e['id']}: its state went back from {old} to {e['state']}")
            acks[e["id"]] = max(old, e["state"], key=rank.get)

    def submitter():
        rnd = random.Random(SEED * 2)
        serial, last_poll = 0, time.monotonic()
        t_start = last_poll
        chunk = max(1, BUNDLES // max(KILLS, 1) // 4)
        while serial < BUNDLES:
            with cond:
                k = state["kills"]
                target = BUNDLES if k >= KILLS - 1 else BUNDLES * (k + 1) // KILLS
                if serial >= target:
                    cond.wait(timeout=1)
                    continue
            n = min(target - serial, rnd.randint(1, 2 * chunk))
            how = rnd.choices(("cli", "api"), (75, 25))[0]
            serials = list(range(serial, serial + n))
            rec.attempted.update(serials)
            rec.log("attempt", serials=[serials[0], serials[-1]], how=how)
            if how != "api" or not send_api(serials):
                send_cli(rnd, serials)
            serial += n
            if time.monotonic() - last_poll > 5:
                poll_acks()
                last_poll = time.monotonic()
            # Spread over the time between kills (as seen so far), so that bundles are on
            # the move whenever one comes: pacing of the work, not a synchronisation.
            per_kill = (time.monotonic() - t_start) / max(state["kills"], 1)
            time.sleep(rnd.uniform(0, 2 * min(per_kill, 10) / 4))

    threads = [threading.Thread(target=killer), threading.Thread(target=submitter)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kill_end = time.monotonic()

    # Drained: nothing waits anywhere, and every message the field knows is delivered.
    def drained():
        for n in nodes.values():
            p = n.run(["queue", "--json"])
            if p.returncode != 0:
                return False
            q = json.loads(p.stdout)
            if q["bundles"]:
                return False
            if n is field and any(e["state"] != "delivered" for e in q["sent"]):
                return False
        return True

    wait_for(drained, RECOVER_S + 300, "the network drained after the kills", every=1)
    drain_s = time.monotonic() - kill_end
    poll_acks()

    # Delivered: every inbox entry of the hub, read back through its API.
    delivered = {}  # serial -> count
    corrupted, unknown = [], []
    api = Api(hub.home)
    entries, after = [], 0
    while True:
        r = api.call(f"inbox after={after} limit=1000")
        check(r.get("ok"), f"hub API inbox: {r}")
        entries += r.get("messages", [])
        if not r.get("messages") or not r.get("more"):
            break
        after = r["messages"][-1]["seq"]
    cli_inbox = hub.inbox()
    check(len(cli_inbox) == len(entries),
          f"tern inbox and the API agree: {len(cli_inbox)} vs {len(entries)}")
    check(len({e["id"] for e in entries}) == len(entries), "no message id twice in the inbox")
    for i in range(0, len(entries), 200):
        block = entries[i:i + 200]
        api.send_raw(b"".join(f"read id={e['id']}\n".encode() for e in block))
        for e in block:
            r = api.reply()
            if not r.get("ok") or "text" not in r:
                corrupted.append((e["id"], r))
                continue
            serial, intact = parse(r["text"])
            if serial is None:
                unknown.append(r["text"][:80])
                continue
            delivered[serial] = delivered.get(serial, 0) + 1
            if not intact:
                corrupted.append((e["id"], r["text"][:120]))
    api.close()

    # Acknowledged: the field's sent rows, by bundle id (the API lists both ids).
    api = Api(field.home)
    sent, offset = [], 0
    while True:
        r = api.call(f"sent limit=1000 offset={offset}")
        check(r.get("ok"), f"field API sent: {r}")
        sent += r.get("sent", [])
        offset += len(r.get("sent", []))
        if not r.get("sent") or not r.get("more"):
            break
    api.close()

    for name in ("field", "relay", "hub"):
        d = daemons[name]
        d.stop()  # SIGTERM: exit 0 expected
        text = d.text()
        for bad in ("AddressSanitizer", "runtime error", "quarantin", "LeakSanitizer"):
            check(bad not in text, f"{name}: its log says {bad}:\n" +
                  "\n".join(x for x in text.splitlines() if bad in x)[:2000])
    for name, n in nodes.items():
        db = sqlite3.connect(os.path.join(n.home, "store.db"))
        ok = db.execute("PRAGMA integrity_check").fetchall()
        db.close()
        check(ok == [("ok",)], f"{name}: the store passes integrity_check: {ok[:5]}")

    confirmed = set(rec.confirmed)
    got = set(delivered)
    lost = sorted(confirmed - got)
    dup = sorted(s for s, c in delivered.items() if c > 1)
    unexpected = sorted(got - confirmed - rec.maybe) + unknown
    maybe_in = len(got & rec.maybe)
    by_bundle = {e["bundle"]: e for e in sent}
    acked = {rec.confirmed[s] for s in confirmed if by_bundle.get(rec.confirmed[s], {}).get(
        "state") == "delivered"}
    unacked = sorted(s for s in confirmed if rec.confirmed[s] not in acked)
    acked_not_in = sorted(s for s in confirmed if rec.confirmed[s] in acked and s not in got)
    inbox_ids = {e["id"] for e in entries}
    shown_not_in = sorted(m for m, v in acks.items() if v == "delivered" and m not in inbox_ids)
    kills = sum(rec.kills.values())
    print(f"crash: seed {SEED}: {len(confirmed)} submitted ({len(rec.attempted)} attempted, "
          f"{len(rec.maybe)} maybe, {maybe_in} of them delivered, {len(rec.failed)} failed); "
          f"{kills} kills (field {rec.kills['field']}, relay {rec.kills['relay']}, "
          f"hub {rec.kills['hub']}) and {rec.send_kills} of tern send; "
          f"{len(entries)} delivered, {len(acked)} acknowledged; lost {len(lost)}, "
          f"duplicated {len(dup)}, unexpected {len(unexpected)}, corrupted {len(corrupted)}, "
          f"unacknowledged {len(unacked)}; drained {drain_s:.0f} s after the last kill")
    check(kills == KILLS, f"{KILLS} kills made: {kills}")
    check(len(confirmed) + len(rec.maybe) + len(rec.failed) == BUNDLES == len(rec.attempted),
          "every serial attempted once and accounted for")
    check(not lost, f"lost: {lost[:20]}")
    check(not dup, f"duplicated: {dup[:20]}")
    check(not unexpected, f"unexpected: {unexpected[:20]}")
    check(not corrupted, f"corrupted: {corrupted[:5]}")
    check(not unacked, f"submitted but not acknowledged delivered at the field: {unacked[:20]}")
    check(not acked_not_in, f"acknowledged but not in the inbox: {acked_not_in[:20]}")
    check(not shown_not_in, f"shown delivered at the field, not in the inbox: {shown_not_in[:5]}")
    check(len(sent) == len(confirmed) + maybe_in,
          f"the field's sent rows are what it confirmed and what of maybe went in: "
          f"{len(sent)} vs {len(confirmed)} + {maybe_in}")
    check(len(entries) == len(got), f"one inbox entry per serial: {len(entries)} vs {len(got)}")


if __name__ == "__main__":
    main()
