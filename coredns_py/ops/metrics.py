"""Prometheus metrics under CoreDNS's names, so a stock CoreDNS dashboard works.

Two kinds of numbers, kept two ways:

* **Per query** (``coredns_dns_*``): counted on the hot path into one plain
  dictionary, keyed by a tuple of raw values taken from the wire (protocol,
  address family, the twelve bytes after the question name, the response's
  flags byte, both sizes, the duration's bucket).  No parsing, no labels, no
  waiting: one ``find``, one tuple, one dictionary update.  Turning those
  keys into CoreDNS's labels (type names, rcodes, DO bit, histogram buckets)
  happens at scrape time, in :mod:`coredns_py.ops.scrape`, on the HTTP thread.
  (Queuing the queries and counting them in batches was tried and measured
  worse: holding on to the datagrams asyncio received keeps big buffers
  alive and the allocator pays for it on every packet.)
* **Per reload or per upstream query** (``coredns_reload_failed_total``,
  ``coredns_forward_*``, ``coredns_cache_*``, ours under ``coredns_py_``):
  rare enough to use prometheus_client's own Counter and Histogram objects.

Thread model: the event loop thread is the only writer of the per-query
dictionary.  When it holds too many distinct keys (a flood of odd query
types, say) the loop thread folds it into label-level totals under a lock it
only ever tries, never waits for; the scraper takes that lock to copy the
dictionary and the totals (``dict.copy`` runs without releasing the GIL), so
every query is counted in exactly one of them.

The forwarding path reports through the methods under "hooks" below
(:meth:`Metrics.forward_request` ...); they are documented in the README.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from typing import Callable, Iterable, Optional, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from coredns_py import hostport
from coredns_py.ops.scrape import NAMESPACE, OURS, TIME_BUCKETS, Collector, Totals, rcode_label

_FIRST_BUCKET = TIME_BUCKETS[0]  # most answers: skip the search
# Reload timings: a small folder builds in milliseconds, 100k Services in
# seconds; the debounce alone is 20 ms.
RELOAD_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

# Distinct per-query keys kept before they are folded into label totals.  In
# normal traffic a key is (name length, type, answer) so a cluster has a few
# thousand; only odd traffic (random types, random EDNS sizes) goes past.
RAW_LIMIT = 10_000

# CoreDNS's `plugin` label: the plugin that wrote the response.  Answers
# from our zones are what CoreDNS's kubernetes plugin writes.
PLUGIN_LOCAL = "kubernetes"
PLUGIN_FORWARD = "forward"


class Metrics:
    """Every metric of one server, and the registry ``/metrics`` renders."""

    def __init__(self, current: Callable[[], object] = lambda: None,
                 addresses: Sequence[tuple[str, int]] = (), answers=None):
        # The current Generation (or None), read once per scrape.
        self.current = current
        # Where DNS is served (CoreDNS's ``server`` label is the first one).
        self.addresses = list(addresses)
        self.answers = answers  # the answer cache, for its hit and miss counts
        self._raw: dict[tuple, list] = {}
        self._folded = Totals()
        self._lock = threading.Lock()
        self.panics = 0  # handler exceptions (the query got no answer)
        self.log_queries = False  # shown in coredns_plugin_enabled
        # Read at scrape time, set when the server starts: what the
        # listeners shed and closed (net.listeners.Listeners.stats), and the
        # abuse stages, each None when off (their ``counts``).
        self.listener_stats: Optional[Callable[[], dict]] = None
        self.cookies = None
        self.rate_limit = None
        # The cluster source's own gauges, if it has any (a replica's etcd
        # revision, connection, staleness): () -> [(name, help, value)].
        self.source_gauges: Optional[Callable[[], Iterable]] = None

        # CoreDNS exports no *_created series; neither do we (process-wide switch).
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        # Reloads.  CoreDNS counts failed Corefile reloads; ours are reloads
        # of the folder that produced no snapshot (folder unreadable, a crash).
        self.reload_failed = Counter(
            "reload_failed_total", "Counter of the number of failed reload attempts.",
            namespace=NAMESPACE, registry=reg)
        self.reloads = Counter(
            "reloads_total", "Snapshots built and swapped in (the first load included).",
            namespace=OURS, registry=reg)
        self.build_seconds = Histogram(
            "snapshot_build_duration_seconds",
            "Time to read the changed files and build a new snapshot.",
            namespace=OURS, buckets=RELOAD_BUCKETS, registry=reg)
        self.propagation_seconds = Histogram(
            "reload_propagation_seconds",
            "Time from a change in the folder (or SIGHUP, or start) to the new "
            "answers being served.", namespace=OURS, buckets=RELOAD_BUCKETS, registry=reg)
        # The forwarding path (CoreDNS forward and cache plugins).
        self.forward_requests = Counter(
            "requests_total", "Counter of requests made per upstream.", ["to"],
            namespace=NAMESPACE, subsystem="forward", registry=reg)
        self.forward_responses = Counter(
            "responses_total", "Counter of responses received per upstream.", ["rcode", "to"],
            namespace=NAMESPACE, subsystem="forward", registry=reg)
        self.forward_duration = Histogram(
            "request_duration_seconds", "Histogram of the time each request took.",
            ["to", "rcode"], namespace=NAMESPACE, subsystem="forward",
            buckets=TIME_BUCKETS, registry=reg)
        self.forward_healthcheck_failures = Counter(
            "healthcheck_failures_total", "Counter of the number of failed healthchecks.",
            ["to"], namespace=NAMESPACE, subsystem="forward", registry=reg)
        self.forward_healthcheck_broken = Counter(
            "healthcheck_broken_total",
            "Counter of the number of complete failures of the healthchecks.",
            namespace=NAMESPACE, subsystem="forward", registry=reg)
        self.forward_max_concurrent_rejects = Counter(
            "max_concurrent_rejects_total",
            "Counter of the number of queries rejected because the concurrent queries "
            "were at maximum.", namespace=NAMESPACE, subsystem="forward", registry=reg)
        cache_labels = ["server", "type", "zones", "view"]
        self.cache_hits = Counter("hits_total", "The count of cache hits.", cache_labels,
                                  namespace=NAMESPACE, subsystem="cache", registry=reg)
        self.cache_misses = Counter(
            "misses_total", "The count of cache misses. Deprecated, derive misses from cache "
            "hits/requests counters.", ["server", "zones", "view"],
            namespace=NAMESPACE, subsystem="cache", registry=reg)
        self.cache_requests = Counter(
            "requests_total", "The count of cache requests.", ["server", "zones", "view"],
            namespace=NAMESPACE, subsystem="cache", registry=reg)
        self.cache_evictions = Counter(
            "evictions_total", "The count of cache evictions.", cache_labels,
            namespace=NAMESPACE, subsystem="cache", registry=reg)
        self._cache_entries: Optional[Callable[[], tuple[int, int]]] = None
        self.forward_enabled = False

        reg.register(Collector(self))
        ProcessCollector(registry=reg)
        PlatformCollector(registry=reg)
        GCCollector(registry=reg)

    # --- the hot path (event loop thread) -------------------------------------

    def record(self, wire: bytes, out, proto: str, peer, seconds: float,
               plugin: str = PLUGIN_LOCAL) -> None:
        """Count one query and its response; ``out`` None: nothing was sent."""
        if out is None:
            key = None
        else:
            end = wire.find(0, 12)  # the question name's root label
            key = (proto, len(peer or ()), wire[end + 1:end + 13], out[3], len(wire), len(out),
                   0 if seconds <= _FIRST_BUCKET else bisect_left(TIME_BUCKETS, seconds),
                   plugin)
        raw = self._raw
        entry = raw.get(key)
        if entry is not None:
            entry[0] += 1
            entry[1] += seconds
            return
        if len(raw) >= RAW_LIMIT:
            self._fold()
            raw = self._raw
        raw[key] = [1, seconds]

    def _fold(self) -> None:
        # Never wait: if a scrape holds the lock, fold at the next new key.
        if not self._lock.acquire(blocking=False):
            return
        try:
            raw, self._raw = self._raw, {}
            self._folded.add((k, tuple(v)) for k, v in raw.items())
        finally:
            self._lock.release()

    def totals(self) -> Totals:
        """A consistent copy of the per-query totals (any thread)."""
        with self._lock:
            raw = self._raw.copy()
            out = self._folded.copy()
        out.add((k, tuple(v)) for k, v in raw.items())
        return out

    # --- hooks for the forwarding path (event loop thread) ---------------------

    def forward_request(self, to: str) -> None:
        """A query sent to upstream ``to`` (``"8.8.8.8:53"``)."""
        self.forward_requests.labels(to).inc()

    def forward_response(self, to: str, rcode: int, seconds: float) -> None:
        """A response from ``to`` with ``rcode`` after ``seconds``."""
        label = rcode_label(rcode)
        self.forward_responses.labels(label, to).inc()
        self.forward_duration.labels(to, label).observe(seconds)

    def forward_healthcheck_failure(self, to: str) -> None:
        self.forward_healthcheck_failures.labels(to).inc()

    def forward_all_down(self) -> None:
        """Every upstream failed its health check (coredns_forward_healthcheck_broken_total)."""
        self.forward_healthcheck_broken.inc()

    def forward_rejected(self) -> None:
        """A query refused because too many were already waiting on upstreams."""
        self.forward_max_concurrent_rejects.inc()

    def cache_hit(self, denial: bool = False) -> None:
        """An answer served from the cache; ``denial``: NXDOMAIN or NODATA."""
        labels = self._cache_labels()
        self.cache_requests.labels(labels[0], labels[1], labels[2]).inc()
        self.cache_hits.labels(labels[0], "denial" if denial else "success",
                               labels[1], labels[2]).inc()

    def cache_miss(self) -> None:
        labels = self._cache_labels()
        self.cache_requests.labels(*labels).inc()
        self.cache_misses.labels(*labels).inc()

    def cache_evicted(self, denial: bool = False) -> None:
        labels = self._cache_labels()
        self.cache_evictions.labels(labels[0], "denial" if denial else "success",
                                    labels[1], labels[2]).inc()

    def cache_entries(self, source: Callable[[], tuple[int, int]]) -> None:
        """Register ``source() -> (success entries, denial entries)``, read at scrape."""
        self._cache_entries = source

    def _cache_labels(self) -> tuple[str, str, str]:
        return (self.server_label(), ".", "")

    # --- labels -------------------------------------------------------------------

    def server_label(self) -> str:
        """CoreDNS's ``server``: ``dns://HOST:PORT`` of the first listen address."""
        if not self.addresses:
            return "dns://:53"
        return f"dns://{hostport.join(*self.addresses[0])}"


