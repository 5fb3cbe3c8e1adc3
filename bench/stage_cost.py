"""What the stage chain costs a query, in process (no sockets).

Prints nanoseconds per call of the server's handler for one answer-cache
hit (kubernetes.default.svc.cluster.local A, the hot path):

- ``handle``: Server.handle itself;
- ``entry + hosts``: the chain the listeners call, with a hosts table the
  name is not in (``fallthrough``), so the question goes on to the cluster
  zone;
- ``entry + hosts, no fallthrough``: the same when the table's zone is
  another one and it has no fallthrough (the question is parsed);
- ``hosts answer``: a name the hosts table answers;
- ``entry + cookies, rate limit``: the abuse stages on (as on an address
  beyond loopback; the rate too high to limit), a query without a cookie;
- ``... valid cookie``: the same query with a valid server cookie;
- ``entry + loadbalance``: answer rotation on, for the one-address answer
  (nothing to shuffle), then a headless Service's two addresses, and its
  SRV answer (two SRV, two glue records of different owners);
- ``handle, nginx A``: the same two-address answer without the stage;
- ``entry + rewrite``: two rewrite rules (exact and suffix), a question
  neither matches; then ``rewrite answer``, one the exact rule rewrites
  (the answer written back, kept from the first time), and
  ``... written back anew``, the same with nothing kept (every answer new);
- ``entry + transfer (default)``: the default config's chain, where the
  transfer stage looks at every question's type (zone transfers are on for
  loopback by default).

It is a script, not a test: nothing fails because the machine is slow.

    python bench/stage_cost.py [--calls 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import dns.edns
import dns.message

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from coredns_py import config as config_mod  # noqa: E402
from coredns_py import stages  # noqa: E402
from coredns_py.cluster import local  # noqa: E402
from coredns_py.server import Server  # noqa: E402
from coredns_py.stages import hosts, rewrite  # noqa: E402
from coredns_py.stages.cookies import Cookies  # noqa: E402
from coredns_py.stages.ratelimit import RateLimit  # noqa: E402


def per_call(fn, wire: bytes, calls: int) -> float:
    peer = ("127.0.0.1", 40000)
    for _ in range(1000):
        fn(wire, "udp", peer)
    best = float("inf")
    for _round in range(3):
        started = time.perf_counter()
        for _ in range(calls):
            fn(wire, "udp", peer)
        best = min(best, (time.perf_counter() - started) / calls)
    return best * 1e9


async def main(calls: int) -> None:
    state = tempfile.mkdtemp(prefix="stage-cost-")
    # Zone transfers off (their stage is on by default, for loopback): each
    # row below names the stages it has.
    cfg = config_mod.parse({"upstream": [], "state_file": f"{state}/state.json",
                            "transfer_to": []})
    server = Server(local.from_folder(ROOT / "zones", cfg), cfg, [("127.0.0.1", 0)])
    server.rebuild(full=True)
    server.entry = server.handle
    wire = dns.message.make_query("kubernetes.default.svc.cluster.local.", "A").to_wire()
    rows = [("handle", per_call(server.handle, wire, calls))]
    for label, spec in [
            ("entry + hosts", hosts.HostsSpec(entries=("192.0.2.7 mock-api.example",),
                                              fallthrough=(".",), reload=0)),
            ("entry + hosts, no fallthrough", hosts.HostsSpec(
                entries=("192.0.2.7 mock-api.example",), zones=("example.",), reload=0))]:
        server.hosts = hosts.Hosts([spec])
        server.entry = stages.chain(server.handle, server._stages())
        rows.append((label, per_call(server.entry, wire, calls)))
    hit = dns.message.make_query("mock-api.example.", "A").to_wire()
    rows.append(("hosts answer", per_call(server.entry, hit, calls // 10)))
    server.hosts = None
    server.cookies, server.rate_limit = Cookies(), RateLimit(1_000_000, 2)
    server.entry = stages.chain(server.handle, server._stages())
    rows.append(("entry + cookies, rate limit", per_call(server.entry, wire, calls)))
    client = b"12345678"
    with_client = dns.message.make_query("kubernetes.default.svc.cluster.local.", "A", use_edns=0,
                                         options=[dns.edns.CookieOption(client, b"")])
    first = dns.message.from_wire(server.entry(with_client.to_wire(), "udp", ("127.0.0.1", 1)))
    [got] = [o for o in first.options if o.otype == dns.edns.COOKIE]
    valid = dns.message.make_query("kubernetes.default.svc.cluster.local.", "A", use_edns=0,
                                   options=[dns.edns.CookieOption(client, got.server)])
    rows.append(("... valid cookie", per_call(server.entry, valid.to_wire(), calls)))
    server.cookies, server.rate_limit = None, None
    server.config = dataclasses.replace(cfg, loadbalance="round_robin")
    server.entry = stages.chain(server.handle, server._stages())
    rows.append(("entry + loadbalance", per_call(server.entry, wire, calls)))
    two = dns.message.make_query("nginx.default.svc.cluster.local.", "A").to_wire()
    rows.append(("... 2 addresses", per_call(server.entry, two, calls)))
    srv = dns.message.make_query("nginx.default.svc.cluster.local.", "SRV").to_wire()
    rows.append(("... SRV and glue", per_call(server.entry, srv, calls)))
    rows.append(("handle, nginx A", per_call(server.handle, two, calls)))
    server.config = dataclasses.replace(cfg, rewrite=rewrite.parse("bench", [
        "name exact api.myapp.test kubernetes.default.svc.cluster.local",
        "name suffix .shop.test .shop.svc.cluster.local answer auto"]))
    server.entry = stages.chain(server.handle, server._stages())
    rows.append(("entry + rewrite", per_call(server.entry, wire, calls)))
    api = dns.message.make_query("api.myapp.test.", "A").to_wire()
    rows.append(("rewrite answer", per_call(server.entry, api, calls)))
    # Each question in other letters: nothing kept fits, written back anew.
    variants = [dns.message.make_query("".join(c.upper() if i >> k & 1 else c
                                               for k, c in enumerate("api.myapp.test.")),
                                       "A").to_wire() for i in range(2000)]
    started = time.perf_counter()
    for query in variants:
        server.entry(query, "udp", ("127.0.0.1", 40000))
    rows.append(("... written back anew", (time.perf_counter() - started) / len(variants)
                 * 1e9))
    server.config = config_mod.parse({"upstream": [], "state_file": f"{state}/state.json"})
    server.entry = stages.chain(server.handle, server._stages())
    rows.append(("entry + transfer (default)", per_call(server.entry, wire, calls)))
    for name, ns in rows:
        print(f"{name:>30}: {ns:8.0f} ns per query")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    asyncio.run(main(parser.parse_args().calls))
