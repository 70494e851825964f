"""Sneakernet couriers: the weekly courier between two offices with no link, and a stick too
small for what it has to carry. Both run tern's real export and import (relay/stick_*.c)."""
import filecmp
import os

from simrun import (SCENARIOS, check, check_files, check_invariants, done, read_csv, scratch,
                    simulate)

DAY = 86400.0
FILES = ["report.json", "flows.csv", "links.csv", "queue.csv", "report.svg", "couriers.csv"]


def check_receipts(r, name):
    """Every sender's store says delivered: the receipts came home on the stick."""
    sent = r["sent"]
    check(sent["delivered"] == r["messages"]["submitted"] and sent["queued"] == 0
          and sent["handed_over"] == 0, f"{name}: the senders see {sent}")


# ---- the weekly courier: north on day 2 of each week, south a day later, back next week ----
out = scratch("weekly")
r = simulate(os.path.join(SCENARIOS, "weekly-courier.scn"), out)
check_invariants(r, "weekly-courier")
check_files(out, r)
check_receipts(r, "weekly-courier")
check(r["links"] == [], "the offices have no link")
check(r["messages"]["submitted"] > 200, "eight weeks of mail both ways")
post = r["couriers"][0]
north, south = post["stops"]
# Trips start on days 2, 9, ..., 65: ten in the 70 days, each calling at both offices.
check(post["trips"] == 10 and north["visits"] == 10 and south["visits"] == 10,
      f"ten weekly trips: {post}")
check(abs(post["cost"] - 400) < 1e-9 and abs(r["cost"] - 400) < 1e-9, "40 units a trip")
check(north["bytes_out"] > 0 and south["bytes_out"] > 0, "bytes carried both ways")
check(south["bytes_out"] > 10 * north["bytes_out"], "south's files outweigh north's notes")
check(post["bundles"] == north["bundles_out"] + south["bundles_out"], "bundles add up")
check(post["rejected"] == 0 and post["problems"] == 0, f"a clean stick: {post}")
check(post["used_max"] <= post["capacity"] and post["full_visits"] == 0,
      "64 MiB is plenty for a week")
# Custody: what one office handed over, the other receipted, and the receipt released it.
# North's last export (day 65: receipts for south's last mail) is receipted at south on day
# 66; that receipt would come home on day 72, after the end, so it still waits at north.
waiting = {n["name"]: n["queued_end"] for n in r["nodes"]}
check(south["receipted"] == north["bundles_out"]
      and north["released"] == north["bundles_out"] - waiting["north"],
      f"every bundle north exported was receipted and released: {north} {south}")
check(north["receipted"] == south["bundles_out"] and south["released"] == south["bundles_out"],
      f"every bundle south exported was receipted and released: {north} {south}")
check(waiting == {"north": 1, "south": 0}, f"nothing waits at the end but one receipt: {waiting}")
# Nothing arrives before the stick does: south first on day 3, north first on day 9.
check(south["first_in_s"] == 3 * DAY and north["first_in_s"] == 9 * DAY,
      f"the first arrivals ride the first trip: {south['first_in_s']} {north['first_in_s']}")
flows = {(f["from"], f["to"], i): f for i, f in enumerate(r["flows"])}
for (a, b, _), f in flows.items():
    lat = f["latency_s"]
    # North to south: at most a week for the stick, a day on the road. South to north: a
    # week for the stick, then six days until it is back at north.
    bound = 8 * DAY if a == "north" else 13 * DAY
    check(lat["max"] <= bound, f"{a}->{b}: {lat['max'] / DAY:.2f} days at most")
    check(lat["p50"] >= 1 * DAY, f"{a}->{b}: no delivery faster than the road")
rows = read_csv(os.path.join(out, "couriers.csv"))
check([(x["courier"], x["stop"]) for x in rows] == [("post", "north"), ("post", "south")],
      "couriers.csv has a row per stop")
check(int(rows[1]["bytes_out"]) == south["bytes_out"], "couriers.csv agrees with the JSON")

# Same seed, another store directory: the same bytes (stick names come from the seed).
again = scratch("weekly-again")
simulate(os.path.join(SCENARIOS, "weekly-courier.scn"), again, store_dir=scratch("stores"))
for name in FILES:
    check(filecmp.cmp(os.path.join(out, name), os.path.join(again, name), shallow=False),
          f"{name} differs between two runs of weekly-courier with one seed")

# ---- a 1 MiB stick for 3 MiB of files: several trips, never over its size ----
out = scratch("small")
r = simulate(os.path.join(os.path.dirname(__file__), "courier-small.scn"), out)
check_invariants(r, "courier-small")
check_receipts(r, "courier-small")
bag = r["couriers"][0]
field, hub = bag["stops"]
check(bag["used_max"] <= bag["capacity"], f"the stick held {bag['used_max']} bytes at most")
check(bag["used_max"] > bag["capacity"] // 2, "the stick was filled")
check(bag["did_not_fit"] > 0, "some files waited for a later trip")
check(hub["visits_in"] >= 3, f"the files reached the hub over {hub['visits_in']} visits")
check(field["bytes_out"] > 3 * bag["capacity"] // 2, "more than the stick holds went by it")
check(field["bytes_out"] < 4 * 1024 * 1024, "each file went once")
done()
