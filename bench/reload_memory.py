"""Reloads and memory: the garbage-collector strategy after a build, measured.

After each build the server tells Python's garbage collector what to do
with the heap (``coredns_py/heap.py``, ``after_swap``).  This script runs
the real server once per strategy and prints, for each:

- **reload pause**: query latency (p50, p99, max) from a client asking one
  name every few milliseconds while full reloads (SIGHUP) and one-file
  reloads run;
- **RSS growth** over many reloads (MB at the start, at the end, per reload);
- **frozen objects** (``gc.get_freeze_count()``) at the end, from the log;
- **memory returned** after a big file is added then removed.

Strategies (``--strategies``; each is the body of ``after_swap``):

    freeze      gc.freeze()                                  (the server's before this)
    freeze-gc   gc.freeze(); gc.collect()                    (nothing left to walk; empties
                                                              Python's free lists)
    refreeze    gc.unfreeze(); gc.collect(); gc.freeze()
    collect     gc.collect()
    none        (nothing: the collector runs on its own thresholds)

and each of them with ``+trim`` (glibc's malloc_trim(0) after the swap) and
``+malloc`` (the server run with PYTHONMALLOC=malloc: every object from glibc's
allocator instead of Python's arenas, which only go back to the system once
entirely empty), e.g. ``freeze+trim+malloc``.

    python bench/reload_memory.py                       # 1k and 10k Services, every strategy
    python bench/reload_memory.py --sizes 1000 --reloads 300 --strategies freeze,refreeze+trim

Everything listens on 127.0.0.1, every loop is bounded in count and time, and
every server is killed in a ``finally``.  Nothing is asserted: figures only.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import tempfile
import time
from pathlib import Path

from benchlib.cluster import Svc, make_cluster
from benchlib.coredns import REPO, repo_env, write_config
from benchlib.console import fmt, log
from benchlib.manifests import namespace_yaml, write_manifests
from benchlib.proc import Proc, free_port
from benchlib.prober import Prober, latency_figures

STRATEGIES = {
    "freeze": "gc.freeze()",
    "freeze-gc": "gc.freeze(); gc.collect()",
    "refreeze": "gc.unfreeze(); gc.collect(); gc.freeze()",
    "collect": "gc.collect()",
    "none": "pass",
}

# The server, with ``heap.after_swap`` replaced by the strategy under test;
# it logs the frozen-object count after every swap.
LAUNCH = """
import ctypes, gc, logging, sys
from coredns_py import heap
_libc = ctypes.CDLL("libc.so.6")
_log = logging.getLogger("coredns_py.bench")
def after_swap():
    {body}
    if {trim}:
        _libc.malloc_trim(0)
    _log.warning("frozen=%d", gc.get_freeze_count())
heap.after_swap = after_swap
from coredns_py.cli import main
sys.exit(main(sys.argv[1:]))
"""

LOADED = re.compile(r"loaded \d+ files: .*\((\d+) ms\)")
FROZEN = re.compile(r"frozen=(\d+)")


class Server:
    def __init__(self, args, strategy: str, folder: Path, config: Path, work: Path):
        body, *extras = strategy.split("+")
        code = LAUNCH.format(body=STRATEGIES[body], trim="trim" in extras)
        self.port = free_port()
        env = repo_env()
        if "malloc" in extras:
            env["PYTHONMALLOC"] = "malloc"
        env["XDG_STATE_HOME"] = str(work / f"state-{strategy}")
        cmd = [args.python, "-c", code, "serve", "--manifests", str(folder),
               "--listen", f"127.0.0.1:{self.port}", "--config", str(config),
               "--http", "", "--lameduck", "0"]
        self.proc = Proc(f"coredns-py-{strategy}", cmd, work / f"server-{strategy}.log",
                         env=env, cwd=REPO)

    def log_text(self) -> str:
        return self.proc.logfile.read_text(errors="replace")

    def loads(self) -> list[int]:
        return [int(m) for m in LOADED.findall(self.log_text())]

    def frozen(self) -> int | None:
        found = FROZEN.findall(self.log_text())
        return int(found[-1]) if found else None

    def wait_loads(self, count: int, limit: float) -> bool:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and self.proc.alive():
            if len(self.loads()) >= count:
                return True
            time.sleep(0.01)
        return False

    def rss(self) -> float | None:
        return self.proc.status("VmRSS")


def probe_name(cluster) -> str:
    return cluster.probe().fqdn + "."


def run_strategy(args, strategy: str, n: int, cluster, folder: Path, config: Path,
                 work: Path) -> dict:
    srv = Server(args, strategy, folder, config, work)
    out: dict = {"strategy": strategy, "services": n}
    prober = None
    try:
        if not srv.wait_loads(1, args.startup_timeout):
            out["error"] = "did not start: " + srv.proc.tail()
            return out
        prober = Prober(srv.port, probe_name(cluster))
        prober.start()
        time.sleep(0.5)
        for i in range(args.warmup):  # caches, the memo, the first freeze settle in
            os.kill(srv.proc.pid, signal.SIGHUP)
            srv.wait_loads(2 + i, args.reload_timeout)
        time.sleep(0.5)
        done = len(srv.loads())

        # Full reloads (SIGHUP), one after the other.
        out["rss_start_mb"] = srv.rss()
        t0 = time.monotonic()
        for i in range(args.reloads):
            os.kill(srv.proc.pid, signal.SIGHUP)
            if not srv.wait_loads(done + i + 1, args.reload_timeout):
                out["error"] = f"reload {i + 1} not done after {args.reload_timeout} s"
                break
            time.sleep(args.pause)
        t1 = time.monotonic()
        time.sleep(0.5)
        builds = srv.loads()[done:]
        out["reloads"] = len(builds)
        out["rss_end_mb"] = srv.rss()
        out["frozen_end"] = srv.frozen()
        out["build_ms_median"] = statistics.median(builds) if builds else None
        out["sighup"] = latency_figures(prober.window(t0, t1))
        out["quiet"] = latency_figures(prober.window(t1, time.monotonic()))

        # One-file reloads: one namespace file rewritten (a new Service each time).
        done = len(srv.loads())
        ns = cluster.namespaces[0]
        extra: list = []
        t2 = time.monotonic()
        for i in range(args.file_reloads):
            extra.append(Svc(ns, f"bench-added-{i}", "ClusterIP", ip=f"10.111.{i // 250}.{i % 250 + 1}",
                             ports=[("http", 80)]))
            tmp = folder / f".{ns}.tmp"
            tmp.write_text(namespace_yaml(ns, cluster.by_ns[ns] + extra, True))
            os.replace(tmp, folder / f"{ns}.yaml")
            if not srv.wait_loads(done + i + 1, args.reload_timeout):
                out["error"] = f"file reload {i + 1} not done after {args.reload_timeout} s"
                break
            time.sleep(args.pause)
        t3 = time.monotonic()
        out["file_reloads"] = len(srv.loads()) - done
        out["rss_after_file_reloads_mb"] = srv.rss()
        out["one_file"] = latency_figures(prober.window(t2, t3))
        (folder / f"{ns}.yaml").write_text(namespace_yaml(ns, cluster.by_ns[ns], True))
        srv.wait_loads(len(srv.loads()) + 1, args.reload_timeout)

        # A big file, then its removal: is the memory given back?
        if args.big:
            big = folder / "zz-big.yaml"
            big_cluster = make_cluster(args.big, args.seed + 7)
            done = len(srv.loads())
            text = "---\n".join(
                namespace_yaml(f"big-{bns}", [Svc(f"big-{bns}", s.name, s.kind, s.ip, s.ports,
                                                   s.endpoints, s.external)
                                              for s in big_cluster.by_ns[bns]], True)
                for bns in big_cluster.namespaces)
            out["big_file_mb"] = len(text) / 1e6
            tmp = folder / ".zz-big.tmp"
            tmp.write_text(text)
            os.replace(tmp, big)
            srv.wait_loads(done + 1, args.reload_timeout * 4)
            time.sleep(1.0)
            out["rss_with_big_mb"] = srv.rss()
            done = len(srv.loads())
            big.unlink()
            srv.wait_loads(done + 1, args.reload_timeout * 4)
            time.sleep(2.0)
            out["rss_after_big_removed_mb"] = srv.rss()
        return out
    finally:
        if prober is not None:
            prober.stopping.set()
            prober.join(5)
        srv.proc.stop()


def show(r: dict) -> None:
    if "error" in r:
        log(f"  {r['strategy']}: ERROR {r['error']}")
    s, o, q = r.get("sighup", {}), r.get("one_file", {}), r.get("quiet", {})
    per = None
    if r.get("rss_end_mb") is not None and r.get("rss_start_mb") is not None and r.get("reloads"):
        per = (r["rss_end_mb"] - r["rss_start_mb"]) / r["reloads"]
    log(f"  {r['strategy']:<14} build {fmt(r.get('build_ms_median'), '.0f')} ms | "
        f"SIGHUP x{r.get('reloads')}: p50 {fmt(s.get('p50_ms'), '.2f')} p99 "
        f"{fmt(s.get('p99_ms'), '.1f')} max {fmt(s.get('max_ms'), '.0f')} ms, missed "
        f"{s.get('missed')} | one-file x{r.get('file_reloads')}: p99 {fmt(o.get('p99_ms'), '.1f')} "
        f"max {fmt(o.get('max_ms'), '.0f')} ms | quiet p99 {fmt(q.get('p99_ms'), '.2f')} ms")
    log(f"  {'':<14} RSS {fmt(r.get('rss_start_mb'), '.1f')} -> {fmt(r.get('rss_end_mb'), '.1f')} MB "
        f"({fmt(per, '+.3f')} MB/reload), after one-file reloads "
        f"{fmt(r.get('rss_after_file_reloads_mb'), '.1f')} MB, frozen {r.get('frozen_end')} | "
        f"big file {fmt(r.get('big_file_mb'), '.0f')} MB: RSS {fmt(r.get('rss_with_big_mb'), '.0f')}"
        f" -> {fmt(r.get('rss_after_big_removed_mb'), '.0f')} MB after removal")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1000,10000")
    p.add_argument("--strategies",
                   default="freeze,freeze-gc,freeze-gc+trim,refreeze,collect,none,"
                   "freeze-gc+trim+malloc")
    p.add_argument("--reloads", type=int, default=200, help="SIGHUPs per strategy and size")
    p.add_argument("--file-reloads", type=int, default=100)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--pause", type=float, default=0.02, help="seconds between two reloads")
    p.add_argument("--big", type=int, default=50000,
                   help="Services in the big file added then removed (0: skip)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--startup-timeout", type=float, default=180)
    p.add_argument("--reload-timeout", type=float, default=60)
    p.add_argument("--python", default=shutil.which("python3") or "python3")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="coredns-py-reload-memory-"))
    try:
        config = work / "config.yaml"
        err = write_config(config, args.python)
        if err:
            log(f"error: {err}")
            return 2
        results = []
        for n in [int(x) for x in args.sizes.split(",")]:
            cluster = make_cluster(n, args.seed)
            log(f"N={n} Services: {args.reloads} SIGHUPs, {args.file_reloads} one-file reloads, "
                f"then a {args.big}-Service file added and removed, per strategy")
            for strategy in args.strategies.split(","):
                folder = work / f"manifests-{n}-{strategy}"
                write_manifests(cluster, folder, explicit_ips=True)
                r = run_strategy(args, strategy, n, cluster, folder, config, work)
                results.append(r)
                show(r)
        return 0
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
