"""What the abuse stages (cookies, rate limiting) cost per query, in-process:
the handler the listeners call, over 100,000 queries answered from the answer
cache, with the stages off (not in the chain), on for queries without a
cookie, and on for queries with a valid cookie.  Prints microseconds per
query (best of the rounds).  Not a test.

    python bench/stages_cost.py [--queries 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import dns.edns  # noqa: E402
import dns.message  # noqa: E402

from coredns_py import config, stages  # noqa: E402
from coredns_py.cluster import local  # noqa: E402
from coredns_py.server import Server  # noqa: E402

ZONES = HERE.parent / "zones"
NAMES = ["webapp.default.svc.cluster.local", "kubernetes.default.svc.cluster.local",
         "_http._tcp.webapp.default.svc.cluster.local", "nope.default.svc.cluster.local"]
TYPES = ["A", "AAAA", "SRV"]
# One client network per query group, so rate limiting keeps accounts but
# never limits (a rate this high is never reached in one round).
RATE = 1_000_000


def server(stages_on: bool) -> Server:
    keys = {"upstream": [], "rate_limit": stages_on, "cookies": stages_on,
            "rate_limit_responses_per_second": RATE}
    cfg = config.parse(keys)
    srv = Server(local.from_folder(ZONES, cfg, state=False), cfg, [("192.0.2.1", 53)])
    srv.rebuild()
    return srv


def queries(cookie: bytes = b"") -> list[bytes]:
    out = []
    for name in NAMES:
        for rdtype in TYPES:
            options = [dns.edns.CookieOption(cookie[:8], cookie[8:])] if cookie else []
            q = dns.message.make_query(name, rdtype, use_edns=0, options=options)
            out.append(q.to_wire())
    return out


def timed(entry, wires: list[bytes], n: int, rounds: int, peer) -> float:
    """Best microseconds per query over ``rounds`` runs of ``n`` queries."""
    best = float("inf")
    k = len(wires)
    for _ in range(rounds):
        started = time.perf_counter()
        for i in range(n):
            entry(wires[i % k], "udp", peer)
        best = min(best, time.perf_counter() - started)
    return best / n * 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--queries", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    peer = ("192.0.2.9", 5353)

    off = server(False)
    off_entry = stages.chain(off.handle, off._stages())
    assert off_entry == off.handle  # nothing in the chain
    on = server(True)
    on_entry = stages.chain(on.handle, on._stages())
    # A client's cookie, learnt as a client learns it.
    first = on_entry(queries(os.urandom(8))[0], "udp", peer)
    [opt] = [o for o in dns.message.from_wire(first).options if o.otype == dns.edns.COOKIE]
    cookie = opt.client + opt.server

    plain, with_cookie = queries(), queries(cookie)
    for entry in (off_entry, on_entry):  # warm the answer caches
        for w in plain + with_cookie:
            entry(w, "udp", peer)
    results = {
        "stages off (not in the chain)": timed(off_entry, plain, args.queries, args.rounds, peer),
        "stages on, no cookie": timed(on_entry, plain, args.queries, args.rounds, peer),
        "stages on, valid cookie": timed(on_entry, with_cookie, args.queries, args.rounds, peer),
    }
    base = results["stages off (not in the chain)"]
    print(f"{args.queries} cached queries, best of {args.rounds} rounds "
          f"(answer cache hits: {on.answers.hits})")
    for label, us in results.items():
        print(f"  {label:32} {us:6.2f} us/query  (+{us - base:.2f} us)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
