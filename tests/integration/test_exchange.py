"""The whole path through real tern processes: two homes exchange an encrypted text and a 50 MiB
file by bundle files; bad files are refused one by one and change nothing."""
import hashlib
import json
import os
import re
import sqlite3
import time

from ternlib import Node, Scratch, carry, check, done, introduce, rewrite_bundle

s = Scratch("exchange")
alice = Node(s, "alice")
bob = Node(s, "bob")
introduce(alice, bob)


def store_counts(node):
    db = sqlite3.connect(f"file:{node.home}/store.db?mode=ro", uri=True)
    counts = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("bundles", "inbox", "contacts")}
    db.close()
    return counts


# A text and a 50 MiB file.
text = "Water pump at the north site is fixed. Need 40 L diesel by Friday. -- A"
p = alice.run(["send", "bob", "-m", text], check_rc=0)
text_bid = p.stdout.strip()
check(len(text_bid) == 64 and all(c in "0123456789abcdef" for c in text_bid), "send prints a bundle id")
payload = os.urandom(50 * 1024 * 1024)
src = os.path.join(s.sub("outbox"), "survey-results.bin")
with open(src, "wb") as f:
    f.write(payload)
alice.run(["send", "bob", "--file", src, "--priority", "urgent"], check_rc=0)
q = alice.queue()
check(len(q) == 2 and q[0]["priority"] == "urgent", "two bundles queued, urgent first")
check(all(b["to"] == "bob" for b in q), "queue names the recipient")

files, p = carry(alice, bob, s)
check(len(files) == 2 and all(os.path.basename(f).endswith(".bundle") for f in files),
      "export writes <id>.bundle files")
check({os.path.basename(f)[:64] for f in files} == {b["id"] for b in q} and text_bid in
      {b["id"] for b in q}, "each file is named by its bundle's id")
check(p.returncode == 0 and p.stdout.count("delivered") == 2, "both delivered")
inbox = bob.inbox()
check(len(inbox) == 2 and all(e["from"] == "alice" for e in inbox), "inbox names the sender")
# alice's clock is not trusted, so her bundles carry no creation time: null, as docs/api.md says.
check(all(e["sent"] is None for e in inbox), f"an unknown sent time is null: {inbox}")
check(all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", e["received"]) for e in inbox),
      f"received is a UTC time: {inbox}")
txt = [e for e in inbox if e["kind"] == "text"][0]
fil = [e for e in inbox if e["kind"] == "file"][0]
check(bob.run(["read", txt["id"][:8]], check_rc=0).stdout == text, "text reads back exactly")
dest = s.sub("saved")
out = bob.run(["save", fil["id"], dest], check_rc=0).stdout.strip()
check(out == os.path.join(dest, "survey-results.bin"), "saved under its own name")
with open(out, "rb") as f:
    check(hashlib.sha256(f.read()).digest() == hashlib.sha256(payload).digest(), "file bytes equal")
out2 = bob.run(["save", fil["id"], dest], check_rc=0).stdout.strip()
check(out2 == os.path.join(dest, "survey-results (2).bin"), "a second save never overwrites")
p = bob.run(["read", fil["id"]])
check(p.returncode == 1 and "tern save" in p.stderr, "read of a file points to save")
p = bob.run(["read", "ffffffff"])
check(p.returncode == 1 and "no such message" in p.stderr, "unknown message id")

# The same stick imported again changes nothing.
before = store_counts(bob)
p = bob.run(["bundle", "import"] + files)
check(p.returncode == 0 and p.stdout.count("duplicate") == 2, "re-import: duplicates")
check(store_counts(bob) == before and len(bob.inbox()) == 2, "re-import adds nothing")

# A fresh message, then damaged copies of its bundle file: each refused, nothing stored.
alice.run(["send", "bob", "-m", "second message"], check_rc=0)
stick2 = s.sub("stick2")
alice.run(["bundle", "export", stick2], check_rc=0)
files = [os.path.join(stick2, f) for f in os.listdir(stick2) if os.path.getsize(os.path.join(stick2, f)) < 1000]
with open(files[0], "rb") as f:
    good = f.read()
import cbor2
payload_len = len(cbor2.loads(good)[-1][4])
bad_dir = s.sub("bad")
bad = {}
payload_flips = []
for i in range(0, len(good), 3):
    b = bytearray(good)
    b[i] ^= 0x20
    bad[f"flip{i:04d}.bundle"] = bytes(b)
    if i >= len(good) - 1 - payload_len:
        payload_flips.append(f"flip{i:04d}.bundle")
bad["truncated.bundle"] = good[: len(good) // 2]
bad["empty.bundle"] = b""
bad["trailing.bundle"] = good + b"\x00"
for name, blob in bad.items():
    with open(os.path.join(bad_dir, name), "wb") as f:
        f.write(blob)
os.symlink(files[0], os.path.join(bad_dir, "link.bundle"))
os.mkfifo(os.path.join(bad_dir, "fifo.bundle"))

carol = Node(s, "carol")
introduce(carol, alice)
carol.add_contact(bob)
before = store_counts(bob)
inbox_before = bob.inbox()
names = sorted(os.listdir(bad_dir))
p = bob.run(["bundle", "import"] + [os.path.join(bad_dir, n) for n in names])
check(p.returncode == 1, "import with bad files exits 1")
rejected = p.stderr.count("rejected:")
delivered = p.stdout.count("delivered")
duplicate = p.stdout.count("duplicate")
# Extension blocks carry no CRC (RFC 9171 lets relays rewrite them): a flip in the Bundle Age
# value gives the same bundle with another age. It may be delivered, once; every other copy is
# a duplicate of it or refused. A flip anywhere in the payload is always refused.
check(delivered <= 1, f"a damaged copy is never delivered twice ({delivered})")
check(rejected + delivered + duplicate == len(names),
      f"every file is accounted for ({rejected} + {delivered} + {duplicate} of {len(names)})")
for name in payload_flips:
    check(f"{name}: rejected" in p.stderr, f"payload flip {name} refused")
check("link.bundle: rejected: a symbolic link" in p.stderr, "symlink refused by name")
check("fifo.bundle: rejected: not a regular file" in p.stderr, "fifo refused, not opened")
check("truncated.bundle: rejected" in p.stderr, "truncated file refused")
check("trailing.bundle: rejected" in p.stderr, "trailing garbage refused")
after = store_counts(bob)
check(after["bundles"] - before["bundles"] == delivered, "nothing but a verified delivery stored")
# Then the intact file is accepted (or is a duplicate of the one verified copy).
p = bob.run(["bundle", "import"] + files)
check(p.returncode == 0, "the intact file still imports")
msgs = [e for e in bob.inbox() if e["kind"] == "text"]
check(len(msgs) == 2, "second message delivered exactly once")

# Misaddressed: carol's bundle for alice, re-addressed to bob's node by a hostile relay.
carol.run(["send", "alice", "-m", "for alice only"], check_rc=0)
cfiles, _ = carry(carol, alice, s, "stick3")
with open(cfiles[0], "rb") as f:
    raw = f.read()


def to_bob(blocks):
    blocks[0][3] = [2, [int(bob.node), 1]]


forged = os.path.join(s.sub("forged"), "readdressed.bundle")
with open(forged, "wb") as f:
    f.write(rewrite_bundle(raw, to_bob))
before = store_counts(bob)
p = bob.run(["bundle", "import", forged])
check(p.returncode == 1 and "misaddressed" in p.stderr, "re-addressed bundle refused as misaddressed")
check(store_counts(bob) == before, "misaddressed bundle stored nothing")

# A bundle for another node is kept to forward (a data mule).
p = bob.run(["bundle", "import", cfiles[0]])
check(p.returncode == 0 and f"queued for ipn:{alice.node}" in p.stdout, "someone else's bundle queued")
check(any(b["origin"] == "relayed" for b in bob.queue()), "relayed bundle in bob's queue")

# Compact messages name no sender: an unknown sender is refused until added.
dave = Node(s, "dave")
dave.add_contact(bob)
dave.run(["send", "bob", "-m", "hello from dave"], check_rc=0)
dfiles, p = carry(dave, bob, s, "stick4")
check(p.returncode == 1 and "sender unknown" in p.stderr, "unknown compact sender refused")
bob.add_contact(dave)
p = bob.run(["bundle", "import"] + dfiles)
check(p.returncode == 0 and "delivered" in p.stdout, "delivered once the sender is known")

# A sender's file name and text cannot drive the terminal or break the JSON.
evil = os.path.join(s.sub("evil"), "\x1b[31mred\xff\n.txt".encode("latin-1").decode("utf-8", "surrogateescape"))
with open(evil.encode("utf-8", "surrogateescape"), "wb") as f:
    f.write(b"x")
alice.run(["send", "bob", "--file", evil], check_rc=0)
carry(alice, bob, s, "stick5")
p = bob.run(["inbox"], check_rc=0)
check("\x1b" not in p.stdout and p.stdout.count("\n") == len(bob.inbox()), "inbox shows no control bytes")
check(any("red" in e["name"] for e in bob.inbox()), "inbox --json stays valid JSON")

# stdin text, and bad arguments.
p = alice.run(["send", "bob"], input="from a pipe\n", check_rc=0)
p = alice.run(["send", "nobody", "-m", "x"])
check(p.returncode == 1 and "no such contact" in p.stderr, "unknown recipient")
p = alice.run(["send", "bob", "-m", "x", "--priority", "asap"])
check(p.returncode == 2, "bad priority is a usage error")
p = alice.run(["send", "bob", "-m", "x", "--lifetime", "soon"])
check(p.returncode == 2, "bad lifetime is a usage error")
p = alice.run(["send", "bob", "--file", "/nonexistent/file"])
check(p.returncode == 1 and "/nonexistent/file" in p.stderr, "missing file named")

# Lifetimes: an expired bundle leaves the queue.
alice.run(["send", "bob", "-m", "short-lived", "--lifetime", "1s"], check_rc=0)
n_before = len(alice.queue())
time.sleep(1.3)
p = alice.run(["queue"], check_rc=0)
check("dropped 1 expired" in p.stderr, "expired bundle purged")
check(len(alice.queue()) == n_before - 1, "queue shrank by one")

s.close()
done()
