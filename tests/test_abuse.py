"""Abuse on a real server: a UDP flood from one client is rate limited (some
answers truncated, the rest dropped) while TCP and a client with a valid DNS
cookie keep every answer; cookies round-trip with dig and with dnspython;
BADCOOKIE for a server cookie that is not ours; all of it on the metrics.
Both protections are off on loopback unless configured, and say so."""

from __future__ import annotations

import os
import socket
import time

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dnslib
import pytest
import yaml

from helpers import netns
from status_client import http_server, scrape, total  # noqa: F401

NAME = "webapp.default.svc.cluster.local"
RATE = 20
FLOOD = 300  # identical queries sent at once from one client


def config(tmp_path, **keys) -> str:
    path = tmp_path / "abuse.yaml"
    path.write_text(yaml.safe_dump({"upstream": [], **keys}), encoding="utf-8")
    return str(path)


@pytest.fixture
def protected(http_server, tmp_path):  # noqa: F811
    """A server with rate limiting (RATE a second, slip 2) and cookies on."""
    return http_server(args=["--config", config(tmp_path, rate_limit=True, cookies=True,
                                                rate_limit_responses_per_second=RATE,
                                                rate_limit_slip=2)])


def flood(port: int, wire_for, n: int, wait: float = 1.5) -> list[bytes]:
    """Send ``n`` queries at once from one socket; every answer that came back."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.connect(("127.0.0.1", port))
        for i in range(n):
            s.send(wire_for(i))
        answers = []
        s.settimeout(wait)
        try:
            while len(answers) < n:
                answers.append(s.recv(65535))
        except socket.timeout:
            pass
    return answers


def plain_query(i: int) -> bytes:
    q = dns.message.make_query(NAME, "A")
    q.id = i
    return q.to_wire()


def cookie_query(cookie: bytes, qid: int = 0) -> dns.message.Message:
    q = dns.message.make_query(NAME, "A", use_edns=0,
                               options=[dns.edns.CookieOption(cookie[:8], cookie[8:])])
    q.id = qid
    return q


def cookie_of(response: dns.message.Message) -> bytes:
    [opt] = [o for o in response.options if o.otype == dns.edns.COOKIE]
    return opt.client + opt.server


def test_a_udp_flood_is_limited_and_slipped(protected):
    started = time.monotonic()
    answers = flood(protected.port, plain_query, FLOOD)
    elapsed = time.monotonic() - started
    full = [a for a in answers if dns.message.from_wire(a).answer]
    truncated = [a for a in answers if dns.message.from_wire(a).flags & dns.flags.TC]
    # The account holds RATE answers and refills RATE a second.
    assert RATE <= len(full) <= RATE * (1 + elapsed) + 5, (len(full), elapsed)
    # Of the rest, every second one is truncated (slip 2), the others dropped.
    over = FLOOD - len(full)
    assert abs(len(truncated) - over / 2) <= 2, (len(truncated), over)
    assert len(answers) == len(full) + len(truncated)
    for a in truncated:
        r = dns.message.from_wire(a)
        assert not r.answer and r.question[0].name.to_text() == NAME + "."
        assert len(a) <= len(plain_query(0))  # no amplification
        dnslib.DNSRecord.parse(a)
    # A client told TC asks over TCP, which is never limited.
    for _ in range(30):
        r = dns.query.tcp(dns.message.make_query(NAME, "A"), "127.0.0.1", port=protected.port,
                          timeout=5)
        assert r.answer
    samples = scrape(protected)
    assert total(samples, "coredns_rrl_responses_exceeded_total") == over
    assert total(samples, "coredns_py_rrl_responses_total", action="truncated") == \
        len(truncated)
    assert total(samples, "coredns_py_rrl_responses_total", action="dropped") == \
        over - len(truncated)


def test_a_client_with_a_valid_cookie_is_never_limited(protected):
    client = os.urandom(8)
    first = dns.query.udp(cookie_query(client), "127.0.0.1", port=protected.port, timeout=5)
    cookie = cookie_of(first)
    assert cookie[:8] == client and len(cookie) == 24
    # The same flood that is limited without a cookie gets every answer...
    answers = flood(protected.port, lambda i: cookie_query(cookie, i).to_wire(), FLOOD, wait=3)
    assert len(answers) == FLOOD
    assert all(dns.message.from_wire(a).answer for a in answers)
    assert {cookie_of(dns.message.from_wire(a)) for a in answers} == {cookie}
    # ... while a client without one, from the same address, is limited.
    assert len(flood(protected.port, plain_query, 100)) < 100
    samples = scrape(protected)
    assert total(samples, "coredns_py_cookies_total", result="valid") >= FLOOD


def test_a_limited_cookie_client_is_told_badcookie(protected):
    # Past the rate, a client that sent a client cookie (but not yet a valid
    # server cookie) gets BADCOOKIE with a fresh cookie, not TC.
    client = os.urandom(8)
    answers = flood(protected.port, lambda i: cookie_query(client, i).to_wire(), 100)
    rcodes = [dns.message.from_wire(a).rcode() for a in answers]
    assert rcodes.count(dns.rcode.NOERROR) >= RATE
    assert rcodes.count(dns.rcode.BADCOOKIE) >= 20
    bad = next(dns.message.from_wire(a) for a in answers
               if dns.message.from_wire(a).rcode() == dns.rcode.BADCOOKIE)
    fresh = cookie_of(bad)
    assert fresh[:8] == client
    # and the retry with it is answered
    r = dns.query.udp(cookie_query(fresh), "127.0.0.1", port=protected.port, timeout=5)
    assert r.rcode() == dns.rcode.NOERROR and r.answer
    samples = scrape(protected)
    assert total(samples, "coredns_py_badcookie_responses_total", reason="rate_limit") == \
        rcodes.count(dns.rcode.BADCOOKIE)


def test_cookies_round_trip_with_dig(protected):
    out = protected.dig("+cookie", NAME)
    assert "status: NOERROR" in out and "COOKIE:" in out and "(good)" in out
    cookie = out.split("COOKIE: ")[1].split()[0]
    assert len(cookie) == 48
    # dig sends it back: the same cookie, still good
    again = protected.dig(f"+cookie={cookie}", NAME)
    assert f"COOKIE: {cookie} (good)" in again and "status: NOERROR" in again
    # A server cookie that is not ours: BADCOOKIE (RFC 7873 5.2.4); dig then
    # retries by itself with the fresh one.
    forged = cookie[:16] + "01000000" + cookie[24:32] + "0" * 16
    bad = protected.dig(f"+cookie={forged}", "+nobadcookie", NAME)
    assert "status: BADCOOKIE" in bad and "ANSWER: 0" in bad
    retried = protected.dig(f"+cookie={forged}", NAME)
    assert "BADCOOKIE, retrying" in retried and "status: NOERROR" in retried
    assert f"{NAME}." in retried.split("ANSWER SECTION:")[1]


def test_cookies_with_dnspython(protected):
    client = os.urandom(8)
    r = dns.query.udp(cookie_query(client), "127.0.0.1", port=protected.port, timeout=5)
    cookie = cookie_of(r)
    assert r.answer and cookie[:8] == client
    r = dns.query.udp(cookie_query(cookie), "127.0.0.1", port=protected.port, timeout=5)
    assert r.answer and cookie_of(r) == cookie
    forged = cookie[:8] + bytes(16)
    r = dns.query.udp(cookie_query(forged), "127.0.0.1", port=protected.port, timeout=5)
    assert r.rcode() == dns.rcode.BADCOOKIE and not r.answer and cookie_of(r)[:8] == client
    # Over TCP the same forged cookie is answered (the handshake proved the source).
    r = dns.query.tcp(cookie_query(forged), "127.0.0.1", port=protected.port, timeout=5)
    assert r.answer and cookie_of(r)[:8] == client
    # A malformed cookie: FORMERR (RFC 7873 5.2.2).
    q = dns.message.make_query(NAME, "A", use_edns=0,
                               options=[dns.edns.GenericOption(dns.edns.COOKIE, b"short")])
    r = dns.query.udp(q, "127.0.0.1", port=protected.port, timeout=5)
    assert r.rcode() == dns.rcode.FORMERR
    samples = scrape(protected)
    assert total(samples, "coredns_py_cookies_total", result="client_only") >= 1
    assert total(samples, "coredns_py_cookies_total", result="invalid") >= 2
    assert total(samples, "coredns_py_cookies_total", result="malformed") >= 1
    assert total(samples, "coredns_plugin_enabled", name="rrl") == 1
    assert total(samples, "coredns_plugin_enabled", name="cookies") == 1


def test_off_on_loopback_by_default(http_server):  # noqa: F811
    srv = http_server()
    assert "rate limiting on" not in srv.stderr and "cookies on" not in srv.stderr
    answers = flood(srv.port, plain_query, FLOOD, wait=3)
    assert len(answers) == FLOOD and all(dns.message.from_wire(a).answer for a in answers)
    out = srv.dig("+cookie", NAME)
    assert "status: NOERROR" in out and "COOKIE" not in out
    samples = scrape(srv)
    assert total(samples, "coredns_plugin_enabled", name="rrl") == 0
    assert not any(n == "coredns_rrl_responses_exceeded_total" for n, _ in samples)


# --- on by default beyond loopback ---------------------------------------------

EXPOSED_SCRIPT = netns.PRELUDE + r"""
background server "$PY" -m coredns_py serve --manifests "$REPO/zones" --listen 192.0.2.2:53 \
  --http ""
wait_dns 192.0.2.2 cluster.local SOA NOERROR "$LAST"
background loopback "$PY" -m coredns_py serve --manifests "$REPO/zones" --listen 127.0.0.1:53 \
  --http ""
wait_dns 127.0.0.1 cluster.local SOA NOERROR "$LAST"
"""


def test_on_by_default_on_an_address_beyond_loopback(tmp_path):
    """In a network namespace of its own (only ``lo``, which also holds
    192.0.2.2): the bundled config on 192.0.2.2 has cookies and rate
    limiting on, the same config on 127.0.0.1 has them off."""
    reason = netns.unavailable()
    if reason:
        pytest.skip(reason)
    run = netns.run(tmp_path, EXPOSED_SCRIPT, {
        "exposed": ["dig", "+time=2", "+tries=2", "+cookie", "@192.0.2.2", NAME],
        "loopback": ["dig", "+time=2", "+tries=2", "+cookie", "@127.0.0.1", NAME],
    }, ready_timeout=30, logs=("server.log", "loopback.log"))
    exposed = run.ok_step("exposed")
    assert "status: NOERROR" in exposed and "(good)" in exposed, run.debug()
    assert "COOKIE" not in run.ok_step("loopback")
    assert "DNS cookies on" in run.read("server.log")
    assert "response rate limiting on" in run.read("server.log")
    assert "rate limiting on" not in run.read("loopback.log")
