"""Lookups in our zones: a name and a type in, an rcode and records out.

Every decision about what a name holds is here (the message around it is
:mod:`coredns_py.zone.answer`'s).  Pure: no sockets, no files, no clock.  The
rules are the Kubernetes DNS specification (kubernetes/dns
docs/specification.md, schema 1.1.0) as CoreDNS's kubernetes plugin
implements it (plugin/kubernetes/{parse,kubernetes,reverse}.go,
plugin/backend_lookup.go); where the two differ a comment says so and CoreDNS
is followed.  Expected negative outcomes are values (:class:`Result` with
NXDOMAIN, or no records: NODATA), never exceptions; an NXDOMAIN carries
``why``, the reason in words, for the status page and the query box.

Name grammar below the zone, read right to left (CoreDNS parse.go; the
names themselves are built in :mod:`coredns_py.zone.names`):

    (none) | svc | pod            apex-like: NODATA (SOA/NS at the apex)
    <ns>.svc                      namespace
    <svc>.<ns>.svc                Service
    <ep>.<svc>.<ns>.svc           endpoint (hostname or dashed IP)
    <port>.<proto>.<svc>.<ns>.svc SRV-shaped (leading "_" stripped from each)
    <ip>.<ns>.pod                 pod record, following the `pods` mode
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Optional

import dns.exception
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype as T
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV
import dns.reversename
import dns.rrset

from coredns_py.source import objects as o
from coredns_py.zone import names
from coredns_py.zone.snapshot import ServiceView, Snapshot

IN = dns.rdataclass.IN

SCHEMA_VERSION = b"1.1.0"  # spec 2.2: dns-version TXT
SCHEMA_TTL = 28800  # CoreDNS answers dns-version with this TTL whatever `ttl` says
# SOA timers of CoreDNS's synthesized SOA (plugin/backend_lookup.go).
SOA_REFRESH, SOA_RETRY, SOA_EXPIRE = 7200, 1800, 86400
# CNAME chains inside the zone are followed at most this far (CoreDNS uses 10).
MAX_CNAME_DEPTH = 10

REVERSE_ZONES = (dns.name.from_text("in-addr.arpa."), dns.name.from_text("ip6.arpa."))
ADDRESS_TYPES = (T.A, T.AAAA)


@dataclass
class Result:
    """What a zone lookup decided: the rcode and the sections."""

    rcode: int = dns.rcode.NOERROR
    answer: list = field(default_factory=list)
    additional: list = field(default_factory=list)
    soa_zone: Optional[dns.name.Name] = None  # zone (as sent) whose SOA goes in authority
    # An ExternalName pointing outside our zones: the answer holds the CNAME,
    # and the target's records can only come from upstream.
    chase: Optional[dns.name.Name] = None
    why: str = ""  # for an NXDOMAIN: the reason, in words (status page, query box)

    @property
    def nxdomain(self) -> bool:
        return self.rcode == dns.rcode.NXDOMAIN


NX = dns.rcode.NXDOMAIN
NO_ENDPOINTS = "no ready endpoints (ignore_empty_service)"


def _nx(why: str) -> Result:
    return Result(rcode=NX, why=why)


def rrset(owner: dns.name.Name, rdtype: int, rdatas, ttl: int) -> dns.rrset.RRset:
    rs = dns.rrset.RRset(owner, IN, rdtype)
    rs.update_ttl(ttl)
    for rd in rdatas:
        rs.add(rd)
    return rs


def _addr_rdata(ip: str):
    if ":" in ip:
        return dns.rdtypes.IN.AAAA.AAAA(IN, T.AAAA, ip)
    return dns.rdtypes.IN.A.A(IN, T.A, ip)


def _family_ok(ip: str, qtype: int) -> bool:
    return o.family(ip) == (6 if qtype == T.AAAA else 4)


def _addresses(owner, ips, qtype, ttl) -> list:
    """An A or AAAA RRset of the addresses of that family (none: NODATA)."""
    chosen = [ip for ip in ips if _family_ok(ip, qtype)]
    return [rrset(owner, qtype, [_addr_rdata(ip) for ip in chosen], ttl)] if chosen else []


def _srv(candidates, ttl: int, qname) -> Result:
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
    glue: dict[dns.name.Name, list[str]] = {}
    for target, ip, port in candidates:
        if port.port < 0:
            continue
        srv.append(dns.rdtypes.IN.SRV.SRV(IN, T.SRV, 0, weight, port.port, target))
        glue.setdefault(target, [])
        if ip not in glue[target]:
            glue[target].append(ip)
    res = Result(answer=[rrset(qname, T.SRV, srv, ttl)] if srv else [])
    for target, ips in glue.items():
        for rdtype in ADDRESS_TYPES:
            res.additional += _addresses(target, ips, rdtype, ttl)
    return res


def _port_match(port, name: Optional[str], proto: Optional[str]) -> bool:
    return name is None or (port.name == name and port.protocol == proto)


class _Zone:
    """Lookups in the cluster zone for one snapshot."""

    def __init__(self, snap: Snapshot):
        self.snap = snap
        self.ttl = snap.ttl
        self.zone = snap.zone

    def lookup(self, qname: dns.name.Name, labels: list[str], qtype: int,
               depth: int = 0) -> Result:
        n = len(labels)
        if n == 0:
            return self.apex(qname, qtype)
        if qtype == T.SOA:
            # CoreDNS only looks SOA up at the apex: any other name in the
            # zone, existing or not, is NODATA for SOA (handler.go).
            return Result()
        last = labels[-1]
        if last == "svc":
            return self.under_svc(qname, labels[:-1], qtype, depth)
        if last == "pod":
            return self.under_pod(qname, labels[:-1], qtype)
        if labels == ["dns-version"] and qtype == T.TXT:
            txt = dns.rdtypes.ANY.TXT.TXT(IN, T.TXT, [SCHEMA_VERSION])
            return Result(answer=[rrset(qname, T.TXT, [txt], SCHEMA_TTL)])
        if labels == ["ns", "dns"] and qtype in ADDRESS_TYPES:
            # The same addresses as the apex NS glue (CoreDNS ns.go).
            addrs = [a for _, addrs in self.snap.nameservers for a in addrs]
            return Result(answer=_addresses(qname, list(dict.fromkeys(addrs)), qtype, self.ttl))
        # Neither svc nor pod: not a name of the schema. (This makes every
        # other type on dns-version NXDOMAIN too, as CoreDNS answers.)
        return _nx("not a name of the cluster schema")

    def apex(self, qname, qtype) -> Result:
        if qtype == T.SOA:
            return Result(answer=[soa_rrset(self.snap, qname)])
        if qtype == T.NS:
            ns = [dns.rdtypes.ANY.NS.NS(IN, T.NS, name) for name, _ in self.snap.nameservers]
            res = Result(answer=[rrset(qname, T.NS, ns, self.ttl)])
            for name, addrs in self.snap.nameservers:
                for rdtype in ADDRESS_TYPES:
                    res.additional += _addresses(name, addrs, rdtype, self.ttl)
            return res
        if qtype == T.TXT:
            # CoreDNS: TXT is NXDOMAIN where no record of any type exists,
            # although A on the same name is NODATA (kubernetes.go Services).
            return _nx("TXT where no record exists")
        return Result()

    # --- <...>.svc.<zone> ---------------------------------------------------

    def under_svc(self, qname, labels, qtype, depth) -> Result:
        n = len(labels)
        if n == 0:  # svc.<zone>
            return _nx("TXT where no record exists") if qtype == T.TXT else Result()
        ns = labels[-1]
        if n == 1:  # <ns>.svc.<zone>: NODATA when the namespace exists
            if ns not in self.snap.namespaces:
                return _nx("no such namespace")
            if qtype == T.TXT:
                return _nx("TXT where no record exists")
            return Result()
        if n > 4:
            return _nx("too many labels for the cluster schema")
        svc = self.snap.services.get((ns, labels[-2]))
        if svc is None:
            return _nx("no such Service")
        if n == 2:
            return self.service(qname, svc, qtype, depth)
        if svc.kind == "ExternalName":
            # An ExternalName has no endpoints or ports under it.
            return _nx("an ExternalName has no names under it")
        if self.snap.ignore_empty_service and svc.kind == "ClusterIP" and not svc.endpoints:
            return _nx(NO_ENDPOINTS)
        if n == 3:
            return self.endpoint(qname, svc, labels[0], qtype)
        # _<port>._<proto>.<svc>: CoreDNS strips one leading "_" from each.
        port = labels[0][1:] if labels[0].startswith("_") else labels[0]
        proto = labels[1][1:] if labels[1].startswith("_") else labels[1]
        return self.ports(qname, svc, port, proto, qtype)

    def service(self, qname, svc: ServiceView, qtype, depth) -> Result:
        if svc.kind == "ExternalName":
            return self.external(qname, svc, qtype, depth)
        if svc.kind == "Headless":
            # A headless Service without ready endpoints does not exist
            # (spec 2.4.1).
            if not svc.endpoints:
                return _nx("a headless Service without ready endpoints")
            if qtype in ADDRESS_TYPES:
                return Result(answer=_addresses(
                    qname, list(dict.fromkeys(ep.address for ep in svc.endpoints)), qtype,
                    self.ttl))
            if qtype == T.SRV:
                return self.endpoint_srv(qname, svc, svc.endpoints, None, None)
            return Result()
        if self.snap.ignore_empty_service and not svc.endpoints:
            return _nx(NO_ENDPOINTS)
        if qtype in ADDRESS_TYPES:
            return Result(answer=_addresses(qname, svc.ips, qtype, self.ttl))
        if qtype == T.SRV:
            return self.service_srv(qname, svc, None, None)
        return Result()

    def service_srv(self, qname, svc, port_name, proto) -> Result:
        target = names.service(svc.namespace, svc.name, self.zone)
        return _srv([(target, ip, p) for ip in svc.ips for p in svc.ports
                     if _port_match(p, port_name, proto)], self.ttl, qname)

    def endpoint_srv(self, qname, svc, endpoints, port_name, proto) -> Result:
        return _srv([(names.service(svc.namespace, svc.name, self.zone, ep.name), ep.address, p)
                     for ep in endpoints for p in ep.ports if _port_match(p, port_name, proto)], self.ttl, qname)

    def endpoint(self, qname, svc: ServiceView, name: str, qtype) -> Result:
        # Endpoint names resolve for ClusterIP Services too (CoreDNS
        # findServices "Endpoint query or headless").
        eps = [ep for ep in svc.endpoints if ep.name == name]
        if not eps:
            return _nx("no such endpoint")
        if qtype in ADDRESS_TYPES:
            return Result(answer=_addresses(qname, list(dict.fromkeys(ep.address for ep in eps)),
                                            qtype, self.ttl))
        if qtype == T.SRV:
            return self.endpoint_srv(qname, svc, eps, None, None)
        return Result()

    def ports(self, qname, svc: ServiceView, port: str, proto: str, qtype) -> Result:
        if svc.kind == "Headless":
            eps = [ep for ep in svc.endpoints
                   if any(_port_match(p, port, proto) for p in ep.ports)]
            if not eps:
                return _nx("no ready endpoint has this port")
            if qtype == T.SRV:
                return self.endpoint_srv(qname, svc, eps, port, proto)
            if qtype in ADDRESS_TYPES:
                return Result(answer=_addresses(
                    qname, list(dict.fromkeys(ep.address for ep in eps)), qtype, self.ttl))
            return Result()
        if not any(_port_match(p, port, proto) for p in svc.ports):
            return _nx("no such port")
        if qtype == T.SRV:
            return self.service_srv(qname, svc, port, proto)
        if qtype in ADDRESS_TYPES:
            # CoreDNS quirk: A on the SRV-shaped name answers the cluster IP.
            return Result(answer=_addresses(qname, svc.ips, qtype, self.ttl))
        return Result()

    def external(self, qname, svc: ServiceView, qtype, depth) -> Result:
        if svc.external_is_ip:
            # CoreDNS does not serve an ExternalName that is an IP (#2324).
            return _nx("an ExternalName that is an IP is not served")
        target = svc.external
        cname = rrset(qname, T.CNAME, [dns.rdtypes.ANY.CNAME.CNAME(IN, T.CNAME, target)],
                       self.ttl)
        if qtype == T.CNAME:
            return Result(answer=[cname])
        if qtype not in ADDRESS_TYPES:
            # SRV for ExternalName is not implemented in CoreDNS: NODATA.
            return Result()
        if target.is_subdomain(self.zone):
            if depth >= MAX_CNAME_DEPTH or target == qname:
                return Result()
            inner = self.lookup(target, names.relative_labels(target, self.zone), qtype, depth + 1)
            if not inner.answer:
                # CoreDNS emits the CNAME only when the in-zone target has
                # records of the asked type; otherwise NODATA without it.
                return Result()
            return Result(answer=[cname] + inner.answer, additional=inner.additional)
        # Outside the zone: the CNAME, then the target's records from upstream
        # when forwarding is on (CoreDNS asks its upstream); without it the
        # CNAME alone, which the client's resolver can follow itself.
        return Result(answer=[cname], chase=target)

    # --- <...>.pod.<zone> -----------------------------------------------------

    def under_pod(self, qname, labels, qtype) -> Result:
        n = len(labels)
        if n == 0:  # pod.<zone> itself: NODATA in every mode
            return _nx("TXT where no record exists") if qtype == T.TXT else Result()
        if self.snap.pods_mode == "disabled":
            return _nx("pod records are disabled (config key pods)")
        if n > 4:
            return _nx("too many labels for the cluster schema")
        ns = labels[-1]
        if ns not in self.snap.namespaces:
            return _nx("no such namespace")
        if n == 1:
            return _nx("TXT where no record exists") if qtype == T.TXT else Result()
        # Up to two extra labels in front are ignored: CoreDNS parses them as
        # the endpoint (or port and protocol) of a "service" named like the IP.
        ip = names.pod_ip(labels[-2])
        if ip is None:
            return _nx("not a dashed IP address")
        if self.snap.pods_mode == "verified" and str(ip) not in self.snap.pod_ips.get(ns, ()):
            return _nx("no running pod has this address (pods verified)")
        if qtype in ADDRESS_TYPES:
            return Result(answer=_addresses(qname, [str(ip)], qtype, self.ttl))
        return Result()


def soa_rrset(snap: Snapshot, owner: dns.name.Name) -> dns.rrset.RRset:
    """The zone's SOA, as CoreDNS synthesizes it, on the zone name as sent."""
    zone = owner
    soa = dns.rdtypes.ANY.SOA.SOA(
        IN, T.SOA, names.nameserver(zone),
        dns.name.Name((b"hostmaster",) + zone.labels), snap.serial,
        SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, snap.ttl)
    # The SOA's own TTL is min(ttl, 300); its minimum field (the negative
    # caching TTL, RFC 2308) is the configured ttl.
    return rrset(owner, T.SOA, [soa], min(snap.ttl, 300))


def reverse_lookup(snap: Snapshot, qname: dns.name.Name, zone: dns.name.Name,
                   qtype: int) -> Result:
    """PTR for Service IPs and ready endpoint IPs (CoreDNS reverse.go)."""
    if qname == zone:
        return Result(answer=[soa_rrset(snap, qname)]) if qtype == T.SOA else Result()
    if qtype == T.SOA:
        return Result()
    if qtype != T.PTR:
        # CoreDNS reads any other type with the forward grammar, where a
        # reverse name is not a name of the schema: NXDOMAIN (handler.go).
        return _nx("only PTR is served on reverse names")
    try:
        ip = str(ipaddress.ip_address(dns.reversename.to_address(qname)))
    except (dns.exception.SyntaxError, ValueError):
        return _nx("not a complete reverse name")
    targets = snap.ptr.get(ip)
    if not targets:
        return _nx("no Service or ready endpoint has this address")
    return Result(answer=[rrset(qname, T.PTR, [dns.rdtypes.ANY.PTR.PTR(IN, T.PTR, t)
                                                for t in targets], snap.ttl)])


def resolve(snap: Snapshot, qname: dns.name.Name, qtype: int) -> Optional[Result]:
    """The zone lookup for one question; None when no zone of ours holds qname."""
    if qname.is_subdomain(snap.zone):
        zone_labels = len(snap.zone.labels)
        res = _Zone(snap).lookup(qname, names.relative_labels(qname, snap.zone), qtype)
        soa_zone = qname.split(zone_labels)[1]
    else:
        for rzone in REVERSE_ZONES:
            if qname.is_subdomain(rzone):
                res = reverse_lookup(snap, qname, rzone, qtype)
                soa_zone = qname.split(len(rzone.labels))[1]
                break
        else:
            return None
    if not res.answer:
        res.soa_zone = soa_zone  # NXDOMAIN and NODATA carry the SOA (RFC 2308)
    return res


