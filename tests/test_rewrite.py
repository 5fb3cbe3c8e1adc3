"""Query names rewritten (CoreDNS rewrite `name` rules, config key rewrite):
exact, prefix, suffix, substring and regex as CoreDNS reads them, stop and
continue, the answer written back (`answer auto`, `answer name`, `answer
value`) so the client sees the name it asked; in process around answer(),
through forwarding, and a real server from a Corefile asked with dig and
kdig."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import pytest

from coredns_py import stages
from coredns_py.cluster import fill
from coredns_py.config import Config, parse
from coredns_py.errors import ConfigError
from coredns_py.source.folder import ManifestSource
from coredns_py.stages import rewrite, rewrite_rules
from coredns_py.zone import answer, snapshot

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "forward"))
from forward_helpers import running_dnsmasq  # noqa: E402
from conftest import ZONES, corefile_server  # noqa: E402

PEER = ("127.0.0.1", 40000)


def rule(text: str) -> rewrite_rules.NameRule:
    return rewrite_rules.parse_rule("test", text.split())


# name, rule -> the new name (None: no match).  From CoreDNS's name_test.go.
REWRITES = [
    ("foo.example.com.", "name prefix foo bar", "bar.example.com."),
    ("foo.example.com.", "name prefix foo. bar.", "bar.example.com."),
    ("coredns.foo.", "name prefix foo bar", None),
    ("foo.example.com.", "name suffix com org", "foo.example.org."),
    ("foo.example.com.", "name suffix .com .org", "foo.example.org."),
    ("com.coredns.", "name suffix com org", None),
    ("coredns.ingress.coredns.rocks.", "name suffix .ingress.coredns.rocks nginx.coredns.rocks",
     "corednsnginx.coredns.rocks."),
    ("ftp.service.us-west-1.example.org.",
     "name substring service.us-west-1.example.org service.us-west-1.consul",
     "ftp.service.us-west-1.consul."),
    ("ftp-us-west-1.example.org.", r"name regex (.*)-(us-west-1)\.example\.org "
     "{1}.service.{2}.consul", "ftp.service.us-west-1.consul."),
    ("api.myapp.test.", "name api.myapp.test API.default.svc.cluster.local",
     "api.default.svc.cluster.local."),
    ("api.myapp.test.", "name exact api.myapp.test. a.b.", "a.b."),
    ("x.api.myapp.test.", "name exact api.myapp.test a.b", None),
]


@pytest.mark.parametrize("name, text, new", REWRITES)
def test_rules_rewrite_as_coredns_reads_them(name, text, new):
    assert rule(text).rewrite(name) == new


def test_stop_and_continue():
    rules = [rule("continue name suffix .a.test .b.test"), rule("name suffix .b.test .c.test"),
             rule("name suffix .c.test .d.test")]
    assert rewrite_rules.apply(rules, "x.a.test.")[0] == "x.c.test."
    assert rewrite_rules.apply(rules[1:], "x.a.test.")[0] is None


@pytest.mark.parametrize("text, needle", [
    ("type A AAAA", "rewrite type: not implemented (only `name` rules)"),
    ("name", "needs FROM and TO"),
    ("name wildcard a b", "one of exact, prefix"),
    ("name regex ( b", "invalid regex"),
    ("name regex (a) {2}", "uses more groups"),
    ("name suffix a b answer", "needs auto, name or value"),
    ("name suffix a b answer auto answer name (.*) {1}", "cannot be combined"),
    ("name suffix a b extra", "expected `answer ...`"),
    ("answer name a b", "must begin with a name rule"),
])
def test_bad_rules_are_config_errors(text, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        parse({"rewrite": [text]})


@pytest.fixture(scope="module")
def snap():
    config = Config()
    loaded = ManifestSource(ZONES).load()
    return snapshot.build(fill.build(loaded.objects, config, None), config, 9, ("127.0.0.1",))


def chain(snap, *texts, forwarding=False):
    rules = [rewrite_rules.parse_rule("test", t.split()) for t in texts]
    return stages.chain(lambda w, p, peer: answer.answer(snap, w, p, forwarding=forwarding),
                        [rewrite.Rewrite(rules).stage])


def ask(handler, name: str, rdtype: str = "A", proto: str = "udp", **kw):
    q = dns.message.make_query(name, rdtype, **kw)
    wire = q.to_wire()
    out = handler(wire, proto, PEER)
    msg = dns.message.from_wire(out)
    assert msg.id == q.id and msg.question == q.question  # the question as asked
    assert out[12:12 + len(q.question[0].name.to_wire())] == wire[12:12 + len(
        q.question[0].name.to_wire())]  # its letters' case too
    return msg


def records(msg) -> list[str]:
    """The answer and additional records as text, names in lower case (an
    owner equal to the question is written as a pointer to it, so it reads
    in the question's letters, as every answer of ours does)."""
    return sorted(rr.split(" ", 1)[0].lower() + " " + rr.split(" ", 1)[1]
                  for rs in msg.answer + msg.additional for rr in rs.to_text().splitlines())


def test_exact_rule_writes_the_answer_back(snap):
    h = chain(snap, "name exact api.myapp.test kubernetes.default.svc.cluster.local")
    msg = ask(h, "Api.MyApp.test.")
    assert msg.rcode() == dns.rcode.NOERROR and msg.flags & dns.flags.AA
    assert records(msg) == ["api.myapp.test. 5 IN A 10.96.0.1"]
    # other names go on untouched
    assert records(ask(h, "kubernetes.default.svc.cluster.local.")) == [
        "kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1"]


def test_suffix_with_answer_auto_maps_targets_back(snap):
    h = chain(snap, "name suffix .shop.test .shop.svc.cluster.local answer auto")
    msg = ask(h, "_http._tcp.cart.shop.test.", "SRV", use_edns=0)
    assert [rs.name.to_text() for rs in msg.answer] == ["_http._tcp.cart.shop.test."]
    assert all(rd.target.to_text() == "cart.shop.test." for rd in msg.answer[0])
    assert {rs.name.to_text() for rs in msg.additional} == {"cart.shop.test."}
    # NXDOMAIN keeps its rcode and the zone's SOA
    msg = ask(h, "nope.shop.test.")
    assert msg.rcode() == dns.rcode.NXDOMAIN
    assert msg.authority[0].name.to_text() == "cluster.local."


def test_without_answer_rules_only_the_question_is_restored(snap):
    """As CoreDNS: a suffix rule without `answer auto` leaves the records'
    names as the rewritten question's."""
    msg = ask(chain(snap, "name suffix .shop.test .shop.svc.cluster.local"), "cart.shop.test.")
    assert [rs.name.to_text() for rs in msg.answer] == ["cart.shop.svc.cluster.local."]


def test_regex_with_answer_name_and_value(snap):
    h = chain(snap, r"name regex (.*)-(shop)\.example\.org {1}.{2}.svc.cluster.local "
                    r"answer name (.*)\.(shop)\.svc\.cluster\.local {1}-{2}.example.org "
                    r"answer value (.*)\.(shop)\.svc\.cluster\.local {1}-{2}.example.org")
    msg = ask(h, "cart-shop.example.org.", "SRV")
    assert msg.answer[0].name.to_text() == "cart-shop.example.org."
    assert {rd.target.to_text() for rd in msg.answer[0]} == {"cart-shop.example.org."}
    assert ask(h, "cart-shop.example.org.").answer[0][0].address == "10.96.120.15"


def test_a_new_name_that_is_not_a_name_is_servfail(snap):
    h = chain(snap, "name regex ^(.*)$ {1}" + "x" * 70 + ".{1}")
    q = dns.message.make_query("a.test.", "A")
    msg = dns.message.from_wire(h(q.to_wire(), "udp", PEER))
    assert msg.rcode() == dns.rcode.SERVFAIL and msg.id == q.id


def test_answers_written_back_are_kept_and_fit_the_client(snap):
    rules = [rule("name suffix .big.test .bigns.svc.cluster.local answer auto")]
    from coredns_py.cluster import fill as fill_mod
    fixtures = Path(__file__).parent / "fixtures" / "answer"
    loaded = ManifestSource(fixtures).load()
    big = snapshot.build(fill_mod.build(loaded.objects, Config(), None), Config(), 9)
    stage = rewrite.Rewrite(rules)
    h = stage.stage(lambda w, p, peer: answer.answer(big, w, p))
    udp = ask(h, "big.big.test.")  # 100 addresses: over 512 bytes
    assert udp.flags & dns.flags.TC and not udp.answer
    tcp = ask(h, "big.big.test.", proto="tcp")
    assert len(tcp.answer[0]) == 100 and tcp.answer[0].name.to_text() == "big.big.test."
    assert len(stage._reverted) == 2
    again = ask(h, "BIG.big.test.", proto="tcp")  # another case: another entry
    assert records(again) == records(tcp) and len(stage._reverted) == 3


def test_forwarded_answers_are_written_back_too(snap):
    """A name rewritten to one outside our zones goes upstream; the answer
    that comes later is written back all the same."""
    async def upstream_answer(wire):
        q = dns.message.from_wire(wire)
        r = dns.message.make_response(q)
        r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "CNAME",
                                            "edge.cdn.example."))
        return r.to_wire()

    def inner(wire, proto, peer):
        return upstream_answer(wire)

    h = rewrite.Rewrite([rule("name suffix .myapp.test .example.com answer auto")]).stage(inner)
    q = dns.message.make_query("www.myapp.test.", "A")
    out = asyncio.run(h(q.to_wire(), "udp", PEER))
    msg = dns.message.from_wire(out)
    assert msg.question == q.question
    assert [rs.to_text() for rs in msg.answer] == ["www.myapp.test. 60 IN CNAME edge.cdn.example."]


def test_corefile_forms(tmp_path):
    from coredns_py import corefile
    path = tmp_path / "Corefile"
    path.write_text(""".:53 {
    rewrite name api.myapp.test api.default.svc.cluster.local
    rewrite continue name suffix .myapp.test .default.svc.cluster.local answer auto
    rewrite stop {
        name regex (.*)-(us-west-1)\\.example\\.org {1}.service.{2}.consul
        answer name (.*)\\.service\\.(us-west-1)\\.consul {1}-{2}.example.org
    }
    kubernetes cluster.local
}
""")
    cfg = corefile.load(path).config
    assert [(r.mode, r.match, r.auto, len(r.answers)) for r in cfg.rewrite] == [
        ("stop", "exact", False, 0), ("continue", "suffix", True, 0), ("stop", "regex", False, 1)]
    path.write_text(".:53 {\n    kubernetes cluster.local\n    rewrite ttl example.com 30\n}\n")
    with pytest.raises(ConfigError, match=f"{path}:3: rewrite ttl: not implemented"):
        corefile.load(path)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    yield from running_dnsmasq(tmp_path_factory)


def test_process_dig_and_kdig(tmp_path, state_home, upstream):
    srv = corefile_server(ZONES, f""".:53 {{
    rewrite name exact api.myapp.test webapp.default.svc.cluster.local
    rewrite name suffix .shop.test .shop.svc.cluster.local answer auto
    rewrite name exact pypi.myapp.test pypi.example.test
    kubernetes cluster.local in-addr.arpa ip6.arpa
    forward . {upstream.address}
}}
""", tmp_path, state_home)
    try:
        webapp = srv.dig_short("webapp.default.svc.cluster.local")
        out = srv.dig("API.myapp.test")
        assert ";API.myapp.test.\t\t\tIN\tA" in out and "mismatch" not in out
        assert f"API.myapp.test.\t\t5\tIN\tA\t{webapp[0]}" in out
        assert srv.dig_short("_grpc._tcp.cart.shop.test", "SRV") == [
            "0 50 9090 cart.shop.test."]
        # forwarded, then written back
        assert srv.dig_short("pypi.myapp.test") == ["192.0.2.10"]
        kdig = subprocess.run(["kdig", f"@{srv.host}", "-p", str(srv.port), "+tcp",
                               "cart.shop.test", "AAAA"], capture_output=True, text=True,
                              timeout=30)
        assert re.search(r"\ncart\.shop\.test\.\s+5\s+IN\s+AAAA\s+fd00:10:96::7b2\n",
                         kdig.stdout), kdig.stdout
        assert "status: NOERROR" in kdig.stdout
    finally:
        srv.stop()
