#!/usr/bin/python3
"""tern-sim at scale (issue 6, "Benchmark"): N nodes, D simulated days, M messages per node a day.

The network: a central hub; regional hubs on always-up 2 Mbit/s lines to it; field offices,
a hundred a region, each on a 64 kbit/s satellite link with two 15-minute windows a day
(staggered by region). Each office sends M messages a day, half to the central hub, half to
an office of another region (four hops). Figures: wall time, events/s, simulated seconds per
wall second. Same-run baseline: the same network with one region of ten nodes; the ratio of
wall time per message at scale to the baseline's says how the cost grows with the network
(1.0: linear in the messages).
"""
import argparse
import json
import os
import random
import shutil
import re
import subprocess
import sys
import tempfile
import time


def scenario(nodes, days, per_day, seed):
    rnd = random.Random(seed)
    regions = max(1, (nodes - 1) // 101 if nodes > 101 else 1)
    per_region = (nodes - 1 - regions) // regions
    lines = [f"duration {days}d", "sample 6h", "node hub"]
    offices = []
    for r in range(regions):
        lines.append(f"node region{r}")
        lines.append(f"link region{r} hub rate 2Mbps latency 40ms")
        lines.append(f"route region{r} default hub")
        h = (r * 7) % 12
        for o in range(per_region):
            name = f"r{r}o{o}"
            offices.append((r, name))
            lines.append(f"node {name}")
            lines.append(f"link {name} region{r} rate 64kbps latency 600ms cost 8 "
                         f"window {h:02d}:00-{h:02d}:15 window {h + 12:02d}:00-{h + 12:02d}:15")
            lines.append(f"route {name} default region{r}")
            lines.append(f"route region{r} {name} {name}")
            lines.append(f"route hub {name} region{r}")
    period = 86400.0 / per_day * 2  # half of the messages to each kind of destination
    for r, name in offices:
        lines.append(f"traffic {name} hub poisson {int(period)}s size 200-2000 stop {days - 1}d")
        others = [o for o in offices if o[0] != r] or [o for o in offices if o[1] != name]
        dest = rnd.choice(others)[1]
        lines.append(f"traffic {name} {dest} poisson {int(period)}s size 200-2000 "
                     f"stop {days - 1}d")
    return "\n".join(lines) + "\n", len(offices) + regions + 1


def run(sim, nodes, days, per_day, work):
    text, n = scenario(nodes, days, per_day, 1)
    path = os.path.join(work, f"scale-{nodes}.scn")
    with open(path, "w") as f:
        f.write(text)
    out = os.path.join(work, f"out-{nodes}")
    t0 = time.monotonic()
    p = subprocess.run([sim, path, "--out", out], capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"tern-sim failed on {nodes} nodes: {p.stderr}")
    with open(os.path.join(out, "report.json")) as f:
        r = json.load(f)
    return n, wall, r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sim", default="build-bench/sim/tern-sim")
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--per-day", type=int, default=10)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="tern-bench-sim-")
    rows = []
    for nodes in (10, a.nodes):
        n, wall, r = run(a.sim, nodes, a.days, a.per_day, work)
        m = r["messages"]
        rows.append((n, wall, r))
        print(f"{n} nodes, {a.days} days: {m['submitted']} messages, {m['delivered']} delivered, "
              f"{m['lost']} lost, {m['duplicates']} duplicates; {r['events']} events in "
              f"{wall:.1f} s ({r['events'] / wall:,.0f} events/s, "
              f"{a.days * 86400 / wall:,.0f} simulated s per s)")
    (n0, w0, r0), (n1, w1, r1) = rows
    per0 = w0 / max(1, r0["messages"]["submitted"])
    per1 = w1 / max(1, r1["messages"]["submitted"])
    goal = a.nodes == 1000 and a.days == 30 and a.per_day == 10
    print(f"wall time per message: {per1 * 1e3:.2f} ms at {n1} nodes, {per0 * 1e3:.2f} ms at "
          f"{n0} nodes: ratio {per1 / per0:.2f} (1.0 = linear)")
    if goal:
        print(f"goal (1000 nodes, 30 days, under 60 s): {'met' if w1 < 60 else 'not met'} "
              f"({w1:.1f} s)")
    else:
        print("goal (1000 nodes, 30 days, under 60 s): not this run's size; "
              "run --nodes 1000 --days 30")
    shutil.rmtree(work, ignore_errors=True)

main()
