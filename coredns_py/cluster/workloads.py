"""The workload controllers: the pods a Deployment, ReplicaSet, StatefulSet or
DaemonSet starts, named as a cluster names them."""

from __future__ import annotations

from coredns_py.source import objects as o


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
            name = f"{rs}-{o.safe_hash(f'{wl.namespace}/{rs}/{i}', 5)}"
        else:
            name = f"{wl.name}-{o.safe_hash(f'{wl.namespace}/{wl.name}/{wl.template_hash}/{i}', 5)}"
        pods.append(o.Pod(wl.namespace, name, labels=wl.template_labels, hostname=hostname,
                          subdomain=subdomain, ports=wl.ports, owner=f"{wl.kind}/{wl.name}",
                          origin=wl.origin))
    return pods
