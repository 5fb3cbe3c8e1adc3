"""The server under test: coredns-py from this checkout, its benchmark config, started."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Optional

from benchlib.cluster import TTL, ZONE
from benchlib.console import log
from benchlib.proc import Proc
from benchlib.tools import Tools

REPO = Path(__file__).resolve().parents[2]


def repo_env() -> dict:
    """This environment with the checkout first on PYTHONPATH: the coredns_py
    benchmarked is the one next to bench/, not whichever is installed."""
    env = dict(os.environ)
    rest = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + rest if rest else "")
    return env


def start_coredns(args, name: str, manifests: Path, config: Path, state_dir: Path,
                  port: int, tools: Tools, workdir: Path,
                  profile_out: Optional[Path] = None, pinned: bool = True,
                  source: Optional[list] = None) -> Proc:
    """coredns-py, pinned to the server CPU; ``pinned=False``: on every CPU
    (start-up, which may parse on every core while nothing else runs: pin it
    with :func:`pin_after_start` once it answers).  ``source``: options
    instead of ``--manifests`` (``["--etcd", URL]`` for a replica)."""
    env = repo_env()
    env["XDG_STATE_HOME"] = str(state_dir)
    py = [args.python]
    if profile_out is not None:
        py += ["-m", "cProfile", "-o", str(profile_out)]
    cmd = py + ["-m", "coredns_py", "serve", *(source or ["--manifests", str(manifests)]),
                "--listen", f"127.0.0.1:{port}", "--config", str(config)] + args.serve_extra
    return Proc(name, tools.pin(cmd, tools.server_cpu if pinned else None),
                workdir / f"{name}.log", env=env, cwd=REPO)


def pin_after_start(proc: Proc, tools: Tools) -> None:
    """Pin a server started on every CPU to the server CPU, threads included."""
    tools.pin_running(proc.pid, tools.server_cpu)


CONFIG_CHECK = """
import json, sys
from coredns_py import config
try:
    c = config.load(sys.argv[1])
except Exception as exc:
    print(json.dumps({"error": str(exc)}))
else:
    print(json.dumps({"upstream": list(getattr(c, "upstream", ()) or ()),
                      "zone": c.zone, "ttl": c.ttl}))
"""


def serve_extra(python: str) -> list:
    """Options of ``serve`` to turn off what is not DNS, when this version has them:
    the HTTP status listener (a fixed port, which two servers would fight over)
    and the lame-duck delay at shutdown."""
    env = repo_env()
    try:
        text = subprocess.run([python, "-m", "coredns_py", "serve", "--help"],
                              capture_output=True, text=True, timeout=60, env=env,
                              cwd=REPO).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    extra = []
    if "--http" in text:
        extra += ["--http", ""]
    if "--lameduck" in text:
        extra += ["--lameduck", "0"]
    return extra


def write_config(path: Path, python: str) -> Optional[str]:
    """The server's config for the benchmark; an error text when it is unsafe.

    The knot zone is written for this zone and TTL, so both are pinned.
    Forwarding is turned off (``upstream: []``): the ExternalName targets are
    outside the zone, and a server that forwards them would send queries to
    the machine's resolver, off 127.0.0.1.  A server too old to know the key
    has no forwarding; the loaded config is checked either way.
    """
    keys = [f"zone: {ZONE}", f"ttl: {TTL}", "upstream: []", "allow_recursion: []"]
    env = repo_env()
    for _ in range(3):
        path.write_text("\n".join(keys) + "\n")
        try:
            out = subprocess.run([python, "-c", CONFIG_CHECK, str(path)], capture_output=True,
                                 text=True, timeout=60, env=env, cwd=REPO)
            got = json.loads(out.stdout.strip().splitlines()[-1])
        except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
            return f"cannot load the benchmark config with {python}"
        err = got.get("error")
        if err:
            # An older server without forwarding rejects the keys it does not know.
            unknown = [k for k in keys if k.startswith(("upstream", "allow_recursion"))
                       and k.split(":")[0] in err]
            if not unknown:
                return f"the server rejects the benchmark config: {err}"
            keys = [k for k in keys if k not in unknown]
            continue
        if got["upstream"]:
            return (f"the server would forward to {got['upstream']}: refusing to run, "
                    "as that sends queries off 127.0.0.1")
        if got["zone"] != ZONE or got["ttl"] != TTL:
            return f"the server config has zone {got['zone']} ttl {got['ttl']}"
        return None
    return "cannot write a config the server accepts"


def warn_forwarding(folder: Path) -> None:
    """Say so if a coredns-py log in ``folder`` mentions forwarding (it should be off)."""
    for logfile in sorted(folder.glob("coredns-py*.log")):
        text = logfile.read_text(errors="replace")
        lines = [line for line in text.splitlines()
                 if re.search(r"upstream|forward", line, re.I)
                 and "forwarding is off" not in line]
        if lines:
            log(f"  warning: {logfile.name} mentions forwarding:\n"
                + "\n".join(lines)[:1000])
