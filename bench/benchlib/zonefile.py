"""The cluster as a zone file for knotd: the records the kubernetes plugin answers."""

from __future__ import annotations

from benchlib.cluster import TTL, ZONE, Cluster, dashed


def zone_text(cluster: Cluster) -> str:
    """The same records as the kubernetes plugin answers for the queried names."""
    lines = [f"$ORIGIN {ZONE}.", f"$TTL {TTL}",
             f"@ {TTL} IN SOA ns.dns.{ZONE}. hostmaster.{ZONE}. 1 7200 1800 86400 {TTL}",
             f"@ IN NS ns.dns.{ZONE}.", "ns.dns IN A 127.0.0.1"]
    for svc in cluster.services:
        rel = f"{svc.name}.{svc.namespace}.svc"
        if svc.kind == "ExternalName":
            lines.append(f"{rel} IN CNAME {svc.external}.")
        elif svc.kind == "ClusterIP":
            lines.append(f"{rel} IN A {svc.ip}")
            # One SRV per port, weight 100 / number of (ip, port) candidates.
            weight = 100 // len(svc.ports)
            for _pname, port in svc.ports:
                lines.append(f"{rel} IN SRV 0 {weight} {port} {svc.fqdn}.")
        else:
            weight = max(1, 100 // (len(svc.endpoints) * len(svc.ports)))
            for ip in svc.endpoints:
                lines.append(f"{rel} IN A {ip}")
                lines.append(f"{dashed(ip)}.{rel} IN A {ip}")
                for _pname, port in svc.ports:
                    lines.append(f"{rel} IN SRV 0 {weight} {port} {dashed(ip)}.{svc.fqdn}.")
    return "\n".join(lines) + "\n"
