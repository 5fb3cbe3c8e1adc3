"""DNS exchanges against ``answer.answer(snapshot, wire)``: tables of
(qname, qtype) -> rcode, AA, answer / authority / additional in zone-file text,
in the style of CoreDNS plugin/test/helpers.go and
plugin/kubernetes/handler_test.go.

The expectations come from /work/shared/reference/k8s-dns-spec.md ("ref"
below, with its section numbers).  The cluster is tests/fixtures/answer/, a
manifest version of handler_test.go's data with explicit IPs everywhere.

Every response is decoded twice, by dnspython (the library the server is built
with) and by dnslib (an independent decoder), and the two must agree on the
header, the question and every record, so the server is never only checked
against itself.  Records are compared as sorted lists of
(owner, ttl, type, rdata) with names lower-cased (DNS names compare
case-insensitively); the mixed-case table checks exact case separately.

Where the code differs from the reference the row is marked
``xfail(strict=True, reason="BUG: ...")``: the suite stays green, and the row
starts failing (XPASS) the day the code is fixed, so the marker can go.

Checklist of ref section 15 ("things a naive implementation gets wrong") and
where each item is tested:

  1  NXDOMAIN vs NODATA ............ SERVICES, HEADLESS, APEX, PODS_* tables
  2  SOA in negative answers ....... every negative row (authority checked),
                                     test_ttl_option
  3  SRV weights ................... SRV table
  4  bare-name SRV ................. SRV table (svc-unnamed, kube-dns, hdls1)
  5  endpoint readiness ............ HEADLESS table (readiness, svc-unready)
  6  slice association by label .... ENDPOINT_NAMES / PTR tables (orphans)
  7  endpoint names for ClusterIP .. ENDPOINT_NAMES table, PTR table
  8  PTR rules ..................... PTR table
  9  ExternalName .................. EXTERNAL table
 10  pods modes .................... PODS_DISABLED / _INSECURE / _VERIFIED
 11  SOA non-apex NODATA, TXT NX ... APEX table
 12  dns-version TTL 28800 ......... APEX table, test_ttl_option
 13  case .......................... MIXED_CASE table
 14  no wildcards .................. WILDCARDS table
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.update
import dnslib
import pytest

from coredns_py.zone import answer
from coredns_py.zone.records import to_dnspython
from coredns_py.cluster import fill as cluster
from coredns_py.zone import snapshot
from coredns_py.config import Config
from coredns_py.source.folder import ManifestSource

FIXTURES = Path(__file__).parent / "fixtures" / "answer"
SERIAL = 12345
NS_ADDRESSES = ("127.0.0.1",)  # kubernetes_apex_test: ns.dns.cluster.local. A 127.0.0.1

# The names used everywhere below.
T = "testns.svc.cluster.local."
KS = "kube-system.svc.cluster.local."

# ref 4: mname ns.dns.<zone>, rname hostmaster.<zone>, serial, refresh 7200,
# retry 1800, expire 86400, minimum = ttl; the SOA's own TTL is min(ttl, 300).
SOA = ("cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. "
       "12345 7200 1800 86400 5")
SOA4 = ("in-addr.arpa. 5 IN SOA ns.dns.in-addr.arpa. hostmaster.in-addr.arpa. "
        "12345 7200 1800 86400 5")
SOA6 = "ip6.arpa. 5 IN SOA ns.dns.ip6.arpa. hostmaster.ip6.arpa. 12345 7200 1800 86400 5"

IN = dns.rdataclass.IN


# --- the cluster -------------------------------------------------------------------

@functools.cache
def _objects() -> tuple:
    loaded = ManifestSource(FIXTURES).load()
    assert not loaded.errors, [str(e) for e in loaded.errors]
    return loaded.objects


@functools.cache
def make_snapshot(ns_addresses: tuple = NS_ADDRESSES, **config) -> snapshot.Snapshot:
    """The fixture cluster under a Config (no allocation state file, no socket)."""
    cfg = Config(**config)
    cl = cluster.build(_objects(), cfg, None)
    assert not cl.errors, [str(e) for e in cl.errors]
    return snapshot.build(cl, cfg, serial=SERIAL, ns_addresses=ns_addresses)


# --- decoding: dnspython and dnslib must agree ------------------------------------------

Record = tuple  # (owner lower-case, ttl, type, canonical rdata lower-case)


def norm(owner: str, ttl: int, rdtype: str, rdata: str) -> Record:
    """One record in a canonical form, whoever wrote its text."""
    rd = dns.rdata.from_text(IN, rdtype, rdata, origin=dns.name.root, relativize=False)
    return (owner.lower(), ttl, dns.rdatatype.to_text(rd.rdtype), rd.to_text().lower())


def parse_rr(text: str) -> Record:
    """Zone-file text ``owner ttl IN TYPE rdata`` -> Record."""
    owner, ttl, klass, rdtype, rdata = text.split(None, 4)
    assert klass == "IN", text
    return norm(owner, int(ttl), rdtype, rdata)


def records(texts) -> list[Record]:
    return sorted(parse_rr(t) for t in texts)


def _lib_type(n: int) -> str:
    name = dnslib.QTYPE.get(n)
    return name if isinstance(name, str) and not name.isdigit() else f"TYPE{n}"


@dataclass
class Reply:
    wire: bytes
    py: dns.message.Message
    lib: dnslib.DNSRecord
    rcode: int  # full (extended) rcode
    answer: list[Record]
    authority: list[Record]
    additional: list[Record]  # without the OPT pseudo-record
    raw: dict  # section -> [(exact owner, type)] in wire order, from dnslib
    opt: Optional[dict]  # payload, version, ext_rcode, do; None: no OPT

    @property
    def aa(self) -> bool:
        return bool(self.lib.header.aa)

    @property
    def tc(self) -> bool:
        return bool(self.lib.header.tc)

    @property
    def rcode_text(self) -> str:
        return dns.rcode.to_text(self.rcode)

    def __str__(self) -> str:
        return self.py.to_text()


def _py_section(section) -> list[Record]:
    return sorted(norm(rrset.name.to_text(), rrset.ttl, dns.rdatatype.to_text(rrset.rdtype),
                       rd.to_text())
                  for rrset in section for rd in rrset if rrset.rdtype != dns.rdatatype.OPT)


def _lib_section(rrs) -> list[Record]:
    out = []
    for rr in rrs:
        if rr.rtype == dns.rdatatype.OPT:
            continue
        assert rr.rclass == IN, f"record of class {rr.rclass}: {rr}"
        out.append(norm(str(rr.rname), rr.ttl, _lib_type(rr.rtype), rr.rdata.toZone()))
    return sorted(out)


def decode(wire: bytes) -> Reply:
    """Decode a response with both libraries and insist that they agree."""
    py = dns.message.from_wire(wire)
    lib = dnslib.DNSRecord.parse(wire)
    h = lib.header
    assert h.id == py.id
    assert bool(h.qr) and py.flags & dns.flags.QR, "not a response"
    assert bool(h.aa) == bool(py.flags & dns.flags.AA)
    assert bool(h.tc) == bool(py.flags & dns.flags.TC)
    assert bool(h.rd) == bool(py.flags & dns.flags.RD)
    assert h.opcode == py.opcode()
    assert h.rcode == py.rcode() & 0xF
    assert [(tuple(l.lower() for l in q.qname.label), q.qtype, q.qclass)
            for q in lib.questions] == [
        (tuple(l.lower() for l in q.name.labels[:-1]), q.rdtype, q.rdclass)
        for q in py.question]

    sections = {}
    for name, lib_rrs, py_sec in (("answer", lib.rr, py.answer),
                                  ("authority", lib.auth, py.authority),
                                  ("additional", lib.ar, py.additional)):
        lib_records = _lib_section(lib_rrs)
        # dnspython merges identical records into one RRset entry; dnslib shows
        # what is on the wire, so duplicates (ref 6.2: "dropped") show up here.
        assert len(set(lib_records)) == len(lib_records), f"duplicate records in {name}"
        assert lib_records == _py_section(py_sec), f"dnslib and dnspython disagree on {name}"
        sections[name] = lib_records

    opts = [rr for rr in lib.ar if rr.rtype == dns.rdatatype.OPT]
    assert len(opts) <= 1
    opt = None
    if opts:
        o = opts[0]
        opt = {"payload": o.rclass, "ext_rcode": (o.ttl >> 24) & 0xFF,
               "version": (o.ttl >> 16) & 0xFF, "do": bool(o.ttl & 0x8000)}
        assert py.edns == opt["version"] and py.payload == opt["payload"]
        assert bool(py.ednsflags & dns.flags.DO) == opt["do"]
    else:
        assert py.edns < 0
    rcode = h.rcode | ((opt["ext_rcode"] << 4) if opt else 0)
    assert rcode == py.rcode()

    raw = {name: [(str(rr.rname), _lib_type(rr.rtype)) for rr in rrs
                  if rr.rtype != dns.rdatatype.OPT]
           for name, rrs in (("answer", lib.rr), ("authority", lib.auth),
                             ("additional", lib.ar))}
    return Reply(wire, py, lib, rcode, sections["answer"], sections["authority"],
                 sections["additional"], raw, opt)


def make_query(qname: str, qtype: str = "A", *, rdclass: str = "IN", edns: Optional[int] = None,
               payload: int = 1232, dnssec: bool = False) -> dns.message.Message:
    if edns is None:
        return dns.message.make_query(qname, qtype, rdclass=rdclass, use_edns=False)
    return dns.message.make_query(qname, qtype, rdclass=rdclass, use_edns=edns,
                                  payload=payload, want_dnssec=dnssec)


def exchange(snap, qname: str, qtype: str = "A", *, proto: str = "udp", **query_args) -> Reply:
    """Send one query through answer.answer() and decode the bytes it returns."""
    query = make_query(qname, qtype, **query_args)
    wire = answer.answer(snap, query.to_wire(), proto)
    assert wire is not None, "no response"
    reply = decode(wire)
    assert reply.py.id == query.id
    return reply


# --- tables ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    qname: str
    qtype: str
    rcode: str = "NOERROR"
    answer: tuple = ()
    ns: tuple = ()
    extra: tuple = ()


def ok(qname, qtype, *answer_rrs, extra=()) -> Case:
    """A positive answer: records, empty authority, the given additional."""
    return Case(qname, qtype, "NOERROR", tuple(answer_rrs), (), tuple(extra))


def nodata(qname, qtype, soa=SOA) -> Case:
    """NOERROR, no answer, exactly one SOA in authority (ref 4)."""
    return Case(qname, qtype, "NOERROR", (), (soa,))


def nx(qname, qtype, soa=SOA) -> Case:
    """NXDOMAIN, exactly one SOA in authority (ref 4)."""
    return Case(qname, qtype, "NXDOMAIN", (), (soa,))


def bug(case: Case, reason: str):
    """A row where the code differs from the reference (see the module docstring)."""
    return pytest.param(case, marks=pytest.mark.xfail(strict=True, reason="BUG: " + reason),
                        id=f"{case.qname} {case.qtype}")


def table(*rows):
    return [r if not isinstance(r, Case) else pytest.param(r, id=f"{r.qname} {r.qtype}")
            for r in rows]


def check_cname_order(reply: Reply) -> None:
    """A CNAME comes before the records of its target (CoreDNS test.CNAMEOrder)."""
    order = reply.raw["answer"]
    for i, rr in enumerate(reply.lib.rr):
        if rr.rtype == dns.rdatatype.CNAME:
            target = str(rr.rdata.label).lower()
            for j, (owner, _) in enumerate(order):
                if owner.lower() == target and j != i:  # j == i: x CNAME x
                    assert j > i, f"CNAME after its target records:\n{reply}"


def check(reply: Reply, case: Case) -> None:
    context = f"\n--- response to {case.qname} {case.qtype}:\n{reply}"
    assert reply.rcode_text == case.rcode, context
    # ref 4: every answer from the plugin is authoritative.
    assert reply.aa, "AA not set" + context
    assert not reply.tc, context
    assert reply.answer == records(case.answer), context
    assert reply.authority == records(case.ns), context
    assert reply.additional == records(case.extra), context
    check_cname_order(reply)


def run(case: Case, snap) -> Reply:
    # Over TCP, so the content is not cut to the 512 bytes of plain UDP (the
    # hdls1 SRV answer is ~550 bytes): CoreDNS's handler tests have no size
    # limit either.  UDP sizes are tested at the end of this file.
    reply = exchange(snap, case.qname, case.qtype, proto="tcp")
    check(reply, case)
    return reply


def table_test(rows, **config):
    """A test that runs each row of a table (:func:`run`) against
    ``make_snapshot(**config)``; collected under the name it is given
    (``test_srv = table_test(SRV)``)."""
    @pytest.mark.parametrize("case", rows)
    def test(case):
        run(case, make_snapshot(**config))
    return test


# === Services (ref 5, 11) ============================================================

SERVICES = table(
    # ClusterIP, single stack (handler_test "A Service").
    ok(f"svc1.{T}", "A", f"svc1.{T} 5 IN A 10.0.0.1"),
    nodata(f"svc1.{T}", "AAAA"),  # wrong family: NODATA (ref 5; §15.1)
    nx(f"svc0.{T}", "A"),
    nx(f"svc0.{T}", "AAAA"),
    nx("svc0.svc-nons.svc.cluster.local.", "A"),  # namespace does not exist
    nx("svc1.nsnoexist.svc.cluster.local.", "A"),  # known service name, missing namespace
    nx("svc1.emptyns.svc.cluster.local.", "A"),
    # Other types on an existing service name: NODATA (ref 5).
    nodata(f"svc1.{T}", "TXT"),
    nodata(f"svc1.{T}", "MX"),
    nodata(f"svc1.{T}", "CNAME"),
    nodata(f"svc1.{T}", "PTR"),  # ref 9: PTR on an existing forward name
    nx(f"svc0.{T}", "PTR"),
    nodata(f"svc1.{T}", "NS"),  # ref 11: NS on another existing name
    nodata(f"svc1.{T}", "HINFO"),
    nodata(f"svc1.{T}", "SOA"),  # ref 11: SOA only at the apex
    # No ready endpoints: still answered (handler_test svcempty; ref 5).
    ok(f"svcempty.{T}", "A", f"svcempty.{T} 5 IN A 10.0.0.9"),
    # IPv6 ClusterIP.
    ok(f"svc6.{T}", "AAAA", f"svc6.{T} 5 IN AAAA 1234:abcd::1"),
    nodata(f"svc6.{T}", "A"),
    # Dual stack (handler_test "Dual Stack ClusterIP Services").
    ok(f"svc-dual-stack.{T}", "A", f"svc-dual-stack.{T} 5 IN A 10.0.0.3"),
    ok(f"svc-dual-stack.{T}", "AAAA", f"svc-dual-stack.{T} 5 IN AAAA 10::3"),
    # NodePort / LoadBalancer are answered like ClusterIP; external IPs are not
    # served (ref 5).
    ok(f"np.{T}", "A", f"np.{T} 5 IN A 10.0.0.30"),
    ok(f"lb.{T}", "A", f"lb.{T} 5 IN A 10.0.0.31"),
    ok(f"kube-dns.{KS}", "A", f"kube-dns.{KS} 5 IN A 10.0.0.10"),
)


test_services = table_test(SERVICES)


# === SRV (ref 6) =====================================================================

HDLS1_SRV_EXTRA = (
    f"172-0-0-2.hdls1.{T} 5 IN A 172.0.0.2",
    f"172-0-0-3.hdls1.{T} 5 IN A 172.0.0.3",
    f"dup-name.hdls1.{T} 5 IN A 172.0.0.4",
    f"dup-name.hdls1.{T} 5 IN A 172.0.0.5",
    f"5678-abcd--1.hdls1.{T} 5 IN AAAA 5678:abcd::1",
    f"5678-abcd--2.hdls1.{T} 5 IN AAAA 5678:abcd::2",
)


def hdls1_srv(owner):
    # ref 6.3: 6 ready addresses x 1 port = 6 candidates -> weight 100 // 6 = 16;
    # the two dup-name addresses give the same SRV, so 5 records remain, and
    # the additional section has all 6 addresses.
    return ok(owner, "SRV",
              *(f"{owner} 5 IN SRV 0 16 80 {t}.hdls1.{T}"
                for t in ("172-0-0-2", "172-0-0-3", "5678-abcd--1", "5678-abcd--2", "dup-name")),
              extra=HDLS1_SRV_EXTRA)


SRV = table(
    # Single port, single stack: weight 100 (handler_test).
    ok(f"svc1.{T}", "SRV", f"svc1.{T} 5 IN SRV 0 100 80 svc1.{T}",
       extra=[f"svc1.{T} 5 IN A 10.0.0.1"]),
    ok(f"_http._tcp.svc1.{T}", "SRV", f"_http._tcp.svc1.{T} 5 IN SRV 0 100 80 svc1.{T}",
       extra=[f"svc1.{T} 5 IN A 10.0.0.1"]),
    # ref 3: a leading "_" is stripped from each label, so these are the same name.
    ok(f"http.tcp.svc1.{T}", "SRV", f"http.tcp.svc1.{T} 5 IN SRV 0 100 80 svc1.{T}",
       extra=[f"svc1.{T} 5 IN A 10.0.0.1"]),
    ok(f"_http.tcp.svc1.{T}", "SRV", f"_http.tcp.svc1.{T} 5 IN SRV 0 100 80 svc1.{T}",
       extra=[f"svc1.{T} 5 IN A 10.0.0.1"]),
    ok(f"http._tcp.svc1.{T}", "SRV", f"http._tcp.svc1.{T} 5 IN SRV 0 100 80 svc1.{T}",
       extra=[f"svc1.{T} 5 IN A 10.0.0.1"]),
    # ref 5 quirk: A on the SRV-shaped name answers the cluster IP.
    ok(f"_http._tcp.svc1.{T}", "A", f"_http._tcp.svc1.{T} 5 IN A 10.0.0.1"),
    ok(f"http.tcp.svc1.{T}", "A", f"http.tcp.svc1.{T} 5 IN A 10.0.0.1"),
    nodata(f"_http._tcp.svc1.{T}", "AAAA"),
    # Unknown port or wrong protocol: NXDOMAIN (ref 6.1).
    nx(f"_http._udp.svc1.{T}", "SRV"),
    nx(f"_https._tcp.svc1.{T}", "SRV"),
    nx(f"_http._tcp.svc0.{T}", "SRV"),
    nx("_http._tcp.svc1.emptyns.svc.cluster.local.", "SRV"),
    # No ready endpoints: SRV still answered (handler_test svcempty).
    ok(f"svcempty.{T}", "SRV", f"svcempty.{T} 5 IN SRV 0 100 80 svcempty.{T}",
       extra=[f"svcempty.{T} 5 IN A 10.0.0.9"]),
    ok(f"_http._tcp.svcempty.{T}", "SRV",
       f"_http._tcp.svcempty.{T} 5 IN SRV 0 100 80 svcempty.{T}",
       extra=[f"svcempty.{T} 5 IN A 10.0.0.9"]),
    # IPv6 service: AAAA glue (handler_test).
    ok(f"svc6.{T}", "SRV", f"svc6.{T} 5 IN SRV 0 100 80 svc6.{T}",
       extra=[f"svc6.{T} 5 IN AAAA 1234:abcd::1"]),
    ok(f"_http._tcp.svc6.{T}", "SRV", f"_http._tcp.svc6.{T} 5 IN SRV 0 100 80 svc6.{T}",
       extra=[f"svc6.{T} 5 IN AAAA 1234:abcd::1"]),
    # Two ports: two SRV of weight 50, one A (coredns/ci srv_test; ref 6.3).
    ok(f"svc-2ports.{T}", "SRV",
       f"svc-2ports.{T} 5 IN SRV 0 50 80 svc-2ports.{T}",
       f"svc-2ports.{T} 5 IN SRV 0 50 443 svc-2ports.{T}",
       extra=[f"svc-2ports.{T} 5 IN A 10.0.0.6"]),
    ok(f"_https._tcp.svc-2ports.{T}", "SRV",
       f"_https._tcp.svc-2ports.{T} 5 IN SRV 0 100 443 svc-2ports.{T}",
       extra=[f"svc-2ports.{T} 5 IN A 10.0.0.6"]),
    # Dual stack: 2 candidates (one per cluster IP), deduplicated to ONE SRV of
    # weight 50, with A and AAAA glue (handler_test; ref 6.3; §15.3).
    ok(f"svc-dual-stack.{T}", "SRV",
       f"svc-dual-stack.{T} 5 IN SRV 0 50 80 svc-dual-stack.{T}",
       extra=[f"svc-dual-stack.{T} 5 IN A 10.0.0.3",
              f"svc-dual-stack.{T} 5 IN AAAA 10::3"]),
    ok(f"_http._tcp.svc-dual-stack.{T}", "SRV",
       f"_http._tcp.svc-dual-stack.{T} 5 IN SRV 0 50 80 svc-dual-stack.{T}",
       extra=[f"svc-dual-stack.{T} 5 IN A 10.0.0.3",
              f"svc-dual-stack.{T} 5 IN AAAA 10::3"]),
    # Bare-name SRV includes unnamed ports (ref 6.1; §15.4) ...
    ok(f"svc-unnamed.{T}", "SRV", f"svc-unnamed.{T} 5 IN SRV 0 100 8080 svc-unnamed.{T}",
       extra=[f"svc-unnamed.{T} 5 IN A 10.0.0.7"]),
    # kube-dns: dns 53/UDP + dns-tcp 53/TCP -> 2 candidates, one record of
    # weight 50 (ref 6.3).
    ok(f"kube-dns.{KS}", "SRV", f"kube-dns.{KS} 5 IN SRV 0 50 53 kube-dns.{KS}",
       extra=[f"kube-dns.{KS} 5 IN A 10.0.0.10"]),
    ok(f"_dns._udp.kube-dns.{KS}", "SRV",
       f"_dns._udp.kube-dns.{KS} 5 IN SRV 0 100 53 kube-dns.{KS}",
       extra=[f"kube-dns.{KS} 5 IN A 10.0.0.10"]),
    ok(f"_dns-tcp._tcp.kube-dns.{KS}", "SRV",
       f"_dns-tcp._tcp.kube-dns.{KS} 5 IN SRV 0 100 53 kube-dns.{KS}",
       extra=[f"kube-dns.{KS} 5 IN A 10.0.0.10"]),
    nx(f"_dns._tcp.kube-dns.{KS}", "SRV"),  # the TCP port is named dns-tcp (ref 6.1)
    # Headless (handler_test "SRV Service (Headless)").
    hdls1_srv(f"_http._tcp.hdls1.{T}"),
    hdls1_srv(f"http.tcp.hdls1.{T}"),
    hdls1_srv(f"hdls1.{T}"),
    nx(f"_https._tcp.hdls1.{T}", "SRV"),
    # Endpoint-name SRV (ref 6.1): dup-name has 2 addresses -> 2 candidates,
    # one SRV of weight 50, both addresses in additional.
    ok(f"dup-name.hdls1.{T}", "SRV",
       f"dup-name.hdls1.{T} 5 IN SRV 0 50 80 dup-name.hdls1.{T}",
       extra=[f"dup-name.hdls1.{T} 5 IN A 172.0.0.4", f"dup-name.hdls1.{T} 5 IN A 172.0.0.5"]),
    ok(f"ep1a.svc1.{T}", "SRV", f"ep1a.svc1.{T} 5 IN SRV 0 100 80 ep1a.svc1.{T}",
       extra=[f"ep1a.svc1.{T} 5 IN A 172.0.0.1"]),
    # The same address in two slices: 2 candidates before de-duplication
    # -> weight 50 (ref 6.3).
    ok(f"hdls-dup.{T}", "SRV", f"hdls-dup.{T} 5 IN SRV 0 50 80 172-0-3-2.hdls-dup.{T}",
       extra=[f"172-0-3-2.hdls-dup.{T} 5 IN A 172.0.3.2"]),
    # An Endpoints object next to an EndpointSlice is ignored: weight stays 100 (ref 2).
    ok(f"_http._tcp.both.{T}", "SRV",
       f"_http._tcp.both.{T} 5 IN SRV 0 100 80 172-0-4-1.both.{T}",
       extra=[f"172-0-4-1.both.{T} 5 IN A 172.0.4.1"]),
    # v1 Endpoints of selector-less services (ref 2).
    ok(f"legacy.{T}", "SRV", f"legacy.{T} 5 IN SRV 0 100 8080 legacy.{T}",
       extra=[f"legacy.{T} 5 IN A 10.0.0.8"]),
    ok(f"legacy-hdls.{T}", "SRV",
       f"legacy-hdls.{T} 5 IN SRV 0 50 8080 172-0-1-11.legacy-hdls.{T}",
       f"legacy-hdls.{T} 5 IN SRV 0 50 8080 m2.legacy-hdls.{T}",
       extra=[f"172-0-1-11.legacy-hdls.{T} 5 IN A 172.0.1.11",
              f"m2.legacy-hdls.{T} 5 IN A 172.0.1.12"]),
    # Slice port 9080 vs service port 80 (ref 6.2): a ClusterIP name uses the
    # service port, endpoint names and headless services the slice port.
    ok(f"shared-a.{T}", "SRV", f"shared-a.{T} 5 IN SRV 0 100 80 shared-a.{T}",
       extra=[f"shared-a.{T} 5 IN A 10.0.0.21"]),
    ok(f"172-0-3-1.shared-a.{T}", "SRV",
       f"172-0-3-1.shared-a.{T} 5 IN SRV 0 100 9080 172-0-3-1.shared-a.{T}",
       extra=[f"172-0-3-1.shared-a.{T} 5 IN A 172.0.3.1"]),
    ok(f"shared-b.{T}", "SRV", f"shared-b.{T} 5 IN SRV 0 100 9080 172-0-3-1.shared-b.{T}",
       extra=[f"172-0-3-1.shared-b.{T} 5 IN A 172.0.3.1"]),
    ok(f"_http._tcp.shared-b.{T}", "SRV",
       f"_http._tcp.shared-b.{T} 5 IN SRV 0 100 9080 172-0-3-1.shared-b.{T}",
       extra=[f"172-0-3-1.shared-b.{T} 5 IN A 172.0.3.1"]),
    # A portless address is a port -1 candidate: counted in N (weight 50), never
    # an SRV, no glue (ref 6.3).  With a port filter it is not a candidate.
    ok(f"hdls-mixed.{T}", "SRV", f"hdls-mixed.{T} 5 IN SRV 0 50 80 172-0-6-1.hdls-mixed.{T}",
       extra=[f"172-0-6-1.hdls-mixed.{T} 5 IN A 172.0.6.1"]),
    ok(f"_http._tcp.hdls-mixed.{T}", "SRV",
       f"_http._tcp.hdls-mixed.{T} 5 IN SRV 0 100 80 172-0-6-1.hdls-mixed.{T}",
       extra=[f"172-0-6-1.hdls-mixed.{T} 5 IN A 172.0.6.1"]),
    # Pods selected by a headless service; hostname only when subdomain matches.
    ok(f"_foo._tcp.default-subdomain.{T}", "SRV",
       *(f"_foo._tcp.default-subdomain.{T} 5 IN SRV 0 33 1234 {t}.default-subdomain.{T}"
         for t in ("busybox-1", "10-244-0-12", "10-244-0-13")),
       extra=[f"busybox-1.default-subdomain.{T} 5 IN A 10.244.0.11",
              f"10-244-0-12.default-subdomain.{T} 5 IN A 10.244.0.12",
              f"10-244-0-13.default-subdomain.{T} 5 IN A 10.244.0.13"]),
    nodata(f"_http._tcp.svc1.{T}", "TXT"),
    # Portless headless: SRV is NODATA (ref 6.1; §15.1), port names NXDOMAIN.
    nodata(f"hdlsprtls.{T}", "SRV"),
    nx(f"_http._tcp.hdlsprtls.{T}", "SRV"),
    nx(f"hdls-empty.{T}", "SRV"),
)


test_srv = table_test(SRV)


# === Headless services (ref 7) =========================================================

HEADLESS = table(
    ok(f"hdls1.{T}", "A", *(f"hdls1.{T} 5 IN A 172.0.0.{i}" for i in (2, 3, 4, 5))),
    ok(f"hdls1.{T}", "AAAA", f"hdls1.{T} 5 IN AAAA 5678:abcd::1",
       f"hdls1.{T} 5 IN AAAA 5678:abcd::2"),
    nodata(f"hdls1.{T}", "TXT"),
    ok(f"172-0-0-2.hdls1.{T}", "A", f"172-0-0-2.hdls1.{T} 5 IN A 172.0.0.2"),
    ok(f"172-0-0-3.hdls1.{T}", "A", f"172-0-0-3.hdls1.{T} 5 IN A 172.0.0.3"),
    # Two endpoints share a hostname: both addresses (handler_test).
    ok(f"dup-name.hdls1.{T}", "A", f"dup-name.hdls1.{T} 5 IN A 172.0.0.4",
       f"dup-name.hdls1.{T} 5 IN A 172.0.0.5"),
    # Dashed IPv6 names on the compressed form (handler_test).
    ok(f"5678-abcd--1.hdls1.{T}", "AAAA", f"5678-abcd--1.hdls1.{T} 5 IN AAAA 5678:abcd::1"),
    ok(f"5678-abcd--2.hdls1.{T}", "AAAA", f"5678-abcd--2.hdls1.{T} 5 IN AAAA 5678:abcd::2"),
    nodata(f"5678-abcd--1.hdls1.{T}", "A"),
    nodata(f"172-0-0-2.hdls1.{T}", "TXT"),
    nx(f"bogusendpoint.hdls1.{T}", "A"),
    nx(f"bogusendpoint.svc0.{T}", "A"),
    nx(f"172-0-0-6.hdls1.{T}", "A"),  # not ready
    nx(f"172-0-0-4.hdls1.{T}", "A"),  # has a hostname: no dashed name (ref 7)
    # Headless and portless (handler_test).
    ok(f"hdlsprtls.{T}", "A", f"hdlsprtls.{T} 5 IN A 172.0.0.20"),
    ok(f"172-0-0-20.hdlsprtls.{T}", "A", f"172-0-0-20.hdlsprtls.{T} 5 IN A 172.0.0.20"),
    # No ready endpoints at all: the name does not exist (ref 7; §15.1).
    nx(f"hdls-empty.{T}", "A"),
    nx(f"hdls-empty.{T}", "AAAA"),
    nx(f"hdls-empty.{T}", "TXT"),
    nx(f"svc-unready.{T}", "A"),
    nx(f"172-0-0-30.svc-unready.{T}", "A"),
    # Only IPv6 endpoints: A is NODATA (ref 7); trailing "::" pads to "-0" (ref 6.2).
    nodata(f"hdls-v6only.{T}", "A"),
    ok(f"hdls-v6only.{T}", "AAAA", f"hdls-v6only.{T} 5 IN AAAA 2001:db8:3333:4444:5555:6666::",
       f"hdls-v6only.{T} 5 IN AAAA fd00::42"),
    ok(f"2001-db8-3333-4444-5555-6666--0.hdls-v6only.{T}", "AAAA",
       f"2001-db8-3333-4444-5555-6666--0.hdls-v6only.{T} 5 IN AAAA 2001:db8:3333:4444:5555:6666::"),
    ok(f"fd00--42.hdls-v6only.{T}", "AAAA", f"fd00--42.hdls-v6only.{T} 5 IN AAAA fd00::42"),
    # Readiness: only conditions.ready, absent = ready; serving/terminating and
    # the service's publishNotReadyAddresses are ignored (ref 2, 7; §15.5).
    ok(f"readiness.{T}", "A", *(f"readiness.{T} 5 IN A 172.0.2.{i}" for i in (1, 2, 5))),
    ok(f"172-0-2-2.readiness.{T}", "A", f"172-0-2-2.readiness.{T} 5 IN A 172.0.2.2"),
    nx(f"172-0-2-3.readiness.{T}", "A"),
    nx(f"172-0-2-4.readiness.{T}", "A"),
    # The same address in two slices: one record.
    ok(f"hdls-dup.{T}", "A", f"hdls-dup.{T} 5 IN A 172.0.3.2"),
    # v1 Endpoints: addresses count, notReadyAddresses don't, hostname kept.
    ok(f"legacy-hdls.{T}", "A", f"legacy-hdls.{T} 5 IN A 172.0.1.11",
       f"legacy-hdls.{T} 5 IN A 172.0.1.12"),
    ok(f"m2.legacy-hdls.{T}", "A", f"m2.legacy-hdls.{T} 5 IN A 172.0.1.12"),
    nx(f"172-0-1-13.legacy-hdls.{T}", "A"),
    # Endpoints next to an EndpointSlice: not counted twice.
    ok(f"both.{T}", "A", f"both.{T} 5 IN A 172.0.4.1"),
    ok(f"hdls-mixed.{T}", "A", f"hdls-mixed.{T} 5 IN A 172.0.6.1",
       f"hdls-mixed.{T} 5 IN A 172.0.6.2"),
    # Pod hostname + subdomain (ref 7): the slice controller copies the pod's
    # hostname only when its subdomain names the service; not-ready pods are out.
    ok(f"busybox-1.default-subdomain.{T}", "A",
       f"busybox-1.default-subdomain.{T} 5 IN A 10.244.0.11"),
    ok(f"default-subdomain.{T}", "A",
       *(f"default-subdomain.{T} 5 IN A 10.244.0.{i}" for i in (11, 12, 13))),
    ok(f"10-244-0-12.default-subdomain.{T}", "A",
       f"10-244-0-12.default-subdomain.{T} 5 IN A 10.244.0.12"),
    ok(f"10-244-0-13.default-subdomain.{T}", "A",
       f"10-244-0-13.default-subdomain.{T} 5 IN A 10.244.0.13"),
    nx(f"busybox-3.default-subdomain.{T}", "A"),  # subdomain is "other"
    nx(f"10-244-0-11.default-subdomain.{T}", "A"),  # has a hostname
    nx(f"busybox-4.default-subdomain.{T}", "A"),  # not ready
    nx(f"10-244-0-14.default-subdomain.{T}", "A"),
)


test_headless = table_test(HEADLESS)


# === Endpoint names of ClusterIP services, slice association (ref 2, 5; §15.6, §15.7) ====

ENDPOINT_NAMES = table(
    ok(f"ep1a.svc1.{T}", "A", f"ep1a.svc1.{T} 5 IN A 172.0.0.1"),
    ok(f"172-0-0-7.svc1.{T}", "A", f"172-0-0-7.svc1.{T} 5 IN A 172.0.0.7"),
    nodata(f"ep1a.svc1.{T}", "AAAA"),
    nodata(f"ep1a.svc1.{T}", "TXT"),
    nx(f"bogus.svc1.{T}", "A"),
    nx(f"172-0-0-1.svc1.{T}", "A"),  # ep1a has a hostname
    nx(f"172-0-0-9.svc1.{T}", "A"),  # ready: false, serving: true (terminating)
    nx(f"172-0-0-99.svc1.{T}", "A"),  # slice named svc1-orphan, no service-name label
    nx(f"172-0-0-98.svc1.{T}", "A"),  # labelled svc1, but in namespace otherns
    ok(f"m1.legacy.{T}", "A", f"m1.legacy.{T} 5 IN A 172.0.1.1"),
    ok(f"172-0-1-2.legacy.{T}", "A", f"172-0-1-2.legacy.{T} 5 IN A 172.0.1.2"),
    nx(f"172-0-1-3.legacy.{T}", "A"),  # notReadyAddresses
    ok(f"172-0-0-100.kube-dns.{KS}", "A", f"172-0-0-100.kube-dns.{KS} 5 IN A 172.0.0.100"),
    # Too long: 3+ labels before the service (ref 3).
    nx(f"a.b.c.svc1.{T}", "A"),
    nx(f"a._http._tcp.svc1.{T}", "SRV"),
    nx(f"x.y.172-0-0-2.hdls1.{T}", "A"),
    nx(f"a.b.svc1.{T}", "A"),  # port a, protocol b: no such port
)


test_endpoint_names = table_test(ENDPOINT_NAMES)


# === ExternalName (ref 8; §15.9) =========================================================

EXTERNAL = table(
    ok(f"external.{T}", "CNAME", f"external.{T} 5 IN CNAME ext.interwebs.test."),
    # Out-of-zone target: no upstream here, so the answer is the CNAME alone,
    # rcode NOERROR (ref 8).
    ok(f"external.{T}", "A", f"external.{T} 5 IN CNAME ext.interwebs.test."),
    ok(f"external.{T}", "AAAA", f"external.{T} 5 IN CNAME ext.interwebs.test."),
    # In-zone target is chased (handler_test "CNAME External To Internal Service").
    ok(f"external-to-service.{T}", "A",
       f"external-to-service.{T} 5 IN CNAME svc1.{T}",
       f"svc1.{T} 5 IN A 10.0.0.1"),
    ok(f"external-to-service.{T}", "CNAME", f"external-to-service.{T} 5 IN CNAME svc1.{T}"),
    # ref 8 surprise: the target has no AAAA -> NODATA *without* the CNAME.
    nodata(f"external-to-service.{T}", "AAAA"),
    ok(f"external-chain.{T}", "A",
       f"external-chain.{T} 5 IN CNAME external-to-service.{T}",
       f"external-to-service.{T} 5 IN CNAME svc1.{T}",
       f"svc1.{T} 5 IN A 10.0.0.1"),
    nodata(f"external-missing.{T}", "A"),  # in-zone target does not exist: no CNAME
    ok(f"external-missing.{T}", "CNAME", f"external-missing.{T} 5 IN CNAME nope.{T}"),
    nodata(f"external-loop.{T}", "A"),  # x CNAME x is skipped
    ok(f"external-loop.{T}", "CNAME", f"external-loop.{T} 5 IN CNAME external-loop.{T}"),
    # SRV is not implemented for ExternalName: NODATA; TXT/MX NODATA (ref 8).
    nodata(f"external.{T}", "SRV"),
    nodata(f"external.{T}", "TXT"),
    nodata(f"external.{T}", "MX"),
    # Sub-names do not exist (handler_test "subdomain of an external service").
    nx(f"endpoint.external.{T}", "CNAME"),
    nx(f"endpoint.external.{T}", "A"),
    nx(f"_http._tcp.external.{T}", "SRV"),
    nx(f"_http._tcp.external.{T}", "A"),
    # An IP as externalName is not served: NXDOMAIN for every type (ref 8).
    nx(f"external-ip.{T}", "A"),
    nx(f"external-ip.{T}", "AAAA"),
    nx(f"external-ip.{T}", "CNAME"),
    nx(f"external-ip.{T}", "SRV"),
    nx(f"external-ip.{T}", "TXT"),
)


test_external_name = table_test(EXTERNAL)


# === Zone apex, namespaces, meta records (ref 3, 11; §15.11, §15.12) =======================

APEX = table(
    ok("cluster.local.", "SOA", SOA),
    ok("cluster.local.", "NS", "cluster.local. 5 IN NS ns.dns.cluster.local.",
       extra=["ns.dns.cluster.local. 5 IN A 127.0.0.1"]),
    ok("ns.dns.cluster.local.", "A", "ns.dns.cluster.local. 5 IN A 127.0.0.1"),
    nodata("ns.dns.cluster.local.", "AAAA"),
    nx("ns.dns.cluster.local.", "TXT"),  # last label "dns" is not svc/pod (ref 11)
    nodata("cluster.local.", "A"),
    nodata("cluster.local.", "AAAA"),
    nodata("cluster.local.", "SRV"),
    nodata("cluster.local.", "MX"),
    nodata("cluster.local.", "HINFO"),
    nodata("cluster.local.", "PTR"),
    # TXT is NXDOMAIN where A is NODATA (ref 11, "error NXDOMAIN for TXT lookups").
    nx("cluster.local.", "TXT"),
    nodata("svc.cluster.local.", "A"),
    nodata("svc.cluster.local.", "NS"),
    nodata("svc.cluster.local.", "SOA"),
    nx("svc.cluster.local.", "TXT"),
    nodata("pod.cluster.local.", "A"),
    nx("pod.cluster.local.", "TXT"),
    # Namespaces: NODATA when the Namespace exists, even with no services.
    nodata("testns.svc.cluster.local.", "A"),
    nodata("testns.svc.cluster.local.", "NS"),
    nodata("testns.svc.cluster.local.", "SOA"),
    nx("testns.svc.cluster.local.", "TXT"),
    nodata("emptyns.svc.cluster.local.", "A"),
    nx("emptyns.svc.cluster.local.", "TXT"),
    nx("svc-nons.svc.cluster.local.", "A"),
    nx("foo.svc.cluster.local.", "NS"),
    # Last label neither svc nor pod: invalid, NXDOMAIN (ref 3).
    nx("foo.cluster.local.", "A"),
    nx("foo.cluster.local.", "NS"),
    # dns-version: TXT with TTL 28800 whatever the ttl option; other types
    # NXDOMAIN (ref 11, a CoreDNS inconsistency).
    ok("dns-version.cluster.local.", "TXT", 'dns-version.cluster.local. 28800 IN TXT "1.1.0"'),
    nx("dns-version.cluster.local.", "A"),
    nx("dns-version.cluster.local.", "AAAA"),
    # SOA for any non-apex name in the zone, existing or not: NODATA (ref 11).
    nodata(f"svc0.{T}", "SOA"),
    nodata("foo.cluster.local.", "SOA"),
    nodata(f"172-0-0-2.hdls1.{T}", "SOA"),
    nodata(f"external-ip.{T}", "SOA"),
    nodata("dns-version.cluster.local.", "SOA"),
)


test_apex = table_test(APEX)


# The apex NS names the Service whose endpoints hold the server's own address
# (ref 11; coredns/ci address_test "An NS type query"; ns.go nsAddrs).
NS_SELF = table(
    ok("cluster.local.", "NS", f"cluster.local. 5 IN NS kube-dns.{KS}",
       extra=[f"kube-dns.{KS} 5 IN A 10.0.0.10"]),
    ok("ns.dns.cluster.local.", "A", "ns.dns.cluster.local. 5 IN A 10.0.0.10"),
)


test_apex_ns_names_own_service = table_test(NS_SELF, ns_addresses=("172.0.0.100",))


def test_apex_ns_glue_both_families():
    snap = make_snapshot(ns_addresses=("127.0.0.1", "::1"))
    run(ok("cluster.local.", "NS", "cluster.local. 5 IN NS ns.dns.cluster.local.",
           extra=["ns.dns.cluster.local. 5 IN A 127.0.0.1",
                  "ns.dns.cluster.local. 5 IN AAAA ::1"]), snap)
    run(ok("ns.dns.cluster.local.", "AAAA", "ns.dns.cluster.local. 5 IN AAAA ::1"), snap)


# === Wildcards: removed in CoreDNS 1.9.0 (ref 3; §15.14) ===================================

WILDCARDS = table(
    nx(f"*.{T}", "A"),
    nx("svc1.*.svc.cluster.local.", "A"),
    nx(f"*.svc1.{T}", "A"),
    nx(f"*.hdls1.{T}", "A"),
    nx(f"*._tcp.svc1.{T}", "SRV"),
    nx(f"_http._*.svc1.{T}", "SRV"),
    nx(f"any.{T}", "A"),
    nx(f"any._tcp.svc1.{T}", "SRV"),
    nx("*.*.svc.cluster.local.", "A"),
    nx("*.cluster.local.", "A"),
)


test_wildcards = table_test(WILDCARDS)


# === PTR (ref 9; §15.8) =====================================================================

def rev(ip: str) -> str:
    return dns.reversename.from_address(ip).to_text()


def ptr(ip: str, *targets: str) -> Case:
    return ok(rev(ip), "PTR", *(f"{rev(ip)} 5 IN PTR {t}" for t in targets))


def ptr_nx(ip: str) -> Case:
    return nx(rev(ip), "PTR", SOA6 if ":" in ip else SOA4)


PTR = table(
    # Cluster IP wins over clash's endpoint 10.0.0.1 (ref 9 step 1).
    ptr("10.0.0.1", f"svc1.{T}"),
    ptr("10.0.0.10", f"kube-dns.{KS}"),
    # Endpoints of a ClusterIP service, by hostname or dashed IP (§15.7).
    ptr("172.0.0.1", f"ep1a.svc1.{T}"),
    ptr("172.0.0.7", f"172-0-0-7.svc1.{T}"),
    ptr("172.0.0.100", f"172-0-0-100.kube-dns.{KS}"),
    # Dual stack: one PTR per family's IP.
    ptr("10.0.0.3", f"svc-dual-stack.{T}"),
    ptr("10::3", f"svc-dual-stack.{T}"),
    ptr("1234:abcd::1", f"svc6.{T}"),
    # Headless endpoints.
    ptr("172.0.0.2", f"172-0-0-2.hdls1.{T}"),
    ptr("172.0.0.4", f"dup-name.hdls1.{T}"),
    ptr("5678:abcd::1", f"5678-abcd--1.hdls1.{T}"),
    ptr("2001:db8:3333:4444:5555:6666::", f"2001-db8-3333-4444-5555-6666--0.hdls-v6only.{T}"),
    ptr("172.0.1.1", f"m1.legacy.{T}"),
    ptr("172.0.1.2", f"172-0-1-2.legacy.{T}"),
    # One IP selected by two services: a PTR for each (reverse_test.go).
    ptr("172.0.3.1", f"172-0-3-1.shared-a.{T}", f"172-0-3-1.shared-b.{T}"),
    # One IP in two slices of one service: one PTR.
    ptr("172.0.3.2", f"172-0-3-2.hdls-dup.{T}"),
    ptr("172.0.4.1", f"172-0-4-1.both.{T}"),
    # Not ready, no service-name label, labelled in another namespace,
    # notReadyAddresses, external/LB IPs, unknown: NXDOMAIN with the reverse
    # zone's SOA.
    ptr_nx("172.0.0.6"),
    ptr_nx("172.0.0.9"),
    ptr_nx("172.0.0.99"),
    ptr_nx("172.0.0.98"),
    ptr_nx("172.0.1.3"),
    ptr_nx("192.0.2.1"),
    ptr_nx("192.0.2.2"),
    ptr_nx("10.240.0.1"),  # pods not behind a service have no PTR
    ptr_nx("9.9.9.9"),
    ptr_nx("2001:db8::99"),
    # Reverse zone apexes.
    ok("in-addr.arpa.", "SOA", SOA4),
    ok("ip6.arpa.", "SOA", SOA6),
    # Names inside a reverse zone that are not complete addresses: NXDOMAIN (ref 3, 9).
    nx("svc1.testns.svc.0.10.in-addr.arpa.", "A", SOA4),
    nx("svc1.testns.svc.0.10.in-addr.arpa.", "PTR", SOA4),
    nx("0.10.in-addr.arpa.", "PTR", SOA4),
    nx("5.1.0.0.10.in-addr.arpa.", "PTR", SOA4),
    nx("256.0.0.10.in-addr.arpa.", "PTR", SOA4),
    nx("01.0.0.10.in-addr.arpa.", "PTR", SOA4),
    nx(".".join(rev("10::3").split(".")[1:]), "PTR", SOA6),  # 31 nibbles
    nx("10::3.ip6.arpa.", "PTR", SOA6),  # not nibbles
    nx(r"10\.0\.0\.1.in-addr.arpa.", "PTR", SOA4),  # one label with dots in it
    # A (or any non-PTR type) on a reverse name: CoreDNS parses it with the
    # forward grammar ("<...>.10" is not svc/pod) -> NXDOMAIN (ref 9 "A query
    # inside a reverse zone -> NXDOMAIN"; handler.go fake A lookup).
    nx(rev("10.0.0.1"), "A", SOA4),
)


test_ptr = table_test(PTR)


# === Pods (ref 10; §15.10) ================================================================

P = "podns.pod.cluster.local."

PODS_DISABLED = table(
    nx(f"10-240-0-1.{P}", "A"),
    nx(f"fd00-10-244--6.{P}", "AAAA"),
    nx(P, "A"),  # even <ns>.pod.<zone>
    nx(f"x.10-240-0-1.{P}", "A"),
    nodata("pod.cluster.local.", "A"),
)

PODS_INSECURE = table(
    ok(f"10-240-0-1.{P}", "A", f"10-240-0-1.{P} 5 IN A 10.240.0.1"),
    ok(f"10-240-9-9.{P}", "A", f"10-240-9-9.{P} 5 IN A 10.240.9.9"),  # no pod check
    ok("10-240-0-1.emptyns.pod.cluster.local.", "A",
       "10-240-0-1.emptyns.pod.cluster.local. 5 IN A 10.240.0.1"),
    nodata(f"10-240-0-1.{P}", "AAAA"),  # wrong family
    nodata(f"10-240-0-1.{P}", "TXT"),
    ok(f"fd00-10-244--5.{P}", "AAAA", f"fd00-10-244--5.{P} 5 IN AAAA fd00:10:244::5"),
    nodata(f"fd00-10-244--5.{P}", "A"),
    nx(f"blah.{P}", "A"),  # not an IP: NXDOMAIN for every type
    nx(f"blah.{P}", "AAAA"),
    nx(f"blah.{P}", "TXT"),
    nx(f"10-240-0-1-5.{P}", "A"),
    nx("10-240-0-1.nsnoexist.pod.cluster.local.", "A"),  # namespace must exist
    nodata(P, "A"),
    nodata("pod.cluster.local.", "A"),
    # Quirk: one extra label in front is ignored (ref 10).
    ok(f"x.10-240-0-1.{P}", "A", f"x.10-240-0-1.{P} 5 IN A 10.240.0.1"),
    # A label Python's ipaddress reads as a scoped IPv6 address (fe80::1%eth0)
    # is not an IP for DNS (Go's net.ParseIP rejects zones): NXDOMAIN.
    nx(f"fe80--1%eth0.{P}", "AAAA"),
    nx(f"fe80--1%eth0.{P}", "A"),
)

PODS_VERIFIED = table(
    ok(f"10-240-0-1.{P}", "A", f"10-240-0-1.{P} 5 IN A 10.240.0.1"),
    nx(f"10-240-0-2.{P}", "A"),  # the pod with that IP lives in otherns
    ok("10-240-0-2.otherns.pod.cluster.local.", "A",
       "10-240-0-2.otherns.pod.cluster.local. 5 IN A 10.240.0.2"),
    nx(f"10-240-0-3.{P}", "A"),  # being deleted
    nx(f"10-240-0-4.{P}", "A"),  # Succeeded
    nx(f"10-240-0-8.{P}", "A"),  # Failed
    nx(f"10-240-0-9.{P}", "A"),  # Unknown
    ok(f"10-240-0-7.{P}", "A", f"10-240-0-7.{P} 5 IN A 10.240.0.7"),  # Pending counts
    ok(f"10-240-0-5.{P}", "A", f"10-240-0-5.{P} 5 IN A 10.240.0.5"),  # primary podIP
    nx(f"fd00-10-244--5.{P}", "AAAA"),  # secondary podIP is not used
    ok(f"fd00-10-244--6.{P}", "AAAA", f"fd00-10-244--6.{P} 5 IN AAAA fd00:10:244::6"),
    nx(f"10-240-9-9.{P}", "A"),
    nx("10-240-0-1.emptyns.pod.cluster.local.", "A"),
    nx("10-240-0-1.nsnoexist.pod.cluster.local.", "A"),
    nodata(f"10-240-0-1.{P}", "AAAA"),
    nodata(P, "A"),
    nodata("pod.cluster.local.", "A"),
    nx(f"blah.{P}", "A"),
)


test_pods_disabled = table_test(PODS_DISABLED)  # the default (ref 1)


test_pods_insecure = table_test(PODS_INSECURE, pods="insecure")


test_pods_verified = table_test(PODS_VERIFIED, pods="verified")


# === Options: ignore_empty_service, endpoint_pod_names (ref 5, 7) ===========================

IGNORE_EMPTY = table(
    nx(f"svcempty.{T}", "A"),
    nx(f"svcempty.{T}", "SRV"),
    nx(f"_http._tcp.svcempty.{T}", "SRV"),
    nx(f"svc-2ports.{T}", "A"),
    ok(f"svc1.{T}", "A", f"svc1.{T} 5 IN A 10.0.0.1"),
    ok(f"legacy.{T}", "A", f"legacy.{T} 5 IN A 10.0.0.8"),
    # ExternalName and headless are not affected.
    ok(f"external.{T}", "CNAME", f"external.{T} 5 IN CNAME ext.interwebs.test."),
    ok(f"external-to-service.{T}", "A", f"external-to-service.{T} 5 IN CNAME svc1.{T}",
       f"svc1.{T} 5 IN A 10.0.0.1"),
    ok(f"hdlsprtls.{T}", "A", f"hdlsprtls.{T} 5 IN A 172.0.0.20"),
    nodata("testns.svc.cluster.local.", "A"),
)


test_ignore_empty_service = table_test(IGNORE_EMPTY, ignore_empty_service=True)


POD63 = "pod-with-a-name-of-sixty-three-characters-aaaaaaaaaaaaaaaaaaaaa"

ENDPOINT_POD_NAMES = table(
    ok(f"web-0.epn.{T}", "A", f"web-0.epn.{T} 5 IN A 172.0.5.1"),
    nx(f"172-0-5-1.epn.{T}", "A"),
    ok(f"named.epn.{T}", "A", f"named.epn.{T} 5 IN A 172.0.5.2"),  # hostname wins
    nx(f"web-1.epn.{T}", "A"),
    ok(f"172-0-5-3.epn.{T}", "A", f"172-0-5-3.epn.{T} 5 IN A 172.0.5.3"),  # 64 chars: dashed
    ok(f"172-0-5-4.epn.{T}", "A", f"172-0-5-4.epn.{T} 5 IN A 172.0.5.4"),  # no targetRef
    ok(f"{POD63}.epn.{T}", "A", f"{POD63}.epn.{T} 5 IN A 172.0.5.5"),  # 63 chars: used
    ok(f"coredns-5d78c9869d-abcde.kube-dns.{KS}", "A",
       f"coredns-5d78c9869d-abcde.kube-dns.{KS} 5 IN A 172.0.0.100"),
    ptr("172.0.5.1", f"web-0.epn.{T}"),
    ptr("172.0.5.5", f"{POD63}.epn.{T}"),
    ok(f"_http._tcp.epn.{T}", "SRV",
       *(f"_http._tcp.epn.{T} 5 IN SRV 0 20 80 {t}.epn.{T}"
         for t in ("web-0", "named", "172-0-5-3", "172-0-5-4", POD63)),
       extra=[f"web-0.epn.{T} 5 IN A 172.0.5.1", f"named.epn.{T} 5 IN A 172.0.5.2",
              f"172-0-5-3.epn.{T} 5 IN A 172.0.5.3", f"172-0-5-4.epn.{T} 5 IN A 172.0.5.4",
              f"{POD63}.epn.{T} 5 IN A 172.0.5.5"]),
)

WITHOUT_ENDPOINT_POD_NAMES = table(
    nx(f"web-0.epn.{T}", "A"),
    ok(f"172-0-5-1.epn.{T}", "A", f"172-0-5-1.epn.{T} 5 IN A 172.0.5.1"),
    ok(f"named.epn.{T}", "A", f"named.epn.{T} 5 IN A 172.0.5.2"),
    ptr("172.0.5.1", f"172-0-5-1.epn.{T}"),
)


test_endpoint_pod_names = table_test(ENDPOINT_POD_NAMES, endpoint_pod_names=True)


test_endpoint_pod_names_off = table_test(WITHOUT_ENDPOINT_POD_NAMES)


# === The ttl option (ref 4, 11; §15.2, §15.12) =============================================

@pytest.mark.parametrize("ttl, soa_ttl", [(0, 0), (30, 30), (300, 300), (600, 300), (3600, 300)])
def test_ttl_option(ttl, soa_ttl):
    snap = make_snapshot(ttl=ttl)
    soa = (f"cluster.local. {soa_ttl} IN SOA ns.dns.cluster.local. hostmaster.cluster.local. "
           f"12345 7200 1800 86400 {ttl}")
    run(ok(f"svc1.{T}", "A", f"svc1.{T} {ttl} IN A 10.0.0.1"), snap)
    run(ok(f"svc1.{T}", "SRV", f"svc1.{T} {ttl} IN SRV 0 100 80 svc1.{T}",
           extra=[f"svc1.{T} {ttl} IN A 10.0.0.1"]), snap)
    run(nx(f"svc0.{T}", "A", soa), snap)
    run(nodata(f"svc1.{T}", "AAAA", soa), snap)
    run(ok("cluster.local.", "SOA", soa), snap)
    run(ok(rev("10.0.0.1"), "PTR", f"{rev('10.0.0.1')} {ttl} IN PTR svc1.{T}"), snap)
    run(ok(f"external.{T}", "CNAME", f"external.{T} {ttl} IN CNAME ext.interwebs.test."), snap)
    # dns-version keeps 28800 whatever ttl says.
    run(ok("dns-version.cluster.local.", "TXT",
           'dns-version.cluster.local. 28800 IN TXT "1.1.0"'), snap)


def test_zone_option():
    snap = make_snapshot(zone="example.org")
    run(ok("svc1.testns.svc.example.org.", "A", "svc1.testns.svc.example.org. 5 IN A 10.0.0.1"),
        snap)
    run(nx("svc0.testns.svc.example.org.", "A",
           "example.org. 5 IN SOA ns.dns.example.org. hostmaster.example.org. "
           "12345 7200 1800 86400 5"), snap)
    run(ptr("10.0.0.1", "svc1.testns.svc.example.org."), snap)
    assert exchange(snap, f"svc1.{T}", "A").rcode_text == "REFUSED"


# === The quick table of ref 13 ===============================================================

QUICK = table(
    ok(f"svc1.{T}", "A", f"svc1.{T} 5 IN A 10.0.0.1"),
    nodata(f"svc1.{T}", "AAAA"),
    nx(f"svc0.{T}", "A"),
    ok(f"_http._tcp.svc1.{T}", "SRV", f"_http._tcp.svc1.{T} 5 IN SRV 0 100 80 svc1.{T}",
       extra=[f"svc1.{T} 5 IN A 10.0.0.1"]),
    ok(f"hdls1.{T}", "A", *(f"hdls1.{T} 5 IN A 172.0.0.{i}" for i in (2, 3, 4, 5))),
    ok(f"172-0-0-2.hdls1.{T}", "A", f"172-0-0-2.hdls1.{T} 5 IN A 172.0.0.2"),
    ok(f"external.{T}", "CNAME", f"external.{T} 5 IN CNAME ext.interwebs.test."),
    ptr("10.0.0.1", f"svc1.{T}"),  # the table's 192.168.1.100 cluster IP
    ptr("172.0.0.1", f"ep1a.svc1.{T}"),  # the table's 10.0.0.100 endpoint ep1a
    ok("dns-version.cluster.local.", "TXT", 'dns-version.cluster.local. 28800 IN TXT "1.1.0"'),
    nodata("testns.svc.cluster.local.", "A"),
    nx(f"*.{T}", "A"),
)


test_quick_table = table_test(QUICK)


@pytest.mark.parametrize("mode, case", [
    ("disabled", nx("10-240-0-1.podns.pod.cluster.local.", "A")),
    ("insecure", ok("10-240-0-1.podns.pod.cluster.local.", "A",
                    "10-240-0-1.podns.pod.cluster.local. 5 IN A 10.240.0.1")),
    ("verified", ok("10-240-0-1.podns.pod.cluster.local.", "A",
                    "10-240-0-1.podns.pod.cluster.local. 5 IN A 10.240.0.1")),
    ("verified", nx("10-240-0-9.podns.pod.cluster.local.", "A")),
])
def test_quick_table_pods(mode, case):
    run(case, make_snapshot(pods=mode))


# === Mixed case, DNS 0x20 (ref 3, 4; §15.13; DESIGN "mixed-case table") ========================

@dataclass(frozen=True)
class CaseRow:
    case: Case
    owners: tuple  # exact (owner, type) of answer + authority records, on the wire
    pods: str = "disabled"


MIXED_CASE = [
    CaseRow(ok("SvC1.TeStNs.SvC.cLuStEr.LoCaL.", "A", f"svc1.{T} 5 IN A 10.0.0.1"),
            (("SvC1.TeStNs.SvC.cLuStEr.LoCaL.", "A"),)),
    CaseRow(nodata("SVC1.TESTNS.SVC.CLUSTER.LOCAL.", "AAAA"),
            # The SOA owner is the zone as the client wrote it (ref 4).
            (("CLUSTER.LOCAL.", "SOA"),)),
    CaseRow(nx("SvC0.TeStNs.SvC.cLuStEr.LoCaL.", "A"), (("cLuStEr.LoCaL.", "SOA"),)),
    CaseRow(ok("_HtTp._TcP.sVc1.TeStNs.SvC.cLuStEr.LoCaL.", "SRV",
               f"_http._tcp.svc1.{T} 5 IN SRV 0 100 80 svc1.{T}",
               extra=[f"svc1.{T} 5 IN A 10.0.0.1"]),
            (("_HtTp._TcP.sVc1.TeStNs.SvC.cLuStEr.LoCaL.", "SRV"),)),
    CaseRow(nx("_HTTP._UDP.svc1.testns.svc.cluster.local.", "SRV"), (("cluster.local.", "SOA"),)),
    CaseRow(ok("DuP-NaMe.HdLs1.TeStNs.SvC.cluster.local.", "A",
               f"dup-name.hdls1.{T} 5 IN A 172.0.0.4", f"dup-name.hdls1.{T} 5 IN A 172.0.0.5"),
            (("DuP-NaMe.HdLs1.TeStNs.SvC.cluster.local.", "A"),) * 2),
    CaseRow(ok("5678-ABCD--1.hdls1.testns.svc.cluster.local.", "AAAA",
               f"5678-abcd--1.hdls1.{T} 5 IN AAAA 5678:abcd::1"),
            (("5678-ABCD--1.hdls1.testns.svc.cluster.local.", "AAAA"),)),
    CaseRow(ok("ExTeRnAl.TeStNs.SvC.cluster.local.", "CNAME",
               f"external.{T} 5 IN CNAME ext.interwebs.test."),
            (("ExTeRnAl.TeStNs.SvC.cluster.local.", "CNAME"),)),
    CaseRow(ok("KUBE-DNS.KUBE-SYSTEM.SVC.CLUSTER.LOCAL.", "A", f"kube-dns.{KS} 5 IN A 10.0.0.10"),
            (("KUBE-DNS.KUBE-SYSTEM.SVC.CLUSTER.LOCAL.", "A"),)),
    CaseRow(ok("CLUSTER.LOCAL.", "SOA", SOA), (("CLUSTER.LOCAL.", "SOA"),)),
    CaseRow(ok("DNS-VERSION.Cluster.Local.", "TXT",
               'dns-version.cluster.local. 28800 IN TXT "1.1.0"'),
            (("DNS-VERSION.Cluster.Local.", "TXT"),)),
    CaseRow(nodata("TestNS.Svc.Cluster.Local.", "A"), (("Cluster.Local.", "SOA"),)),
    CaseRow(ok("1.0.0.10.In-AdDr.ArPa.", "PTR", f"1.0.0.10.in-addr.arpa. 5 IN PTR svc1.{T}"),
            (("1.0.0.10.In-AdDr.ArPa.", "PTR"),)),
    CaseRow(nx("9.9.9.9.IN-ADDR.ARPA.", "PTR", SOA4), (("IN-ADDR.ARPA.", "SOA"),)),
    CaseRow(ok(rev("5678:abcd::1").upper(), "PTR",
               f"{rev('5678:abcd::1')} 5 IN PTR 5678-abcd--1.hdls1.{T}"),
            ((rev("5678:abcd::1").upper(), "PTR"),)),
    CaseRow(ok("10-240-0-1.PoDnS.PoD.cluster.local.", "A",
               "10-240-0-1.podns.pod.cluster.local. 5 IN A 10.240.0.1"),
            (("10-240-0-1.PoDnS.PoD.cluster.local.", "A"),), pods="insecure"),
    CaseRow(ok("FD00-10-244--5.PoDnS.PoD.cluster.local.", "AAAA",
               "fd00-10-244--5.podns.pod.cluster.local. 5 IN AAAA fd00:10:244::5"),
            (("FD00-10-244--5.PoDnS.PoD.cluster.local.", "AAAA"),), pods="insecure"),
]


@pytest.mark.parametrize("row", [pytest.param(r, id=f"{r.case.qname} {r.case.qtype}")
                                 for r in MIXED_CASE])
def test_mixed_case(row):
    snap = make_snapshot(pods=row.pods)
    query = make_query(row.case.qname, row.case.qtype)
    qwire = query.to_wire()
    wire = answer.answer(snap, qwire)
    reply = decode(wire)
    # Matching is case-insensitive: the same records as for the lower-case name.
    check(reply, row.case)
    # The question section is echoed byte for byte (a 0x20 resolver compares it).
    qlen = len(dns.name.from_text(row.case.qname).to_wire()) + 4
    assert wire[12:12 + qlen] == qwire[12:12 + qlen]
    # Owner names echo the query's case; the SOA owner is the zone as sent.
    assert sorted(reply.raw["answer"] + reply.raw["authority"]) == sorted(row.owners)


def test_mixed_case_soa_names_follow_query():
    """ref 4: SOA owner, mname and rname use the zone suffix as the client sent it."""
    reply = exchange(make_snapshot(), "SvC0.TeStNs.SvC.cLuStEr.LoCaL.", "A")
    soa = reply.lib.auth[0]
    assert str(soa.rname) == "cLuStEr.LoCaL."
    assert str(soa.rdata.mname) == "ns.dns.cLuStEr.LoCaL."
    assert str(soa.rdata.rname) == "hostmaster.cLuStEr.LoCaL."


# === Refused, ANY, classes, not loaded (ref 4) ================================================

@pytest.mark.parametrize("qname, qtype, rdclass", [
    # Names outside our zones: REFUSED, no AA, no records (ref 4).
    ("example.com.", "A", "IN"),
    ("local.", "SOA", "IN"),
    (".", "NS", "IN"),
    ("cluster.local.example.", "A", "IN"),
    ("arpa.", "NS", "IN"),
    ("1.0.0.10.in-addr.arpa.example.", "PTR", "IN"),
    # Zone transfers are a separate plugin: REFUSED (ref 4).
    ("cluster.local.", "AXFR", "IN"),
    ("cluster.local.", "IXFR", "IN"),
    ("in-addr.arpa.", "AXFR", "IN"),
    # Only class IN is served.
    ("svc1.testns.svc.cluster.local.", "A", "CH"),
    ("version.bind.", "TXT", "CH"),
    ("svc1.testns.svc.cluster.local.", "A", "HS"),
    ("svc1.testns.svc.cluster.local.", "A", "ANY"),
])
def test_refused(qname, qtype, rdclass):
    reply = exchange(make_snapshot(), qname, qtype, rdclass=rdclass)
    assert reply.rcode_text == "REFUSED", str(reply)
    assert not reply.aa
    assert (reply.answer, reply.authority, reply.additional) == ([], [], [])
    assert len(reply.py.question) == 1  # the question is echoed


@pytest.mark.parametrize("qname", [f"svc1.{T}", f"hdls1.{T}", "cluster.local.",
                                   "testns.svc.cluster.local.", f"external.{T}", rev("10.0.0.1")])
def test_any_is_one_hinfo(qname):
    """RFC 8482: ANY on a name that exists gets one synthesized HINFO."""
    reply = exchange(make_snapshot(), qname, "ANY")
    assert reply.rcode_text == "NOERROR" and reply.aa, str(reply)
    assert [(r[0], r[2]) for r in reply.answer] == [(qname.lower(), "HINFO")]
    rd = reply.py.answer[0][0]
    # RFC 8482 4.2: CPU "RFC8482", OS empty.
    assert (rd.cpu, rd.os) == (b"RFC8482", b"")
    assert reply.authority == [] and reply.additional == []


@pytest.mark.parametrize("qname, soa", [(f"svc0.{T}", SOA), ("foo.cluster.local.", SOA),
                                        (f"external-ip.{T}", SOA), (rev("9.9.9.9"), SOA4)])
def test_any_missing_name_is_nxdomain(qname, soa):
    run(nx(qname, "ANY", soa), make_snapshot())


def test_not_loaded_is_servfail():
    """Before the first load: SERVFAIL (DESIGN; ref 4 'not synced')."""
    query = make_query(f"svc1.{T}", "A")
    reply = decode(answer.answer(None, query.to_wire()))
    assert reply.rcode_text == "SERVFAIL"
    assert reply.py.id == query.id
    assert reply.answer == []
    assert [q.name for q in reply.py.question] == [dns.name.from_text(f"svc1.{T}")]


def test_not_loaded_nxdomain_name_is_servfail_too():
    reply = exchange(None, f"svc0.{T}", "A")
    assert reply.rcode_text == "SERVFAIL"


def test_respond_takes_a_read_query():
    # respond() decides on a query already read, with no wire in sight.
    query = answer.read(dns.message.make_query(f"svc1.{T}", "A").to_wire())
    resp = answer.respond(make_snapshot(), query)
    assert resp.rcode == dns.rcode.NOERROR
    assert [to_dnspython(rrset).to_text() for rrset in resp.answer] == [
        f"svc1.{T} 5 IN A 10.0.0.1"]


# === Protocol level ===========================================================================

def _query_wire(qname=f"svc1.{T}", qtype="A", qid=0x1234, **kw) -> bytes:
    q = make_query(qname, qtype, **kw)
    q.id = qid
    return q.to_wire()


def _formerr(wire: bytes, qid: int = 0x1234) -> None:
    out = answer.answer(make_snapshot(), wire)
    assert out is not None
    reply = decode(out)
    assert reply.rcode_text == "FORMERR"
    assert reply.py.id == qid
    assert not reply.aa


GOOD = _query_wire()

MALFORMED = {
    "truncated question": GOOD[:20],
    "question without type and class": GOOD[:-4],
    "question missing class": GOOD[:-2],
    "garbage after header": GOOD[:12] + bytes([0xC0, 0xFF, 0x17, 0x99, 0x3F, 0x00]),
    "trailing junk": GOOD + b"\x00junk",
    "compression pointer loop": GOOD[:12] + b"\xc0\x0c\x00\x01\x00\x01",
    "label longer than the packet": GOOD[:12] + b"\x3fabc",
    "name longer than 255": GOOD[:12] + (b"\x3f" + b"a" * 63) * 5 + b"\x00\x00\x01\x00\x01",
    "ancount says one, nothing there": GOOD[:6] + b"\x00\x01" + GOOD[8:],
    "header only, qdcount 1": GOOD[:12],
    # RFC 6891 6.1.1: more than one OPT is a FORMERR.
    "two OPT records": (GOOD[:10] + b"\x00\x02" + GOOD[12:]
                        + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00" * 2),
}


@pytest.mark.parametrize("wire", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_is_formerr_with_id(wire):
    _formerr(wire)


@pytest.mark.parametrize("length", range(12))
def test_shorter_than_a_header_gets_nothing(length):
    assert answer.answer(make_snapshot(), GOOD[:length]) is None
    assert answer.answer(None, GOOD[:length]) is None


def test_response_packets_get_nothing():
    """QR set: answering a response could start a loop between two servers."""
    wire = bytearray(GOOD)
    wire[2] |= 0x80
    assert answer.answer(make_snapshot(), bytes(wire)) is None
    resp = answer.answer(make_snapshot(), GOOD)
    assert answer.answer(make_snapshot(), resp) is None


def _update() -> dns.message.Message:
    u = dns.update.UpdateMessage("cluster.local.")
    u.add(f"new.{T}", 5, "A", "10.0.0.99")
    return u


def _notify() -> dns.message.Message:
    q = dns.message.make_query("cluster.local.", "SOA")
    q.set_opcode(dns.opcode.NOTIFY)
    q.flags |= dns.flags.AA
    return q


def _with_opcode(opcode: int) -> dns.message.Message:
    q = make_query(f"svc1.{T}", "A")
    q.set_opcode(opcode)
    return q


@pytest.mark.parametrize("query", [
    pytest.param(_with_opcode(dns.opcode.IQUERY), id="IQUERY"),
    pytest.param(_with_opcode(dns.opcode.STATUS), id="STATUS"),
    pytest.param(_with_opcode(3), id="opcode-3"),
    pytest.param(_notify(), id="NOTIFY"),
    pytest.param(_update(), id="UPDATE"),
])
def test_other_opcodes_are_notimp(query):
    query.id = 0x4321
    opcode = query.opcode()
    reply = decode(answer.answer(make_snapshot(), query.to_wire()))
    assert reply.rcode_text == "NOTIMP"
    assert reply.py.id == 0x4321
    assert reply.py.opcode() == opcode
    assert reply.answer == []


@pytest.mark.parametrize("qdcount", [0, 2])
def test_qdcount_not_one_is_formerr(qdcount):
    q = dns.message.make_query(f"svc1.{T}", "A")
    q.id = 0x1234
    if qdcount == 0:
        q.question = []
    else:
        q.question.append(dns.message.make_query(f"svc6.{T}", "AAAA").question[0])
    _formerr(q.to_wire())


def test_cd_is_echoed():
    q = make_query(f"svc1.{T}", "A")
    q.flags |= dns.flags.CD
    reply = decode(answer.answer(make_snapshot(), q.to_wire()))
    assert reply.py.flags & dns.flags.CD


def test_rd_and_id_are_echoed():
    q = make_query(f"svc1.{T}", "A")
    q.flags &= ~dns.flags.RD
    q.id = 0xBEEF
    reply = decode(answer.answer(make_snapshot(), q.to_wire()))
    assert reply.py.id == 0xBEEF and not reply.py.flags & dns.flags.RD
    reply = exchange(make_snapshot(), f"svc1.{T}", "A")
    assert reply.py.flags & dns.flags.RD


# --- EDNS ---

@pytest.mark.parametrize("qname, qtype", [(f"svc1.{T}", "A"), (f"svc0.{T}", "A"),
                                          ("example.com.", "A"), (f"hdls1.{T}", "SRV")])
def test_edns_only_when_asked(qname, qtype):
    plain = exchange(make_snapshot(), qname, qtype, proto="tcp")
    assert plain.opt is None
    with_edns = exchange(make_snapshot(), qname, qtype, proto="tcp", edns=0, payload=4096)
    assert with_edns.opt == {"payload": 1232, "ext_rcode": 0, "version": 0, "do": False}
    # EDNS changes nothing else.
    assert (with_edns.rcode, with_edns.answer, with_edns.authority, with_edns.additional) == (
        plain.rcode, plain.answer, plain.authority, plain.additional)


def test_edns_do_bit_is_echoed():
    reply = exchange(make_snapshot(), f"svc1.{T}", "A", edns=0, dnssec=True)
    assert reply.opt["do"] is True
    reply = exchange(make_snapshot(), f"svc1.{T}", "A", edns=0, dnssec=False)
    assert reply.opt["do"] is False


@pytest.mark.parametrize("version", [1, 2, 255])
def test_edns_unknown_version_is_badvers(version):
    """RFC 6891 6.1.3: BADVERS (extended rcode 16), with our OPT at version 0."""
    reply = exchange(make_snapshot(), f"svc1.{T}", "A", edns=version)
    assert reply.rcode == dns.rcode.BADVERS == 16
    assert reply.lib.header.rcode == 0  # the low 4 bits; the rest is in the OPT
    assert reply.opt["ext_rcode"] == 1 and reply.opt["version"] == 0
    assert reply.answer == []


# --- UDP size and truncation ---

BIG = "big.bigns.svc.cluster.local."


def test_big_answer_over_udp_without_edns_is_truncated_to_512():
    query = make_query(BIG, "A")
    wire = answer.answer(make_snapshot(), query.to_wire(), "udp")
    assert len(wire) <= 512
    reply = decode(wire)
    assert reply.tc and reply.rcode_text == "NOERROR"
    assert len(reply.answer) < 100


def test_big_answer_over_udp_with_edns_is_truncated_to_1232():
    query = make_query(BIG, "A", edns=0, payload=4096)
    wire = answer.answer(make_snapshot(), query.to_wire(), "udp")
    assert len(wire) <= 1232  # our advertised maximum, not the client's 4096
    reply = decode(wire)
    assert reply.tc
    assert reply.opt is not None and reply.opt["payload"] == 1232


@pytest.mark.parametrize("payload", [0, 100, 511, 512])
def test_tiny_edns_payload_means_512(payload):
    """RFC 6891 6.2.5: values below 512 are treated as 512."""
    query = make_query(BIG, "A", edns=0, payload=payload)
    wire = answer.answer(make_snapshot(), query.to_wire(), "udp")
    assert len(wire) <= 512 and decode(wire).tc


@pytest.mark.parametrize("edns", [None, 0])
def test_big_answer_over_tcp_is_complete(edns):
    reply = exchange(make_snapshot(), BIG, "A", proto="tcp", edns=edns)
    assert not reply.tc
    assert reply.answer == records(f"{BIG} 5 IN A 10.1.0.{i}" for i in range(1, 101))
    assert len(reply.wire) > 1232


def test_udp_512_drops_additional_records_before_setting_tc():
    """The hdls1 SRV answer is about 550 bytes.  In 512 bytes the 5 SRV fit and
    some glue does not: glue may be left out without TC (RFC 2181 9; miekg/dns
    Msg.Truncate, which CoreDNS uses, sets TC only when answer or authority
    records are removed)."""
    query = make_query(f"_http._tcp.hdls1.{T}", "SRV")
    wire = answer.answer(make_snapshot(), query.to_wire(), "udp")
    assert len(wire) <= 512
    reply = decode(wire)
    assert not reply.tc
    assert len(reply.answer) == 5
    assert set(reply.additional) < set(records(HDLS1_SRV_EXTRA))
    # With EDNS (our limit: 1232) everything fits.
    reply = exchange(make_snapshot(), f"_http._tcp.hdls1.{T}", "SRV", edns=0)
    assert not reply.tc and len(reply.answer) == 5
    assert reply.additional == records(HDLS1_SRV_EXTRA)


# --- robustness: junk never raises ---

def _check_junk(snap, wire: bytes) -> None:
    out = answer.answer(snap, wire, "udp")
    if out is None:
        return
    assert len(out) >= 12 and out[:2] == wire[:2], "the response must carry the query ID"
    assert out[2] & 0x80, "QR must be set"
    dns.message.from_wire(out)
    try:
        dnslib.DNSRecord.parse(wire)
    except Exception:
        return  # dnslib refuses e.g. non-UTF-8 labels, which the response echoes
    dnslib.DNSRecord.parse(out)


def test_random_junk_never_raises():
    rng = random.Random(20240611)
    snap = make_snapshot(pods="insecure")
    for _ in range(3000):
        n = rng.choice([0, 1, 11, 12, 13, 17, 29, 40, 64, 100, 300, 512, 700])
        _check_junk(snap, bytes(rng.getrandbits(8) for _ in range(n)))


def test_mutated_queries_never_raise():
    """Real queries with a few bytes changed reach much deeper than pure noise."""
    rng = random.Random(8482)
    snap = make_snapshot(pods="insecure")
    seeds = [_query_wire(n, t, **kw) for n, t, kw in [
        (f"svc1.{T}", "A", {}), (f"_http._tcp.hdls1.{T}", "SRV", {"edns": 0}),
        ("10-240-0-1.podns.pod.cluster.local.", "A", {}), (rev("5678:abcd::1"), "PTR", {}),
        (f"external-to-service.{T}", "A", {"edns": 0, "dnssec": True}),
        ("cluster.local.", "NS", {}), (rev("10.0.0.1"), "PTR", {})]]
    for _ in range(4000):
        wire = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(wire))
            wire[pos] = rng.getrandbits(8)
        if rng.random() < 0.2:
            wire = wire[:rng.randrange(len(wire) + 1)]
        _check_junk(snap, bytes(wire))
