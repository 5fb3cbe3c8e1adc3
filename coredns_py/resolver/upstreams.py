"""Where names outside our zones are sent: the upstream servers.

The config key ``upstream`` (and each ``forward`` domain's ``to``) lists
addresses (``IP``, ``IP:PORT``, ``[IPv6]:PORT``, optionally ``dns://`` in
front) and resolv.conf files, whose ``nameserver`` lines are read once at
start, as CoreDNS's ``forward . /etc/resolv.conf`` does.  The default is the
host's ``/etc/resolv.conf``.  ``tls://IP[:PORT]`` is DNS over TLS (RFC 7858,
port 853), as in CoreDNS; ``tls://IP%NAME[:PORT]`` names the certificate
to expect from that one server (CoreDNS's per-endpoint server name).

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
DOT_PORT = 853  # DNS over TLS (RFC 7858)
TLS_SCHEME = "tls://"
DNS_SCHEME = "dns://"

# CoreDNS's forward plugin accepts at most 15 upstreams; beyond a handful a
# failover chain is slower than the client's own timeout anyway.
MAX_UPSTREAMS = 15


@dataclass(frozen=True)
class Upstream:
    host: str  # an IP literal, normalized (no brackets)
    port: int = DNS_PORT
    tls: bool = False  # DNS over TLS
    server_name: str = ""  # the certificate's name for this one server (tls://IP%NAME)

    def __str__(self) -> str:
        if not self.tls:
            return hostport.join(self.host, self.port)
        name = f"%{self.server_name}" if self.server_name else ""
        return f"{TLS_SCHEME}{hostport.bracket(self.host)}{name}:{self.port}"


def is_file_entry(text: str) -> bool:
    """An ``upstream`` entry naming a resolv.conf file rather than an address."""
    return text.startswith("/")


def parse_address(text: str) -> Upstream:
    """``IP``, ``IP:PORT``, ``[IPv6]`` or ``[IPv6]:PORT``, with ``dns://`` or
    ``tls://`` in front (``tls://IP%NAME:PORT`` too); ValueError otherwise."""
    s = text.strip()
    tls = s.lower().startswith(TLS_SCHEME)
    if tls or s.lower().startswith(DNS_SCHEME):
        s = s[len(TLS_SCHEME if tls else DNS_SCHEME):]
    server_name = ""
    if tls and "%" in s:
        # tls://9.9.9.9%dns.quad9.net:853 -- the name ends at the port's colon
        # (an IPv6 address is in brackets, before the %).
        s, rest = s.split("%", 1)
        server_name, colon, port = rest.partition(":")
        s = s + (colon + port if colon else "")
        if not server_name:
            raise ValueError(f"{text!r}: empty server name after '%'")
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
    port = DOT_PORT if tls else DNS_PORT
    if port_text:
        if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
            raise ValueError(f"{text!r}: port {port_text!r} is not 1..65535")
        port = int(port_text)
    return Upstream(str(ip), port, tls, server_name.lower().rstrip("."))


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
    if upstream.tls:
        return False  # we do not serve DNS over TLS
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


def resolve(entries: Sequence[str], listens: Iterable[tuple[str, int]], what: str = "upstream"
            ) -> tuple[list[Upstream], list[str]]:
    """The upstream servers for the config's ``upstream`` entries (or a
    ``forward`` domain's ``to``; ``what`` names it in the warnings).

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
                warnings.append(f"{what} {entry}: cannot read it: {exc.strerror or exc}")
                continue
            if not found:
                warnings.append(f"{what} {entry}: no usable nameserver line")
            where = f" (from {entry})"
        else:
            found = [parse_address(entry)]
            where = ""
        for up in found:
            if is_ours(up, listens):
                warnings.append(f"{what} {up}{where}: not used, it is this server's own "
                                "listen address (queries would loop)")
            elif up not in out:
                out.append(up)
    if len(out) > MAX_UPSTREAMS:
        warnings.append(f"{what}: using the first {MAX_UPSTREAMS} of {len(out)} servers")
        out = out[:MAX_UPSTREAMS]
    return out, warnings
