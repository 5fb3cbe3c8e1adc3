"""Zone transfers (CoreDNS transfer, config keys transfer_to and
transfer_zones): every record a zone answers, in canonical order, the SOA
first and last, in several messages for a big zone, made as the TCP
connection takes them; REFUSED over UDP and to clients not allowed; IXFR
answered "up to date" or whole.  In process, on a TCP protocol whose client
reads slowly, and against a real server with dig, kdig and dnspython's
zone transfer client."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest

from coredns_py.cluster import fill
from coredns_py.config import Config, parse
from coredns_py.errors import ConfigError
from coredns_py.net.handler import Messages
from coredns_py.net.tcp import TcpProtocol
from coredns_py.source.folder import ManifestSource
from coredns_py.stages.transfer import Transfer, serial_newer_or_same
from coredns_py.zone import answer, records as records_mod, snapshot
from coredns_py.zone import transfer as zone_transfer
from coredns_py.zone import wire as wire_mod
from coredns_py.zone.external import ExternalSpec
from coredns_py.zone.lookup import resolve

from conftest import ServerProcess, ZONES, corefile_server
from helpers.fake_transport import connect
from helpers.manifests import namespace, service, write
from helpers.tcp import frame

LOCAL = ("127.0.0.1", 40000)
STRANGER = ("192.0.2.9", 40000)


def snap_of(folder: Path, config: Config = Config(), serial: int = 77):
    loaded = ManifestSource(folder).load()
    return snapshot.build(fill.build(loaded.objects, config, None), config, serial,
                          ("127.0.0.1",))


@pytest.fixture(scope="module")
def zones_snap():
    return snap_of(ZONES)


def names_of(rrsets) -> list[dns.name.Name]:
    return [records_mod.to_name(rs.owner) for rs in rrsets]


# --- what a zone holds ------------------------------------------------------------------


def test_records_soa_first_and_last_in_canonical_order(zones_snap):
    zone = zones_snap.zone_labels
    rrsets = list(zone_transfer.records(zones_snap, zone))
    assert rrsets[0].rdtype == rrsets[-1].rdtype == dns.rdatatype.SOA
    assert rrsets[0] is rrsets[-1]
    middle = names_of(rrsets[1:-1])
    assert middle == sorted(middle)  # dnspython compares names in canonical order
    assert len({(rs.owner, rs.rdtype) for rs in rrsets[1:-1]}) == len(rrsets) - 2


def test_records_are_what_queries_answer_and_every_service_is_there(zones_snap):
    zone = zones_snap.zone_labels
    rrsets = list(zone_transfer.records(zones_snap, zone))[1:-1]
    for rs in rrsets:  # each record is what a query for its name and type gives
        res = resolve(zones_snap, rs.owner, rs.rdtype)
        assert rs in res.answer, records_mod.name_text(rs.owner)
    owners = {(rs.owner, rs.rdtype) for rs in rrsets}
    for (ns, name), view in zones_snap.services.items():
        base = (name.encode(), ns.encode(), b"svc") + zone
        rdtype = dns.rdatatype.CNAME if view.kind == "ExternalName" else (
            dns.rdatatype.A if view.ips or view.endpoints else None)
        if rdtype is not None:
            assert (base, rdtype) in owners, (ns, name)
        for p in view.ports:
            if p.name and view.kind == "ClusterIP":
                assert ((f"_{p.name}".encode(), f"_{p.protocol}".encode()) + base,
                        dns.rdatatype.SRV) in owners
    for rdtype, owner in [(dns.rdatatype.NS, zone), (dns.rdatatype.TXT, (b"dns-version",) + zone),
                          (dns.rdatatype.A, (b"ns", b"dns") + zone)]:
        assert (owner, rdtype) in owners


def test_every_zone_of_ours_and_only_those(tmp_path):
    fixture = Path(__file__).parent / "fixtures" / "external"
    snap = snap_of(fixture, Config(extra_zones=("example.internal",), k8s_external=(
        ExternalSpec(("example.com",), headless=True),)))
    extra = tuple(zone_transfer.records(snap, (b"example", b"internal")))
    assert extra[0].owner == (b"example", b"internal")
    assert any(rs.owner == (b"svc1", b"testns", b"svc", b"example", b"internal") for rs in extra)
    ext = list(zone_transfer.records(snap, (b"example", b"com")))
    texts = [rr for rs in ext for rr in records_mod.to_dnspython(rs).to_text().splitlines()]
    assert texts[0].startswith("example.com. 5 IN SOA ns1.dns.example.com. hostmaster.dns.")
    for line in ["example.com. 5 IN NS ns1.dns.example.com.",
                 "ns1.dns.example.com. 5 IN A 127.0.0.1",
                 "svc1.testns.example.com. 5 IN A 1.2.3.4",
                 "_http._tcp.svc1.testns.example.com. 5 IN SRV 0 100 80 svc1.testns.example.com.",
                 "svc12.testns.example.com. 5 IN CNAME pypi.example.test.",
                 "endpoint-svc-1.svc-headless.testns.example.com. 5 IN A 1.2.3.5"]:
        assert line in texts
    assert names_of(ext[1:-1]) == sorted(names_of(ext[1:-1]))
    assert zone_transfer.find_zone(snap, (b"Example", b"COM")) == (b"example", b"com")
    for not_ours in [(b"svc", b"cluster", b"local"), (b"in-addr", b"arpa"), (b"com",)]:
        assert zone_transfer.find_zone(snap, not_ours) is None


# --- messages ------------------------------------------------------------------------------


def big_folder(root: Path, services: int = 300) -> Path:
    write(root, "big.yaml", namespace("big"),
          *[service(f"svc-{i:03d}", "big", cluster_ip=f"10.96.{i // 200}.{i % 200 + 10}",
                    ports=[{"name": "http", "port": 80}, {"name": "grpc", "port": 9090}])
            for i in range(services)])
    return root


def test_a_big_zone_goes_in_several_messages_each_within_the_size(tmp_path):
    snap = snap_of(big_folder(tmp_path))
    zone = snap.zone_labels
    rrsets = list(zone_transfer.records(snap, zone))
    q = dns.message.make_query("cluster.local.", "AXFR")
    question = ((zone, dns.rdatatype.AXFR, 1),)
    messages = list(wire_mod.xfr_messages(q.id, 0x8400, question, iter(rrsets), None, 4096))
    assert len(messages) > 5 and all(len(m) <= 4096 for m in messages)
    got = []
    for m in messages:
        msg = dns.message.from_wire(m, one_rr_per_rrset=True)
        assert msg.id == q.id and msg.question[0].name == q.question[0].name
        got += [rr for rs in msg.answer for rr in rs.to_text().splitlines()]
    want = [rr for rs in rrsets for rr in records_mod.to_dnspython(rs).to_text().splitlines()]
    assert got == want


# --- the stage -------------------------------------------------------------------------


def stage_of(snap, to=("127.0.0.0/8",), zones=()):
    seen = []
    t = Transfer(to, zones, lambda: snap, lambda *args: seen.append(args))
    return t.stage(lambda w, p, peer: answer.answer(snap, w, p)), seen


def collect(result) -> list[dns.message.Message]:
    if isinstance(result, Messages):
        return [dns.message.from_wire(m, xfr=True) for m in result.messages]
    return [dns.message.from_wire(result)]


def test_refused_over_udp_to_strangers_and_for_names_that_are_no_apex(zones_snap):
    h, seen = stage_of(zones_snap)
    axfr = dns.message.make_query("cluster.local.", "AXFR").to_wire()
    for proto, peer in (("udp", LOCAL), ("tcp", STRANGER)):
        [msg] = collect(h(axfr, proto, peer))
        assert msg.rcode() == dns.rcode.REFUSED and not msg.answer
    assert [s[-1] for s in seen] == ["transfer", "transfer"]
    sub = dns.message.make_query("default.svc.cluster.local.", "AXFR").to_wire()
    [msg] = collect(h(sub, "tcp", LOCAL))
    assert msg.rcode() == dns.rcode.REFUSED  # answer()'s: not a zone we transfer
    h, _ = stage_of(zones_snap, zones=("example.internal",))
    [msg] = collect(h(axfr, "tcp", LOCAL))  # not in transfer_zones
    assert msg.rcode() == dns.rcode.REFUSED
    # other questions go on untouched
    a = dns.message.make_query("kubernetes.default.svc.cluster.local.", "A").to_wire()
    assert h(a, "udp", STRANGER) == answer.answer(zones_snap, a, "udp")


def test_axfr_and_ixfr(zones_snap):
    h, _ = stage_of(zones_snap)
    msgs = collect(h(dns.message.make_query("Cluster.LOCAL.", "AXFR", use_edns=0).to_wire(),
                     "tcp", LOCAL))
    records = [rs for m in msgs for rs in m.answer]
    assert records[0].rdtype == records[-1].rdtype == dns.rdatatype.SOA
    assert all(m.question[0].name.to_text() == "Cluster.LOCAL." and m.edns == 0 for m in msgs)
    assert all(m.flags & dns.flags.AA for m in msgs)

    def ixfr(serial):
        q = dns.message.make_query("cluster.local.", "IXFR")
        q.authority.append(dns.rrset.from_text(
            "cluster.local.", 0, "IN", "SOA", f"ns. h. {serial} 1 1 1 1"))
        return collect(h(q.to_wire(), "tcp", LOCAL))
    [current] = ixfr(zones_snap.serial)  # up to date: the SOA alone
    assert [rs.rdtype for rs in current.answer] == [dns.rdatatype.SOA]
    old = ixfr(zones_snap.serial - 1)  # older: the whole zone
    assert sum(len(rs) for m in old for rs in m.answer) == sum(len(rs) for rs in records)


def test_a_transfer_is_never_a_prepared_answer(tmp_path):
    """With the default chain a prepared answer is given before the transfer
    stage (stages.passes_prepared).  A zone the stage does not transfer
    gets answer()'s REFUSED; that must not be kept, or once a config reload
    lets the zone be transferred the REFUSED would still be given."""
    import asyncio

    from coredns_py.cluster import local
    from coredns_py.server import Server

    cfg = parse({"upstream": [], "state_file": str(tmp_path / "state.json"),
                 "transfer_zones": ["example.internal"], "extra_zones": ["example.internal"]})
    server = Server(local.from_folder(ZONES, cfg), cfg, [("127.0.0.1", 0)])
    server.rebuild(full=True)
    server._start_stages()
    assert server.entry.__qualname__.startswith("Server._kept_first")
    axfr = dns.message.make_query("cluster.local.", "AXFR").to_wire()
    for _ in range(2):
        [msg] = collect(server.entry(axfr, "tcp", LOCAL))
        assert msg.rcode() == dns.rcode.REFUSED
    server.reconfigure(parse({"upstream": [], "state_file": str(tmp_path / "state.json"),
                              "extra_zones": ["example.internal"]}))
    server._start_stages()
    msgs = collect(server.entry(axfr, "tcp", LOCAL))
    assert msgs[0].rcode() == dns.rcode.NOERROR
    assert msgs[0].answer[0].rdtype == dns.rdatatype.SOA
    # and a kept answer answers the rest, as handle() does
    a = dns.message.make_query("kubernetes.default.svc.cluster.local.", "A").to_wire()
    assert server.entry(a, "udp", LOCAL) == server.entry(a, "udp", LOCAL) == \
        server.handle(a, "udp", LOCAL)
    asyncio.run(server.stop())


def test_serial_arithmetic():
    assert serial_newer_or_same(5, 5) and serial_newer_or_same(6, 5)
    assert not serial_newer_or_same(4, 5)
    assert serial_newer_or_same(1, 2 ** 32 - 1)  # wrapped around: newer


class SlowClient:
    """A client whose receive window is a few messages: the transport's
    buffer fills (pause_writing) after ``window`` writes until it reads."""

    def __init__(self, proto, window: int):
        self.proto, self.window = proto, window
        self.fake = connect(proto)
        write = self.fake.write

        def limited(data):
            write(data)
            if len(self.fake.writes) % self.window == 0:
                self.proto.pause_writing()
        self.fake.write = limited

    def read(self):
        self.proto.resume_writing()


def test_tcp_sends_the_messages_as_the_client_reads_them_and_waits_with_other_queries():
    made = []

    def messages():
        for i in range(10):
            made.append(i)
            yield b"M%d" % i

    def handler(wire, proto, peer):
        return Messages(messages()) if wire == b"xfr" else b"R:" + wire

    proto = TcpProtocol(handler, idle_timeout=None)
    client = SlowClient(proto, 3)
    proto.data_received(frame(b"xfr") + frame(b"next"))
    assert made == [0, 1, 2] and len(client.fake.writes) == 3  # made as they are taken
    assert not client.fake.reading  # and no more queries read meanwhile
    for _ in range(3):
        client.read()
    assert made == list(range(10))
    assert client.fake.writes == [frame(b"M%d" % i) for i in range(10)] + [frame(b"R:next")]
    assert client.fake.reading


def test_config_and_corefile(tmp_path):
    assert parse({}).transfer_to == ("127.0.0.0/8", "::1/128")
    assert parse({"transfer_to": ["*"]}).transfer_to == ("0.0.0.0/0", "::/0")
    with pytest.raises(ConfigError, match="transfer_zones: example.org is not a zone served"):
        parse({"transfer_zones": ["example.org"]})
    from coredns_py import corefile
    path = tmp_path / "Corefile"
    path.write_text(".:53 {\n    kubernetes cluster.local\n}\n")
    assert corefile.load(path).config.transfer_to == ()  # as CoreDNS: nobody
    path.write_text(".:53 {\n    kubernetes cluster.local example.internal\n"
                    "    transfer example.internal {\n        to 10.0.0.1 [::1]:53\n"
                    "        to 192.0.2.1:5300\n        source 10.0.0.2\n    }\n}\n")
    loaded = corefile.load(path)
    assert loaded.config.transfer_to == ("10.0.0.1/32", "::1/128", "192.0.2.1/32")
    assert loaded.config.transfer_zones == ("example.internal",)
    assert any(":6: transfer source" in item for item in loaded.not_acted_on)
    path.write_text(".:53 {\n    kubernetes cluster.local\n    transfer example.org {\n"
                    "        to *\n    }\n}\n")
    with pytest.raises(ConfigError, match=":3: transfer example.org: not a zone served here"):
        corefile.load(path)


# --- a real server -----------------------------------------------------------------------


def dig_axfr(srv: ServerProcess, zone: str) -> str:
    return srv.dig("AXFR", zone)


def test_process_axfr_with_dig_kdig_and_dnspython(tmp_path, state_home):
    folder = big_folder(tmp_path / "m", 400)
    srv = ServerProcess(folder, state_home=state_home, logdir=tmp_path / "log").start()
    try:
        out = dig_axfr(srv, "cluster.local")
        lines = [line for line in out.splitlines() if line and not line.startswith(";")]
        assert "\tSOA\t" in lines[0] and "\tSOA\t" in lines[-1]
        assert len(lines) > 1600  # 400 Services: A, two SRV names each, bare SRV...
        m = next(line for line in out.splitlines() if "XFR size" in line)
        messages = int(m.split("messages ")[1].split(",")[0])
        assert messages > 2, m  # streamed in several messages
        kdig = subprocess.run(["kdig", "-t", "AXFR", f"@{srv.host}", "-p", str(srv.port),
                               "cluster.local"], capture_output=True, text=True, timeout=60)
        klines = [line for line in kdig.stdout.splitlines() if line and not line.startswith(";")]
        assert len(klines) == len(lines) and "\tSOA\t" in klines[-1], kdig.stdout[-500:]
        # dnspython reads it into a zone: one SOA, the NS, every Service
        zone = dns.zone.from_xfr(dns.query.xfr(srv.host, "cluster.local", port=srv.port,
                                               timeout=10, lifetime=30))
        assert zone.get_rdataset("@", "SOA") is not None
        assert zone.get_rdataset("svc-399.big.svc", "A")[0].address == "10.96.1.209"
        # over UDP: REFUSED
        q = dns.message.make_query("cluster.local.", "AXFR")
        assert dns.query.udp(q, srv.host, port=srv.port, timeout=3).rcode() == dns.rcode.REFUSED
        # the server answers other queries as before, and logged the transfers
        assert srv.dig_short("svc-001.big.svc.cluster.local") == ["10.96.0.11"]
        srv.wait_stderr(r"transfer of cluster\.local\. to 127\.0\.0\.1: \d+ messages")
    finally:
        srv.stop()


def test_process_transfer_to_nobody_and_from_a_corefile(tmp_path, state_home):
    config = tmp_path / "config.yaml"
    config.write_text("upstream: []\ntransfer_to: []\n")
    srv = ServerProcess(ZONES, state_home=state_home, args=["--config", str(config)],
                        logdir=tmp_path / "log").start()
    try:
        assert "Transfer failed" in dig_axfr(srv, "cluster.local")  # REFUSED
    finally:
        srv.stop()
    srv = corefile_server(ZONES, ".:53 {\n    kubernetes cluster.local example.internal "
                          "in-addr.arpa ip6.arpa\n    transfer {\n        to *\n    }\n}\n",
                          tmp_path, state_home, log="log2")
    try:
        out = dig_axfr(srv, "example.internal")
        assert re.search(r"\nkubernetes\.default\.svc\.example\.internal\.\s+5\s+IN\s+A\s+"
                         r"10\.96\.0\.1\n", out), out
        assert "Transfer failed" not in out
    finally:
        srv.stop()
