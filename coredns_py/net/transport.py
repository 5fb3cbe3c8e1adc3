"""UDP and TCP listeners: thin asyncio adapters around the DNS core.

A transport is an adapter: bytes in, one call of the core, bytes out.  The
core is a plain callable (see :data:`Handler`) that receives the query wire,
the protocol name and the peer address, and returns the response wire or
``None`` for "send nothing" -- or, when the answer needs an upstream server,
an awaitable of those, which the transport runs as a task and whose result
it sends when done (other queries are answered meanwhile; over TCP answers
may then leave out of order, which RFC 7766 section 7 allows).  The core decides everything about DNS content,
truncation included (it is told the protocol); this module never parses a DNS
message.  Its only jobs are framing, binding sockets with clear errors, and
the resource limits a network server needs so that one client cannot take it
down.  Each limit is a named constant below with the reason for its value.

Errors raised by the handler (or by its awaitable) are logged and swallowed:
a hostile or broken packet costs that one query its answer, never the server.
"""

from __future__ import annotations

import asyncio
from typing import Optional

from coredns_py.net.handler import MAX_UDP_PENDING, Handler, PendingAnswers
from coredns_py.net.listen import TCP_BACKLOG, bind_pair
from coredns_py.net.tcp import (MAX_TCP_CONNECTIONS, TCP_IDLE_TIMEOUT, ConnectionRegistry,
                                TcpProtocol)
from coredns_py.net.udp import UdpProtocol, UdpSocket


class Listeners:
    """What :func:`start` returns: the bound addresses and a way to stop."""

    def __init__(self, registry: ConnectionRegistry):
        self.addresses: list[tuple[str, int]] = []
        self._registry = registry
        self._udp: list[tuple[asyncio.DatagramTransport, UdpProtocol]] = []
        self._servers: list[asyncio.Server] = []

    def close_nowait(self) -> None:
        """Stop accepting and receiving, close open TCP connections; the
        sockets are really closed a loop iteration later (see wait_closed)."""
        for server in self._servers:
            server.close()
        for transport, _ in self._udp:
            transport.close()
        self._registry.close_all()

    async def wait_closed(self) -> None:
        for server in self._servers:
            await server.wait_closed()
        for _, protocol in self._udp:
            await protocol.wait_closed()  # asyncio closes the socket a tick later
        await self._registry.wait_empty()

    async def close(self) -> None:
        """close_nowait(), then wait until every socket is closed."""
        self.close_nowait()
        await self.wait_closed()

    async def __aenter__(self) -> "Listeners":
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()


async def start(handler: Handler, listens: list[tuple[str, int]], *,
                tcp_idle_timeout: Optional[float] = TCP_IDLE_TIMEOUT,
                max_tcp_connections: int = MAX_TCP_CONNECTIONS,
                max_udp_pending: int = MAX_UDP_PENDING,
                loop: Optional[asyncio.AbstractEventLoop] = None) -> Listeners:
    """Serve ``handler`` over UDP and TCP on every ``(host, port)``.

    Port 0 picks a free port, the same for UDP and TCP of that address (see
    ``Listeners.addresses``).  On any failure everything already opened is
    closed and ListenError is raised.
    """
    loop = loop or asyncio.get_running_loop()
    registry = ConnectionRegistry(max_tcp_connections)
    listeners = Listeners(registry)

    pending = PendingAnswers(max_udp_pending)

    def tcp_factory() -> TcpProtocol:
        return TcpProtocol(handler, idle_timeout=tcp_idle_timeout, registry=registry)

    try:
        for host, port in listens:
            udp_sock, tcp_sock = bind_pair(host, port)
            try:
                protocol = UdpProtocol(handler, pending)
                listeners._udp.append((UdpSocket(loop, udp_sock, protocol), protocol))
            except BaseException:
                udp_sock.close()
                tcp_sock.close()
                raise
            try:
                server = await loop.create_server(tcp_factory, sock=tcp_sock, backlog=TCP_BACKLOG)
            except BaseException:
                tcp_sock.close()
                raise
            listeners._servers.append(server)
            listeners.addresses.append((host, udp_sock.getsockname()[1]))
    except BaseException:
        await listeners.close()
        raise
    return listeners
