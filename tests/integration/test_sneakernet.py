"""Sneakernet end to end: field -> mule -> hub over two sticks, custody receipts releasing each hop,
delivery receipts coming home, several offices sharing one stick, priority and size budgets,
pieces, and the progress bar on a terminal."""
import json
import os
import pty
import subprocess

from ternlib import TERN, Node, Scratch, check, done, stick_names

s = Scratch("sneakernet")
field, mule, hub = Node(s, "field"), Node(s, "mule"), Node(s, "hub")


def peer(a, b):
    a.run(["peer", "add", b.name, b.idstring, "--sneakernet"], check_rc=0)


files = stick_names


def export(node, stick, *args, rc=0):
    p = node.run(["export", stick, "--json"] + list(args), check_rc=rc)
    return json.loads(p.stdout) if p.stdout else None


def import_(node, stick, rc=0):
    p = node.run(["import", stick, "--json"], check_rc=rc)
    return json.loads(p.stdout)


def verdicts(result, verdict):
    return [f["file"] for f in result["files"] if f["verdict"] == verdict]


# field knows the hub end to end, but reaches it only through the mule.
field.add_contact(hub)
hub.add_contact(field)
peer(field, mule)
peer(mule, field)
peer(mule, hub)
peer(hub, mule)
field.run(["route", "add", "default", "mule"], check_rc=0)
hub.run(["route", "add", "default", "mule"], check_rc=0)

field.run(["send", "hub", "-m", "water levels rising"], check_rc=0)
report = os.path.join(s.path, "report.bin")
with open(report, "wb") as f:
    f.write(os.urandom(300_000))
field.run(["send", "hub", "--file", report], check_rc=0)
sent_ids = {b["id"] for b in field.queue()}
check(len(sent_ids) == 2, "field queues two bundles")

# Trip 1: field -> stick1 -> mule.
stick1, stick2 = s.sub("stick1"), s.sub("stick2")
x = export(field, stick1)
check(x["exported"] == 2 and x["for"] == ["mule"], f"field exports both for the mule: {x}")
check({f[:64] for f in files(stick1, "bundles")} == sent_ids, "the stick carries them by id")
check(len(files(stick1, "manifests")) == 1, "one manifest per export")
check(all(b["id"] in sent_ids and b["exported"] == 1 for b in field.queue())
      and len(field.queue()) == 2,
      "exported bundles stay queued at field until custody comes home, counted as exported")
x = export(field, stick1)
check(x["exported"] == 0 and x["listed_from_stick"] == 2,
      f"a second export writes nothing again, only lists what is there: {x}")

r = import_(mule, stick1)
check(r["queued"] == 2 and r["rejected"] == 0, f"the mule keeps both to forward: {r}")
check(r["custody_receipted"] == 2, "the mule writes custody for both")
check(len(files(stick1, "receipts")) == 1, "one custody receipt file on stick1")
r = import_(mule, stick1)
check(r["duplicate"] == 2 and r["custody_receipted"] == 0,
      "importing stick1 again changes nothing and writes no second receipt")
check(len(files(stick1, "receipts")) == 1, "still one receipt file")

# Trip 2: mule -> stick2 -> hub.
x = export(mule, stick2)
check(x["exported"] == 2 and x["for"] == ["field", "hub"], f"the mule forwards both: {x}")
check(x["manifests"] == 1, "one manifest, for the hub: the field gets nothing on this trip")
check(export(mule, stick2)["exported"] == 0, "nothing written twice on re-export")
r = import_(hub, stick2)
check(r["delivered"] == 2 and r["custody_receipted"] == 2, f"hub takes delivery: {r}")
check(r["receipts_queued"] == 1, "hub queues one delivery receipt for field")
inbox = hub.inbox()
texts = [hub.run(["read", e["id"]], check_rc=0).stdout for e in inbox if e["kind"] == "text"]
check(texts == ["water levels rising"], "the text arrives intact")
out = s.sub("saved")
(fe,) = [e for e in inbox if e["kind"] == "file"]
hub.run(["save", fe["id"], out], check_rc=0)
with open(os.path.join(out, "report.bin"), "rb") as a, open(report, "rb") as b:
    check(a.read() == b.read(), "the file arrives intact")

# The hub's delivery receipt goes back on stick2; the mule takes custody home from it.
x = export(hub, stick2)
check(x["exported"] == 1 and x["for"] == ["mule"], f"hub exports the delivery receipt: {x}")
r = import_(mule, stick2)
check(r["released"] == 2, f"the hub's custody receipt releases both at the mule: {r}")
check(r["queued"] == 1, "the mule keeps the delivery receipt to forward to field")
check(not any(f[:64] in sent_ids for f in files(stick2, "bundles")),
      "released bundles are removed from stick2")
mule_ids = {b["id"] for b in mule.queue()}
check(not (mule_ids & sent_ids) and len(mule_ids) == 1, "the mule holds only the receipt now")

# Back to field with stick1: custody from the mule, then the delivery receipt.
r = import_(field, stick1)
check(r["released"] == 2, f"the mule's custody receipt releases both at field: {r}")
check(files(stick1, "bundles") == [], "field removes its released copies from stick1")
check(files(stick1, "receipts") == [] and files(stick1, "manifests") == [],
      "and the receipt it consumed, and its own manifest that lists nothing any more")
check(field.queue() == [], "field's queue is empty")
states = {e["state"] for e in field.sent()}
check(states == {"forwarded"}, f"field's messages are forwarded: {states}")
x = export(mule, stick1)
check(x["exported"] == 1, "the mule sends the delivery receipt on to field")
r = import_(field, stick1)
check(r["delivery_receipts"] == 1, f"field takes the delivery receipt: {r}")
states = {e["state"] for e in field.sent()}
check(states == {"delivered"}, f"tern queue shows both delivered at field: {states}")

# One stick, many offices: two offices export onto one stick for the hub.
office = Node(s, "office")
office.add_contact(hub)
hub.add_contact(office)
peer(office, hub)
peer(hub, office)
peer(hub, field)  # custody receipts go to peers only: the hub must know field as one
shared = s.sub("shared")
field.run(["peer", "add", "hub", hub.idstring, "--sneakernet"], check_rc=0)
field.run(["send", "hub", "-m", "from field"], check_rc=0)
office.run(["send", "hub", "-m", "from office"], check_rc=0)
check(export(field, shared, "--for", "hub")["exported"] == 1, "field writes the shared stick")
check(export(office, shared)["exported"] == 1, "office writes it too")
check(len(files(shared, "manifests")) == 2, "two manifests side by side")
r = import_(hub, shared)
check(r["delivered"] == 2 and r["rejected"] == 0, f"hub takes both offices' bundles: {r}")
check(len(files(shared, "receipts")) == 2, "one custody receipt per exporter")
r = import_(office, shared)
check(r["released"] == 1, "office finds its own receipt and is released")
check(r["left"] == 1 and r["queued"] == 0,
      "office leaves field's bundle for the hub alone: it is not office's cargo")
check(r["rejected"] == 0 and len(files(shared, "receipts")) == 1,
      "and leaves field's receipt alone (it cannot open it)")
r = import_(field, shared)
check(r["released"] == 1 and files(shared, "receipts") == [], "field takes its own receipt")
check(field.queue() == [] and office.queue() == [], f"both offices are released: {field.queue()} {office.queue()}")

# One stick the whole way: field -> mule -> hub. The mule lists field's copies already on the
# stick in its own manifest for the hub, so the hub owes the mule a receipt for them.
f2, m2, h2 = Node(s, "f2"), Node(s, "m2"), Node(s, "h2")
f2.add_contact(h2)
h2.add_contact(f2)
m2.add_contact(f2)
f2.add_contact(m2)
for a_, b_ in ((f2, m2), (m2, f2), (m2, h2), (h2, m2)):
    peer(a_, b_)
f2.run(["route", "add", "default", "m2"], check_rc=0)
h2.run(["route", "add", "default", "m2"], check_rc=0)
f2.run(["send", "h2", "-m", "one stick all the way"], check_rc=0)
m2.run(["send", "f2", "-m", "the mule's own news for field"], check_rc=0)
one = s.sub("one-stick")
check(export(f2, one)["exported"] == 1, "field writes its bundle for the mule")
check(import_(m2, one)["queued"] == 1, "the mule takes it to forward")
x = export(m2, one)
check(x["exported"] == 1 and x["listed_from_stick"] == 1 and x["manifests"] == 2,
      f"the mule writes its own bundle for field, lists field's for the hub: {x}")
r = import_(h2, one)
check(r["delivered"] == 1 and r["custody_receipted"] == 1,
      f"the hub takes field's message and owes the mule a receipt: {r}")
check(r["left"] == 1 and r["queued"] == 0,
      "and leaves the mule's bundle for field alone: the hub is not its next hop")
r = import_(m2, one)
check(r["released"] == 1, f"the hub's receipt releases field's bundle at the mule: {r}")
mq = [b["to"] for b in m2.queue()]
check(mq == ["f2"], f"only the mule's own bundle for field is still queued there: {mq}")

# Priority first, then age; --max-bytes and --min-priority bound the trip.
src, dst = Node(s, "src"), Node(s, "dst")
src.add_contact(dst)
peer(src, dst)
for i, prio in enumerate(["bulk", "urgent", "normal", "urgent"]):
    src.run(["send", "dst", "-m", f"{prio} {i} " + "x" * 600, "--priority", prio], check_rc=0)
queued = src.queue()
check([b["priority"] for b in queued] == ["urgent", "urgent", "normal", "bulk"],
      "the queue is urgent first")
sizes = [b["size"] for b in queued]
stick3 = s.sub("stick3")
x = export(src, stick3, "--min-priority", "urgent")
check(x["exported"] == 2 and x["below_priority"] == 2, f"--min-priority urgent: {x}")
stick4 = s.sub("stick4")
x = export(src, stick4, "--max-bytes", str(sizes[0] + sizes[1] + 900))
check(x["exported"] == 2 and x["did_not_fit"] == 2, f"--max-bytes takes the two urgent: {x}")
urgent = {b["id"] for b in queued[:2]}
check({f[:64] for f in files(stick4, "bundles")} == urgent, "exactly the urgent ones")
p = src.run(["export", stick4, "--max-bytes", "12Q"], check_rc=2)
check("--max-bytes 12Q" in p.stderr, "a bad size is named")
p = src.run(["export", stick4, "--for", "nobody"], check_rc=1)
check("nobody: not a peer" in p.stderr, "an unknown peer is named")
bare = Node(s, "bare")
p = bare.run(["export", stick4], check_rc=1)
check("--sneakernet" in p.stderr, "without sneakernet peers, export says how to mark one")

# A copy here whose head rotted: a good copy from a stick is refused, never taken as a duplicate
# (a receipt for it would make the sender drop the last good copy).
q1, q2 = Node(s, "q1"), Node(s, "q2")
q1.add_contact(q2)
q2.add_contact(q1)
peer(q1, q2)
peer(q2, q1)
q1.run(["send", "q2", "-m", "keep me"], check_rc=0)
rot = s.sub("rot")
export(q1, rot)
check(import_(q2, rot)["delivered"] == 1, "q2 takes the message")
subprocess.run(["sqlite3", os.path.join(q2.home, "store.db"),
                "UPDATE bundles SET head_crc = head_crc + 1"], check=True)
r = import_(q2, rot, rc=1)
check(r["rejected"] == 1 and r["duplicate"] == 0 and r["custody_receipted"] == 0,
      f"the good copy is refused while a damaged one is here: {r}")
check(any("damaged copy of this bundle" in f["detail"] for f in r["files"]),
      f"and says why: {r['files']}")

# Bundles above the piece limit travel in pieces and are joined on import.
big = os.path.join(s.path, "big.bin")
with open(big, "wb") as f:
    f.write(os.urandom(2_500_000))
a, b = Node(s, "a"), Node(s, "b")
a.add_contact(b)
b.add_contact(a)
peer(a, b)
peer(b, a)
a.run(["send", "b", "--file", big], check_rc=0)
stick5 = s.sub("stick5")
env = {"TERN_STICK_PIECE_MAX": "1048576"}
a.run(["export", stick5], env=env, check_rc=0)
pieces = files(stick5, "bundles")
check([p[-4:] for p in pieces] == [".000", ".001", ".002"], f"three pieces: {pieces}")
check(os.path.getsize(os.path.join(stick5, "tern", "bundles", pieces[0][0], pieces[0])) == 1048576,
      "a full first piece")
r = json.loads(b.run(["import", stick5, "--json"], env=env, check_rc=0).stdout)
check(r["delivered"] == 1, f"pieces joined and delivered: {r}")
b.run(["save", b.inbox()[0]["id"], s.sub("b-saved")], check_rc=0)
with open(os.path.join(s.path, "b-saved", "big.bin"), "rb") as f1, open(big, "rb") as f2:
    check(f1.read() == f2.read(), "the joined file is intact")

# On a terminal: a progress bar with bytes, rate and time left; a plain line otherwise.
a.run(["send", "b", "--file", big], check_rc=0)
stick6 = s.sub("stick6")
master, slave = pty.openpty()
proc = subprocess.run([TERN, "--home", a.home, "export", stick6], stdout=subprocess.PIPE,
                      stderr=slave, env=dict(os.environ, TERM="xterm"), text=True)
os.close(slave)
tty = b""
while True:
    try:
        chunk = os.read(master, 4096)
    except OSError:
        break
    if not chunk:
        break
    tty += chunk
os.close(master)
check(proc.returncode == 0, "export on a terminal succeeds")
check(b"export [" in tty and b"ETA" in tty and b"/s" in tty, f"a progress bar is drawn: {tty!r}")
check(proc.stdout.startswith("exported 2 bundles") and proc.stdout.count("\n") == 1,
      f"one summary line (stick5's copy is not released yet, so it goes again): {proc.stdout!r}")
p = a.run(["export", s.sub("stick7")], check_rc=0)
check("ETA" not in p.stderr and p.stdout.count("\n") == 1, "no bar when stderr is not a tty")

s.close()
done()
