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


def split(text: str) -> tuple[str, int]:
    """``(ip, port)`` of ``IP:PORT`` or ``[IPv6]:PORT``, the inverse of :func:`join`
    for a literal address and a port 1-65535; ValueError naming the problem."""
    import ipaddress
    s = text.strip()
    if s.startswith("["):
        host, bracket_end, rest = s[1:].partition("]")
        port = rest[1:] if bracket_end and rest.startswith(":") else ""
    else:
        host, _, port = s.rpartition(":")
        if ":" in host:
            raise ValueError(f"{text!r}: an IPv6 address goes in brackets, e.g. [fd00::1]:6443")
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"{text!r}: expected IP:PORT with a port 1-65535")
    try:
        return str(ipaddress.ip_address(host)), int(port)
    except ValueError:
        raise ValueError(f"{text!r}: {host!r} is not an IP address") from None
