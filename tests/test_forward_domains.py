"""Per-domain forwarding and the forward plugin's options: the domain table
(longest suffix wins, reverse zones, except), policies, CoreDNS's health
checks and max_fails, force_tcp, DNS over TLS; the `forward` config key.

In-process tests drive answer() and the Forwarder against scriptable
upstreams in the test's event loop; process tests run `coredns-py serve`
against dnsmasq and unbound (DNS over TLS, with a CA the test makes) on
loopback, and ask it with dig.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from coredns_py import config as config_mod
from coredns_py.errors import ConfigError
from coredns_py.resolver import forward_config
from coredns_py.resolver.acl import Acl
from coredns_py.resolver.domains import Domains
from coredns_py.resolver.forward import Forwarder, from_config
from coredns_py.resolver.pool import Pool
from coredns_py.resolver.transport import Transport
from coredns_py.resolver.upstreams import Upstream, parse_address

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "forward"))
from forward_helpers import (CLUSTER, Blackhole, FakeUpstream, a_records,  # noqa: E402
                             dead_port, reply, running_dnsmasq, snapshot_of)
from conftest import ServerProcess  # noqa: E402
from helpers import dot  # noqa: E402

from test_forward import ALL_NETWORKS, ask, dig_status, run, values  # noqa: E402

ROOT = dns.name.root


@pytest.fixture(scope="module")
def snap():
    return snapshot_of(CLUSTER)


def up_of(fake) -> Upstream:
    return Upstream(fake.host, fake.port)


def pool(domain: str, *fakes, **kw) -> Pool:
    kw.setdefault("check_timeout", 0.2)
    return Pool(dns.name.from_text(domain), [up_of(f) if not isinstance(f, Upstream) else f
                                            for f in fakes], **kw)


def table(**pools) -> Forwarder:
    """A forwarder of these domains ('root' is '.'); a None pool: not forwarded."""
    mapping = {dns.name.from_text("." if d == "root" else d.replace("_", ".")): p
               for d, p in pools.items()}
    return Forwarder(Domains(mapping), Acl(ALL_NETWORKS), None, timeout=0.5, deadline=2.0)


def answering(tag: str):
    """An upstream answering every A question with 192.0.2.<tag>."""
    def responder(query, proto):
        name = query.question[0].name.to_text()
        if query.question[0].rdtype != dns.rdatatype.A:
            return reply(query)
        return reply(query, answer=(f"{name} 60 IN A 192.0.2.{tag}",))
    return responder


def names_asked(fake) -> list[str]:
    """The questions an upstream got, health checks (". NS") left out."""
    return [n for p, q in fake.queries
            for n in [q.question[0].name.to_text().lower()]
            if not (n == "." and q.question[0].rdtype == dns.rdatatype.NS)]


def checks(fake) -> int:
    return sum(1 for _p, q in fake.queries
               if q.question[0].name == ROOT and q.question[0].rdtype == dns.rdatatype.NS)


# --- the domain table -------------------------------------------------------------------


def test_longest_suffix_wins_whatever_the_order(snap):
    async def main():
        async with FakeUpstream(responder=answering("1")) as world, \
                FakeUpstream(responder=answering("2")) as corp, \
                FakeUpstream(responder=answering("3")) as lab:
            fwd = table(lab_corp_example=pool("lab.corp.example", lab),
                        root=pool(".", world), corp_example=pool("corp.example", corp))
            for name, want in [("www.example.org.", "1"), ("corp.example.", "2"),
                               ("git.corp.example.", "2"), ("x.lab.corp.example.", "3"),
                               ("GIT.Corp.Example.", "2"), ("notcorp.example.", "1")]:
                r, _ = await ask(fwd, snap, name)
                assert [rd.to_text() for rs in r.answer for rd in rs] == [
                    f"192.0.2.{want}"], name
            assert names_asked(lab) == ["x.lab.corp.example."]
            assert sorted(names_asked(corp)) == ["corp.example.", "git.corp.example.",
                                                 "git.corp.example."]
            await fwd.close()
    run(main())


def test_reverse_zones_and_cidr_domains(snap):
    assert forward_config.domains_of("10.0.0.0/8") == ["10.in-addr.arpa"]
    assert forward_config.domains_of("192.168.0.0/23") == ["0.168.192.in-addr.arpa",
                                                          "1.168.192.in-addr.arpa"]
    assert forward_config.domains_of("fd12::/16") == ["2.1.d.f.ip6.arpa"]

    async def main():
        async with FakeUpstream() as world, FakeUpstream(responder=lambda q, p: reply(
                q, answer=(f"{q.question[0].name} 60 IN PTR host.corp.example.",))) as corp:
            fwd = table(root=pool(".", world), **{"10_in-addr_arpa": pool("10.in-addr.arpa",
                                                                            corp)})
            r, _ = await ask(fwd, snap, "5.0.8.10.in-addr.arpa.", "PTR")
            assert values(r) == ["5.0.8.10.in-addr.arpa. PTR host.corp.example."]
            await ask(fwd, snap, "5.0.0.192.in-addr.arpa.", "PTR")
            assert names_asked(world) == ["5.0.0.192.in-addr.arpa."]
            await fwd.close()
    run(main())


def test_a_domain_without_upstreams_and_except_names_are_refused(snap):
    async def main():
        async with FakeUpstream() as world:
            fwd = table(root=pool(".", world), internal_example=None)
            r, _ = await ask(fwd, snap, "db.internal.example.")
            assert r.rcode() == dns.rcode.REFUSED
            r, _ = await ask(fwd, snap, "www.example.")
            assert r.rcode() == dns.rcode.NOERROR
            assert names_asked(world) == ["www.example."]
            assert fwd.stats["not_forwarded"] == 1
            await fwd.close()
    run(main())


def test_from_config_builds_the_table_with_except_and_options():
    cfg = config_mod.parse({
        "upstream": ["127.0.0.2"],
        "forward": [{"domain": "corp.example", "to": ["127.0.0.3", "127.0.0.4:5300"],
                     "policy": "round_robin", "health_check": 2, "max_fails": 0,
                     "force_tcp": True, "except": ["vpn.corp.example"]},
                    {"domain": "10.0.0.0/8", "to": ["127.0.0.3"]},
                    {"domain": "blocked.example", "to": []}]})
    fwd = from_config(cfg, [])
    corp = fwd.domains.find(dns.name.from_text("a.b.corp.example."))
    assert corp.upstreams == (Upstream("127.0.0.3"), Upstream("127.0.0.4", 5300))
    assert corp.policy == "round_robin" and corp.transport.force_tcp
    assert all(h.max_fails == 0 and h.interval == 2 for h in corp.health.values())
    assert fwd.domains.find(dns.name.from_text("x.vpn.corp.example.")) is None
    assert fwd.domains.find(dns.name.from_text("blocked.example.")) is None
    assert fwd.domains.find(dns.name.from_text("1.2.3.10.in-addr.arpa.")).upstreams == (
        Upstream("127.0.0.3"),)
    root = fwd.domains.find(dns.name.from_text("example.org."))
    assert root.upstreams == (Upstream("127.0.0.2"),) and root.policy == "sequential"
    # only stub domains, no root: the rest is refused, the stubs forwarded
    fwd = from_config(config_mod.parse({"upstream": [], "forward": [
        {"domain": "corp.example", "to": ["127.0.0.3"]}]}), [])
    assert fwd.domains.find(dns.name.from_text("example.org.")) is None
    assert from_config(config_mod.parse({"upstream": [], "forward": [
        {"domain": "corp.example", "to": []}]}), []) is None


@pytest.mark.parametrize("data, needle", [
    ({"forward": {"domain": "x"}}, "expected a list"),
    ({"forward": [{"to": ["10.0.0.1"]}]}, "needs a domain"),
    ({"forward": [{"domain": "a..b", "to": []}]}, "not a domain name"),
    ({"forward": [{"domain": "x.example", "to": ["nameserver"]}]}, "not an IP address"),
    ({"forward": [{"domain": "x.example", "to": [], "policy": "fastest"}]}, "policy"),
    ({"forward": [{"domain": "x.example", "to": [], "max_fails": -1}]}, "max_fails"),
    ({"forward": [{"domain": "x.example", "to": [], "health_check": "1s"}]}, "health_check"),
    ({"forward": [{"domain": "x.example", "to": [], "frobnicate": 1}]}, "frobnicate"),
    ({"forward": [{"domain": "x.example", "to": ["10.0.0.1"],
                   "tls_servername": "dns.example"}]}, "no upstream is tls://"),
    ({"forward": [{"domain": "x.example", "to": ["tls://10.0.0.1"],
                   "tls_ca": "/nonexistent/ca.pem"}]}, "TLS files"),
    ({"forward": [{"domain": "x.example", "to": []}, {"domain": "X.example.", "to": []}]},
     "forwarded twice"),
    ({"forward": [{"domain": "x.example", "to": [], "except": ["y.example"]}]},
     "not under x.example"),
    ({"upstream": ["10.0.0.1"], "forward": [{"domain": ".", "to": ["10.0.0.2"]}]},
     "keep one"),
    ({"forward": [{"domain": "10.0.0.0/4", "to": []}]}, "10.0.0.0/4"),
])
def test_forward_key_errors_name_the_file_and_entry(data, needle):
    with pytest.raises(ConfigError) as err:
        config_mod.parse(data, "my.yaml")
    assert "my.yaml" in str(err.value) and needle in str(err.value), str(err.value)


def test_tls_upstream_addresses():
    assert parse_address("tls://9.9.9.9") == Upstream("9.9.9.9", 853, True)
    assert parse_address("tls://9.9.9.9%dns.quad9.net:10853") == Upstream(
        "9.9.9.9", 10853, True, "dns.quad9.net")
    assert parse_address("tls://[2620:fe::fe]%dns.quad9.net") == Upstream(
        "2620:fe::fe", 853, True, "dns.quad9.net")
    assert parse_address("dns://10.0.0.1:5300") == Upstream("10.0.0.1", 5300)
    assert str(parse_address("tls://9.9.9.9")) == "tls://9.9.9.9:853"
    with pytest.raises(ValueError):
        parse_address("tls://9.9.9.9%:853")


# --- policies -------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["sequential", "round_robin", "random"])
def test_policies(snap, policy):
    async def main():
        async with FakeUpstream(responder=answering("1")) as a, \
                FakeUpstream(responder=answering("2")) as b:
            fwd = table(root=pool(".", a, b, policy=policy))
            for i in range(40):
                await ask(fwd, snap, f"q{i}.example.")
            got = (len(names_asked(a)), len(names_asked(b)))
            if policy == "sequential":
                assert got == (40, 0)
            elif policy == "round_robin":
                assert got == (20, 20)
                # each question starts one further along: strictly alternating
                side = {n: 0 for n in names_asked(a)} | {n: 1 for n in names_asked(b)}
                sides = [side[f"q{i}.example."] for i in range(40)]
                assert all(sides[i] != sides[i + 1] for i in range(39)), sides
            else:  # 40 draws all to one side: 2 chances in 2**40
                assert got[0] > 0 and got[1] > 0 and sum(got) == 40
            await fwd.close()
    run(main())


# --- health checks and max_fails ------------------------------------------------------------


def test_failed_upstream_is_checked_with_root_ns_until_it_answers(snap, caplog):
    async def main():
        state = {"alive": False}

        def flaky(query, proto):
            return a_records(query, proto) if state["alive"] else None

        async with FakeUpstream(responder=flaky) as first, FakeUpstream() as second:
            p = pool(".", first, second, health_check=0.05, check_timeout=0.1)
            fwd = table(root=p)
            r, _ = await ask(fwd, snap, "one.example.")  # first times out, second answers
            assert values(r) == ["one.example. A 192.0.2.1"]
            started = time.monotonic()
            r, _ = await ask(fwd, snap, "two.example.")
            assert time.monotonic() - started < 0.3  # the checked one is asked last
            assert names_asked(second) == ["one.example.", "two.example."]
            await asyncio.sleep(0.6)
            n = checks(first)
            assert 2 <= n <= 8, n  # a check every 0.05 s plus its 0.1 s timeout
            probe = [q for _p, q in first.queries if q.question[0].name == ROOT][0]
            assert probe.flags & dns.flags.RD  # CoreDNS's ". IN NS" with RD
            assert p.health[up_of(first)].down  # more than max_fails (2) in a row
            state["alive"] = True
            for _ in range(50):
                if not p.health[up_of(first)].checking:
                    break
                await asyncio.sleep(0.02)
            assert p.health[up_of(first)].fails == 0
            await ask(fwd, snap, "three.example.")
            assert names_asked(first)[-1] == "three.example."  # first again, sequential
            quiet = checks(first)
            await asyncio.sleep(0.3)
            assert checks(first) == quiet  # no checks while it answers
            await fwd.close()

    with caplog.at_level(logging.INFO, logger="coredns_py.forward"):
        run(main())
    assert "failed (no answer in time); checking it every 0.05 s" in caplog.text
    assert "is down: 3 health checks in a row without an answer" in caplog.text
    assert "answers again" in caplog.text


def test_a_down_upstream_is_not_asked_while_another_is_up(snap):
    async def main():
        async with FakeUpstream(responder=lambda q, p: None) as silent:
            dead = Upstream("127.0.0.1", dead_port("127.0.0.1"))
            p = pool(".", silent, dead, health_check=0.02, check_timeout=0.05)
            fwd = table(root=p)
            p.failed(up_of(silent), "test")
            for _ in range(100):
                if p.health[up_of(silent)].down:
                    break
                await asyncio.sleep(0.02)
            assert p.health[up_of(silent)].down
            r, _ = await ask(fwd, snap, "www.example.")
            # the other one refuses connections: SERVFAIL, and the down one
            # was never asked the question (only checked)
            assert r.rcode() == dns.rcode.SERVFAIL
            assert names_asked(silent) == []
            await fwd.close()
    run(main())


def test_max_fails_zero_never_checks_and_always_asks(snap):
    async def main():
        with Blackhole() as hole:
            async with FakeUpstream() as second:
                p = pool(".", Upstream(hole.host, hole.port), second, max_fails=0,
                         health_check=0.02)
                fwd = table(root=p)
                for name in ("one.example.", "two.example."):
                    started = time.monotonic()
                    r, _ = await ask(fwd, snap, name)
                    assert values(r) == [f"{name} A 192.0.2.1"]
                    assert time.monotonic() - started >= 0.45  # the timeout, every time
                assert not p.health[Upstream(hole.host, hole.port)].checking
                await fwd.close()
    run(main())


def test_force_tcp(snap):
    async def main():
        async with FakeUpstream() as up:
            fwd = table(root=pool(".", up, transport=Transport(force_tcp=True)))
            r, _ = await ask(fwd, snap, "www.example.")
            assert values(r) == ["www.example. A 192.0.2.1"]
            assert [p for p, _q in up.queries] == ["tcp"]
            await fwd.close()
    run(main())


# --- real servers: dnsmasq for two domains, unbound over TLS --------------------------------


def _need(program_ok: bool, what: str):
    if not program_ok:
        pytest.skip(f"{what} is not installed (tests/run installs it)")


@pytest.fixture(scope="module")
def corp_dnsmasq(tmp_path_factory):
    base = tmp_path_factory.mktemp("corp")
    hosts = base / "hosts"
    hosts.write_text("10.8.0.10 git.corp.example\n10.8.0.11 wiki.corp.example\n")
    yield from running_dnsmasq(tmp_path_factory, "127.0.0.7", hosts_file=hosts,
                               local=("corp.example", "8.10.in-addr.arpa"), logdir=base)


@pytest.fixture(scope="module")
def world_dnsmasq(tmp_path_factory):
    yield from running_dnsmasq(tmp_path_factory, logdir=tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def unbound_dot(tmp_path_factory):
    _need(dot.available(), "unbound")
    base = tmp_path_factory.mktemp("dot")
    certs = dot.make_ca(base / "pki", ["dns.dot.test"], ["127.0.0.8"])
    server = dot.Unbound(base / "unbound", certs, zones=("dot.test",),
                         records=["www.dot.test. 300 IN A 192.0.2.53",
                                  "www.dot.test. 300 IN AAAA 2001:db8::53"])
    server.start()
    # the fixture itself, checked with a real DoT client trusting our CA
    out = server.kdig("www.dot.test", server_name="dns.dot.test")
    assert out.returncode == 0 and "192.0.2.53" in out.stdout, out.stdout + out.stderr
    yield server
    server.stop()


def serve_yaml(tmp_path_factory, text: str) -> ServerProcess:
    base = tmp_path_factory.mktemp("fwd-domains")
    (base / "state").mkdir()
    cfg = base / "config.yaml"
    cfg.write_text(text)
    srv = ServerProcess(CLUSTER, state_home=base / "state", logdir=base / "log",
                        args=["--config", str(cfg)])
    return srv.start()


def test_process_stub_domains_with_dnsmasq(tmp_path_factory, world_dnsmasq, corp_dnsmasq):
    srv = serve_yaml(tmp_path_factory, f"""
upstream: ["{world_dnsmasq.address}"]
forward:
  - domain: corp.example
    to: ["{corp_dnsmasq.address}"]
  - domain: 10.8.0.0/16
    to: ["{corp_dnsmasq.address}"]
""")
    try:
        assert srv.dig_short("git.corp.example") == ["10.8.0.10"]
        assert srv.dig_short("pypi.example.test") == ["192.0.2.10"]
        assert srv.dig_short("-x", "10.8.0.11") == ["wiki.corp.example."]
        assert dig_status(srv.dig("nope.corp.example")) == "NXDOMAIN"
        assert srv.dig_short("web.default.svc.cluster.local") == ["10.96.0.80"]
        assert corp_dnsmasq.settle("git.corp.example", "A", 1) == 1
        assert world_dnsmasq.count("git.corp.example") == 0
        assert corp_dnsmasq.count("pypi.example.test") == 0
        assert corp_dnsmasq.settle("11.0.8.10.in-addr.arpa", "PTR", 1) == 1
        srv.wait_stderr(r"names under corp\.example to 127\.0\.0\.7:\d+")
    finally:
        srv.stop()


def test_process_dns_over_tls_upstream(tmp_path_factory, unbound_dot, world_dnsmasq):
    srv = serve_yaml(tmp_path_factory, f"""
upstream: ["{world_dnsmasq.address}"]
forward:
  - domain: dot.test
    to: ["tls://127.0.0.8:{unbound_dot.tls_port}"]
    tls_servername: dns.dot.test
    tls_ca: "{unbound_dot.certs.ca}"
  - domain: wrongname.dot.test
    to: ["tls://127.0.0.8:{unbound_dot.tls_port}"]
    tls_servername: somebody.else
    tls_ca: "{unbound_dot.certs.ca}"
  - domain: noca.dot.test
    to: ["tls://127.0.0.8:{unbound_dot.tls_port}"]
    tls_servername: dns.dot.test
""")
    try:
        assert srv.dig_short("www.dot.test") == ["192.0.2.53"]
        assert srv.dig_short("www.dot.test", "AAAA") == ["2001:db8::53"]
        assert unbound_dot.tls_queries("www.dot.test") >= 1
        # a certificate for another name, or from a CA the system does not
        # trust: the upstream is not used, SERVFAIL
        before = unbound_dot.tls_queries("x.wrongname.dot.test")
        out = srv.dig("x.wrongname.dot.test")
        assert dig_status(out) == "SERVFAIL"
        assert dig_status(srv.dig("x.noca.dot.test")) == "SERVFAIL"
        assert unbound_dot.tls_queries("x.wrongname.dot.test") == before
        srv.wait_stderr(r"upstream tls://127\.0\.0\.8:\d+ \(for wrongname\.dot\.test\) "
                        r"failed \(.*hostname mismatch")
        srv.wait_stderr(r"\(for noca\.dot\.test\) failed \(.*unable to get local issuer")
    finally:
        srv.stop()


def test_tls_connections_are_kept_and_reused(unbound_dot, snap):
    async def main():
        ctx = forward_config.ForwardDomain(
            "dot.test", (f"tls://127.0.0.8:{unbound_dot.tls_port}",),
            tls_servername="dns.dot.test", tls_ca=str(unbound_dot.certs.ca)).tls_context()
        transport = Transport(tls=ctx, server_name="dns.dot.test")
        up = Upstream("127.0.0.8", unbound_dot.tls_port, True)
        fwd = table(dot_test=Pool(dns.name.from_text("dot.test"), [up], transport=transport))
        for _ in range(3):
            r, _ = await ask(fwd, snap, "www.dot.test.")
            assert values(r) == ["www.dot.test. A 192.0.2.53"]
        # one connection, kept between questions
        assert len(transport._idle[up]) == 1
        await fwd.close()
        assert transport._idle == {}
    run(main())
