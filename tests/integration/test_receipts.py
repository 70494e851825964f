"""End-to-end delivery receipts: the recipient seals one back to the sender; only then does the
sender's queue show the message delivered, and the bundle still queued for it leaves the queue."""
import os

from ternlib import Node, Scratch, carry, check, done, introduce

s = Scratch("receipts")
alice = Node(s, "alice")
bob = Node(s, "bob")
mallory = Node(s, "mallory")
introduce(alice, bob)
introduce(alice, mallory)

alice.run(["send", "bob", "-m", "did you get this?"], check_rc=0)
alice.run(["send", "bob,mallory", "-m", "x" * 2000], check_rc=0)
sent = alice.sent()
check(len(sent) == 3 and all(e["state"] == "queued" for e in sent), "three sent records, queued")

# The stick goes to bob: delivered, and bob queues one receipt for alice.
files, p = carry(alice, bob, s, "to-bob")
check(p.returncode == 0 and p.stdout.count("delivered") == 2, "bob got both messages")
check("1 delivery receipt queued" in p.stderr, "bob queued one receipt for alice")
receipts = [b for b in bob.queue() if b["to"] == "alice"]
check(len(receipts) == 1, "the receipt waits in bob's queue, addressed to alice")

# A receipt names no message in clear: only alice can open it.
stick = s.sub("back")
bob.run(["bundle", "export", stick], check_rc=0)
for f in os.listdir(stick):
    blob = open(os.path.join(stick, f), "rb").read()
    for e in sent:
        check(bytes.fromhex(e["id"]) not in blob, "message ids are not visible on the stick")

# The stick also carries the copy for mallory that bob kept as a mule. At mallory, alice's
# receipt is only something to forward: mallory cannot open it or act on it.
p = mallory.run(["bundle", "import"] + [os.path.join(stick, f) for f in os.listdir(stick)])
check("delivery receipt" not in p.stdout and f"queued for ipn:{alice.node}" in p.stdout,
      "mallory only carries alice's receipt")

p = alice.run(["bundle", "import"] + [os.path.join(stick, f) for f in os.listdir(stick)], check_rc=0)
check("delivery receipt for 2 messages" in p.stdout, "alice records the receipt")
states = {(e["id"], e["to"]): e["state"] for e in alice.sent()}
check(sum(1 for st in states.values() if st == "delivered") == 2, "both messages to bob delivered")
check([st for (i, to), st in states.items() if to == "mallory"] == ["queued"],
      "the copy for mallory is still queued: bob's receipt cannot speak for mallory")
check(all(b["to"] != "bob" for b in alice.queue()), "bundles for bob left alice's queue")
check(any(b["to"] == "mallory" for b in alice.queue()), "the bundle for mallory stays queued")
p = alice.run(["queue"], check_rc=0)
check("delivered" in p.stdout, "tern queue shows delivered")

# Importing the receipt again changes nothing.
def snapshot():
    return alice.sent(), sorted(b["id"] for b in alice.queue())


before = snapshot()
alice.run(["bundle", "import"] + [os.path.join(stick, f) for f in os.listdir(stick)], check_rc=0)
check(snapshot() == before, "receipt import is idempotent")

s.close()
done()
