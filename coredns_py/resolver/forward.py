"""Forwarding: complete the answers that need upstream data (CoreDNS ``forward``).

``answer()`` returns a :class:`~coredns_py.zone.answer.Forward` for a name outside
our zones and for an ExternalName Service pointing outside them.
:meth:`Forwarder.complete` turns it into response bytes:

1. A client outside ``allow_recursion`` gets ``Forward.local`` (REFUSED for
   a foreign name, the bare CNAME for an ExternalName): we are not an open
   resolver.
2. The name's domain picks the upstreams (:mod:`.domains`: longest suffix
   wins); a domain that is not forwarded gets ``Forward.local`` too.
3. An answer in the cache is used at once (``complete`` returns bytes); one
   due for a prefetch, or stale, is refreshed in the background.
4. Otherwise ``complete`` returns a coroutine the transport runs as a task:
   the question goes to the domain's upstreams in its policy's order
   (:mod:`.pool`), over UDP, again over TCP when the answer is truncated
   (or over TCP or TLS only, :mod:`.transport`), each attempt bounded by
   UPSTREAM_TIMEOUT, the whole by FORWARD_DEADLINE; identical questions in
   flight share one upstream exchange.  No answer from any upstream:
   SERVFAIL (or a stale answer, with ``serve_stale``).

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
or mismatched answer is one failed attempt, which starts the health checks
of that upstream (:mod:`.health`); logged when an upstream fails, is down
or comes back, never per query above DEBUG.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Awaitable, Optional, Sequence, Union

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from coredns_py.zone import answer as answer_mod
from coredns_py.zone import wire
from coredns_py.resolver import forward_config, upstreams as upstreams_mod
from coredns_py.resolver.acl import Acl
from coredns_py.resolver.cache import Answer, Cache, is_denial, key as cache_key
from coredns_py.resolver.domains import Domains
from coredns_py.resolver.health import CHECK_TIMEOUT
from coredns_py.resolver.pool import Pool
from coredns_py.resolver.transport import Transport
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

# Upstream exchanges in flight at once (after identical questions are
# merged).  Each holds a socket; with the transport's TCP connection cap
# this keeps the descriptors well under a common 4096 soft limit, and a
# flood waits here (within FORWARD_DEADLINE) instead of opening more.
MAX_EXCHANGES = 256

CLIENT_FLAGS = dns.flags.QR | dns.flags.RD  # what our response keeps of its own header


class Forwarder:
    """Completes :class:`~coredns_py.zone.answer.Forward` outcomes with upstream data.

    ``domains`` is the domain table; a plain list of upstreams is the root
    domain alone, asked in order.
    """

    def __init__(self, domains: Union[Domains, Sequence[Upstream]], acl: Acl,
                 cache: Optional[Cache] = None, *, timeout: float = UPSTREAM_TIMEOUT,
                 deadline: float = FORWARD_DEADLINE, max_exchanges: int = MAX_EXCHANGES,
                 metrics=None):
        if not isinstance(domains, Domains):
            domains = Domains({dns.name.root: Pool(
                dns.name.root, domains, check_timeout=min(timeout, CHECK_TIMEOUT),
                metrics=metrics)})
        if not domains:
            raise ValueError("a Forwarder needs at least one upstream")
        self.domains = domains
        self.acl = acl
        self.cache = cache
        self.timeout = timeout
        self.deadline = deadline
        self._slots = asyncio.Semaphore(max_exchanges)
        self._inflight: dict[tuple, asyncio.Task] = {}
        # Counters for tests and logs: forwarded, refused, not_forwarded,
        # cache_hits, stale, prefetch, exchanges, attempts, failures, servfail.
        self.stats: Counter = Counter()
        # The server's Metrics (coredns_forward_*, coredns_cache_*), or None.
        self.metrics = metrics
        if metrics is not None and cache is not None:
            metrics.cache_entries(cache.counts)
            cache.on_evict = metrics.cache_evicted

    @property
    def upstreams(self) -> tuple[Upstream, ...]:
        """Every upstream of every domain, each once."""
        out: list[Upstream] = []
        for pool in self.domains.pools():
            out.extend(u for u in pool.upstreams if u not in out)
        return tuple(out)

    # --- the entry point: Server.handle calls this ----------------------------------

    def complete(self, fwd: answer_mod.Forward, peer
                 ) -> Union[bytes, Awaitable[Optional[bytes]]]:
        """Response bytes now (refused client, cache hit) or a coroutine giving them."""
        if not self.acl.allows(peer):
            self.stats["refused"] += 1
            return _render(fwd, fwd.local)
        pool = self.domains.find(fwd.qname)
        if pool is None:
            self.stats["not_forwarded"] += 1
            return _render(fwd, fwd.local)
        self.stats["forwarded"] += 1
        k = question_key(fwd)
        cache = self.cache if pool.cache else None
        if cache is not None:
            hit = cache.lookup(k)
            if hit is not None:
                self.stats["cache_hits"] += 1
                if self.metrics is not None:
                    self.metrics.cache_hit(is_denial(hit.answer))
                if hit.stale and cache.verify_stale:
                    return self._verify(fwd, k, pool, hit.answer)
                if hit.refresh:
                    self.stats["stale" if hit.stale else "prefetch"] += 1
                    self._refresh(k, pool)
                return compose(fwd, hit.answer)
            if self.metrics is not None:
                self.metrics.cache_miss()
        return self._complete(fwd, k, pool)

    async def _complete(self, fwd: answer_mod.Forward, k: tuple, pool: Pool) -> bytes:
        return compose(fwd, await self._shared(k, pool))

    async def _verify(self, fwd: answer_mod.Forward, k: tuple, pool: Pool,
                      stale: Answer) -> bytes:
        """serve_stale verify: upstream first; the stale answer only when no
        upstream answers, or one says SERVFAIL."""
        ans = await self._shared(k, pool)
        if ans is None or ans.rcode == dns.rcode.SERVFAIL:
            self.stats["stale"] += 1
            ans = stale
        return compose(fwd, ans)

    def _refresh(self, k: tuple, pool: Pool) -> None:
        """Ask upstream again in the background; the answer goes to the cache."""
        self._start(k, pool)

    async def lookup(self, k: tuple) -> Optional[Answer]:
        """The upstream answer for a cache key; None when no upstream answered
        (or the name's domain is not forwarded)."""
        pool = self.domains.find(k[0])
        return None if pool is None else await self._shared(k, pool)

    async def _shared(self, k: tuple, pool: Pool) -> Optional[Answer]:
        """Identical questions in flight share one exchange; a client that
        goes away (its task cancelled) does not cancel it for the others."""
        return await asyncio.shield(self._start(k, pool))

    def _start(self, k: tuple, pool: Pool) -> asyncio.Task:
        """The exchange for ``k`` in flight, started now if there is none."""
        task = self._inflight.get(k)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._exchange(k, pool))
            self._inflight[k] = task
            task.add_done_callback(lambda t: self._inflight.pop(k, None)
                                   if self._inflight.get(k) is t else None)
        return task

    # --- talking to upstreams -----------------------------------------------------------

    async def _exchange(self, k: tuple, pool: Pool) -> Optional[Answer]:
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
                        for up in pool.order():
                            msg = await self._ask(pool, up, query, loop)
                            if msg is not None:
                                ans = Answer.from_message(msg)
                                if self.cache is not None and pool.cache:
                                    self.cache.put(k, ans)
                                return ans
        except TimeoutError:
            pass
        self.stats["servfail"] += 1
        log.debug("no upstream answered %s %s", qname, dns.rdatatype.to_text(qtype))
        return None

    async def _ask(self, pool: Pool, up: Upstream, query: dns.message.Message, loop
                   ) -> Optional[dns.message.Message]:
        self.stats["attempts"] += 1
        if self.metrics is not None:
            self.metrics.forward_request(str(up))
        started = loop.time()
        try:
            msg = await pool.transport.exchange(up, query, self.timeout)
        except Exception as exc:  # timeout, refused, unreachable, bad TCP or TLS answer...
            self.stats["failures"] += 1
            pool.failed(up, _why(exc))
            return None
        if self.metrics is not None:
            self.metrics.forward_response(str(up), msg.rcode(), loop.time() - started)
        return msg

    async def close(self) -> None:
        """Cancel exchanges in flight, stop health checks, close kept
        connections and forget the cache (server stop)."""
        await self.retire()
        if self.cache is not None:
            self.cache.clear()

    async def retire(self) -> None:
        """Stop this forwarder's work but keep its cache (a reload that
        hands the cache on)."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for pool in self.domains.pools():
            await pool.close()


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


def from_config(config, listens: Sequence[tuple[str, int]], metrics=None,
                cache: Optional[Cache] = None) -> Optional[Forwarder]:
    """The server's forwarder, or None when nothing is forwarded (``upstream: []``
    and no ``forward`` domain, or no usable upstream: then foreign names
    stay REFUSED, as without it).

    ``listens`` are the addresses the server is bound to: an upstream equal
    to one of them would loop and is left out.  ``metrics`` receives the
    forward and cache hooks of :class:`coredns_py.ops.metrics.Metrics`.
    ``cache``: the running forwarder's cache, kept when a reload asks for
    the same one (its answers survive the reload).
    """
    pools: dict[dns.name.Name, Optional[Pool]] = {}
    described = []
    for spec in forward_config.effective(config):
        name = dns.name.from_text(spec.domain)
        what = "upstream" if spec.domain == "." and not config.forward else \
            f"forward {spec.domain}"
        found: list[Upstream] = []
        if spec.to:
            found, warnings = upstreams_mod.resolve(spec.to, listens, what)
            for warning in warnings:
                log.warning("%s", warning)
            if not found:
                log.warning("%s: no upstream server to forward to: names there are REFUSED",
                            what)
        pools[name] = Pool(
            name, found, policy=spec.policy, health_check=spec.health_check,
            max_fails=spec.max_fails, cache=spec.cache, metrics=metrics,
            transport=Transport(force_tcp=spec.force_tcp, expire=spec.expire,
                                tls=spec.tls_context() if spec.uses_tls else None,
                                server_name=spec.tls_servername)) if found else None
        for ex in spec.except_domains:
            pools.setdefault(dns.name.from_text(ex), None)
        if found:
            where = "outside our zones" if spec.domain == "." else f"under {spec.domain}"
            described.append(f"names {where} to {', '.join(map(str, found))}")
    # An except entry set before the domain it names was defined on its own
    # is replaced by that definition (setdefault above keeps explicit ones).
    domains = Domains(pools)
    if not domains:
        log.info("forwarding is off (upstream: []): names outside our zones are REFUSED")
        return None
    if cache is None and config.cache_size > 0 and config.cache_max_ttl > 0:
        cache = new_cache(config)
    log.info("forwarding %s", "; ".join(described))
    return Forwarder(domains, Acl(config.allow_recursion), cache, metrics=metrics)


def new_cache(config) -> Cache:
    return Cache(config.cache_size, config.cache_max_ttl, prefetch=config.cache_prefetch,
                 prefetch_window=config.cache_prefetch_window,
                 prefetch_percentage=config.cache_prefetch_percentage,
                 serve_stale=config.cache_serve_stale,
                 verify_stale=config.cache_serve_stale_mode == "verify")
