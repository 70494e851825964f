"""Bad scenarios and arguments: a clear error naming the file, each line and the problem."""
import os

from simrun import check, done, run, scratch

d = scratch("errors")
bad = os.path.join(d, "bad.scn")
with open(bad, "w") as f:
    f.write("""# every line but the comments is wrong
duration 2x
node a b a
link a c rate fast
traffic a b every 1h size 10-5
route a default b
crash b at 1h
frobnicate
node x[1-3] y[1-2]
routing flood
courier c route a every 7d travel 1d capacity 1MiB
courier c route a b every 1d travel 1d capacity 64MiB
courier c route a b every 7d travel 1d capacity 10KiB
""")
out = os.path.join(d, "out")
p = run([bad, "--out", out])
check(p.returncode == 1, f"a bad scenario exits 1 (got {p.returncode})")
lines = p.stderr.splitlines()
expect = [
    (2, "duration"),
    (3, "'a' is declared twice"),
    (4, "no node named 'c'"),
    (5, "size '10-5'"),
    (7, "crash NODE at TIME for DURATION"),
    (8, "'frobnicate' is not"),
    (9, "two different ranges"),
    (10, "routing: give static or epidemic"),
    (6, "route of a goes via b, which has no link"),
    (11, "courier: a route has two stops or more"),
    (12, "courier: 2 legs of travel (to each stop and back to a) take longer"),
    (13, "courier: capacity '10KiB' is not a size of 1MiB or more"),
]
for line, text in expect:
    check(any(f"{bad}: line {line}: " in e and text in e for e in lines),
          f"line {line} named with '{text}' in:\n{p.stderr}")
check(any("no duration line" in e for e in lines), "a missing duration is named")
check(all(e.startswith(f"tern-sim: {bad}: ") for e in lines), "every error names the file")
check(not os.path.exists(out), "no report for a scenario that does not parse")

p = run([os.path.join(d, "missing.scn")])
check(p.returncode == 1 and "No such file" in p.stderr, f"a missing file: {p.stderr}")
p = run(["x.scn", "--seed", "-3"])
check(p.returncode == 2 and "--seed -3" in p.stderr, f"a bad seed is a usage error: {p.stderr}")
p = run(["x.scn", "--routing", "flood"])
check(p.returncode == 2 and "--routing flood" in p.stderr, f"a bad strategy: {p.stderr}")
p = run(["x.scn", "--routing", "static", "--compare"])
check(p.returncode == 2 and "give one" in p.stderr, f"--routing with --compare: {p.stderr}")
p = run([])
check(p.returncode == 2 and "usage" in p.stderr, "no scenario is a usage error")
p = run(["--help"])
check(p.returncode == 0 and "--seed" in p.stdout, "--help says how")

# A store directory that cannot be used: a clear error, not a crash.
ok = os.path.join(d, "ok.scn")
with open(ok, "w") as f:
    f.write("duration 1h\nnode a b\nlink a b\ntraffic a b every 10m size 100\n")
p = run([ok, "--store-dir", os.path.join(d, "no", "such", "dir"), "--out", out])
check(p.returncode == 1 and "cannot make a directory" in p.stderr,
      f"a bad --store-dir is named: {p.stderr}")
p = run([ok, "--out", os.path.join(d, "ok-out")])
check(p.returncode == 0 and "6 messages: 6 delivered" in p.stdout, f"a good one runs: {p.stdout}")
done()
