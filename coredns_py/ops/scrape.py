"""What ``/metrics`` renders, worked out at scrape time on the HTTP thread.

The hot path (:meth:`coredns_py.ops.metrics.Metrics.record`) counts raw
keys taken from the wire; here they become CoreDNS's labels (type names,
rcodes, the DO bit, histogram buckets) in :class:`Totals`, and
:class:`Collector` yields every family: CoreDNS's own, so a stock dashboard
works, then ours (``coredns_py_*``), each read from one generation.
"""

from __future__ import annotations

import platform
from bisect import bisect_left
from typing import TYPE_CHECKING, Iterable, Optional

import dns.rcode
import dns.rdatatype as T
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily)
from prometheus_client.utils import floatToGoString

from coredns_py import __version__, tally
from coredns_py.errors import REFUSED_REASONS

if TYPE_CHECKING:
    from coredns_py.ops.metrics import Metrics

NAMESPACE = "coredns"
OURS = "coredns_py"

# CoreDNS plugin.TimeBuckets: prometheus.ExponentialBuckets(0.00025, 2, 16),
# 0.25 ms to about 8 s.
TIME_BUCKETS = tuple(0.00025 * 2 ** i for i in range(16))
# CoreDNS's request and response size buckets (plugin/metrics/vars).
SIZE_BUCKETS = (0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16e3, 32e3, 48e3, 64e3)

# Query types CoreDNS reports by name; every other type is "other"
# (plugin/metrics/vars/report.go monitorType).
MONITORED_TYPES = frozenset((T.A, T.AAAA, T.CNAME, T.DNSKEY, T.DS, T.MX, T.NSEC3, T.NSEC,
                             T.NS, T.PTR, T.RRSIG, T.SOA, T.SRV, T.TXT, T.HTTPS, T.IXFR,
                             T.AXFR, T.ANY))

_OPT_HEAD = b"\x00\x00\x29"  # an OPT record's root owner and type
_RCODE_BADVERS = 16


def _type_label(qtype: int) -> str:
    return T.to_text(qtype) if qtype in MONITORED_TYPES else "other"


def rcode_label(rcode: int) -> str:
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
            k2 = (rcode_label(rcode), plugin)
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
