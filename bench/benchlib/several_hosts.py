"""The several-hosts phase (``--several-hosts``): etcd, one publisher, three
replicas (``serve --etcd``) on this machine.

- the publisher's first publish of the folder, and a replica's time from
  spawn to its first right answer (no YAML to parse: compare with the
  folder's start-up above);
- ``--hosts-changes`` one-file changes (a Service's clusterIP), each timed
  from the write until every one of the three replicas answers the new
  address: median and p99;
- UDP throughput of one replica (dnsperf, as the load phase runs it), the
  publisher and the other replicas stopped: the source must cost nothing
  at query time.

All of it shares the machine's two cores (etcd, the publisher and the
replicas are not pinned apart), as they would not on real hosts.
"""

from __future__ import annotations

import random
import re
import statistics
import time
from pathlib import Path

from benchlib.cluster import Cluster, ip4
from benchlib.console import fmt, log
from benchlib.coredns import repo_env, start_coredns
from benchlib.cpu import quiet
from benchlib.dataset import Dataset
from benchlib.dnsperf import percentile, run_dnsperf
from benchlib.etcd import INSTALL_HINT, Etcd, etcd_binary
from benchlib.manifests import write_one_namespace
from benchlib.probe import addresses, ask, wait_first_answer
from benchlib.proc import Proc, free_port
from benchlib.tools import Tools

REPLICAS = 3
CHANGE_BASE = (10 << 24) | (111 << 16)  # new clusterIPs for the changes, still in /12


def phase_several_hosts(args, tools: Tools, data: Dataset, config: Path, folder: Path) -> dict:
    if etcd_binary() is None:
        log(f"several hosts: etcd not found ({INSTALL_HINT}); skipped")
        return {"skipped": "etcd not installed"}
    quiet(args, tools, "several hosts")
    out: dict = {}
    procs: list = []
    etcd = Etcd(folder)
    try:
        if not etcd.wait_healthy():
            log(f"several hosts: etcd did not start\n{etcd.proc.tail()}")
            return {"error": "etcd did not start"}
        pub = start_publisher(args, data.explicit, etcd.url, config, folder)
        procs.append(pub)
        out["first_publish_s"] = wait_published(pub, args.startup_timeout)
        log(f"several hosts: first publish of {data.summary['services']} Services after "
            f"{fmt(out['first_publish_s'], '.2f')} s")
        if out["first_publish_s"] is None:
            log(pub.tail())
            return out

        replicas, ports = [], []
        for i in range(REPLICAS):
            ports.append(free_port())
            rep = start_coredns(args, f"replica-{i + 1}", data.explicit, config,
                                folder / f"state-replica-{i + 1}", ports[-1], tools, folder,
                                source=["--etcd", etcd.url])
            procs.append(rep)
            replicas.append(rep)
            st = wait_first_answer(rep, ports[-1], data.probe.fqdn, data.probe.ip,
                                   args.startup_timeout)
            if i == 0:  # alone on the machine: the figure to compare with start-up
                out["replica_ready_s"] = st["first_answer_s"]
                log(f"several hosts: a replica answered {fmt(st['first_answer_s'], '.2f')} s "
                    f"after its start (the folder: "
                    f"{fmt(args.folder_startup_s, '.2f')} s)")
            if st["first_answer_s"] is None:
                log(f"replica {i + 1} never answered\n{rep.tail()}")
                return out

        out["changes"] = changes(args, data.cluster, data.explicit, replicas, ports)
        for p in [pub] + replicas[1:]:
            p.stop()
        out["udp"] = throughput(args, tools, replicas[0], ports[0], data.qfile, folder)
    finally:
        for p in procs:
            p.stop()
        etcd.stop()
    return out


def start_publisher(args, manifests: Path, url: str, config: Path, folder: Path) -> Proc:
    env = repo_env()
    env["XDG_STATE_HOME"] = str(folder / "state-publisher")
    return Proc("publisher", [args.python, "-m", "coredns_py", "publish", "--manifests",
                              str(manifests), "--etcd", url, "--config", str(config)],
                folder / "publisher.log", env=env)


def wait_published(pub: Proc, limit: float):
    deadline = pub.started + limit
    while time.monotonic() < deadline and pub.alive():
        if re.search(r"publish: generation 1:", pub.logfile.read_text(errors="replace")):
            return time.monotonic() - pub.started
        time.sleep(0.02)
    return None


def changes(args, cluster: Cluster, folder: Path, replicas: list, ports: list) -> dict:
    """Change one Service's clusterIP per round; time until all replicas answer it."""
    log(f"several hosts: {args.hosts_changes} one-file changes, each until all "
        f"{len(replicas)} replicas answer it")
    rng = random.Random(args.seed + 5)
    candidates = [s for s in cluster.services if s.kind == "ClusterIP"]
    all_times, each_times = [], []
    limit = 30.0
    for i in range(args.hosts_changes):
        svc = rng.choice(candidates)
        svc.ip = ip4(CHANGE_BASE + i + 1)
        t0 = time.monotonic()
        write_one_namespace(cluster, folder, svc.namespace, explicit_ips=True)
        seen = [None] * len(replicas)
        while None in seen and time.monotonic() - t0 < limit:
            for k, port in enumerate(ports):
                if seen[k] is None and svc.ip in addresses(ask(port, svc.fqdn, timeout=0.1)):
                    seen[k] = time.monotonic() - t0
            time.sleep(0.002)
        if None in seen:
            log(f"  change {i + 1}: {svc.fqdn} -> {svc.ip} not answered by every replica "
                f"after {limit:.0f} s")
            break
        all_times.append(max(seen))
        each_times.extend(seen)
        if i < 3 or (i + 1) % 25 == 0:
            log(f"  change {i + 1}: all replicas answered after {max(seen) * 1000:.0f} ms")
        time.sleep(0.05)
    all_times.sort()
    res = {"count": len(all_times),
           "all_median_ms": statistics.median(all_times) * 1000 if all_times else None,
           "all_p99_ms": percentile(all_times, 99) * 1000 if all_times else None,
           "each_median_ms": statistics.median(each_times) * 1000 if each_times else None}
    log(f"several hosts: change to answer on all {len(replicas)} replicas: median "
        f"{fmt(res['all_median_ms'], '.0f')} ms, p99 {fmt(res['all_p99_ms'], '.0f')} ms "
        f"over {res['count']} changes (one replica: median "
        f"{fmt(res['each_median_ms'], '.0f')} ms)")
    return res


def throughput(args, tools: Tools, replica: Proc, port: int, qfile: Path, folder: Path) -> dict:
    quiet(args, tools, "replica load")
    warm = run_dnsperf(tools, replica, port, qfile, args.warmup_limit, "udp", args.clients,
                       args.outstanding, None, folder, args.query_timeout, args.quiet_wait,
                       passes=1)
    sat = run_dnsperf(tools, replica, port, qfile, args.duration, "udp", args.clients,
                      args.outstanding, None, folder, args.query_timeout, args.quiet_wait)
    # CPU per query is the figure to compare with the folder-fed server's:
    # the rate depends on what else ran on the machine meanwhile.
    per_query = sat.server_cpu * 1e6 / sat.qps if sat.qps and sat.server_cpu else None
    log(f"several hosts: a replica over UDP: {sat.qps:.0f} q/s, server CPU "
        f"{fmt(per_query, '.1f')} us/query, loss {sat.loss * 100:.2f}% "
        f"(warm-up pass {warm.qps:.0f} q/s)" + (f"  [{sat.error}]" if sat.error else ""))
    return {"warmup_qps": warm.qps, "qps": sat.qps, "loss": sat.loss,
            "server_cpu": sat.server_cpu, "server_us_per_query": per_query}
