"""Static routing against the epidemic baseline (tern-sim --compare) on a network with a detour."""
import csv
import json
import os

from simrun import check, check_invariants, done, run, scratch

HERE = os.path.dirname(os.path.abspath(__file__))
scn = os.path.join(HERE, "routing.scn")
d = scratch("routing")
out = os.path.join(d, "cmp")
p = run([scn, "--compare", "--out", out])
check(p.returncode == 0, f"--compare exits 0: {p.stderr}")
reports = {}
for name in ("static", "epidemic"):
    with open(os.path.join(out, name, "report.json")) as f:
        reports[name] = json.load(f)
    check(reports[name]["routing"] == name, f"{name}/report.json says routing {name}")
    check_invariants(reports[name], name)
st, ep = reports["static"], reports["epidemic"]
links = {n: {(ln["a"], ln["b"]): ln for ln in r["links"]} for n, r in reports.items()}

# Static: every message waits at north for its line to the hub, cut until day 2.
check(st["latency_s"]["p50"] > 86400, f"static waited for north: p50 {st['latency_s']['p50']}")
# An idle session still carries keepalives both ways: a message shows as bytes one way over.
def one_way(name, a, b):
    ln = links[name][(a, b)]
    return ln["bytes_ab"] - ln["bytes_ba"]


check(abs(one_way("static", "field", "south")) < 2048,
      "static sent no message through south, only keepalives")
# Epidemic: the copy through south arrives within a second or so of being sent.
check(ep["latency_s"]["max"] < 60, f"flooding found south: max {ep['latency_s']['max']} s")
south = (links["epidemic"][("south", "hub")]["bytes_ab"]
         - links["static"][("south", "hub")]["bytes_ab"])
check(south > 24 * 1024, f"flooding carried the 24 messages through south ({south} bytes more)")
# The baseline's price: copies over every way, and queues that keep them.
ep_bytes = sum(ln["bytes_ab"] + ln["bytes_ba"] for ln in ep["links"])
st_bytes = sum(ln["bytes_ab"] + ln["bytes_ba"] for ln in st["links"])
check(ep_bytes > st_bytes, f"flooding carried more bytes ({ep_bytes} against {st_bytes})")

with open(os.path.join(out, "compare.json")) as f:
    cmp = json.load(f)
runs = {r["routing"]: r for r in cmp["runs"]}
check(set(runs) == {"static", "epidemic"}, f"compare.json has both strategies: {list(runs)}")
check(runs["epidemic"]["bytes"] == ep_bytes and runs["static"]["bytes"] == st_bytes,
      "compare.json totals the links' bytes")
check(runs["static"]["latency_s"] == st["latency_s"], "compare.json has the static latency")
with open(os.path.join(out, "compare.csv")) as f:
    rows = {r["routing"]: r for r in csv.DictReader(f)}
check(set(rows) == {"static", "epidemic"}, "compare.csv has a row per strategy")
check(int(rows["epidemic"]["delivered"]) == ep["messages"]["delivered"], "compare.csv delivered")

# --routing forces one strategy, whatever the file says, with the same report as --compare's.
alone = os.path.join(d, "alone")
p = run([scn, "--routing", "epidemic", "--out", alone])
check(p.returncode == 0, f"--routing epidemic exits 0: {p.stderr}")
with open(os.path.join(alone, "report.json"), "rb") as f, \
        open(os.path.join(out, "epidemic", "report.json"), "rb") as g:
    check(f.read() == g.read(), "--routing epidemic gives the bytes --compare gave")
done()
