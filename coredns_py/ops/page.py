"""What the status page shows: one generation's Services, the DNS names each
answers, and the problems found loading it.

The names and their records are not worked out here: each candidate name is
looked up with :func:`coredns_py.zone.lookup.resolve`, the code that answers
queries, so the page shows exactly what a client would get (an NXDOMAIN with
the reason the lookup gives).
"""

from __future__ import annotations

from typing import Optional

import dns.name
import dns.rdatatype as T

from coredns_py import __version__
from coredns_py.generation import Generation
from coredns_py.zone import names, records
from coredns_py.zone.lookup import resolve
from coredns_py.zone.snapshot import ServiceView, Snapshot

# Services listed on the status page and in /api/status.  The page is for a
# human: past this, narrow down with the filter (?q=), which searches all.
MAX_STATUS_SERVICES = 2000

PAGE_TYPES = ("A", "AAAA", "SRV", "PTR", "CNAME", "TXT", "SOA", "NS", "ANY")


def _questions(snap: Snapshot, view: ServiceView) -> list[tuple[dns.name.Name, int]]:
    """The names a Service defines, each with the types worth asking."""
    zone = snap.zone
    base = names.service(view.namespace, view.name, zone)
    if view.kind == "ExternalName":
        return [(base, T.CNAME)]
    asks = [(base, T.A), (base, T.AAAA), (base, T.SRV)]
    ports = view.ports if view.kind != "Headless" else [
        p for ep in view.endpoints for p in ep.ports]
    for p in sorted({p for p in ports if p.name and p.port >= 0},
                    key=lambda p: (p.name, p.protocol)):
        asks.append((names.port(view.namespace, view.name, p.name, p.protocol, zone), T.SRV))
    for label in dict.fromkeys(ep.name for ep in view.endpoints):
        owner = names.service(view.namespace, view.name, zone, label)
        asks += [(owner, T.A), (owner, T.AAAA)]
    addresses = list(view.ips) + [ep.address for ep in view.endpoints]
    for ip in dict.fromkeys(addresses):
        asks.append((names.reverse(ip), T.PTR))
    return asks


def service_names(snap: Snapshot, view: ServiceView) -> list[dict]:
    """The names a Service answers: name, type and the records' values, or
    an NXDOMAIN row with its reason; names without records of a type
    (NODATA) are left out."""
    rows: list[dict] = []
    nxdomain: set[dns.name.Name] = set()
    for qname, qtype in _questions(snap, view):
        if qname in nxdomain:
            continue
        res = resolve(snap, qname.labels[:-1], qtype)
        if res is None:
            continue
        if res.nxdomain:
            nxdomain.add(qname)
            rows.append({"name": qname.to_text(), "type": "NXDOMAIN", "values": [res.why]})
            continue
        values = [rd.to_text() for rs in map(records.to_dnspython, res.answer)
                  if rs.name == qname and rs.rdtype == qtype for rd in rs]
        if values:
            rows.append({"name": qname.to_text(), "type": T.to_text(qtype), "values": values})
    return rows


def _service_row(snap: Snapshot, view: ServiceView) -> dict:
    ports = [{"name": p.name, "protocol": p.protocol.upper(), "port": p.port}
             for p in view.ports if p.port >= 0]
    return {
        "namespace": view.namespace, "name": view.name, "type": view.type, "kind": view.kind,
        "cluster_ips": list(view.ips),
        "external_name": view.external.to_text() if view.external is not None else "",
        "ports": ports,
        "endpoints": [{"name": ep.name, "address": ep.address} for ep in view.endpoints],
        "names": service_names(snap, view),
    }


def _error_row(err) -> dict:
    return {"file": getattr(err, "path", "") or "", "line": getattr(err, "line", None),
            "object": getattr(err, "obj", "") or "", "field": getattr(err, "field", "") or "",
            "message": getattr(err, "message", str(err)), "text": str(err)}


def document(gen: Optional[Generation], *, zone: str, source: str, listen: list[str],
             forwarding: bool, query: str = "", limit: int = MAX_STATUS_SERVICES) -> dict:
    """Everything the status page shows, from one generation (None: not loaded
    yet).  ``query`` filters Services by a substring of ``namespace/name``."""
    snap = gen.snapshot if gen is not None else None
    doc = {
        "version": __version__,
        "zone": zone,
        "manifests": source,
        "listen": listen,
        "loaded": gen is not None,
        "build": gen.number if gen is not None else None,
        "last_reload": gen.built_at if gen is not None else None,
        "last_reload_seconds": gen.build_seconds if gen is not None else None,
        "generation": snap.generation if snap is not None else None,
        "serial": snap.serial if snap is not None else None,
        "counts": dict(snap.counts) if snap is not None else {},
        "forwarding": forwarding,
        "errors": [_error_row(e) for e in (gen.errors if gen is not None else ())],
        "namespaces": [],
        "services_total": 0,
        "services_shown": 0,
        "types": list(PAGE_TYPES),
    }
    if snap is None:
        return doc
    needle = query.strip().lower()
    by_ns: dict[str, list] = {ns: [] for ns in sorted(snap.namespaces)}
    shown = 0
    keys = sorted(snap.services)
    for ns, name in keys:
        if needle and needle not in f"{ns}/{name}":
            continue
        if shown >= limit:
            doc["truncated"] = True
            continue
        by_ns.setdefault(ns, []).append(_service_row(snap, snap.services[(ns, name)]))
        shown += 1
    doc["services_total"] = len(keys)
    doc["services_shown"] = shown
    doc["namespaces"] = [{"name": ns, "services": svcs} for ns, svcs in sorted(by_ns.items())
                         if svcs or not needle]
    return doc
