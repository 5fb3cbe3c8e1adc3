"""Answers prepared lazily (on first query) or eagerly (at build time): what each costs.

Builds the snapshot of the benchmark's cluster of N Services in process (no
sockets, the collector off as during a build) and prints:

- ``lazy``: the benchmark's query mix answered through ``PreparedAnswers``
  twice: the first pass makes an answer for every new question (a miss), the
  second gives every one kept; the difference per miss is what a question's
  first query costs;
- ``eager``: on a fresh ``PreparedAnswers``, every Service name x A, AAAA,
  SRV (what could be listed at build time): the time and the memory
  (tracemalloc, in a second pass) it takes, and how many of the mix's
  questions would still be made on their first query (search-path names).

It is a script, not a test: nothing fails because the machine is slow.

    python bench/prepare_cost.py            # N = 10,000
    python bench/prepare_cost.py --size 1000
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import dns.message  # noqa: E402

from benchlib.cluster import make_cluster  # noqa: E402
from benchlib.manifests import write_manifests  # noqa: E402
from benchlib.queries import make_queries  # noqa: E402
from coredns_py.cluster import fill  # noqa: E402
from coredns_py.config import Config  # noqa: E402
from coredns_py.memo import Memo  # noqa: E402
from coredns_py.source.folder import ManifestSource  # noqa: E402
from coredns_py.zone import snapshot  # noqa: E402
from coredns_py.zone.prepared import PreparedAnswers  # noqa: E402


def wire(name: str, qtype: str) -> bytes:
    """A stub resolver's query: RD, EDNS with a 1232-byte buffer."""
    return dns.message.make_query(name, qtype, use_edns=0, payload=1232).to_wire()


def answer_all(prepared: PreparedAnswers, snap, queries: list) -> float:
    t0 = time.perf_counter()
    for w in queries:
        prepared.answer(snap, w, "udp")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=10_000, help="number of Services")
    ap.add_argument("--queries", type=int, default=100_000, help="queries in the mix")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    cluster = make_cluster(args.size, args.seed)
    config = Config()
    with tempfile.TemporaryDirectory(prefix="coredns-py-prepare-") as tmp:
        folder = Path(tmp) / "m"
        write_manifests(cluster, folder, explicit_ips=True)
        gc.disable()
        loaded = ManifestSource(folder).load()
        snap = snapshot.build(fill.build(loaded.objects, config, None, Memo()), config, 1,
                              ("127.0.0.1",), memo=Memo())
    mix = [wire(name, qtype) for name, qtype in make_queries(cluster, args.queries, args.seed, 0.05)]
    every = [wire(s.fqdn, t) for s in cluster.services for t in ("A", "AAAA", "SRV")]

    lazy = PreparedAnswers()
    first = answer_all(lazy, snap, mix)
    second = answer_all(lazy, snap, mix)
    print(f"N={args.size}: the mix, {len(mix)} queries, {lazy.misses} distinct questions")
    print(f"lazy:  first pass {first:.2f} s ({first / len(mix) * 1e6:.1f} us/query), "
          f"second pass {second:.2f} s ({second / len(mix) * 1e6:.2f} us/query, all kept); "
          f"a first answer costs {(first - second) / max(1, lazy.misses) * 1e6:.1f} us")

    eager = PreparedAnswers()
    took = answer_all(eager, snap, every)
    before = eager.misses
    answer_all(eager, snap, mix)
    left = eager.misses - before
    tracemalloc.start()
    traced = PreparedAnswers()
    m0 = tracemalloc.get_traced_memory()[0]
    answer_all(traced, snap, every)
    m1 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(f"eager: {len(every)} questions (every Service x A, AAAA, SRV) in {took:.2f} s "
          f"({took / len(every) * 1e6:.1f} us each), {(m1 - m0) / 1e6:.1f} MB (tracemalloc); "
          f"{left} of the mix's questions still made on their first query")


if __name__ == "__main__":
    main()
