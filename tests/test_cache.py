"""The cache of upstream answers: keys that never mix questions, RFC 2308
TTLs, a bound that evicts, and the server counted against a real upstream
(dnsmasq logs every query that reaches it).

Unit tests use a fake clock; the process tests use dnsmasq with a 2-second
TTL, so expiry takes real seconds (bounded: about 3 s).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from coredns_py.zone import answer as answer_mod
from coredns_py.resolver.acl import Acl
from coredns_py.resolver.cache import Answer, Cache, cache_ttl, key
from coredns_py.config import DEFAULT_ALLOW_RECURSION
from coredns_py.resolver.forward import Forwarder
from coredns_py.resolver.upstreams import Upstream

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "forward"))
from forward_helpers import (CLUSTER, Dnsmasq, FakeUpstream, reply, running_dnsmasq,  # noqa: E402
                             snapshot_of, write_config)
from conftest import ServerProcess  # noqa: E402

SOA = "example. {ttl} IN SOA ns.example. hostmaster.example. 1 7200 1800 86400 {minimum}"
PEER = ("127.0.0.1", 40000)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def answer_of(rcode=dns.rcode.NOERROR, answer=(), authority=(), additional=(),
              flags=dns.flags.RA) -> Answer:
    q = dns.message.make_query("www.example.", "A")
    return Answer.from_message(reply(q, rcode=rcode, answer=answer, authority=authority,
                                     additional=additional, set_flags=flags))


def name(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


# --- keys and TTLs ------------------------------------------------------------------------


def test_keys_separate_type_do_and_cd_but_not_case():
    base = key(name("www.example."), dns.rdatatype.A, False, False)
    assert key(name("WWW.Example."), dns.rdatatype.A, False, False) == base
    others = [key(name("www.example."), dns.rdatatype.AAAA, False, False),
              key(name("www.example."), dns.rdatatype.A, True, False),
              key(name("www.example."), dns.rdatatype.A, False, True),
              key(name("www2.example."), dns.rdatatype.A, False, False)]
    assert len({base, *others}) == 5


@pytest.mark.parametrize("ans, ttl", [
    (answer_of(answer=("www.example. 300 IN A 192.0.2.1",)), 300),
    (answer_of(answer=("www.example. 300 IN CNAME w.example.", "w.example. 40 IN A 192.0.2.1")),
     40),
    (answer_of(answer=("www.example. 300 IN A 192.0.2.1",),
               additional=("ns.example. 20 IN A 192.0.2.53",)), 20),
    # RFC 2308 section 5: negative answers live min(SOA TTL, SOA MINIMUM)
    (answer_of(rcode=dns.rcode.NXDOMAIN, authority=(SOA.format(ttl=60, minimum=30),)), 30),
    (answer_of(rcode=dns.rcode.NXDOMAIN, authority=(SOA.format(ttl=10, minimum=30),)), 10),
    (answer_of(authority=(SOA.format(ttl=900, minimum=120),)), 120),  # NODATA
    (answer_of(answer=("www.example. 999999 IN A 192.0.2.1",)), 3600),  # capped
    # never cached: negative without SOA, errors, truncated, TTL 0
    (answer_of(rcode=dns.rcode.NXDOMAIN), None),
    (answer_of(), None),
    (answer_of(rcode=dns.rcode.SERVFAIL), None),
    (answer_of(rcode=dns.rcode.REFUSED), None),
    (answer_of(answer=("www.example. 300 IN A 192.0.2.1",), flags=dns.flags.TC), None),
    (answer_of(answer=("www.example. 0 IN A 192.0.2.1",)), None),
])
def test_cache_ttl(ans, ttl):
    assert cache_ttl(ans, 3600) == ttl


def test_served_ttls_count_down_and_entries_expire():
    clock = Clock()
    cache = Cache(10, 3600, clock)
    k = key(name("www.example."), dns.rdatatype.A, False, False)
    original = answer_of(answer=("www.example. 300 IN A 192.0.2.1",),
                         additional=("x.example. 500 IN A 192.0.2.9",))
    assert cache.put(k, original)
    clock.now += 100.5
    got = cache.get(k)
    assert [rs.ttl for rs in got.answer + got.additional] == [199, 199]
    assert original.answer[0].ttl == 300  # the stored answer is untouched
    assert [rd.to_text() for rd in got.answer[0]] == ["192.0.2.1"]
    clock.now += 199.5
    assert cache.get(k) is None and len(cache) == 0  # expired: dropped
    assert (cache.hits, cache.misses) == (1, 1)


def test_full_cache_evicts_the_least_recently_used():
    cache = Cache(3, 3600, Clock())
    keys = [key(name(f"n{i}.example."), dns.rdatatype.A, False, False) for i in range(50)]
    ans = answer_of(answer=("www.example. 300 IN A 192.0.2.1",))
    for k in keys[:3]:
        cache.put(k, ans)
    assert cache.get(keys[0]) is not None  # n0 used: n1 is now the oldest
    cache.put(keys[3], ans)
    assert cache.get(keys[1]) is None
    assert all(cache.get(k) is not None for k in (keys[0], keys[2], keys[3]))
    for k in keys:
        cache.put(k, ans)
        assert len(cache) <= 3  # evicts, never grows
    assert cache.evictions >= 45


def test_counts_split_positive_and_negative_entries():
    cache = Cache(2, 3600, Clock())
    evicted = []
    cache.on_evict = evicted.append
    pos = answer_of(answer=("www.example. 300 IN A 192.0.2.1",))
    neg = answer_of(rcode=dns.rcode.NXDOMAIN, authority=(SOA.format(ttl=60, minimum=30),))
    k = [key(name(f"n{i}.example."), dns.rdatatype.A, False, False) for i in range(3)]
    cache.put(k[0], neg)
    cache.put(k[1], pos)
    assert cache.counts() == (1, 1)
    cache.put(k[1], neg)  # replaced: still one entry for that key
    assert cache.counts() == (0, 2)
    cache.put(k[2], pos)  # full: the oldest, a denial, goes
    assert evicted == [True] and cache.counts() == (1, 1)
    cache.clear()
    assert cache.counts() == (0, 0)


def test_zero_capacity_caches_nothing():
    cache = Cache(0, 3600)
    k = key(name("www.example."), dns.rdatatype.A, False, False)
    assert not cache.put(k, answer_of(answer=("www.example. 300 IN A 192.0.2.1",)))
    assert cache.get(k) is None


# --- the forwarder with the cache ---------------------------------------------------------


def run(coro, timeout: float = 20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(scope="module")
def snap():
    return snapshot_of(CLUSTER)


def variant_responder(q, proto):
    """A different address per question kind, so a mixed-up answer shows."""
    qn, qt = q.question[0].name.to_text().lower(), q.question[0].rdtype
    if qn.startswith("nx-soa"):
        return reply(q, rcode=dns.rcode.NXDOMAIN, authority=(SOA.format(ttl=60, minimum=30),))
    if qn.startswith("nx"):
        return reply(q, rcode=dns.rcode.NXDOMAIN)
    last = 1 + bool(q.ednsflags & dns.flags.DO) + 2 * bool(q.flags & dns.flags.CD)
    if qt == dns.rdatatype.AAAA:
        return reply(q, answer=(f"{qn} 300 IN AAAA 2001:db8::{last}",))
    return reply(q, answer=(f"{qn} 300 IN A 192.0.2.{last}",))


async def ask(fwd, snap, qname, rdtype="A", *, do=False, cd=False):
    q = dns.message.make_query(qname, rdtype, use_edns=0 if do else None, want_dnssec=do)
    if cd:
        q.flags |= dns.flags.CD
    out = answer_mod.answer(snap, q.to_wire(), "udp", forwarding=True)
    if isinstance(out, answer_mod.Forward):
        out = fwd.complete(out, PEER)
        if not isinstance(out, bytes):
            out = await out
    r = dns.message.from_wire(out)
    return r, sorted(rd.to_text() for rs in r.answer for rd in rs)


def make_forwarder(up, clock=None, capacity=100) -> Forwarder:
    cache = Cache(capacity, 3600, clock or Clock())
    return Forwarder([Upstream(up.host, up.port)], Acl(DEFAULT_ALLOW_RECURSION), cache)


def test_second_query_served_from_cache_until_it_expires(snap):
    async def main():
        clock = Clock()
        async with FakeUpstream(responder=variant_responder) as up:
            fwd = make_forwarder(up, clock)
            r, got = await ask(fwd, snap, "www.example.")
            assert got == ["192.0.2.1"] and r.answer[0].ttl == 300
            clock.now += 120
            r, got = await ask(fwd, snap, "WWW.EXAMPLE.")  # case does not matter
            assert got == ["192.0.2.1"] and r.answer[0].ttl == 180
            assert r.question[0].name.to_text() == "WWW.EXAMPLE."  # the client's question
            assert len(up.queries) == 1
            clock.now += 181
            await ask(fwd, snap, "www.example.")
            assert len(up.queries) == 2  # expired: asked again
    run(main())


def test_no_answer_is_served_for_another_question(snap):
    async def main():
        async with FakeUpstream(responder=variant_responder) as up:
            fwd = make_forwarder(up)
            kinds = [("A", False, False, ["192.0.2.1"]), ("A", True, False, ["192.0.2.2"]),
                     ("A", False, True, ["192.0.2.3"]), ("A", True, True, ["192.0.2.4"]),
                     ("AAAA", False, False, ["2001:db8::1"]), ("AAAA", True, False, ["2001:db8::2"])]
            for _round in range(2):  # the second round comes from the cache
                for rdtype, do, cd, expected in kinds:
                    r, got = await ask(fwd, snap, "www.example.", rdtype, do=do, cd=cd)
                    assert got == expected, (rdtype, do, cd)
                    assert bool(r.ednsflags & dns.flags.DO) == do
                    assert bool(r.flags & dns.flags.CD) == cd
                assert len(up.queries) == len(kinds)
            _, got = await ask(fwd, snap, "other.example.")
            assert got == ["192.0.2.1"] and len(up.queries) == len(kinds) + 1
    run(main())


def test_negative_answers_cached_only_with_an_soa(snap):
    async def main():
        clock = Clock()
        async with FakeUpstream(responder=variant_responder) as up:
            fwd = make_forwarder(up, clock)
            for _ in range(3):
                r, _ = await ask(fwd, snap, "nx-soa.example.")
                assert r.rcode() == dns.rcode.NXDOMAIN
            assert up.names() == ["nx-soa.example."]
            clock.now += 31  # min(SOA TTL 60, MINIMUM 30)
            await ask(fwd, snap, "nx-soa.example.")
            assert up.names().count("nx-soa.example.") == 2
            for _ in range(2):
                r, _ = await ask(fwd, snap, "nx.example.")  # no SOA: not cached (RFC 2308)
                assert r.rcode() == dns.rcode.NXDOMAIN
            assert up.names().count("nx.example.") == 2
    run(main())


def test_our_zone_is_never_cached_but_externalname_targets_are(snap):
    async def main():
        async with FakeUpstream(responder=variant_responder) as up:
            fwd = make_forwarder(up)
            for _ in range(3):
                _, got = await ask(fwd, snap, "web.default.svc.cluster.local.")
                assert got == ["10.96.0.80"]
                await ask(fwd, snap, "nosuch.default.svc.cluster.local.")
            assert len(fwd.cache) == 0 and up.queries == []
            for _ in range(2):
                _, got = await ask(fwd, snap, "pypi-mirror.default.svc.cluster.local.")
                assert got == ["192.0.2.1", "pypi.example.test."]
            assert up.names() == ["pypi.example.test."]  # the target, asked once
            assert len(fwd.cache) == 1
    run(main())


def test_the_forwarders_cache_is_bounded(snap):
    async def main():
        async with FakeUpstream(responder=variant_responder) as up:
            fwd = make_forwarder(up, capacity=5)
            for i in range(40):
                await ask(fwd, snap, f"n{i}.example.")
                assert len(fwd.cache) <= 5
            await ask(fwd, snap, "n0.example.")  # evicted long ago: asked again
            assert up.names().count("n0.example.") == 2
            await ask(fwd, snap, "n39.example.")  # still there
            assert up.names().count("n39.example.") == 1
    run(main())


# --- the server, counted against dnsmasq ----------------------------------------------------


@pytest.fixture(scope="module")
def dnsmasq(tmp_path_factory):
    yield from running_dnsmasq(tmp_path_factory, "127.0.0.7", ttl=300)


@pytest.fixture(scope="module")
def dnsmasq_short(tmp_path_factory):
    yield from running_dnsmasq(tmp_path_factory, "127.0.0.8", ttl=2)  # answers live 2 s


def _serve(tmp_path_factory, **keys) -> ServerProcess:
    base = tmp_path_factory.mktemp("cache-server")
    (base / "state").mkdir()
    cfg = write_config(base / "config.yaml", **keys)
    return ServerProcess(CLUSTER, state_home=base / "state", logdir=base / "log",
                         args=["--config", str(cfg)]).start()


@pytest.fixture(scope="module")
def cached(tmp_path_factory, dnsmasq):
    srv = _serve(tmp_path_factory, upstream=[dnsmasq.address])
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, dnsmasq):
    srv = _serve(tmp_path_factory, upstream=[dnsmasq.address], cache_size=2)
    yield srv
    srv.stop()


def test_process_second_query_does_not_reach_upstream_then_expires(tmp_path_factory,
                                                                     dnsmasq_short):
    srv = _serve(tmp_path_factory, upstream=[dnsmasq_short.address])
    try:
        assert srv.rrset_values("pypi.example.test.", "A") == ["192.0.2.10"]
        started = time.monotonic()
        assert dnsmasq_short.settle("pypi.example.test", "A", 1) == 1
        r = srv.query("pypi.example.test.", "A")
        assert [rd.to_text() for rs in r.answer for rd in rs] == ["192.0.2.10"]
        assert r.answer[0].ttl <= 2
        if time.monotonic() - started < 1.5:  # surely still fresh: must not have gone out
            assert dnsmasq_short.count("pypi.example.test", "A") == 1
        # dnsmasq's TTL is 2 s: past it the cache asks again
        time.sleep(max(0.0, 2.2 - (time.monotonic() - started)))
        assert srv.rrset_values("pypi.example.test.", "A") == ["192.0.2.10"]
        assert dnsmasq_short.settle("pypi.example.test", "A", 2) >= 2
    finally:
        srv.stop()


def test_process_second_query_answered_without_the_upstream(cached, dnsmasq):
    for _ in range(5):
        assert cached.rrset_values("pypi.example.test.", "A") == ["192.0.2.10"]
    assert dnsmasq.settle("pypi.example.test", "A", 1) == 1
    time.sleep(0.1)
    assert dnsmasq.count("pypi.example.test", "A") == 1


def test_process_types_and_dnssec_bits_never_mix(cached, dnsmasq):
    assert cached.rrset_values("pypi.example.test.", "AAAA") == ["2001:db8::10"]
    assert cached.dig_short("+dnssec", "pypi.example.test", "AAAA") == ["2001:db8::10"]
    assert cached.dig_short("+cdflag", "pypi.example.test", "AAAA") == ["2001:db8::10"]
    # three questions (plain, DO, CD): three upstream queries, each asked once
    assert dnsmasq.settle("pypi.example.test", "AAAA", 3) == 3
    for _ in range(2):
        assert cached.rrset_values("pypi.example.test.", "AAAA") == ["2001:db8::10"]
        assert cached.rrset_values("pypi.example.test.", "TXT") == []
    assert dnsmasq.count("pypi.example.test", "AAAA") == 3
    # dnsmasq's NODATA carries no SOA: not cacheable (RFC 2308), asked each time
    assert dnsmasq.settle("pypi.example.test", "TXT", 2) == 2


def test_process_full_cache_evicts(tiny, dnsmasq):
    for host in ("one", "two", "three"):
        tiny.rrset_values(f"{host}.example.test.", "A")
    assert dnsmasq.settle("three.example.test", "A", 1) == 1
    # two and three are cached (capacity 2), one was evicted
    assert tiny.rrset_values("three.example.test.", "A") == ["192.0.2.13"]
    assert tiny.rrset_values("two.example.test.", "A") == ["192.0.2.12"]
    assert tiny.rrset_values("one.example.test.", "A") == ["192.0.2.11"]
    assert dnsmasq.settle("one.example.test", "A", 2) == 2
    assert dnsmasq.count("two.example.test", "A") == 1
    assert dnsmasq.count("three.example.test", "A") == 1


# --- prefetch and serve_stale (CoreDNS cache options) -----------------------------------------


def ttl_of(r) -> int:
    return r.answer[0].ttl


def counting(ttl: int = 100, tag: list = None):
    """An upstream answering A with TTL ``ttl`` and an address that counts up,
    so a refreshed answer can be told from the old one."""
    seen = tag if tag is not None else [0]

    def responder(q, proto):
        qn = q.question[0].name.to_text().lower()
        if q.question[0].rdtype != dns.rdatatype.A:
            return reply(q)
        seen[0] += 1
        return reply(q, answer=(f"{qn} {ttl} IN A 192.0.2.{seen[0]}",))
    return responder


def stale_forwarder(up, clock, **options) -> Forwarder:
    cache = Cache(100, 3600, clock, **options)
    return Forwarder([Upstream(up.host, up.port)], Acl(DEFAULT_ALLOW_RECURSION), cache,
                     timeout=0.3, deadline=1.0)


async def settle(fwd) -> None:
    """Let background refreshes finish."""
    for _ in range(100):
        if not fwd._inflight:
            return
        await asyncio.sleep(0.01)


def test_prefetch_refreshes_popular_answers_before_they_expire(snap):
    async def main():
        clock = Clock()
        async with FakeUpstream(responder=counting(ttl=100)) as up:
            fwd = stale_forwarder(up, clock, prefetch=3, prefetch_window=60,
                                  prefetch_percentage=10)
            _r, got = await ask(fwd, snap, "pop.example.")
            assert got == ["192.0.2.1"]
            for _ in range(2):  # three questions, no gap of 60 s
                clock.now += 30
                await ask(fwd, snap, "pop.example.")
            assert len(up.queries) == 1
            clock.now += 31  # 9 s left of 100: within the last 10 %
            r, got = await ask(fwd, snap, "pop.example.")
            assert got == ["192.0.2.1"] and ttl_of(r) == 9  # still the cached one, at once
            await settle(fwd)
            assert len(up.queries) == 2 and fwd.stats["prefetch"] == 1
            r, got = await ask(fwd, snap, "pop.example.")
            assert got == ["192.0.2.2"] and ttl_of(r) == 100  # the refreshed entry
            # an unpopular entry (asked once, or with gaps longer than the
            # window) is let expire
            await ask(fwd, snap, "rare.example.")
            clock.now += 95
            await ask(fwd, snap, "rare.example.")
            await settle(fwd)
            assert [n for n in up.names() if n.startswith("rare")] == ["rare.example."]
            await fwd.close()
    run(main())


def test_serve_stale_immediate_answers_from_expired_entries_when_upstream_is_gone(snap):
    async def main():
        clock = Clock()
        up = await FakeUpstream(responder=counting(ttl=30)).start()
        fwd = stale_forwarder(up, clock, serve_stale=3600)
        _r, got = await ask(fwd, snap, "laptop.example.")
        assert got == ["192.0.2.1"]
        await up.close()  # offline
        clock.now += 31  # expired a second ago
        started = time.monotonic()
        r, got = await ask(fwd, snap, "laptop.example.")
        assert r.rcode() == dns.rcode.NOERROR and got == ["192.0.2.1"]
        assert ttl_of(r) == 0  # stale answers carry TTL 0, as CoreDNS's do
        assert time.monotonic() - started < 0.2  # immediate: not after the timeout
        await settle(fwd)
        assert fwd.stats["stale"] == 1
        clock.now += 3600  # beyond serve_stale: gone
        r, _ = await ask(fwd, snap, "laptop.example.")
        assert r.rcode() == dns.rcode.SERVFAIL
        await fwd.close()
    run(main())


def test_serve_stale_immediate_refreshes_in_the_background(snap):
    async def main():
        clock = Clock()
        async with FakeUpstream(responder=counting(ttl=30)) as up:
            fwd = stale_forwarder(up, clock, serve_stale=60)
            await ask(fwd, snap, "back.example.")
            clock.now += 40
            _r, got = await ask(fwd, snap, "back.example.")
            assert got == ["192.0.2.1"]  # stale first...
            await settle(fwd)
            r, got = await ask(fwd, snap, "back.example.")
            assert got == ["192.0.2.2"] and ttl_of(r) == 30  # ...then the refreshed one
            await fwd.close()
    run(main())


def test_serve_stale_verify_asks_upstream_first(snap):
    async def main():
        clock = Clock()
        up = await FakeUpstream(responder=counting(ttl=30)).start()
        fwd = stale_forwarder(up, clock, serve_stale=60, verify_stale=True)
        await ask(fwd, snap, "v.example.")
        clock.now += 40
        r, got = await ask(fwd, snap, "v.example.")
        assert got == ["192.0.2.2"] and ttl_of(r) == 30  # fresh: the stale one never shown
        clock.now += 40
        up.responder = lambda q, p: reply(q, rcode=dns.rcode.SERVFAIL)
        r, got = await ask(fwd, snap, "v.example.")
        assert got == ["192.0.2.2"] and ttl_of(r) == 0  # upstream failing: stale
        await up.close()
        r, got = await ask(fwd, snap, "v.example.")
        assert got == ["192.0.2.2"] and ttl_of(r) == 0
        await fwd.close()
    run(main())


def test_cache_option_keys():
    from coredns_py import config as config_mod
    from coredns_py.errors import ConfigError
    from coredns_py.resolver.forward import new_cache
    cfg = config_mod.parse({"cache_prefetch": 2, "cache_prefetch_window": 30,
                            "cache_prefetch_percentage": 20, "cache_serve_stale": 3600,
                            "cache_serve_stale_mode": "verify"})
    cache = new_cache(cfg)
    assert (cache.prefetch, cache.prefetch_window, cache.prefetch_percentage,
            cache.serve_stale, cache.verify_stale) == (2, 30, 20, 3600, True)
    for bad in ({"cache_prefetch_percentage": 5}, {"cache_serve_stale_mode": "later"},
                {"cache_serve_stale": -1}, {"cache_prefetch": "3"}):
        with pytest.raises(ConfigError) as err:
            config_mod.parse(bad, "my.yaml")
        assert list(bad)[0] in str(err.value) and "my.yaml" in str(err.value)


def test_process_laptop_offline_keeps_resolving_names_it_used(tmp_path_factory):
    """dnsmasq answers with a 1 s TTL, then goes away: dig still gets the
    address (TTL 0), within a fraction of the forward timeout."""
    base = tmp_path_factory.mktemp("offline")
    upstream = Dnsmasq("127.0.0.9", ttl=1, logdir=base)
    upstream.start()
    try:
        srv = _serve(tmp_path_factory, upstream=[upstream.address], cache_serve_stale=3600)
        try:
            assert srv.dig_short("pypi.example.test") == ["192.0.2.10"]
        finally:
            upstream.stop()
        try:
            time.sleep(1.2)  # expired
            out = srv.dig("+noall", "+answer", "pypi.example.test")
            fields = out.split()
            assert fields[-1] == "192.0.2.10" and fields[1] == "0", out
            assert "SERVFAIL" not in srv.dig("pypi.example.test")
            assert dig_never_seen_fails(srv)
        finally:
            srv.stop()
    finally:
        upstream.stop()


def dig_never_seen_fails(srv) -> bool:
    """A name never asked before has nothing stale to serve: SERVFAIL."""
    return "status: SERVFAIL" in srv.dig("never-asked.example.test")
