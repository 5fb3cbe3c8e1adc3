"""Start-up and reload on the manifests without clusterIPs: the server allocates them."""

from __future__ import annotations

from pathlib import Path

from benchlib.console import fmt, log
from benchlib.coredns import start_coredns
from benchlib.cpu import quiet
from benchlib.dataset import Dataset
from benchlib.probe import wait_first_answer
from benchlib.proc import free_port
from benchlib.reload import phase_reload_add
from benchlib.tools import Tools


def phase_allocated(args, tools: Tools, data: Dataset, config: Path, folder: Path,
                    servers: dict) -> dict:
    """Start-up cold (no state file), then warm (a restart finds the state file),
    and on the warm server Services added.  The running server is ``servers["alloc"]``,
    for the caller's ``finally``."""
    state = folder / "state-allocated"
    alloc: dict = {}
    for label in ("cold", "warm"):
        quiet(args, tools, f"start-up ({label})")
        port = free_port()
        p = start_coredns(args, f"coredns-py-alloc-{label}", data.allocated, config, state,
                          port, tools, folder)
        servers["alloc"] = p
        a = wait_first_answer(p, port, data.probe.fqdn, None, args.startup_timeout)
        a["rss_mb"] = p.status("VmRSS")
        alloc[label] = a
        log(f"coredns-py start-up (allocated IPs, {label}): first answer after "
            f"{fmt(a['first_answer_s'], '.2f')} s, RSS {fmt(a['rss_mb'], '.1f')} MB"
            + ("" if a["first_answer_s"] is not None else f"\n{p.tail()}"))
        if label == "warm" and a["first_answer_s"] is not None:
            alloc["reload_add"] = phase_reload_add(
                args, data.cluster, data.allocated, port, p, max(30.0, 3 * a["first_answer_s"]))
        p.stop()
        servers.pop("alloc")
        if a["first_answer_s"] is None:
            break
    return alloc
