"""The /etc/resolv.conf a pod gets with ``dnsPolicy: ClusterFirst``.

The kubelet (``pkg/kubelet/network/dns/dns.go``, ``GetPodDNS`` with
``podDNSCluster``) gives the container runtime three lists:

* servers: the cluster DNS address(es) (kubelet ``--cluster-dns``);
* searches: ``<ns>.svc.<zone> svc.<zone> <zone>`` (``generateSearchesForDNSClusterFirst``),
  followed by the node's own search domains, which a tool without a node
  cannot know and so leaves out;
* options: ``ndots:5`` (``defaultDNSOptions``).

The runtime writes the file.  containerd's CRI plugin (``parseDNSOptions``)
writes ``search``, then ``nameserver``, then ``options``, one line each with a
trailing newline; that is the layout produced here::

    search shop.svc.cluster.local svc.cluster.local cluster.local
    nameserver 10.96.0.10
    options ndots:5

The order of the lines does not change how a resolver reads the file.
"""

from __future__ import annotations

import ipaddress
import re

__all__ = ["check_namespace", "resolv_conf"]

# RFC 1123 label, as the API server validates namespace names.
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_MAX_LABEL = 63


def check_namespace(namespace: str) -> str:
    """Return ``namespace`` if it is a valid namespace name, else raise ValueError."""
    if not isinstance(namespace, str) or not namespace:
        raise ValueError(f"invalid namespace {namespace!r}: must not be empty")
    if len(namespace) > _MAX_LABEL or not _LABEL.fullmatch(namespace):
        raise ValueError(f"invalid namespace {namespace!r}: must be a DNS-1123 label "
                         "(at most 63 lower-case letters, digits and '-', starting and "
                         "ending with a letter or digit)")
    return namespace


def _check_zone(zone: str) -> str:
    if not isinstance(zone, str):
        raise ValueError(f"invalid cluster zone {zone!r}: expected a domain name")
    name = zone.rstrip(".").lower()
    labels = name.split(".")
    if not name or len(name) > 253 or any(
            len(label) > _MAX_LABEL or not _LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"invalid cluster zone {zone!r}: must be a DNS-1123 subdomain "
                         "such as cluster.local")
    return name


def resolv_conf(namespace: str, nameserver: str, zone: str = "cluster.local",
                ndots: int = 5) -> str:
    """The resolv.conf of a ClusterFirst pod in ``namespace``.

    ``nameserver`` is the cluster DNS address (an IPv4 or IPv6 address, written
    as given); ``zone`` the cluster domain (a trailing dot is dropped, case is
    folded).  Raises ValueError, with the offending value named, for an invalid
    namespace, nameserver, zone or ndots.
    """
    check_namespace(namespace)
    if not isinstance(nameserver, str):
        raise ValueError(f"invalid nameserver {nameserver!r}: expected an IP address")
    try:
        ipaddress.ip_address(nameserver)
    except ValueError:
        raise ValueError(f"invalid nameserver {nameserver!r}: not an IPv4 or IPv6 "
                         "address") from None
    zone = _check_zone(zone)
    if isinstance(ndots, bool) or not isinstance(ndots, int) or ndots < 0:
        raise ValueError(f"invalid ndots {ndots!r}: expected a non-negative integer")
    search = f"{namespace}.svc.{zone} svc.{zone} {zone}"
    return f"search {search}\nnameserver {nameserver}\noptions ndots:{ndots}\n"
