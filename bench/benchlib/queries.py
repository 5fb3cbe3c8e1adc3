"""The query mix dnsperf loops over: (name, type) pairs, shuffled, some in random case."""

from __future__ import annotations

import random
from pathlib import Path

from benchlib.cluster import ZONE, Cluster


def random_case(name: str, rng: random.Random) -> str:
    return "".join(c.upper() if c.isalpha() and rng.random() < 0.5 else c for c in name)


def make_queries(cluster: Cluster, count: int, seed: int, case_share: float) -> list:
    """(name, type) pairs: 70% A, 10% SRV, 10% AAAA (NODATA), 10% search misses."""
    rng = random.Random(seed + 1)
    services = cluster.services
    # SRV and AAAA only on names that have no CNAME: the answer is then the
    # kubernetes plugin's (SRV, NODATA) in both servers.
    plain = [s for s in services if s.kind != "ExternalName"]
    n_srv = n_aaaa = n_miss = count // 10
    n_a = count - n_srv - n_aaaa - n_miss
    queries = [(rng.choice(services).fqdn, "A") for _ in range(n_a)]
    queries += [(rng.choice(plain).fqdn, "SRV") for _ in range(n_srv)]
    queries += [(rng.choice(plain).fqdn, "AAAA") for _ in range(n_aaaa)]
    queries += [(f"{rng.choice(services).fqdn}.svc.{ZONE}", "A") for _ in range(n_miss)]
    rng.shuffle(queries)
    return [(random_case(name, rng) if rng.random() < case_share else name, qtype)
            for name, qtype in queries]


def write_queries(path: Path, queries: list) -> None:
    """The query file: one ``name type`` line per query."""
    path.write_text("".join(f"{name} {qtype}\n" for name, qtype in queries))
