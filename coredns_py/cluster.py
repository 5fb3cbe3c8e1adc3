"""Fill in what a cluster would: the work the API server and the controllers
do between ``kubectl apply`` and the first DNS answer.

- the API server allocates ClusterIPs (:mod:`coredns_py.allocator`);
- the workload controllers start ``replicas`` pods from each template, and the
  pod network gives them IPs;
- the EndpointSlice controller turns a Service's ``selector`` into slices of
  the matching pods, and the mirroring controller turns v1 Endpoints of a
  Service without slices into slices.

Objects the folder states explicitly (an IP, a Pod, an EndpointSlice, as in a
dump of a real cluster) are used as they are.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Optional

from coredns_py import objects as o
from coredns_py.allocator import Request, allocate
from coredns_py.config import Config
from coredns_py.convert import safe_hash
from coredns_py.errors import ManifestError
from coredns_py.memo import Memo, NoMemo
from coredns_py.selectors import matches


@dataclass(frozen=True)
class Cluster:
    namespaces: frozenset[str]
    services: tuple[o.Service, ...]
    slices: tuple[o.EndpointSlice, ...]
    pods: tuple[o.Pod, ...]
    errors: tuple[ManifestError, ...]

    def service_slices(self, namespace: str, name: str) -> list[o.EndpointSlice]:
        return [s for s in self.slices if s.namespace == namespace and s.service == name]


def _err(obj, message: str, field: str = "") -> ManifestError:
    origin = getattr(obj, "origin", None)
    return ManifestError(message, origin.path if origin else "", origin.line if origin else None,
                         f"{obj.kind} {obj.namespace}/{obj.name}", field)


# --- workloads -> pods -----------------------------------------------------

def workload_pods(wl: o.Workload) -> list[o.Pod]:
    """The pods a workload controller would create, named as it would name them."""
    pods = []
    for i in range(wl.replicas):
        hostname, subdomain = wl.template_hostname, wl.template_subdomain
        if wl.kind == "StatefulSet":
            name = f"{wl.name}-{i}"
            # The StatefulSet controller sets both, which gives each pod its
            # own name under the governing headless Service.
            hostname, subdomain = name, wl.service_name
        elif wl.kind == "Deployment":
            # <deployment>-<pod-template-hash>-<5 chars>: the ReplicaSet is
            # named after the template hash, its pods get a random suffix
            # (here a stable one, so a restart keeps the names).
            rs = f"{wl.name}-{wl.template_hash}"
            name = f"{rs}-{safe_hash(f'{wl.namespace}/{rs}/{i}', 5)}"
        else:
            name = f"{wl.name}-{safe_hash(f'{wl.namespace}/{wl.name}/{wl.template_hash}/{i}', 5)}"
        pods.append(o.Pod(wl.namespace, name, labels=wl.template_labels, hostname=hostname,
                          subdomain=subdomain, ports=wl.ports, owner=f"{wl.kind}/{wl.name}",
                          origin=wl.origin))
    return pods


# --- IP families ---------------------------------------------------------------

def _family(cidr: str) -> int:
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


# --- the endpoint controllers ---------------------------------------------------

def _resolve_target(port: o.ServicePort, pod: o.Pod) -> Optional[int]:
    """targetPort by number, or by the name of one of the pod's container ports."""
    target = port.target_port
    if target is None:
        return port.port
    if isinstance(target, int):
        return target
    for cp in pod.ports:
        if cp.name == target and cp.protocol == port.protocol:
            return cp.container_port
    return None  # the named port is not on this pod: it is left out, as the controller does


def selector_slices(svc: o.Service, pods: Iterable[o.Pod],
                    pod_families: list[int]) -> list[o.EndpointSlice]:
    """The slices the EndpointSlice controller writes for a Service with a selector.

    Pods with the same resolved ports share a slice (the controller groups them
    the same way); readiness follows podToEndpoint:
    ``ready = publishNotReadyAddresses or (pod ready and not terminating)``.
    """
    if svc.headless:
        families = {4 if f == "IPv4" else 6 for f in svc.ip_families} or (
            set(pod_families) if svc.ip_family_policy in ("PreferDualStack",
                                                          "RequireDualStack")
            else set(pod_families[:1]))
    else:
        families = {o.family(ip) for ip in svc.cluster_ips}
    groups: dict[tuple, list] = defaultdict(list)
    for pod in pods:
        if (pod.namespace != svc.namespace or pod.phase in ("Succeeded", "Failed", "Unknown")
                or not pod.ips or not matches(svc.selector or (), (), pod.label_map)):
            continue
        ports = []
        for sp in svc.ports:
            target = _resolve_target(sp, pod)
            if target is not None:
                ports.append(o.EndpointPort(sp.name, target, sp.protocol))
        addrs = tuple(ip for ip in pod.ips if o.family(ip) in families)
        if not addrs:
            continue
        ready = svc.publish_not_ready or (pod.ready and not pod.terminating)
        # The slice controller copies spec.hostname only when the pod's
        # subdomain names this Service (kubernetes endpointslice utils.go).
        hostname = pod.hostname if pod.hostname and pod.subdomain == svc.name else ""
        for addr in addrs:
            fam = o.family(addr)
            groups[(fam, tuple(ports))].append(
                o.Endpoint((addr,), ready, hostname, pod.name))
    out = []
    for (fam, ports), eps in sorted(groups.items(), key=lambda kv: (kv[0][0], repr(kv[0][1]))):
        out.append(o.EndpointSlice(svc.namespace, f"{svc.name}-{safe_hash(repr((fam, ports)), 5)}",
                                   svc.name, tuple(eps), ports, origin=svc.origin))
    return out


# --- putting it together ------------------------------------------------------------

def build(objects: Iterable, config: Config, state_path: Optional[Path],
          memo: Memo = NoMemo()) -> Cluster:
    """Fill the objects in. With a ``memo`` from the previous build, work on
    objects that did not change (the same Python objects) is reused."""
    services: list[o.Service] = []
    slices: list[o.EndpointSlice] = []
    pods: list[o.Pod] = []
    workloads: list[o.Workload] = []
    namespaces: set[str] = set()
    errors: list[ManifestError] = []
    for obj in objects:
        if isinstance(obj, o.Namespace):
            namespaces.add(obj.name)
            continue
        namespaces.add(obj.namespace)
        if isinstance(obj, o.Service):
            services.append(obj)
        elif isinstance(obj, o.EndpointSlice):
            slices.append(obj)
        elif isinstance(obj, o.Pod):
            pods.append(obj)
        elif isinstance(obj, o.Workload):
            workloads.append(obj)

    # Workload controllers start their pods; an explicit Pod of the same name wins.
    explicit = {(p.namespace, p.name) for p in pods}
    for wl in workloads:
        pods.extend(p for p in memo.get("pods", (wl,), lambda: workload_pods(wl))
                    if (p.namespace, p.name) not in explicit)

    pod_families = [_family(c) for c in config.pod_cidr]
    pod_reqs = []
    for pod in pods:
        if pod.ips or not pod.running:
            pod_reqs.append(Request(f"{pod.namespace}/{pod.name}", pod.ips, []))
        else:
            pod_reqs.append(Request(f"{pod.namespace}/{pod.name}", [], pod_families))
    allocate("pods", pod_reqs, config.pod_cidr, state_path)
    for i, (pod, req) in enumerate(zip(pods, pod_reqs)):
        if req.error:
            errors.append(_err(pod, req.error, "status.podIPs"))
        ips = tuple(req.result)
        if ips != pod.ips:
            pods[i] = memo.get(("pod-ips", ips), (pod,), lambda: replace(pod, ips=ips))

    svc_reqs = []
    for svc in services:
        if svc.type == o.EXTERNAL_NAME or svc.headless:
            svc_reqs.append(None)
            continue
        fams, problem = _service_families(svc, config.service_cidr)
        if problem and not svc.cluster_ips:
            errors.append(_err(svc, problem, "spec.ipFamilyPolicy"))
        svc_reqs.append(Request(f"{svc.namespace}/{svc.name}", svc.cluster_ips, fams))
    allocate("services", [r for r in svc_reqs if r], config.service_cidr, state_path)
    for i, (svc, req) in enumerate(zip(services, svc_reqs)):
        if req is None:
            continue
        if req.error:
            errors.append(_err(svc, req.error, "spec.clusterIP"))
        ips = tuple(req.result)
        if ips != svc.cluster_ips:
            services[i] = memo.get(("svc-ips", ips), (svc,),
                                   lambda: replace(svc, cluster_ips=ips))

    # Endpoint controllers: explicit slices first, then mirrored Endpoints,
    # then slices made from the selector.
    have_slices = {(s.namespace, s.service) for s in slices if not s.mirrored}
    final = [s for s in slices if not s.mirrored or (s.namespace, s.service) not in have_slices]
    covered = {(s.namespace, s.service) for s in final}
    # Index pods by (namespace, label) so a selector only looks at pods that
    # carry at least its first label, not at every pod of the namespace.
    by_label: dict[tuple[str, str, str], list[o.Pod]] = defaultdict(list)
    for pod in pods:
        for key, value in pod.labels:
            by_label[(pod.namespace, key, value)].append(pod)
    for svc in services:
        if svc.selector and svc.type != o.EXTERNAL_NAME and (svc.namespace, svc.name) not in covered:
            candidates = min((by_label.get((svc.namespace, k, v), []) for k, v in svc.selector),
                             key=len)
            final.extend(memo.get(("slices", tuple(pod_families)), (svc, *candidates),
                                  lambda: selector_slices(svc, candidates, pod_families)))
    memo.rotate()

    return Cluster(frozenset(namespaces), tuple(services), tuple(final), tuple(pods),
                   tuple(errors))
