"""The cold row: a fresh server, loaded the moment it first answers (no warm-up).

What a user lives with after a start: every answer the server has not
prepared yet costs its first query.  For each server, started fresh (a new
state folder for coredns-py: no parse cache, no allocations kept), as soon
as the first answer is right: dnsperf at saturation over UDP for
``--cold-duration`` seconds; then, on another fresh start, at half that
rate for the latency.  knotd gets the same treatment (it has nothing to
warm up, so its cold figures are its warm ones).
"""

from __future__ import annotations

from pathlib import Path

from benchlib.coredns import pin_after_start, start_coredns
from benchlib.console import fmt, log
from benchlib.cpu import quiet
from benchlib.dataset import Dataset
from benchlib.dnsperf import run_dnsperf
from benchlib.knot import start_knot
from benchlib.probe import wait_first_answer
from benchlib.proc import free_port
from benchlib.tools import Tools


def phase_cold(args, tools: Tools, data: Dataset, config: Path, folder: Path,
               servers: dict, with_knot: bool) -> dict:
    """Per server: saturation and half-rate latency, each on a fresh start."""
    log(f"cold: a fresh start, then at once {args.cold_duration:g} s of dnsperf over UDP "
        "(saturation; then half that rate on another fresh start)")
    out: dict = {}
    names = ["coredns-py"] + (["knotd"] if with_knot else [])
    for name in names:
        row: dict = {}
        rate = None
        for run in ("saturation", "latency"):
            quiet(args, tools, f"cold start of {name}")
            port = free_port()
            key = f"cold-{name}"
            if name == "coredns-py":
                proc = start_coredns(args, f"coredns-py-cold-{run}", data.explicit, config,
                                     folder / f"state-cold-{run}", port, tools, folder,
                                     pinned=False)
            else:
                proc = start_knot(data.knot_dir, port, tools, folder)
            servers[key] = proc
            try:
                st = wait_first_answer(proc, port, data.probe.fqdn, data.probe.ip,
                                       args.startup_timeout)
                if st["first_answer_s"] is None:
                    log(f"  {name} did not answer: {proc.tail()}")
                    break
                if name == "coredns-py":
                    pin_after_start(proc, tools)
                perf = run_dnsperf(tools, proc, port, data.qfile, args.cold_duration, "udp",
                                   args.clients, args.outstanding, rate, folder,
                                   args.query_timeout)
            finally:
                proc.stop()
                servers.pop(key)
            row[run] = perf.__dict__
            if run == "saturation":
                rate = max(1, int(perf.qps / 2))
                log(f"  cold {name:10} {perf.qps:8.0f} q/s, server CPU "
                    f"{fmt(perf.server_us_per_query, '.1f')} us/query, loss "
                    f"{perf.loss * 100:.2f}%" + (f"  [{perf.error}]" if perf.error else ""))
            else:
                row["half_rate"] = rate
                log(f"  cold {name:10} at {rate} q/s: p50 {fmt(perf.p50_ms, '.3f')} ms "
                    f"p99 {fmt(perf.p99_ms, '.3f')} ms, stolen "
                    f"{fmt(perf.server_cpu_stolen, '.0%')}/{fmt(perf.client_cpu_stolen, '.0%')}"
                    + (f"  [{perf.error}]" if perf.error else ""))
        out[name] = row
    return out
