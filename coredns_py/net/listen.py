"""Listen addresses: the text a user writes (``--listen``, ``--http``) and
the sockets bound to it.

An address is parsed before anything is opened, so a typo is a usage error
with the text named.  Binding gives each DNS address a UDP and a TCP socket
on the same port and turns every way that can fail into one ListenError
line a user can act on ("address already in use", "permission denied ...").
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from typing import Optional

from coredns_py import hostport
from coredns_py.errors import ListenError, os_reason

log = logging.getLogger("coredns_py.transport")

# listen() backlog: connections the kernel queues before we accept them.
TCP_BACKLOG = 128

# Kernel send buffer of each TCP connection (set on the listening socket;
# Linux gives accepted sockets the listener's, and doubles the value for its
# own bookkeeping).  Left to autotuning it grows to 4 MB (tcp_wmem) for a
# client that does not read, and stays pinned until the connection is gone
# (measured: 750 MB over a few hundred slow readers).  32 KiB is half a
# maximum-size answer; the rest waits in asyncio's buffer, which stops us
# reading the client's queries (flow control) until it reads.
TCP_SEND_BUFFER = 32 * 1024
# And its receive buffer: while a client does not read its answers we stop
# reading its queries, and they pile up in the kernel, up to 6 MB each with
# autotuning (tcp_rmem).  64 KiB holds well over a thousand pipelined
# queries, more than we answer before reading again.
TCP_RECEIVE_BUFFER = 64 * 1024

# Kernel receive buffer of each UDP socket, asked for by default (config
# key udp_receive_buffer).  Linux's default, 208 KB, holds a few hundred
# queries: at 12k queries/s it dropped 108,540 packets while Python was
# busy.  4 MiB (Unbound's advice for busy servers) holds a few thousand,
# a fraction of a second of a burst.  Beyond net.core.rmem_max only root
# (CAP_NET_ADMIN) gets it; what the kernel granted is logged at debug.
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024

# With port 0 the UDP socket picks a free port and TCP must bind the same
# one, which another program may hold for TCP only; then we try a new port.
PORT_ZERO_ATTEMPTS = 5


def parse_listen(text: str) -> tuple[str, int]:
    """Parse ``HOST:PORT``, ``[V6]:PORT`` or ``:PORT`` into ``(host, port)``.

    ``:PORT`` means all IPv4 interfaces (``0.0.0.0``).  The host must be an
    IP literal: a DNS server resolving its own listen address by name would
    depend on DNS to start.  Port 0 (any free port) is accepted.  Raises
    ValueError with a message naming the problem.
    """
    s = text.strip()
    if not s:
        raise ValueError("empty listen address, expected HOST:PORT")
    if s.startswith("["):
        end = s.find("]")
        if end < 0:
            raise ValueError(f"bad listen address {text!r}: missing ']'")
        host, rest = s[1:end], s[end + 1:]
        if not rest:
            raise ValueError(f"bad listen address {text!r}: missing port, expected [V6]:PORT")
        if not rest.startswith(":"):
            raise ValueError(f"bad listen address {text!r}: expected ':' after ']'")
        port_text = rest[1:]
        try:
            addr = ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"bad listen address {text!r}: {host!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = s.rpartition(":")
        if not sep:
            raise ValueError(f"bad listen address {text!r}: missing port, expected HOST:PORT")
        if ":" in host:
            raise ValueError(f"bad listen address {text!r}: put IPv6 addresses in brackets, e.g. [::1]:53")
        if not host:
            host = "0.0.0.0"
        try:
            addr = ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(
                f"bad listen address {text!r}: host {host!r} is not an IP address") from None
    if not port_text:
        raise ValueError(f"bad listen address {text!r}: missing port")
    if not (port_text.isascii() and port_text.isdigit()):
        raise ValueError(f"bad listen address {text!r}: port {port_text!r} is not a number")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"bad listen address {text!r}: port {port} out of range 0-65535")
    return str(addr), port


def set_receive_buffer(sock: socket.socket, size: int) -> int:
    """Ask for a ``size``-byte receive buffer, past net.core.rmem_max when
    allowed (SO_RCVBUFFORCE); return what the kernel granted."""
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    try:
        if force is None:
            raise PermissionError
        sock.setsockopt(socket.SOL_SOCKET, force, size)
    except OSError:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
        except OSError as exc:
            log.debug("cannot set a %d-byte receive buffer: %s", size, exc)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def bind(host: str, port: int, kind: int, receive_buffer: Optional[int] = None) -> socket.socket:
    """A bound (and for TCP listening) non-blocking socket, or ListenError.

    ``receive_buffer``: the UDP receive buffer to ask for (0 or None: the
    system's default)."""
    proto = "udp" if kind == socket.SOCK_DGRAM else "tcp"
    where = f"{hostport.join(host, port)}/{proto}"
    try:
        # Numeric only (no DNS lookup); also handles IPv6 scope ids.
        family, _, _, _, sockaddr = socket.getaddrinfo(
            host, port, type=kind, flags=socket.AI_NUMERICHOST | socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise ListenError(f"cannot listen on {where}: {exc.strerror}") from exc
    sock = socket.socket(family, kind)
    try:
        if family == socket.AF_INET6:
            # IPv6 only, so [::]:53 and 0.0.0.0:53 (or [::1] and 127.0.0.1)
            # can be listed side by side without one swallowing the other.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_STREAM:
            # Rebind at once after a restart despite TIME_WAIT connections.
            # Not SO_REUSEPORT: a second server on a busy port must fail.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, TCP_SEND_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, TCP_RECEIVE_BUFFER)
        elif receive_buffer:
            granted = set_receive_buffer(sock, receive_buffer)
            log.debug("UDP receive buffer on %s: asked for %d bytes, the kernel granted %d",
                      where, receive_buffer, granted)
        sock.bind(sockaddr)
        if kind == socket.SOCK_STREAM:
            sock.listen(TCP_BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {where}: {os_reason(exc)}", exc.errno) from exc
    return sock


def bind_pair(host: str, port: int, receive_buffer: Optional[int] = None
              ) -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets on the same host and port (a free one if port is 0)."""
    attempts = PORT_ZERO_ATTEMPTS if port == 0 else 1
    for attempt in range(attempts):
        udp = bind(host, port, socket.SOCK_DGRAM, receive_buffer)
        actual = udp.getsockname()[1]
        try:
            return udp, bind(host, actual, socket.SOCK_STREAM)
        except ListenError as exc:
            udp.close()
            if exc.errno != errno.EADDRINUSE or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")
