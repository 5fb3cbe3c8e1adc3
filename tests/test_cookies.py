"""DNS cookies (RFC 7873) with interoperable server cookies (RFC 9018): the
construction against the RFC's test vectors, then the stage in front of the
real answer(), read back with dnspython.  (A real server with dig and
dnspython: tests/test_abuse.py.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dnslib
import pytest

from coredns_py import stages
from coredns_py.cluster import fill as cluster
from coredns_py.config import Config
from coredns_py.source.folder import ManifestSource
from coredns_py.stages import edns
from coredns_py.stages.cookies import (LIFETIME, RENEW_AFTER, SKEW, Cookies, packed_address,
                                       parse_secret)
from coredns_py.zone import answer, snapshot

ZONES = Path(__file__).resolve().parent.parent / "zones"
NAME = "webapp.default.svc.cluster.local"
PEER = ("192.0.2.7", 40000)
NOW = 1_700_000_000
SECRET = bytes.fromhex("e5e973e5a6b2a43f48e7dc849e37bfcf")
CLIENT = bytes.fromhex("2464c4abcf10c957")


# --- RFC 9018 Appendix A ----------------------------------------------------------

@pytest.mark.parametrize("secret, client, address, now, head, want", [
    # A.1: a new server cookie for a client cookie alone
    ("e5e973e5a6b2a43f48e7dc849e37bfcf", "2464c4abcf10c957", "198.51.100.100", 1559731985,
     "01000000", "010000005cf79f111f8130c3eee29480"),
    # A.2: the same client, 40 minutes later: renewed
    ("e5e973e5a6b2a43f48e7dc849e37bfcf", "2464c4abcf10c957", "198.51.100.100", 1559734385,
     "01000000", "010000005cf7a871d4a564a1442aca77"),
    # A.3: another client
    ("e5e973e5a6b2a43f48e7dc849e37bfcf", "fc93fc62807ddb86", "203.0.113.203", 1559734700,
     "01000000", "010000005cf7a9acf73a7810aca2381e"),
    # A.3's returned cookie: the reserved bytes a server set are hashed too
    ("e5e973e5a6b2a43f48e7dc849e37bfcf", "fc93fc62807ddb86", "203.0.113.203", 0x5cf78f71,
     "01abcdef", "01abcdef5cf78f71a314227b6679ebf5"),
    # A.4: an IPv6 client
    ("dd3bdf9344b678b185a6f5cb60fca715", "22681ab97d52c298", "2001:db8:220:1:59de:d0f4:8769:82b8",
     0x5cf7c579, "01000000", "010000005cf7c57926556bd0934c72f8"),
])
def test_server_cookies_are_rfc_9018s(secret, client, address, now, head, want):
    cookies = Cookies(bytes.fromhex(secret))
    made = cookies.server_cookie(bytes.fromhex(client), packed_address((address, 53)), now,
                                 bytes.fromhex(head))
    assert made.hex() == want
    assert cookies.check(bytes.fromhex(client), made, packed_address((address, 53)),
                         now + 10) is False
    # The same cookie from another address, or under another secret, is not ours.
    assert cookies.check(bytes.fromhex(client), made, packed_address(("192.0.2.1", 53)),
                         now) is None
    assert Cookies(bytes(16)).check(bytes.fromhex(client), made,
                                    packed_address((address, 53)), now) is None


@pytest.mark.parametrize("age, verdict", [
    (0, False), (RENEW_AFTER, False), (RENEW_AFTER + 1, True), (LIFETIME, True),
    (LIFETIME + 1, None), (-SKEW, False), (-SKEW - 1, None)])
def test_a_server_cookie_lives_an_hour_and_is_renewed_after_half(age, verdict):
    cookies = Cookies(SECRET)
    address = packed_address(PEER)
    made = cookies.server_cookie(CLIENT, address, NOW - age)
    assert cookies.check(CLIENT, made, address, NOW) is verdict


def test_timestamps_wrap_as_serial_numbers():
    cookies = Cookies(SECRET)
    address = packed_address(PEER)
    made = cookies.server_cookie(CLIENT, address, 2**32 - 100)  # just before the wrap
    assert cookies.check(CLIENT, made, address, 2**32 + 100) is False  # 200 s old


def test_secret_text():
    assert parse_secret("E5E973E5A6B2A43F48E7DC849E37BFCF") == SECRET
    for bad in ("e5e9", "zz" * 16, "e5" * 17):
        with pytest.raises(ValueError, match="32 hex digits"):
            parse_secret(bad)


# --- the stage in front of answer() ------------------------------------------------

@pytest.fixture(scope="module")
def snap():
    cfg = Config()
    return snapshot.build(cluster.build(ManifestSource(ZONES).load().objects, cfg, None), cfg, 1)


class Core:
    """answer() on the bundled zones, recording what reached it."""

    def __init__(self, snap):
        self.snap = snap
        self.seen: list[tuple[bytes, str, tuple]] = []

    def __call__(self, wire, proto, peer):
        self.seen.append((wire, proto, peer))
        return answer.answer(self.snap, wire, proto)


def stage(snap, now=NOW):
    core = Core(snap)
    return Cookies(SECRET, clock=lambda: now)(core), core


def query(cookie: bytes | None = None, name: str = NAME, rdtype: str = "A",
          extra=(), payload: int = 1232) -> bytes:
    options = list(extra)
    if cookie is not None:
        options.insert(0, dns.edns.GenericOption(edns.COOKIE, cookie))
    q = dns.message.make_query(name, rdtype, use_edns=0, payload=payload, options=options)
    q.id = 4242
    return q.to_wire()


def cookie_of(response: bytes) -> bytes:
    [opt] = [o for o in dns.message.from_wire(response).options if o.otype == edns.COOKIE]
    return opt.client + opt.server


def test_a_query_without_a_cookie_passes_untouched(snap):
    handle, core = stage(snap)
    for wire in (query(), query(extra=[dns.edns.GenericOption(12, bytes(8))]),
                 dns.message.make_query(NAME, "A").to_wire()):
        assert handle(wire, "udp", PEER) == answer.answer(snap, wire, "udp")
        assert core.seen[-1] == (wire, "udp", PEER) and type(core.seen[-1][2]) is tuple


def test_a_client_cookie_gets_the_answer_and_a_server_cookie(snap):
    handle, core = stage(snap)
    wire = query(CLIENT)
    out = handle(wire, "udp", PEER)
    response = dns.message.from_wire(out)
    assert response.rcode() == dns.rcode.NOERROR and response.answer
    got = cookie_of(out)
    assert got[:8] == CLIENT and len(got) == 24
    assert Cookies(SECRET).check(CLIENT, got[8:], packed_address(PEER), NOW) is False
    # What reached answer(): the query without its COOKIE (so the answer cache
    # serves it), from a peer marked as a cookie client but not verified.
    inner_wire, _, inner_peer = core.seen[-1]
    assert inner_wire == query()
    assert isinstance(inner_peer, stages.CookiePeer)
    assert not isinstance(inner_peer, stages.VerifiedPeer) and inner_peer == PEER
    # The answer is answer()'s, plus the cookie.
    assert out == edns.add_option(answer.answer(snap, query(), "udp"),
                                  edns.option(edns.COOKIE, got), 1232)
    dnslib.DNSRecord.parse(out)


def test_a_valid_server_cookie_is_echoed_and_its_client_verified(snap):
    handle, core = stage(snap)
    first = cookie_of(handle(query(CLIENT), "udp", PEER))
    again = handle(query(first), "udp", PEER)
    assert cookie_of(again) == first
    assert dns.message.from_wire(again).answer
    assert type(core.seen[-1][2]) is stages.VerifiedPeer


def test_an_old_server_cookie_is_renewed(snap):
    handle, _ = stage(snap)
    old = CLIENT + Cookies(SECRET).server_cookie(CLIENT, packed_address(PEER),
                                                 NOW - RENEW_AFTER - 60)
    out = handle(query(old), "udp", PEER)
    assert dns.message.from_wire(out).rcode() == dns.rcode.NOERROR
    renewed = cookie_of(out)
    assert renewed != old and int.from_bytes(renewed[12:16], "big") == NOW


@pytest.mark.parametrize("server", [
    "expired", "ahead", "forged", "other address", "other secret", "version 2", "8 bytes",
    "32 bytes"])
def test_an_invalid_server_cookie_gets_badcookie_over_udp(snap, server):
    address = packed_address(PEER)
    made = {
        "expired": Cookies(SECRET).server_cookie(CLIENT, address, NOW - LIFETIME - 1),
        "ahead": Cookies(SECRET).server_cookie(CLIENT, address, NOW + SKEW + 1),
        "forged": Cookies(SECRET).server_cookie(CLIENT, address, NOW)[:8] + bytes(8),
        "other address": Cookies(SECRET).server_cookie(CLIENT, packed_address(("192.0.2.8", 1)),
                                                       NOW),
        "other secret": Cookies(bytes(16)).server_cookie(CLIENT, address, NOW),
        "version 2": b"\x02" + Cookies(SECRET).server_cookie(CLIENT, address, NOW)[1:],
        "8 bytes": bytes(8),
        "32 bytes": bytes(32),
    }[server]
    handle, core = stage(snap)
    out = handle(query(CLIENT + made), "udp", PEER)
    response = dns.message.from_wire(out)
    # RFC 7873 5.2.4 -> 5.2.3 (2): BADCOOKIE, no answer, a fresh cookie to retry with
    assert response.rcode() == dns.rcode.BADCOOKIE
    assert not response.answer and response.question[0].name.to_text() == NAME + "."
    assert response.id == 4242 and response.flags & dns.flags.QR
    fresh = cookie_of(out)
    assert fresh[:8] == CLIENT
    assert Cookies(SECRET).check(CLIENT, fresh[8:], address, NOW) is False
    assert core.seen == []  # nothing was answered
    assert dnslib.DNSRecord.parse(out).header.rcode == 23 & 0xF
    # The retry with the fresh cookie is answered.
    assert dns.message.from_wire(handle(query(fresh), "udp", PEER)).answer
    # Over TCP the source is proven: a normal answer with a fresh cookie.
    out = handle(query(CLIENT + made), "tcp", PEER)
    assert dns.message.from_wire(out).answer and cookie_of(out)[:8] == CLIENT


@pytest.mark.parametrize("length", [0, 1, 7, 9, 15, 41, 60])
def test_a_malformed_cookie_is_answered_as_answer_answers_it(snap, length):
    # RFC 7873 5.2.2: FORMERR.  The stage leaves it to answer(), so the
    # answer is the same whether cookies are on or off.
    handle, _ = stage(snap)
    wire = query(bytes(range(length)))
    out = handle(wire, "udp", PEER)
    assert out == answer.answer(snap, wire, "udp")
    assert dns.message.from_wire(out).rcode() == dns.rcode.FORMERR


def test_other_options_stay_and_the_cookie_is_added_to_the_answer(snap):
    handle, core = stage(snap)
    nsid = dns.edns.GenericOption(3, b"")
    out = handle(query(CLIENT, extra=[nsid]), "udp", PEER)
    assert core.seen[-1][0] == query(extra=[nsid])
    assert cookie_of(out)[:8] == CLIENT


def test_an_answer_that_no_longer_fits_is_truncated_with_the_cookie(snap):
    # The answer fits the client's 1232 bytes, the cookie (28 bytes) does not:
    # the client gets TC (and its cookie) and asks again over TCP.
    def core(wire, proto, peer):
        q = dns.message.from_wire(wire)
        r = dns.message.make_response(q, our_payload=1232)
        txt = "x" * (1232 - 12 - len(q.question[0].name.to_wire()) - 4 - 11 - 40)
        r.answer.append(dns.rrset.from_text(q.question[0].name, 5, "IN", "TXT",
                                            " ".join(f'"{txt[i:i + 250]}"'
                                                     for i in range(0, len(txt), 250))))
        out = r.to_wire()
        assert 1232 - 28 < len(out) <= 1232
        return out
    handle = Cookies(SECRET, clock=lambda: NOW)(core)
    out = handle(query(CLIENT, rdtype="TXT"), "udp", PEER)
    assert len(out) <= 1232
    response = dns.message.from_wire(out)
    assert response.flags & dns.flags.TC and not response.answer
    assert cookie_of(out)[:8] == CLIENT
    # Over TCP there is room.
    out = handle(query(CLIENT, rdtype="TXT"), "tcp", PEER)
    assert dns.message.from_wire(out).answer and cookie_of(out)[:8] == CLIENT


def test_an_answer_that_comes_later_gets_its_cookie(snap):
    async def core(wire, proto, peer):
        await asyncio.sleep(0)
        return answer.answer(snap, wire, proto)
    handle = Cookies(SECRET, clock=lambda: NOW)(core)

    async def main():
        return await handle(query(CLIENT), "udp", PEER)
    out = asyncio.run(main())
    assert dns.message.from_wire(out).answer and cookie_of(out)[:8] == CLIENT


def test_ipv6_clients(snap):
    handle, _ = stage(snap)
    peer = ("2001:db8::1", 5353, 0, 0)
    first = cookie_of(handle(query(CLIENT), "udp", peer))
    assert Cookies(SECRET).check(CLIENT, first[8:], packed_address(peer), NOW) is False
    assert dns.message.from_wire(handle(query(first), "udp", peer)).answer
    # not valid from another address
    other = ("2001:db8::2", 5353, 0, 0)
    assert dns.message.from_wire(handle(query(first), "udp", other)).rcode() == \
        dns.rcode.BADCOOKIE


def test_counts(snap):
    cookies = Cookies(SECRET, clock=lambda: NOW)
    handle = cookies(Core(snap))
    first = cookie_of(handle(query(CLIENT), "udp", PEER))
    handle(query(first), "udp", PEER)
    handle(query(CLIENT + bytes(16)), "udp", PEER)
    handle(query(b"x"), "udp", PEER)
    handle(query(), "udp", PEER)
    assert cookies.counts == {"valid": 1, "client_only": 1, "invalid": 1, "malformed": 1,
                              "badcookie": 1}


def test_a_broken_query_with_an_invalid_cookie_gets_answers_formerr(snap):
    # BADCOOKIE echoes the question: a question answer() cannot read (here a
    # compression pointer to itself) gets answer()'s FORMERR instead.
    handle, _ = stage(snap)
    good = query(CLIENT + bytes(16))
    qend = 12 + len(dns.name.from_text(NAME).to_wire()) + 4
    broken = good[:12] + b"\xc0\x0c" + good[qend - 4:]
    out = handle(broken, "udp", PEER)
    assert out == answer.answer(snap, broken, "udp")
    assert dns.message.from_wire(out).rcode() == dns.rcode.FORMERR


def test_forwarded_answers_go_through_both_stages(snap):
    """A name outside our zones, completed by an upstream (a task): the
    answer gets its cookie, and rate limiting counts it like any other."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "forward"))
    from forward_helpers import FakeUpstream
    from coredns_py.resolver.acl import Acl
    from coredns_py.resolver.forward import Forwarder
    from coredns_py.resolver.upstreams import Upstream
    from coredns_py.stages.ratelimit import RateLimit

    async def main():
        async with FakeUpstream() as up:
            fwd = Forwarder([Upstream(up.host, up.port)], Acl(["0.0.0.0/0"]), None,
                            timeout=1.0, deadline=3.0)

            def core(wire, proto, peer):
                out = answer.answer(snap, wire, proto, forwarding=True)
                if isinstance(out, answer.Forward):
                    out = fwd.complete(out, peer)
                    if not isinstance(out, bytes):
                        out = asyncio.ensure_future(out)
                return out

            rrl = RateLimit(2, 1)
            handle = stages.chain(core, [Cookies(SECRET, clock=lambda: NOW), rrl])
            outs = []
            for i in range(3):
                q = dns.message.make_query("www.example.", "A", use_edns=0,
                                           options=[dns.edns.CookieOption(CLIENT, b"")])
                result = handle(q.to_wire(), "udp", PEER)
                assert isinstance(result, asyncio.Future)
                outs.append(await result)
            await fwd.close()
            return outs

    outs = asyncio.run(asyncio.wait_for(main(), 20))
    answered = [dns.message.from_wire(o) for o in outs]
    assert all(cookie_of(o)[:8] == CLIENT for o in outs)
    assert answered[0].answer and answered[1].answer
    # the third is over the rate (2): slipped, and a cookie client hears BADCOOKIE
    assert answered[2].rcode() == dns.rcode.BADCOOKIE and not answered[2].answer


def test_a_remembered_cookie_is_still_renewed_and_expires(snap):
    # Valid cookies are remembered (one SipHash per client, not per query);
    # the memory must not outlive what check() would say.
    clock = [NOW]
    cookies = Cookies(SECRET, clock=lambda: clock[0])
    handle = cookies(Core(snap))
    first = cookie_of(handle(query(CLIENT), "udp", PEER))
    for _ in range(3):
        assert cookie_of(handle(query(first), "udp", PEER)) == first
    clock[0] = NOW + RENEW_AFTER + 1
    renewed = cookie_of(handle(query(first), "udp", PEER))
    assert renewed != first and int.from_bytes(renewed[12:16], "big") == clock[0]
    clock[0] = NOW + LIFETIME + 1
    assert dns.message.from_wire(handle(query(first), "udp", PEER)).rcode() == \
        dns.rcode.BADCOOKIE
    # the same cookie from another address was never valid
    clock[0] = NOW
    assert dns.message.from_wire(handle(query(first), "udp", ("192.0.2.8", 1))).rcode() == \
        dns.rcode.BADCOOKIE
    assert cookies.counts["valid"] == 4
