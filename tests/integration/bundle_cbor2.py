#!/usr/bin/python3
"""Checks BPv7 bundle files against RFC 9171 with an independent decoder (python3-cbor2).

Usage: /usr/bin/python3 tests/integration/bundle_cbor2.py FILE...

Shares no code with tern's C codec: CBOR comes from Debian's python3-cbor2 and
the CRCs are computed bit by bit here. Prints one line per file, "ok" or
"FAIL" with every violation found, and exits 1 if any file has one.

What is checked (RFC 9171 section numbers in brackets):
- the bundle is an indefinite-length array of definite-length blocks ending
  in a break, with nothing after it [4.1]; blocks use shortest-form integers
  (how tern writes; other writers may differ);
- primary block [4.3.1]: version 7; no reserved flag bits; flag rules for
  admin records and anonymous sources [4.2.3]; CRC type 0, 1 or 2 and the
  item count it and the fragment flag call for; a CRC unless a BIB is
  present; EIDs [4.2.5]; creation timestamp [uint, uint]; lifetime uint;
  fragment offset below the total ADU length;
- canonical blocks [4.3.2]: 5 or 6 items matching the CRC type; unique
  non-zero block numbers; data a byte string; no reserved block flag bits;
  exactly one payload block, number 1, last; every CRC recomputed [4.2.1];
- extension blocks [4.4]: Previous Node an EID, Bundle Age a uint, Hop Count
  [limit 1..255, count]; each at most once; a Bundle Age block when the
  creation time is 0.
"""

import io
import re
import sys

import cbor2

BUNDLE_FLAGS = {0x1: "fragment", 0x2: "admin record", 0x4: "must not fragment",
                0x20: "ack requested", 0x40: "status time", 0x4000: "report reception",
                0x10000: "report forwarding", 0x20000: "report delivery",
                0x40000: "report deletion"}
REPORT_FLAGS = 0x4000 | 0x10000 | 0x20000 | 0x40000
BLOCK_FLAGS = 0x01 | 0x02 | 0x04 | 0x10
UINT64_MAX = (1 << 64) - 1


def crc16_x25(data):
    """CRC-16/X.25, bitwise: reflected poly 0x1021 (0x8408), init and xorout 0xffff."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def crc32c(data):
    """CRC-32C (Castagnoli), bitwise: reflected poly 0x1EDC6F41 (0x82F63B78)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


assert crc16_x25(b"123456789") == 0x906E
assert crc32c(b"123456789") == 0xE3069283


def is_uint(v):
    return type(v) is int and 0 <= v <= UINT64_MAX


def check_crc(raw, crc_type, value, where, errors):
    """The CRC covers the block's bytes with the CRC value's bytes zeroed [4.2.1]."""
    size = {1: 2, 2: 4}[crc_type]
    if not isinstance(value, bytes) or len(value) != size:
        errors.append(f"{where}: CRC is not a {size}-byte string")
        return
    if not raw.endswith(value):
        errors.append(f"{where}: CRC value is not the block's last bytes")
        return
    zeroed = raw[:-size] + bytes(size)
    want = crc16_x25(zeroed) if crc_type == 1 else crc32c(zeroed)
    got = int.from_bytes(value, "big")
    if want != got:
        errors.append(f"{where}: CRC {got:#x}, computed {want:#x}")


def eid_text(eid, where, errors):
    """Checks an EID [4.2.5.1] and returns it as text."""
    if not isinstance(eid, list) or len(eid) != 2 or not is_uint(eid[0]):
        errors.append(f"{where}: EID is not [scheme, SSP]")
        return "?"
    scheme, ssp = eid
    if scheme == 1:
        if ssp == 0 and type(ssp) is int:
            return "dtn:none"
        if not isinstance(ssp, str):
            errors.append(f"{where}: dtn SSP is neither 0 nor text")
            return "dtn:?"
        if not re.fullmatch(r"//[^/\x00-\x1f\x7f]+/[^\x00-\x1f\x7f]*", ssp):
            errors.append(f"{where}: dtn SSP {ssp!r} is not //node-name/demux")
        return "dtn:" + ssp
    if scheme == 2:
        if (not isinstance(ssp, list) or len(ssp) != 2 or not is_uint(ssp[0])
                or not is_uint(ssp[1])):
            errors.append(f"{where}: ipn SSP is not [node, service] of 64-bit uints")
            return "ipn:?"
        return f"ipn:{ssp[0]}.{ssp[1]}"
    errors.append(f"{where}: unknown EID scheme {scheme}")
    return "?"


def split_blocks(data, errors):
    """Splits the outer array into (raw bytes, decoded block) pairs."""
    if not data or data[0] != 0x9F:
        errors.append("not an indefinite-length array (first byte is not 0x9f)")
        return []
    fp = io.BytesIO(data)
    fp.seek(1)
    dec = cbor2.CBORDecoder(fp)
    blocks = []
    while True:
        pos = fp.tell()
        if pos >= len(data):
            errors.append("no break (0xff) at the end")
            return blocks
        if data[pos] == 0xFF:
            fp.seek(pos + 1)
            break
        try:
            item = dec.decode()
        except Exception as e:  # cbor2 raises several types for malformed input
            errors.append(f"block {len(blocks)}: CBOR error: {e}")
            return blocks
        raw = data[pos:fp.tell()]
        if raw[0] in (0x9F, 0xBF) or raw[0] & 0x1F == 31:
            errors.append(f"block {len(blocks)}: indefinite-length block")
        elif cbor2.dumps(item) != raw:
            errors.append(f"block {len(blocks)}: not in definite, shortest-form encoding")
        blocks.append((raw, item))
    if fp.tell() != len(data):
        errors.append(f"{len(data) - fp.tell()} byte(s) after the break")
    return blocks


def check_primary(raw, pb, blocks, errors):
    if not isinstance(pb, list) or not 8 <= len(pb) <= 11:
        errors.append("primary block is not an array of 8 to 11 items")
        return None
    version, flags, crc_type = pb[0], pb[1], pb[2]
    if version != 7:
        errors.append(f"version {version}, not 7")
    if not is_uint(flags):
        errors.append("bundle flags are not a uint")
        flags = 0
    reserved = flags & ~sum(BUNDLE_FLAGS)
    if reserved:
        errors.append(f"reserved bundle flag bits set: {reserved:#x}")
    if flags & 0x2 and flags & REPORT_FLAGS:
        errors.append("admin record with status report flags [4.2.3]")
    if crc_type not in (0, 1, 2):
        errors.append(f"unknown CRC type {crc_type}")
        return None
    frag = bool(flags & 0x1)
    want = 8 + (crc_type != 0) + 2 * frag
    if len(pb) != want:
        errors.append(f"primary block has {len(pb)} items; flags and CRC type call for {want}")
        return None
    dest = eid_text(pb[3], "destination", errors)
    source = eid_text(pb[4], "source", errors)
    eid_text(pb[5], "report-to", errors)
    if source == "dtn:none" and (not flags & 0x4 or flags & REPORT_FLAGS):
        errors.append("anonymous source without must-not-fragment or with report flags [4.2.3]")
    ts = pb[6]
    if not isinstance(ts, list) or len(ts) != 2 or not all(is_uint(v) for v in ts):
        errors.append("creation timestamp is not [uint, uint]")
        ts = [None, None]
    if not is_uint(pb[7]):
        errors.append("lifetime is not a uint")
    if frag:
        offset, adu = pb[8], pb[9]
        if not is_uint(offset) or not is_uint(adu) or offset >= adu:
            errors.append("fragment offset not below the total ADU length")
    if crc_type:
        check_crc(raw, crc_type, pb[-1], "primary block", errors)
    else:
        bib_on_primary = False
        for _, b in blocks[1:]:
            if isinstance(b, list) and len(b) >= 5 and b[0] == 11 and isinstance(b[4], bytes):
                try:
                    targets = cbor2.CBORDecoder(io.BytesIO(b[4])).decode()
                    bib_on_primary |= isinstance(targets, list) and 0 in targets
                except Exception:
                    bib_on_primary = True  # encrypted BIB: cannot tell, give the benefit
        if not bib_on_primary:
            errors.append("primary block has no CRC and no BIB covers it [4.3.1]")
    return {"dest": dest, "source": source, "crc": crc_type, "time": ts[0], "frag": frag,
            "pb": pb}


def check_blocks(blocks, prim, errors):
    numbers = set()
    seen = {}
    payload_len = None
    for i, (raw, b) in enumerate(blocks[1:], start=1):
        where = f"block {i}"
        if not isinstance(b, list) or len(b) not in (5, 6):
            errors.append(f"{where}: not an array of 5 or 6 items")
            continue
        btype, num, flags, crc_type, data = b[:5]
        if not all(is_uint(v) for v in (btype, num, flags, crc_type)):
            errors.append(f"{where}: type, number, flags or CRC type not a uint")
            continue
        where = f"block {num} (type {btype})"
        if crc_type not in (0, 1, 2) or (len(b) == 6) != (crc_type != 0):
            errors.append(f"{where}: {len(b)} items do not match CRC type {crc_type}")
            continue
        if num == 0:
            errors.append(f"{where}: block number 0")
        if num in numbers:
            errors.append(f"{where}: duplicate block number")
        numbers.add(num)
        if flags & ~BLOCK_FLAGS:
            errors.append(f"{where}: reserved block flag bits {flags & ~BLOCK_FLAGS:#x}")
        if not isinstance(data, bytes):
            errors.append(f"{where}: data is not a byte string")
            continue
        if crc_type:
            check_crc(raw, crc_type, b[5], where, errors)
        seen[btype] = seen.get(btype, 0) + 1
        if btype == 1:
            if num != 1:
                errors.append(f"{where}: payload block number is not 1")
            if i != len(blocks) - 1:
                errors.append(f"{where}: payload block is not the last block")
            payload_len = len(data)
            continue
        if num == 1:
            errors.append(f"{where}: number 1 is the payload block's")
        if btype in (6, 7, 10):
            try:
                value = cbor2.loads(data)
            except Exception as e:
                errors.append(f"{where}: data is not one CBOR item: {e}")
                continue
            if cbor2.dumps(value) != data:
                errors.append(f"{where}: data not in definite, shortest-form encoding")
            if btype == 6:
                eid_text(value, f"{where} previous node", errors)
            elif btype == 7 and not is_uint(value):
                errors.append(f"{where}: bundle age is not a uint")
            elif btype == 10 and (not isinstance(value, list) or len(value) != 2
                                  or not all(is_uint(v) for v in value)
                                  or not 1 <= value[0] <= 255):
                errors.append(f"{where}: hop count is not [limit 1..255, count]")
    for btype, name in ((1, "payload"), (6, "previous node"), (7, "bundle age"),
                        (10, "hop count")):
        if seen.get(btype, 0) > 1:
            errors.append(f"{seen[btype]} {name} blocks")
    if not seen.get(1):
        errors.append("no payload block")
    if prim and prim["time"] == 0 and not seen.get(7):
        errors.append("creation time 0 without a Bundle Age block [4.2.7]")
    if prim and prim["frag"] and payload_len is not None:
        pb = prim["pb"]
        if is_uint(pb[8]) and is_uint(pb[9]) and pb[8] + payload_len > pb[9]:
            errors.append("fragment runs past the total ADU length")
    return payload_len, len(blocks)


def check_file(path):
    errors = []
    with open(path, "rb") as f:
        data = f.read()
    blocks = split_blocks(data, errors)
    prim = None
    payload_len = None
    if blocks:
        prim = check_primary(blocks[0][0], blocks[0][1], blocks, errors)
        payload_len, _ = check_blocks(blocks, prim, errors)
    else:
        errors.append("no primary block")
    if errors:
        print(f"FAIL {path}: " + "; ".join(errors))
        return False
    crc = {0: "no CRC", 1: "CRC-16", 2: "CRC-32C"}[prim["crc"]]
    print(f"ok   {path}: {prim['source']} -> {prim['dest']}, primary {crc}, "
          f"{len(blocks)} blocks, payload {payload_len} bytes, {len(data)} bytes")
    return True


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    ok = True
    for path in argv[1:]:
        try:
            ok &= check_file(path)
        except OSError as e:
            print(f"FAIL {path}: {e.strerror}")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
