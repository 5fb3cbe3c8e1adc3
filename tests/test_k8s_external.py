"""External zones (CoreDNS k8s_external, config key k8s_external): Services'
spec.externalIPs and load-balancer ingress answered under <svc>.<ns>.<zone>,
the zone's own SOA and NS; as a table of DNS exchanges in the style of
CoreDNS's plugin/k8s_external/external_test.go (whose Services
tests/fixtures/external holds), `get services` showing the addresses, and a
real server from a Corefile asked with dig, the ingress hostname's CNAME
followed upstream (dnsmasq)."""

from __future__ import annotations

import sys
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from coredns_py.cluster import fill
from coredns_py.config import parse
from coredns_py.errors import ConfigError, ManifestError
from coredns_py.source import convert
from coredns_py.source.folder import ManifestSource
from coredns_py.zone import answer, snapshot

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "forward"))
from forward_helpers import running_dnsmasq  # noqa: E402
from conftest import corefile_server, run_cli  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "external"
SERIAL = 1499347823
SOA = (f"example.com. 5 IN SOA ns1.dns.example.com. hostmaster.dns.example.com. {SERIAL} "
       "7200 1800 86400 5")
NX, OK = dns.rcode.NXDOMAIN, dns.rcode.NOERROR


def snap_of(**external):
    config = parse({"k8s_external": [{"zones": ["example.com"], **external}]})
    loaded = ManifestSource(FIXTURE).load()
    return snapshot.build(fill.build(loaded.objects, config, None), config, SERIAL,
                          ("127.0.0.1",))


def exchange(snap, name: str, rdtype: str):
    wire = dns.message.make_query(name, rdtype).to_wire()
    msg = dns.message.from_wire(answer.answer(snap, wire, "tcp"))
    assert msg.flags & dns.flags.AA

    def section(rrsets):
        return sorted(f"{rr.name} {rrset.ttl} IN {dns.rdatatype.to_text(rrset.rdtype)} "
                      f"{rr_data.to_text()}" for rrset in rrsets for rr in [rrset]
                      for rr_data in rrset)
    return msg.rcode(), section(msg.answer), section(msg.authority), section(msg.additional)


# (name, type) -> rcode, answer, authority, additional
TABLE = [
    # A and AAAA of external IPs; NODATA for the other family
    ("svc1.testns.example.com.", "A", OK, ["svc1.testns.example.com. 5 IN A 1.2.3.4"], [], []),
    ("svc1.testns.example.com.", "AAAA", OK, [], [SOA], []),
    ("svc6.testns.example.com.", "AAAA", OK, ["svc6.testns.example.com. 5 IN AAAA 1:2::5"],
     [], []),
    # SRV per port, the target's address as glue
    ("svc1.testns.example.com.", "SRV", OK,
     ["svc1.testns.example.com. 5 IN SRV 0 100 80 svc1.testns.example.com."], [],
     ["svc1.testns.example.com. 5 IN A 1.2.3.4"]),
    ("_http._tcp.svc1.testns.example.com.", "SRV", OK,
     ["_http._tcp.svc1.testns.example.com. 5 IN SRV 0 100 80 svc1.testns.example.com."], [],
     ["svc1.testns.example.com. 5 IN A 1.2.3.4"]),
    ("_http._tcp.svc6.testns.example.com.", "SRV", OK,
     ["_http._tcp.svc6.testns.example.com. 5 IN SRV 0 100 80 svc6.testns.example.com."], [],
     ["svc6.testns.example.com. 5 IN AAAA 1:2::5"]),
    ("*._not-udp-or-tcp.svc1.testns.example.com.", "SRV", NX, [], [SOA], []),
    # a load balancer's ingress IP; two ports: two SRV of weight 50
    ("svc11.testns.example.com.", "A", OK, ["svc11.testns.example.com. 5 IN A 2.3.4.5"], [],
     []),
    ("svc11.testns.example.com.", "SRV", OK,
     ["svc11.testns.example.com. 5 IN SRV 0 50 53 svc11.testns.example.com.",
      "svc11.testns.example.com. 5 IN SRV 0 50 80 svc11.testns.example.com."], [],
     ["svc11.testns.example.com. 5 IN A 2.3.4.5"]),
    ("_dns._udp.svc11.testns.example.com.", "SRV", OK,
     ["_dns._udp.svc11.testns.example.com. 5 IN SRV 0 100 53 svc11.testns.example.com."], [],
     ["svc11.testns.example.com. 5 IN A 2.3.4.5"]),
    # an ingress hostname: a CNAME (its records come from upstream); SRV to it
    ("svc12.testns.example.com.", "A", OK,
     ["svc12.testns.example.com. 5 IN CNAME pypi.example.test."], [], []),
    ("svc12.testns.example.com.", "SRV", OK,
     ["svc12.testns.example.com. 5 IN SRV 0 100 80 pypi.example.test."], [], []),
    ("svc12.testns.example.com.", "CNAME", OK, [], [SOA], []),  # only A, AAAA, SRV
    # no external address (yet): NXDOMAIN
    ("pending.testns.example.com.", "A", NX, [], [SOA], []),
    ("svc0.testns.example.com.", "A", NX, [], [SOA], []),
    ("svc0.svc-nons.example.com.", "A", NX, [], [SOA], []),
    # no ports: A, never SRV
    ("noports.testns.example.com.", "A", OK, ["noports.testns.example.com. 5 IN A 1.2.3.6"],
     [], []),
    ("noports.testns.example.com.", "SRV", OK, [], [SOA], []),
    # the namespace: NODATA
    ("testns.example.com.", "A", OK, [], [SOA], []),
    ("testns.example.com.", "SOA", OK, [], [SOA], []),
    # without `headless`: a headless Service has no external address, and
    # endpoint names are not served
    ("svc-headless.testns.example.com.", "A", NX, [], [SOA], []),
    ("x.svc1.testns.example.com.", "A", NX, [], [SOA], []),
    ("a.b.c.d.svc1.testns.example.com.", "A", NX, [], [SOA], []),
    # the apex and the zone's own names
    ("example.com.", "SOA", OK, [SOA], [], []),
    ("example.com.", "NS", OK, ["example.com. 5 IN NS ns1.dns.example.com."], [],
     ["ns1.dns.example.com. 5 IN A 127.0.0.1"]),
    ("example.com.", "A", OK, [], [SOA], []),
    ("ns1.dns.example.com.", "A", OK, ["ns1.dns.example.com. 5 IN A 127.0.0.1"], [], []),
    ("ns1.dns.example.com.", "AAAA", OK, [], [SOA], []),
    ("dns.example.com.", "A", OK, [], [SOA], []),
    ("ns2.dns.example.com.", "A", NX, [], [SOA], []),
    ("a.ns1.dns.example.com.", "A", NX, [], [SOA], []),
]


@pytest.fixture(scope="module")
def snap():
    return snap_of()


@pytest.mark.parametrize("name, rdtype, rcode, ans, auth, add", TABLE)
def test_external_zone(snap, name, rdtype, rcode, ans, auth, add):
    assert exchange(snap, name, rdtype) == (rcode, sorted(ans), sorted(auth), sorted(add))


HEADLESS = [
    ("svc-headless.testns.example.com.", "A", OK,
     ["svc-headless.testns.example.com. 5 IN A 1.2.3.4",
      "svc-headless.testns.example.com. 5 IN A 1.2.3.5"], [], []),
    ("svc-headless.testns.example.com.", "SRV", OK,
     ["svc-headless.testns.example.com. 5 IN SRV 0 50 80 "
      "endpoint-svc-0.svc-headless.testns.example.com.",
      "svc-headless.testns.example.com. 5 IN SRV 0 50 80 "
      "endpoint-svc-1.svc-headless.testns.example.com."], [],
     ["endpoint-svc-0.svc-headless.testns.example.com. 5 IN A 1.2.3.4",
      "endpoint-svc-1.svc-headless.testns.example.com. 5 IN A 1.2.3.5"]),
    ("_http._tcp.svc-headless.testns.example.com.", "SRV", OK,
     ["_http._tcp.svc-headless.testns.example.com. 5 IN SRV 0 50 80 "
      "endpoint-svc-0.svc-headless.testns.example.com.",
      "_http._tcp.svc-headless.testns.example.com. 5 IN SRV 0 50 80 "
      "endpoint-svc-1.svc-headless.testns.example.com."], [],
     ["endpoint-svc-0.svc-headless.testns.example.com. 5 IN A 1.2.3.4",
      "endpoint-svc-1.svc-headless.testns.example.com. 5 IN A 1.2.3.5"]),
    ("endpoint-svc-1.svc-headless.testns.example.com.", "A", OK,
     ["endpoint-svc-1.svc-headless.testns.example.com. 5 IN A 1.2.3.5"], [], []),
    ("endpoint-svc-0.svc-headless.testns.example.com.", "SRV", OK,
     ["endpoint-svc-0.svc-headless.testns.example.com. 5 IN SRV 0 100 80 "
      "endpoint-svc-0.svc-headless.testns.example.com."], [],
     ["endpoint-svc-0.svc-headless.testns.example.com. 5 IN A 1.2.3.4"]),
    ("endpoint-svc-9.svc-headless.testns.example.com.", "A", NX, [], [SOA], []),
    # a Service with external IPs answers them, headless or not
    ("svc1.testns.example.com.", "A", OK, ["svc1.testns.example.com. 5 IN A 1.2.3.4"], [], []),
]


@pytest.mark.parametrize("name, rdtype, rcode, ans, auth, add", HEADLESS)
def test_headless_option(name, rdtype, rcode, ans, auth, add):
    assert exchange(snap_of(headless=True), name, rdtype) == (rcode, sorted(ans), sorted(auth),
                                                              sorted(add))


def test_apex_ttl_and_filters():
    snap = snap_of(apex="ext", ttl=60)
    rcode, ans, _, add = exchange(snap, "example.com.", "NS")
    assert ans == ["example.com. 60 IN NS ns1.ext.example.com."]
    assert add == ["ns1.ext.example.com. 60 IN A 127.0.0.1"]
    assert exchange(snap, "svc1.testns.example.com.", "A")[1] == [
        "svc1.testns.example.com. 60 IN A 1.2.3.4"]
    hidden = parse({"namespaces": ["default"],
                    "k8s_external": [{"zones": ["example.com"]}]})
    loaded = ManifestSource(FIXTURE).load()
    snap = snapshot.build(fill.build(loaded.objects, hidden, None), hidden, SERIAL)
    assert exchange(snap, "svc1.testns.example.com.", "A")[0] == NX


def test_fallthrough_sends_nxdomain_upstream():
    snap = snap_of(fallthrough=True)
    wire = dns.message.make_query("svc0.testns.example.com.", "A").to_wire()
    assert isinstance(answer.answer(snap, wire, "udp", forwarding=True), answer.Forward)
    wire = dns.message.make_query("svc1.testns.example.com.", "A").to_wire()
    assert isinstance(answer.answer(snap, wire, "udp", forwarding=True), bytes)


@pytest.mark.parametrize("value, needle", [
    ([{"zones": ["cluster.local"]}], "is, or is nested with, the cluster zone"),
    ([{"zones": ["a.example"]}, {"zones": ["x.a.example"]}], "nested with, the external zone"),
    ([{"zones": ["10.in-addr.arpa"]}], "reverse zones"),
    ([{"zones": ["example.com"], "apex": "a.b"}], "one DNS label"),
    ([{"zones": ["example.com"], "ttl": -1}], "ttl"),
    ([{"apex": "dns"}], "needs zones"),
    ([{"zones": ["example.com"], "nope": 1}], "unknown key 'nope'"),
])
def test_bad_settings_are_config_errors(value, needle):
    with pytest.raises(ConfigError, match=needle):
        parse({"k8s_external": value})


def test_convert_reads_external_addresses_and_names_bad_ones():
    [svc] = convert.convert({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"},
        "spec": {"type": "LoadBalancer", "externalIPs": ["192.0.2.9"], "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"},
                                                {"hostname": "lb.example.com."}]}}}, "f", 1)
    assert (svc.external_ips, svc.ingress) == (("192.0.2.9",), ("192.0.2.1", "lb.example.com"))
    for spec, status, field in [
            ({"externalIPs": ["nope"]}, {}, "spec.externalIPs[0]"),
            ({}, {"loadBalancer": {"ingress": [{"hostname": "bad_name"}]}},
             "status.loadBalancer.ingress[0].hostname"),
            ({}, {"loadBalancer": {"ingress": [{"ip": "300.1.1.1"}]}},
             "status.loadBalancer.ingress[0].ip"),
            ({}, {"loadBalancer": {"ingress": [{}]}}, "status.loadBalancer.ingress[0].hostname")]:
        with pytest.raises(ManifestError) as err:
            convert.convert({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
                             "spec": {"ports": [{"port": 80}], **spec}, "status": status},
                            "f", 1)
        assert err.value.field == field


def test_get_services_shows_external_addresses(state_home):
    res = run_cli("get", "svc", "-n", "testns", "--manifests", FIXTURE, state_home=state_home)
    assert res.returncode == 0, res.stderr
    rows = {line.split()[0]: line.split()[3] for line in res.stdout.splitlines()[1:]}
    assert rows["svc1"] == "1.2.3.4"
    assert rows["svc11"] == "2.3.4.5"
    assert rows["svc12"] == "pypi.example.test"
    assert rows["pending"] == "<pending>"
    assert rows["svc-headless"] == "<none>"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    yield from running_dnsmasq(tmp_path_factory)


def test_process_corefile_with_dig(tmp_path, state_home, upstream):
    srv = corefile_server(FIXTURE, f""".:53 {{
    kubernetes cluster.local in-addr.arpa ip6.arpa
    k8s_external example.com {{
        headless
    }}
    forward . {upstream.address}
}}
""", tmp_path, state_home)
    try:
        assert srv.dig_short("svc11.testns.example.com") == ["2.3.4.5"]
        assert srv.dig_short("svc6.testns.example.com", "AAAA") == ["1:2::5"]
        assert srv.dig_short("_http._tcp.svc1.testns.example.com", "SRV") == [
            "0 100 80 svc1.testns.example.com."]
        assert sorted(srv.dig_short("svc-headless.testns.example.com")) == ["1.2.3.4",
                                                                            "1.2.3.5"]
        # the ingress hostname: its CNAME, then its address from upstream
        assert srv.dig_short("svc12.testns.example.com") == ["pypi.example.test.",
                                                             "192.0.2.10"]
        out = srv.dig("example.com", "SOA")
        assert "status: NOERROR" in out and "ns1.dns.example.com. hostmaster.dns" in out
        assert "status: NXDOMAIN" in srv.dig("pending.testns.example.com")
        # the cluster zone is as it was
        assert srv.dig_short("svc1.testns.svc.cluster.local") == ["10.0.0.1"]
    finally:
        srv.stop()
