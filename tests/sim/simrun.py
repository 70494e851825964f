"""Helpers for the sim suite: runs tern-sim on a scenario and reads its report."""
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

TERN_SIM = os.environ.get("TERN_SIM", "tern-sim")
SCENARIOS = os.environ.get("SIM_SCENARIOS", "sim/scenarios")

failures = 0


def check(cond, what):
    """Records a failed check and goes on, so one run reports every broken promise."""
    global failures
    if not cond:
        failures += 1
        print(f"FAIL: {what}", file=sys.stderr)
    return cond


def done():
    if failures:
        print(f"{failures} check(s) failed", file=sys.stderr)
        sys.exit(1)
    print("ok")
    sys.exit(0)


def scratch(name):
    d = tempfile.mkdtemp(prefix=f"tern-sim-test-{name}-")
    if not os.environ.get("TERN_KEEP"):
        import atexit

        atexit.register(shutil.rmtree, d, True)
    return d


def run(args, timeout=600):
    return subprocess.run([TERN_SIM] + args, capture_output=True, text=True, timeout=timeout)


def simulate(scenario, out, seed=1, store_dir=None):
    """Runs a scenario into out; returns the parsed report.json, failing the test if it fails."""
    args = [scenario, "--seed", str(seed), "--out", out]
    if store_dir:
        args += ["--store-dir", store_dir]
    p = run(args)
    if p.returncode != 0:
        print(p.stdout, p.stderr, file=sys.stderr)
        check(False, f"tern-sim {scenario} exited {p.returncode}")
        done()
    with open(os.path.join(out, "report.json")) as f:
        return json.load(f)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def check_files(out, report):
    """The CSV files agree with the JSON, and the chart is an SVG a browser can open."""
    flows = read_csv(os.path.join(out, "flows.csv"))
    check(len(flows) == len(report["flows"]), "flows.csv has a row per flow")
    for row, fl in zip(flows, report["flows"]):
        check(int(row["delivered"]) == fl["delivered"], f"flows.csv {row['from']}->{row['to']}")
    links = read_csv(os.path.join(out, "links.csv"))
    check(len(links) == len(report["links"]), "links.csv has a row per link")
    queue = read_csv(os.path.join(out, "queue.csv"))
    check(len(queue) >= 2, "queue.csv has samples")
    check(set(queue[0].keys()) == {"t_s"} | {n["name"] for n in report["nodes"]},
          "queue.csv has a column per node")
    root = ET.parse(os.path.join(out, "report.svg")).getroot()
    check(root.tag.endswith("svg"), "report.svg is an SVG document")
    check(len(root.findall("{http://www.w3.org/2000/svg}polyline")) >= 2,
          "report.svg draws the latency CDF and the queues")


def check_invariants(report, name):
    """Every message made was delivered once: none lost, none twice, none elsewhere."""
    m = report["messages"]
    check(m["lost"] == 0, f"{name}: {m['lost']} messages lost")
    check(m["duplicates"] == 0, f"{name}: {m['duplicates']} duplicates delivered")
    check(m["misdelivered"] == 0, f"{name}: {m['misdelivered']} delivered to the wrong node")
    check(m["delivered"] == m["submitted"],
          f"{name}: {m['delivered']} of {m['submitted']} delivered "
          f"({m['in_transit']} in transit, {m['expired']} expired)")
    for fl in report["flows"]:
        check(fl["submitted"] > 0, f"{name}: flow {fl['from']}->{fl['to']} made no message")
        check(fl["delivered"] == fl["submitted"],
              f"{name}: flow {fl['from']}->{fl['to']}: {fl['delivered']} of {fl['submitted']}")
    for ln in report["links"]:
        check(ln["session_errors"] == 0,
              f"{name}: link {ln['a']}-{ln['b']}: {ln['session_errors']} session errors "
              f"({ln['last_error']})")


# ---- processes and pty pairs, for the tests that drive tern-line and the fake modems ----

SOCAT = "/usr/bin/socat" if os.path.exists("/usr/bin/socat") else shutil.which("socat")
procs = []  # every process a test started: stopped when it exits


def _stop_all():
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=2)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _on_term(*_):
    raise SystemExit(1)


def stop_at_exit():
    """Stops the processes in procs when the test ends, and when meson stops an overrunning
    test with SIGTERM."""
    import atexit
    import signal
    atexit.register(_stop_all)
    signal.signal(signal.SIGTERM, _on_term)


def pty_pair(d, name):
    """socat makes two linked ptys in d: NAME0 for the daemon's side (in these tests, the test
    itself), NAME1 for the program under test. Links left by an earlier pair of that name go.

    -b 64: socat writes a whole block at once, blocking; with 8 KiB blocks a writer faster
    than the line stalls the other direction for seconds (docs/line.md)."""
    import time
    ends = [os.path.join(d, name + "0"), os.path.join(d, name + "1")]
    for e in ends:
        if os.path.lexists(e):
            os.unlink(e)
    log = open(os.path.join(d, f"socat-{name}.log"), "ab")
    p = subprocess.Popen([SOCAT, "-d", "-d", "-b", "64", f"pty,raw,echo=0,link={ends[0]}",
                          f"pty,raw,echo=0,link={ends[1]}"],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    log.close()
    procs.append(p)
    deadline = time.monotonic() + 10
    while not all(os.path.exists(e) for e in ends) and time.monotonic() < deadline:
        time.sleep(0.02)
    check(all(os.path.exists(e) for e in ends), f"socat made {ends}")
    return p, ends
