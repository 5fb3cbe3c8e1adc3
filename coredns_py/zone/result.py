"""What a lookup in one of our zones decides, and the records it is made of.

A :class:`Result` is the value every lookup returns (the cluster zone's in
:mod:`coredns_py.zone.lookup`, an external zone's in
:mod:`coredns_py.zone.external_lookup`): the rcode, the sections, the
reason for an NXDOMAIN, and the scope the answer depends on.  The helpers
make the records both kinds of zone answer alike: address records of one
family, SRV with CoreDNS's weights and their glue, the port matching of
SRV-shaped names.  Pure: no sockets, no files, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import dns.rcode
import dns.rdatatype as T

from coredns_py.source.objects import is_dotted_quad
from coredns_py.zone.records import RRset, address, rrset

# SOA timers of CoreDNS's synthesized SOA (plugin/backend_lookup.go).
SOA_REFRESH, SOA_RETRY, SOA_EXPIRE = 7200, 1800, 86400
ADDRESS_TYPES = (T.A, T.AAAA)

# What an answer depends on (Result.scope), so that an answer prepared as
# bytes is kept exactly as long as what it was made from
# (:mod:`coredns_py.zone.prepared`): the shape of the zone and the config
# only (STATIC), data from anywhere in the cluster (GLOBAL: reverse names,
# the apex NS, a CNAME followed inside the zone), or one namespace's objects
# and whether it exists (the namespace's name).
STATIC = 0
GLOBAL = 1


@dataclass
class Result:
    """What a zone lookup decided: the rcode and the sections."""

    rcode: int = dns.rcode.NOERROR
    answer: list = field(default_factory=list)
    additional: list = field(default_factory=list)
    soa: Optional[RRset] = None  # the zone's SOA, for the authority section
    # An ExternalName pointing outside our zones: the answer holds the CNAME,
    # and the target's records can only come from upstream.
    chase: Optional[tuple] = None
    why: str = ""  # for an NXDOMAIN: the reason, in words (status page, query box)
    scope: object = STATIC  # what the answer depends on (STATIC, GLOBAL, a namespace)
    # An NXDOMAIN that goes upstream when it can (a `fallthrough`): reverse
    # names, and names of an external zone with fallthrough.
    through: bool = False

    @property
    def nxdomain(self) -> bool:
        return self.rcode == dns.rcode.NXDOMAIN


NX = dns.rcode.NXDOMAIN


def nx(why: str, scope: object = STATIC) -> Result:
    return Result(rcode=NX, why=why, scope=scope)


def addresses(owner, ips, qtype, ttl) -> list:
    """An A or AAAA RRset of the addresses of that family (none: NODATA)."""
    chosen = []
    for ip in ips:
        rdtype, packed = address(ip)
        if rdtype == qtype:
            chosen.append(packed)
    return [rrset(owner, qtype, chosen, ttl)] if chosen else []


def srv(candidates, ttl: int, qname) -> Result:
    """SRV records with CoreDNS's weights (plugin/backend_lookup.go SRV).

    Every record has priority 0 and weight floor(100 / N), where N counts all
    candidates *before* duplicates are dropped (a dual-stack Service gives one
    SRV of weight 50).  Port -1 (a Service without ports) never makes SRV.
    The targets' addresses go in the additional section.
    """
    if not candidates:
        return Result()
    weight = max(1, 100 // len(candidates))
    srv = []
    glue: dict[tuple, list[str]] = {}
    for target, ip, port in candidates:
        if port.port < 0:
            continue
        srv.append((0, weight, port.port, target))
        glue.setdefault(target, [])
        if ip not in glue[target]:
            glue[target].append(ip)
    res = Result(answer=[rrset(qname, T.SRV, srv, ttl)] if srv else [])
    for target, ips in glue.items():
        ips = [ip for ip in ips if is_address(ip)]  # a hostname target has no glue here
        for rdtype in ADDRESS_TYPES:
            res.additional += addresses(target, ips, rdtype, ttl)
    return res


def port_match(port, name: Optional[str], proto: Optional[str]) -> bool:
    return name is None or (port.name == name and port.protocol == proto)


def port_match_any(port, name: Optional[str], proto: Optional[str]) -> bool:
    """As port_match, but an empty name or protocol matches any
    (CoreDNS matchPortAndProtocol, which k8s_external uses)."""
    return (not name or port.name == name) and (not proto or port.protocol == proto)


def is_address(host: str) -> bool:
    """An address, not a hostname (addresses are canonical text already)."""
    return ":" in host or is_dotted_quad(host)


def name_labels(host: str) -> tuple:
    return tuple(label.encode() for label in host.split("."))
