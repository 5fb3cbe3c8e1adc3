"""``coredns-py get``: what the server sees, as ``kubectl get`` prints it.

The same objects and the same allocated addresses that ``serve`` answers
with, so a user can check an IP without a DNS query.
"""

from __future__ import annotations

from typing import Optional

from coredns_py import hostport
from coredns_py.source import objects as o
from coredns_py.cluster import Cluster
from coredns_py.config import Config


def _columns(rows: list[list[str]]) -> str:
    """Left-aligned columns separated by three spaces, as kubectl does."""
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n"
                   for r in rows)


def _ports(svc: o.Service) -> str:
    if not svc.ports:
        return "<none>"
    return ",".join(f"{p.port}{':' + str(p.node_port) if p.node_port else ''}/{p.protocol}"
                    for p in svc.ports)


def _external_ip(svc: o.Service) -> str:
    """What kubectl shows: the load balancer's ingress (a LoadBalancer only;
    <pending> until its status has one) and spec.externalIPs."""
    if svc.type == o.EXTERNAL_NAME:
        return svc.external_name
    shown = (svc.ingress if svc.type == o.LOAD_BALANCER else ()) + svc.external_ips
    if shown:
        return ",".join(shown)
    return "<pending>" if svc.type == o.LOAD_BALANCER else "<none>"


def _endpoints(cluster: Cluster, svc: o.Service) -> str:
    addrs = []
    for sl in cluster.service_slices(svc.namespace, svc.name):
        for ep in sl.endpoints:
            if not ep.ready:
                continue
            for a in ep.addresses:
                addrs.extend(hostport.join(a, p.port) for p in sl.ports) if sl.ports else addrs.append(a)
    return ",".join(addrs) or "<none>"


def render(kind: str, cluster: Cluster, namespace: Optional[str], config: Config) -> str:
    wide = namespace is None
    head = ["NAMESPACE"] if wide else []
    rows: list[list[str]] = []
    if kind == "services":
        rows.append(head + ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "DNS NAME"])
        for svc in sorted(cluster.services, key=lambda s: (s.namespace, s.name)):
            if namespace is not None and svc.namespace != namespace:
                continue
            ip = "None" if svc.headless else (",".join(svc.cluster_ips) or "<none>")
            rows.append(([svc.namespace] if wide else []) + [
                svc.name, svc.type, ip, _external_ip(svc), _ports(svc),
                f"{svc.name}.{svc.namespace}.svc.{config.zone}"])
    elif kind == "endpoints":
        rows.append(head + ["NAME", "ENDPOINTS"])
        for svc in sorted(cluster.services, key=lambda s: (s.namespace, s.name)):
            if svc.type == o.EXTERNAL_NAME or (namespace is not None
                                               and svc.namespace != namespace):
                continue
            rows.append(([svc.namespace] if wide else []) + [svc.name, _endpoints(cluster, svc)])
    else:
        rows.append(head + ["NAME", "READY", "STATUS", "IP", "HOSTNAME", "SUBDOMAIN"])
        for pod in sorted(cluster.pods, key=lambda p: (p.namespace, p.name)):
            if namespace is not None and pod.namespace != namespace:
                continue
            status = "Terminating" if pod.terminating else pod.phase
            rows.append(([pod.namespace] if wide else []) + [
                pod.name, "1/1" if pod.ready and pod.running else "0/1", status,
                ",".join(pod.ips) or "<none>", pod.hostname or "<none>",
                pod.subdomain or "<none>"])
    if len(rows) == 1:
        where = "any namespace" if wide else f"{namespace} namespace"
        return f"No resources found in {where}.\n"
    return _columns(rows)
