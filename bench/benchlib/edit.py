"""The edit row: load while a manifest file changes every second.

A server that watches a folder a developer is editing reloads over and
over; what it answered before the edit must stay fast after it.  During a
saturation run and a half-rate latency run over UDP against the running
coredns-py, a background thread changes one Service's clusterIP in one
namespace file every ``--edit-interval`` seconds (written aside and
renamed over, as editors do), a different namespace each time.  knotd does
not watch files: its figures to compare with are its warm ones of the same
run.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

from benchlib.cluster import Cluster, ip4
from benchlib.console import fmt, log
from benchlib.dnsperf import run_dnsperf
from benchlib.manifests import write_one_namespace
from benchlib.proc import Proc
from benchlib.reload import RELOAD_BASE
from benchlib.tools import Tools

EDIT_BASE = RELOAD_BASE + 4096  # clusterIPs for the edits, clear of the reload test's


class Editor(threading.Thread):
    """Changes one Service's clusterIP in one namespace file every ``interval`` s
    until stopped (bounded: at most ``limit`` edits)."""

    def __init__(self, cluster: Cluster, folder: Path, interval: float, seed: int,
                 limit: int = 10_000):
        super().__init__(daemon=True)
        self.cluster, self.folder, self.interval = cluster, folder, interval
        self.rng = random.Random(seed)
        self.limit = limit
        self.edits = 0
        self._done = threading.Event()

    def run(self) -> None:
        candidates = [s for s in self.cluster.services if s.kind == "ClusterIP"]
        while not self._done.wait(self.interval) and self.edits < self.limit:
            svc = self.rng.choice(candidates)
            svc.ip = ip4(EDIT_BASE + self.edits % 4096)
            write_one_namespace(self.cluster, self.folder, svc.namespace, explicit_ips=True)
            self.edits += 1

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=10)


def phase_edit(args, tools: Tools, cluster: Cluster, folder: Path, proc: Proc, port: int,
               qfile: Path, workdir: Path) -> dict:
    log(f"edit: UDP load while one namespace file changes every {args.edit_interval:g} s")
    out: dict = {}
    rate = None
    for run in ("saturation", "latency"):
        editor = Editor(cluster, folder, args.edit_interval, args.seed + 5 + (rate or 0))
        editor.start()
        started = time.monotonic()
        try:
            perf = run_dnsperf(tools, proc, port, qfile, args.duration, "udp", args.clients,
                               args.outstanding, rate, workdir, args.query_timeout,
                               args.quiet_wait)
        finally:
            editor.stop()
        out[run] = perf.__dict__
        out[run]["edits"] = editor.edits
        out[run]["seconds"] = time.monotonic() - started
        if run == "saturation":
            rate = max(1, int(perf.qps / 2))
            log(f"  edit coredns-py {perf.qps:8.0f} q/s with {editor.edits} edits, server CPU "
                f"{fmt(perf.server_us_per_query, '.1f')} us/query, loss {perf.loss * 100:.2f}%"
                + (f"  [{perf.error}]" if perf.error else ""))
        else:
            out["half_rate"] = rate
            log(f"  edit coredns-py at {rate} q/s: p50 {fmt(perf.p50_ms, '.3f')} ms p99 "
                f"{fmt(perf.p99_ms, '.3f')} ms with {editor.edits} edits, stolen "
                f"{fmt(perf.server_cpu_stolen, '.0%')}/{fmt(perf.client_cpu_stolen, '.0%')}"
                + (f"  [{perf.error}]" if perf.error else ""))
    return out
