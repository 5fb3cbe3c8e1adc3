"""Prometheus metrics under CoreDNS's names, so a stock CoreDNS dashboard works.

Two kinds of numbers, kept two ways:

* **Per query** (``coredns_dns_*``): counted on the hot path into one plain
  dictionary, keyed by a tuple of raw values taken from the wire (protocol,
  address family, the twelve bytes after the question name, the response's
  flags byte, both sizes, the duration's bucket).  No parsing, no labels, no
  waiting: one ``find``, one tuple, one dictionary update.  Turning those
  keys into CoreDNS's labels (type names, rcodes, DO bit, histogram buckets)
  happens at scrape time, in :class:`Collector`, on the HTTP thread.
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

import platform
import threading
from bisect import bisect_left
from typing import Callable, Iterable, Optional, Sequence

import dns.rcode
import dns.rdatatype as T
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.utils import floatToGoString

from coredns_py import hostport, tally
from coredns_py.errors import REFUSED_REASONS
from coredns_py import __version__

NAMESPACE = "coredns"
OURS = "coredns_py"

# CoreDNS plugin.TimeBuckets: prometheus.ExponentialBuckets(0.00025, 2, 16),
# 0.25 ms to about 8 s.
TIME_BUCKETS = tuple(0.00025 * 2 ** i for i in range(16))
# CoreDNS's request and response size buckets (plugin/metrics/vars).
_FIRST_BUCKET = TIME_BUCKETS[0]  # most answers: skip the search
SIZE_BUCKETS = (0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16e3, 32e3, 48e3, 64e3)
# Reload timings: a small folder builds in milliseconds, 100k Services in
# seconds; the debounce alone is 20 ms.
RELOAD_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

# Query types CoreDNS reports by name; every other type is "other"
# (plugin/metrics/vars/report.go monitorType).
MONITORED_TYPES = frozenset((T.A, T.AAAA, T.CNAME, T.DNSKEY, T.DS, T.MX, T.NSEC3, T.NSEC,
                             T.NS, T.PTR, T.RRSIG, T.SOA, T.SRV, T.TXT, T.HTTPS, T.IXFR,
                             T.AXFR, T.ANY))

# Distinct per-query keys kept before they are folded into label totals.  In
# normal traffic a key is (name length, type, answer) so a cluster has a few
# thousand; only odd traffic (random types, random EDNS sizes) goes past.
RAW_LIMIT = 10_000

# CoreDNS's `plugin` label: the plugin that wrote the response.  Answers
# from our zones are what CoreDNS's kubernetes plugin writes.
PLUGIN_LOCAL = "kubernetes"
PLUGIN_FORWARD = "forward"

_OPT_HEAD = b"\x00\x00\x29"  # an OPT record's root owner and type
_RCODE_BADVERS = 16


def _type_label(qtype: int) -> str:
    return T.to_text(qtype) if qtype in MONITORED_TYPES else "other"


def _rcode_label(rcode: int) -> str:
    # miekg/dns (CoreDNS) names 16 after TSIG's BADSIG; it is EDNS's BADVERS too.
    if rcode == _RCODE_BADVERS:
        return "BADSIG"
    try:
        return dns.rcode.to_text(rcode)
    except ValueError:
        return str(rcode)


class _Histogram:
    """Bucket counts (not cumulative; the last is +Inf) and a sum."""

    __slots__ = ("counts", "sum")

    def __init__(self, n: int):
        self.counts = [0] * (n + 1)
        self.sum = 0.0

    def copy(self) -> "_Histogram":
        h = _Histogram(len(self.counts) - 1)
        h.counts = list(self.counts)
        h.sum = self.sum
        return h

    def cumulative(self, bounds) -> list[tuple[str, int]]:
        out, running = [], 0
        for bound, n in zip(bounds, self.counts):
            running += n
            out.append((_le(bound), running))
        running += self.counts[-1]
        out.append(("+Inf", running))
        return out


def _family(kind, name: str, help_text: str, value, label: Optional[str] = None):
    """A metric family of one number, or with ``label``, one per key of the
    mapping ``value``."""
    if label is None:
        family = kind(name, help_text)
        family.add_metric([], value)
        return family
    family = kind(name, help_text, labels=[label])
    for key, n in sorted(value.items()):
        family.add_metric([key], n)
    return family


def _le(bound: float) -> str:
    return floatToGoString(bound)  # as prometheus_client writes its own buckets


class Totals:
    """Per-query counts at the level of CoreDNS's labels."""

    def __init__(self):
        self.dropped = 0  # queries that got no response at all
        self.requests: dict[tuple[str, str, str], int] = {}  # (proto, family, type)
        self.do_requests = 0
        self.responses: dict[tuple[str, str], int] = {}  # (rcode, plugin)
        self.duration: dict[str, _Histogram] = {}  # type
        self.request_size: dict[str, _Histogram] = {}  # proto
        self.response_size: dict[str, _Histogram] = {}  # proto

    def copy(self) -> "Totals":
        t = Totals()
        t.requests = dict(self.requests)
        t.do_requests = self.do_requests
        t.dropped = self.dropped
        t.responses = dict(self.responses)
        t.duration = {k: h.copy() for k, h in self.duration.items()}
        t.request_size = {k: h.copy() for k, h in self.request_size.items()}
        t.response_size = {k: h.copy() for k, h in self.response_size.items()}
        return t

    def add(self, raw: Iterable) -> None:
        """Add raw hot-path entries: ``(key, [count, seconds])``."""
        for key, (n, seconds) in raw:
            if key is None:
                self.dropped += n
                continue
            proto, family, tail, flags, qsize, rsize, bucket, plugin = key
            qtype = int.from_bytes(tail[:2], "big") if len(tail) >= 2 else 0
            type_label = _type_label(qtype)
            fam = "2" if family == 4 else "1"  # a peer tuple of 4 is IPv6
            k = (proto, fam, type_label)
            self.requests[k] = self.requests.get(k, 0) + n
            rcode = flags & 0x0F
            # An OPT record right after the question: the client's DO bit, and
            # an EDNS version above 0, which we always answer with BADVERS.
            if len(tail) == 12 and tail[4:7] == _OPT_HEAD:
                if tail[11] & 0x80:
                    self.do_requests += n
                if tail[10] and rcode == 0:
                    rcode = _RCODE_BADVERS
            k2 = (_rcode_label(rcode), plugin)
            self.responses[k2] = self.responses.get(k2, 0) + n
            h = self.duration.get(type_label)
            if h is None:
                h = self.duration[type_label] = _Histogram(len(TIME_BUCKETS))
            h.counts[bucket] += n
            h.sum += seconds
            for table, size in ((self.request_size, qsize), (self.response_size, rsize)):
                h = table.get(proto)
                if h is None:
                    h = table[proto] = _Histogram(len(SIZE_BUCKETS))
                h.counts[bisect_left(SIZE_BUCKETS, size)] += n
                h.sum += size * n


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
        label = _rcode_label(rcode)
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


class Collector:
    """Renders the hot-path totals and the server's state at scrape time."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def describe(self):
        return []  # built per scrape; nothing to check at registration

    def collect(self):
        m = self.metrics
        server_label = m.server_label()
        zone, view = ".", ""
        base = [server_label, zone, view]
        t = m.totals()

        info = GaugeMetricFamily(f"{NAMESPACE}_build_info", "A metric with a constant '1' value "
                                 "labeled by version, revision, and goversion from which CoreDNS "
                                 "was built.", labels=["version", "revision", "goversion"])
        info.add_metric([f"coredns-py {__version__}", "",
                         f"python{platform.python_version()}"], 1)
        yield info

        c = CounterMetricFamily(f"{NAMESPACE}_dns_requests_total", "Counter of DNS requests made "
                                "per zone, protocol and family.",
                                labels=["server", "zone", "view", "proto", "family", "type"])
        for (proto, fam, qtype), n in sorted(t.requests.items()):
            c.add_metric(base + [proto, fam, qtype], n)
        yield c

        c = CounterMetricFamily(f"{NAMESPACE}_dns_do_requests_total", "Counter of DNS requests "
                                "with DO bit set per zone.", labels=["server", "zone", "view"])
        c.add_metric(base, t.do_requests)
        yield c

        c = CounterMetricFamily(f"{NAMESPACE}_dns_responses_total", "Counter of response status "
                                "codes.", labels=["server", "zone", "view", "rcode", "plugin"])
        for (rcode, plugin), n in sorted(t.responses.items()):
            c.add_metric(base + [rcode, plugin], n)
        yield c

        h = HistogramMetricFamily(f"{NAMESPACE}_dns_request_duration_seconds", "Histogram of the "
                                  "time (in seconds) each request took per zone.",
                                  labels=["server", "zone", "view", "type"])
        for qtype, hist in sorted(t.duration.items()):
            h.add_metric(base + [qtype], hist.cumulative(TIME_BUCKETS), hist.sum)
        yield h

        for name, table, help_text in (
                ("request_size_bytes", t.request_size,
                 "Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol."),
                ("response_size_bytes", t.response_size,
                 "Size of the returned response in bytes.")):
            h = HistogramMetricFamily(f"{NAMESPACE}_dns_{name}", help_text,
                                      labels=["server", "zone", "view", "proto"])
            for proto, hist in sorted(table.items()):
                h.add_metric(base + [proto], hist.cumulative(SIZE_BUCKETS), hist.sum)
            yield h

        c = CounterMetricFamily(f"{NAMESPACE}_panics_total",
                                "A metrics that counts the number of panics.")
        c.add_metric([], m.panics)
        yield c

        g = GaugeMetricFamily(f"{NAMESPACE}_plugin_enabled", "A metric that monitors which "
                              "plugin(s) is(are) enabled.",
                              labels=["server", "zone", "view", "name"])
        names = ["kubernetes", "prometheus", "health", "ready", "reload"]
        forwarding = m.forward_enabled
        if forwarding:
            names += ["forward", "cache"]
        if m.log_queries:
            names.append("log")
        if m.rate_limit is not None:
            names.append("rrl")  # CoreDNS's (external) rrl plugin
        if m.cookies is not None:
            names.append("cookies")
        for name in sorted(names):
            g.add_metric(base + [name], 1)
        yield g

        if forwarding or m._cache_entries is not None:
            g = GaugeMetricFamily(f"{NAMESPACE}_cache_entries", "The number of elements in the "
                                  "cache.", labels=["server", "type", "zones", "view"])
            success, denial = m._cache_entries() if m._cache_entries is not None else (0, 0)
            g.add_metric([server_label, "success", zone, view], success)
            g.add_metric([server_label, "denial", zone, view], denial)
            yield g

        yield from self._ours(m, t)
        yield from self._abuse(m)

    def _abuse(self, m: Metrics):
        """What the server shed, refused, limited: an attack, or a client
        that hogs, shows here."""
        rrl, cookies = m.rate_limit, m.cookies
        if rrl is not None:
            counts = dict(rrl.counts)
            yield _family(CounterMetricFamily, f"{NAMESPACE}_rrl_responses_exceeded_total",
                          "Counter of responses exceeding QPS limit.", counts["exceeded"])
            yield _family(CounterMetricFamily, f"{OURS}_rrl_responses_total",
                          "What was sent in place of the answers over the rate: a truncated "
                          "answer, BADCOOKIE (cookie clients), or nothing.",
                          {a: counts[a] for a in ("truncated", "badcookie", "dropped")},
                          "action")
        if cookies is not None:
            counts = dict(cookies.counts)
            yield _family(CounterMetricFamily, f"{OURS}_cookies_total",
                          "Queries with a DNS cookie, by what it was (RFC 7873).",
                          {r: counts[r] for r in ("valid", "client_only", "invalid",
                                                  "malformed")}, "result")
        if rrl is not None or cookies is not None:
            yield _family(CounterMetricFamily, f"{OURS}_badcookie_responses_total",
                          "BADCOOKIE answers: to an invalid server cookie, or in place of an "
                          "answer over the rate.",
                          {"invalid_cookie": cookies.counts["badcookie"] if cookies else 0,
                           "rate_limit": rrl.counts["badcookie"] if rrl else 0}, "reason")
        if m.listener_stats is None:
            return
        stats = m.listener_stats()
        for kind, name, help_text, value, label in (
                (GaugeMetricFamily, "tcp_connections", "Open TCP connections.",
                 stats["tcp_open"], None),
                (GaugeMetricFamily, "tcp_connections_limit", "The most TCP connections open "
                 "at once (lower when the file-descriptor limit is).", stats["tcp_limit"], None),
                (CounterMetricFamily, "tcp_connections_closed_total", "TCP connections we "
                 "closed: idle too long, idle and closed to make room at the server's cap or "
                 "the client's own, or flooding us with unanswered bytes.",
                 stats["tcp_closed"], "reason"),
                (CounterMetricFamily, "tcp_connections_refused_total", "New TCP connections "
                 "closed at once: every connection busy, at the server's cap or the client's "
                 "own.", stats["tcp_refused"], "reason"),
                (CounterMetricFamily, "tcp_accept_errors_total", "accept() calls that failed "
                 "for want of descriptors or memory.", stats["accept_errors"], None),
                (CounterMetricFamily, "udp_shed_total", "UDP queries dropped because too many "
                 "answers were waiting for upstream servers.", stats["udp_shed"], None),
                (GaugeMetricFamily, "udp_receive_buffer_bytes", "The kernel receive buffer of "
                 "the UDP sockets, as granted.", stats["udp_receive_buffer"], None)):
            yield _family(kind, f"{OURS}_{name}", help_text, value, label)

    def _ours(self, m: Metrics, t: Totals):
        gen = m.current()  # one generation for every figure of this scrape
        c = CounterMetricFamily(f"{OURS}_dns_dropped_total", "Queries that got no response "
                                "(not a query, or too short to answer).")
        c.add_metric([], t.dropped)
        yield c
        answers = m.answers
        if answers is not None:
            for name, value, help_text in (
                    ("hits", answers.hits, "Queries answered from prepared answers (wire "
                     "bytes kept across reloads for what did not change)."),
                    ("misses", answers.misses, "Queries whose answer was prepared anew (first "
                     "asked, or its namespace changed).")):
                c = CounterMetricFamily(f"{OURS}_answer_cache_{name}_total", help_text)
                c.add_metric([], value)
                yield c

        g = GaugeMetricFamily(f"{OURS}_manifest_objects", "Objects read from the manifest "
                              "files, by kind.", labels=["kind"])
        for kind, n in sorted((gen.kinds if gen is not None else {}).items()):
            g.add_metric([kind], n)
        yield g

        g = GaugeMetricFamily(f"{OURS}_manifest_files", "Manifest files in the folder.")
        g.add_metric([], gen.files if gen is not None else 0)
        yield g

        g = GaugeMetricFamily(f"{OURS}_manifest_errors", "Problems in the manifests (each "
                              "logged with file, line, object and field), by file.",
                              labels=["file"])
        for path, n in sorted((gen.errors_by_file if gen is not None else {}).items()):
            g.add_metric([path], n)
        yield g

        g = GaugeMetricFamily(f"{OURS}_manifest_files_refused", "Manifest files not read at "
                              "all, by reason: not_regular_file (a FIFO, a device, a "
                              "socket), too_large (max_file_bytes), too_deep (nesting), "
                              "too_many_aliases (alias expansion).", labels=["reason"])
        for reason, n in (gen.refused if gen is not None else
                          dict.fromkeys(REFUSED_REASONS, 0)).items():
            g.add_metric([reason], n)
        yield g

        counted, gauges = tally.counters(), tally.gauges()
        g = GaugeMetricFamily(f"{OURS}_{tally.SETTLING}", "Changed manifest files held back "
                              "now, until they stop changing (their last version is served).")
        g.add_metric([], gauges.get(tally.SETTLING, 0))
        yield g
        for name, help_text in (
                (tally.HELD_BACK, "Changes of manifest files held back until the file stopped "
                 "changing (a file caught while being written)."),
                (tally.STATE_MOVED_ASIDE, "Damaged allocation state files moved aside "
                 "(renamed <name>.damaged-<time>).")):
            c = CounterMetricFamily(f"{OURS}_{name.removesuffix('_total')}", help_text)
            c.add_metric([], counted.get(name, 0))
            yield c

        g = GaugeMetricFamily(f"{OURS}_snapshot_objects", "Objects the served snapshot was "
                              "built from, after filling in what a cluster would (pods of "
                              "Deployments, endpoints of selectors), by kind.", labels=["kind"])
        for kind, n in sorted((gen.snapshot.counts if gen is not None else {}).items()):
            g.add_metric([kind], n)
        yield g

        for name, help_text, value in (m.source_gauges() if m.source_gauges else ()):
            g = GaugeMetricFamily(f"{OURS}_{name}", help_text)
            g.add_metric([], value)
            yield g

        g = GaugeMetricFamily(f"{OURS}_last_reload_timestamp_seconds", "When the served "
                              "snapshot was swapped in (unix time); 0 before the first load.")
        g.add_metric([], gen.built_at if gen is not None else 0)
        yield g
