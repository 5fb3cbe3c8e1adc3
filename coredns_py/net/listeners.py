"""The listeners of one server: every listen address served over UDP and
TCP, started together and stopped together.

:func:`start` binds a UDP and a TCP socket per address (the same port for
both, also when port 0 picks one) and serves the handler on them; on any
failure it closes what it had opened and raises ListenError.  The
:class:`Listeners` it returns say which addresses were bound and close them
all, open TCP connections included.  Server-wide limits are shared here: one
connection registry (MAX_TCP_CONNECTIONS, lowered to what the descriptor
limit allows) and one set of pending UDP answers (MAX_UDP_PENDING) across
every address; :meth:`Listeners.stats` counts what they shed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Optional

from coredns_py.net import descriptors
from coredns_py.net.accept import Acceptor
from coredns_py.net.handler import MAX_UDP_PENDING, Handler, PendingAnswers
from coredns_py.net.listen import UDP_RECEIVE_BUFFER, bind_pair
from coredns_py.net.connections import MAX_TCP_CONNECTIONS, ConnectionRegistry
from coredns_py.net.tcp import TCP_IDLE_TIMEOUT, TcpProtocol
from coredns_py.net.udp import UdpProtocol, UdpSocket

log = logging.getLogger("coredns_py.transport")


class Listeners:
    """What :func:`start` returns: the bound addresses and a way to stop."""

    def __init__(self, registry: ConnectionRegistry, pending: PendingAnswers):
        self.addresses: list[tuple[str, int]] = []
        self.handler: Optional[Handler] = None  # what new TCP connections are given
        self._registry = registry
        self._pending = pending
        self._udp: list[tuple[asyncio.DatagramTransport, UdpProtocol]] = []
        self._acceptors: list[Acceptor] = []
        self.udp_receive_buffer = 0  # bytes the kernel granted (the first socket's)

    def stats(self) -> dict:
        """What the listeners shed and closed, for the metrics (any thread)."""
        reg = self._registry
        return {"tcp_open": len(reg.live), "tcp_limit": reg.limit,
                "tcp_closed": dict(reg.closed), "tcp_refused": dict(reg.refused),
                "accept_errors": sum(a.errors for a in self._acceptors),
                "udp_shed": self._pending.shed,
                "udp_receive_buffer": self.udp_receive_buffer}

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
        for acceptor in self._acceptors:
            acceptor.close()
        for transport, _ in self._udp:
            transport.close()
        self._registry.close_all()

    async def wait_closed(self) -> None:
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
                max_tcp_connections: Optional[int] = None,
                max_udp_pending: int = MAX_UDP_PENDING,
                udp_receive_buffer: Optional[int] = UDP_RECEIVE_BUFFER,
                loop: Optional[asyncio.AbstractEventLoop] = None) -> Listeners:
    """Serve ``handler`` over UDP and TCP on every ``(host, port)``.

    Port 0 picks a free port, the same for UDP and TCP of that address (see
    ``Listeners.addresses``).  ``max_tcp_connections`` None: as many as the
    file-descriptor limit leaves room for, at most MAX_TCP_CONNECTIONS.
    On any failure everything already opened is closed and ListenError is
    raised.
    """
    loop = loop or asyncio.get_running_loop()
    if max_tcp_connections is None:
        max_tcp_connections = descriptors.tcp_connection_cap(MAX_TCP_CONNECTIONS)
        if max_tcp_connections < MAX_TCP_CONNECTIONS:
            log.info("at most %d TCP connections: the file-descriptor limit (ulimit -n) "
                     "leaves room for no more", max_tcp_connections)
    registry = ConnectionRegistry(max_tcp_connections)
    pending = PendingAnswers(max_udp_pending)
    listeners = Listeners(registry, pending)
    listeners.handler = handler

    def tcp_factory() -> TcpProtocol:
        return TcpProtocol(listeners.handler, idle_timeout=tcp_idle_timeout, registry=registry)

    try:
        for host, port in listens:
            udp_sock, tcp_sock = bind_pair(host, port, udp_receive_buffer)
            try:
                protocol = UdpProtocol(handler, pending)
                listeners._udp.append((UdpSocket(loop, udp_sock, protocol), protocol))
            except BaseException:
                udp_sock.close()
                tcp_sock.close()
                raise
            if not listeners.udp_receive_buffer:
                listeners.udp_receive_buffer = udp_sock.getsockopt(socket.SOL_SOCKET,
                                                                   socket.SO_RCVBUF)
            try:
                listeners._acceptors.append(Acceptor(loop, tcp_sock, tcp_factory))
            except BaseException:
                tcp_sock.close()
                raise
            listeners.addresses.append((host, udp_sock.getsockname()[1]))
    except BaseException:
        await listeners.close()
        raise
    return listeners
