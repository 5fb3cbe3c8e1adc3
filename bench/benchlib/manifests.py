"""The cluster as manifest files: one file per namespace, with or without clusterIPs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from benchlib.cluster import Cluster


def namespace_yaml(ns: str, services: list, explicit_ips: bool) -> str:
    out = [f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"]
    for svc in services:
        doc = [f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {svc.name}\n"
               f"  namespace: {ns}\nspec:\n"]
        if svc.kind == "ExternalName":
            doc.append(f"  type: ExternalName\n  externalName: {svc.external}\n")
        else:
            if svc.kind == "Headless":
                doc.append("  clusterIP: None\n")
            elif explicit_ips:
                doc.append(f"  clusterIP: {svc.ip}\n")
            doc.append(f"  selector:\n    app: {svc.name}\n  ports:\n")
            for pname, port in svc.ports:
                doc.append(f"  - name: {pname}\n    port: {port}\n    protocol: TCP\n")
        out.append("".join(doc))
        if svc.kind == "Headless":
            sl = [f"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
                  f"  name: {svc.name}-x7k2p\n  namespace: {ns}\n  labels:\n"
                  f"    kubernetes.io/service-name: {svc.name}\naddressType: IPv4\nports:\n"]
            for pname, port in svc.ports:
                sl.append(f"- name: {pname}\n  port: {port}\n  protocol: TCP\n")
            sl.append("endpoints:\n")
            for j, ip in enumerate(svc.endpoints):
                sl.append(f"- addresses: [\"{ip}\"]\n  conditions:\n    ready: true\n"
                          f"  targetRef:\n    kind: Pod\n    name: {svc.name}-{j}\n")
            out.append("".join(sl))
    return "---\n".join(out)


def write_manifests(cluster: Cluster, folder: Path, explicit_ips: bool) -> None:
    folder.mkdir(parents=True)
    for ns in cluster.namespaces:
        (folder / f"{ns}.yaml").write_text(namespace_yaml(ns, cluster.by_ns[ns], explicit_ips))


def write_one_namespace(cluster: Cluster, folder: Path, ns: str, explicit_ips: bool,
                        extra: Optional[list] = None) -> None:
    """Rewrite one namespace file as an editor would: a temp file, then a rename."""
    text = namespace_yaml(ns, cluster.by_ns[ns] + (extra or []), explicit_ips)
    tmp = folder / f".{ns}.yaml.tmp"
    tmp.write_text(text)
    os.replace(tmp, folder / f"{ns}.yaml")
