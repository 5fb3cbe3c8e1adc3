"""Forwarding: complete the answers that need upstream data (CoreDNS ``forward``).

``answer()`` returns a :class:`~coredns_py.zone.answer.Forward` for a name outside
our zones and for an ExternalName Service pointing outside them.
:meth:`Forwarder.complete` turns it into response bytes:

1. A client outside ``allow_recursion`` gets ``Forward.local`` (REFUSED for
   a foreign name, the bare CNAME for an ExternalName): we are not an open
   resolver.
2. An answer in the cache is used at once (``complete`` returns bytes).
3. Otherwise ``complete`` returns a coroutine the transport runs as a task:
   the question goes to the upstreams in order, over UDP, again over TCP
   when the answer is truncated, each attempt bounded by UPSTREAM_TIMEOUT,
   the whole by FORWARD_DEADLINE; identical questions in flight share one
   upstream exchange.  No answer from any upstream: SERVFAIL.

What the client gets:

* for a foreign name, the upstream's answer as it was: its rcode, its AA,
  TC, RA and AD bits (so RA only where the upstream offered recursion), its
  sections; the client's ID, question (byte for byte), RD and CD; our EDNS;
  cut with TC to the client's size limit;
* for an ExternalName, our CNAME followed by the upstream's answer records
  for the target, NOERROR, flags as for our own answers (AA, no RA), as
  CoreDNS's kubernetes plugin answers it (it does not pass the target's
  rcode on).  When no upstream answers: SERVFAIL.

Our own authoritative answers keep RA clear, forwarding or not: CoreDNS's
kubernetes plugin answers cluster names with ``qr aa rd`` (dig's "recursion
requested but not available"), and a client must not read RA on a cluster
answer as "this was checked upstream".

Upstream failures never escape: a timeout, a refused connection, a garbled
or mismatched answer is one failed attempt, logged when an upstream goes
down or comes back, never per query above DEBUG.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from typing import Awaitable, Optional, Sequence, Union

import dns.asyncbackend
import dns.asyncquery
import dns.edns
import dns.exception
import dns.flags
import dns.inet
import dns.message
import dns.rcode
import dns.rdatatype

from coredns_py.zone import answer as answer_mod
from coredns_py.zone import wire
from coredns_py.resolver import upstreams as upstreams_mod
from coredns_py.resolver.acl import Acl
from coredns_py.resolver.cache import Answer, Cache, is_denial, key as cache_key
from coredns_py.resolver.upstreams import Upstream

log = logging.getLogger("coredns_py.forward")

# --- Limits -----------------------------------------------------------------

# One upstream attempt (UDP, and the TCP retry after a truncated answer).
# CoreDNS's forward plugin waits 2 s for an upstream's reply; a resolver on
# the same network answers from its cache in milliseconds and recurses in a
# few hundred.
UPSTREAM_TIMEOUT = 2.0

# The whole forwarding of one question, failover included.  glibc's stub
# resolver waits 5 s (RES_TIMEOUT) before it asks again, so a SERVFAIL must
# come before that or it is never read.
FORWARD_DEADLINE = 4.0

# Each upstream is tried at most this many times per question: one lost UDP
# packet costs a retry, not the answer, and upstreams that refuse the
# connection at once do not make us spin until the deadline.
UPSTREAM_ROUNDS = 2

# An upstream that failed is tried after the others for this long, so a dead
# first upstream costs a timeout every few seconds, not on every query.
DOWN_INTERVAL = 10.0

# Upstream exchanges in flight at once (after identical questions are
# merged).  Each holds a socket; with the transport's TCP connection cap
# this keeps the descriptors well under a common 4096 soft limit, and a
# flood waits here (within FORWARD_DEADLINE) instead of opening more.
MAX_EXCHANGES = 256

CLIENT_FLAGS = dns.flags.QR | dns.flags.RD  # what our response keeps of its own header


class Forwarder:
    """Completes :class:`~coredns_py.zone.answer.Forward` outcomes with upstream data."""

    def __init__(self, upstreams: Sequence[Upstream], acl: Acl, cache: Optional[Cache] = None,
                 *, timeout: float = UPSTREAM_TIMEOUT, deadline: float = FORWARD_DEADLINE,
                 max_exchanges: int = MAX_EXCHANGES, metrics=None):
        if not upstreams:
            raise ValueError("a Forwarder needs at least one upstream")
        self.upstreams = tuple(upstreams)
        self.acl = acl
        self.cache = cache
        self.timeout = timeout
        self.deadline = deadline
        self._slots = asyncio.Semaphore(max_exchanges)
        self._inflight: dict[tuple, asyncio.Task] = {}
        self._down_until: dict[Upstream, float] = {}
        # Counters for tests and logs: forwarded, refused, cache_hits,
        # exchanges, attempts, failures, servfail.
        self.stats: Counter = Counter()
        # The server's Metrics (coredns_forward_*, coredns_cache_*), or None.
        self.metrics = metrics
        if metrics is not None and cache is not None:
            metrics.cache_entries(cache.counts)
            cache.on_evict = metrics.cache_evicted

    # --- the entry point: Server.handle calls this ----------------------------------

    def complete(self, fwd: answer_mod.Forward, peer
                 ) -> Union[bytes, Awaitable[Optional[bytes]]]:
        """Response bytes now (refused client, cache hit) or a coroutine giving them."""
        if not self.acl.allows(peer):
            self.stats["refused"] += 1
            return _render(fwd, fwd.local)
        self.stats["forwarded"] += 1
        k = question_key(fwd)
        if self.cache is not None:
            cached = self.cache.get(k)
            if cached is not None:
                self.stats["cache_hits"] += 1
                if self.metrics is not None:
                    self.metrics.cache_hit(is_denial(cached))
                return compose(fwd, cached)
            if self.metrics is not None:
                self.metrics.cache_miss()
        return self._complete(fwd, k)

    async def _complete(self, fwd: answer_mod.Forward, k: tuple) -> bytes:
        return compose(fwd, await self.lookup(k))

    async def lookup(self, k: tuple) -> Optional[Answer]:
        """The upstream answer for a cache key; None when no upstream answered.

        Identical questions in flight share one exchange; a client that goes
        away (its task cancelled) does not cancel it for the others.
        """
        task = self._inflight.get(k)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._exchange(k))
            self._inflight[k] = task
            task.add_done_callback(lambda t: self._inflight.pop(k, None)
                                   if self._inflight.get(k) is t else None)
        return await asyncio.shield(task)

    # --- talking to upstreams -----------------------------------------------------------

    async def _exchange(self, k: tuple) -> Optional[Answer]:
        qname, qtype, rdclass, do, cd = k
        query = dns.message.make_query(qname, qtype, rdclass, use_edns=0,
                                       payload=wire.EDNS_PAYLOAD, want_dnssec=do)
        if cd:
            query.flags |= dns.flags.CD
        self.stats["exchanges"] += 1
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.deadline):
                async with self._slots:
                    for _round in range(UPSTREAM_ROUNDS):
                        for up in self._order(loop.time()):
                            msg = await self._ask(up, query, loop)
                            if msg is not None:
                                ans = Answer.from_message(msg)
                                if self.cache is not None:
                                    self.cache.put(k, ans)
                                return ans
        except TimeoutError:
            pass
        self.stats["servfail"] += 1
        if self.metrics is not None:
            self.metrics.forward_all_down()
        log.debug("no upstream answered %s %s", qname, dns.rdatatype.to_text(qtype))
        return None

    async def _ask(self, up: Upstream, query: dns.message.Message, loop
                   ) -> Optional[dns.message.Message]:
        self.stats["attempts"] += 1
        if self.metrics is not None:
            self.metrics.forward_request(str(up))
        started = loop.time()
        backend = dns.asyncbackend.get_backend("asyncio")
        try:
            async with asyncio.timeout(self.timeout):
                # A connected UDP socket: an ICMP "port unreachable" (nobody
                # listens there) fails the attempt at once instead of after
                # the timeout, and no other address can answer on it.
                async with await backend.make_socket(
                        dns.inet.af_for_address(up.host), socket.SOCK_DGRAM, 0, None,
                        (up.host, up.port)) as sock:
                    # ignore_errors: a reply with the wrong ID or a garbled one
                    # is skipped (it may be spoofed); only the right one ends
                    # the wait.  A truncated one is asked again over TCP.
                    msg, _tcp = await dns.asyncquery.udp_with_fallback(
                        query, up.host, port=up.port, udp_sock=sock, ignore_errors=True)
        except Exception as exc:  # timeout, refused, unreachable, bad TCP answer...
            self.stats["failures"] += 1
            if self.metrics is not None:
                self.metrics.forward_healthcheck_failure(str(up))
            if self._down_until.get(up, 0.0) <= loop.time():
                log.warning("upstream %s failed (%s); trying the others first for %g s",
                            up, _why(exc), DOWN_INTERVAL)
            self._down_until[up] = loop.time() + DOWN_INTERVAL
            return None
        if self.metrics is not None:
            self.metrics.forward_response(str(up), msg.rcode(), loop.time() - started)
        if self._down_until.pop(up, None) is not None:
            log.info("upstream %s answers again", up)
        return msg

    def _order(self, now: float) -> list[Upstream]:
        """Upstreams in configured order, those that failed lately last."""
        up = [u for u in self.upstreams if self._down_until.get(u, 0.0) <= now]
        return up + [u for u in self.upstreams if u not in up]

    async def close(self) -> None:
        """Cancel exchanges in flight and forget the cache (server stop)."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.cache is not None:
            self.cache.clear()


def _why(exc: BaseException) -> str:
    if isinstance(exc, (TimeoutError, dns.exception.Timeout)):
        return "no answer in time"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# --- building the response ------------------------------------------------------------


def question_key(fwd: answer_mod.Forward) -> tuple:
    """The cache key of what ``fwd`` asks upstream: name, type, DO and CD."""
    query = fwd.query
    do = query.edns >= 0 and bool(query.ednsflags & dns.flags.DO)
    return cache_key(fwd.qname, fwd.qtype, do, bool(query.flags & dns.flags.CD))


def is_chase(fwd: answer_mod.Forward) -> bool:
    """An ExternalName: our CNAME first, the target's records from upstream."""
    return fwd.qname != fwd.query.question[0].name


def compose(fwd: answer_mod.Forward, ans: Optional[Answer]) -> bytes:
    """The client's response from the upstream answer (None: no upstream answered)."""
    resp = fwd.response
    if ans is None:
        return servfail(fwd)
    if is_chase(fwd):
        resp.answer = list(resp.answer) + list(ans.answer)
        return _render(fwd, resp)
    resp.flags = (resp.flags & CLIENT_FLAGS) | (fwd.query.flags & dns.flags.CD) | ans.flags
    rcode = ans.rcode
    if rcode > 0xF and resp.edns < 0:
        rcode = dns.rcode.SERVFAIL  # an extended rcode needs EDNS to be said
    resp.set_rcode(rcode)
    resp.answer = list(ans.answer)
    resp.authority = list(ans.authority)
    resp.additional = list(ans.additional)
    return _render(fwd, resp)


def servfail(fwd: answer_mod.Forward) -> bytes:
    """SERVFAIL, with an Extended DNS Error (RFC 8914 "No Reachable
    Authority") for clients that speak EDNS, so dig shows why."""
    ede = dns.edns.EDEOption(dns.edns.EDECode.NO_REACHABLE_AUTHORITY,
                             "no upstream server answered")
    return _render(fwd, wire.servfail(fwd.response, fwd.query, ede))


def _render(fwd: answer_mod.Forward, msg: dns.message.Message) -> bytes:
    return wire.render(msg, fwd.limit)


# --- from the configuration -----------------------------------------------------------


def from_config(config, listens: Sequence[tuple[str, int]], metrics=None
                ) -> Optional[Forwarder]:
    """The server's forwarder, or None when nothing is forwarded (``upstream: []``,
    or no usable upstream: then foreign names stay REFUSED, as without it).

    ``listens`` are the addresses the server is bound to: an upstream equal
    to one of them would loop and is left out.  ``metrics`` receives the
    forward and cache hooks of :class:`coredns_py.ops.metrics.Metrics`.
    """
    if not config.upstream:
        log.info("forwarding is off (upstream: []): names outside our zones are REFUSED")
        return None
    found, warnings = upstreams_mod.resolve(config.upstream, listens)
    for warning in warnings:
        log.warning("%s", warning)
    if not found:
        log.warning("no upstream server to forward to: names outside our zones are REFUSED")
        return None
    cache = None
    if config.cache_size > 0 and config.cache_max_ttl > 0:
        cache = Cache(config.cache_size, config.cache_max_ttl)
    log.info("forwarding names outside our zones to %s", ", ".join(map(str, found)))
    return Forwarder(found, Acl(config.allow_recursion), cache, metrics=metrics)
