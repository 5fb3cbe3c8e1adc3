"""Response rate limiting (Knot's rrl module, BIND's rate-limit): accounts per
client network and kind of answer, the slip, what is never limited.  The
stage runs in front of the real answer() with a clock the test moves.  (A
real server flooded over UDP: tests/test_abuse.py.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dnslib
import pytest

from coredns_py import stages
from coredns_py.cluster import fill as cluster
from coredns_py.config import Config
from coredns_py.source.folder import ManifestSource
from coredns_py.stages.ratelimit import RateLimit
from coredns_py.zone import answer, snapshot

ZONES = Path(__file__).resolve().parent.parent / "zones"
NAME = "webapp.default.svc.cluster.local"
PEER = ("192.0.2.7", 40000)


@pytest.fixture(scope="module")
def snap():
    cfg = Config()
    return snapshot.build(cluster.build(ManifestSource(ZONES).load().objects, cfg, None), cfg, 1)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def limiter(snap, rate=5, slip=2, **kw):
    clock = Clock()
    rrl = RateLimit(rate, slip, clock=clock, **kw)
    return rrl, rrl(lambda wire, proto, peer: answer.answer(snap, wire, proto)), clock


def query(name=NAME, rdtype="A", qid=1) -> bytes:
    q = dns.message.make_query(name, rdtype)
    q.id = qid
    return q.to_wire()


def burst(handle, n, wire=None, proto="udp", peer=PEER):
    return [handle(wire or query(qid=i), proto, peer) for i in range(n)]


def test_past_the_rate_every_slipth_answer_is_truncated_the_others_dropped(snap):
    rrl, handle, clock = limiter(snap, rate=5, slip=2)
    out = burst(handle, 25)
    full = [o for o in out[:5]]
    assert all(dns.message.from_wire(o).answer for o in full)
    over = out[5:]
    truncated = [o for o in over if o is not None]
    assert len(truncated) == 10 and over.count(None) == 10
    for o in truncated:
        r = dns.message.from_wire(o)
        assert r.flags & dns.flags.TC and not r.answer and r.question[0].name.to_text() == NAME + "."
        assert r.rcode() == dns.rcode.NOERROR
        dnslib.DNSRecord.parse(o)
    assert rrl.counts == {"exceeded": 20, "truncated": 10, "badcookie": 0, "dropped": 10}
    # A second later the account holds `rate` answers again.
    clock.now += 1.0
    assert all(o is not None and dns.message.from_wire(o).answer for o in burst(handle, 5))
    assert burst(handle, 1) == [None]


@pytest.mark.parametrize("slip, sent", [(0, 0), (1, 10), (3, 3)])
def test_slip(snap, slip, sent):
    rrl, handle, _ = limiter(snap, rate=5, slip=slip)
    over = burst(handle, 15)[5:]
    assert sum(o is not None for o in over) == sent
    assert rrl.counts["truncated"] == sent and rrl.counts["dropped"] == 10 - sent


def test_the_rate_refills_continuously(snap):
    _, handle, clock = limiter(snap, rate=10, slip=0)
    assert sum(o is not None for o in burst(handle, 20)) == 10
    clock.now += 0.5  # half a second: five more
    assert sum(o is not None for o in burst(handle, 20)) == 5
    clock.now += 60  # a long pause refills to the burst, not beyond
    assert sum(o is not None for o in burst(handle, 20)) == 10


def test_one_account_per_client_network(snap):
    _, handle, _ = limiter(snap, rate=3, slip=0)
    assert sum(o is not None for o in burst(handle, 6, peer=("192.0.2.7", 1))) == 3
    # the same /24: the same account
    assert burst(handle, 2, peer=("192.0.2.200", 1)) == [None, None]
    # another /24: its own
    assert all(burst(handle, 3, peer=("192.0.3.7", 1)))
    # IPv6: /56
    assert sum(o is not None for o in burst(handle, 6, peer=("2001:db8:0:100::1", 1, 0, 0))) == 3
    assert burst(handle, 1, peer=("2001:db8:0:1ff::2", 1, 0, 0)) == [None]
    assert all(burst(handle, 3, peer=("2001:db8:0:200::1", 1, 0, 0)))


def test_identical_answers_share_an_account_whatever_the_letter_case(snap):
    _, handle, _ = limiter(snap, rate=3, slip=0)
    variants = [query(n) for n in (NAME, NAME.upper(), "WebApp.Default.svc.cluster.local",
                                   NAME)]
    out = [handle(w, "udp", PEER) for w in variants]
    assert out[3] is None and all(out[:3])
    # another name, or another type, is another account
    assert handle(query("kubernetes.default.svc.cluster.local"), "udp", PEER)
    assert handle(query(NAME, "AAAA"), "udp", PEER)  # NODATA: its own account


def test_nxdomain_and_errors_count_per_network_whatever_the_name(snap):
    _, handle, _ = limiter(snap, rate=3, slip=0)
    names = [f"random{i}.default.svc.cluster.local" for i in range(5)]
    out = [handle(query(n), "udp", PEER) for n in names]
    assert [o is not None for o in out] == [True, True, True, False, False]
    assert dns.message.from_wire(out[0]).rcode() == dns.rcode.NXDOMAIN
    chaos = [dns.message.make_query(f"v{i}.bind", "TXT", rdclass="CH").to_wire() for i in range(5)]
    out = [handle(w, "udp", PEER) for w in chaos]  # REFUSED: errors
    assert [o is not None for o in out] == [True, True, True, False, False]
    assert handle(query(), "udp", PEER) is not None  # positive answers: unaffected


def test_tcp_and_verified_clients_are_never_limited(snap):
    rrl, handle, _ = limiter(snap, rate=2, slip=0)
    assert all(burst(handle, 20, proto="tcp"))
    assert all(burst(handle, 20, peer=stages.VerifiedPeer(PEER)))
    assert rrl.counts["exceeded"] == 0
    assert burst(handle, 3)[2] is None  # a plain UDP client is


def test_a_cookie_client_is_told_badcookie_instead_of_tc(snap):
    _, handle, _ = limiter(snap, rate=1, slip=1)
    cookie_peer = stages.CookiePeer(PEER)
    q = dns.message.make_query(NAME, "A", use_edns=0)
    out = [handle(q.to_wire(), "udp", cookie_peer) for _ in range(2)]
    r = dns.message.from_wire(out[1])
    assert r.rcode() == dns.rcode.BADCOOKIE and not r.answer and not r.flags & dns.flags.TC
    assert r.id == q.id and r.edns == 0


def test_answers_that_come_later_are_counted_too(snap):
    async def core(wire, proto, peer):
        await asyncio.sleep(0)
        return answer.answer(snap, wire, proto)
    rrl = RateLimit(2, 0, clock=Clock())
    handle = rrl(core)

    async def main():
        return [await handle(query(qid=i), "udp", PEER) for i in range(4)]
    out = asyncio.run(main())
    assert [o is not None for o in out] == [True, True, False, False]


def test_nothing_sent_stays_nothing(snap):
    _, handle, _ = limiter(snap)
    response_bit = bytearray(query())
    response_bit[2] |= 0x80
    assert handle(bytes(response_bit), "udp", PEER) is None


def test_the_table_is_bounded(snap):
    rrl, handle, clock = limiter(snap, rate=1, slip=0, table_size=100)
    assert burst(handle, 2)[1] is None
    for i in range(1000):  # a flood from many networks, all at once
        handle(query(), "udp", (f"10.{i // 256}.{i % 256}.1", 1))
        assert len(rrl) <= 100
    # Idle accounts (full again) go first: one that keeps being limited stays.
    clock.now += 5
    assert handle(query(), "udp", PEER) is not None  # refilled meanwhile
    for i in range(50):
        handle(query(), "udp", (f"172.16.{i}.1", 1))
        assert handle(query(), "udp", PEER) is None
        clock.now += 0.01
    assert len(rrl) <= 100
