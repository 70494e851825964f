"""tern config check / show through the real binary: good files, every error with its line, no key needed."""
import json
import os
import re
import subprocess

from ternlib import TERN, Node, Scratch, check, done, run

s = Scratch("config")
hub = Node(s, "hub")
relay = Node(s, "relay")
field = Node(s, "field")
conf = os.path.join(field.home, "tern.conf")


def write(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


GOOD = f"""# field office Pi
listen = 0.0.0.0:4556
listen = [::1]:4556
keepalive = 45s
log-level = warn

[peer hub]
id = {hub.idstring}
addr = 127.0.0.1:4556
sneakernet = yes
min-priority = normal
bytes-per-day = 50M
window = 06:00-07:30
window = 23:00-01:00

[peer relay]      # inbound only
id = {relay.idstring}

[route]
default = hub
ipn:1234 = relay
hub-office = relay
"""

# The default file is <home>/tern.conf; the summary names it and counts what it holds.
write(conf, GOOD)
p = field.run(["config", "check"], check_rc=0)
check(p.stdout.strip() == f"{conf}: 2 listen addresses, 2 peers, 3 routes",
      f"summary of a good file: {p.stdout!r}")
check(p.stderr == "", "a good file prints nothing on stderr")

# Checking needs no key: not even one that home_open would refuse, nor a home at all.
key = os.path.join(field.home, "identity.key")
os.chmod(key, 0o644)
field.run(["config", "check"], check_rc=0)
p = field.run(["peer", "list"])
check(p.returncode == 1 and "chmod 600" in p.stderr, "the same home refuses commands that open it")
os.chmod(key, 0o600)
nohome = os.path.join(s.path, "no-home")
p = run(["config", "check", conf], home=nohome, check_rc=0)
check(not os.path.exists(nohome), "config check creates no home and no store")

# show --json: what the daemon will use, with the line of each entry.
j = json.loads(field.run(["config", "show", "--json"], check_rc=0).stdout)
check([a["addr"] for a in j["listen"]] == ["0.0.0.0:4556", "[::1]:4556"], "listen addresses")
check(j["listen"][1]["host"] == "::1" and j["listen"][1]["port"] == 4556, "IPv6 host and port")
check(j["keepalive_s"] == 45 and j["log_level"] == "warn", "daemon settings")
ph = j["peers"][0]
check(ph["name"] == "hub" and ph["line"] == 7 and ph["identity"] == hub.idstring,
      "the hub's identity")
check(ph["fingerprint"] == hub.fingerprint and ph["node"] == f"ipn:{hub.node}",
      "fingerprint and node number match the hub's own `tern id`")
check(ph["addrs"] == ["127.0.0.1:4556"] and ph["sneakernet"] is True, "addresses, sneakernet")
check(ph["min_priority"] == "normal" and ph["bytes_per_day"] == 50 << 20, "policy")
check(ph["windows"] == ["06:00-07:30", "23:00-01:00"], "windows")
pr = j["peers"][1]
check(pr["addrs"] == [] and pr["sneakernet"] is None and pr["min_priority"] == "bulk"
      and pr["bytes_per_day"] == 0 and pr["windows"] == [], "defaults of an inbound-only peer")
routes = {r["dest"]: r for r in j["routes"]}
check(routes["default"]["kind"] == "default" and routes["default"]["via"] == "hub", "default route")
check(routes["ipn:1234"]["node"] == "ipn:1234" and routes["ipn:1234"]["line"] == 21, "ipn route")
check(routes["hub-office"]["kind"] == "name" and routes["hub-office"]["node"] is None,
      "a contact's name is left for the daemon to resolve")

# show prints the file canonically; that text checks clean and shows the same again.
text = field.run(["config", "show"], check_rc=0).stdout
again = os.path.join(s.path, "again.conf")
write(again, text)
run(["config", "check", again], check_rc=0)
check(run(["config", "show", again], check_rc=0).stdout == text, "show output round-trips")
j2 = json.loads(run(["config", "show", "--json", again], check_rc=0).stdout)
check([p["identity"] for p in j2["peers"]] == [hub.idstring, relay.idstring]
      and j2["routes"][0]["via"] == "hub" and len(j2["routes"]) == 3, "round trip keeps it all")

# A broken file: every error, each as PATH:LINE: what: why, in line order; exit 1.
typo = hub.idstring[:-3] + ("a" if hub.idstring[-3] != "a" else "b") + hub.idstring[-2:]
BAD = f"""listen = 0.0.0.0
keepalive = soon
colour = blue
[peer hub]
id = {typo}
window = 06:00-06:00
min-priority = high
frequency = 7
[peer hub]
[peer bad name]
[routes]
[route]
default = hbu
ipn:5 = hub
ipn:5 = hub
listen 1.2.3.4:5
"""
bad = os.path.join(s.path, "bad.conf")
write(bad, BAD)
p = run(["config", "check", bad])
check(p.returncode == 1, f"a bad file exits 1, not {p.returncode}")
check(p.stdout == "", "no summary for a bad file")
lines = p.stderr.splitlines()
want = {
    1: ["listen", "no port"],
    2: ["keepalive", "soon", "not a duration"],
    3: ["colour", "unknown key", "listen, keepalive, log-level"],
    5: ["id", "typo"],
    6: ["window", "starts where it ends"],
    7: ["min-priority", "high", "bulk, normal or urgent"],
    8: ["frequency", "[peer hub]", "id, addr, sneakernet, min-priority, bytes-per-day, window"],
    9: ["[peer hub]", "second section", "line 4"],
    10: ["[peer bad name]", "not a peer name"],
    11: ["[routes]", "unknown section"],
    13: ["hbu", "no [peer hbu]"],
    15: ["ipn:5", "second route", "line 14"],
    16: ["no '='"],
}
got = {}
for ln in lines[:-1]:
    m = re.match(re.escape(bad) + r":(\d+): (.*)$", ln)
    check(m is not None, f"error line has the form PATH:LINE: what: why: {ln!r}")
    if m:
        got[int(m.group(1))] = m.group(2)
check(sorted(got) == sorted(want), f"one error per bad line, on lines {sorted(want)}: {sorted(got)}")
for n, words in want.items():
    check(n in got and all(w in got[n] for w in words), f"line {n}: {got.get(n)!r} names {words}")
check([int(re.match(re.escape(bad) + r":(\d+)", ln).group(1)) for ln in lines[:-1]]
      == sorted(got), "errors in line order")
check(lines[-1] == f"tern: config: {len(want)} errors in {bad}", f"count line: {lines[-1]!r}")
p = run(["config", "show", "--json", bad])
check(p.returncode == 1 and p.stdout == "", "show prints nothing of a bad file")

# A file others can write could add peers: refused, with the reason.
write(conf, GOOD, 0o664)
p = field.run(["config", "check"])
check(p.returncode == 1 and f"{conf}: writable by group or others" in p.stderr,
      f"group-writable file refused: {p.stderr!r}")
write(conf, GOOD)

# A line too long and a binary file are errors with their line, not crashes.
huge = os.path.join(s.path, "huge.conf")
with open(huge, "wb") as f:
    f.write(b"log-level = info\n" + b"#" * 1_000_000 + b"\nkeepalive = 5\n")
os.chmod(huge, 0o600)
p = run(["config", "check", huge])
check(p.returncode == 1 and f"{huge}:2: the line is 1000000 bytes long; at most 4096" in p.stderr,
      f"long line: {p.stderr[:300]!r}")
binary = os.path.join(s.path, "binary.conf")
with open(binary, "wb") as f:
    f.write(bytes(range(256)) * 4)
os.chmod(binary, 0o600)
p = run(["config", "check", binary])
check(p.returncode == 1 and f"{binary}:1:" in p.stderr, "a binary file is errors, not a crash")

# One address rule for tern.conf, `peer add --addr` and `run --listen`: '_' in a host name is
# good everywhere; 10.0.0.300 or no port is a usage error (exit 2) that says why, and the
# daemon does not start.
BAD_ADDRS = (("10.0.0.300:4556", "not an IPv4 address"), ("hub.example.org", "no port"),
             ("::1:4556", "brackets"), ("hub!:4556", "not a host name"),
             ("h:70000", "1 to 65535"))
write(conf, f"[peer hub]\nid = {hub.idstring}\naddr = hub_1.lan:4556\n")
field.run(["config", "check"], check_rc=0)
p = field.run(["peer", "add", "hub", hub.idstring, "--addr", "hub_1.lan:4556"])
check(p.returncode == 0 and "tcp hub_1.lan:4556" in p.stdout,
      f"peer add takes the host name tern.conf takes: {p.returncode} {p.stderr!r}")
for addr, why in BAD_ADDRS:
    write(conf, f"[peer hub]\naddr = {addr}\n")
    c = field.run(["config", "check"])
    check(c.returncode == 1 and why in c.stderr, f"tern.conf refuses addr = {addr}: {c.stderr!r}")
    p = field.run(["peer", "add", "relay", relay.idstring, "--addr", addr])
    first = p.stderr.splitlines()[0] if p.stderr else ""
    check(p.returncode == 2 and first.startswith(f"tern: peer: --addr {addr}: ") and why in first,
          f"peer add --addr {addr}: {p.returncode} {p.stderr!r}")
check(all(e["name"] != "relay" for e in json.loads(field.run(["peer", "list", "--json"],
                                                             check_rc=0).stdout)),
      "no peer added with a bad address")
os.unlink(conf)  # the daemon would refuse a bad file first: --listen alone is checked here
for addr, why in BAD_ADDRS:
    try:
        p = subprocess.run([TERN, "--home", field.home, "run", "--listen", addr],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=20)
        rc, err = p.returncode, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, err = None, f"still running after 20 s: {e.stderr!r}"
    first = err.splitlines()[0] if err else ""
    check(rc == 2 and first.startswith(f"tern: run: --listen {addr}: ") and why in first and
          "listening" not in err, f"run --listen {addr}: {rc} {err!r}")
write(conf, GOOD)

# No file, and misuse.
os.unlink(conf)
p = field.run(["config", "check"])
check(p.returncode == 1 and "no such file" in p.stderr and conf in p.stderr, "missing default file")
p = run(["config", "check", os.path.join(s.path, "nope.conf")])
check(p.returncode == 1 and "No such file" in p.stderr, "missing named file")
for args in (["config"], ["config", "frob"], ["config", "check", "a", "b"],
             ["config", "check", "--json"]):
    p = run(args)
    check(p.returncode == 2 and "usage: tern" in p.stderr, f"usage error for {args}: {p.returncode}")

s.close()
done()
