"""Which clients may recurse: the networks whose queries may go upstream.

A server that forwards any name for anyone is an open resolver, a tool for
reflection attacks (a small query with a forged source, a large answer sent
to the victim).  So only clients in the configured networks (config key
``allow_recursion``) get names outside our zones forwarded; every other
client gets what the server says without an upstream: REFUSED for a foreign
name, the bare CNAME for an ExternalName.  Cluster names are answered for
everyone, as CoreDNS answers them.

The default is what a container runtime hands out: loopback, the RFC 1918
ranges (docker's bridges live in 172.16.0.0/12, kind/minikube networks in
172.16/12 and 192.168/16, pods and VPNs in 10/8) and IPv6 unique local
addresses (RFC 4193).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Iterable, Optional, Union

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

DEFAULT_NETWORKS = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12",
                    "192.168.0.0/16", "fc00::/7")

# Distinct client addresses whose verdict is remembered: a busy server sees a
# few hundred clients; past this the oldest are recomputed (a microsecond each).
_VERDICT_CACHE = 4096


def _client_ip(peer) -> Optional[ipaddress._BaseAddress]:
    """The client address of a transport peer tuple, or None when it has none."""
    if not peer:
        return None
    host = peer[0] if isinstance(peer, (tuple, list)) else peer
    if not isinstance(host, str):
        return None
    host = host.split("%", 1)[0]  # fe80::1%eth0: the scope does not matter here
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:10.1.2.3 on a dual-stack socket is 10.1.2.3
    return ip


class Acl:
    """``allows(peer)``: may this client have its query sent upstream?"""

    def __init__(self, networks: Iterable[str] = DEFAULT_NETWORKS):
        self.networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in networks)
        self._allows_host = lru_cache(maxsize=_VERDICT_CACHE)(self._decide)

    def _decide(self, host: str) -> bool:
        ip = _client_ip((host,))
        return ip is not None and any(ip in net for net in self.networks)

    def allows(self, peer) -> bool:
        host = peer[0] if isinstance(peer, (tuple, list)) and peer else peer
        if not isinstance(host, str):
            return False
        return self._allows_host(host)

    @property
    def open(self) -> bool:
        """True when every address may recurse (0.0.0.0/0 or ::/0 listed)."""
        return any(net.prefixlen == 0 for net in self.networks)

    def describe(self) -> str:
        return ", ".join(str(n) for n in self.networks) or "no client"
