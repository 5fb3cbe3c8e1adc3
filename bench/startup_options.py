"""What each start-up option gives: parsing on one core or on all, and the parse cache.

For each size, writes the benchmark's manifests without IPs (the server
allocates them) and times, from spawning ``coredns-py serve`` to the first
right answer for a known Service:

- ``cold, 1 CPU``: no state folder, the process confined to one CPU with
  ``taskset`` (so it parses in process: source/parallel.py uses the CPUs it
  may run on);
- ``cold, all CPUs``: no state folder, parsing in child processes;
- ``restart``: the state file and the parse cache the cold run left
  (source/parse_cache.py), all CPUs.

Needs ``taskset`` (util-linux). Listens on 127.0.0.1 only; every server is
stopped in a ``finally``; every wait is bounded.

    python bench/startup_options.py                       # 10k and 100k, 3 rounds
    python bench/startup_options.py --sizes 10000 --rounds 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchlib.cluster import make_cluster  # noqa: E402
from benchlib.coredns import REPO, repo_env  # noqa: E402
from benchlib.manifests import write_manifests  # noqa: E402
from benchlib.probe import addresses, ask  # noqa: E402
from benchlib.proc import free_port  # noqa: E402

LIMIT = 120.0  # seconds: give up on a start that has not answered by then


def first_answer(folder: Path, state: Path, cpus: str, fqdn: str) -> float:
    """Seconds from spawning the server to its first right answer for ``fqdn``."""
    port = free_port()
    env = repo_env()
    env["XDG_STATE_HOME"] = str(state)
    cmd = ["taskset", "-c", cpus, sys.executable, "-m", "coredns_py", "serve",
           "--manifests", str(folder), "--listen", f"127.0.0.1:{port}", "--http", "",
           "--lameduck", "0"]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while time.monotonic() - started < LIMIT and proc.poll() is None:
            resp = ask(port, fqdn, "A", timeout=0.05)
            if resp is not None and addresses(resp):
                return time.monotonic() - started
            time.sleep(0.01)
        return float("nan")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        time.sleep(1.5)  # the parse cache is written by a child after the load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if shutil.which("taskset") is None:
        sys.exit("startup_options.py: needs taskset (apt-get install util-linux)")
    every = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
    one = every.split(",")[0]
    print(f"CPUs: {every}; Python {sys.version.split()[0]}")
    for n in (int(s) for s in args.sizes.split(",")):
        cluster = make_cluster(n, args.seed)
        fqdn = cluster.probe().fqdn
        with tempfile.TemporaryDirectory(prefix="coredns-py-startup-") as tmp:
            folder = Path(tmp) / "m"
            write_manifests(cluster, folder, explicit_ips=False)
            rows = {"cold, 1 CPU": [], "cold, all CPUs": [], "restart (state, parse cache)": []}
            for r in range(args.rounds):
                state = Path(tmp) / f"state-{r}-one"
                rows["cold, 1 CPU"].append(first_answer(folder, state, one, fqdn))
                state = Path(tmp) / f"state-{r}-all"
                rows["cold, all CPUs"].append(first_answer(folder, state, every, fqdn))
                rows["restart (state, parse cache)"].append(first_answer(folder, state, every, fqdn))
            for label, times in rows.items():
                print(f"N={n:>6}  {label:<30} " + "  ".join(f"{t:.2f} s" for t in times))


if __name__ == "__main__":
    main()
