#!/usr/bin/python3
"""Independent check of the envelope vectors against docs/envelope.md.

Written from the document, not from crypto/*.c, with PyNaCl (Debian: python3-nacl):
seals every vector again from its listed inputs, compares byte for byte, and opens
it as every recipient, verifying the signature. Not part of the test suite (the
suite has no Python dependency); run it after any change to the format or the doc:
    python3 tests/vectors/envelope/check.py tests/vectors/envelope/*.txt
"""
import hashlib
import struct
import sys

import nacl.bindings as b

TAG_MESSAGE = b.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
TAG_FINAL = b.crypto_secretstream_xchacha20poly1305_TAG_FINAL
CHUNK = 65536
Z24 = bytes(24)


def b2b(n, m, key=b"", personal=b""):
    return hashlib.blake2b(m, digest_size=n, key=key, person=personal.ljust(16, b"\0"))


def blake(n, m, key=b"", personal=b""):
    return b2b(n, m, key, personal).digest()


def x25519(s, p=None):
    out = b.crypto_scalarmult_base(s) if p is None else b.crypto_scalarmult(s, p)
    assert out != bytes(32), "all-zero X25519 output"
    return out


def identity(secret64):
    sign_pk, sign_sk = b.crypto_sign_seed_keypair(secret64[:32])
    box_sk = secret64[32:]
    return {"sign_pk": sign_pk, "sign_sk": sign_sk, "box_sk": box_sk, "box_pk": x25519(box_sk)}


def parse(path):
    v = {"recipient": [], "eph_sk": [], "name": "", "kind": "text", "created_ms": "0",
         "expires_ms": "0"}
    hexkeys = {"sender", "recipient", "plaintext", "content_key", "msg_id", "stream_header",
               "eph_sk", "sealed"}
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        k, _, val = (x.strip() for x in line.partition("="))
        if k in ("recipient", "eph_sk"):
            v[k].append(bytes.fromhex(val))
        elif k in hexkeys:
            v[k] = v.get(k, b"") + bytes.fromhex(val)
        else:
            v[k] = val
    if "plaintext_pattern" in v:
        v["plaintext"] = bytes(i % 251 for i in range(int(v["plaintext_pattern"])))
    v.setdefault("plaintext", b"")
    return v


def push_state(header, key):
    # init_push with a given header: the state is the one init_pull derives from it.
    st = b.crypto_secretstream_xchacha20poly1305_state()
    b.crypto_secretstream_xchacha20poly1305_init_pull(st, header, key)
    return st


def seal_full(v, sender, rcpts):
    K, msg_id, header = v["content_key"], v["msg_id"], v["stream_header"]
    kind = {"text": 1, "file": 2}[v["kind"]]
    name = v["name"].encode()
    pt = v["plaintext"]
    n = len(rcpts)
    stream_key = blake(32, b"", key=K, personal=b"tern.env.strm.v1")
    mac_key = blake(32, b"", key=K, personal=b"tern.env.mack.v1")
    outer = bytes([0x01, n]) + header
    for r, eph_sk in zip(rcpts, v["eph_sk"]):
        eph_pk = x25519(eph_sk)
        ss = x25519(eph_sk, r["box_pk"])
        wrap = blake(32, ss + eph_pk + r["box_pk"], personal=b"tern.env.wrap.v1")
        outer += eph_pk + b.crypto_aead_xchacha20poly1305_ietf_encrypt(K, None, Z24, wrap)
    outer += blake(32, outer, key=mac_key)
    H = blake(32, outer, personal=b"tern.env.hdrh.v1")
    ih = (bytes([1]) + sender["sign_pk"] + msg_id + bytes([kind]) +
          struct.pack(">QQQ", int(v["created_ms"]), int(v["expires_ms"]), len(pt)) +
          bytes([len(name)]) + name + bytes([n]) + b"".join(r["sign_pk"] for r in rcpts))
    st = push_state(header, stream_key)
    out = bytearray(outer)

    def chunk(m, tag, ad=None):
        c = b.crypto_secretstream_xchacha20poly1305_push(st, m, ad, tag)
        out.extend(struct.pack(">I", len(c)) + c)

    chunk(ih, TAG_MESSAGE, H)
    for off in range(0, len(pt), CHUNK):
        chunk(pt[off:off + CHUNK], TAG_MESSAGE)
    chunk(b.crypto_sign(signed_full(H, ih, pt), sender["sign_sk"])[:64], TAG_FINAL)
    return bytes(out)


def open_full(env, me):
    n = env[1]
    olen = 26 + 80 * n + 32
    outer = env[:olen]
    K = None
    for i in range(n):
        st = outer[26 + 80 * i:26 + 80 * (i + 1)]
        ss = x25519(me["box_sk"], st[:32])
        wrap = blake(32, ss + st[:32] + me["box_pk"], personal=b"tern.env.wrap.v1")
        try:
            K = b.crypto_aead_xchacha20poly1305_ietf_decrypt(st[32:], None, Z24, wrap)
            break
        except Exception:
            pass
    assert K is not None, "no stanza opens"
    mac_key = blake(32, b"", key=K, personal=b"tern.env.mack.v1")
    assert blake(32, outer[:-32], key=mac_key) == outer[-32:], "MAC"
    H = blake(32, outer, personal=b"tern.env.hdrh.v1")
    st = b.crypto_secretstream_xchacha20poly1305_state()
    b.crypto_secretstream_xchacha20poly1305_init_pull(
        st, outer[2:26], blake(32, b"", key=K, personal=b"tern.env.strm.v1"))
    pos, chunks = olen, []
    while pos < len(env):
        (L,) = struct.unpack(">I", env[pos:pos + 4])
        m, tag = b.crypto_secretstream_xchacha20poly1305_pull(
            st, env[pos + 4:pos + 4 + L], H if not chunks else None)
        chunks.append((m, tag))
        pos += 4 + L
    assert pos == len(env)
    ih = chunks[0][0]
    nl = ih[74]
    assert len(ih) == 76 + nl + 32 * n and ih[75 + nl] == n
    assert me["sign_pk"] in [ih[76 + nl + 32 * i:108 + nl + 32 * i] for i in range(n)]
    size = struct.unpack(">Q", ih[66:74])[0]
    assert [t for _, t in chunks] == [TAG_MESSAGE] * (len(chunks) - 1) + [TAG_FINAL]
    pt = b"".join(m for m, _ in chunks[1:-1])
    assert len(pt) == size
    sig = chunks[-1][0]
    assert len(sig) == 64
    b.crypto_sign_open(sig + signed_full(H, ih, pt), ih[1:33])  # raises if it does not verify
    return pt, ih[33:49]


def signed_full(H, ih, pt):
    # BLAKE2b-512 of the transcript, and Ed25519 over the domain string and that digest.
    domain = b"tern envelope signature v1\0"
    digest = blake(64, domain + H + struct.pack(">I", len(ih)) + ih + pt,
                   personal=b"tern.env.sigh.v1")
    return domain + digest


def signed_compact(form, eph_pk, r, kind, text):
    version = b"v1" if form == 0x02 else b"v2"
    return (b"tern compact envelope signature " + version + b"\0" + eph_pk + r["sign_pk"] +
            r["box_pk"] + bytes([kind]) + text)


def seal_compact(v, sender, r):
    """Version 2 (form 0x03): the kind byte is the first byte of the sender's key."""
    eph_sk = v["eph_sk"][0]
    eph_pk = x25519(eph_sk)
    key = blake(32, x25519(eph_sk, r["box_pk"]) + eph_pk + r["box_pk"],
                personal=b"tern.cmp.key.v1")
    text = v["plaintext"]
    hint = sender["sign_pk"][0]
    sig = b.crypto_sign(signed_compact(0x03, eph_pk, r, hint, text), sender["sign_sk"])[:64]
    head = bytes([0x03]) + eph_pk
    return head + b.crypto_aead_xchacha20poly1305_ietf_encrypt(bytes([hint]) + sig + text,
                                                               head, Z24, key)


def open_compact(env, me, sender_pk):
    form, eph_pk = env[0], env[1:33]
    key = blake(32, x25519(me["box_sk"], eph_pk) + eph_pk + me["box_pk"],
                personal=b"tern.cmp.key.v1")
    p = b.crypto_aead_xchacha20poly1305_ietf_decrypt(env[33:], env[:33], Z24, key)
    assert p[0] == (1 if form == 0x02 else sender_pk[0])
    b.crypto_sign_open(p[1:65] + signed_compact(form, eph_pk, me, p[0], p[65:]), sender_pk)
    return p[65:], blake(16, eph_pk, personal=b"tern.cmp.msgid1")


def main(paths):
    bad = 0
    for path in paths:
        v = parse(path)
        sender = identity(v["sender"])
        rcpts = [identity(r) for r in v["recipient"]]
        compact = v["form"] in ("compact", "compact-v1")
        if v["form"] == "compact-v1":  # retired: opened, no longer sealed
            sealed = v["sealed"]
        else:
            sealed = seal_compact(v, sender, rcpts[0]) if compact else seal_full(v, sender, rcpts)
        ok = sealed == v["sealed"]
        for r in rcpts:
            if compact:
                pt, mid = open_compact(v["sealed"], r, sender["sign_pk"])
            else:
                pt, mid = open_full(v["sealed"], r)
            ok = ok and pt == v["plaintext"] and mid == v["msg_id"]
        print(f"{v['vector']}: {'ok' if ok else 'MISMATCH'} ({len(sealed)} bytes)")
        bad += not ok
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
