"""Runs one example scenario through tern-sim and checks delivery and what the plan implies."""
import os
import sys

from simrun import SCENARIOS, check, check_files, check_invariants, done, scratch, simulate

name = sys.argv[1]
out = scratch(name)
r = simulate(os.path.join(SCENARIOS, name + ".scn"), out)
check_invariants(r, name)
check_files(out, r)
links = {(ln["a"], ln["b"]): ln for ln in r["links"]}
nodes = {n["name"]: n for n in r["nodes"]}
DAY = 86400.0

if name == "hub-20-satellite":
    check(r["messages"]["submitted"] > 500, "twenty offices made hundreds of messages")
    for i in range(1, 21):
        ln = links[(f"field{i}", "hub")]
        # Two fifteen-minute windows a day for seven days, nothing more.
        check(abs(ln["up_s"] - 7 * 2 * 900) < 1e-6, f"field{i}: up {ln['up_s']} s")
        check(ln["sessions"] == 14, f"field{i}: {ln['sessions']} sessions, not one per window")
        check(ln["bytes_ab"] > 0 and ln["bytes_ba"] > 0, f"field{i}: bytes both ways")
        check(ln["cost"] > 0, f"field{i}: a metered link costs something")
    check(r["cost"] > 0, "the report totals the cost")
    # Nothing crosses outside a window: a message waits for the next one, up to 12 h.
    check(r["latency_s"]["max"] > 6 * 3600, "some messages waited for a window")
    check(r["latency_s"]["max"] < 2 * DAY, "no message waited more than a few windows")
elif name == "chain":
    check(r["messages"]["submitted"] > 80, "the chain carried traffic")
    sat = links[("pi", "satgw")]
    check(abs(sat["up_s"] - 10 * 3 * 1200) < 1e-6, f"pi-satgw up {sat['up_s']} s")
    lap = links[("laptop", "pi")]
    check(1 < lap["sessions"] < 200, f"the laptop came and went ({lap['sessions']} sessions)")
    check(lap["up_s"] < 0.6 * 10 * DAY, "the laptop was out of range much of the time")
    check(nodes["pi"]["queued_max"] > 0, "the Pi held mail for the satellite window")
elif name == "hub-outage":
    check(nodes["hub"]["crashes"] == 1 and nodes["office3"]["crashes"] == 2, "crashes happened")
    check(r["messages"]["sender_down"] > 0, "the hub made nothing while it was down")
    # Office-to-office mail waited out the outage at the offices.
    check(r["latency_s"]["max"] > 2.5 * DAY, "mail waited for the hub to come back")
    check(nodes["office1"]["queued_max"] > 20, "office1 queued during the outage")
    check(all(n["queued_end"] == 0 for n in r["nodes"]), "every queue drained by the end")
    for i in range(1, 9):
        check(links[(f"office{i}", "hub")]["sessions"] >= 2, f"office{i} reconnected")
else:
    check(False, f"no checks written for scenario {name}")
done()
