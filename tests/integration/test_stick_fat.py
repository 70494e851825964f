"""The sneakernet main path on a real FAT32 file system, mounted without kernel support by
Debian's fusefat (which may report no free space and lack RENAME_NOREPLACE), or with the argument
"exfat" on exFAT (exfatprogs' mkfs.exfat, exfat-fuse on a loop device): a text and a file in
pieces go out, are delivered intact, custody comes home on the stick, and so do the delivery
receipts."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

from ternlib import Node, Scratch, check, done, introduce, stick_names


def skip(why):
    print(f"skipped: {why}")
    sys.exit(0)


EXFAT = sys.argv[1:] == ["exfat"]
FS = "exFAT" if EXFAT else "FAT32"
if os.geteuid() != 0:
    skip(f"not root (mounting a {FS} image needs it)")
if not os.access("/dev/fuse", os.R_OK | os.W_OK):
    skip("no /dev/fuse")
TOOLS = (("mkfs.exfat", "mount.exfat-fuse", "losetup", "exfatprogs, exfat-fuse, mount") if EXFAT
         else ("mkfs.vfat", "fusefat", "fusermount", "dosfstools, fusefat, fuse"))
missing = [t for t in TOOLS[:-1] if not shutil.which(t)]
if missing:
    skip(f"not installed: {', '.join(missing)} (Debian: {TOOLS[-1]})")

PIECE = 1 << 20
ENV = {"TERN_STICK_PIECE_MAX": str(PIECE)}
s = Scratch("stick-fat")
img = os.path.join(s.path, "exfat.img" if EXFAT else "fat32.img")
mnt = s.sub("mnt")
FSCK = shutil.which("fsck.exfat") if EXFAT else shutil.which("fsck.vfat") or shutil.which("fsck.fat")
fuse = None  # the FUSE process, in the foreground so that we see it finish its writes
loop = None  # exFAT: exfat-fuse wants a block device, so the image goes on a loop device


def mount_exfat():
    """exfat-fuse as root refuses a plain file ("Block device required"): a loop device it is."""
    global loop, fuse
    if loop is None:
        p = subprocess.run(["losetup", "-f", "--show", img], capture_output=True, text=True)
        if p.returncode != 0:
            print(f"no loop device: {p.stderr.strip()}")
            return False
        loop = p.stdout.strip()
    log = open(os.path.join(s.path, "exfat.log"), "ab")
    # -d keeps it in the foreground (and chatty), so that unmount() can wait for its exit.
    fuse = subprocess.Popen(["mount.exfat-fuse", "-d", loop, mnt], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log)
    log.close()
    for _ in range(200):
        if os.path.ismount(mnt):
            return True
        if fuse.poll() is not None:
            break
        time.sleep(0.05)
    unmount()
    return False


def mount():
    global fuse
    if EXFAT:
        return mount_exfat()
    log = open(os.path.join(s.path, "fusefat.log"), "ab")  # it is chatty: a pipe would fill
    fuse = subprocess.Popen(["fusefat", "-f", "-o", "rw+", img, mnt], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log)
    log.close()
    for _ in range(200):
        if os.path.ismount(mnt):
            return True
        if fuse.poll() is not None:
            break
        time.sleep(0.05)
    with open(os.path.join(s.path, "fusefat.log"), "rb") as f:
        print(f"fusefat could not mount the image: {f.read()[-500:]!r}")
    unmount()
    return False


def unmount():
    """Unmounts and waits for fusefat to exit: only then is the image written and closed."""
    global fuse
    if os.path.ismount(mnt) and subprocess.run(["fusermount", "-u", mnt],
                                               capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", mnt], capture_output=True)
    if fuse:
        try:
            fuse.wait(timeout=30)
        except subprocess.TimeoutExpired:
            fuse.kill()
            fuse.wait()
        fuse = None


def fsck():
    """The image, unmounted, is a consistent file system (fsck -n changes nothing)."""
    if not FSCK:
        return
    p = subprocess.run([FSCK, "-n", loop if EXFAT else img], capture_output=True, text=True)
    check(p.returncode == 0, f"{FSCK} finds the image consistent: {p.stdout[-600:]} {p.stderr}")


class Unmounted(Exception):
    pass


def remount():
    """What reached the image survives an unmount: a consistent FAT, read back from the medium."""
    unmount()
    fsck()
    if not mount():
        check(False, "fusefat mounts the image again")
        raise Unmounted()


def listing(sub):
    return stick_names(mnt, sub)


def bundle_path(name):
    return os.path.join(mnt, "tern", "bundles", name[0], name)


def stick_json(node, cmd):
    p = node.run([cmd, mnt, "--json"], env=ENV)
    try:
        out = json.loads(p.stdout)
    except ValueError:
        out = {}
    return p, out


def states(node):
    return sorted(e["state"] for e in node.sent())


p = subprocess.run(["truncate", "-s", "64M", img], capture_output=True)
mkfs = ["mkfs.exfat", "-L", "TERNSTICK"] if EXFAT else ["mkfs.vfat", "-F", "32", "-n", "TERNSTICK"]
p = subprocess.run(mkfs + [img], capture_output=True, text=True)
if p.returncode != 0:
    s.close()
    skip(f"{mkfs[0]} failed: {p.stderr.strip()}")
if not mount():
    if loop:
        subprocess.run(["losetup", "-d", loop], capture_output=True)
    s.close()
    skip(f"cannot mount a {FS} image here")
started = time.monotonic()
try:
    a = Node(s, "a")
    b = Node(s, "b")
    introduce(a, b)
    a.run(["peer", "add", "b", b.idstring, "--sneakernet"], check_rc=0)
    b.run(["peer", "add", "a", a.idstring, "--sneakernet"], check_rc=0)

    text = f"over {FS}, by hand"
    text_id = a.run(["send", "b", "-m", text], check_rc=0).stdout.strip()
    src = os.path.join(s.sub("src"), "photos.tar")
    data = os.urandom(3 * 1000 * 1000)
    with open(src, "wb") as f:
        f.write(data)
    file_id = a.run(["send", "b", "--file", src], check_rc=0).stdout.strip()

    p, out = stick_json(a, "export")
    check(p.returncode == 0 and out.get("exported") == 2 and out.get("failed") == 0,
          f"export to FAT32: {p.returncode} {p.stdout} {p.stderr}")
    bundles = listing("bundles")
    pieces = [f for f in bundles if f.startswith(file_id)]
    check(bundles == sorted([f"{text_id}.bpv"] + pieces), f"exactly the two bundles: {bundles}")
    check([f[len(file_id):] for f in pieces] == [".bpv.000", ".bpv.001", ".bpv.002"],
          f"the file in three pieces of 1 MiB, names kept lowercase: {pieces}")
    sizes = [os.path.getsize(bundle_path(f)) for f in pieces]
    check(sizes[:-1] == [PIECE] * (len(sizes) - 1) and 0 < sizes[-1] <= PIECE and
          sum(sizes) + os.path.getsize(bundle_path(f"{text_id}.bpv"))
          == out.get("bytes"), f"pieces of the limit but the last, as many bytes as said: {sizes}")
    check(len(listing("manifests")) == 1 and
          re.fullmatch(r"[0-9a-f]{32}\.man", listing("manifests")[0]), "one sealed manifest")
    check(not [f for sub in ("bundles", "manifests") for f in listing(sub) if f.endswith(".part")],
          "no temporary file left")

    remount()

    p, out = stick_json(b, "import")
    check(p.returncode == 0 and out.get("delivered") == 2 and out.get("rejected") == 0,
          f"import from FAT32 delivers both: {p.returncode} {p.stdout} {p.stderr}")
    inbox = {m["kind"]: m for m in b.inbox()}
    check(set(inbox) == {"text", "file"}, f"a text and a file in the inbox: {list(inbox)}")
    if "text" in inbox:
        check(b.run(["read", inbox["text"]["id"]], check_rc=0).stdout == text, "text intact")
    if "file" in inbox:
        out_dir = s.sub("saved")
        b.run(["save", inbox["file"]["id"], out_dir], check_rc=0)
        saved = os.path.join(out_dir, "photos.tar")
        check(os.path.exists(saved) and
              hashlib.sha256(open(saved, "rb").read()).digest() == hashlib.sha256(data).digest(),
              "file saved intact, joined from its pieces")
    receipts = listing("receipts")
    check(len(receipts) == 1 and re.fullmatch(r"[0-9a-f]{32}\.rcp", receipts[0]),
          f"one custody receipt written on the FAT stick: {receipts}")

    remount()

    p, out = stick_json(a, "import")
    check(p.returncode == 0 and out.get("released") == 2,
          f"the custody receipt comes home and releases both: {p.returncode} {p.stdout} {p.stderr}")
    check(a.queue() == [], "the sender's queue is empty")
    check(states(a) == ["forwarded", "forwarded"], f"sent, forwarded: {a.sent()}")
    check(listing("receipts") == [] and listing("bundles") == [],
          f"the receipt and the delivered bundles left the stick: {listing('receipts')} "
          f"{listing('bundles')}")

    # b's delivery receipts travel back the same way.
    p, out = stick_json(b, "export")
    check(p.returncode == 0 and out.get("exported") == 1,
          f"b exports its receipts: {p.stdout} {p.stderr}")
    p, out = stick_json(a, "import")
    check(p.returncode == 0 and out.get("delivery_receipts") == 1,
          f"a takes the delivery receipt: {p.stdout} {p.stderr}")
    check(states(a) == ["delivered", "delivered"], f"both sent messages delivered: {a.sent()}")
    check(a.queue() == [], "and nothing left queued")
    print(f"{FS} main path in {time.monotonic() - started:.1f} s")
except Unmounted:
    pass
finally:
    unmount()
if os.path.ismount(mnt):
    check(False, f"{mnt} could not be unmounted (left for inspection)")
else:
    fsck()
    if loop:
        subprocess.run(["losetup", "-d", loop], capture_output=True)
    s.close()
done()
