"""Damaged sneakernet, as sets: many randomly damaged copies of one export, each imported by a
fresh receiver. For every copy: every bundle file left intact is accepted, nothing accepted
carries other content than was sent, and importing the same copy again adds nothing.

Short form (the `faults` suite): TERN_FAULT_COPIES copies (default 40) of a 500-message export.
Long form: TERN_FAULT_COPIES=1000 meson test -C build --suite faults --timeout-multiplier 20.
TERN_FAULT_SEED picks the damage (default 1); a failure prints the seed and copy to replay."""
import json
import os
import random
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from ternlib import TERN, Node, Scratch, check, done, introduce  # noqa: E402

MESSAGES = 500
COPIES = int(os.environ.get("TERN_FAULT_COPIES", "40"))
SEED = int(os.environ.get("TERN_FAULT_SEED", "1"))

s = Scratch("damaged-sticks")
a, b = Node(s, "a"), Node(s, "b")
introduce(a, b)
a.run(["peer", "add", "b", b.idstring, "--sneakernet"], check_rc=0)
b.run(["peer", "add", "a", a.idstring, "--sneakernet"], check_rc=0)

texts = [f"report {i:04d}: " + "".join(random.Random(i).choice("abcdefgh ") for _ in range(150))
         for i in range(MESSAGES)]
p = a.run(["send", "b", "--lines"], input="\n".join(texts) + "\n", check_rc=0)
text_of = dict(zip(p.stdout.split(), texts))  # bundle id -> its text
check(len(text_of) == MESSAGES, f"{MESSAGES} messages queued")

pristine = s.sub("pristine")
a.run(["export", pristine], check_rc=0)
fresh_b = os.path.join(s.path, "b-fresh")
shutil.copytree(b.home, fresh_b)


def stick_files(stick):
    """Every file on the stick, relative to it."""
    out = []
    for root, _, names in os.walk(os.path.join(stick, "tern")):
        out += [os.path.relpath(os.path.join(root, n), stick) for n in names]
    return sorted(out)


PRISTINE = {f: open(os.path.join(pristine, f), "rb").read() for f in stick_files(pristine)}
BUNDLES = [f for f in PRISTINE if f.startswith("tern/bundles/")]
check(len(BUNDLES) == MESSAGES, f"one file per bundle: {len(BUNDLES)}")


def damage(stick, rnd):
    """Damage of the kinds a pulled stick or a bad medium leaves, to a few random files."""
    files = stick_files(stick)
    for _ in range(rnd.randint(1, 6)):
        f = os.path.join(stick, rnd.choice(files))
        if not os.path.exists(f):
            continue
        raw = bytearray(open(f, "rb").read())
        kind = rnd.choice(["flip", "flips", "truncate", "empty", "garbage", "delete", "swap"])
        if kind == "flip" and raw:
            raw[rnd.randrange(len(raw))] ^= 1 << rnd.randrange(8)
        elif kind == "flips" and raw:
            for _ in range(rnd.randint(2, 20)):
                raw[rnd.randrange(len(raw))] = rnd.randrange(256)
        elif kind == "truncate" and raw:
            raw = raw[:rnd.randrange(len(raw))]
        elif kind == "empty":
            raw = bytearray()
        elif kind == "garbage":
            raw += os.urandom(rnd.randint(1, 64))
        elif kind == "delete":
            os.unlink(f)
            continue
        elif kind == "swap":
            other = os.path.join(stick, rnd.choice(files))
            if os.path.exists(other):
                raw = bytearray(open(other, "rb").read())
        with open(f, "wb") as out:
            out.write(raw)


def import_json(home, stick):
    p = subprocess.run([TERN, "--home", home, "import", stick, "--json"], capture_output=True,
                       text=True, stdin=subprocess.DEVNULL, timeout=120)
    try:
        out = json.loads(p.stdout)
    except ValueError:
        check(False, f"import printed no JSON: {p.stdout[:300]!r} {p.stderr[:300]!r}")
        return p.returncode, {}, {}
    return p.returncode, {f["file"]: (f["verdict"], f["detail"]) for f in out.pop("files")}, out


def read_text(home, msg_prefix):
    p = subprocess.run([TERN, "--home", home, "read", msg_prefix], capture_output=True,
                       text=True, stdin=subprocess.DEVNULL)
    return p.stdout if p.returncode == 0 else None


rnd = random.Random(SEED)
totals = {"intact": 0, "damaged": 0, "accepted_damaged": 0, "rejected": 0}
for copy in range(COPIES):
    where = f"seed {SEED}, copy {copy}"
    stick = os.path.join(s.path, "copy")
    home = os.path.join(s.path, "b-copy")
    shutil.rmtree(stick, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(pristine, stick)
    shutil.copytree(fresh_b, home)
    damage(stick, rnd)
    now = {f: open(os.path.join(stick, f), "rb").read() for f in stick_files(stick)}

    rc, files, summary = import_json(home, stick)
    accepted = {f for f, (v, _) in files.items() if v in ("delivered", "duplicate")}
    intact = {f for f in BUNDLES if now.get(f) == PRISTINE[f]}
    totals["intact"] += len(intact)
    totals["damaged"] += MESSAGES - len(intact)
    totals["rejected"] += summary.get("rejected", 0)
    check(intact <= accepted, f"{where}: intact bundle files refused: {sorted(intact - accepted)}")
    check(rc == (1 if summary.get("rejected") else 0), f"{where}: exit {rc} with {summary}")
    # Whatever was accepted from a damaged file must carry exactly the text sent.
    for f in sorted(accepted - intact):
        totals["accepted_damaged"] += 1
        verdict, detail = files[f]
        bid = os.path.basename(f).split(".")[0]
        if verdict != "delivered":
            continue
        msg = detail.split()[1]
        got = read_text(home, msg)
        check(got == text_of.get(bid), f"{where}: {f} accepted with other content: {got!r}")
    # Bundles not accepted now were not delivered by some other route either.
    inbox = json.loads(subprocess.run([TERN, "--home", home, "inbox", "--json"],
                                      capture_output=True, text=True).stdout)
    check(len(inbox) == summary.get("delivered", 0), f"{where}: inbox {len(inbox)} vs {summary}")

    rc2, _, again = import_json(home, stick)
    check(again.get("delivered", 0) == 0 and again.get("queued", 0) == 0,
          f"{where}: a second import added something: {again}")
    inbox2 = json.loads(subprocess.run([TERN, "--home", home, "inbox", "--json"],
                                       capture_output=True, text=True).stdout)
    check(len(inbox2) == len(inbox), f"{where}: the inbox grew on re-import")

print(f"{COPIES} damaged copies of a {MESSAGES}-bundle export (seed {SEED}): "
      f"{totals['intact']} intact bundle files all accepted, {totals['damaged']} damaged or "
      f"missing, {totals['rejected']} files rejected, {totals['accepted_damaged']} damaged files "
      f"accepted with their content intact (damage in mutable fields: age, hop count)")
s.close()
done()
