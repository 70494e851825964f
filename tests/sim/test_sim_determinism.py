"""The same scenario and seed give byte-identical reports; another seed gives another run."""
import filecmp
import os

from simrun import SCENARIOS, check, check_invariants, done, scratch, simulate

FILES = ["report.json", "flows.csv", "links.csv", "queue.csv", "report.svg", "couriers.csv"]
# Crashes, random link periods, Poisson traffic and a courier: every source of variation at once.
scenario = os.path.join(os.path.dirname(__file__), "determinism.scn")
a, b, c = scratch("a"), scratch("b"), scratch("c")
ra = simulate(scenario, a, seed=7)
# Another store directory: paths must not leak into the report.
simulate(scenario, b, seed=7, store_dir=scratch("stores"))
rc = simulate(scenario, c, seed=8)
for f in FILES:
    check(filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False),
          f"{f} differs between two runs with seed 7")
check(not filecmp.cmp(os.path.join(a, "report.json"), os.path.join(c, "report.json"),
                      shallow=False), "seeds 7 and 8 gave the same report")
check(ra["seed"] == 7 and rc["seed"] == 8, "the report names its seed")
bag = ra["couriers"][0]
check(bag["bundles"] > 0 and bag["stops"][1]["taken_in"] > 0, f"the courier carried mail: {bag}")
check_invariants(ra, "seed 7")
check_invariants(rc, "seed 8")
done()
