"""What a zone transfer (AXFR, RFC 5936) of one of our zones holds: every
record the zone answers, in canonical order (RFC 4034 section 6.1), the SOA
first and last.

The records come from the lookups that answer queries (:func:`lookup.resolve`
asked for each name and type a Service defines), so a transfer lists
exactly what the zone serves: a cluster zone's apex (SOA, NS), ``ns.dns``,
``dns-version``, and for each Service its name (A, AAAA, SRV; a CNAME for an
ExternalName), its named ports' SRV names and its endpoints' names; an
external zone's apex, ``ns1.<apex>`` and its Services' names.  Pod names are
left out (``pods insecure`` answers any address-shaped name: no list holds
them all), as CoreDNS does; reverse zones are not transferred.

Pure, and lazy: records are made Service by Service as the transfer is
sent, in canonical order without sorting the whole zone (names under a
zone sort by their labels right to left, and Services by namespace, then
name).
"""

from __future__ import annotations

from typing import Iterator, Optional

import dns.rdatatype as T

from coredns_py.zone.lookup import resolve
from coredns_py.zone.records import RRset
from coredns_py.zone.snapshot import Snapshot

_SERVICE_TYPES = (T.A, T.AAAA, T.SRV)
_ADDRESS_TYPES = (T.A, T.AAAA)


def is_zone(snap: Snapshot, zone: tuple) -> bool:
    """Is ``zone`` (labels, lower case) one of the snapshot's zones?"""
    return zone in snap.zones or any(ext.zone == zone for ext in snap.externals)


def _canonical(owner: tuple) -> tuple:
    """The sort key of a name (RFC 4034 6.1): its labels right to left, as
    lower-case bytes (a shorter name before the longer ones below it)."""
    return tuple(reversed(owner))


def _records(snap: Snapshot, owner: tuple, types) -> Iterator[RRset]:
    """The records ``owner`` itself holds of each of ``types`` (a CNAME in
    place of an address: a load balancer's hostname), each RRset once."""
    seen = set()
    for qtype in types:
        res = resolve(snap, owner, qtype)
        if res is None or res.nxdomain:
            continue
        for rs in res.answer:
            key = (rs.rdtype, rs.rdatas)
            if rs.owner == owner and rs.rdtype in (qtype, T.CNAME) and key not in seen:
                seen.add(key)
                yield rs


def _names(view, base: tuple, endpoints: bool) -> list[tuple[tuple, tuple]]:
    """(owner, types) of every name a Service defines below ``base``."""
    ports = view.ports if view.kind != "Headless" else tuple(
        p for ep in view.endpoints for p in ep.ports)
    out = {(f"_{p.name}".encode(), f"_{p.protocol}".encode()) + base: (T.SRV,)
           for p in ports if p.name and p.port >= 0}
    if endpoints:
        for ep in view.endpoints:
            out[(ep.name.encode(),) + base] = _SERVICE_TYPES
    return sorted(out.items(), key=lambda item: _canonical(item[0]))


def _service(snap: Snapshot, view, base: tuple, endpoints: bool) -> Iterator[RRset]:
    if view.kind == "ExternalName":
        yield from _records(snap, base, (T.CNAME,))
        return
    yield from _records(snap, base, _SERVICE_TYPES)
    for owner, types in _names(view, base, endpoints):
        yield from _records(snap, owner, types)


def records(snap: Snapshot, zone: tuple) -> Iterator[RRset]:
    """Every record of ``zone`` (one of the snapshot's, :func:`is_zone`):
    the SOA, the rest in canonical order, the SOA again."""
    [soa] = resolve(snap, zone, T.SOA).answer
    yield soa
    external = next((ext for ext in snap.externals if ext.zone == zone), None)
    yield from _records(snap, zone, (T.NS,))
    # The names below the apex, by their first label: each subtree whole,
    # in the order of those labels.
    by_namespace: dict[str, list] = {}
    for (ns, name) in sorted(snap.services):
        by_namespace.setdefault(ns, []).append(name)
    if external is None:
        top = {b"dns": [((b"ns", b"dns") + zone, _ADDRESS_TYPES)],
               b"dns-version": [((b"dns-version",) + zone, (T.TXT,))],
               b"svc": None}
    else:
        top = {external.apex: [((b"ns1", external.apex) + zone, _ADDRESS_TYPES)]}
        for ns in by_namespace:
            top.setdefault(ns.encode(), ns)
    for label in sorted(top):
        names = top[label]
        if isinstance(names, list):  # the zone's own names
            for owner, types in names:
                yield from _records(snap, owner, types)
            continue
        for ns in ([names] if external is not None else sorted(by_namespace)):
            for name in by_namespace[ns]:
                if external is None:
                    base = (name.encode(), ns.encode(), b"svc") + zone
                    endpoints = True
                else:
                    base = (name.encode(), ns.encode()) + zone
                    endpoints = external.headless
                yield from _service(snap, snap.services[(ns, name)], base, endpoints)
    yield soa


def find_zone(snap: Snapshot, qname: tuple) -> Optional[tuple]:
    """``qname``'s labels in lower case when it is one of our zones' apex."""
    zone = tuple(label.lower() for label in qname)
    return zone if is_zone(snap, zone) else None
