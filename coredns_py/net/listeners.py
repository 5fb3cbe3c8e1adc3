"""The listeners of one server: every listen address served over UDP and
TCP, started together and stopped together.

:func:`start` binds a UDP and a TCP socket per address (the same port for
both, also when port 0 picks one) and serves the handler on them; on any
failure it closes what it had opened and raises ListenError.  The
:class:`Listeners` it returns say which addresses were bound and close them
all, open TCP connections included.  Server-wide limits are shared here: one
connection registry (MAX_TCP_CONNECTIONS) and one set of pending UDP
answers (MAX_UDP_PENDING) across every address.
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
        self.handler: Optional[Handler] = None  # what new TCP connections are given
        self._registry = registry
        self._udp: list[tuple[asyncio.DatagramTransport, UdpProtocol]] = []
        self._servers: list[asyncio.Server] = []

    def replace_handler(self, handler: Handler) -> None:
        """Answer with ``handler`` from now on, on every socket and every open
        TCP connection (a config reload that changes the stages)."""
        self.handler = handler
        for _transport, protocol in self._udp:
            protocol._handler = handler
        for connection in list(self._registry.live):
            connection._handler = handler

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
    listeners.handler = handler

    pending = PendingAnswers(max_udp_pending)

    def tcp_factory() -> TcpProtocol:
        return TcpProtocol(listeners.handler, idle_timeout=tcp_idle_timeout, registry=registry)

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
