"""The start-up phase: from spawning a server to its first right answer."""

from __future__ import annotations

from pathlib import Path

from benchlib.console import fmt, log
from benchlib.coredns import pin_after_start, start_coredns
from benchlib.cpu import quiet
from benchlib.dataset import Dataset
from benchlib.knot import start_knot
from benchlib.probe import wait_first_answer
from benchlib.proc import free_port
from benchlib.tools import Tools


def startup_coredns(args, tools: Tools, data: Dataset, config: Path, folder: Path,
                    servers: dict, ports: dict) -> dict:
    """coredns-py on the manifests with explicit clusterIPs (cold: no state file).
    It goes into ``servers`` and ``ports`` as soon as it is spawned, so that the
    caller's ``finally`` stops it whatever happens."""
    quiet(args, tools, "start-up")
    ports["coredns-py"] = free_port()
    # Started on every CPU (nothing else runs yet: it may parse on all of
    # them), pinned to the server CPU once it answers.
    proc = start_coredns(args, "coredns-py", data.explicit, config, folder / "state-explicit",
                         ports["coredns-py"], tools, folder, pinned=False)
    servers["coredns-py"] = proc
    st = wait_first_answer(proc, ports["coredns-py"], data.probe.fqdn, data.probe.ip,
                           args.startup_timeout)
    pin_after_start(proc, tools)
    st["rss_mb_after_start"] = proc.status("VmRSS")
    if st["first_answer_s"] is None:
        why = (f"exited with {st['exited']}" if "exited" in st
               else f"gave up after {args.startup_timeout:.0f} s")
        log(f"coredns-py start-up: no answer ({why}); RSS then "
            f"{fmt(st['rss_mb_after_start'], '.0f')} MB\n{proc.tail()}")
    else:
        log(f"coredns-py start-up (explicit IPs, cold): listening after "
            f"{fmt(st['listening_s'], '.2f')} s, first answer after {st['first_answer_s']:.2f} s, "
            f"RSS {fmt(st['rss_mb_after_start'], '.1f')} MB")
    return st


def startup_knotd(args, tools: Tools, data: Dataset, folder: Path, servers: dict,
                  ports: dict) -> dict:
    """knotd on the zone file, into ``servers`` and ``ports``; stopped and taken out
    of them again when it does not answer."""
    ports["knotd"] = free_port()
    kproc = start_knot(data.knot_dir, ports["knotd"], tools, folder)
    servers["knotd"] = kproc
    kst = wait_first_answer(kproc, ports["knotd"], data.probe.fqdn, data.probe.ip,
                            args.startup_timeout)
    kst["rss_mb"] = kproc.status("VmRSS")
    if kst["first_answer_s"] is None:
        log(f"knotd did not answer; skipping it\n{kproc.tail()}")
        kproc.stop()
        del servers["knotd"], ports["knotd"]
    else:
        log(f"knotd start-up: first answer after {kst['first_answer_s']:.2f} s, "
            f"RSS {fmt(kst['rss_mb'], '.1f')} MB")
    return kst
