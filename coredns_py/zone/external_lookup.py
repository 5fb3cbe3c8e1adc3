"""Lookups in an external zone: CoreDNS's k8s_external.

A Service's external addresses (``spec.externalIPs``, a load balancer's
ingress) answered under a zone of its own (:mod:`coredns_py.zone.external`
holds each zone's settings); :func:`coredns_py.zone.lookup.resolve` sends
a name here when such a zone holds it.  Pure: no sockets, no files, no
clock.
"""

from __future__ import annotations

import dns.rdatatype as T

from coredns_py.zone import names
from coredns_py.zone.records import RRset, rrset
from coredns_py.zone.result import (ADDRESS_TYPES, GLOBAL, SOA_EXPIRE, SOA_REFRESH, SOA_RETRY,
                                    Result, addresses, is_address, name_labels, nx,
                                    port_match_any, srv)
from coredns_py.zone.snapshot import ServiceView, Snapshot


class ExternalZone:
    """Lookups in an external zone (coredns_py/zone/external.py), as
    CoreDNS's k8s_external answers them (plugin/k8s_external, and
    plugin/kubernetes/external.go):

        (apex)                      SOA, NS ns1.<apex>.<zone>; NODATA else
        <apex>, ns1.<apex>          NODATA; the name server's addresses
        <ns>                        NODATA when the namespace is exposed
        <svc>.<ns>                  A/AAAA of its external addresses (an
                                    ingress hostname: a CNAME), SRV per port
        _<port>._<proto>.<svc>.<ns> SRV of that port
        <ep>.<svc>.<ns>             with ``headless``: a headless Service's
                                    endpoint (A/AAAA, SRV)

    Only A, AAAA and SRV have records; other types on a name that exists
    are NODATA.  Every record has the zone's ttl.
    """

    def __init__(self, snap: Snapshot, ext):
        self.snap = snap
        self.ext = ext
        self.ttl = ext.ttl

    def soa(self, zone: tuple) -> RRset:
        """The zone's SOA: mname ns1.<apex>.<zone>, rname hostmaster.<apex>.<zone>
        (k8s_external apex.go), the snapshot's serial, the ttl as minimum."""
        apex = (self.ext.apex,) + zone
        return rrset(zone, T.SOA, [((b"ns1",) + apex, (b"hostmaster",) + apex, self.snap.serial,
                                    SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, self.ttl)], self.ttl)

    def resolve(self, qname: tuple, rel: list[str], qtype: int) -> Result:
        res = self.lookup(qname, rel, qtype)
        zone = qname[len(qname) - len(self.ext.zone):]
        if not res.answer:
            res.soa = self.soa(zone)
        if res.nxdomain and any(names.below(qname, z) is not None
                                for z in self.ext.fallthrough):
            res.through = True
        return res

    def lookup(self, qname, rel, qtype) -> Result:
        n = len(rel)
        zone = qname[len(qname) - len(self.ext.zone):]  # as sent
        ns1 = (b"ns1", self.ext.apex) + self.ext.zone
        if n == 0:
            if qtype == T.SOA:
                return Result(answer=[self.soa(zone)])
            if qtype == T.NS:
                res = Result(answer=[rrset(qname, T.NS, [ns1], self.ttl)], scope=GLOBAL)
                for rdtype in ADDRESS_TYPES:
                    res.additional += addresses(ns1, self.ext.nameservers, rdtype, self.ttl)
                return res
            return Result()
        if rel[-1] == self.ext.apex.decode("latin-1"):
            # The zone's own names (apex.go serveSubApex).
            if n == 1:
                return Result()
            if n == 2 and rel[0] == "ns1":
                if qtype in ADDRESS_TYPES:
                    return Result(answer=addresses(qname, self.ext.nameservers, qtype,
                                                    self.ttl), scope=GLOBAL)
                return Result()
            return nx("not a name server of the external zone")
        ns = rel[-1]
        if ns not in self.snap.namespaces:
            return nx("namespace not exposed (config keys namespaces, namespace_labels)"
                       if ns in self.snap.hidden else "no such namespace", ns)
        if n == 1:
            return Result(scope=ns)
        if n > 4:
            return nx("too many labels for the external zone", ns)
        svc = self.snap.services.get((ns, rel[-2]))
        res = self.service(qname, svc, rel, qtype) if svc is not None else \
            nx("no such Service")
        res.scope = ns
        return res

    def service(self, qname, svc: ServiceView, rel, qtype) -> Result:
        n = len(rel)
        endpoint = rel[0] if n == 3 else None
        port = proto = None
        if n == 4:  # _<port>._<proto>: CoreDNS strips one leading "_" from each
            port = rel[0][1:] if rel[0].startswith("_") else rel[0]
            proto = rel[1][1:] if rel[1].startswith("_") else rel[1]
        base = (svc.name.encode(), svc.namespace.encode()) + self.ext.zone
        # (SRV target, address or hostname, port) for each match.
        found = []
        if self.ext.headless and not svc.external_ips and (svc.kind == "Headless" or endpoint):
            for ep in svc.endpoints:
                if endpoint is None or ep.name == endpoint:
                    found += [((ep.name.encode(),) + base, ep.address, p) for p in ep.ports
                              if port_match_any(p, port, proto)]
        elif endpoint is None:
            # (CoreDNS answers any <x>.<svc>.<ns> with the Service's addresses
            # here; an endpoint name is only served with `headless`.)
            found = [(base if is_address(host) else name_labels(host), host, p)
                     for host in svc.external_ips for p in svc.ports
                     if port_match_any(p, port, proto)]
        if not found:
            return nx("no external address (spec.externalIPs, status.loadBalancer)"
                       if n == 2 else "no such endpoint or port")
        if qtype == T.SRV:
            return srv(found, self.ttl, qname)
        if qtype not in ADDRESS_TYPES:
            return Result()
        hosts = list(dict.fromkeys(host for _, host, _ in found))
        ips = [h for h in hosts if is_address(h)]
        if ips:
            return Result(answer=addresses(qname, ips, qtype, self.ttl))
        # Only hostnames (a load balancer's ingress): a CNAME to the first,
        # and the target's records from upstream, as CoreDNS asks its own.
        target = name_labels(hosts[0])
        return Result(answer=[rrset(qname, T.CNAME, [target], self.ttl)], chase=target)
