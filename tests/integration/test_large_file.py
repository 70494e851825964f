"""A 1 GiB file through send, export to a stick, import and save, each process under 32 MiB peak
RSS; on the way, the stick's piece limit (lowered) splits it and the import joins it."""
import hashlib
import os

from ternlib import SANITIZED, Node, Scratch, check, done, introduce, peak_rss_kib

if SANITIZED:
    # ASan's shadow memory and quarantine make RSS meaningless; the normal build asserts it.
    print("skipped under sanitizers")
    raise SystemExit(77)

LIMIT_KIB = 32 * 1024
SIZE = 1 << 30
s = Scratch("large")
alice = Node(s, "alice")
bob = Node(s, "bob")
introduce(alice, bob)
alice.run(["peer", "add", "bob", bob.idstring, "--sneakernet"], check_rc=0)
bob.run(["peer", "add", "alice", alice.idstring, "--sneakernet"], check_rc=0)
# Pieces of 300 MiB: the 4 GiB FAT32 split, exercised at a size a test can afford.
os.environ["TERN_STICK_PIECE_MAX"] = str(300 << 20)

src = os.path.join(s.sub("out"), "archive.bin")
digest = hashlib.sha256()
block = os.urandom(1 << 20)
with open(src, "wb") as f:
    for i in range(SIZE >> 20):
        chunk = block[:-8] + i.to_bytes(8, "big")
        f.write(chunk)
        digest.update(chunk)

stick = s.sub("stick")
steps = [
    ("send", alice, ["send", "bob", "--file", src]),
    ("export", alice, ["export", stick]),
]
for name, node, args in steps:
    rc, rss = peak_rss_kib(args, home=node.home)
    print(f"{name}: peak RSS {rss} KiB")
    check(rc == 0, f"{name} succeeded")
    check(rss < LIMIT_KIB, f"{name} peak RSS {rss} KiB < {LIMIT_KIB} KiB")
os.unlink(src)
bundles = os.path.join(stick, "tern", "bundles")
subdirs = os.listdir(bundles)
check(len(subdirs) == 1, f"one subdirectory of bundles/, the bundle's own: {subdirs}")
files = sorted(os.path.join(bundles, h, f) for h in subdirs
               for f in os.listdir(os.path.join(bundles, h)))
check([f[-4:] for f in files] == [".000", ".001", ".002", ".003"], "four pieces")
check(all(os.path.basename(f)[0] == subdirs[0] for f in files), "in bundles/<first hex digit>/")
check(sum(os.path.getsize(f) for f in files) > SIZE, "together over 1 GiB")
rc, rss = peak_rss_kib(["import", stick], home=bob.home)
print(f"import: peak RSS {rss} KiB")
check(rc == 0 and rss < LIMIT_KIB, f"import peak RSS {rss} KiB < {LIMIT_KIB} KiB")
# Free the disk as we go: the store holds its own copy now.
for f in files:
    os.unlink(f)
import shutil
shutil.rmtree(alice.home)

msg = bob.inbox()[0]["id"]
dest = s.sub("saved")
rc, rss = peak_rss_kib(["save", msg, dest], home=bob.home)
print(f"save: peak RSS {rss} KiB")
check(rc == 0 and rss < LIMIT_KIB, f"save peak RSS {rss} KiB < {LIMIT_KIB} KiB")
h = hashlib.sha256()
with open(os.path.join(dest, "archive.bin"), "rb") as f:
    while True:
        b = f.read(1 << 20)
        if not b:
            break
        h.update(b)
check(h.digest() == digest.digest(), "1 GiB file saved intact")

s.close()
done()
