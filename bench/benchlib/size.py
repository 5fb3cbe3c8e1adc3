"""One cluster size, start to end: its data, then each phase in turn on the same servers."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from benchlib.allocated import phase_allocated
from benchlib.cold import phase_cold
from benchlib.console import fmt, log
from benchlib.coredns import warn_forwarding
from benchlib.dataset import generate
from benchlib.edit import phase_edit
from benchlib.equivalence import check_answers
from benchlib.load import phase_load
from benchlib.proc import Proc
from benchlib.reload import phase_reload_ip
from benchlib.several_hosts import phase_several_hosts
from benchlib.startup import startup_coredns, startup_knotd
from benchlib.tools import Tools


def run_size(args, tools: Tools, n: int, workdir: Path, config: Path, load: bool) -> dict:
    log(f"\n=== N = {n} Services ===")
    result: dict = {"n": n}
    sdir = workdir / f"n{n}"
    sdir.mkdir()
    data = generate(args, n, sdir)
    result["data"] = data.summary

    # Every server started goes in here at once, and is stopped in the finally.
    servers: dict = {}
    ports: dict = {}
    try:
        st = result["startup"] = startup_coredns(args, tools, data, config, sdir, servers, ports)
        if st["first_answer_s"] is None:
            return result
        proc = servers["coredns-py"]

        if load and not args.skip_knot:
            result["knotd_startup"] = startup_knotd(args, tools, data, sdir, servers, ports)
            if "knotd" in servers:
                result["equivalence"] = check_answers(args, ports, data.queries)

        if load:
            result["load"] = phase_load(args, tools, servers, ports, data.qfile, sdir)
        result["memory"] = memory(proc, servers.get("knotd"), load)
        if load and not args.skip_edit:
            result["edit"] = phase_edit(args, tools, data.cluster, data.explicit, proc,
                                        ports["coredns-py"], data.qfile, sdir)
        with_knot = "knotd" in servers
        if "knotd" in servers:
            servers.pop("knotd").stop()

        reload_limit = max(30.0, 3 * st["first_answer_s"])
        result["reload"] = phase_reload_ip(args, tools, data.cluster, data.explicit,
                                           ports["coredns-py"], proc, reload_limit)
        proc.stop()
        servers.pop("coredns-py")
        if load and not args.skip_cold:
            result["cold"] = phase_cold(args, tools, data, config, sdir, servers, with_knot)

        if not args.skip_allocated:
            result["allocated"] = phase_allocated(args, tools, data, config, sdir, servers)
        if args.several_hosts:
            args.folder_startup_s = st["first_answer_s"]
            result["several_hosts"] = phase_several_hosts(args, tools, data, config, sdir)
    finally:
        for p in servers.values():
            p.stop()
        warn_forwarding(sdir)
    return result


def memory(proc: Proc, knotd: Optional[Proc], after_load: bool) -> dict:
    """coredns-py's resident memory now (and its peak), and knotd's."""
    m = {"rss_mb": proc.status("VmRSS"), "hwm_mb": proc.status("VmHWM"),
         "after_load": after_load}
    if knotd is not None:
        m["knotd_rss_mb"] = knotd.status("VmRSS")
    log(f"coredns-py memory {'after load' if after_load else 'after start-up'}: VmRSS "
        f"{fmt(m['rss_mb'], '.1f')} MB (peak {fmt(m['hwm_mb'], '.1f')} MB)"
        + (f"; knotd {m['knotd_rss_mb']:.1f} MB" if m.get("knotd_rss_mb") else ""))
    return m
