"""A serial link in tern-sim: the real frames, ARQ and session over a line that flips bits."""
import filecmp
import os

from simrun import SCENARIOS, check, check_files, check_invariants, done, read_csv, run, \
    scratch, simulate

FILES = ["report.json", "flows.csv", "links.csv", "queue.csv", "report.svg"]
MIB = 1024 * 1024
scenario = os.path.join(SCENARIOS, "serial-office.scn")
out = scratch("serial")
r = simulate(scenario, out)
check_invariants(r, "serial-office")
check_files(out, r)
links = {(ln["a"], ln["b"]): ln for ln in r["links"]}
radio, town = links[("river", "hub")], links[("town", "hub")]

check(r["messages"]["submitted"] > 80, f"{r['messages']['submitted']} messages made")
# Two half-hour windows a day for seven days, one connection each: nothing more, nothing less.
check(abs(radio["up_s"] - 7 * 2 * 1800) < 1e-6, f"the radio was up {radio['up_s']} s")
check(radio["sessions"] == 14, f"{radio['sessions']} connections on the radio, not 14")
check(abs(town["up_s"] - r["duration_s"]) < 1e-6, "the TCP office was up all the time")
check(radio["bytes_ab"] > 0 and radio["bytes_ba"] > 0, "the radio carried bytes both ways")
# What a window can carry: 2,400 bit/s is 240 bytes a second each way, framing included.
check(radio["bytes_ab"] <= 240 * radio["up_s"] and radio["bytes_ba"] <= 240 * radio["up_s"],
      "no more bytes than the line rate allows")
# Cost per MiB carried, both ways, as on a TCP link.
cost = (radio["bytes_ab"] + radio["bytes_ba"]) / MIB * 40
check(abs(radio["cost"] - cost) < 0.002, f"radio cost {radio['cost']}, not {cost:.3f}")
check(abs(r["cost"] - radio["cost"] - town["cost"]) < 0.002, "the cost is the links' sum")

# At a BER of 1e-5 bits were flipped, the CRC caught them, and the ARQ sent frames again.
s = radio.get("serial")
check(s is not None, "the radio's report has a serial object")
if s:
    check(s["ber"] == 1e-5, f"ber {s['ber']}")
    check(s["bits_flipped"] > 0, "the line flipped bits")
    check(s["frames_bad"] > 0, "the deframers found bad frames")
    check(s["frames_bad"] <= s["bits_flipped"], "no bad frame without a flipped bit")
    check(s["frames_resent"] > 0, "the ARQ sent frames again")
    check(s["frames_resent"] < s["frames_out"] / 10, "errors cost a few frames, not many")
    check(s["frames_in"] <= s["frames_out"], "no frame received that was not sent")
check("serial" not in town, "a TCP link has no serial object")
# Every message on the radio waited for a window at most; the radio's own latency is small.
lat = {(f["from"], f["to"]): f["latency_s"] for f in r["flows"]}
check(lat[("river", "hub")]["max"] < 13 * 3600, "river mail waited one gap between windows")
check(lat[("hub", "river")]["p50"] < 12 * 3600, "hub mail to the river went in a window")

rows = {(x["a"], x["b"]): x for x in read_csv(os.path.join(out, "links.csv"))}
row = rows[("river", "hub")]
check(row["kind"] == "serial" and rows[("town", "hub")]["kind"] == "tcp", "links.csv kinds")
if s:
    check(int(row["frames_resent"]) == s["frames_resent"], "links.csv frames_resent")
    check(int(row["frames_bad"]) == s["frames_bad"], "links.csv frames_bad")
check(int(row["bytes_ab"]) == radio["bytes_ab"], "links.csv bytes")

# The same seed gives the same bytes, whatever the store directory; another seed, other damage.
b, c = scratch("serial-b"), scratch("serial-c")
simulate(scenario, b, store_dir=scratch("serial-stores"))
rc = simulate(scenario, c, seed=2)
for f in FILES:
    check(filecmp.cmp(os.path.join(out, f), os.path.join(b, f), shallow=False),
          f"{f} differs between two runs with seed 1")
check(not filecmp.cmp(os.path.join(out, "report.json"), os.path.join(c, "report.json"),
                      shallow=False), "seeds 1 and 2 gave the same report")
check_invariants(rc, "serial-office seed 2")

# The serial options' errors name the line and what is wrong.
bad = scratch("serial-bad")
cases = [
    ("link a b ber 1e-5", "ber is for serial links"),
    ("link a b serial ber 0.5", "ber '0.5'"),
    ("link a b serial rate 10Mbps", "50bps to 4Mbps"),
    ("link a b serial latency 1500us", "latency '1500us'"),
    ("link a b serial latency 2.5ms", "whole milliseconds"),
    ("link a b serial rate 4Mbps latency 5m", "16 MiB in flight"),
]
for i, (line, want) in enumerate(cases):
    path = os.path.join(bad, f"bad{i}.scn")
    with open(path, "w") as fh:
        fh.write(f"duration 1d\nnode a b\n{line}\n")
    p = run([path, "--out", os.path.join(bad, f"out{i}")])
    check(p.returncode == 1, f"{line!r}: exit {p.returncode}")
    check("line 3: link: " in p.stderr and want in p.stderr, f"{line!r}: {p.stderr.strip()}")
done()
