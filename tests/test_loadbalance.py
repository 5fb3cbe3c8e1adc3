"""Answer rotation (CoreDNS loadbalance, config key loadbalance): A, AAAA
and MX RRsets in random order in NOERROR answers, every record kept with its
owner, `prefer` networks first; the prepared answers untouched; through a
real server from kubeadm's Corefile (its loadbalance line) asked with dig."""

from __future__ import annotations

import collections
import random
from pathlib import Path

import dns.message
import dns.rcode
import dns.rrset
import pytest

from coredns_py.cluster import fill
from coredns_py.config import Config, parse
from coredns_py.errors import ConfigError
from coredns_py.source.folder import ManifestSource
from coredns_py.stages import loadbalance
from coredns_py.zone import answer, snapshot
from coredns_py.zone.prepared import PreparedAnswers

from conftest import ZONES, corefile_server

FIXTURES = Path(__file__).parent / "fixtures" / "answer"
TRIES = 300  # P(an address of 6 never first) = 6 * (5/6)^300: never


@pytest.fixture(scope="module")
def snap():
    config = Config()
    loaded = ManifestSource(FIXTURES).load()
    return snapshot.build(fill.build(loaded.objects, config, None), config, 1, ("127.0.0.1",))


def response(snap, name: str, rdtype: str, proto: str = "tcp") -> tuple[bytes, bytes]:
    wire = dns.message.make_query(name, rdtype, use_edns=0).to_wire()
    return wire, answer.answer(snap, wire, proto)


def by_owner(msg: dns.message.Message) -> list:
    """Each section as {(owner, type): sorted data}: what must not change."""
    def section(rrsets):
        out = collections.defaultdict(list)
        for rs in rrsets:
            out[(rs.name.to_text().lower(), rs.rdtype, rs.ttl)] += [rd.to_text() for rd in rs]
        return {k: sorted(v) for k, v in out.items()}
    return [section(msg.answer), section(msg.authority), section(msg.additional)]


def orders(out: bytes) -> tuple:
    msg = dns.message.from_wire(out)
    return tuple(tuple(rd.to_text() for rd in rs) for sec in (msg.answer, msg.additional)
                 for rs in sec)


@pytest.mark.parametrize("name, rdtype", [
    ("hdls1.testns.svc.cluster.local.", "A"),
    ("hdls1.testns.svc.cluster.local.", "AAAA"),
    ("hdls1.testns.svc.cluster.local.", "SRV"),
    ("_http._tcp.hdls1.testns.svc.cluster.local.", "SRV"),
    ("big.bigns.svc.cluster.local.", "A"),
])
def test_shuffled_records_keep_their_owner_and_every_order_comes(snap, name, rdtype):
    query, original = response(snap, name, rdtype)
    kept = bytes(original)
    want = by_owner(dns.message.from_wire(original))
    firsts = collections.Counter()
    seen = set()
    for _ in range(TRIES):
        out = loadbalance.shuffle(original, query=query)
        msg = dns.message.from_wire(out)
        assert by_owner(msg) == want
        assert len(out) == len(original) and out[:12] == original[:12]
        seen.add(orders(out))
        firsts[msg.answer[0][0].to_text()] += 1 if rdtype in ("A", "AAAA") else 0
    assert original == kept  # the response given was not changed in place
    assert len(seen) > 1
    size = len(dns.message.from_wire(original).answer[0])
    if rdtype in ("A", "AAAA") and size <= 6:
        assert len(firsts) == size


def test_answers_without_two_records_nor_noerror_are_left_as_they_are(snap):
    for name, rdtype in [("svc1.testns.svc.cluster.local.", "A"),  # one record
                         ("nope.testns.svc.cluster.local.", "A"),  # NXDOMAIN
                         ("cluster.local.", "SOA")]:
        query, original = response(snap, name, rdtype)
        assert loadbalance.shuffle(original, query=query) is original
    # an NXDOMAIN from upstream with several addresses (a broken one) too
    msg = dns.message.make_response(dns.message.make_query("x.example.", "A"))
    msg.answer.append(dns.rrset.from_text("x.example.", 5, "IN", "A", "192.0.2.1",
                                          "192.0.2.2"))
    msg.set_rcode(dns.rcode.NXDOMAIN)
    wire = msg.to_wire()
    assert loadbalance.shuffle(wire) is wire
    # a zone transfer's messages are never reordered
    xfr = dns.message.make_response(dns.message.make_query("cluster.local.", "AXFR"))
    xfr.answer.append(dns.rrset.from_text("a.cluster.local.", 5, "IN", "A", "192.0.2.1",
                                          "192.0.2.2"))
    wire = xfr.to_wire()
    assert loadbalance.shuffle(wire) is wire


def test_prefer_puts_those_networks_first(snap):
    query, original = response(snap, "big.bigns.svc.cluster.local.", "A")
    prefer = parse({"loadbalance_prefer": ["10.1.0.96/30", "10.1.0.7"]}).loadbalance_prefer
    import ipaddress
    nets = tuple(ipaddress.ip_network(p) for p in prefer)
    for _ in range(20):
        msg = dns.message.from_wire(loadbalance.shuffle(original, nets, query))
        addrs = [rd.address for rd in msg.answer[0]]
        assert sorted(addrs[:4]) == ["10.1.0.96", "10.1.0.97", "10.1.0.98", "10.1.0.99"]
        assert addrs[4] == "10.1.0.7"


def test_mx_records_are_shuffled_in_an_answer_written_again():
    q = dns.message.make_query("example.org.", "MX")
    msg = dns.message.make_response(q)
    msg.answer.append(dns.rrset.from_text("example.org.", 60, "IN", "MX", "10 a.example.org.",
                                          "20 b.example.org.", "30 c.example.org."))
    msg.additional.append(dns.rrset.from_text("a.example.org.", 60, "IN", "A", "192.0.2.1"))
    msg.additional.append(dns.rrset.from_text("b.example.org.", 60, "IN", "A", "192.0.2.2",
                                              "192.0.2.3"))
    wire = msg.to_wire()
    want = by_owner(msg)
    seen = set()
    for _ in range(100):
        out = dns.message.from_wire(loadbalance.shuffle(wire, query=q.to_wire(), proto="udp"))
        assert by_owner(out) == want
        seen.add(tuple(rd.to_text() for rd in out.answer[0]))
    assert len(seen) == 6  # every order of three


def test_prepared_answers_stay_exact_under_the_stage(snap):
    """The stage shuffles copies: what PreparedAnswers keeps and gives is
    still what answer() says, byte for byte."""
    cache = PreparedAnswers()
    handler = loadbalance.stage()(lambda wire, proto, peer: cache.answer(snap, wire, proto))
    query = dns.message.make_query("big.bigns.svc.cluster.local.", "A").to_wire()
    outs = {handler(query, "tcp", ("127.0.0.1", 1)) for _ in range(20)}
    assert len(outs) > 1
    assert cache.answer(snap, query, "tcp") == answer.answer(snap, query, "tcp")
    assert cache.hits >= 20


def test_config_and_corefile(tmp_path):
    assert parse({"loadbalance": "round_robin"}).loadbalance == "round_robin"
    with pytest.raises(ConfigError, match="round_robin"):
        parse({"loadbalance": "weighted"})
    from coredns_py import corefile
    path = tmp_path / "Corefile"
    path.write_text(".:53 {\n  kubernetes cluster.local\n  loadbalance {\n"
                    "    prefer 10.0.0.0/8 fd00::/8\n  }\n}\n")
    cfg = corefile.load(path).config
    assert (cfg.loadbalance, cfg.loadbalance_prefer) == ("round_robin",
                                                          ("10.0.0.0/8", "fd00::/8"))
    for body, needle in [("loadbalance weighted w.txt", ":3: loadbalance weighted w.txt"),
                         ("loadbalance {\n prefer nope\n }", ":4: config key loadbalance_prefer")]:
        path.write_text(f".:53 {{\n  kubernetes cluster.local\n  {body}\n}}\n")
        with pytest.raises(ConfigError, match=needle):
            corefile.load(path)


def test_process_dig_sees_every_order(tmp_path, state_home):
    srv = corefile_server(ZONES, ".:53 {\n    kubernetes cluster.local in-addr.arpa ip6.arpa\n"
                          "    loadbalance\n}\n", tmp_path, state_home)
    try:
        # zones/08-statefulset: nginx is headless with two pods
        name = "nginx.default.svc.cluster.local"
        first = srv.dig_short(name)
        assert len(first) == 2
        firsts, seen = set(), set()
        for _ in range(40):
            got = srv.dig_short(name, "+tcp" if random.random() < 0.5 else "+notcp")
            assert sorted(got) == sorted(first)
            firsts.add(got[0])
            seen.add(tuple(got))
        assert len(firsts) == 2 and len(seen) == 2
    finally:
        srv.stop()
