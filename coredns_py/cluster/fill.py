"""Fill in what a cluster would: the work the API server and the controllers
do between ``kubectl apply`` and the first DNS answer.

- the API server has two Services of its own (:mod:`.builtin`), and
  allocates ClusterIPs and node ports (:mod:`coredns_py.cluster.allocator`);
- the workload controllers start ``replicas`` pods from each template, and the
  pod network gives them IPs;
- the EndpointSlice controller turns a Service's ``selector`` into slices of
  the matching pods, and the mirroring controller turns v1 Endpoints of a
  Service without slices into slices.

Objects the folder states explicitly (an IP, a Pod, an EndpointSlice, as in a
dump of a real cluster) are used as they are.
"""

from __future__ import annotations

import functools
import ipaddress
from collections import defaultdict
from itertools import chain
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, NamedTuple

from coredns_py.source import objects as o
from coredns_py.cluster import allocator, builtin, state as state_mod
from coredns_py.cluster.allocator import (Addresses, FixedConflict, NodePorts, Request, Space,
                                          allocate)
from coredns_py.cluster.state import Store
from coredns_py.config import Config
from coredns_py.errors import ManifestError
from coredns_py.memo import Memo, NoMemo
from coredns_py.cluster import Cluster
from coredns_py.cluster.endpoints import selector_slices
from coredns_py.cluster.workloads import workload_pods


def _err(obj, message: str, field: str = "") -> ManifestError:
    origin = getattr(obj, "origin", None)
    return ManifestError(message, origin.path if origin else "", origin.line if origin else None,
                         f"{obj.kind} {obj.namespace}/{obj.name}", field)


# --- IP families ---------------------------------------------------------------

@functools.lru_cache(maxsize=64)
def _family(cidr: str) -> int:
    # Asked once per Service and pod; parsing the CIDR each time showed up in
    # profiles of large folders.
    return ipaddress.ip_network(cidr).version


def _service_families(svc: o.Service, cidrs: tuple[str, ...]) -> tuple[list[int], str]:
    configured = [_family(c) for c in cidrs]
    asked = [4 if f == "IPv4" else 6 for f in svc.ip_families]
    order = asked + [f for f in configured if f not in asked]
    if svc.ip_family_policy in ("PreferDualStack", "RequireDualStack"):
        fams = [f for f in order if f in configured]
        if svc.ip_family_policy == "RequireDualStack" and len(fams) < 2:
            return fams, ("RequireDualStack needs an IPv4 and an IPv6 range in the "
                          "service_cidr setting")
        return fams, ""
    first = order[0]
    if first not in configured:
        return [], f"IPv{first} requested but service_cidr has no IPv{first} range"
    return [first], ""


# --- putting it together ------------------------------------------------------------

class Ask(NamedTuple):
    """One allocation request of a namespace: the holder (``index`` into the
    services or pods, and ``port``, the index of a Service's port for a node
    port), its state key, what it gives itself, the families it needs."""

    index: int
    key: str
    explicit: tuple
    families: tuple
    port: int = -1


@dataclass(frozen=True)
class NamespaceParts:
    """One namespace's objects, sorted by kind, with workload pods started
    and allocation requests worked out; IPs and node ports not yet filled in."""

    services: tuple[o.Service, ...]
    slices: tuple[o.EndpointSlice, ...]
    pods: tuple[o.Pod, ...]
    svc_requests: tuple[Ask, ...]
    pod_requests: tuple[Ask, ...]
    node_port_requests: tuple[Ask, ...]
    errors: tuple[ManifestError, ...]


@dataclass(frozen=True)
class NamespaceResult:
    services: tuple[o.Service, ...]
    slices: tuple[o.EndpointSlice, ...]
    pods: tuple[o.Pod, ...]
    errors: tuple[ManifestError, ...]


def _parts(objs: tuple, config: Config, memo: Memo) -> NamespaceParts:
    services, slices, pods, workloads, errors = [], [], [], [], []
    for obj in objs:
        kind = type(obj)
        if kind is o.Service:
            services.append(obj)
        elif kind is o.EndpointSlice:
            slices.append(obj)
        elif kind is o.Pod:
            pods.append(obj)
        elif kind is o.Workload:
            workloads.append(obj)
    # Workload controllers start their pods; an explicit Pod of the same name wins.
    explicit = {p.name for p in pods}
    for wl in workloads:
        pods.extend(p for p in memo.get("pods", (wl,), lambda: workload_pods(wl))
                    if p.name not in explicit)
    pod_families = tuple(_family(c) for c in config.pod_cidr)
    pod_requests = tuple(
        Ask(i, f"{p.namespace}/{p.name}", p.ips, ()) if p.ips or not p.running
        else Ask(i, f"{p.namespace}/{p.name}", (), pod_families)
        for i, p in enumerate(pods))
    svc_requests, node_port_requests = [], []
    for i, svc in enumerate(services):
        if svc.wants_node_ports:
            # One node port per Service port, kept per port and protocol.
            node_port_requests.extend(
                Ask(i, f"{svc.namespace}/{svc.name}:{p.port}/{p.protocol}",
                    (p.node_port,) if p.node_port else (), (0,), j)
                for j, p in enumerate(svc.ports))
        if svc.type == o.EXTERNAL_NAME or svc.headless:
            continue
        fams, problem = _service_families(svc, config.service_cidr)
        if problem and not svc.cluster_ips:
            errors.append(_err(svc, problem, "spec.ipFamilyPolicy"))
        svc_requests.append(Ask(i, f"{svc.namespace}/{svc.name}", svc.cluster_ips, tuple(fams)))
    return NamespaceParts(tuple(services), tuple(slices), tuple(pods), tuple(svc_requests),
                          pod_requests, tuple(node_port_requests), tuple(errors))


def _fill(parts: NamespaceParts, svc_results: tuple, pod_results: tuple,
          node_port_results: tuple, pod_families: list[int], memo: Memo) -> NamespaceResult:
    """Put the allocated addresses and node ports in, then run the endpoint controllers."""
    errors = list(parts.errors)
    pods = list(parts.pods)
    for ask, (ips, error) in zip(parts.pod_requests, pod_results):
        pod = pods[ask.index]
        if error:
            errors.append(_err(pod, error, "status.podIPs"))
        if ips != pod.ips:
            pods[ask.index] = memo.get(("pod-ips", ips), (pod,), lambda: replace(pod, ips=ips))
    ips_of: dict[int, tuple] = {}
    for ask, (ips, error) in zip(parts.svc_requests, svc_results):
        if error:
            errors.append(_err(parts.services[ask.index], error, "spec.clusterIP"))
        ips_of[ask.index] = ips
    node_ports_of: dict[int, dict[int, int]] = defaultdict(dict)
    for ask, (ports, error) in zip(parts.node_port_requests, node_port_results):
        if error:
            errors.append(_err(parts.services[ask.index], error,
                               f"spec.ports[{ask.port}].nodePort"))
        if ports:
            node_ports_of[ask.index][ask.port] = ports[0]
    services = list(parts.services)
    for i, svc in enumerate(services):
        ips = ips_of.get(i, svc.cluster_ips)
        given = node_ports_of.get(i, {})
        ports = tuple(replace(p, node_port=given[j]) if given.get(j, p.node_port) != p.node_port
                      else p for j, p in enumerate(svc.ports))
        if ips != svc.cluster_ips or ports != svc.ports:
            services[i] = memo.get(("svc-filled", ips, ports), (svc,),
                                   lambda: replace(svc, cluster_ips=ips, ports=ports))

    # Endpoint controllers: explicit slices first, then mirrored Endpoints,
    # then slices made from the selector.
    slices = parts.slices
    have_slices = {s.service for s in slices if not s.mirrored}
    final = [s for s in slices if not s.mirrored or s.service not in have_slices]
    covered = {s.service for s in final}
    # Index pods by label so a selector only looks at pods that carry at
    # least its first label, not at every pod of the namespace.
    by_label: dict[tuple[str, str], list[o.Pod]] = defaultdict(list)
    for pod in pods:
        for label in pod.labels:
            by_label[label].append(pod)
    for svc in services:
        if svc.selector and svc.type != o.EXTERNAL_NAME and svc.name not in covered:
            candidates = min((by_label.get(kv, []) for kv in svc.selector), key=len)
            if candidates:  # no pod to match: no slice, and nothing worth a memo entry
                final.extend(memo.get(("slices", tuple(pod_families)), (svc, *candidates),
                                      lambda: selector_slices(svc, candidates, pod_families)))
    return NamespaceResult(tuple(services), tuple(final), tuple(pods), tuple(errors))


# What each table of the state holds, the namespace field of its requests,
# and the objects those requests index.
_TABLES = (("pods", "pod_requests", "pods"), ("services", "svc_requests", "services"),
           ("node_ports", "node_port_requests", "services"))


def served_values(previous: dict, field: str) -> dict[str, list]:
    """The allocated (not explicit) values of the previous build, by key:
    what the server serves now (``field``: one of ``_TABLES``' fields)."""
    out = {}
    for result in previous.values():
        for ask, (values, error) in zip(getattr(result["parts"], field), result[field]):
            if values and not ask.explicit and not error:
                out[ask.key] = list(values)
    return out


def _spaces(config: Config) -> dict:
    """What each table hands out, for this config."""
    return {"pods": Addresses("pods", config.pod_cidr, builtin.reserved_pod_addresses(config)),
            "services": Addresses("services", config.service_cidr),
            "node_ports": NodePorts(*config.node_ports)}


def _allocate(kind: str, parts: dict, changed: set, previous: dict, space: Space,
              store: Store, field: str, objects_of: str, position: "_Positions") -> dict:
    """Values for every request of every namespace: namespaces a reload did
    not touch keep theirs, the others are worked out around them. Requests
    go in path order (``position`` of each object), which decides who keeps
    a value two objects claim."""

    def requests(names) -> tuple[dict, list]:
        by_ns, ordered = {}, []
        at, last = position.of(names), len(position)
        for ns in names:
            part = parts[ns]
            objs = getattr(part, objects_of)
            by_ns[ns] = []
            for ask in getattr(part, field):
                req = Request(ask.key, ask.explicit, ask.families)
                by_ns[ns].append(req)
                ordered.append(((at.get(id(objs[ask.index]), last), ask.port), req))
        ordered.sort(key=lambda item: item[0])
        return by_ns, [req for _pos, req in ordered]

    fixed = {}
    for ns, part in parts.items():
        if ns not in changed:
            for ask, (values, error) in zip(getattr(part, field), previous[ns][field]):
                if values and not error:
                    fixed[ask.key] = list(values)
    served = served_values(previous, field)
    todo = [ns for ns in parts if ns in changed]
    reqs, ordered = requests(todo)
    try:
        allocate(kind, ordered, space, store, fixed, served)
    except FixedConflict:
        # An explicit value now claims what an untouched object holds:
        # path order decides, so everything is worked out again.
        todo = list(parts)
        reqs, ordered = requests(todo)
        allocate(kind, ordered, space, store, served=served)
    out = {ns: previous[ns][field] for ns in parts if ns not in todo}
    for ns in todo:
        out[ns] = tuple((tuple(r.result), r.error) for r in reqs[ns])
    return out


class _Positions:
    """Where each object comes in path order (id -> index), which orders the
    allocation requests: worked out for the namespaces asked only.  Each
    namespace's objects are in path order already, so for one namespace
    (a reload of one file) its own order is enough; several namespaces
    together need the order of every object.  Objects that are not read
    but made (workload pods) come after every object read."""

    def __init__(self, objects: tuple, groups: dict):
        self._objects = objects
        self._groups = groups
        self._all: dict | None = None

    def __len__(self) -> int:
        return len(self._objects)

    def of(self, names) -> dict:
        names = list(names)
        if len(names) == 1:
            return {id(obj): i for i, obj in enumerate(self._groups[names[0]])}
        if self._all is None:
            self._all = {id(obj): i for i, obj in enumerate(self._objects)}
        return self._all


def build(objects: Iterable, config: Config, store: "Store | Path | None",
          memo: Memo = NoMemo()) -> Cluster:
    """Fill the objects in, namespace by namespace.

    The Services every cluster has (:mod:`.builtin`) come first, unless the
    objects define them.  Everything a cluster derives stays inside a
    namespace (workload pods, selectors, slices), except addresses and node
    ports, which come from cluster-wide ranges. With a ``memo`` from the
    previous build, a namespace whose objects are all the same Python
    objects as last time (the source keeps the objects of unchanged files)
    keeps its result, and only the namespaces a reload touched are worked
    out again, around the values the others hold.  ``store`` keeps the
    allocations (:mod:`.state`; a path is a state file, None keeps nothing).
    """
    objects = tuple(objects)
    allocator.new_build()
    store = state_mod.store(store)
    by_ns: dict[str, list] = defaultdict(list)
    namespaces: set[str] = set()
    namespace_labels: dict[str, tuple] = {}
    for obj in objects:
        if type(obj) is o.Namespace:
            namespaces.add(obj.name)
            namespace_labels[obj.name] = obj.labels
        else:
            by_ns[obj.namespace].append(obj)
    groups = {ns: tuple(objs) for ns, objs in by_ns.items()}
    # The built-in Services come first unless the objects replace them; what
    # each namespace replaces is asked again only when its objects changed.
    extra = builtin.missing((memo.get(("claims", config), objs,
                                      lambda: builtin.claims(objs, config))
                             for objs in groups.values()), config)
    if extra:
        objects = extra + objects
        first: dict[str, list] = {}
        for obj in extra:
            first.setdefault(obj.namespace, []).append(obj)
        groups = {**{ns: tuple(objs) + groups.get(ns, ()) for ns, objs in first.items()},
                  **{ns: objs for ns, objs in groups.items() if ns not in first}}
    namespaces.update(groups)

    parts = {ns: memo.get(("parts", config), objs, lambda: _parts(objs, config, memo))
             for ns, objs in groups.items()}
    position = _Positions(objects, groups)
    # The previous build's per-namespace results, if the memo carries them.
    previous: dict = memo.namespaces
    same_config = memo.config == (config, store)
    changed = {ns for ns, part in parts.items()
               if not same_config or ns not in previous or previous[ns]["parts"] is not part}
    spaces = _spaces(config)
    results_of = {field: _allocate(kind, parts, changed, previous, spaces[kind], store, field,
                                   objects_of, position)
                  for kind, field, objects_of in _TABLES}

    pod_families = [_family(c) for c in config.pod_cidr]
    results: dict[str, NamespaceResult] = {}
    current = {}
    for ns, part in parts.items():
        old = previous.get(ns)
        mine = {field: results_of[field][ns] for _kind, field, _objects in _TABLES}
        if old is not None and old["parts"] is part and all(
                old[f] is mine[f] or old[f] == mine[f] for f in mine):
            result = old["result"]
        else:
            result = _fill(part, mine["svc_requests"], mine["pod_requests"],
                           mine["node_port_requests"], pod_families, memo)
        results[ns] = result
        current[ns] = {"parts": part, "result": result, **mine}
    memo.rotate()
    allocator.end_build()
    if not isinstance(memo, NoMemo):
        memo.namespaces = current
        memo.config = (config, store)

    return Cluster(
        frozenset(namespaces),
        tuple(chain.from_iterable(r.services for r in results.values())),
        tuple(chain.from_iterable(r.slices for r in results.values())),
        tuple(chain.from_iterable(r.pods for r in results.values())),
        tuple(chain.from_iterable(r.errors for r in results.values())),
        results, namespace_labels)


def keep_served(memo: Memo, config: Config, store: "Store | Path | None") -> None:
    """Write the state again from what the last build serves, if it says
    otherwise: damaged, truncated or deleted since that build (the server
    calls this as it stops, so a restart keeps every value it served)."""
    previous = memo.namespaces
    if not previous:
        return
    store = state_mod.store(store)
    spaces = _spaces(config)
    for kind, field, _objects_of in _TABLES:
        served = served_values(previous, field)
        allocate(kind, [], spaces[kind], store, fixed=served, served=served)
