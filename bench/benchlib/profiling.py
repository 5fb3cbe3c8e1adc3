"""coredns-py under cProfile during one UDP saturation run (--profile)."""

from __future__ import annotations

import io
import pstats
from pathlib import Path
from typing import Optional

from benchlib.cluster import make_cluster
from benchlib.console import log
from benchlib.coredns import start_coredns
from benchlib.dnsperf import run_dnsperf
from benchlib.manifests import write_manifests
from benchlib.probe import wait_first_answer
from benchlib.proc import free_port
from benchlib.queries import make_queries, write_queries
from benchlib.tools import Tools


def run_profile(args, tools: Tools, n: int, workdir: Path, config: Path) -> Optional[str]:
    """coredns-py under cProfile during one UDP saturation run; the top functions."""
    sdir = workdir / f"profile-n{n}"
    sdir.mkdir()
    cluster = make_cluster(n, args.seed)
    write_manifests(cluster, sdir / "m", explicit_ips=True)
    qfile = sdir / "queries.txt"
    write_queries(qfile, make_queries(cluster, args.queries, args.seed, args.case_share))
    probe = cluster.probe()
    port = free_port()
    prof = sdir / "server.prof"
    p = start_coredns(args, "coredns-py-profile", sdir / "m", config, sdir / "state", port,
                      tools, sdir, profile_out=prof)
    try:
        st = wait_first_answer(p, port, probe.fqdn, probe.ip, args.startup_timeout)
        if st["first_answer_s"] is None:
            return None
        perf = run_dnsperf(tools, p, port, qfile, args.duration, "udp", args.clients,
                           args.outstanding, None, sdir, args.query_timeout)
        log(f"profiled UDP saturation: {perf.qps:.0f} q/s (cProfile slows it down)")
    finally:
        p.stop(wait=30)
    if not prof.exists():
        return None
    buf = io.StringIO()
    stats = pstats.Stats(str(prof), stream=buf)
    stats.strip_dirs().sort_stats("tottime").print_stats(15)
    stats.sort_stats("cumulative").print_stats(20)
    return buf.getvalue()
