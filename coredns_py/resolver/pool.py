"""The upstream servers of one forwarded domain: which to ask first
(CoreDNS ``policy``), each one's health, and how they are asked.

Policies, as CoreDNS names them:

- ``sequential``: in the order configured, every time (the first one takes
  all the load while it answers);
- ``round_robin``: each question starts one server further along the list;
- ``random``: a new random order per question (CoreDNS's default).

Whatever the policy, servers that are down (see :mod:`.health`) are left
out while one is not; servers being checked after a failure come after the
others.  When every server is down the health checks are taken to be wrong,
as CoreDNS does, and all are tried in a random order
(``coredns_forward_healthcheck_broken_total``).
"""

from __future__ import annotations

import itertools
import random
from typing import Optional, Sequence

import dns.flags
import dns.message
import dns.name
import dns.rdatatype

from coredns_py.resolver import health as health_mod
from coredns_py.resolver.transport import Transport
from coredns_py.resolver.upstreams import Upstream

POLICIES = ("sequential", "round_robin", "random")


class Pool:
    def __init__(self, domain: dns.name.Name, upstreams: Sequence[Upstream], *,
                 policy: str = "sequential", transport: Optional[Transport] = None,
                 health_check: float = health_mod.DEFAULT_INTERVAL,
                 max_fails: int = health_mod.DEFAULT_MAX_FAILS,
                 check_timeout: float = health_mod.CHECK_TIMEOUT,
                 cache: bool = True, metrics=None):
        if not upstreams:
            raise ValueError("a Pool needs at least one upstream")
        if policy not in POLICIES:
            raise ValueError(f"policy {policy!r}: one of {', '.join(POLICIES)}")
        self.domain = domain
        self.upstreams = tuple(upstreams)
        self.policy = policy
        self.transport = transport or Transport()
        self.check_timeout = check_timeout
        self.cache = cache  # answers for this domain go in the cache
        self.metrics = metrics
        self._turn = itertools.count()
        self.health = {
            up: health_mod.Health(self._label(up), self._checker(up), interval=health_check,
                                  max_fails=max_fails,
                                  on_check_failed=self._check_failed_hook(up))
            for up in self.upstreams}

    def __repr__(self) -> str:
        return f"Pool({self.domain}, {[str(u) for u in self.upstreams]}, {self.policy})"

    def _label(self, up: Upstream) -> str:
        """How logs name an upstream: with its domain, unless it serves the root."""
        return str(up) if self.domain == dns.name.root else \
            f"{up} (for {self.domain.to_text(omit_final_dot=True)})"

    def order(self) -> list[Upstream]:
        """The servers to ask for one question, first one first."""
        ups = list(self.upstreams)
        if self.policy == "round_robin":
            start = next(self._turn) % len(ups)
            ups = ups[start:] + ups[:start]
        elif self.policy == "random":
            random.shuffle(ups)
        health = self.health
        fine = [u for u in ups if not health[u].checking]
        checking = [u for u in ups if health[u].checking and not health[u].down]
        if fine or checking:
            return fine + checking
        if self.metrics is not None:
            self.metrics.forward_all_down()
        random.shuffle(ups)
        return ups

    def failed(self, up: Upstream, why: str) -> None:
        self.health[up].failed(why)

    def _checker(self, up: Upstream):
        async def check() -> bool:
            # CoreDNS's health check: ". IN NS" with RD; any answer is alive.
            probe = dns.message.make_query(dns.name.root, dns.rdatatype.NS)
            probe.flags |= dns.flags.RD
            try:
                await self.transport.exchange(up, probe, self.check_timeout)
            except Exception:  # silence, refusal, garbage: not up
                return False
            return True
        return check

    def _check_failed_hook(self, up: Upstream):
        if self.metrics is None:
            return None
        return lambda: self.metrics.forward_healthcheck_failure(str(up))

    async def close(self) -> None:
        for h in self.health.values():
            h.stop()
        await self.transport.close()
