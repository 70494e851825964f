"""tern init / id / contact through the real binary: homes, key files, passphrases, address book."""
import json
import os
import stat

from ternlib import Node, Scratch, check, done, run

s = Scratch("identity")
alice = Node(s, "alice")
bob = Node(s, "bob")

# The home and its secrets.
key = os.path.join(alice.home, "identity.key")
check(stat.S_IMODE(os.stat(key).st_mode) == 0o600, "key file is 0600")
check(stat.S_IMODE(os.stat(alice.home).st_mode) == 0o700, "home is 0700")
check(stat.S_IMODE(os.stat(os.path.join(alice.home, "store.db")).st_mode) & 0o077 == 0,
      "store is private")
p = alice.run(["init"])
check(p.returncode == 1 and "already" in p.stderr, "init twice refused")

# tern id: the identity string first, then a fingerprint; stable across calls.
out = alice.run(["id"], check_rc=0).stdout.splitlines()
check(out[0].startswith("tern1"), "identity string has its prefix")
check(out[0] == alice.idstring, "id is stable")
check(len(alice.fingerprint.split()) == 8, "fingerprint is 8 groups")
j = json.loads(alice.run(["id", "--json"], check_rc=0).stdout)
check(j["identity"] == alice.idstring and j["fingerprint"] == alice.fingerprint, "id --json")
check(alice.idstring != bob.idstring, "two nodes, two identities")

# TERN_HOME works like --home.
p = run(["id"], env={"TERN_HOME": alice.home}, check_rc=0)
check(p.stdout.splitlines()[0] == alice.idstring, "TERN_HOME selects the home")

# A key file readable by others is refused.
os.chmod(key, 0o644)
p = alice.run(["id"])
check(p.returncode == 1 and "chmod 600" in p.stderr, "group/world-readable key refused")
os.chmod(key, 0o600)

# Contacts: add, list, errors that change nothing.
alice.add_contact(bob)
listing = json.loads(alice.run(["contact", "list", "--json"], check_rc=0).stdout)
check(len(listing) == 1 and listing[0]["name"] == "bob"
      and listing[0]["fingerprint"] == bob.fingerprint, "contact list shows bob")
carol = Node(s, "carol")
p = alice.run(["contact", "add", "bob", carol.idstring])
check(p.returncode == 1 and "taken" in p.stderr, "name taken by another key refused")
p = alice.run(["contact", "add", "robert", bob.idstring])
check(p.returncode == 1 and "already a contact named 'bob'" in p.stderr, "same key, new name refused")
p = alice.run(["contact", "add", "me", alice.idstring])
check(p.returncode == 1 and "own identity" in p.stderr, "own identity refused")

# Every single-character typo in an identity string is caught.
typos = 0
body = carol.idstring
alphabet = "abcdefghijklmnopqrstuvwxyz234567"
for i in range(5, len(body), 7):
    c = alphabet[(alphabet.index(body[i]) + 1) % 32] if body[i] in alphabet else "a"
    typo = body[:i] + c + body[i + 1:]
    p = alice.run(["contact", "add", "carol", typo])
    if p.returncode != 1 or "identity string" not in p.stderr:
        typos += 1
check(typos == 0, f"every typo detected ({typos} slipped through)")
p = alice.run(["contact", "add", "carol", carol.idstring[:-3]])
check(p.returncode == 1, "truncated identity string refused")
p = alice.run(["contact", "add", "carol", "hello"])
check(p.returncode == 1 and "identity string" in p.stderr, "garbage refused")
p = alice.run(["contact", "add", "../x", carol.idstring])
check(p.returncode == 1 and "not a valid name" in p.stderr, "bad name refused")
listing = json.loads(alice.run(["contact", "list", "--json"], check_rc=0).stdout)
check([c["name"] for c in listing] == ["bob"], "failed adds changed nothing")

p = alice.run(["contact", "remove", "nobody"])
check(p.returncode == 1 and "no such contact" in p.stderr, "removing an unknown name fails")
alice.run(["contact", "remove", "bob"], check_rc=0)
check(json.loads(alice.run(["contact", "list", "--json"], check_rc=0).stdout) == [], "removed")

# Usage errors exit 2, --help exits 0 for every command.
check(run(["nonsense"]).returncode == 2, "unknown command is a usage error")
check(alice.run(["contact"]).returncode == 2, "contact without subcommand")
check(alice.run(["send"]).returncode == 2, "send without recipient")
for cmd in ["init", "id", "contact", "send", "inbox", "read", "save", "queue", "bundle"]:
    p = run([cmd, "--help"])
    check(p.returncode == 0 and p.stdout.startswith("usage: tern"), f"{cmd} --help")
check(run(["--help"]).returncode == 0, "tern --help")

# Passphrase protection: the key file does not open without it.
pw = os.path.join(s.path, "pass")
with open(pw, "w") as f:
    f.write("correct horse battery staple\n")
dave = Node(s, "dave", passphrase_file=pw)
with open(os.path.join(dave.home, "identity.key"), "rb") as f:
    blob = f.read()
check(b"tern" in blob[:16], "key file has a magic")
wrong = os.path.join(s.path, "wrong")
with open(wrong, "w") as f:
    f.write("incorrect\n")
p = run(["id"], home=dave.home, env={"TERN_PASSPHRASE_FILE": wrong})
check(p.returncode == 1 and "wrong passphrase" in p.stderr, "wrong passphrase refused")
p = run(["id"], home=dave.home)
check(p.returncode == 1 and "TERN_PASSPHRASE_FILE" in p.stderr, "no passphrase, no terminal: clear error")
p = run(["id"], home=dave.home, env={"TERN_PASSPHRASE_FILE": pw}, check_rc=0)
check(p.stdout.splitlines()[0] == dave.idstring, "right passphrase opens the key")

p = run(["id"], home=os.path.join(s.path, "nowhere"))
check(p.returncode == 1 and "tern init" in p.stderr, "missing home says to run init")

# Another user's node home (the service's, run as root by mistake) is refused before anything
# is written there: files root made would lock its owner's daemon out.
if os.geteuid() == 0:
    erin = Node(s, "erin")
    before = sorted(os.listdir(erin.home))
    for root_dir, dirs, files in os.walk(erin.home):
        for name in [root_dir] + [os.path.join(root_dir, f) for f in dirs + files]:
            os.chown(name, 65534, 65534)
    empty = os.path.join(s.path, "empty-home")
    os.makedirs(empty, mode=0o700)
    os.chown(empty, 65534, 65534)
    for args, home in ((["send", "bob", "-m", "x"], erin.home), (["queue"], erin.home),
                       (["run"], erin.home), (["backup", s.path + "/e.tbk"], erin.home),
                       (["init"], empty), (["restore", s.path + "/e.tbk"], empty)):
        p = run(args, home=home)
        check(p.returncode == 1 and "belongs to user" in p.stderr and "sudo -u" in p.stderr,
              f"{args[0]} on another user's home is refused: {p.returncode} {p.stderr!r}")
    check(sorted(os.listdir(erin.home)) == before and not os.listdir(empty),
          "nothing was written in them")
    check(not os.path.exists(s.path + "/e.tbk"), "no backup was written")
else:
    print("skip: another user's home (needs root to make one)")

s.close()
done()
