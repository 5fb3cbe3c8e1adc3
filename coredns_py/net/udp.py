"""DNS over UDP: one datagram in, one handler call, at most one datagram out.

:class:`UdpSocket` is the socket on the event loop (read in batches, with
one system call per batch where libc has recvmmsg and sendmmsg, else one
per datagram); :class:`UdpProtocol` is the adapter between it and the
handler.  An answer the handler gives later (an awaitable) is sent
when it is ready, within the server-wide cap of
:class:`~coredns_py.net.handler.PendingAnswers`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
from typing import Optional

from coredns_py.net import mmsg
from coredns_py.net.handler import Handler, PendingAnswers, awaitable, outcome
from coredns_py.zone.wire import MAX_MESSAGE

log = logging.getLogger("coredns_py.transport")

# Datagrams read per wake-up of the event loop.  Under load several queries
# wait in the socket at once; reading them in one go saves a trip through
# the event loop (an epoll call and its Python bookkeeping) for each, and
# with batched system calls one recvmmsg and one sendmmsg per batch.
# Measured at saturation (server CPU time / answers, 10k Services, the
# benchmark's mix, batched calls): 5.3 us per answer with batches of 16,
# 4.5 us with 32, 4.2-4.3 us with 64, 128 or 256.  The bound keeps TCP
# clients, timers and upstream answers served while a UDP flood lasts: 64
# prepared answers take about 0.2 ms.
UDP_BATCH = 64

# Whether sockets read and answer a batch in one system call each
# (recvmmsg/sendmmsg through libc, net/mmsg.py) where libc has them; else
# one recvfrom and one sendto per datagram.  Measured at saturation
# (bench/udp_batch.py, 10k Services, batches of 32): 4.9-5.6 us of server
# CPU per answer against 6.0-7.1 us, the kernel's share (system time) 2.0
# against 2.5 us.
BATCHED = mmsg.available()


# Answers queued when the kernel's UDP send buffer is full.  UDP is lossy
# anyway and clients retry, so past this we drop answers rather than grow
# memory under a flood.
UDP_MAX_WRITE_BUFFER = 1024 * 1024


class UdpSocket(asyncio.DatagramTransport):
    """A UDP socket served on the event loop, read in batches (UDP_BATCH).

    asyncio's own datagram transport reads one datagram per trip through
    the event loop, which at saturation costs more than answering from the
    answer cache.  This one drains the socket on each wake-up, and sends
    straight from the socket, queueing (up to UDP_MAX_WRITE_BUFFER, enforced
    by the protocol) only when the kernel's send buffer is full.  It speaks
    to its protocol exactly as asyncio's does; a protocol that takes
    datagrams in batches (``datagrams_received``, as UdpProtocol does) gets
    each batch whole, read by one recvmmsg, and its answers go back by one
    sendmmsg (BATCHED).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 protocol: asyncio.DatagramProtocol):
        super().__init__({"socket": sock, "sockname": sock.getsockname()})
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._queue: collections.deque = collections.deque()
        self._queued = 0
        self._closing = False
        # Batched system calls (net/mmsg.py), for a protocol that takes
        # datagrams in batches; None: one system call per datagram.
        self._batch = (mmsg.make(sock, UDP_BATCH)
                       if BATCHED and hasattr(protocol, "datagrams_received") else None)
        sock.setblocking(False)
        protocol.connection_made(self)
        loop.add_reader(self._fd, self._read_ready if self._batch is None else self._read_batch)

    def _read_ready(self) -> None:
        recvfrom = self._sock.recvfrom
        received = self._protocol.datagram_received
        for _ in range(UDP_BATCH):
            try:
                data, addr = recvfrom(MAX_MESSAGE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            received(data, addr)
            if self._closing:
                return

    def _read_batch(self) -> None:
        """One recvmmsg of up to UDP_BATCH datagrams, handed to the protocol
        together, and one sendmmsg of the answers it gave at once."""
        batch = self._batch
        try:
            n = batch.receive()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._protocol.error_received(exc)
            return
        peers = batch.peers(n)
        answers = self._protocol.datagrams_received(batch.datagrams(n), peers)
        if not answers or self._closing:
            return
        batch.write(answers)
        first, count = 0, len(answers)
        while first < count:
            try:
                first += batch.send(first, count)
            except InterruptedError:
                continue
            except BlockingIOError:
                # The kernel's send buffer is full: the rest waits in the queue.
                for i, data in answers[first:]:
                    self._queue.append((data, peers[i]))
                    self._queued += len(data)
                self._loop.add_writer(self._fd, self._write_ready)
                return
            except OSError as exc:
                self._protocol.error_received(exc)
                first += 1  # that answer is lost, as with sendto; the rest go

    def sendto(self, data, addr=None) -> None:
        if self._closing:
            return
        if not self._queue:
            try:
                self._sock.sendto(data, addr)
                return
            except (BlockingIOError, InterruptedError):
                self._loop.add_writer(self._fd, self._write_ready)
            except OSError as exc:
                self._protocol.error_received(exc)
                return
        self._queue.append((bytes(data), addr))
        self._queued += len(data)

    def _write_ready(self) -> None:
        while self._queue:
            data, addr = self._queue[0]
            try:
                self._sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._protocol.error_received(exc)
            self._queue.popleft()
            self._queued -= len(data)
        self._loop.remove_writer(self._fd)

    def get_write_buffer_size(self) -> int:
        return self._queued

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Stop reading; answers still queued are dropped (UDP: clients retry)."""
        if self._closing:
            return
        self._closing = True
        self._loop.remove_reader(self._fd)
        if self._queue:
            self._loop.remove_writer(self._fd)
            self._queue.clear()
            self._queued = 0
        # Like asyncio: the protocol hears of it on the next loop iteration.
        self._loop.call_soon(self._finish)

    def abort(self) -> None:
        self.close()

    def _finish(self) -> None:
        self._sock.close()
        self._protocol.connection_lost(None)


class UdpProtocol(asyncio.DatagramProtocol):
    """One datagram in, one handler call, at most one datagram out."""

    def __init__(self, handler: Handler, pending: Optional[PendingAnswers] = None):
        self._handler = handler
        self._pending = pending
        self.transport: Optional[asyncio.DatagramTransport] = None
        self._lost = asyncio.Event()
        self._tasks: set[asyncio.Future] = set()  # this socket's share of pending

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.transport = None
        for task in list(self._tasks):
            task.cancel()  # nobody to send the answers to
        self._lost.set()

    async def wait_closed(self) -> None:
        """Wait until the socket is really closed (the port is free again)."""
        await self._lost.wait()

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            response = self._handler(data, "udp", addr)
        except Exception:
            # Whatever the packet was, the server keeps serving.
            log.exception("handler failed on UDP query from %s", addr)
            return
        if type(response) is bytes:
            self._send(response, addr)
        elif response is not None:
            self._answered(response, addr)

    def datagrams_received(self, datagrams: list, peers: list) -> list:
        """A batch of datagrams and their senders (UdpSocket with batched
        system calls): the answers given at once, as (index, bytes), for the
        transport to send together.  Answers given later, and every answer
        while the transport is queueing (the kernel's send buffer was full),
        go out one by one as from datagram_received."""
        if self.transport.get_write_buffer_size():
            for data, addr in zip(datagrams, peers):
                self.datagram_received(data, addr)
            return []
        handler = self._handler
        answers = []
        for i, data in enumerate(datagrams):
            addr = peers[i]
            try:
                response = handler(data, "udp", addr)
            except Exception:
                log.exception("handler failed on UDP query from %s", addr)
                continue
            if type(response) is bytes:
                answers.append((i, response))
            elif response is not None:
                self._answered(response, addr)
        return answers

    def _answered(self, response, addr) -> None:
        """A handler's answer that is not bytes now: later, or a bytearray."""
        if isinstance(response, bytearray):
            self._send(response, addr)
        elif awaitable(response, addr):
            self._later(response, addr)

    def _later(self, result, addr) -> None:
        if self._pending is None:
            self._pending = PendingAnswers()
        task = self._pending.admit(result)
        if task is None:
            return
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(t, addr))

    def _done(self, task: asyncio.Future, addr) -> None:
        self._tasks.discard(task)
        response = outcome(task, addr)
        if response is not None and self.transport is not None:
            self._send(response, addr)

    def _send(self, response: bytes, addr) -> None:
        if self.transport.get_write_buffer_size() > UDP_MAX_WRITE_BUFFER:
            log.debug("UDP send queue full: dropping answer to %s", addr)
            return
        self.transport.sendto(response, addr)

    def error_received(self, exc: Exception) -> None:
        # An ICMP "port unreachable" from a client that left comes back as
        # ConnectionRefusedError on the next socket call: normal on a UDP
        # server, nothing to do.  Other errors (e.g. an oversized answer)
        # are worth a line but never stop the server.
        if isinstance(exc, ConnectionRefusedError):
            return
        log.warning("UDP socket error: %s", exc)
