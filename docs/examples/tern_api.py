#!/usr/bin/env python3
"""A client of tern's local API (docs/api.md), Python 3 standard library only.

    tern_api.py send NAME[,NAME] TEXT     send a text; prints the reply
    tern_api.py sendfile NAME /abs/file   the daemon reads and sends the file
    tern_api.py subscribe [SEQ]           print deliveries and receipts as they come
    tern_api.py REQUEST...                any request line, e.g. `inbox limit=5`
"""
import json, os, socket, sys
from urllib.parse import quote


class Tern:
    def __init__(self, home=os.environ.get("TERN_HOME", os.path.expanduser("~/.local/share/tern"))):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(os.path.join(home, "api.sock"))
        self.lines = self.sock.makefile("rb")

    def request(self, verb, body=None, **args):
        """Sends one request; returns its reply as a dict (events before it go to on_event)."""
        words = [verb] + [f"{k}={quote(str(v), safe='')}" for k, v in args.items()]
        if body is not None:
            words.append(f"length={len(body)}")
        self.sock.sendall(" ".join(words).encode() + b"\n" + (body or b""))
        while "ok" not in (msg := self.next()):
            self.on_event(msg)
        return msg

    def next(self):
        line = self.lines.readline()
        if not line:
            raise ConnectionError("the daemon closed the connection")
        return json.loads(line)

    def on_event(self, event):
        print(json.dumps(event), flush=True)


if __name__ == "__main__":
    t, cmd, rest = Tern(), sys.argv[1:2], sys.argv[2:]
    if cmd == ["send"]:
        print(json.dumps(t.request("send", to=rest[0], body=rest[1].encode())))
    elif cmd == ["sendfile"]:
        print(json.dumps(t.request("send", to=rest[0], path=rest[1])))
    elif cmd == ["subscribe"]:
        print(json.dumps(t.request("subscribe", **({"after": rest[0]} if rest else {}))), flush=True)
        while True:
            t.on_event(t.next())
    elif cmd:
        t.sock.sendall(" ".join(sys.argv[1:]).encode() + b"\n")
        print(json.dumps(t.next()))
    else:
        print(__doc__, end="")
