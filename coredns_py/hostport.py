"""``host:port`` text: the one place an address and a port are joined.

An IPv6 address contains colons, so next to a port it goes in brackets
(``[::1]:53``), as URLs (RFC 3986) and Go's ``net.JoinHostPort`` write it;
every other host is written as it is (``127.0.0.1:53``).  Listen addresses,
upstreams, metrics labels, the query log, ``get endpoints`` and the
kubelet's ``*_PORT`` URLs all use this form.
"""

from __future__ import annotations


def bracket(host: str) -> str:
    """``[::1]`` for an IPv6 address, any other host unchanged."""
    return f"[{host}]" if ":" in host else host


def join(host: str, port: int | str) -> str:
    """``host:port``, with an IPv6 host in brackets (Go's net.JoinHostPort)."""
    return f"{bracket(host)}:{port}"
