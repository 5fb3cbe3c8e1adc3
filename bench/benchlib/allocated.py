"""Start-up and reload on the manifests without clusterIPs: the server allocates them."""

from __future__ import annotations

from pathlib import Path

from benchlib.console import fmt, log
import time

from benchlib.coredns import pin_after_start, start_coredns
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
        if label == "warm":
            wait_parse_cache(state, args.startup_timeout)
        quiet(args, tools, f"start-up ({label})")
        port = free_port()
        p = start_coredns(args, f"coredns-py-alloc-{label}", data.allocated, config, state,
                          port, tools, folder, pinned=False)
        servers["alloc"] = p
        a = wait_first_answer(p, port, data.probe.fqdn, None, args.startup_timeout)
        pin_after_start(p, tools)
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


def wait_parse_cache(state: Path, limit: float) -> None:
    """Wait (at most ``limit`` s) until the cold run's parse cache is written
    (a background process writes it after the first load): the warm start is
    the restart that finds it."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        folder = state / "coredns_py"
        if folder.is_dir() and any(folder.glob("*.parsed")) and not any(folder.glob(".*.tmp")):
            return
        time.sleep(0.1)
