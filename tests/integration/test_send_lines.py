"""tern send --lines: one text message per line of stdin, a thousand per durable commit; empty
lines are no messages; a bundle id on stdout means a queued message; several recipients; and a
line that cannot be sealed names its line and queues nothing of its batch. Without --lines, an
empty stdin or -m "" is refused, and an empty --file is sent."""
import subprocess
import time

from ternlib import TERN, Node, Scratch, check, done, introduce

s = Scratch("send-lines")
a, b, c = Node(s, "a"), Node(s, "b"), Node(s, "c")
introduce(a, b)
introduce(a, c)

# 2,345 lines across three batches, some empty, one long enough for the full envelope form.
lines = []
for i in range(2345):
    lines.append("" if i % 100 == 7 else f"line {i:05d} " + "x" * (i % 50))
lines[1500] = "long " + "y" * 3000
expected = [t for t in lines if t]
p = a.run(["send", "b", "--lines"], input="\n".join(lines) + "\n", check_rc=0)
ids = p.stdout.split()
check(len(ids) == len(expected) and len(set(ids)) == len(ids),
      f"one bundle id per non-empty line: {len(ids)} of {len(expected)}")
check(f"queued {len(expected)} messages for 1 recipient" in p.stderr, f"summary: {p.stderr!r}")
check(len(a.queue()) == len(expected), "all of them queued")

stick = s.sub("stick")
a.run(["peer", "add", "b", b.idstring, "--sneakernet"], check_rc=0)
a.run(["export", stick, "--for", "b"], check_rc=0)
b.run(["import", stick], check_rc=0)
inbox = b.inbox()
check(len(inbox) == len(expected), f"all delivered: {len(inbox)}")
by_size = sorted(e["size"] for e in inbox)
check(by_size == sorted(len(t.encode()) for t in expected), "with the sizes of the lines")
longest = max(inbox, key=lambda e: e["size"])
check(b.run(["read", longest["id"]], check_rc=0).stdout == lines[1500], "the long line intact")

# No trailing newline, CRLF kept as text, several recipients (one bundle each per line).
p = a.run(["send", "b,c", "--lines"], input="first\nsecond", check_rc=0)
check(len(p.stdout.split()) == 4, f"two lines for two recipients: four bundles: {p.stdout!r}")
p = a.run(["send", "c", "--lines"], input="", check_rc=0)
check(p.stdout == "" and "queued 0 messages" in p.stderr, "nothing in, nothing queued")

# Without --lines, an empty stdin (</dev/null, a cron job whose producer failed) or an empty
# -m is no message: refused, nothing queued. An empty file is a file, and goes.
before = len(a.queue())
for what, kw, why in (("</dev/null", {}, "nothing on stdin"),
                      ("an empty pipe", {"input": ""}, "nothing on stdin"),
                      ('-m ""', {"args": ["-m", ""]}, '-m ""')):
    p = a.run(["send", "b"] + kw.pop("args", []), **kw)
    check(p.returncode == 1 and p.stdout == "" and
          p.stderr == f"tern: send: the message is empty ({why})\n",
          f"{what} refused: {p.returncode} {p.stdout!r} {p.stderr!r}")
check(len(a.queue()) == before, "no empty message queued")
p = a.run(["send", "b"], input="from a pipe\n", check_rc=0)
check(len(p.stdout.split()) == 1, f"a pipe with text still sends: {p.stdout!r}")
empty = s.sub("files") + "/empty.txt"
open(empty, "w").close()
p = a.run(["send", "b", "--file", empty], check_rc=0)
check(len(p.stdout.split()) == 1 and len(a.queue()) == before + 2,
      f"an empty file is a file, and is queued: {p.stdout!r}")

# An unknown recipient, or --lines with another source: refused before anything is read.
p = a.run(["send", "nobody", "--lines"], input="hello\n", check_rc=1)
check("nobody: no such contact" in p.stderr, f"unknown recipient named: {p.stderr!r}")
p = a.run(["send", "b", "--lines", "-m", "x"], check_rc=2)
check("exclude each other" in p.stderr, "--lines with -m is a usage error")

# The batch is read before the store is locked: another writer gets through while a slow
# producer is still writing into the pipe.
proc = subprocess.Popen([TERN, "--home", a.home, "send", "b", "--lines"], stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
proc.stdin.write("slow one\n")
proc.stdin.flush()
time.sleep(0.5)
t0 = time.monotonic()
p = a.run(["contact", "add", "d", Node(s, "d").idstring])
check(p.returncode == 0 and time.monotonic() - t0 < 4,
      f"another writer is not blocked by a waiting --lines: {p.returncode} {p.stderr!r}")
proc.stdin.write("slow two\n")
proc.stdin.close()
out = proc.stdout.read()
proc.wait(timeout=30)
check(proc.returncode == 0 and len(out.split()) == 2, f"the slow producer's lines queued: {out!r}")

s.close()
done()
