"""tern's bundle files, decoded by an independent CBOR decoder (Debian's python3-cbor2) and held
against RFC 9171; and the compact case fits one 340-byte Iridium SBD message."""
import os
import subprocess
import sys

import cbor2

from ternlib import Node, Scratch, check, done, introduce

HERE = os.path.dirname(os.path.abspath(__file__))
s = Scratch("rfc9171")
files = []
sbd = []
for clock in ("untrusted", "trusted"):
    a = Node(s, f"a-{clock}", clock=clock)
    b = Node(s, f"b-{clock}", clock=clock)
    c = Node(s, f"c-{clock}", clock=clock)
    introduce(a, b)
    a.add_contact(c)
    text160 = ("Convoy left Gode 06:10, 3 trucks, ETA Kebri Dehar 14:00. Road OK to km 88, "
               "detour at the Fafen bridge. Call sat phone if late. Fuel 60%. All well.")
    text160 += "." * (160 - len(text160))
    check(len(text160) == 160, "the SBD test text is 160 bytes")
    a.run(["send", "b-" + clock, "-m", text160], check_rc=0)
    a.run(["send", "b-" + clock, "-m", "x" * 3000, "--priority", "bulk"], check_rc=0)
    a.run(["send", f"b-{clock},c-{clock}", "-m", "to two", "--priority", "urgent"], check_rc=0)
    stick = s.sub(f"stick-{clock}")
    a.run(["bundle", "export", stick], check_rc=0)
    these = sorted(os.path.join(stick, f) for f in os.listdir(stick))
    check(len(these) == 4, f"{clock}: four bundles exported")
    files += these

    for path in these:
        raw = open(path, "rb").read()
        check(raw[0] == 0x9F and raw[-1] == 0xFF, "indefinite-length array")
        blocks = cbor2.loads(raw)
        prim = blocks[0]
        check(prim[0] == 7 and prim[2] == 2 and len(prim) == 9, "version 7, CRC-32C, no fragment")
        check(prim[4] == [1, 0] and prim[5] == [1, 0], "source and report-to are dtn:none")
        check(prim[3][0] == 2 and prim[3][1][1] == 1, "destination ipn:N.1")
        check(prim[1] & 0x04 and not prim[1] & 0x074000,
              "must-not-fragment, no status reports")
        types = [blk[0] for blk in blocks[1:]]
        check(types[-1] == 1 and blocks[-1][1] == 1, "payload block last, number 1")
        check(10 in types, "Hop Count block present")
        if clock == "untrusted":
            check(prim[6][0] == 0 and 7 in types, "clock untrusted: creation time 0 + Bundle Age")
        else:
            check(prim[6][0] > 800_000_000_000 and 7 not in types,
                  "clock trusted: DTN time and no Bundle Age block")
        if len(blocks[-1][4]) == 160 + 114:
            sbd.append(len(raw))
            check(len(raw) <= 340, f"{clock}: 160-byte text is {len(raw)} bytes on the wire (<= 340)")
    check(len(sbd) == 1, f"{clock}: the 160-byte text went out in the compact form")
    sbd.clear()

checker = os.path.join(HERE, "bundle_cbor2.py")
p = subprocess.run(["/usr/bin/python3", checker] + files, capture_output=True, text=True)
sys.stdout.write(p.stdout)
sys.stderr.write(p.stderr)
check(p.returncode == 0, "the independent RFC 9171 checker accepts every file")
check(p.stdout.count("\n") >= len(files), "the checker reported on every file")

s.close()
done()
