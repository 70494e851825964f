#!/usr/bin/env python3
"""Checks tern's man pages: each renders without a warning, and the pages match the binary.

  check_pages.py render PAGE...     groff -ww prints nothing on stderr; the source is clean
  check_pages.py match TERN MANDIR  a page per command of `tern --help`, every option of
                                    `tern COMMAND --help` in its page, one version everywhere
"""
import os
import re
import shutil
import subprocess
import sys

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def groff(args, page):
    exe = shutil.which("groff")
    if not exe:
        print("groff not found: install groff-base (Debian) to check the man pages")
        sys.exit(1)
    env = dict(os.environ, LC_ALL="C.UTF-8")
    return subprocess.run([exe] + args + [page], capture_output=True, text=True, env=env)


def check_source(page):
    with open(page, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as e:
        fail(f"{page}: byte {e.start}: not ASCII (write \\(em, \\(lq... instead)")
        return
    lines = text.split("\n")
    if not lines[0].startswith(".TH "):
        fail(f"{page}:1: the page starts with .TH")
    for no, line in enumerate(lines, 1):
        if line != line.rstrip():
            fail(f"{page}:{no}: trailing whitespace")
        if "\t" in line:
            fail(f"{page}:{no}: a tab")
    if not text.endswith("\n"):
        fail(f"{page}: no newline at the end")


def render(pages):
    for page in pages:
        before = len(failures)
        check_source(page)
        # -ww: every warning; -z: no output, the warnings only. Both widths a terminal has.
        for width in ("78n", "60n"):
            r = groff(["-Tutf8", "-man", "-ww", "-z", "-rLL=" + width], page)
            if r.returncode != 0 or r.stderr:
                fail(f"{page} (width {width}): groff said:\n{r.stderr.rstrip()}")
        if len(failures) == before:
            print(f"ok: {page}")


def run(tern, *args):
    r = subprocess.run([tern] + list(args), capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"`tern {' '.join(args)}` exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def top_level_alternatives(usage):
    """Splits 'add X [--a b|c] | list' at the '|' outside brackets and parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in usage:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "|" and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return parts


def plain_text(page):
    """The page as text, without overstrike, one space between words."""
    r = groff(["-Tascii", "-man", "-P-cbou", "-rLL=200n"], page)
    return re.sub(r"\s+", " ", r.stdout)


def source_has_option(source, opt):
    # In the source an option is written with escaped hyphens: --max-bytes is \-\-max\-bytes.
    escaped = re.escape(opt.replace("-", "\\-"))
    return re.search(escaped + r"(?![A-Za-z0-9]|\\-)", source) is not None


def match(tern, mandir):
    version = run(tern, "--version").strip()  # "tern 0.1.0"
    helptext = run(tern, "--help")
    commands = []
    in_list = False
    for line in helptext.splitlines():
        if line.startswith("commands:"):
            in_list = True
        elif in_list and re.match(r"^  [a-z]", line):
            commands.append(line.split()[0])
        elif in_list and not line.strip():
            in_list = False
    if not commands:
        fail("`tern --help` lists no commands")

    main = os.path.join(mandir, "tern.1")
    pages = sorted(p for p in os.listdir(mandir) if re.match(r"^tern.*\.[1-8]$", p))
    for p in pages:
        with open(os.path.join(mandir, p), encoding="ascii") as f:
            th = f.readline()
        if f'"{version}"' not in th:
            fail(f"{p}: .TH does not name \"{version}\" (what `tern --version` says): {th.strip()}")

    with open(main, encoding="ascii") as f:
        main_src = f.read()
    for opt in sorted(set(re.findall(r"--[a-z][a-z0-9-]*", helptext)) | {"--help", "--version"}):
        if not source_has_option(main_src, opt):
            fail(f"tern.1: no {opt} (global option)")
    for p in pages:
        m = re.match(r"^(tern-[a-z]+)\.1$", p)
        if m and not re.search(r"^\.BR " + re.escape(m.group(1).replace("-", "\\-")) + r" \(1\)",
                               main_src, re.M):
            fail(f"tern.1: SEE ALSO does not name {m.group(1)}(1)")

    # Every page here is installed: docs/meson.build lists it.
    build = os.path.join(mandir, os.pardir, "meson.build")
    if os.path.exists(build):
        with open(build, encoding="utf-8") as f:
            listed = set(re.findall(r"'man/([^']+)'", f.read()))
        for p in pages:
            if p not in listed:
                fail(f"{p}: not in docs/meson.build's list of pages, so not installed")

    for cmd in commands:
        page = os.path.join(mandir, f"tern-{cmd}.1")
        if not os.path.exists(page):
            fail(f"`tern --help` lists {cmd}, and there is no {page}")
            continue
        if not re.search(r"^\.B " + re.escape(cmd) + r"$", main_src, re.M):
            fail(f"tern.1: the command list has no {cmd} (as '.B {cmd}')")
        with open(page, encoding="ascii") as f:
            src = f.read()
        name = re.search(r"^\.SH NAME\n(.*)$", src, re.M)
        if not name or not name.group(1).startswith(f"tern\\-{cmd} \\- "):
            fail(f"{page}: NAME is not 'tern\\-{cmd} \\- ...'")
        usage = run(tern, cmd, "--help").splitlines()[0]
        prefix = f"usage: tern [--home DIR] {cmd}"
        if not usage.startswith(prefix):
            fail(f"`tern {cmd} --help` does not start with '{prefix}': {usage}")
            continue
        usage = usage[len(prefix):].strip()
        for opt in sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])",
                                         usage))):
            if not source_has_option(src, opt):
                fail(f"{page}: `tern {cmd} --help` has {opt}, the page has no "
                     + opt.replace("-", "\\-"))
        text = plain_text(page)
        synopsis = text[text.find("SYNOPSIS"):text.find("DESCRIPTION")]
        for alt in top_level_alternatives(usage):
            words = alt.split()
            sub = words[0] if words and re.match(r"^[a-z]+$", words[0]) else ""
            want = f"tern [--home DIR] {cmd} {sub}".rstrip()
            if want not in synopsis:
                fail(f"{page}: SYNOPSIS has no '{want}'")
        print(f"ok: tern {cmd}: {page}")


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "render":
        render(sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] == "match":
        match(sys.argv[2], sys.argv[3])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
