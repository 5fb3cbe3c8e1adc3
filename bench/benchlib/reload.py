"""The reload phase: a one-file change, timed until the server answers the new records."""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path

from benchlib.cluster import Cluster, Svc, ip4
from benchlib.console import fmt, log
from benchlib.cpu import quiet
from benchlib.manifests import write_one_namespace
from benchlib.probe import time_to_answer
from benchlib.proc import Proc
from benchlib.tools import Tools

RELOAD_BASE = (10 << 24) | (110 << 16)  # new clusterIPs for the reload test, still in /12


def phase_reload_ip(args, tools: Tools, cluster: Cluster, folder: Path, port: int, proc: Proc,
                    limit: float) -> dict:
    """Change one Service's clusterIP in one namespace file; time until the new
    address is answered (polling with one UDP query every ~2 ms)."""
    quiet(args, tools, "reload")
    log(f"reload: change one Service's clusterIP in one namespace file, "
        f"{args.reload_repeats}x")
    rng = random.Random(args.seed + 3)
    candidates = [s for s in cluster.services if s.kind == "ClusterIP"]
    times = []
    failures = 0
    started = time.monotonic()
    used_ns: set = set()
    for i in range(args.reload_repeats):
        if time.monotonic() - started > args.reload_budget:
            break
        svc = rng.choice(candidates)
        while svc.namespace in used_ns and len(used_ns) < len(cluster.namespaces):
            svc = rng.choice(candidates)
        used_ns.add(svc.namespace)
        new_ip = ip4(RELOAD_BASE + i + 1 + (int(time.time()) % 1000) * 16)
        old_ip = svc.ip
        svc.ip = new_ip
        t0 = time.monotonic()
        write_one_namespace(cluster, folder, svc.namespace, explicit_ips=True)
        seen = time_to_answer(proc, port, svc.fqdn, new_ip, t0, limit)
        if seen is None:
            failures += 1
            log(f"  reload {i + 1}: {svc.fqdn} {old_ip} -> {new_ip} not answered after "
                f"{limit:.0f} s")
            break
        times.append(seen)
        log(f"  reload {i + 1}: {svc.namespace}.yaml ({svc.name} {old_ip} -> {new_ip}) "
            f"answered after {seen * 1000:.0f} ms")
        time.sleep(args.reload_pause)
    out = {"times_ms": [t * 1000 for t in times], "failures": failures,
           "median_ms": statistics.median(times) * 1000 if times else None}
    log(f"reload median {fmt(out['median_ms'], '.0f')} ms")
    return out


def phase_reload_add(args, cluster: Cluster, folder: Path, port: int, proc: Proc,
                     limit: float) -> dict:
    """Add one Service (no clusterIP: the server allocates) to one namespace file;
    time until its name answers an address."""
    log(f"reload: add one Service (allocated IP) to one namespace file, "
        f"{args.reload_repeats}x")
    rng = random.Random(args.seed + 4)
    times = []
    started = time.monotonic()
    for i in range(args.reload_repeats):
        if time.monotonic() - started > args.reload_budget:
            break
        ns = rng.choice(cluster.namespaces)
        new = Svc(ns, f"added-{i}-{int(time.time()) % 100000}", "ClusterIP", ports=[("http", 80)])
        t0 = time.monotonic()
        write_one_namespace(cluster, folder, ns, explicit_ips=False, extra=[new])
        seen = time_to_answer(proc, port, new.fqdn, None, t0, limit)
        cluster.by_ns[ns].append(new)
        if seen is None:
            log(f"  add {i + 1}: {new.fqdn} not answered after {limit:.0f} s")
            break
        times.append(seen)
        log(f"  add {i + 1}: {ns}.yaml (+{new.name}) answered after {seen * 1000:.0f} ms")
        time.sleep(args.reload_pause)
    out = {"times_ms": [t * 1000 for t in times],
           "median_ms": statistics.median(times) * 1000 if times else None}
    log(f"add-a-Service reload median {fmt(out['median_ms'], '.0f')} ms")
    return out
