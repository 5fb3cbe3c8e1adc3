"""The hot path (answers prepared as bytes, kept across reloads) must say
exactly what ``answer()`` says: the same bytes for every query shape, letter
case, header bit, EDNS size and rcode, before and after reloads.  And our
wire writer must write exactly what dnspython writes for the same message
(dnspython is the independent reference here)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

from coredns_py.cluster import fill
from coredns_py.config import Config
from coredns_py.memo import Memo
from coredns_py.source.folder import ManifestSource
from coredns_py.zone import answer, snapshot
from coredns_py.zone import wire as wire_mod
from coredns_py.zone.external import ExternalSpec
from coredns_py.zone.prepared import PreparedAnswers
from helpers.manifests import deployment, namespace, service, write

ROOT = Path(__file__).resolve().parent.parent
ZONES = ROOT / "zones"
FIXTURE = ROOT / "tests" / "fixtures" / "answer"
TYPES = ["A", "AAAA", "SRV", "PTR", "TXT", "CNAME", "SOA", "NS", "MX", "ANY", "AXFR", 65, 97]


def build(folder, config: Config, memos=None, serial: int = 4242):
    """The snapshot of a folder (or of a ManifestSource, which keeps the
    objects of unchanged files, as the server's does)."""
    memo_c, memo_s = memos or (Memo(), Memo())
    source = folder if isinstance(folder, ManifestSource) else ManifestSource(folder)
    loaded = source.load()
    return snapshot.build(fill.build(loaded.objects, config, None, memo_c), config, serial,
                          ("127.0.0.1",), memo=memo_s)


def generated_cluster(folder: Path, rng: random.Random, namespaces: int = 4) -> None:
    """A small cluster of every kind of Service, from a seed."""
    for i in range(namespaces):
        ns = f"gen{i}"
        docs = [namespace(ns)]
        for j in range(rng.randint(2, 5)):
            kind = rng.choice(["ip", "ip", "headless", "external-in", "external-out"])
            name = f"s{j}"
            ports = rng.sample([{"name": "http", "port": 80}, {"name": "grpc", "port": 9090},
                                {"name": "dns", "port": 53, "protocol": "UDP"}, 8080],
                               rng.randint(1, 3))
            if kind == "ip":
                docs.append(service(name, ns, cluster_ip=f"10.96.{i}.{j + 10}",
                                    selector={"app": name}, ports=ports))
            elif kind == "headless":
                docs.append(service(name, ns, cluster_ip="None", selector={"app": name},
                                    ports=ports))
            elif kind == "external-in":
                docs.append(service(name, ns, type="ExternalName", ports=(),
                                    externalName=f"s0.gen{rng.randrange(namespaces)}"
                                                 ".svc.cluster.local"))
            else:
                docs.append(service(name, ns, type="ExternalName", ports=(),
                                    externalName=f"Ext-{j}.Example.COM"))
            docs.append(deployment(name, ns, replicas=rng.randint(0, 4),
                                   ports=[{"name": "http", "containerPort": 8080}]))
        write(folder, f"{ns}.yaml", *docs)


def names(snap) -> list[str]:
    out = ["in-addr.arpa", "96.10.in-addr.arpa", "1.2.3.4.in-addr.arpa", "example.com"]
    for labels in snap.zones:  # every zone answering the cluster
        z = b".".join(labels).decode()
        out += [z, f"svc.{z}", f"pod.{z}", f"dns-version.{z}", f"ns.dns.{z}", f"nope.{z}",
                f"10-244-0-1.default.pod.{z}", f"1-2-3-4.nope.pod.{z}"]
        for (ns, name), view in snap.services.items():
            base = f"{name}.{ns}.svc.{z}"
            out += [base, f"{base}.svc.{z}", f"nope.{base}", f"{ns}.svc.{z}",
                    f"10-244-0-1.{ns}.pod.{z}"]
            for p in view.ports:
                if p.name:
                    out.append(f"_{p.name}._{p.protocol}.{base}")
            for ep in view.endpoints[:2]:
                out.append(f"{ep.name}.{base}")
        for ns in snap.hidden:  # namespaces a filter hides
            out += [f"s0.{ns}.svc.{z}", f"{ns}.svc.{z}", f"10-244-0-1.{ns}.pod.{z}"]
    for ext in snap.externals:  # external zones (k8s_external)
        z = b".".join(ext.zone).decode()
        out += [z, f"dns.{z}", f"ns1.dns.{z}", f"x.dns.{z}", f"nope.{z}", f"nope.sub.{z}"]
        for (ns, name), view in snap.services.items():
            base = f"{name}.{ns}.{z}"
            out += [base, f"x.{base}", f"{ns}.{z}", f"_http._tcp.{base}"]
            out += [f"{ep.name}.{base}" for ep in view.endpoints[:2]]
    for view in snap.services.values():
        for ip in list(view.ips) + [ep.address for ep in view.endpoints[:2]]:
            out.append(dns.reversename.from_address(ip).to_text())
    return sorted(set(out))


def mixed_case(rng: random.Random, name: str) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c for c in name)


def queries(snap, rng: random.Random):
    """Every name x type, each in three shapes: plain; mixed case with EDNS
    (sizes around the limits, DO at random); mixed case with header bits
    flipped (RD off, CD, AD, Z)."""
    for name in names(snap):
        for qtype in TYPES:
            for variant in range(3):
                qname = mixed_case(rng, name) if variant else name
                q = dns.message.make_query(qname, qtype)
                q.id = rng.randrange(65536)
                if variant == 1:
                    q.use_edns(0, rng.choice([0, dns.flags.DO]),
                               rng.choice([0, 100, 512, 600, 1232, 4096]))
                if variant == 2:
                    q.flags &= ~dns.flags.RD if rng.random() < 0.5 else 0xFFFF
                    q.flags |= rng.choice([0, dns.flags.CD, dns.flags.AD, 0x40])
                    if rng.random() < 0.1:
                        q.question[0].rdclass = 3  # CH: REFUSED
                yield q.to_wire()
    # The other rcodes and shapes: NOTIMP, BADVERS, FORMERR (two questions,
    # junk), an option (cookie), padding asked for, a compressed question.
    notify = dns.message.make_query("cluster.local", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    yield notify.to_wire()
    badvers = dns.message.make_query("s0.gen0.svc.cluster.local", "A")
    badvers.use_edns(1)
    yield badvers.to_wire()
    two = dns.message.make_query("a.cluster.local", "A")
    two.question.append(two.question[0])
    yield two.to_wire()
    plain = dns.message.make_query("kubernetes.default.svc.cluster.local", "A").to_wire()
    yield plain + b"junk"
    yield plain[:-3]
    yield dns.message.make_query("kubernetes.default.svc.cluster.local", "A", use_edns=0,
                                 options=[dns.edns.GenericOption(10, b"12345678")]).to_wire()
    yield dns.message.make_query("kubernetes.default.svc.cluster.local", "A", use_edns=0,
                                 options=[dns.edns.GenericOption(12, b"")]).to_wire()
    # A question whose name is a compression pointer (to itself: FORMERR).
    yield plain[:12] + b"\xc0\x0c\x00\x01\x00\x01"


def zone_snapshots(tmp_path: Path):
    cfg = Config(pods="insecure")
    yield build(ZONES, cfg)
    yield build(FIXTURE, Config(pods="verified"))
    gen = tmp_path / "generated"
    generated_cluster(gen, random.Random(7))
    yield build(gen, cfg)
    # External zones (k8s_external).
    yield build(ROOT / "tests" / "fixtures" / "external",
                Config(k8s_external=(ExternalSpec(("example.com",), headless=True,
                                                  fallthrough=("sub.example.com",)),
                                     ExternalSpec(("ext.test",), apex="x", ttl=30))))
    # The same cluster answered under another zone too, one namespace hidden.
    yield build(gen, Config(pods="verified", extra_zones=("example.internal",),
                            namespaces=("gen0", "gen1", "gen2")))


@pytest.fixture(scope="module")
def snaps(tmp_path_factory):
    return list(zone_snapshots(tmp_path_factory.mktemp("prepared")))


def test_prepared_gives_answers_bytes_byte_for_byte(snaps):
    rng = random.Random(20261130)
    seen_rcodes = set()
    for snap in snaps:
        cache = PreparedAnswers()
        asked = 0
        for wire in queries(snap, rng):
            for proto in ("udp", "tcp"):
                plain = answer.answer(snap, wire, proto)
                for _ in range(2):  # the second time from the entry
                    fast = cache.answer(snap, wire, proto)
                    assert fast == plain, (proto, dns.message.from_wire(wire).question)
                    asked += 1
                if plain is not None and len(plain) >= 12:
                    seen_rcodes.add(plain[3] & 0xF)
        assert cache.hits > asked / 2  # most come from entries
    assert {dns.rcode.NOERROR, dns.rcode.NXDOMAIN, dns.rcode.REFUSED, dns.rcode.NOTIMP,
            dns.rcode.FORMERR} <= seen_rcodes


def test_not_loaded_is_servfail_on_both_paths():
    cache = PreparedAnswers()
    wire = dns.message.make_query("kubernetes.default.svc.cluster.local", "A").to_wire()
    out = cache.answer(None, wire, "udp")
    assert out == answer.answer(None, wire, "udp")
    assert out[3] & 0xF == dns.rcode.SERVFAIL
    assert len(cache) == 0


def test_truncated_over_udp_complete_over_tcp(snaps):
    snap = snaps[1]  # tests/fixtures/answer: bigns/big has 100 endpoints
    cache = PreparedAnswers()
    for edns in (None, 1232):
        q = dns.message.make_query("big.bigns.svc.cluster.local", "A")
        if edns:
            q.use_edns(0, 0, edns)
        wire = q.to_wire()
        for proto in ("udp", "tcp", "udp"):
            out = cache.answer(snap, wire, proto)
            assert out == answer.answer(snap, wire, proto)
            assert bool(out[2] & 0x02) == (proto == "udp")


def test_our_writer_writes_what_dnspython_writes(snaps):
    """The same reply written by zone/wire.py and by dnspython's renderer
    (an eighth of the query set: dnspython takes ~0.4 ms a message), and every
    record type lookup makes among them."""
    rng = random.Random(5)
    checked = 0
    types = set()
    for snap in snaps:
        for wire in queries(snap, rng):
            query = answer.read(wire)
            # The dns-version TXT and the apexes (their NS) are always among them.
            apex = query is not None and len(query.questions) == 1 and tuple(
                label.lower() for label in query.questions[0][0]) in (
                    snap.zones + tuple(ext.zone for ext in snap.externals))
            if query is None or query.pad or (rng.random() > 0.12 and b"dns-version" not in wire
                                              and not apex):
                continue
            out = answer.decide(snap, query, False)
            for section in (out.answer, out.authority, out.additional):
                types.update(dns.rdatatype.to_text(rs.rdtype) for rs in section)
            ref = dns.message.from_wire(wire)
            for proto in ("udp", "tcp"):
                limit = wire_mod.limit(query, proto)
                ours = answer.render(out, limit, wire)
                theirs = wire_mod.render(answer.to_message(out, ref), limit)
                assert ours == theirs, ref.question
                checked += 1
    assert checked > 1000
    assert {"A", "AAAA", "SRV", "PTR", "TXT", "CNAME", "SOA", "NS", "HINFO"} <= types


def test_case_variants_share_one_entry_and_echo_their_own_case(snaps):
    snap = snaps[0]
    cache = PreparedAnswers()
    for name in ("webapp.default.svc.cluster.local", "WEBAPP.Default.SVC.cluster.LOCAL",
                 "wEbApP.dEfAuLt.SvC.cLuStEr.LoCaL"):
        q = dns.message.make_query(name, "A")
        wire = q.to_wire()
        out = cache.answer(snap, wire, "udp")
        r = dns.message.from_wire(out)
        assert r.id == q.id
        assert out[12:len(wire)] == wire[12:]  # the question, byte for byte
        assert r.answer[0].name.to_text() == name + "."
    assert (cache.hits, cache.misses, len(cache)) == (2, 1, 1)


def test_types_that_differ_only_by_ascii_case_do_not_collide(snaps):
    # qtype 65 (HTTPS) is the byte 'A' and qtype 97 is 'a'.
    snap = snaps[0]
    cache = PreparedAnswers()
    for qtype in (65, 97, 65, 97):
        wire = dns.message.make_query("webapp.default.svc.cluster.local", qtype).to_wire()
        out = cache.answer(snap, wire, "udp")
        assert out == answer.answer(snap, wire, "udp")
        assert dns.message.from_wire(out).question[0].rdtype == qtype


def test_full_table_starts_over(snaps):
    cache = PreparedAnswers(max_entries=10)
    for i in range(25):
        wire = dns.message.make_query(f"n{i}.default.svc.cluster.local", "A").to_wire()
        cache.answer(snaps[0], wire, "udp")
        assert len(cache) <= 10


def test_forwarded_names_are_never_kept(snaps):
    snap = snaps[2]
    cache = PreparedAnswers()
    for name, qtype in (("example.com", "A"), ("s0.gen0.svc.cluster.local", "A"),
                        ("9.9.9.9.in-addr.arpa", "PTR")):
        wire = dns.message.make_query(name, qtype).to_wire()
        for _ in range(2):
            out = cache.answer(snap, wire, "udp", forwarding=True)
            ref = answer.answer(snap, wire, "udp", forwarding=True)
            if isinstance(ref, answer.Forward):
                assert isinstance(out, answer.Forward)
                assert (out.qname, out.qtype) == (ref.qname, ref.qtype)
                assert out.local.to_wire() == ref.local.to_wire()
            else:
                assert out == ref


# --- across reloads ----------------------------------------------------------------

def _touch(path: Path, text: str, step: int) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + step * 1_000_000 + 1))


def test_a_reload_keeps_the_answers_of_untouched_namespaces(tmp_path):
    """Edit one namespace: its answers are made again (new data), every other
    namespace's are kept (hits), and the negative answers kept carry the new
    serial.  Every answer equals answer() on the new snapshot."""
    root = tmp_path / "m"
    cfg = Config()
    for ns in ("one", "two"):
        write(root, f"{ns}.yaml", namespace(ns),
              service("web", ns, cluster_ip=f"10.96.{len(ns)}.1", ports=[80]),
              service("db", ns, cluster_ip="None", selector={"app": "db"}, ports=[5432]),
              deployment("db", ns, replicas=2, ports=[5432]))
    memos = (Memo(), Memo())
    source = ManifestSource(root)

    def load(serial):
        loaded = source.load()
        return snapshot.build(fill.build(loaded.objects, cfg, None, memos[0]), cfg, serial,
                              memo=memos[1])

    first = load(100)
    asks = [(f"{svc}.{ns}.svc.cluster.local", t) for ns in ("one", "two")
            for svc in ("web", "db", "nope") for t in ("A", "AAAA", "SRV")]
    wires = {a: dns.message.make_query(*a).to_wire() for a in asks}
    cache = PreparedAnswers()
    for wire in wires.values():
        assert cache.answer(first, wire, "udp") == answer.answer(first, wire, "udp")
    assert cache.misses == len(asks)

    _touch(root / "one.yaml", (root / "one.yaml").read_text().replace("10.96.3.1", "10.96.3.9"),
           1)
    second = load(101)
    assert second.scopes["two"] is first.scopes["two"]
    assert second.scopes["one"] is not first.scopes["one"]
    hits, misses = cache.hits, cache.misses
    for (name, qtype), wire in wires.items():
        out = cache.answer(second, wire, "udp")
        assert out == answer.answer(second, wire, "udp"), (name, qtype)
        msg = dns.message.from_wire(out)
        if msg.authority:
            assert msg.authority[0][0].serial == 101
    assert cache.misses - misses == 9  # namespace one's nine questions
    assert cache.hits - hits == 9  # namespace two's, negative ones included
    web = dns.message.from_wire(cache.answer(second, wires[("web.one.svc.cluster.local", "A")],
                                             "udp"))
    assert web.answer[0][0].address == "10.96.3.9"


def test_a_namespace_that_appears_is_no_longer_nxdomain(tmp_path):
    root = tmp_path / "m"
    cfg = Config()
    write(root, "a.yaml", service("web", "a", cluster_ip="10.96.0.5"))
    memos = (Memo(), Memo())
    source = ManifestSource(root)
    first = build(source, cfg, memos, 1)
    cache = PreparedAnswers()
    wire = dns.message.make_query("web.b.svc.cluster.local", "A").to_wire()
    assert cache.answer(first, wire, "udp")[3] & 0xF == dns.rcode.NXDOMAIN
    write(root, "b.yaml", service("web", "b", cluster_ip="10.96.0.6"))
    second = build(source, cfg, memos, 2)
    out = cache.answer(second, wire, "udp")
    assert out == answer.answer(second, wire, "udp")
    assert dns.message.from_wire(out).answer[0][0].address == "10.96.0.6"


def test_a_cname_into_another_namespace_follows_that_namespace(tmp_path):
    """An ExternalName pointing into the zone depends on its target's
    namespace too: editing only the target's file changes the answer."""
    root = tmp_path / "m"
    cfg = Config()
    write(root, "a.yaml", service("alias", "a", type="ExternalName", ports=(),
                                  externalName="web.b.svc.cluster.local"))
    write(root, "b.yaml", service("web", "b", cluster_ip="10.96.0.6"))
    memos = (Memo(), Memo())
    source = ManifestSource(root)
    first = build(source, cfg, memos, 1)
    cache = PreparedAnswers()
    wire = dns.message.make_query("alias.a.svc.cluster.local", "A").to_wire()
    assert cache.answer(first, wire, "udp") == answer.answer(first, wire, "udp")
    _touch(root / "b.yaml", service("web", "b", cluster_ip="10.96.0.7"), 1)
    second = build(source, cfg, memos, 2)
    assert second.scopes["a"] is first.scopes["a"]
    out = cache.answer(second, wire, "udp")
    assert out == answer.answer(second, wire, "udp")
    assert [rd.to_text() for rs in dns.message.from_wire(out).answer for rd in rs][-1] == \
        "10.96.0.7"


def test_a_config_change_remakes_the_answers_of_namespaces_that_do_not_exist():
    """An NXDOMAIN for a namespace that does not exist depends on the config
    (its SOA's TTL is min(ttl, 300)): a new ttl must not serve the old one."""
    short, longer = build(ZONES, Config(ttl=5)), build(ZONES, Config(ttl=30))
    cache = PreparedAnswers()
    for name in ("web.nonexistent.svc.cluster.local", "1-2-3-4.nonexistent.pod.cluster.local"):
        wire = dns.message.make_query(name, "A").to_wire()
        assert cache.answer(short, wire, "udp") == answer.answer(short, wire, "udp")
        out = cache.answer(longer, wire, "udp")
        assert out == answer.answer(longer, wire, "udp")
        assert dns.message.from_wire(out).authority[0].ttl == 30


# --- EDNS options: the same answer whether or not the question is kept ----------


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
def test_edns_options_get_answers_answer_whether_or_not_the_question_is_kept(snaps, label):
    """A query with options is answered as answer() answers it, whether or
    not the same question without options is kept (a malformed option was
    FORMERR on a cold cache and NOERROR once the name was cached)."""
    snap = snaps[0]
    for name, rdtype in (("kubernetes.default.svc.cluster.local", "A"),
                         ("Kubernetes.Default.svc.cluster.local", "SRV"),
                         ("nope.default.svc.cluster.local", "A")):
        for proto in ("udp", "tcp"):
            cache = PreparedAnswers()
            plain_q = with_options(name, rdtype, b"")
            cache.answer(snap, plain_q, proto)
            assert cache.answer(snap, plain_q, proto) == answer.answer(snap, plain_q, proto)
            wire = with_options(name, rdtype, OPTIONS[label])
            expected = answer.answer(snap, wire, proto)
            for _ in range(2):
                assert cache.answer(snap, wire, proto) == expected, (label, name, proto)
