"""The data of one cluster size, on disk: both manifest folders, the zone file, the queries."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from benchlib.cluster import ZONE, Cluster, Svc, make_cluster
from benchlib.console import log
from benchlib.manifests import write_manifests
from benchlib.queries import make_queries, write_queries
from benchlib.zonefile import zone_text


@dataclass
class Dataset:
    cluster: Cluster
    explicit: Path  # manifests with clusterIPs (the same addresses as the zone file)
    allocated: Path  # manifests without: the server allocates
    knot_dir: Path  # the zone file, and knotd's config and storage
    queries: list  # [(name, type)]
    qfile: Path  # the same, for dnsperf
    probe: Svc  # the Service start-up waits for
    summary: dict  # what was generated, for the JSON


def generate(args, n: int, folder: Path) -> Dataset:
    """N Services from the seed, written under ``folder``; says what it wrote."""
    t0 = time.monotonic()
    cluster = make_cluster(n, args.seed)
    explicit = folder / "manifests-explicit"
    allocated = folder / "manifests-allocated"
    write_manifests(cluster, explicit, explicit_ips=True)
    write_manifests(cluster, allocated, explicit_ips=False)
    kdir = folder / "knot"
    kdir.mkdir()
    (kdir / f"{ZONE}.zone").write_text(zone_text(cluster))
    queries = make_queries(cluster, args.queries, args.seed, args.case_share)
    qfile = folder / "queries.txt"
    write_queries(qfile, queries)
    d = {"namespaces": len(cluster.namespaces), "services": n,
         "clusterip": sum(s.kind == "ClusterIP" for s in cluster.services),
         "headless": sum(s.kind == "Headless" for s in cluster.services),
         "externalname": sum(s.kind == "ExternalName" for s in cluster.services),
         "queries": len(queries),
         "manifest_bytes": sum(p.stat().st_size for p in explicit.iterdir()),
         "generate_s": time.monotonic() - t0}
    log(f"generated {d['namespaces']} namespace files ({d['manifest_bytes'] / 1e6:.1f} MB), "
        f"{d['clusterip']} ClusterIP, {d['headless']} headless, {d['externalname']} "
        f"ExternalName; zone file; {d['queries']} queries  ({d['generate_s']:.1f} s)")
    return Dataset(cluster, explicit, allocated, kdir, queries, qfile, cluster.probe(), d)
