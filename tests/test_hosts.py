"""Static names from hosts files (CoreDNS's hosts plugin): the file format,
what the stage answers and when it lets a question go on, and the server
as a user runs it: several files, a change picked up, PTR, names inside and
outside our zone, dig and dnspython as clients."""

from __future__ import annotations


import dns.flags
import dns.message
import dns.rcode
import pytest

from coredns_py import config as config_mod
from coredns_py.errors import ConfigError
from coredns_py.stages import hosts, hostsfile
from coredns_py.stages import chain

from conftest import ServerProcess, wait_until, write_atomic

NEXT = b"next"  # what the inner handler says: the question went on


def inner(wire, proto, peer):
    return NEXT


def handler(*specs):
    observed = []
    h = chain(inner, [hosts.stage(hosts.Hosts(specs), lambda *a: observed.append(a))])
    return h, observed


def ask(h, name, rdtype="A", **kw):
    q = dns.message.make_query(name, rdtype, **kw)
    out = h(q.to_wire(), "udp", ("127.0.0.1", 5000))
    return out if out == NEXT else dns.message.from_wire(out)


def rdata(msg) -> list[str]:
    return [rd.to_text() for rs in msg.answer for rd in rs]


def test_file_format():
    text = ("# comment\n127.0.0.1 localhost\n192.0.2.7  Mock-API.example mock  # inline\n"
            "fe80::1%eth0 linklocal.example\n::ffff:192.0.2.8 mapped.example\n"
            "not-an-ip name.example\n192.0.2.9\n192.0.2.10 bad..name\n"
            "2001:db8::7 mock-api.example\n")
    table, problems = hostsfile.parse(text, "h", ["."])
    assert table.v4["mock-api.example."] == ["192.0.2.7"]
    assert table.v4["mock."] == ["192.0.2.7"]
    assert table.v6["mock-api.example."] == ["2001:db8::7"]
    assert table.v6["linklocal.example."] == ["fe80::1"]
    assert table.v4["mapped.example."] == ["192.0.2.8"]
    assert table.ptr["7.2.0.192.in-addr.arpa."] == ["mock-api.example.", "mock."]
    assert problems == ["h:6: 'not-an-ip' is not an IP address",
                        "h:7: an address without a name: '192.0.2.9'",
                        "h:8: 'bad..name' is not a host name"]
    table, _ = hostsfile.parse(text, "h", ["example."], reverse=False)
    assert "localhost." not in table.v4 and "mock." not in table.v4 and not table.ptr


def test_answers_a_aaaa_ptr_nodata_and_fallthrough():
    spec = hosts.HostsSpec(entries=("192.0.2.7 mock-api.example", "2001:db8::7 v6only.example"),
                           ttl=60, fallthrough=(".",))
    h, observed = handler(spec)
    r = ask(h, "Mock-API.Example.")
    assert rdata(r) == ["192.0.2.7"] and r.answer[0].ttl == 60
    assert r.flags & dns.flags.AA and r.rcode() == dns.rcode.NOERROR
    assert r.question[0].name.to_text() == "Mock-API.Example."  # echoed as asked
    r = ask(h, "mock-api.example.", "AAAA")
    assert r.rcode() == dns.rcode.NOERROR and r.answer == []  # NODATA
    assert rdata(ask(h, "v6only.example.", "AAAA")) == ["2001:db8::7"]
    assert ask(h, "v6only.example.", "A").answer == []
    assert rdata(ask(h, "7.2.0.192.in-addr.arpa.", "PTR")) == ["mock-api.example."]
    assert rdata(ask(h, "7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
                     "PTR")) == ["v6only.example."]
    assert ask(h, "8.2.0.192.in-addr.arpa.", "PTR") == NEXT  # unknown address: goes on
    assert ask(h, "other.example.") == NEXT  # fallthrough
    assert ask(h, "web.default.svc.cluster.local.") == NEXT
    assert ask(h, "mock-api.example.", "TXT").answer == []  # NODATA, not upstream
    assert [a[-1] for a in observed] and all(a[-1] == "hosts" for a in observed)


def test_without_fallthrough_unknown_names_are_servfail_as_coredns():
    h, _ = handler(hosts.HostsSpec(entries=("192.0.2.7 a.internal",), zones=("internal.",)))
    assert ask(h, "b.internal.").rcode() == dns.rcode.SERVFAIL
    assert ask(h, "a.internal.").rcode() == dns.rcode.NOERROR
    assert ask(h, "b.example.") == NEXT  # outside its zones
    h, _ = handler(hosts.HostsSpec(entries=("192.0.2.7 a.internal",),
                                   fallthrough=("other.",)))
    assert ask(h, "b.internal.").rcode() == dns.rcode.SERVFAIL
    assert ask(h, "x.other.") == NEXT


def test_fallthrough_unsupported_sends_other_types_on():
    h, _ = handler(hosts.HostsSpec(entries=("192.0.2.7 a.example",), fallthrough=(".",),
                                   fallthrough_unsupported=True))
    assert ask(h, "a.example.", "TXT") == NEXT
    assert rdata(ask(h, "a.example.")) == ["192.0.2.7"]


def test_edns_and_odd_packets():
    h, _ = handler(hosts.HostsSpec(entries=("192.0.2.7 a.example",), fallthrough=(".",)))
    r = ask(h, "a.example.", use_edns=0, payload=1232)
    assert r.edns == 0 and rdata(r) == ["192.0.2.7"]
    assert h(b"\x00" * 5, "udp", None) == NEXT  # a runt: answer() decides
    q = dns.message.make_query("a.example.", "A", use_edns=1)
    assert h(q.to_wire(), "udp", None) == NEXT  # BADVERS is answer()'s


def test_hosts_key_parse_and_errors(tmp_path):
    cfg = config_mod.parse({"hosts": [{"files": [str(tmp_path / "h")], "ttl": 60,
                                       "reload": 0.5, "fallthrough": True,
                                       "entries": ["192.0.2.1 x.example"]}]})
    spec = cfg.hosts[0]
    assert spec.files == (str(tmp_path / "h"),) and spec.fallthrough == (".",)
    assert spec.ttl == 60 and spec.reload == 0.5 and spec.zones == (".",)
    for bad, needle in [({"hosts": {"files": []}}, "expected a list"),
                        ({"hosts": [{}]}, "needs files or entries"),
                        ({"hosts": [{"entries": ["nope x"]}]}, "not an IP address"),
                        ({"hosts": [{"entries": ["192.0.2.1 a"], "ttl": -1}]}, "ttl"),
                        ({"hosts": [{"entries": ["192.0.2.1 a"], "colour": 1}]}, "colour"),
                        ({"hosts": [{"entries": ["192.0.2.1 a"],
                                     "fallthrough_unsupported": True}]}, "needs fallthrough")]:
        with pytest.raises(ConfigError) as err:
            config_mod.parse(bad, "my.yaml")
        assert needle in str(err.value) and "my.yaml" in str(err.value), str(err.value)


# --- the server -------------------------------------------------------------------------


@pytest.fixture
def hosts_server(tmp_path, state_home):
    first, second = tmp_path / "hosts", tmp_path / "more-hosts"
    first.write_text("192.0.2.7 mock-api.example\n10.96.0.250 pinned.default.svc.cluster.local\n")
    second.write_text("2001:db8::9 host.docker.internal\n192.0.2.9 host.docker.internal\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"""
upstream: []
hosts:
  - files: ["{first}", "{second}"]
    entries: ["192.0.2.50 inline.example"]
    reload: 0.2
    ttl: 60
    fallthrough: true
""")
    srv = ServerProcess(state_home=state_home, args=["--config", str(cfg)],
                        logdir=tmp_path / "log").start()
    yield srv, first, second
    srv.stop()


def test_process_hosts_names_ptr_and_the_cluster_behind(hosts_server):
    srv, first, second = hosts_server
    assert srv.dig_short("mock-api.example") == ["192.0.2.7"]
    assert srv.dig_short("host.docker.internal") == ["192.0.2.9"]
    assert srv.dig_short("host.docker.internal", "AAAA") == ["2001:db8::9"]
    assert srv.dig_short("inline.example") == ["192.0.2.50"]
    assert srv.dig_short("-x", "192.0.2.7") == ["mock-api.example."]
    # a name inside our zone that only the hosts file has
    assert srv.dig_short("pinned.default.svc.cluster.local") == ["10.96.0.250"]
    # everything else falls through to the cluster zone
    assert srv.dig_short("kubernetes.default.svc.cluster.local") == ["10.96.0.1"]
    out = srv.dig("mock-api.example")
    assert "flags: qr aa rd;" in out and "60\tIN\tA\t192.0.2.7" in out
    # not in the hosts, not ours, forwarding off: REFUSED, as without hosts
    assert srv.query("elsewhere.example.").rcode() == dns.rcode.REFUSED


def test_process_hosts_file_change_is_picked_up(hosts_server):
    srv, first, second = hosts_server
    assert srv.dig_short("mock-api.example") == ["192.0.2.7"]
    write_atomic(first, "192.0.2.77 mock-api.example\n192.0.2.78 new.example\n")
    wait_until(lambda: srv.rrset_values("new.example.") == ["192.0.2.78"], timeout=5,
               message="the new hosts line to be served")
    assert srv.rrset_values("mock-api.example.") == ["192.0.2.77"]
    assert srv.rrset_values("pinned.default.svc.cluster.local.") == []  # gone with its line
    srv.wait_stderr(r"hosts: reloaded .*hosts")
    # a broken line is reported with file and line; the good ones are served
    write_atomic(second, "not-an-ip broken.example\n192.0.2.99 host.docker.internal\n")
    wait_until(lambda: srv.rrset_values("host.docker.internal.") == ["192.0.2.99"], timeout=5,
               message="the fixed file")
    srv.wait_stderr(rf"{second}:1: 'not-an-ip' is not an IP address")
    # a deleted file takes its names away
    second.unlink()
    wait_until(lambda: srv.query("host.docker.internal.").rcode() == dns.rcode.NXDOMAIN
               or srv.query("host.docker.internal.").rcode() == dns.rcode.REFUSED,
               timeout=5, message="the deleted file's names to go")
    srv.wait_stderr(rf"hosts file {second}: does not exist")
    assert srv.alive()
