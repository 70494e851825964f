#!/usr/bin/env python3
"""Real `tern run` daemons in network namespaces (sim/emulate.py): a chain field -> relay ->
hub, the relay-hub line at 256 kbit/s through tc tbf, delay and loss from the link proxy,
the field-relay link down for 6 s in the middle; texts and a 300 KiB file each way must
arrive exactly once, the files intact, every receipt home. Needs root: skips (77) otherwise."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATE = os.path.join(HERE, "..", "..", "sim", "emulate.py")
TERN = os.environ.get("TERN", "tern")

SCENARIO = """\
duration 55s
node field relay hub
link field relay rate 2Mbps latency 40ms loss 2% down 6s 6s
link relay hub rate 256kbps latency 150ms loss 1%
route field default relay
route hub default relay
traffic field hub every 250ms size 100-900 stop 10s
traffic hub field every 250ms size 100-900 stop 10s
traffic field hub every 1s size 300KiB count 1 start 1s
traffic hub field every 1s size 300KiB count 1 start 2s
"""

failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print(f"FAIL: {what}", file=sys.stderr)
    return cond


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(77)


def main():
    if os.geteuid() != 0:
        skip("the emulation needs root (network namespaces, veth pairs, tc)")
    if not shutil.which("ip") or not shutil.which("tc"):
        skip("the emulation needs iproute2 (ip, tc)")
    d = tempfile.mkdtemp(prefix="tern-sim-test-emulation-")
    try:
        scn = os.path.join(d, "chain.scn")
        with open(scn, "w") as f:
            f.write(SCENARIO)
        out = os.path.join(d, "out")
        p = subprocess.run([sys.executable, EMULATE, scn, "--tern", TERN, "--out", out],
                           capture_output=True, text=True, timeout=240)
        sys.stderr.write(p.stderr[-4000:])
        print(p.stdout)
        if p.returncode == 77:
            skip(p.stderr.strip().splitlines()[-1])
        check(p.returncode == 0, f"emulate.py exit {p.returncode}")
        with open(os.path.join(out, "report.json")) as f:
            rep = json.load(f)
        m = rep["messages"]
        # 40 texts and a file each way.
        check(m["due"] == 82 and m["submitted"] == 82, f"82 messages queued: {m}")
        check(m["delivered"] == m["submitted"], f"every message delivered: {m}")
        check(m["duplicates"] == 0 and m["lost"] == 0 and m["unexpected"] == 0,
              f"none twice, none lost, none astray: {m}")
        check(m["files"] == 2 and m["files_corrupt"] == 0, f"both files intact: {m}")
        check(m["receipts"] == m["receipts_due"] == 82, f"every receipt home: {m}")
        field_relay, relay_hub = rep["links"]
        # The plan ran: the link went down and came back while traffic flowed.
        ev = [(e["link"], e["up"]) for e in rep["link_events"]]
        check(ev == [("field-relay", False), ("field-relay", True)], f"link events: {ev}")
        for l in rep["links"]:
            px = l.get("proxy") or {}
            # Each daemon dialled from its own namespace's address, through the proxy.
            want = l["dial"].rsplit(".", 1)[0] + ".1"
            check(px.get("peers") == [want], f"{l['a']}-{l['b']}: calls from {want}: {px}")
            check(px.get("stalls", 0) > 0, f"{l['a']}-{l['b']}: loss made stalls: {px}")
        # The rate limit bites: 300 KiB at 256 kbit/s take 9.6 s at least.
        files = [fl for fl in rep["flows"] if fl["submitted"] == 1]
        check(all(fl["latency_max_s"] and fl["latency_max_s"] > 9.6 for fl in files),
              f"the files crossed the 256 kbit/s line at its rate: {files}")
        for n, v in rep["nodes"].items():
            check(v["daemon_exit"] == 0, f"{n}: tern run exited 0: {v['daemon_exit']}")
        check(rep["wall_s"] < 55, f"settled within the run: {rep['wall_s']} s")
        left = [ns for ns in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                            text=True).stdout.split()
                if ns.startswith("ternemu-" + rep["run"])]
        check(not left, f"no namespace left behind: {left}")
    finally:
        if not os.environ.get("TERN_KEEP"):
            shutil.rmtree(d, ignore_errors=True)
    if failures:
        print(f"{failures} check(s) failed", file=sys.stderr)
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
