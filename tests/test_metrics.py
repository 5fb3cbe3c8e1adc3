"""Prometheus metrics (CoreDNS's names and labels) and the query log.

The unit half feeds Metrics.record() the way Server.handle does and reads
the result back through prometheus_client's own text parser; the process
half scrapes a real server's /metrics before and after a known number of
queries and checks that the counters moved by exactly that many.
"""

from __future__ import annotations

import json
import re
import struct

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from conftest import wait_until, write_atomic
from coredns_py.ops import metrics as metrics_mod
from coredns_py.ops.metrics import Metrics
from helpers.manifests import service, write
from status_client import http_server, scrape, total, wait_scrape  # noqa: F401

V4 = ("127.0.0.1", 40000)
V6 = ("::1", 40000, 0, 0)


def parse(m: Metrics) -> dict:
    out = {}
    for family in text_string_to_metric_families(generate_latest(m.registry).decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def wire(name: str, rdtype: str = "A", **kw) -> bytes:
    return dns.message.make_query(name, rdtype, **kw).to_wire()


def response(query: bytes, rcode: int = 0, extra: int = 20) -> bytes:
    flags = 0x8400 | rcode  # QR AA
    return query[:2] + struct.pack(">H", flags) + query[4:] + b"\x00" * extra


# --- unit: what record() counts and how it is labelled -----------------------------


def test_counts_and_labels_follow_coredns():
    m = Metrics()
    qa = wire("web.default.svc.cluster.local.", "A")
    qsrv = wire("_http._tcp.web.default.svc.cluster.local.", "SRV", use_edns=0, payload=1232,
                want_dnssec=True)
    qodd = wire("x.cluster.local.", "NAPTR")  # not a type CoreDNS names: "other"
    for _ in range(3):
        m.record(qa, response(qa), "udp", V4, 0.0001)
    m.record(qa, response(qa, dns.rcode.NXDOMAIN), "tcp", V6, 0.003)
    m.record(qsrv, response(qsrv), "udp", V4, 0.0002)
    m.record(qodd, response(qodd, dns.rcode.REFUSED), "udp", V4, 20.0)
    m.record(qa, None, "udp", V4, 0.0001)  # nothing sent: not a DNS request/response
    s = parse(m)
    base = {"server": "dns://:53", "zone": ".", "view": ""}
    assert total(s, "coredns_dns_requests_total", proto="udp", family="1", type="A", **base) == 3
    assert total(s, "coredns_dns_requests_total", proto="tcp", family="2", type="A") == 1
    assert total(s, "coredns_dns_requests_total", type="SRV") == 1
    assert total(s, "coredns_dns_requests_total", type="other") == 1
    assert total(s, "coredns_dns_requests_total") == 6
    assert total(s, "coredns_dns_responses_total", rcode="NOERROR", plugin="kubernetes") == 4
    assert total(s, "coredns_dns_responses_total", rcode="NXDOMAIN") == 1
    assert total(s, "coredns_dns_responses_total", rcode="REFUSED") == 1
    assert total(s, "coredns_dns_do_requests_total") == 1
    assert total(s, "coredns_py_dns_dropped_total") == 1
    # Duration histogram per type, CoreDNS's buckets (0.25 ms doubling to 8.192 s).
    a = {"type": "A"}
    assert total(s, "coredns_dns_request_duration_seconds_bucket", le="0.00025", **a) == 3
    assert total(s, "coredns_dns_request_duration_seconds_bucket", le="0.004", **a) == 4
    assert total(s, "coredns_dns_request_duration_seconds_count", **a) == 4
    assert total(s, "coredns_dns_request_duration_seconds_sum", **a) == pytest.approx(0.0033)
    other = {"type": "other"}
    assert total(s, "coredns_dns_request_duration_seconds_bucket", le="8.192", **other) == 0
    assert total(s, "coredns_dns_request_duration_seconds_bucket", le="+Inf", **other) == 1
    # Sizes per protocol, CoreDNS's size buckets.
    assert total(s, "coredns_dns_request_size_bytes_count", proto="udp") == 5
    assert total(s, "coredns_dns_request_size_bytes_sum", proto="tcp") == len(qa)
    assert total(s, "coredns_dns_response_size_bytes_bucket", proto="tcp", le="100.0") == 1
    assert total(s, "coredns_dns_response_size_bytes_sum", proto="tcp") == len(qa) + 20
    names = {n for n, _ in s}
    # CoreDNS exports no *_created series, and neither do we.
    assert not any(n.endswith("_created") for n in names)
    assert "coredns_build_info" in names and "coredns_reload_failed_total" in names


def test_edns_version_above_zero_is_badsig_as_coredns_names_it():
    # We answer EDNS version 1 with BADVERS (16), which miekg/dns calls BADSIG.
    m = Metrics()
    q = wire("x.cluster.local.", "A", use_edns=1)
    m.record(q, response(q), "udp", V4, 0.0001)
    assert total(parse(m), "coredns_dns_responses_total", rcode="BADSIG") == 1


def test_folding_keeps_every_count(monkeypatch):
    # Past RAW_LIMIT distinct keys the raw counts fold into label totals;
    # nothing may be lost or counted twice on the way.
    monkeypatch.setattr(metrics_mod, "RAW_LIMIT", 5)
    m = Metrics()
    sent = 0
    for i in range(40):
        q = wire(f"n{i}.cluster.local.", "TYPE%d" % (1000 + i % 13))
        for _ in range(i % 3 + 1):
            m.record(q, response(q), "udp", V4, 0.0001 * i)
            sent += 1
    assert len(m._raw) <= 6
    s = parse(m)
    assert total(s, "coredns_dns_requests_total") == sent
    assert total(s, "coredns_dns_responses_total") == sent
    assert total(s, "coredns_dns_request_duration_seconds_count") == sent
    assert total(s, "coredns_dns_request_size_bytes_count") == sent


def test_forward_and_cache_hooks_use_coredns_names():
    m = Metrics()
    m.forward_request("8.8.8.8:53")
    m.forward_response("8.8.8.8:53", dns.rcode.NXDOMAIN, 0.01)
    m.forward_healthcheck_failure("8.8.4.4:53")
    m.forward_all_down()
    m.forward_rejected()
    m.cache_hit()
    m.cache_hit(denial=True)
    m.cache_miss()
    m.cache_evicted()
    m.cache_entries(lambda: (7, 2))
    m.forward_enabled = True
    s = parse(m)
    assert total(s, "coredns_forward_requests_total", to="8.8.8.8:53") == 1
    assert total(s, "coredns_forward_responses_total", to="8.8.8.8:53", rcode="NXDOMAIN") == 1
    assert total(s, "coredns_forward_request_duration_seconds_count", to="8.8.8.8:53",
                 rcode="NXDOMAIN") == 1
    assert total(s, "coredns_forward_healthcheck_failures_total", to="8.8.4.4:53") == 1
    assert total(s, "coredns_forward_healthcheck_broken_total") == 1
    assert total(s, "coredns_forward_max_concurrent_rejects_total") == 1
    cache = {"server": "dns://:53", "zones": ".", "view": ""}
    assert total(s, "coredns_cache_hits_total", type="success", **cache) == 1
    assert total(s, "coredns_cache_hits_total", type="denial", **cache) == 1
    assert total(s, "coredns_cache_misses_total", **cache) == 1
    assert total(s, "coredns_cache_requests_total", **cache) == 3
    assert total(s, "coredns_cache_evictions_total", type="success") == 1
    assert total(s, "coredns_cache_entries", type="success", **cache) == 7
    assert total(s, "coredns_cache_entries", type="denial", **cache) == 2
    assert total(s, "coredns_plugin_enabled", name="forward") == 1


# --- the real server ----------------------------------------------------------------


BROKEN = "apiVersion: v1\nkind: Service\nmetadata:\n  name: [oops\n"


@pytest.fixture
def folder(tmp_path):
    return write(tmp_path / "manifests", "web.yaml",
                 service("web", "default", cluster_ip="10.96.5.5")).parent


def test_request_and_rcode_counters_move_by_exactly_the_queries_sent(http_server, folder):
    srv = http_server(folder)
    before = scrape(srv)
    sent = {"udp": 0, "tcp": 0}
    rcodes = {"NOERROR": 0, "NXDOMAIN": 0}
    types = {"A": 0, "AAAA": 0, "SRV": 0}
    plan = ([("web.default.svc.cluster.local.", "A", "NOERROR")] * 7
            + [("nope.default.svc.cluster.local.", "A", "NXDOMAIN")] * 4
            + [("web.default.svc.cluster.local.", "AAAA", "NOERROR")] * 3
            + [("_x._tcp.web.default.svc.cluster.local.", "SRV", "NXDOMAIN")] * 2)
    for i, (name, rdtype, rcode) in enumerate(plan):
        proto = "tcp" if i % 3 == 0 else "udp"
        q = dns.message.make_query(name, rdtype)
        ask = dns.query.tcp if proto == "tcp" else dns.query.udp
        r = ask(q, srv.host, port=srv.port, timeout=5)
        assert dns.rcode.to_text(r.rcode()) == rcode, (name, rdtype, r)
        sent[proto] += 1
        rcodes[rcode] += 1
        types[rdtype] += 1
    after = scrape(srv)

    def moved(name, **labels):
        return total(after, name, **labels) - total(before, name, **labels)

    n = len(plan)
    assert moved("coredns_dns_requests_total") == n
    for proto, k in sent.items():
        assert moved("coredns_dns_requests_total", proto=proto, family="1") == k
        assert moved("coredns_dns_request_size_bytes_count", proto=proto) == k
        assert moved("coredns_dns_response_size_bytes_count", proto=proto) == k
    for rdtype, k in types.items():
        assert moved("coredns_dns_requests_total", type=rdtype) == k
        assert moved("coredns_dns_request_duration_seconds_count", type=rdtype) == k
    assert moved("coredns_dns_responses_total") == n
    for rcode, k in rcodes.items():
        assert moved("coredns_dns_responses_total", rcode=rcode, plugin="kubernetes") == k
    server_label = f"dns://127.0.0.1:{srv.port}"
    assert total(after, "coredns_dns_requests_total", server=server_label, zone=".") >= n


def test_reload_and_manifest_metrics(http_server, folder):
    (folder / "broken.yaml").write_text(BROKEN)
    srv = http_server(folder)
    s = scrape(srv)
    assert total(s, "coredns_py_manifest_objects", kind="Service") == 1
    # The one read, and the two every cluster has (kubernetes, kube-dns).
    assert total(s, "coredns_py_snapshot_objects", kind="services") == 3
    assert total(s, "coredns_py_manifest_errors", file=str(folder / "broken.yaml")) == 1
    assert total(s, "coredns_py_manifest_files") == 2
    assert total(s, "coredns_py_reloads_total") == 1
    assert total(s, "coredns_py_snapshot_build_duration_seconds_count") == 1
    assert total(s, "coredns_py_reload_propagation_seconds_count") == 1
    assert total(s, "coredns_py_last_reload_timestamp_seconds") > 1e9
    assert total(s, "coredns_reload_failed_total") == 0

    # A change: one more reload, timed from the change to the new answer.
    write_atomic(folder / "broken.yaml", service("api", "default", cluster_ip="10.96.5.6"))
    s = wait_scrape(srv, lambda s: total(s, "coredns_py_reloads_total") == 2)
    assert total(s, "coredns_py_manifest_objects", kind="Service") == 2
    assert total(s, "coredns_py_manifest_errors") == 0
    assert total(s, "coredns_py_reload_propagation_seconds_count") == 2
    assert srv.rrset_values("api.default.svc.cluster.local.") == ["10.96.5.6"]


# --- the query log ------------------------------------------------------------------


LOG_LINE = re.compile(
    r'127\.0\.0\.1:(\d+) - (\d+) "(\S+) IN (\S+) (udp|tcp) (\d+) (true|false) (\d+)" '
    r'([A-Z]+) ([a-z,]+) (\d+) (\d+\.\d+)s')


def test_query_log_text(http_server, folder):
    srv = http_server(folder, args=["--log-queries"])
    srv.query("web.default.svc.cluster.local.", "A")
    srv.query("nope.default.svc.cluster.local.", "AAAA", tcp=True)
    m = srv.wait_stderr(r'"AAAA IN nope\.default\.svc\.cluster\.local\. tcp')
    lines = [LOG_LINE.search(line) for line in srv.stderr.splitlines()]
    lines = [x for x in lines if x and "cluster.local" in x.group(4)]
    web = [x for x in lines if x.group(4) == "web.default.svc.cluster.local."]
    assert web and web[-1].group(3) == "A" and web[-1].group(9) == "NOERROR"
    assert web[-1].group(10) == "qr,aa,rd"
    nope = [x for x in lines if x.group(4).startswith("nope")][-1]
    assert (nope.group(5), nope.group(9), nope.group(8)) == ("tcp", "NXDOMAIN", "65535")
    assert int(nope.group(11)) > 12 and float(nope.group(12)) < 5
    assert m


def test_query_log_json_lines(http_server, folder):
    srv = http_server(folder, args=["--log-queries", "--log-format", "json"])
    r = srv.query("web.default.svc.cluster.local.", "A")
    assert r.rcode() == dns.rcode.NOERROR

    def record():
        for line in srv.stderr.splitlines():
            doc = json.loads(line)  # every line is JSON, the server's own too
            if doc.get("name") == "web.default.svc.cluster.local.":
                return doc
        return None

    doc = wait_until(record, 5, message="a JSON query log line")
    assert doc["remote"] == "127.0.0.1" and doc["type"] == "A" and doc["class"] == "IN"
    assert doc["rcode"] == "NOERROR" and doc["proto"] == "udp"
    assert doc["size"] > 12 and doc["rsize"] > doc["size"] and 0 <= doc["duration"] < 5
    assert doc["logger"] == "coredns_py.query" and doc["level"] == "info"


def test_no_query_log_by_default(http_server, folder):
    srv = http_server(folder)
    srv.query("web.default.svc.cluster.local.", "A")
    srv.wait_status("/health", 200)
    assert "web.default.svc.cluster.local." not in srv.stderr
