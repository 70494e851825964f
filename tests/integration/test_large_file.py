"""A 1 GiB file through send, export, import and save, each process under 32 MiB peak RSS."""
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
    ("export", alice, ["bundle", "export", stick]),
]
for name, node, args in steps:
    rc, rss = peak_rss_kib(args, home=node.home)
    print(f"{name}: peak RSS {rss} KiB")
    check(rc == 0, f"{name} succeeded")
    check(rss < LIMIT_KIB, f"{name} peak RSS {rss} KiB < {LIMIT_KIB} KiB")
os.unlink(src)
files = [os.path.join(stick, f) for f in os.listdir(stick)]
check(len(files) == 1 and os.path.getsize(files[0]) > SIZE, "one bundle file over 1 GiB")
alice_db = os.path.join(alice.home, "store.db")
rc, rss = peak_rss_kib(["bundle", "import"] + files, home=bob.home)
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
