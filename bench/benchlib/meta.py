"""What the run was: date, command, machine, tool versions, commit; printed as a header."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys
from pathlib import Path

from benchlib.console import log
from benchlib.coredns import REPO
from benchlib.tools import Tools


def collect(args, argv, tools: Tools, config: Path, workdir: Path) -> dict:
    """The "meta" of the JSON: everything needed to tell two runs apart."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [sys.argv[0]] + (argv or sys.argv[1:])),
        "machine": machine(),
        "python": platform.python_version(),
        "dnsperf": "dnsperf " + tools.version([tools.dnsperf, "-h"]).replace("Version ", ""),
        "knotd": tools.version([tools.knotd, "-V"]) if tools.knotd else None,
        "pinned": {"server_cpu": tools.server_cpu, "dnsperf_cpu": tools.client_cpu},
        "nice": args.nice,
        "serve_options": args.serve_extra,
        "config": config.read_text(),
        "coredns_py_commit": head_commit(),
        "workdir": str(workdir),
    }


def print_header(meta: dict, args, tools: Tools, config: Path, workdir: Path) -> None:
    log(f"coredns-py benchmark, {meta['date']}")
    log(f"machine: {meta['machine']}; Python {meta['python']}; {meta['dnsperf']}; "
        f"{meta['knotd'] or 'knotd skipped'}")
    log(f"coredns-py from {REPO} (commit {meta['coredns_py_commit']}, plus any uncommitted "
        "changes)")
    log(f"coredns-py config: {config.read_text().strip().replace(chr(10), '; ')}; "
        f"serve options {' '.join(repr(a) if not a else a for a in args.serve_extra)}")
    log(f"servers on CPU {tools.server_cpu}, dnsperf on CPU {tools.client_cpu}"
        + (f", nice {args.nice}" if args.nice else "") + f"; data in {workdir}")
    log("latency percentiles: from dnsperf -v (one line per answered query; this dnsperf "
        "has no latency histogram option)")


def head_commit() -> str:
    """The checked-out commit, read from .git without running git."""
    try:
        git = REPO / ".git"
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:12]
        ref = head[5:]
        if (git / ref).exists():
            return (git / ref).read_text().strip()[:12]
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0][:12]
    except OSError:
        pass
    return "?"


def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return (f"{os.cpu_count()} cores ({model}), {mem} RAM, {platform.system()} "
            f"{platform.release()}")
