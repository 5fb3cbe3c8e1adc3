"""The hot path (answers kept as bytes) must say exactly what the plain path
says: same bytes, for every query shape, letter case and rcode."""

import random
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import pytest

from coredns_py.zone import answer
from coredns_py.cluster import fill as cluster
from coredns_py.zone import snapshot
from coredns_py.zone.answer_cache import AnswerCache, canonical
from coredns_py.config import Config
from coredns_py.source.folder import ManifestSource
from helpers.manifests import service, write

ZONES = Path(__file__).resolve().parent.parent / "zones"


@pytest.fixture(scope="module")
def snap():
    cfg = Config(pods="insecure")
    loaded = ManifestSource(ZONES).load()
    return snapshot.build(cluster.build(loaded.objects, cfg, None), cfg, 4242, ("127.0.0.1",))


def names(snap) -> list[str]:
    out = ["cluster.local", "svc.cluster.local", "default.svc.cluster.local",
           "dns-version.cluster.local", "ns.dns.cluster.local", "nope.cluster.local",
           "10-244-0-1.default.pod.cluster.local", "10.0.96.10.in-addr.arpa",
           "1.2.3.4.in-addr.arpa", "example.com", "in-addr.arpa"]
    for (ns, name), view in snap.services.items():
        base = f"{name}.{ns}.svc.cluster.local"
        out += [base, f"{base}.svc.cluster.local", f"nope.{base}"]
        for p in view.ports:
            if p.name:
                out.append(f"_{p.name}._{p.protocol}.{base}")
        for ep in view.endpoints[:2]:
            out.append(f"{ep.name}.{base}")
    return out


def mixed_case(rng: random.Random, name: str) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c for c in name)


def queries(snap):
    rng = random.Random(20261128)
    types = ["A", "AAAA", "SRV", "PTR", "TXT", "CNAME", "SOA", "NS", "MX", "ANY", "AXFR"]
    for name in names(snap):
        for qtype in types:
            for variant in range(3):
                qname = mixed_case(rng, name) if variant else name
                q = dns.message.make_query(qname, qtype)
                q.id = rng.randrange(65536)
                if variant == 1:
                    q.use_edns(0, rng.choice([0, dns.flags.DO]), rng.choice([512, 1232, 4096]))
                if variant == 2 and rng.random() < 0.3:
                    q.flags &= ~dns.flags.RD
                yield q.to_wire()
    # every other rcode: NOTIMP, BADVERS, FORMERR (two questions), REFUSED (class CH)
    notify = dns.message.make_query("cluster.local", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    yield notify.to_wire()
    badvers = dns.message.make_query("webapp.default.svc.cluster.local", "A")
    badvers.use_edns(1)
    yield badvers.to_wire()
    chaos = dns.message.make_query("version.bind", "TXT", rdclass="CH")
    yield chaos.to_wire()
    two = dns.message.make_query("a.cluster.local", "A")
    two.question.append(two.question[0])
    yield two.to_wire()
    cookie = dns.message.make_query("webapp.default.svc.cluster.local", "A", use_edns=0,
                                    options=[dns.edns.GenericOption(10, b"12345678")])
    yield cookie.to_wire()
    for i, options in enumerate(OPTIONS.values()):
        yield with_options(rng.choice(names(snap)), rng.choice(types), options, qid=i)


def with_options(name: str, rdtype: str, options: bytes, qid: int = 7) -> bytes:
    """A query whose OPT record carries ``options``, raw (TLVs right or wrong)."""
    q = dns.message.make_query(name, rdtype, use_edns=0)
    q.id = qid
    bare = q.to_wire()
    assert bare[-11:-8] == b"\x00\x00\x29" and bare[-2:] == b"\x00\x00"
    return bare[:-2] + len(options).to_bytes(2, "big") + options


def option(code: int, data: bytes) -> bytes:
    return code.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data


# EDNS options, well-formed and not: a COOKIE (RFC 7873) of every length
# class, padding (RFC 8467: the answer is padded), client subnet, NSID, an
# unknown option, TLVs that overrun the record or stop short.
OPTIONS = {
    "cookie client": option(10, b"c" * 8),
    "cookie client+server": option(10, b"c" * 8 + b"s" * 16),
    "cookie longest": option(10, b"c" * 8 + b"s" * 32),
    "cookie too short": option(10, b"c" * 7),
    "cookie between": option(10, b"c" * 12),
    "cookie too long": option(10, b"c" * 41),
    "cookie empty": option(10, b""),
    "two cookies": option(10, b"c" * 8) + option(10, b"d" * 8),
    "padding": option(12, bytes(20)),
    "client subnet": option(8, b"\x00\x01\x18\x00\xc0\x00\x02"),
    "client subnet broken": option(8, b"\x00\x09\x40"),
    "nsid": option(3, b""),
    "unknown": option(65001, b"hello"),
    "cookie and padding": option(10, b"c" * 8) + option(12, bytes(8)),
    "overrun": b"\x00\x0a\x00\x20" + b"c" * 8,
    "short header": b"\x00\x0a\x00",
}


@pytest.mark.parametrize("label", sorted(OPTIONS))
def test_edns_options_get_the_same_answer_from_a_warm_cache(snap, label):
    """A query with options is answered as answer() answers it, whether or
    not the same question without options is cached (it was FORMERR on a
    cold cache and NOERROR once the name was cached)."""
    for name, rdtype in (("webapp.default.svc.cluster.local", "A"),
                         ("WebApp.default.svc.cluster.local", "SRV"),
                         ("nope.default.svc.cluster.local", "A")):
        for proto in ("udp", "tcp"):
            cache = AnswerCache()
            plain_q = with_options(name, rdtype, b"")
            cache.answer(snap, plain_q, proto, lambda: answer.answer(snap, plain_q, proto))
            wire = with_options(name, rdtype, OPTIONS[label])
            expected = answer.answer(snap, wire, proto)
            for _ in range(2):
                got = cache.answer(snap, wire, proto, lambda: answer.answer(snap, wire, proto))
                assert got == expected, (label, name, proto)


def test_fast_path_gives_the_plain_answer_byte_for_byte(snap):
    cache = AnswerCache()
    seen_rcodes = set()
    total = 0
    for wire in queries(snap):
        for proto in ("udp", "tcp"):
            for _ in range(2):  # the second time comes from the cache
                plain = answer.answer(snap, wire, proto)
                fast = cache.answer(snap, wire, proto, lambda: answer.answer(snap, wire, proto))
                assert fast == plain, dns.message.from_wire(wire)
                total += 1
            seen_rcodes.add(dns.message.from_wire(plain).rcode())
    assert cache.hits > total / 3
    assert {dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.REFUSED, dns.rcode.NOTIMP,
            dns.rcode.FORMERR, dns.rcode.BADVERS} <= seen_rcodes


def test_case_variants_share_one_entry_and_echo_their_own_case(snap):
    cache = AnswerCache()
    lower = dns.message.make_query("webapp.default.svc.cluster.local", "A")
    upper = dns.message.make_query("WEBAPP.Default.SVC.cluster.LOCAL", "A")
    for q in (lower, upper):
        wire = q.to_wire()
        out = cache.answer(snap, wire, "udp", lambda: answer.answer(snap, wire, "udp"))
        r = dns.message.from_wire(out)
        assert r.id == q.id
        assert out[12:12 + len(q.question[0].name.to_wire()) + 4] == wire[12:len(wire)]
        assert r.answer[0].name.to_text() == q.question[0].name.to_text()
    assert (cache.hits, cache.misses) == (1, 1)


def test_types_that_differ_only_by_ascii_case_do_not_collide(snap):
    # qtype 65 (HTTPS) is the byte 'A' and qtype 97 is 'a': lower-casing the
    # whole question would make them one key.
    k65 = canonical(dns.message.make_query("webapp.default.svc.cluster.local", 65).to_wire())
    k97 = canonical(dns.message.make_query("webapp.default.svc.cluster.local", 97).to_wire())
    assert k65[0] != k97[0]


def test_new_snapshot_drops_old_answers(snap, tmp_path):
    cache = AnswerCache()
    wire = dns.message.make_query("webapp.default.svc.cluster.local", "A").to_wire()
    first = cache.answer(snap, wire, "udp", lambda: answer.answer(snap, wire, "udp"))
    write(tmp_path, "s.yaml", service("webapp", cluster_ip="10.96.9.9"))
    cfg = Config()
    other = snapshot.build(cluster.build(ManifestSource(tmp_path).load().objects, cfg, None),
                           cfg, 1)
    second = cache.answer(other, wire, "udp", lambda: answer.answer(other, wire, "udp"))
    assert first != second
    assert dns.message.from_wire(second).answer[0][0].address == "10.96.9.9"


def test_unusual_queries_are_not_cached(snap):
    q = dns.message.make_query("webapp.default.svc.cluster.local", "A").to_wire()
    assert canonical(q + b"junk") is None  # trailing bytes: FORMERR on the plain path
    assert canonical(q[:-3]) is None
    response_bit = q[:2] + bytes([q[2] | 0x80]) + q[3:]
    assert canonical(response_bit) is None
    cache = AnswerCache()
    assert cache.answer(None, q, "udp", lambda: answer.answer(None, q, "udp")) is not None
    assert cache.misses == 1 and not len(cache)  # nothing kept before the first load


def test_full_cache_starts_over(snap):
    cache = AnswerCache(max_entries=10)
    for i in range(25):
        wire = dns.message.make_query(f"n{i}.default.svc.cluster.local", "A").to_wire()
        cache.answer(snap, wire, "udp", lambda: answer.answer(snap, wire, "udp"))
        assert len(cache) <= 10


def test_one_entry_serves_every_case_and_options_take_the_plain_path(snap):
    # The entry is filed under the canonical (lower-case) query whichever
    # case came first; a query with EDNS options is answered by answer()
    # itself, in any order, and neither stores nor reads an entry.
    def variants(name):
        upper = dns.message.make_query(name.upper(), "SRV", use_edns=0)
        lower = dns.message.make_query(name, "SRV", use_edns=0)
        cookie = dns.message.make_query(name.title(), "SRV", use_edns=0,
                                        options=[dns.edns.GenericOption(10, b"abcdefgh")])
        return [upper.to_wire(), lower.to_wire(), cookie.to_wire()]

    for order in ([0, 1, 2], [1, 0, 2], [2, 0, 1]):
        cache = AnswerCache()
        wires = variants("_web._tcp.webapp.multiport.svc.cluster.local")
        for i in order:
            wire = wires[i]
            fast = cache.answer(snap, wire, "udp", lambda: answer.answer(snap, wire, "udp"))
            assert fast == answer.answer(snap, wire, "udp")
        assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)
