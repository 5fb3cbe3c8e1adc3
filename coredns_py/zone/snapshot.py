"""The immutable snapshot: everything a query needs, computed once per load.

A snapshot is built aside (in a worker thread) from a :class:`Cluster` and
swapped in with one assignment; a query reads the current snapshot once and
uses only that one, so an answer never mixes two generations.  Names are
stored lower-case; the answer code matches case-insensitively against them.
"""

from __future__ import annotations

import functools
import ipaddress
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import chain
from typing import Mapping, Optional

import dns.name

from coredns_py.source import objects as o
from coredns_py.cluster import Cluster
from coredns_py.config import Config
from coredns_py.memo import Memo, NoMemo
from coredns_py.zone import external, names
from coredns_py.zone.exposed import Exposed



@dataclass(frozen=True, slots=True)
class PortView:
    name: str  # lower-case, "" when unnamed
    protocol: str  # lower-case
    port: int  # -1: the Service has no ports (A records only, never SRV)


NO_PORT = (PortView("", "", -1),)


@dataclass(frozen=True, slots=True)
class EndpointView:
    name: str  # hostname, pod name (endpoint_pod_names) or dashed IP; lower-case
    address: str
    ports: tuple[PortView, ...]


@dataclass(frozen=True, slots=True)
class ServiceView:
    namespace: str
    name: str
    kind: str  # "ClusterIP" (also NodePort, LoadBalancer), "Headless", "ExternalName"
    ips: tuple[str, ...] = ()  # cluster IPs
    ports: tuple[PortView, ...] = NO_PORT
    endpoints: tuple[EndpointView, ...] = ()  # ready addresses only, all slices merged
    external: Optional[dns.name.Name] = None  # ExternalName target
    external_is_ip: bool = False
    type: str = o.CLUSTER_IP
    # spec.externalIPs, then the load balancer's ingress IPs and hostnames
    # (lower case): what the external zones answer (CoreDNS k8s_external).
    external_ips: tuple[str, ...] = ()

    def fqdn(self, zone: dns.name.Name) -> dns.name.Name:
        return names.service(self.namespace, self.name, zone)


EXISTS = "exists"  # the scope value of a namespace that holds no objects


class Scopes(dict):
    """Scope (result.Result.scope) -> its value (see Snapshot.scopes).  A
    namespace the snapshot does not hold has the config's value (scope 0,
    result.STATIC): its names' answers depend on the config alone."""

    __slots__ = ()

    def __missing__(self, scope):
        return self[0]


@dataclass(frozen=True)
class Snapshot:
    zone: dns.name.Name
    ttl: int
    serial: int  # SOA serial: when the data last changed (unix seconds)
    pods_mode: str
    ignore_empty_service: bool
    namespaces: frozenset[str]
    services: Mapping[tuple[str, str], ServiceView]
    # Reverse lookups by canonical address text: Service IPs (first match
    # wins), else ready endpoint IPs; the names as labels (zone/records.py).
    ptr: Mapping[str, tuple[tuple, ...]]
    # Primary pod IP (canonical text) per namespace, for `pods verified`.
    pod_ips: Mapping[str, frozenset[str]]
    # The apex NS records and ns.dns.<zone>: (name server's labels below
    # the zone, its addresses), worked out from this server's own addresses
    # by _nameservers(); the same in every zone.
    nameservers: tuple[tuple[tuple, tuple[str, ...]], ...] = ()
    generation: int = 0
    counts: Mapping[str, int] = field(default_factory=dict)
    zone_labels: tuple = ()  # the zone's labels, lower case, without the root label
    # Every zone answering the cluster, as labels: zone_labels first, then
    # the config's extra_zones (CoreDNS serves each zone of its kubernetes
    # line alike; PTR records name the first).
    zones: tuple = ()
    # What the answers depend on (result.Result.scope) -> a value that stays
    # the same object for as long as that input does: each namespace's
    # share of the snapshot (reused by the memo while its objects are
    # unchanged), or EXISTS for a namespace without objects; one value for
    # the config (STATIC) and one per build for the rest (GLOBAL).  An
    # answer prepared as bytes is good while its scope's value is the same
    # (coredns_py.zone.prepared).
    scopes: Mapping = field(default_factory=lambda: Scopes({0: object(), 1: object()}))
    # Namespaces that exist but are not exposed (config keys namespaces,
    # namespace_labels): NXDOMAIN, with that reason.
    hidden: frozenset = frozenset()
    # The external zones (CoreDNS k8s_external), the longest first.
    externals: tuple = ()


def _ports(ports) -> tuple[PortView, ...]:
    return _port_views(tuple((p.name, p.protocol, p.port) for p in ports))


@functools.lru_cache(maxsize=4096)
def _port_views(ports: tuple) -> tuple[PortView, ...]:
    # Most Services share a handful of port lists (80/TCP "http" ...); one
    # tuple each instead of one per Service saved ~3 MB at 10k Services.
    out = tuple(PortView(name.lower(), protocol.lower(), port) for name, protocol, port in ports)
    return out or NO_PORT


def _is_ip(text: str) -> bool:
    if o.is_dotted_quad(text):
        return True
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def service_view(svc: o.Service, slices, zone: dns.name.Name,
                 endpoint_pod_names: bool) -> tuple[ServiceView, list]:
    """A Service as DNS sees it, and the (address, endpoint name) pairs its
    ready endpoints add to the reverse zone."""
    if svc.type == o.EXTERNAL_NAME:
        is_ip = _is_ip(svc.external_name)
        target = None if is_ip else dns.name.from_text(svc.external_name)
        return ServiceView(svc.namespace, svc.name, "ExternalName", external=target,
                           external_is_ip=is_ip, type=svc.type,
                           external_ips=svc.external_ips + svc.ingress), []
    eps = []
    owners = []
    seen = set()
    for sl in slices:
        ports = _ports(sl.ports)
        for ep in sl.endpoints:
            if not ep.ready:
                continue
            for addr in ep.addresses:
                if ep.hostname:
                    name = ep.hostname.lower()
                elif endpoint_pod_names and ep.target_pod and len(ep.target_pod) < 64:
                    name = ep.target_pod.lower()
                else:
                    name = names.dashed(addr)
                eps.append(EndpointView(name, addr, ports))
                if (addr, name) not in seen:  # the same owner name: same suffix
                    seen.add((addr, name))
                    owners.append((addr, names.service_labels(svc.namespace, svc.name,
                                                              names.zone_labels(zone), name)))
    view = ServiceView(svc.namespace, svc.name, "Headless" if svc.headless else "ClusterIP",
                       ips=() if svc.headless else svc.cluster_ips, ports=_ports(svc.ports),
                       endpoints=tuple(eps), type=svc.type,
                       external_ips=svc.external_ips + svc.ingress)
    return view, owners


@dataclass(frozen=True, slots=True)
class NamespaceView:
    """One namespace's share of a snapshot."""

    services: dict
    # address -> (owner,): the first of the namespace's Services with that
    # cluster IP; and address -> (owner, ...) for ready endpoints.
    cluster_ptr: dict
    endpoint_ptr: dict
    pod_ips: dict  # namespace -> primary IPs of its running pods


def namespace_view(services, slices, pods, zone: dns.name.Name, endpoint_pod_names: bool,
                   memo: Memo) -> NamespaceView:
    slices_by_service: dict[str, list[o.EndpointSlice]] = defaultdict(list)
    for sl in slices:
        if sl.service:
            slices_by_service[(sl.namespace, sl.service)].append(sl)
    views = {}
    cluster_ptr: dict = {}
    endpoint_ptr: dict = {}
    # The zone's text, not the Name, in memo keys: a Name hashes all its
    # labels anew each time (a third of a 100k-Service build went there).
    tag = ("view", zone.to_text(), endpoint_pod_names)
    for svc in services:
        mine = slices_by_service.get((svc.namespace, svc.name), ())
        view, owners = memo.get(tag, (svc, *mine),
                                lambda: service_view(svc, mine, zone, endpoint_pod_names))
        views[(svc.namespace, svc.name)] = view
        if view.ips:
            fqdn = names.service_labels(view.namespace, view.name, names.zone_labels(zone))
            for ip in view.ips:
                cluster_ptr.setdefault(ip, (fqdn,))
        for ip, owner in owners:
            endpoint_ptr[ip] = endpoint_ptr.get(ip, ()) + (owner,)
    pod_ips: dict[str, set[str]] = defaultdict(set)
    for pod in pods:
        if pod.running and pod.ips:
            pod_ips[pod.namespace].add(pod.ips[0])
    return NamespaceView(views, cluster_ptr, endpoint_ptr,
                         {ns: frozenset(ips) for ns, ips in pod_ips.items()})


def _holders(ip: str, parts) -> tuple:
    """The value of ``ip`` in the reverse zone over ``parts`` in namespace
    order, and how many parts hold it: a Service's cluster IP names the
    first Service with it, as in CoreDNS; an address no Service holds names
    every ready endpoint with it."""
    first = None
    owners: tuple = ()
    count = 0
    for part in parts:
        mine = part.cluster_ptr.get(ip)
        ep = part.endpoint_ptr.get(ip)
        if mine is None and ep is None:
            continue
        count += 1
        if mine is not None and first is None:
            first = mine
        if ep is not None:
            owners += ep
    return (first if first is not None else owners or None), count


def _full_ptr(parts: list) -> tuple[dict, set]:
    """Address -> owners over every namespace, and the addresses more than
    one namespace holds.  Merged with dict updates (in C) where addresses
    are one namespace's: a Python step per address was a tenth of a
    100k-Service reload."""
    counts = Counter(chain.from_iterable(
        chain(part.cluster_ptr, part.endpoint_ptr.keys() - part.cluster_ptr.keys())
        for part in parts))
    shared = {ip for ip, n in counts.items() if n > 1} if len(counts) != sum(
        counts.values()) else set()
    ptr: dict = {}
    for part in parts:
        ptr.update(part.endpoint_ptr)
        ptr.update(part.cluster_ptr)
    for ip in shared:
        ptr[ip] = _holders(ip, parts)[0]
    return ptr, shared


def _merged_ptr(parts: dict, memo: Memo) -> dict:
    """The reverse zone's addresses over every namespace's part (ns ->
    NamespaceView, in namespace order): the previous build's, patched for
    the namespaces a reload touched (each of their addresses worked out
    again: from its one part, or over every part when several hold it), or
    merged whole after a first build or a change of most namespaces.  A new
    dict each time: the snapshot being served keeps its own."""
    previous = memo.layers.get("ptr")
    order = list(parts.values())
    if previous is not None:
        old_parts, old_ptr, old_shared = previous
        changed = [(old_parts.get(ns), parts.get(ns))
                   for ns in old_parts.keys() | parts.keys()
                   if old_parts.get(ns) is not parts.get(ns)]
    if previous is None or len(changed) * 4 > len(parts) + 4:
        ptr, shared = _full_ptr(order)
    else:
        ptr, shared = dict(old_ptr), set(old_shared)
        olds = [old for old, _new in changed if old is not None]
        news = [new for _old, new in changed if new is not None]
        touched = set()
        for part in olds + news:
            touched.update(part.cluster_ptr, part.endpoint_ptr)
        for ip in touched:
            held_before = [old for old in olds if ip in old.cluster_ptr or ip in old.endpoint_ptr]
            held_now = [new for new in news if ip in new.cluster_ptr or ip in new.endpoint_ptr]
            others = ip in old_shared or (ip in old_ptr and not held_before)
            if not others and len(held_now) <= 1:
                shared.discard(ip)
                if held_now:
                    part = held_now[0]
                    ptr[ip] = part.cluster_ptr.get(ip) or part.endpoint_ptr[ip]
                else:
                    ptr.pop(ip, None)
                continue
            value, count = _holders(ip, order)
            if value is None:
                ptr.pop(ip, None)
            else:
                ptr[ip] = value
            if count > 1:
                shared.add(ip)
            else:
                shared.discard(ip)
    if not isinstance(memo, NoMemo):
        memo.layers["ptr"] = (parts, ptr, shared)
    return ptr


def build(cluster: Cluster, config: Config, serial: int, ns_addresses=(),
          generation: int = 0, memo: Memo = NoMemo()) -> Snapshot:
    """The snapshot of a cluster. With a ``memo`` from the previous build,
    namespaces the reload did not touch (the same result objects) are reused."""
    zone = dns.name.from_text(config.zone)
    services: dict[tuple[str, str], ServiceView] = {}
    scopes = Scopes()
    pod_ips: dict[str, frozenset[str]] = {}
    exposed = Exposed.of(config)
    shown = cluster.namespaces if exposed.everything else frozenset(
        ns for ns in cluster.namespaces
        if exposed.namespace(ns, cluster.namespace_labels.get(ns)))
    tag = ("namespace", zone.to_text(), config.endpoint_pod_names, exposed.labels)
    parts: dict[str, NamespaceView] = {}
    for ns, result in cluster.by_namespace.items():
        if ns not in shown:
            continue  # not exposed: its names are NXDOMAIN (CoreDNS namespaceExposed)
        part = memo.get(tag, (result,),
                        lambda: namespace_view(exposed.services(result.services), result.slices,
                                               exposed.pods(result.pods), zone,
                                               config.endpoint_pod_names, memo))
        parts[ns] = part
        services.update(part.services)
        scopes[ns] = part
        pod_ips.update(part.pod_ips)
    for ns in shown:
        scopes.setdefault(ns, EXISTS)
    # Scope keys as lookup.py names them: 0 the config, 1 everything else.
    scopes[0] = memo.get(("static", zone.to_text(), config.extra_zones, config.ttl, config.pods,
                          config.ignore_empty_service, config.endpoint_pod_names, exposed),
                         (), object)
    scopes[1] = object()
    ptr = _merged_ptr(parts, memo)

    own = frozenset(ns_addresses)
    nameservers = _nameservers([memo.get(("own", own), (part,),
                                         lambda: _own_services(part.services, own))
                                for part in parts.values()], ns_addresses)
    memo.rotate()
    externals = external.zones_of(
        config.k8s_external, lambda headless: _external_nameservers(services, ns_addresses,
                                                                    headless))
    zones = (names.zone_labels(zone),) + tuple(
        tuple(label.encode() for label in extra.split(".")) for extra in config.extra_zones)

    counts = {
        "namespaces": len(cluster.namespaces),
        "services": len(cluster.services),
        "endpointslices": len(cluster.slices),
        "pods": len(cluster.pods),
    }
    return Snapshot(
        zone=zone, ttl=config.ttl, serial=serial, pods_mode=config.pods,
        ignore_empty_service=config.ignore_empty_service,
        namespaces=frozenset(shown), services=services,
        ptr=ptr,
        pod_ips=pod_ips,
        nameservers=nameservers, generation=generation,
        counts=counts, zone_labels=zones[0], zones=zones, scopes=scopes,
        hidden=frozenset(cluster.namespaces) - shown,
        externals=tuple(sorted(externals, key=lambda e: -len(e.zone))))


def _own_services(services: Mapping[tuple[str, str], ServiceView], own: frozenset) -> dict:
    """Name server label -> addresses: one namespace's Services whose
    endpoints hold one of this server's own addresses (``own``), with their
    cluster IPs as glue (the endpoint address for a headless one)."""
    found: dict[tuple, list[str]] = {}
    for view in services.values():
        for ep in view.endpoints:
            if ep.address in own:
                addrs = found.setdefault(names.service_labels(view.namespace, view.name, ()),
                                         [])
                for ip in (view.ips or (ep.address,)):
                    if ip not in addrs:
                        addrs.append(ip)
    return found


def _nameservers(found_per_namespace: list[dict], ns_addresses) -> tuple:
    """The apex NS: the Services whose endpoints hold this server's own
    address (kube-dns, in a cluster), found per namespace
    (:func:`_own_services`); otherwise ns.dns.<zone> with the server's
    addresses (CoreDNS ns.go nsAddrs).  Names as labels below the zone: the
    same Services name the name servers of every zone."""
    found = {name: addrs for part in found_per_namespace for name, addrs in part.items()}
    if found:
        return tuple((name, tuple(addrs)) for name, addrs in found.items())
    return ((names.nameserver_labels(()), tuple(ns_addresses)),)


def _external_nameservers(services: Mapping[tuple[str, str], ServiceView], ns_addresses,
                          headless: bool) -> tuple[str, ...]:
    """The addresses of an external zone's name server: the external IPs of
    the Services whose endpoints hold this server's address (the endpoints'
    own addresses for a headless one, with ``headless``); this server's
    addresses when no Service has one (CoreDNS ns.go nsAddrs, external)."""
    own = set(ns_addresses)
    found = False
    out: list[str] = []
    for view in services.values():
        if not any(ep.address in own for ep in view.endpoints):
            continue
        found = True
        if headless and view.kind == "Headless":
            addrs = [ep.address for ep in view.endpoints]
        else:
            addrs = [ip for ip in view.external_ips if _is_ip(ip)]
        out.extend(a for a in addrs if a not in out)
    return tuple(out) if found else tuple(ns_addresses)
