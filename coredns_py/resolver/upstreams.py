"""Where names outside our zones are sent: the upstream servers.

The config key ``upstream`` lists addresses (``IP``, ``IP:PORT``,
``[IPv6]:PORT``) and resolv.conf files, whose ``nameserver`` lines are read
once at start, as CoreDNS's ``forward . /etc/resolv.conf`` does.  The default
is the host's ``/etc/resolv.conf``.

An upstream that is this server itself would make every foreign query loop
until it times out, so any upstream equal to one of our listen addresses
(or, when we listen on 0.0.0.0 or ``::``, any address of this machine on our
port) is dropped with a warning.  ``127.0.0.53`` (systemd-resolved) in a dev
box's resolv.conf is fine as long as we do not listen there.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from coredns_py import hostport

DNS_PORT = 53

# CoreDNS's forward plugin accepts at most 15 upstreams; beyond a handful a
# failover chain is slower than the client's own timeout anyway.
MAX_UPSTREAMS = 15


@dataclass(frozen=True)
class Upstream:
    host: str  # an IP literal, normalized (no brackets)
    port: int = DNS_PORT

    def __str__(self) -> str:
        return hostport.join(self.host, self.port)


def is_file_entry(text: str) -> bool:
    """An ``upstream`` entry naming a resolv.conf file rather than an address."""
    return text.startswith("/")


def parse_address(text: str) -> Upstream:
    """``IP``, ``IP:PORT``, ``[IPv6]`` or ``[IPv6]:PORT``; ValueError otherwise."""
    s = text.strip()
    port_text = ""
    if s.startswith("["):
        end = s.find("]")
        if end < 0:
            raise ValueError(f"{text!r}: missing ']'")
        host, rest = s[1:end], s[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r}: expected ':PORT' after ']'")
            port_text = rest[1:] or "?"
    elif s.count(":") == 1:
        host, port_text = s.split(":")
        port_text = port_text or "?"
    else:
        host = s  # IPv4 or a bare IPv6 address
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: {host!r} is not an IP address "
                         "(an upstream is IP[:PORT], [IPv6]:PORT or an absolute path to a resolv.conf file)") from None
    if ip.is_unspecified:
        raise ValueError(f"{text!r}: {ip} is not a server address")
    port = DNS_PORT
    if port_text:
        if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
            raise ValueError(f"{text!r}: port {port_text!r} is not 1..65535")
        port = int(port_text)
    return Upstream(str(ip), port)


def read_resolv_conf(path: Path) -> list[Upstream]:
    """The ``nameserver`` lines of a resolv.conf file (port 53), in order.

    Comments (``#`` or ``;``) and other lines are ignored, as glibc does;
    a nameserver that is not an IP literal is skipped (glibc ignores it too).
    Raises OSError when the file cannot be read.
    """
    out = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            host = words[1].split("%", 1)[0]  # fe80::1%eth0: the scope needs an interface
            try:
                ip = ipaddress.ip_address(host)
            except ValueError:
                continue
            if not ip.is_unspecified and not ip.is_link_local:
                out.append(Upstream(str(ip)))
    return out


def _is_local_address(host: str) -> bool:
    """True when ``host`` is an address of this machine (we could bind it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


def is_ours(upstream: Upstream, listens: Iterable[tuple[str, int]]) -> bool:
    """Would a query to ``upstream`` come back to this server?"""
    up = ipaddress.ip_address(upstream.host)
    for host, port in listens:
        if port != upstream.port:
            continue
        try:
            ours = ipaddress.ip_address(host)
        except ValueError:
            continue
        if ours == up:
            return True
        if ours.is_unspecified and ours.version == up.version and _is_local_address(upstream.host):
            return True
    return False


def resolve(entries: Sequence[str], listens: Iterable[tuple[str, int]]
            ) -> tuple[list[Upstream], list[str]]:
    """The upstream servers for the config's ``upstream`` entries.

    Returns the servers (in order, without duplicates, never one of our own
    listen addresses, at most MAX_UPSTREAMS) and a list of warnings for the
    log (an unreadable resolv.conf, a file without nameservers, a loop).
    """
    listens = list(listens)
    out: list[Upstream] = []
    warnings: list[str] = []
    for entry in entries:
        if is_file_entry(entry):
            try:
                found = read_resolv_conf(Path(entry))
            except OSError as exc:
                warnings.append(f"upstream {entry}: cannot read it: {exc.strerror or exc}")
                continue
            if not found:
                warnings.append(f"upstream {entry}: no usable nameserver line")
            where = f" (from {entry})"
        else:
            found = [parse_address(entry)]
            where = ""
        for up in found:
            if is_ours(up, listens):
                warnings.append(f"upstream {up}{where}: not used, it is this server's own "
                                "listen address (queries would loop)")
            elif up not in out:
                out.append(up)
    if len(out) > MAX_UPSTREAMS:
        warnings.append(f"upstream: using the first {MAX_UPSTREAMS} of {len(out)} servers")
        out = out[:MAX_UPSTREAMS]
    return out, warnings
