"""Lookups in our zones: a name and a type in, an rcode and records out.

Every decision about what a name holds is here (the message around it is
:mod:`coredns_py.zone.answer`'s; an external zone's names are
:mod:`coredns_py.zone.external_lookup`'s; the :class:`Result` both return,
and the records they share, :mod:`coredns_py.zone.result`'s).  Pure: no sockets, no files, no clock.  The
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
from typing import Optional

import dns.exception
import dns.name
import dns.rcode
import dns.rdatatype as T
import dns.reversename

from coredns_py.zone import names
from coredns_py.zone.external_lookup import ExternalZone
from coredns_py.zone.records import RRset, rrset
from coredns_py.zone.result import (ADDRESS_TYPES, GLOBAL, SOA_EXPIRE, SOA_REFRESH, SOA_RETRY,
                                    STATIC, Result, addresses, nx, port_match, srv)
from coredns_py.zone.snapshot import ServiceView, Snapshot

SCHEMA_VERSION = b"1.1.0"  # spec 2.2: dns-version TXT
SCHEMA_TTL = 28800  # CoreDNS answers dns-version with this TTL whatever `ttl` says
# CNAME chains inside the zone are followed at most this far (CoreDNS uses 10).
MAX_CNAME_DEPTH = 10

REVERSE_ZONES = ((b"in-addr", b"arpa"), (b"ip6", b"arpa"))
NO_ENDPOINTS = "no ready endpoints (ignore_empty_service)"


def in_reverse_zone(qname: tuple) -> bool:
    """Is ``qname`` (labels, any case) in in-addr.arpa or ip6.arpa?"""
    return any(names.below(qname, zone) is not None for zone in REVERSE_ZONES)


def _same_name(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(x.lower() == y.lower() for x, y in zip(a, b))


class _Zone:
    """Lookups in one cluster zone (``zone``: its labels, lower case) of a
    snapshot; every zone of ``snap.zones`` answers the same cluster."""

    def __init__(self, snap: Snapshot, zone: tuple):
        self.snap = snap
        self.ttl = snap.ttl
        self.zone = zone

    def lookup(self, qname: tuple, labels: list[str], qtype: int,
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
            return Result(answer=[rrset(qname, T.TXT, [(SCHEMA_VERSION,)], SCHEMA_TTL)])
        if labels == ["ns", "dns"] and qtype in ADDRESS_TYPES:
            # The same addresses as the apex NS glue (CoreDNS ns.go), in
            # every zone.
            addrs = [a for _, addrs in self.snap.nameservers for a in addrs]
            return Result(answer=addresses(qname, list(dict.fromkeys(addrs)), qtype, self.ttl),
                          scope=GLOBAL)
        # Neither svc nor pod: not a name of the schema. (This makes every
        # other type on dns-version NXDOMAIN too, as CoreDNS answers.)
        return nx("not a name of the cluster schema")

    def apex(self, qname, qtype) -> Result:
        if qtype == T.SOA:
            return Result(answer=[soa_rrset(self.snap, qname)])
        if qtype == T.NS:
            ns = [rel + self.zone for rel, _ in self.snap.nameservers]
            res = Result(answer=[rrset(qname, T.NS, ns, self.ttl)], scope=GLOBAL)
            for rel, addrs in self.snap.nameservers:
                for rdtype in ADDRESS_TYPES:
                    res.additional += addresses(rel + self.zone, addrs, rdtype, self.ttl)
            return res
        if qtype == T.TXT:
            # CoreDNS: TXT is NXDOMAIN where no record of any type exists,
            # although A on the same name is NODATA (kubernetes.go Services).
            return nx("TXT where no record exists")
        return Result()

    # --- <...>.svc.<zone> ---------------------------------------------------

    def under_svc(self, qname, labels, qtype, depth) -> Result:
        n = len(labels)
        if n == 0:  # svc.<zone>
            return nx("TXT where no record exists") if qtype == T.TXT else Result()
        if n > 4:
            return nx("too many labels for the cluster schema")
        ns = labels[-1]
        if ns not in self.snap.namespaces:
            return nx(self.no_namespace(ns), ns)
        res = self.in_namespace(qname, labels, ns, qtype, depth)
        if res.scope == STATIC:
            res.scope = ns  # decided by that namespace's objects, or its absence
        return res

    def no_namespace(self, ns: str) -> str:
        if ns in self.snap.hidden:
            return "namespace not exposed (config keys namespaces, namespace_labels)"
        return "no such namespace"

    def in_namespace(self, qname, labels, ns, qtype, depth) -> Result:
        n = len(labels)
        if n == 1:  # <ns>.svc.<zone>: NODATA when the namespace exists
            if qtype == T.TXT:
                return nx("TXT where no record exists")
            return Result()
        svc = self.snap.services.get((ns, labels[-2]))
        if svc is None:
            return nx("no such Service")
        if n == 2:
            return self.service(qname, svc, qtype, depth)
        if svc.kind == "ExternalName":
            # An ExternalName has no endpoints or ports under it.
            return nx("an ExternalName has no names under it")
        if self.snap.ignore_empty_service and svc.kind == "ClusterIP" and not svc.endpoints:
            return nx(NO_ENDPOINTS)
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
                return nx("a headless Service without ready endpoints")
            if qtype in ADDRESS_TYPES:
                return Result(answer=addresses(
                    qname, list(dict.fromkeys(ep.address for ep in svc.endpoints)), qtype,
                    self.ttl))
            if qtype == T.SRV:
                return self.endpoint_srv(qname, svc, svc.endpoints, None, None)
            return Result()
        if self.snap.ignore_empty_service and not svc.endpoints:
            return nx(NO_ENDPOINTS)
        if qtype in ADDRESS_TYPES:
            return Result(answer=addresses(qname, svc.ips, qtype, self.ttl))
        if qtype == T.SRV:
            return self.service_srv(qname, svc, None, None)
        return Result()

    def service_srv(self, qname, svc, port_name, proto) -> Result:
        target = names.service_labels(svc.namespace, svc.name, self.zone)
        return srv([(target, ip, p) for ip in svc.ips for p in svc.ports
                     if port_match(p, port_name, proto)], self.ttl, qname)

    def endpoint_srv(self, qname, svc, endpoints, port_name, proto) -> Result:
        return srv([(names.service_labels(svc.namespace, svc.name, self.zone, ep.name), ep.address, p)
                     for ep in endpoints for p in ep.ports if port_match(p, port_name, proto)], self.ttl, qname)

    def endpoint(self, qname, svc: ServiceView, name: str, qtype) -> Result:
        # Endpoint names resolve for ClusterIP Services too (CoreDNS
        # findServices "Endpoint query or headless").
        eps = [ep for ep in svc.endpoints if ep.name == name]
        if not eps:
            return nx("no such endpoint")
        if qtype in ADDRESS_TYPES:
            return Result(answer=addresses(qname, list(dict.fromkeys(ep.address for ep in eps)),
                                            qtype, self.ttl))
        if qtype == T.SRV:
            return self.endpoint_srv(qname, svc, eps, None, None)
        return Result()

    def ports(self, qname, svc: ServiceView, port: str, proto: str, qtype) -> Result:
        if svc.kind == "Headless":
            eps = [ep for ep in svc.endpoints
                   if any(port_match(p, port, proto) for p in ep.ports)]
            if not eps:
                return nx("no ready endpoint has this port")
            if qtype == T.SRV:
                return self.endpoint_srv(qname, svc, eps, port, proto)
            if qtype in ADDRESS_TYPES:
                return Result(answer=addresses(
                    qname, list(dict.fromkeys(ep.address for ep in eps)), qtype, self.ttl))
            return Result()
        if not any(port_match(p, port, proto) for p in svc.ports):
            return nx("no such port")
        if qtype == T.SRV:
            return self.service_srv(qname, svc, port, proto)
        if qtype in ADDRESS_TYPES:
            # CoreDNS quirk: A on the SRV-shaped name answers the cluster IP.
            return Result(answer=addresses(qname, svc.ips, qtype, self.ttl))
        return Result()

    def external(self, qname, svc: ServiceView, qtype, depth) -> Result:
        if svc.external_is_ip:
            # CoreDNS does not serve an ExternalName that is an IP (#2324).
            return nx("an ExternalName that is an IP is not served")
        target = svc.external.labels[:-1]
        cname = rrset(qname, T.CNAME, [target], self.ttl)
        if qtype == T.CNAME:
            return Result(answer=[cname])
        if qtype not in ADDRESS_TYPES:
            # SRV for ExternalName is not implemented in CoreDNS: NODATA.
            return Result()
        zone, inside = cluster_zone(self.snap, target)
        if inside is not None:
            # The answer now depends on another name, maybe in another
            # namespace (or another of our zones): GLOBAL.
            if depth >= MAX_CNAME_DEPTH or _same_name(target, qname):
                return Result(scope=GLOBAL)
            inner = _Zone(self.snap, zone).lookup(target, inside, qtype, depth + 1)
            if not inner.answer:
                # CoreDNS emits the CNAME only when the in-zone target has
                # records of the asked type; otherwise NODATA without it.
                return Result(scope=GLOBAL)
            return Result(answer=[cname] + inner.answer, additional=inner.additional,
                          scope=GLOBAL)
        # Outside the zone: the CNAME, then the target's records from upstream
        # when forwarding is on (CoreDNS asks its upstream); without it the
        # CNAME alone, which the client's resolver can follow itself.
        return Result(answer=[cname], chase=target)

    # --- <...>.pod.<zone> -----------------------------------------------------

    def under_pod(self, qname, labels, qtype) -> Result:
        n = len(labels)
        if n == 0:  # pod.<zone> itself: NODATA in every mode
            return nx("TXT where no record exists") if qtype == T.TXT else Result()
        if self.snap.pods_mode == "disabled":
            return nx("pod records are disabled (config key pods)")
        if n > 4:
            return nx("too many labels for the cluster schema")
        ns = labels[-1]
        # Decided by that namespace: whether it exists, its pods.
        if ns not in self.snap.namespaces:
            return nx(self.no_namespace(ns), ns)
        if n == 1:
            return nx("TXT where no record exists", ns) if qtype == T.TXT else Result(scope=ns)
        # Up to two extra labels in front are ignored: CoreDNS parses them as
        # the endpoint (or port and protocol) of a "service" named like the IP.
        ip = names.pod_ip(labels[-2])
        if ip is None:
            return nx("not a dashed IP address", ns)
        if self.snap.pods_mode == "verified" and str(ip) not in self.snap.pod_ips.get(ns, ()):
            return nx("no running pod has this address (pods verified)", ns)
        if qtype in ADDRESS_TYPES:
            return Result(answer=addresses(qname, [str(ip)], qtype, self.ttl), scope=ns)
        return Result(scope=ns)


def soa_rrset(snap: Snapshot, owner: tuple) -> RRset:
    """The zone's SOA, as CoreDNS synthesizes it, on the zone name as sent.

    It ends with the serial and the four timers (SOA_TAIL bytes); the serial
    is the only part of an answer that changes at every reload, which the
    prepared answers write anew (:mod:`coredns_py.zone.prepared`)."""
    soa = (names.nameserver_labels(owner), names.hostmaster_labels(owner), snap.serial,
           SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, snap.ttl)
    # The SOA's own TTL is min(ttl, 300); its minimum field (the negative
    # caching TTL, RFC 2308) is the configured ttl.
    return rrset(owner, T.SOA, [soa], min(snap.ttl, 300))


SOA_TAIL = 20  # serial, refresh, retry, expire, minimum: 5 x 32 bits


def soa_serial(snap: Snapshot) -> bytes:
    """The serial of every SOA of this snapshot, as written (the first 4 of
    the SOA record's last SOA_TAIL bytes)."""
    return snap.serial.to_bytes(4, "big")


def reverse_lookup(snap: Snapshot, qname: tuple, rel: list, qtype: int) -> Result:
    """PTR for Service IPs and ready endpoint IPs (CoreDNS reverse.go).
    ``rel``: the labels below the reverse zone."""
    if not rel:
        return Result(answer=[soa_rrset(snap, qname)]) if qtype == T.SOA else Result()
    if qtype == T.SOA:
        return Result()
    if qtype != T.PTR:
        # CoreDNS reads any other type with the forward grammar, where a
        # reverse name is not a name of the schema: NXDOMAIN (handler.go).
        return nx("only PTR is served on reverse names")
    try:
        ip = str(ipaddress.ip_address(dns.reversename.to_address(
            dns.name.Name(qname + (b"",)))))
    except (dns.exception.SyntaxError, ValueError):
        return nx("not a complete reverse name")
    targets = snap.ptr.get(ip)
    if not targets:
        return nx("no Service or ready endpoint has this address", GLOBAL)
    return Result(answer=[rrset(qname, T.PTR, targets, snap.ttl)], scope=GLOBAL)


def cluster_zone(snap: Snapshot, qname: tuple) -> tuple[tuple, Optional[list[str]]]:
    """(the cluster zone holding ``qname``, qname's labels below it), or
    ((), None) when it is in none of them."""
    for zone in snap.zones:
        rel = names.below(qname, zone)
        if rel is not None:
            return zone, rel
    return (), None


def resolve(snap: Snapshot, qname: tuple, qtype: int) -> Optional[Result]:
    """The zone lookup for one question (``qname``: labels as sent); None
    when no zone of ours holds qname."""
    zone, rel = cluster_zone(snap, qname)
    if rel is not None:
        res = _Zone(snap, zone).lookup(qname, rel, qtype)
        zone_len = len(zone)
    else:
        for ext in snap.externals:
            rel = names.below(qname, ext.zone)
            if rel is not None:
                return ExternalZone(snap, ext).resolve(qname, rel, qtype)
        for rzone in REVERSE_ZONES:
            rel = names.below(qname, rzone)
            if rel is not None:
                res = reverse_lookup(snap, qname, rel, qtype)
                res.through = True
                zone_len = len(rzone)
                break
        else:
            return None
    if not res.answer:
        # NXDOMAIN and NODATA carry the SOA (RFC 2308), on the zone as sent.
        res.soa = soa_rrset(snap, qname[len(qname) - zone_len:])
    return res


