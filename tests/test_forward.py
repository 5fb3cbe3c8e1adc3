"""Forwarding names outside our zones: the upstream client, the ACL, the
config keys, the transports' asynchronous answers, and the whole server
against real upstreams (dnsmasq on 127.0.0.2, a second coredns-py on
127.0.0.3).

In-process tests drive ``answer()`` and :class:`Forwarder` with a scriptable
upstream in the same event loop (``FakeUpstream``); process tests run
``coredns-py serve`` and ask it with dig and dnspython, as a user would.
Only loopback addresses; no test reaches the host's resolver: every config
here names its upstreams.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import sys
import time
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from coredns_py.zone import answer as answer_mod
from coredns_py.zone.wire import EDNS_PAYLOAD
from coredns_py import config as config_mod
from coredns_py.net.handler import PendingAnswers
from coredns_py.net.listeners import start
from coredns_py.net.tcp import TcpProtocol
from coredns_py.net.udp import UdpProtocol
from coredns_py.resolver import upstreams
from coredns_py.resolver.acl import Acl
from coredns_py.resolver.cache import Cache
from coredns_py.errors import ConfigError, ListenError
from coredns_py.resolver.forward import Forwarder, from_config
from helpers.tcp import frame
from coredns_py.resolver.upstreams import Upstream

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "forward"))
from forward_helpers import (CLUSTER, Blackhole, FakeUpstream, running_dnsmasq,  # noqa: E402
                             a_records, dead_port, free_port, reply, snapshot_of, write_config)
from conftest import FIXTURES as PROCESS_FIXTURES, ServerProcess  # noqa: E402
from helpers.fake_transport import connect  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LOCAL_PEER = ("127.0.0.1", 40000)
STRANGER = ("203.0.113.5", 40000)  # TEST-NET-3: outside every default network
ALL_NETWORKS = config_mod.DEFAULT_ALLOW_RECURSION

def run(coro, timeout: float = 30.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(scope="module")
def snap():
    return snapshot_of(CLUSTER)


def forwarder(*ups, cache_size: int = 0, timeout: float = 1.0, deadline: float = 3.0,
              networks=ALL_NETWORKS) -> Forwarder:
    targets = [Upstream(u.host, u.port) if not isinstance(u, Upstream) else u for u in ups]
    cache = Cache(cache_size, 3600) if cache_size else None
    return Forwarder(targets, Acl(networks), cache, timeout=timeout, deadline=deadline)


async def ask(fwd, snap, name, rdtype="A", *, peer=LOCAL_PEER, proto="udp", **make):
    """Query through answer() and the forwarder, as Server.handle does."""
    q = dns.message.make_query(name, rdtype, **make)
    out = answer_mod.answer(snap, q.to_wire(), proto, forwarding=True)
    if isinstance(out, answer_mod.Forward):
        out = fwd.complete(out, peer)
        if not isinstance(out, bytes):
            out = await out
    return dns.message.from_wire(out), q


def values(msg, rdtype=None) -> list[str]:
    return sorted(f"{rs.name} {dns.rdatatype.to_text(rs.rdtype)} {rd}" for rs in msg.answer
                  for rd in rs if rdtype is None or rs.rdtype == rdtype)


# --- upstream addresses and resolv.conf --------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("10.0.0.1", Upstream("10.0.0.1", 53)),
    ("10.0.0.1:5300", Upstream("10.0.0.1", 5300)),
    ("2001:db8::1", Upstream("2001:db8::1", 53)),
    ("[2001:DB8::1]:5300", Upstream("2001:db8::1", 5300)),
    ("[::1]", Upstream("::1", 53)),
])
def test_parse_upstream_address(text, expected):
    assert upstreams.parse_address(text) == expected


@pytest.mark.parametrize("text", ["dns.google", "10.0.0.1:", "10.0.0.1:0", "10.0.0.1:70000",
                                  "[::1", "[::1]53", "0.0.0.0", "::", "10.0.0.1:dns"])
def test_parse_upstream_address_errors(text):
    with pytest.raises(ValueError):
        upstreams.parse_address(text)


def test_read_resolv_conf(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# generated\nsearch example.test\nnameserver 127.0.0.53\n"
                    "nameserver 2001:db8::35 # second\n; comment\nnameserver fe80::1%eth0\n"
                    "nameserver not-an-ip\nnameserver 0.0.0.0\noptions ndots:5\n"
                    "nameserver 10.0.0.2\n")
    assert upstreams.read_resolv_conf(conf) == [
        Upstream("127.0.0.53"), Upstream("2001:db8::35"), Upstream("10.0.0.2")]


def test_resolve_never_uses_our_own_listen_address(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.1\nnameserver 127.0.0.53\n")
    ups, warnings = upstreams.resolve([str(conf), "127.0.0.1:5353", "127.0.0.2:5353"],
                                      [("127.0.0.1", 53), ("127.0.0.1", 5353)])
    assert ups == [Upstream("127.0.0.53"), Upstream("127.0.0.2", 5353)]
    assert len(warnings) == 2 and all("own listen address" in w for w in warnings)


def test_resolve_wildcard_listen_excludes_every_local_address():
    # listening on 0.0.0.0:53 receives what is sent to 127.0.0.9:53 too
    ups, warnings = upstreams.resolve(["127.0.0.9", "127.0.0.9:5300", "::1"],
                                      [("0.0.0.0", 53)])
    assert ups == [Upstream("127.0.0.9", 5300), Upstream("::1")]
    assert "127.0.0.9:53" in warnings[0]


def test_resolve_reports_unreadable_or_empty_files(tmp_path):
    empty = tmp_path / "empty.conf"
    empty.write_text("search x\n")
    ups, warnings = upstreams.resolve([str(tmp_path / "missing.conf"), str(empty),
                                       "127.0.0.2", "127.0.0.2"], [])
    assert ups == [Upstream("127.0.0.2")]
    assert "cannot read" in warnings[0] and "no usable nameserver" in warnings[1]


# --- config keys ---------------------------------------------------------------------


def test_config_defaults_forward_to_the_hosts_resolver():
    cfg = config_mod.Config()
    assert cfg.upstream == ("/etc/resolv.conf",)
    assert set(cfg.allow_recursion) == {"127.0.0.0/8", "::1/128", "10.0.0.0/8",
                                        "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"}
    assert (cfg.cache_size, cfg.cache_max_ttl) == (10000, 3600)


def test_shipped_config_documents_every_key_with_its_default():
    path = ROOT / "config" / "coredns_py.yaml"
    text = path.read_text()
    for field in ("upstream", "allow_recursion", "cache_size", "cache_max_ttl"):
        assert re.search(rf"^{field}:", text, re.M), field
    assert config_mod.load(path) == config_mod.Config()
    assert "CAP_NET_BIND_SERVICE" in text and "172.17.0.1" in text  # port 53 howto


def test_config_parse_forwarding_keys():
    cfg = config_mod.parse({"upstream": ["127.0.0.2:5300", "[::1]", "/etc/resolv.conf",
                                         "127.0.0.2:5300"],
                            "allow_recursion": ["192.0.2.7", "10.0.0.0/8"],
                            "cache_size": 0, "cache_max_ttl": 60})
    assert cfg.upstream == ("127.0.0.2:5300", "[::1]:53", "/etc/resolv.conf")
    assert cfg.allow_recursion == ("192.0.2.7/32", "10.0.0.0/8")
    assert config_mod.parse({"upstream": []}).upstream == ()
    assert config_mod.parse({"upstream": "10.0.0.1"}).upstream == ("10.0.0.1:53",)


@pytest.mark.parametrize("data, key", [
    ({"upstream": "resolv.conf"}, "upstream"),      # relative path: not an address
    ({"upstream": [53]}, "upstream"),
    ({"upstream": "10.0.0.1:99999"}, "upstream"),
    ({"upstream": [f"10.0.0.{i}" for i in range(16)]}, "upstream"),
    ({"allow_recursion": ["10.0.0.1/8"]}, "allow_recursion"),
    ({"allow_recursion": "everyone"}, "allow_recursion"),
    ({"cache_size": -1}, "cache_size"),
    ({"cache_size": "10"}, "cache_size"),
    ({"cache_max_ttl": 10 ** 9}, "cache_max_ttl"),
    ({"cache_max_ttl": True}, "cache_max_ttl"),
    ({"forward": True}, "forward"),                 # unknown keys stay errors
])
def test_config_parse_errors_name_key_and_file(data, key):
    with pytest.raises(ConfigError) as err:
        config_mod.parse(data, "my.yaml")
    assert key in str(err.value) and "my.yaml" in str(err.value)


# --- who may recurse -----------------------------------------------------------------------


@pytest.mark.parametrize("peer, allowed", [
    (("127.0.0.1", 1), True), (("127.3.4.5", 1), True), (("::1", 1, 0, 0), True),
    (("10.1.2.3", 1), True), (("172.17.0.2", 1), True), (("172.32.0.1", 1), False),
    (("192.168.1.9", 1), True), (("fd00::5", 1, 0, 0), True), (("::ffff:10.0.0.1", 1, 0, 0), True),
    (("fe80::1%eth0", 1, 0, 2), False), (("203.0.113.5", 1), False), (("8.8.8.8", 53), False),
    (("2001:db8::1", 1, 0, 0), False), (None, False), (("not-an-ip", 1), False),
])
def test_default_acl(peer, allowed):
    assert Acl(ALL_NETWORKS).allows(peer) is allowed


def test_acl_open_and_empty():
    assert Acl(["0.0.0.0/0"]).open and not Acl(ALL_NETWORKS).open
    assert not Acl([]).allows(("127.0.0.1", 1))
    assert Acl([]).describe() == "no client"


# --- forwarding in process -----------------------------------------------------------------


def test_foreign_name_forwarded_with_upstream_rcode_flags_and_sections(snap):
    def responder(q, proto):
        name = q.question[0].name.to_text()
        if name.startswith("norecurse"):
            return reply(q, answer=(f"{name} 60 IN A 192.0.2.2",), set_flags=dns.flags.AA,
                         clear_flags=dns.flags.RA)
        if name.startswith("nx"):
            return reply(q, rcode=dns.rcode.NXDOMAIN,
                         authority=("example. 60 IN SOA ns.example. h.example. 1 2 3 4 30",))
        if name.startswith("refused"):
            return reply(q, rcode=dns.rcode.REFUSED, clear_flags=dns.flags.RA)
        return reply(q, answer=(f"{name} 300 IN A 192.0.2.1",),
                     additional=("extra.example. 300 IN A 192.0.2.99",))

    async def main():
        async with FakeUpstream(responder=responder) as up:
            fwd = forwarder(up)
            r, _ = await ask(fwd, snap, "www.example.")
            assert r.rcode() == dns.rcode.NOERROR
            assert values(r) == ["www.example. A 192.0.2.1"]
            assert [rs.name.to_text() for rs in r.additional] == ["extra.example."]
            assert r.flags & dns.flags.RA and not r.flags & dns.flags.AA
            r, _ = await ask(fwd, snap, "norecurse.example.")
            assert r.flags & dns.flags.AA and not r.flags & dns.flags.RA  # as the upstream said
            r, _ = await ask(fwd, snap, "nx.example.")
            assert r.rcode() == dns.rcode.NXDOMAIN and r.flags & dns.flags.RA
            assert r.authority[0].rdtype == dns.rdatatype.SOA
            r, _ = await ask(fwd, snap, "refused.example.")
            assert r.rcode() == dns.rcode.REFUSED and not r.flags & dns.flags.RA
    run(main())


def test_id_question_rd_and_cd_are_the_clients(snap):
    async def main():
        async with FakeUpstream() as up:
            fwd = forwarder(up)
            q = dns.message.make_query("WwW.ExAmple.", "A", use_edns=0, want_dnssec=True)
            q.flags = dns.flags.CD  # no RD, CD set
            out = answer_mod.answer(snap, q.to_wire(), "udp", forwarding=True)
            wire = await fwd.complete(out, LOCAL_PEER)
            r = dns.message.from_wire(wire)
            assert r.id == q.id
            question = dns.name.from_text("WwW.ExAmple.").to_wire() + b"\x00\x01\x00\x01"
            assert wire[12:12 + len(question)] == question  # byte for byte, case kept
            assert not r.flags & dns.flags.RD and r.flags & dns.flags.CD
            assert r.ednsflags & dns.flags.DO
            # what went upstream: recursion desired, the client's DO and CD, EDNS 1232
            sent = up.queries[0][1]
            assert sent.flags & dns.flags.RD and sent.flags & dns.flags.CD
            assert sent.ednsflags & dns.flags.DO and sent.payload == EDNS_PAYLOAD
    run(main())


def test_truncated_upstream_answer_is_retried_over_tcp(snap):
    big = tuple(f"big.example. 300 IN A 198.51.100.{i}" for i in range(1, 151))

    def responder(q, proto):
        if proto == "udp":
            return reply(q, set_flags=dns.flags.RA | dns.flags.TC)
        return reply(q, answer=big)

    async def main():
        async with FakeUpstream(responder=responder) as up:
            fwd = forwarder(up, cache_size=100)
            r, _ = await ask(fwd, snap, "big.example.", proto="tcp")
            assert len(values(r)) == 150 and not r.flags & dns.flags.TC
            assert [p for p, _ in up.queries] == ["udp", "tcp"]
            # a UDP client without EDNS gets what fits in 512 bytes, with TC
            r, q = await ask(fwd, snap, "big.example.")
            assert r.flags & dns.flags.TC and len(r.to_wire()) <= 512
            assert len(up.queries) == 2  # from the cache
    run(main())


def test_failover_when_an_upstream_refuses_connections(snap):
    async def main():
        async with FakeUpstream() as up:
            fwd = forwarder(Upstream("127.0.0.1", dead_port("127.0.0.1")), up)
            started = time.monotonic()
            r, _ = await ask(fwd, snap, "www.example.")
            assert values(r) == ["www.example. A 192.0.2.1"]
            assert time.monotonic() - started < 0.5  # ICMP refused: no timeout to wait for
    run(main())


def test_failover_after_a_timeout_then_the_dead_upstream_goes_last(snap, caplog):
    async def main():
        with Blackhole() as hole:
            async with FakeUpstream() as up:
                fwd = forwarder(hole, up, timeout=0.4, deadline=3.0)
                started = time.monotonic()
                r, _ = await ask(fwd, snap, "one.example.")
                took = time.monotonic() - started
                assert values(r) == ["one.example. A 192.0.2.1"]
                assert 0.35 <= took < 2.0, took
                started = time.monotonic()
                r, _ = await ask(fwd, snap, "two.example.")
                assert values(r) == ["two.example. A 192.0.2.1"]
                assert time.monotonic() - started < 0.3  # the blackhole is tried last now
    with caplog.at_level(logging.WARNING, logger="coredns_py.forward"):
        run(main())
    assert "failed (no answer in time)" in caplog.text
    assert caplog.text.count("failed") == 1  # logged once, not per query


def test_servfail_when_no_upstream_answers(snap):
    async def main():
        with Blackhole() as hole:
            dead = Upstream("127.0.0.1", dead_port("127.0.0.1"))
            fwd = forwarder(hole, dead, timeout=0.3, deadline=1.0)
            started = time.monotonic()
            r, _ = await ask(fwd, snap, "www.example.", use_edns=0)
            took = time.monotonic() - started
            assert r.rcode() == dns.rcode.SERVFAIL and not r.answer
            assert not r.flags & dns.flags.RA
            ede = [o for o in r.options if o.otype == dns.edns.OptionType.EDE]
            assert ede and ede[0].code == dns.edns.EDECode.NO_REACHABLE_AUTHORITY
            assert took < 1.5, took  # within the deadline
            # refused-only upstreams fail at once, with no EDNS a plain SERVFAIL
            fwd = forwarder(dead, timeout=0.3, deadline=1.0)
            started = time.monotonic()
            r, _ = await ask(fwd, snap, "www.example.")
            assert r.rcode() == dns.rcode.SERVFAIL and r.edns < 0
            assert time.monotonic() - started < 0.5
    run(main())


@pytest.mark.parametrize("bad", ["garbage", "wrong-id", "silent"])
def test_broken_upstream_answers_are_ignored(snap, bad):
    def responder(q, proto):
        if bad == "garbage":
            return b"\x00\x01garbage"
        if bad == "wrong-id":
            r = a_records(q, proto)
            r.id = (q.id + 1) % 65536
            return r
        return None

    async def main():
        async with FakeUpstream(responder=responder) as broken, FakeUpstream() as good:
            fwd = forwarder(broken, good, timeout=0.3)
            r, _ = await ask(fwd, snap, "www.example.")
            assert values(r) == ["www.example. A 192.0.2.1"]
    run(main())


def test_strangers_get_refused_and_never_reach_upstream(snap):
    async def main():
        async with FakeUpstream() as up:
            fwd = forwarder(up)
            q = dns.message.make_query("www.example.", "A")
            out = answer_mod.answer(snap, q.to_wire(), "udp", forwarding=True)
            wire = fwd.complete(out, STRANGER)
            assert isinstance(wire, bytes)  # decided at once, no task
            assert dns.message.from_wire(wire).rcode() == dns.rcode.REFUSED
            # an ExternalName pointing outside: the bare CNAME, nothing from upstream
            r, _ = await ask(fwd, snap, "pypi-mirror.default.svc.cluster.local.", peer=STRANGER)
            assert values(r) == [
                "pypi-mirror.default.svc.cluster.local. CNAME pypi.example.test."]
            # cluster names are answered for everybody
            r, _ = await ask(fwd, snap, "web.default.svc.cluster.local.", peer=STRANGER)
            assert values(r) == ["web.default.svc.cluster.local. A 10.96.0.80"]
            assert up.queries == []
            assert fwd.stats["refused"] == 2
    run(main())


def test_externalname_outside_the_zone_answers_cname_then_upstream_records(snap):
    def responder(q, proto):
        name, rdtype = q.question[0].name.to_text(), q.question[0].rdtype
        if name == "pypi.example.test.":
            text = "192.0.2.10" if rdtype == dns.rdatatype.A else "2001:db8::10"
            return reply(q, answer=(f"{name} 300 IN {dns.rdatatype.to_text(rdtype)} {text}",))
        return reply(q, rcode=dns.rcode.NXDOMAIN)

    async def main():
        async with FakeUpstream(responder=responder) as up:
            fwd = forwarder(up)
            name = "pypi-mirror.default.svc.cluster.local."
            r, _ = await ask(fwd, snap, name, "A")
            assert [rs.rdtype for rs in r.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
            assert values(r) == [f"{name} CNAME pypi.example.test.",
                                 "pypi.example.test. A 192.0.2.10"]
            assert r.rcode() == dns.rcode.NOERROR
            assert r.flags & dns.flags.AA and not r.flags & dns.flags.RA  # our answer
            r, _ = await ask(fwd, snap, name, "AAAA")
            assert values(r, dns.rdatatype.AAAA) == ["pypi.example.test. AAAA 2001:db8::10"]
            # the target does not exist upstream: the CNAME alone (as CoreDNS)
            r, _ = await ask(fwd, snap, "dangling.default.svc.cluster.local.", "A")
            assert r.rcode() == dns.rcode.NOERROR
            assert values(r) == ["dangling.default.svc.cluster.local. CNAME nope.example.test."]
            assert up.names() == ["pypi.example.test.", "pypi.example.test.", "nope.example.test."]

    run(main())


def test_externalname_with_no_upstream_answering_is_servfail(snap):
    async def main():
        fwd = forwarder(Upstream("127.0.0.1", dead_port("127.0.0.1")))
        r, _ = await ask(fwd, snap, "pypi-mirror.default.svc.cluster.local.", "A")
        assert r.rcode() == dns.rcode.SERVFAIL and not r.answer
    run(main())


def test_identical_questions_in_flight_share_one_upstream_query(snap):
    async def main():
        async with FakeUpstream() as up:
            fwd = forwarder(up)  # no cache: only the merging can save queries
            pending = []
            for i in range(20):
                q = dns.message.make_query("same.example.", "A")
                out = answer_mod.answer(snap, q.to_wire(), "udp", forwarding=True)
                pending.append(fwd.complete(out, LOCAL_PEER))
            answers = [dns.message.from_wire(w) for w in await asyncio.gather(*pending)]
            assert all(values(r) == ["same.example. A 192.0.2.1"] for r in answers)
            assert len(up.queries) == 1
            r, _ = await ask(fwd, snap, "same.example.", "AAAA")  # another question: asked
            assert len(up.queries) == 2
    run(main())


def test_our_own_answers_keep_ra_clear_with_forwarding_on(snap):
    # CoreDNS's kubernetes plugin answers cluster names "qr aa rd": RA is only
    # set in answers that really came through recursion (the upstream's RA).
    for name in ("web.default.svc.cluster.local.", "nosuch.default.svc.cluster.local.",
                 "80.0.96.10.in-addr.arpa."):
        q = dns.message.make_query(name, "PTR" if "arpa" in name else "A")
        out = answer_mod.answer(snap, q.to_wire(), "udp", forwarding=True)
        assert isinstance(out, bytes)
        r = dns.message.from_wire(out)
        assert r.flags & dns.flags.AA and not r.flags & dns.flags.RA, name


@pytest.mark.parametrize("suffix", ["default.svc.cluster.local", "svc.cluster.local",
                                    "cluster.local"])
def test_search_path_expansions_are_answered_locally(snap, suffix):
    # ndots:5 makes a pod ask pypi.org.<search domain> first: our zone says
    # NXDOMAIN at once, from the snapshot, without an upstream.
    q = dns.message.make_query(f"pypi.org.{suffix}.", "A")
    out = answer_mod.answer(snap, q.to_wire(), "udp", forwarding=True)
    assert isinstance(out, bytes)
    r = dns.message.from_wire(out)
    assert r.rcode() == dns.rcode.NXDOMAIN and r.authority[0].rdtype == dns.rdatatype.SOA
    q = dns.message.make_query("pypi.org.", "A")
    assert isinstance(answer_mod.answer(snap, q.to_wire(), "udp", forwarding=True),
                      answer_mod.Forward)


def test_reverse_fallthrough_is_forwarded(snap):
    """A reverse name that is no cluster IP goes upstream (CoreDNS's stock
    ``fallthrough in-addr.arpa ip6.arpa``): answer() returns a Forward with a
    fresh response to fill, and our NXDOMAIN as ``local`` for strangers."""
    def responder(q, proto):
        return reply(q, answer=(f"{q.question[0].name} 300 IN PTR router.lan.",))

    def fallthrough(query):
        out = answer_mod.answer(snap, query.to_wire(), "udp", forwarding=True)
        assert isinstance(out, answer_mod.Forward)
        assert out.local.rcode() == dns.rcode.NXDOMAIN and not out.response.answer
        # without forwarding, the same query stays our NXDOMAIN
        plain = dns.message.from_wire(answer_mod.answer(snap, query.to_wire(), "udp"))
        assert plain.rcode() == dns.rcode.NXDOMAIN
        return out

    async def main():
        async with FakeUpstream(responder=responder) as up:
            fwd = forwarder(up)
            q = dns.message.make_query("1.1.168.192.in-addr.arpa.", "PTR")
            out = fwd.complete(fallthrough(q), LOCAL_PEER)
            r = dns.message.from_wire(await out)
            assert values(r) == ["1.1.168.192.in-addr.arpa. PTR router.lan."]
            assert r.flags & dns.flags.RA and not r.flags & dns.flags.AA
            r = dns.message.from_wire(fwd.complete(fallthrough(q), STRANGER))
            assert r.rcode() == dns.rcode.NXDOMAIN and r.flags & dns.flags.AA
            assert len(up.queries) == 1
    run(main())


def test_close_cancels_exchanges_in_flight(snap):
    async def main():
        with Blackhole() as hole:
            fwd = forwarder(hole, timeout=5, deadline=5)
            q = dns.message.make_query("www.example.", "A")
            task = asyncio.ensure_future(
                fwd.complete(answer_mod.answer(snap, q.to_wire(), "udp", forwarding=True),
                             LOCAL_PEER))
            await asyncio.sleep(0.1)
            await fwd.close()
            with pytest.raises(asyncio.CancelledError):
                await task
    run(main())


class RecordingMetrics:
    """Stands in for coredns_py.ops.metrics.Metrics: records every hook call."""

    def __init__(self):
        self.calls: list[tuple[str, tuple]] = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name, args))

    def names(self) -> list[str]:
        return [n for n, _ in self.calls]


def test_metrics_hooks(snap):
    async def main():
        metrics = RecordingMetrics()
        async with FakeUpstream() as up:
            dead = Upstream("127.0.0.1", dead_port("127.0.0.1"))
            fwd = Forwarder([dead, Upstream(up.host, up.port)], Acl(ALL_NETWORKS),
                            Cache(1, 3600), metrics=metrics)
            assert metrics.calls[0] == ("cache_entries", (fwd.cache.counts,))
            await ask(fwd, snap, "one.example.")
            await ask(fwd, snap, "one.example.")
            await ask(fwd, snap, "two.example.")  # evicts one (capacity 1)
            # the dead upstream's health checks report from the background
            calls = [c for c in metrics.calls[1:] if c[0] != "forward_healthcheck_failure"]
            assert [n for n, _ in calls] == [
                "cache_miss", "forward_request",
                "forward_request", "forward_response", "cache_hit",
                "cache_miss", "forward_request", "forward_response", "cache_evicted"]
            assert calls[1][1] == (str(dead),) and calls[3][1][:2] == (up.address, 0)
            assert calls[4][1] == (False,)  # a positive answer
            assert fwd.cache.counts() == (1, 0)
            # the failed query started health checks of the dead one, counted
            # as CoreDNS counts them: per failed check
            for _ in range(100):
                if ("forward_healthcheck_failure", (str(dead),)) in metrics.calls:
                    break
                await asyncio.sleep(0.02)
            assert ("forward_healthcheck_failure", (str(dead),)) in metrics.calls
            await fwd.close()
            # every upstream down: "health checking is broken" (CoreDNS's
            # healthcheck_broken), and they are asked anyway
            lone = Forwarder([dead], Acl(ALL_NETWORKS), None, metrics=metrics)
            lone.domains.find(dns.name.root).health[dead].fails = 3
            r, _ = await ask(lone, snap, "three.example.")
            assert r.rcode() == dns.rcode.SERVFAIL
            assert "forward_all_down" in metrics.names()
            await lone.close()
    run(main())


def test_metrics_hooks_with_the_real_metrics(snap):
    from prometheus_client import generate_latest

    from coredns_py.ops.metrics import Metrics

    async def main():
        metrics = Metrics()
        async with FakeUpstream() as up:
            fwd = Forwarder([Upstream(up.host, up.port)], Acl(ALL_NETWORKS), Cache(10, 3600),
                            metrics=metrics)
            for _ in range(2):
                await ask(fwd, snap, "one.example.")
            text = generate_latest(metrics.registry).decode()
            assert f'coredns_forward_requests_total{{to="{up.address}"}} 1.0' in text
            assert re.search(r'coredns_cache_hits_total\{[^}]*type="success"[^}]*\} 1\.0', text)
            assert re.search(r'coredns_cache_misses_total\{[^}]*\} 1\.0', text)
            assert re.search(r'coredns_cache_entries\{[^}]*type="success"[^}]*\} 1\.0', text)
    run(main())


def test_from_config(tmp_path, caplog):
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.1\nnameserver 127.0.0.2\n")
    cfg = config_mod.parse({"upstream": [str(conf)], "cache_size": 5})
    with caplog.at_level(logging.INFO, logger="coredns_py.forward"):
        fwd = from_config(cfg, [("127.0.0.1", 53)])
    assert fwd.upstreams == (Upstream("127.0.0.2"),)
    assert fwd.cache is not None and fwd.cache.capacity == 5
    assert "own listen address" in caplog.text
    assert from_config(config_mod.parse({"upstream": []}), []) is None
    assert from_config(config_mod.parse({"upstream": ["127.0.0.1"]}), [("127.0.0.1", 53)]) is None
    fwd = from_config(config_mod.parse({"upstream": ["127.0.0.2"], "cache_size": 0}), [])
    assert fwd.cache is None


def test_server_never_forwards_to_itself(tmp_path, caplog):
    """The whole server, in process: the configured upstream is its own
    address, so it is dropped and foreign names stay REFUSED (no loop)."""
    from coredns_py.cluster import local
    from coredns_py.server import Server

    async def main():
        for _attempt in range(5):
            port = free_port("127.0.0.1")
            cfg = config_mod.parse({"upstream": [f"127.0.0.1:{port}"],
                                    "state_file": str(tmp_path / "state.json")})
            server = Server(local.from_folder(CLUSTER, cfg), cfg, [("127.0.0.1", port)])
            try:
                await server.start()
                break
            except ListenError:
                continue
        try:
            assert server.forwarder is None
            for _ in range(200):  # the first load runs in the background
                if server.generation is not None:
                    break
                await asyncio.sleep(0.05)
            q = dns.message.make_query("www.example.", "A")
            loop = asyncio.get_running_loop()
            r = await loop.run_in_executor(
                None, lambda: dns.query.udp(q, "127.0.0.1", port=port, timeout=2))
            assert r.rcode() == dns.rcode.REFUSED
        finally:
            await server.stop()

    with caplog.at_level(logging.WARNING):
        run(main())
    assert "own listen address" in caplog.text


def test_serve_logs_who_may_recurse_on_a_non_loopback_address(caplog):
    from coredns_py import cli

    class Fake:
        forwarder = forwarder(Upstream("127.0.0.2"))
        listeners = type("L", (), {"addresses": [("127.0.0.1", 53), ("0.0.0.0", 53)]})()

    with caplog.at_level(logging.INFO, logger="coredns_py"):
        cli._log_recursion(Fake)
    assert "listening on 0.0.0.0" in caplog.text and "10.0.0.0/8" in caplog.text
    caplog.clear()
    Fake.listeners.addresses = [("127.0.0.1", 53), ("::1", 53)]
    with caplog.at_level(logging.INFO, logger="coredns_py"):
        cli._log_recursion(Fake)
    assert caplog.text == ""  # loopback only: nobody else can ask
    Fake.forwarder = Forwarder([Upstream("127.0.0.2")], Acl(["0.0.0.0/0"]))
    Fake.listeners.addresses = [("0.0.0.0", 53)]
    with caplog.at_level(logging.INFO, logger="coredns_py"):
        cli._log_recursion(Fake)
    assert "open resolver" in caplog.text


# --- the transports with answers that take time ------------------------------------------


class Deferred:
    """A handler whose answers to b"later:..." are futures the test resolves."""

    def __init__(self):
        self.futures: dict[bytes, asyncio.Future] = {}

    def __call__(self, query: bytes, proto: str, peer):
        if query.startswith(b"later"):
            fut = asyncio.get_running_loop().create_future()
            self.futures[query] = fut
            return fut
        if query == b"boom-later":
            return self._boom()
        return b"R:" + query

    async def _boom(self):
        raise RuntimeError("upstream code exploded")


async def settle(rounds: int = 5) -> None:
    """Let callbacks scheduled by finished futures run."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def test_tcp_answers_out_of_order_and_pending_cap():
    async def main():
        h = Deferred()
        proto = TcpProtocol(h, idle_timeout=None, max_pending=2)
        fake = connect(proto)
        proto.data_received(frame(b"later1") + frame(b"now") + frame(b"later2")
                            + frame(b"later3") + frame(b"after"))
        assert fake.writes == [frame(b"R:now")]  # answered before later1
        assert set(h.futures) == {b"later1", b"later2"}  # at the cap: stop there
        assert not fake.reading
        h.futures[b"later2"].set_result(b"R:later2")
        await asyncio.sleep(0)
        assert fake.writes[1] == frame(b"R:later2")
        assert b"later3" in h.futures and not fake.reading  # one freed, one taken
        h.futures[b"later1"].set_result(b"R:later1")
        await asyncio.sleep(0)
        assert frame(b"R:after") in fake.writes and fake.reading
        h.futures[b"later3"].set_result(None)  # "send nothing"
        await asyncio.sleep(0)
        assert fake.writes == [frame(b"R:now"), frame(b"R:later2"), frame(b"R:later1"),
                               frame(b"R:after")]
    run(main())


def test_tcp_eof_waits_for_pending_answers_then_closes(caplog):
    async def main():
        h = Deferred()
        proto = TcpProtocol(h, idle_timeout=None)
        fake = connect(proto)
        proto.data_received(frame(b"later1") + frame(b"boom-later") + frame(b"x"))
        proto.eof_received()
        await settle()
        assert not fake.closed  # later1 still being worked out
        h.futures[b"later1"].set_result(b"R:later1")
        await settle()
        assert fake.writes == [frame(b"R:x"), frame(b"R:later1")]
        assert fake.closed
    with caplog.at_level(logging.ERROR, logger="coredns_py.transport"):
        run(main())
    assert "upstream code exploded" in caplog.text


def test_tcp_connection_lost_cancels_pending_answers():
    async def main():
        h = Deferred()
        proto = TcpProtocol(h, idle_timeout=None)
        connect(proto)
        proto.data_received(frame(b"later1"))
        proto.connection_lost(None)
        await asyncio.sleep(0)
        assert h.futures[b"later1"].cancelled()
    run(main())


def test_udp_pending_answers_are_capped_globally():
    async def main():
        h = Deferred()
        pending = PendingAnswers(limit=2)
        socks = [UdpProtocol(h, pending), UdpProtocol(h, pending)]
        fakes = [connect(s) for s in socks]
        socks[0].datagram_received(b"later1", ("127.0.0.1", 1))
        socks[1].datagram_received(b"later2", ("127.0.0.1", 2))
        socks[1].datagram_received(b"later3", ("127.0.0.1", 3))  # over the cap: dropped
        socks[0].datagram_received(b"now", ("127.0.0.1", 4))  # immediate answers still flow
        assert set(h.futures) == {b"later1", b"later2", b"later3"}
        assert h.futures[b"later3"].cancelled()
        assert fakes[0].sent == [(b"R:now", ("127.0.0.1", 4))] and fakes[1].sent == []
        h.futures[b"later2"].set_result(b"R:later2")
        await asyncio.sleep(0)
        assert fakes[0].sent == [(b"R:now", ("127.0.0.1", 4))]
        assert fakes[1].sent == [(b"R:later2", ("127.0.0.1", 2))]
        assert len(pending.tasks) == 1
        socks[0].connection_lost(None)  # socket closed: its pending answer is dropped
        await asyncio.sleep(0)
        assert h.futures[b"later1"].cancelled() and not pending.tasks
    run(main())


def test_handler_result_of_the_wrong_type_costs_one_answer(caplog):
    def handler(query, proto, peer):
        return "not bytes" if query == b"odd" else b"R:" + query

    udp = UdpProtocol(handler)
    dgram = connect(udp)
    tcp = TcpProtocol(handler, idle_timeout=None)
    fake = connect(tcp)
    with caplog.at_level(logging.ERROR, logger="coredns_py.transport"):
        udp.datagram_received(b"odd", ("127.0.0.1", 1))
        udp.datagram_received(b"ok", ("127.0.0.1", 1))
        tcp.data_received(frame(b"odd") + frame(b"ok"))
    assert dgram.sent == [(b"R:ok", ("127.0.0.1", 1))]
    assert fake.writes == [frame(b"R:ok")] and not fake.closed
    assert caplog.text.count("not bytes, None or an awaitable") == 2


def test_real_sockets_async_answers_over_udp_and_tcp():
    async def slow(query: bytes):
        await asyncio.sleep(0.2)
        return b"R:" + query

    def handler(query, proto, peer):
        return slow(query) if query.startswith(b"slow") else b"R:" + query

    async def main():
        async with await start(handler, [("127.0.0.1", 0)]) as listeners:
            host, port = listeners.addresses[0]
            loop = asyncio.get_running_loop()

            def udp():
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.settimeout(3)
                    s.sendto(b"slow-udp", (host, port))
                    return s.recv(100)

            assert await loop.run_in_executor(None, udp) == b"R:slow-udp"
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(frame(b"slow-tcp") + frame(b"fast"))
            got = []
            for _ in range(2):
                n = int.from_bytes(await asyncio.wait_for(reader.readexactly(2), 3), "big")
                got.append(await reader.readexactly(n))
            assert got == [b"R:fast", b"R:slow-tcp"]  # out of order (RFC 7766)
            writer.close()
    run(main())


# --- the whole server against real upstreams -----------------------------------------------


@pytest.fixture(scope="module")
def dnsmasq(tmp_path_factory):
    yield from running_dnsmasq(tmp_path_factory)


def serve(tmp_path_factory, manifests=CLUSTER, **keys) -> ServerProcess:
    """A started coredns-py with a config of these keys (upstreams always named)."""
    base = tmp_path_factory.mktemp("fwd-server")
    (base / "state").mkdir()
    cfg = write_config(base / "config.yaml", **keys)
    srv = ServerProcess(manifests, state_home=base / "state", logdir=base / "log",
                        args=["--config", str(cfg)])
    srv.start()
    return srv


@pytest.fixture(scope="module")
def fwd_server(tmp_path_factory, dnsmasq):
    srv = serve(tmp_path_factory, upstream=[dnsmasq.address])
    yield srv
    srv.stop()


def dig_status(out: str) -> str:
    m = re.search(r"status: ([A-Z]+)", out)
    assert m, out
    return m.group(1)


def dig_flags(out: str) -> set[str]:
    m = re.search(r";; flags: ([a-z ]*);", out)
    assert m, out
    return set(m.group(1).split())


def test_process_forwards_foreign_names(fwd_server, dnsmasq):
    assert fwd_server.dig_short("pypi.example.test", "A") == ["192.0.2.10"]
    assert fwd_server.dig_short("pypi.example.test", "AAAA") == ["2001:db8::10"]
    out = fwd_server.dig("one.example.test", "A")
    assert dig_status(out) == "NOERROR" and {"ra", "rd", "qr"} <= dig_flags(out)
    out = fwd_server.dig("nope.example.test", "A")
    assert dig_status(out) == "NXDOMAIN"
    out = fwd_server.dig("elsewhere.invalid", "A")  # dnsmasq itself refuses it
    assert dig_status(out) == "REFUSED"
    assert dnsmasq.settle("pypi.example.test", "A", 1) == 1


def test_process_cluster_names_stay_local_without_ra(fwd_server, dnsmasq):
    out = fwd_server.dig("web.default.svc.cluster.local", "A")
    assert dig_status(out) == "NOERROR" and "aa" in dig_flags(out)
    assert "ra" not in dig_flags(out)
    assert fwd_server.dig_short("web.default.svc.cluster.local") == ["10.96.0.80"]
    assert not [n for _, n in dnsmasq.queries() if n.endswith("cluster.local")]


def test_process_externalname_to_the_outside(fwd_server):
    assert fwd_server.dig_short("pypi-mirror.default.svc.cluster.local", "A") == [
        "pypi.example.test.", "192.0.2.10"]
    r = fwd_server.query("pypi-mirror.default.svc.cluster.local.", "AAAA")
    assert [rs.rdtype for rs in r.answer] == [dns.rdatatype.CNAME, dns.rdatatype.AAAA]


def test_process_search_path_storm_never_reaches_upstream(fwd_server, dnsmasq):
    started = time.monotonic()
    for suffix in ("default.svc.cluster.local", "svc.cluster.local", "cluster.local"):
        for rdtype in ("A", "AAAA"):
            r = fwd_server.query(f"two.example.test.{suffix}.", rdtype)
            assert r.rcode() == dns.rcode.NXDOMAIN
    assert time.monotonic() - started < 2.0
    assert fwd_server.rrset_values("two.example.test.", "A") == ["192.0.2.12"]
    assert dnsmasq.settle("two.example.test", "A", 1) == 1
    assert not [n for _, n in dnsmasq.queries() if "cluster.local" in n]


def test_process_truncated_upstream_retried_over_tcp(fwd_server, dnsmasq):
    # the client asks over UDP without EDNS: we get TC from dnsmasq, ask it
    # again over TCP, and hand the client 512 bytes with TC
    r = fwd_server.query("big.example.test.", "A")
    assert r.flags & dns.flags.TC and len(r.to_wire()) <= 512
    assert dnsmasq.settle("big.example.test", "A", 2) == 2  # UDP, then TCP
    # dig retries over TCP itself and gets all 150, from our cache
    out = fwd_server.dig_short("+noedns", "big.example.test")
    assert sorted(out) == sorted(f"198.51.100.{i}" for i in range(1, 151))
    assert dnsmasq.count("big.example.test", "A") == 2


def test_process_truncation_from_a_coredns_py_upstream(tmp_path_factory):
    """A second coredns-py serving zone upstream.test, with a 200-address
    headless Service: TC over UDP, the whole answer over TCP."""
    base = tmp_path_factory.mktemp("upstream-coredns")
    (base / "state").mkdir()
    cfg = write_config(base / "config.yaml", zone="upstream.test", upstream=[])
    upstream = ServerProcess(PROCESS_FIXTURES / "big-headless", state_home=base / "state",
                             logdir=base / "log", hosts=("127.0.0.3",),
                             args=["--config", str(cfg)])
    upstream.start()
    try:
        main = serve(tmp_path_factory, upstream=[f"127.0.0.3:{upstream.port}"])
        try:
            big = "big.default.svc.upstream.test."
            expected = sorted(f"10.244.1.{i}" for i in range(1, 201))
            assert main.rrset_values(big, "A", tcp=True) == expected
            r = main.query(big, "A", payload=1232)
            assert r.flags & dns.flags.TC and len(r.to_wire()) <= 1232
            assert sorted(main.dig_short("+bufsize=1232", big)) == expected
            out = main.dig("nosuch.default.svc.upstream.test", "A")
            assert dig_status(out) == "NXDOMAIN"  # the upstream's rcode, its SOA
            assert "upstream.test." in out and "SOA" in out
        finally:
            main.stop()
    finally:
        upstream.stop()


def test_process_failover_from_a_dead_upstream(tmp_path_factory, dnsmasq):
    dead = f"127.0.0.4:{dead_port('127.0.0.4')}"
    srv = serve(tmp_path_factory, upstream=[dead, dnsmasq.address])
    try:
        started = time.monotonic()
        assert srv.dig_short("three.example.test") == ["192.0.2.13"]
        assert time.monotonic() - started < 2.0
    finally:
        srv.stop()


def test_process_failover_from_an_upstream_that_times_out(tmp_path_factory, dnsmasq):
    with Blackhole("127.0.0.5") as hole:
        srv = serve(tmp_path_factory, upstream=[hole.address, dnsmasq.address])
        try:
            started = time.monotonic()
            assert srv.rrset_values("one.example.test.", "A", timeout=8, tries=1) == [
                "192.0.2.11"]
            took = time.monotonic() - started
            assert 1.5 <= took < 4.5, took  # one UPSTREAM_TIMEOUT (2 s), then dnsmasq
            started = time.monotonic()
            assert srv.rrset_values("two.example.test.", "A", timeout=8, tries=1) == [
                "192.0.2.12"]
            assert time.monotonic() - started < 1.0  # the dead one is now tried last
            srv.wait_stderr(r"upstream 127\.0\.0\.5:\d+ failed \(no answer in time\)")
        finally:
            srv.stop()


def test_process_servfail_when_every_upstream_is_dead(tmp_path_factory):
    srv = serve(tmp_path_factory, upstream=[f"127.0.0.4:{dead_port('127.0.0.4')}",
                                            f"127.0.0.6:{dead_port('127.0.0.6')}"])
    try:
        started = time.monotonic()
        out = srv.dig("anything.example.test", "A")
        assert dig_status(out) == "SERVFAIL" and "No Reachable Authority" in out
        assert time.monotonic() - started < 3.0
        assert srv.dig_short("web.default.svc.cluster.local") == ["10.96.0.80"]
        assert srv.alive()
    finally:
        srv.stop()


def test_process_strangers_may_not_recurse(tmp_path_factory, dnsmasq):
    # loopback clients are strangers here: only 10.0.0.0/8 may recurse
    srv = serve(tmp_path_factory, upstream=[dnsmasq.address], allow_recursion=["10.0.0.0/8"])
    try:
        before = len(dnsmasq.queries())
        out = srv.dig("pypi.example.test", "A")
        assert dig_status(out) == "REFUSED" and "ra" not in dig_flags(out)
        assert srv.dig_short("web.default.svc.cluster.local") == ["10.96.0.80"]
        assert srv.dig_short("pypi-mirror.default.svc.cluster.local") == ["pypi.example.test."]
        time.sleep(0.2)
        assert len(dnsmasq.queries()) == before
    finally:
        srv.stop()


def test_process_forwarding_off_refuses_foreign_names(tmp_path_factory):
    srv = serve(tmp_path_factory, upstream=[])
    try:
        assert dig_status(srv.dig("pypi.example.test", "A")) == "REFUSED"
        assert srv.dig_short("pypi-mirror.default.svc.cluster.local") == ["pypi.example.test."]
        srv.wait_stderr("forwarding is off")
    finally:
        srv.stop()
