"""The endpoint controllers: EndpointSlices for a Service's selector, made
of the ready pods it matches (kubernetes pkg/controller/endpointslice)."""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Optional

from coredns_py.source.selectors import matches
from coredns_py.source import objects as o


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
        out.append(o.EndpointSlice(svc.namespace, f"{svc.name}-{o.safe_hash(repr((fam, ports)), 5)}",
                                   svc.name, tuple(eps), ports, origin=svc.origin))
    return out
