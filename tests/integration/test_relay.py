"""A bundle relayed by a node in the middle (a data mule): re-encoded for the next hop with its
age grown, its hop count up by one and no Previous Node block; one at its hop limit is dropped."""
import os
import time

import cbor2

from ternlib import Node, Scratch, check, done, rewrite_bundle

s = Scratch("relay")
a = Node(s, "a")
mule = Node(s, "mule")
c = Node(s, "c")
a.add_contact(c)
c.add_contact(a)

a.run(["send", "c", "-m", "via the mule"], check_rc=0)
stick1 = s.sub("stick1")
a.run(["bundle", "export", stick1], check_rc=0)
(f1,) = [os.path.join(stick1, f) for f in os.listdir(stick1)]
orig = cbor2.loads(open(f1, "rb").read())


def ext(blocks, t):
    return [b for b in blocks[1:] if b[0] == t]


check(cbor2.loads(ext(orig, 10)[0][4])[1] == 0, "the source emits hop count 0")
p = mule.run(["bundle", "import", f1], check_rc=0)
check(f"queued for ipn:{c.node}" in p.stdout, "the mule keeps c's bundle to forward")
time.sleep(0.3)
stick2 = s.sub("stick2")
mule.run(["bundle", "export", stick2], check_rc=0)
(f2,) = [os.path.join(stick2, f) for f in os.listdir(stick2)]
check(os.path.basename(f1) == os.path.basename(f2), "same bundle id after re-encoding")
fwd = cbor2.loads(open(f2, "rb").read())
check(fwd[0][:8] == orig[0][:8], "primary block fields unchanged")
check(cbor2.loads(ext(fwd, 10)[0][4])[1] == 1, "hop count up by one")
age0, age1 = cbor2.loads(ext(orig, 7)[0][4]), cbor2.loads(ext(fwd, 7)[0][4])
check(age1 >= age0 + 250, f"bundle age grew by the time at the mule ({age0} -> {age1} ms)")
check(fwd[-1] == orig[-1], "payload block unchanged")
p = c.run(["bundle", "import", f2], check_rc=0)
check("delivered" in p.stdout, "delivered at c")
check(c.run(["read", c.inbox()[0]["id"]], check_rc=0).stdout == "via the mule", "text intact")

# A foreign relay adds a Previous Node block: the mule must not pass it on.
a.run(["send", "c", "-m", "second"], check_rc=0)
stick3 = s.sub("stick3")
a.run(["bundle", "export", stick3], check_rc=0)
(f3,) = [os.path.join(stick3, f) for f in os.listdir(stick3) if f != os.path.basename(f1)]


def add_prev(blocks):
    blocks.insert(1, [6, 9, 0, 0, cbor2.dumps([2, [12345, 0]])])


raw3 = open(f3, "rb").read()
with open(f3, "wb") as f:
    f.write(rewrite_bundle(raw3, add_prev))
mule.run(["bundle", "import", f3], check_rc=0)
stick4 = s.sub("stick4")
mule.run(["bundle", "export", stick4], check_rc=0)
for name in os.listdir(stick4):
    blocks = cbor2.loads(open(os.path.join(stick4, name), "rb").read())
    check(not ext(blocks, 6), "Previous Node block removed on forwarding")

# A bundle whose hop count has reached its limit is accepted but never sent on.
a.run(["send", "c", "-m", "third"], check_rc=0)
stick5 = s.sub("stick5")
a.run(["bundle", "export", stick5], check_rc=0)
new = [f for f in os.listdir(stick5) if f not in os.listdir(stick3) and f != os.path.basename(f1)]
f5 = os.path.join(stick5, new[0])


def at_limit(blocks):
    for b in blocks:
        if b[0] == 10:
            b[4] = cbor2.dumps([1, 1])


raw5 = open(f5, "rb").read()
with open(f5, "wb") as f:
    f.write(rewrite_bundle(raw5, at_limit))
mule.run(["bundle", "import", f5], check_rc=0)
stick6 = s.sub("stick6")
p = mule.run(["bundle", "export", stick6])
check("hop limit" in p.stderr and new[0] not in os.listdir(stick6), "a spent bundle is not emitted")
check(all(b["id"] + ".bundle" != new[0] for b in mule.queue()), "and it leaves the queue")

s.close()
done()
