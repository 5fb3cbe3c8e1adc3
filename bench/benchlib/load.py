"""The load phase: dnsperf warm-up, then alternating rounds of saturation and half-rate latency."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Optional

from benchlib.console import fmt, log
from benchlib.dnsperf import run_dnsperf
from benchlib.tools import Tools


def phase_load(args, tools: Tools, servers: dict, ports: dict, qfile: Path,
               workdir: Path) -> dict:
    """A warm-up pass through the query file per server and protocol (its rate is reported as
    the cold figure: a server with an answer cache is slower until it has seen
    each name once), then ROUNDS rounds: for each protocol, each server in turn
    (order alternating by round): saturation, then latency at half that rate."""
    log(f"load: a warm-up pass, then {args.rounds} round(s), {args.duration:g} s saturation + "
        f"{args.latency_duration:g} s at half rate each, dnsperf -c {args.clients} "
        f"-q {args.outstanding}")
    warmup = warm_up(args, tools, servers, ports, qfile, workdir)
    rounds = [one_round(args, tools, servers, ports, qfile, workdir, r)
              for r in range(args.rounds)]
    return {"warmup": warmup, "rounds": rounds, "summary": summarise(args, servers, rounds)}


def warm_up(args, tools: Tools, servers: dict, ports: dict, qfile: Path, workdir: Path) -> dict:
    """One pass through the query file per protocol and server (dnsperf -n 1)."""
    warmup: dict = {}
    for proto in args.protos:  # an answer cache may keep UDP and TCP answers apart
        warmup[proto] = {}
        for name, proc in servers.items():
            w = run_dnsperf(tools, proc, ports[name], qfile, args.warmup_limit, proto,
                            args.clients, args.outstanding, None, workdir, args.query_timeout,
                            args.quiet_wait, passes=1)
            warmup[proto][name] = w.__dict__
            log(f"  warm-up {proto:3} {name:10} one pass of {w.sent} queries: {w.qps:8.0f} q/s "
                f"loss {w.loss * 100:.2f}%" + (f"  [{w.error}]" if w.error else ""))
    return warmup


def one_round(args, tools: Tools, servers: dict, ports: dict, qfile: Path, workdir: Path,
              r: int) -> dict:
    """Round ``r`` (from 0): per protocol, each server in turn, the first one
    alternating, saturation then latency at half that rate."""
    order = list(servers) if r % 2 == 0 else list(reversed(servers))
    rnd: dict = {}
    for proto in args.protos:
        rnd[proto] = {}
        for name in order:
            proc = servers[name]
            if not proc.alive():
                raise RuntimeError(f"{name} exited:\n{proc.tail()}")
            sat = run_dnsperf(tools, proc, ports[name], qfile, args.duration, proto,
                              args.clients, args.outstanding, None, workdir,
                              args.query_timeout, args.quiet_wait)
            half = max(1, int(sat.qps / 2))
            lat = run_dnsperf(tools, proc, ports[name], qfile, args.latency_duration,
                              proto, args.clients, args.outstanding, half, workdir,
                              args.query_timeout, args.quiet_wait)
            rnd[proto][name] = {"saturation": sat.__dict__, "half_rate": half,
                                "latency": lat.__dict__}
            log(f"  round {r + 1} {proto:3} {name:10} {sat.qps:8.0f} q/s "
                f"loss {sat.loss * 100:5.2f}% cpu: server {fmt(sat.server_cpu, '.0%')} "
                f"({fmt(sat.server_us_per_query, '.1f')} us/query) "
                f"dnsperf {fmt(sat.client_cpu, '.0%')}, waited {fmt(sat.server_waited, '.0%')}"
                f"/{fmt(sat.client_waited, '.0%')}"
                f" | at {half} q/s: p50 {fmt(lat.p50_ms, '.3f')} ms "
                f"p99 {fmt(lat.p99_ms, '.3f')} ms loss {lat.loss * 100:.2f}%, waited "
                f"{fmt(lat.server_waited, '.0%')}/{fmt(lat.client_waited, '.0%')}, stolen "
                f"{fmt(lat.server_cpu_stolen, '.0%')}/{fmt(lat.client_cpu_stolen, '.0%')}"
                + (f"  [{sat.error or lat.error}]" if sat.error or lat.error else ""))
        if len(servers) == 2:
            c, k = (rnd[proto][n]["saturation"]["qps"] for n in ("coredns-py", "knotd"))
            rnd[proto]["ratio"] = c / k if k else None
            log(f"  round {r + 1} {proto:3} coredns-py/knotd = {fmt(rnd[proto]['ratio'], '.4f')}")
    return rnd


def summarise(args, servers: dict, rounds: list) -> dict:
    """Per protocol and server, the medians over the rounds (and the worst waits and
    steal); with two servers, the coredns-py/knotd ratio per round and its median."""
    summary: dict = {}
    for proto in args.protos:
        s: dict = {}
        for name in servers:
            runs = [rnd[proto][name] for rnd in rounds]
            s[name] = {
                "qps_median": statistics.median(x["saturation"]["qps"] for x in runs),
                "loss_median": statistics.median(
                    (x["saturation"]["lost"] / x["saturation"]["sent"])
                    if x["saturation"]["sent"] else 0.0 for x in runs),
                "p50_ms_median": median_of(x["latency"]["p50_ms"] for x in runs),
                "p99_ms_median": median_of(x["latency"]["p99_ms"] for x in runs),
                "server_cpu_median": median_of(x["saturation"]["server_cpu"] for x in runs),
                "server_us_per_query_median": median_of(
                    x["saturation"].get("server_us_per_query") for x in runs),
                "client_cpu_median": median_of(x["saturation"]["client_cpu"] for x in runs),
                "waited_max": max((v for x in runs for k in ("saturation", "latency")
                                   for v in (x[k]["server_waited"], x[k]["client_waited"])
                                   if v is not None), default=None),
                "stolen_max": max((v for x in runs for k in ("saturation", "latency")
                                   for v in (x[k]["server_cpu_stolen"], x[k]["client_cpu_stolen"])
                                   if v is not None), default=None),
            }
        if len(servers) == 2:
            s["ratio_per_round"] = [rnd[proto]["ratio"] for rnd in rounds]
            s["ratio_median"] = median_of(s["ratio_per_round"])
        summary[proto] = s
    return summary


def median_of(values) -> Optional[float]:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None
