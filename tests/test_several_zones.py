"""Several zones answering one cluster (CoreDNS `kubernetes cluster.local
example.internal`, config key extra_zones): every zone answers the same
names alike, names it writes (SRV targets, the apex NS, its glue) under the
zone asked, PTR records under the first zone; in process, and a real server
asked with dig, from the YAML config and from a Corefile."""

from __future__ import annotations

from pathlib import Path

import dns.message
import dns.rcode
import pytest

from coredns_py.cluster import fill
from coredns_py.config import Config, parse
from coredns_py.errors import ConfigError
from coredns_py.source.folder import ManifestSource
from coredns_py.zone import answer, snapshot

from conftest import ServerProcess, ZONES

FIXTURES = Path(__file__).parent / "fixtures" / "answer"
EXTRA = ("example.internal", "k8s.test")


def snap_of(folder: Path, config: Config):
    loaded = ManifestSource(folder).load()
    return snapshot.build(fill.build(loaded.objects, config, None), config, 7, ("127.0.0.1",))


def ask(snap, name: str, rdtype: str) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    return dns.message.from_wire(answer.answer(snap, q.to_wire(), "tcp"))


def as_text(msg: dns.message.Message, zone: str) -> tuple:
    """rcode and every section as text, the zone asked written as ZONE."""
    def section(rrsets):
        return sorted(rr.to_text().replace(zone, "ZONE") for rr in rrsets)
    return (msg.rcode(), section(msg.answer), section(msg.authority), section(msg.additional))


# Relative names (below the zone) and types: every kind of answer.
ASKS = [("", "SOA"), ("", "NS"), ("", "A"), ("ns.dns", "A"), ("dns-version", "TXT"),
        ("svc", "A"), ("testns.svc", "A"), ("nope.svc", "A"),
        ("svc1.testns.svc", "A"), ("svc1.testns.svc", "SRV"),
        ("_http._tcp.svc1.testns.svc", "SRV"), ("svc6.testns.svc", "AAAA"),
        ("hdls1.testns.svc", "A"), ("hdls1.testns.svc", "SRV"),
        ("dup-name.hdls1.testns.svc", "A"), ("_http._tcp.hdls1.testns.svc", "SRV"),
        ("external.testns.svc", "CNAME"),
        ("nope.testns.svc", "A"), ("hdls-empty.testns.svc", "A"),
        ("1-2-3-4.testns.pod", "A"), ("10-240-0-1.podns.pod", "A"), ("1-2-3-4.nope.pod", "A")]


@pytest.fixture(scope="module")
def snap():
    return snap_of(FIXTURES, Config(pods="verified", extra_zones=EXTRA))


@pytest.mark.parametrize("rel, rdtype", ASKS)
def test_every_zone_answers_like_the_first(snap, rel, rdtype):
    def name(zone):
        return f"{rel}.{zone}." if rel else f"{zone}."
    first = as_text(ask(snap, name("cluster.local"), rdtype), "cluster.local.")
    for zone in EXTRA:
        assert as_text(ask(snap, name(zone), rdtype), zone + ".") == first, zone


def test_srv_targets_and_name_servers_are_in_the_zone_asked(snap):
    srv = ask(snap, "_http._tcp.hdls1.testns.svc.example.internal.", "SRV")
    assert {rd.target.to_text() for rd in srv.answer[0]} >= {
        "dup-name.hdls1.testns.svc.example.internal."}
    assert all(rs.name.is_subdomain(srv.question[0].name.parent().parent())
               for rs in srv.additional)
    ns = ask(snap, "k8s.test.", "NS")
    assert [rd.target.to_text() for rd in ns.answer[0]] == ["ns.dns.k8s.test."]
    assert [rs.name.to_text() for rs in ns.additional] == ["ns.dns.k8s.test."]


def test_ptr_records_name_the_first_zone(snap):
    msg = ask(snap, "1.0.0.10.in-addr.arpa.", "PTR")
    assert [rd.target.to_text() for rs in msg.answer for rd in rs] == [
        "svc1.testns.svc.cluster.local."]


def test_an_external_name_into_another_of_our_zones_is_followed(tmp_path):
    from helpers.manifests import service, write
    write(tmp_path, "a.yaml",
          service("web", "a", cluster_ip="10.96.0.5"),
          service("alias", "b", type="ExternalName", ports=(),
                  externalName="web.a.svc.example.internal"))
    s = snap_of(tmp_path, Config(extra_zones=("example.internal",)))
    msg = ask(s, "alias.b.svc.cluster.local.", "A")
    assert [rr.to_text() for rr in msg.answer] == [
        "alias.b.svc.cluster.local. 5 IN CNAME web.a.svc.example.internal.",
        "web.a.svc.example.internal. 5 IN A 10.96.0.5"]


@pytest.mark.parametrize("value, needle", [
    (["cluster.local"], "is, or is nested with, the zone cluster.local"),
    (["svc.cluster.local"], "nested"),
    (["a.example", "b.a.example"], "b.a.example is, or is nested with, the zone a.example"),
    (["10.in-addr.arpa"], "is a reverse zone"),
    (["bad..name"], "not a domain name"),
])
def test_bad_extra_zones_are_config_errors(value, needle):
    with pytest.raises(ConfigError, match=needle):
        parse({"extra_zones": value})


def test_process_dig_in_both_zones_from_yaml_and_corefile(tmp_path, state_home):
    config = tmp_path / "config.yaml"
    config.write_text("upstream: []\nextra_zones: [example.internal]\n")
    corefile = tmp_path / "Corefile"
    corefile.write_text(".:53 {\n    kubernetes cluster.local example.internal in-addr.arpa "
                        "ip6.arpa\n}\n")
    for args in (["--config", str(config)], ["--corefile", str(corefile)]):
        srv = ServerProcess(ZONES, state_home=state_home, args=args, hermetic=False,
                            logdir=tmp_path / args[0][2:]).start()
        try:
            a = srv.dig_short("kubernetes.default.svc.cluster.local")
            assert a and srv.dig_short("kubernetes.default.svc.example.internal") == a
            srv_records = srv.dig_short("_https._tcp.kubernetes.default.svc.example.internal",
                                        "SRV")
            assert srv_records == ["0 100 443 kubernetes.default.svc.example.internal."]
            assert srv.dig_short("example.internal", "SOA")[0].startswith(
                "ns.dns.example.internal. hostmaster.example.internal. ")
            assert srv.query("nope.default.svc.example.internal.").rcode() == \
                dns.rcode.NXDOMAIN
            # PTR names the first zone
            ptr = srv.dig_short("-x", a[0])
            assert ptr == ["kubernetes.default.svc.cluster.local."]
        finally:
            srv.stop()
