"""DNS over TCP: 2-byte length-prefixed messages on a connection (RFC 1035
4.2.2, RFC 7766).

:class:`TcpProtocol` is the adapter between one connection and the handler,
with the limits that keep one client from taking the server down (idle
timeout, unanswered bytes, answers pending); the bytes themselves are cut
into messages by :class:`~coredns_py.net.framing.FrameDecoder`.
:class:`ConnectionRegistry` holds a server's live connections, caps their
number and closes them at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Optional

from coredns_py.errors import FramingError
from coredns_py.net.framing import MAX_TCP_BUFFER, FrameDecoder, encode
from coredns_py.net.handler import Handler, awaitable, outcome
from coredns_py.zone.wire import MAX_MESSAGE

log = logging.getLogger("coredns_py.transport")

# Close a TCP connection after this long without a complete query.  RFC 7766
# section 6.2.3 recommends a server idle period "on the order of seconds" so
# idle clients cannot pile up connections; 10 s is also CoreDNS's TCP idle
# timeout.  Counted from the last *complete* message, so a client trickling
# one byte at a time cannot hold a connection open forever.
TCP_IDLE_TIMEOUT = 10.0

# Open TCP connections across the whole server (all listen addresses).  Each
# one holds a file descriptor and the default soft limit is often 1024, so
# beyond this we close new connections at once rather than run out of
# descriptors (which would also break UDP, file watching, logging...).
MAX_TCP_CONNECTIONS = 1000

# Answers being worked out at once per TCP connection.  RFC 7766 section 6.2.1.1
# lets a client pipeline queries and have them answered out of order; at
# this many outstanding we stop reading that connection until one is sent,
# so one client cannot queue unbounded work (each answer may take up to
# 64 KiB).  Stub resolvers pipeline a handful; 32 leaves room for bulk tools.
MAX_TCP_PENDING = 32


class ConnectionRegistry:
    """Live TCP connections of one server: enforces the cap, lets close() reach them."""

    def __init__(self, limit: int = MAX_TCP_CONNECTIONS):
        self.limit = limit
        self.live: set[TcpProtocol] = set()
        self._empty = asyncio.Event()
        self._empty.set()
        self._warned = False

    def admit(self, proto: "TcpProtocol") -> bool:
        if len(self.live) >= self.limit:
            if not self._warned:  # once per overload episode, not per connection
                log.warning("%d TCP connections open: refusing new ones", len(self.live))
                self._warned = True
            return False
        self._warned = False
        self.live.add(proto)
        self._empty.clear()
        return True

    def release(self, proto: "TcpProtocol") -> None:
        self.live.discard(proto)
        if not self.live:
            self._empty.set()

    def close_all(self) -> None:
        for proto in list(self.live):
            proto.close()

    async def wait_empty(self) -> None:
        await self._empty.wait()


class TcpProtocol(asyncio.Protocol):
    """DNS over TCP: 2-byte big-endian length prefix per message (RFC 1035
    4.2.2, RFC 7766 section 8).

    Messages may arrive split across any number of reads, or several in one
    read (pipelining); each complete one is answered at once, in order, and
    the connection stays open for more until the client closes it, sends a
    zero-length frame, exceeds a limit or stays idle too long.  An answer the
    handler must wait for (an awaitable) is sent when it is ready, possibly
    after later ones; at ``max_pending`` such answers we stop reading the
    connection until one is sent.  ``idle_timeout=None`` disables the idle
    timer.
    """

    def __init__(self, handler: Handler, *, idle_timeout: Optional[float] = TCP_IDLE_TIMEOUT,
                 max_buffer: int = MAX_TCP_BUFFER,
                 registry: Optional[ConnectionRegistry] = None,
                 max_pending: int = MAX_TCP_PENDING):
        self._handler = handler
        self._idle_timeout = idle_timeout
        self._registry = registry
        self._max_pending = max_pending
        self._tasks: set[asyncio.Future] = set()  # answers being worked out
        self._reading = True
        self.transport: Optional[asyncio.Transport] = None
        self._peer = None
        self._frames = FrameDecoder(max_buffer)  # bytes received, not yet answered
        self._closing = False
        self._write_paused = False
        self._eof = False
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._timer: Optional[asyncio.TimerHandle] = None
        self._last_message = 0.0

    # asyncio callbacks

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._peer = transport.get_extra_info("peername")
        if self._registry is not None and not self._registry.admit(self):
            self._closing = True
            transport.abort()  # nothing to flush; free the descriptor now
            return
        if self._idle_timeout is not None:
            self._loop = asyncio.get_running_loop()
            self._last_message = self._loop.time()
            self._timer = self._loop.call_later(self._idle_timeout, self._check_idle)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._frames.feed(data)
        self._process()
        if not self._closing and self._frames.over_limit():
            log.warning("closing TCP connection from %s: over %d unanswered bytes",
                        self._peer, self._frames.limit)
            self._close(abort=True)

    def eof_received(self) -> bool:
        # The client half-closed; queries already complete are answered
        # (maybe later, if writing is paused) and then we close.
        self._eof = True
        self._process()
        return True  # keep the transport: _process closes it when done

    def pause_writing(self) -> None:
        # The client is not reading its answers: stop reading its queries so
        # neither our write buffer nor our read buffer grows.
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if not self._closing:
            self._update_reading()
            self._process()

    def connection_lost(self, exc) -> None:
        self._closing = True
        self._cancel_pending()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._registry is not None:
            self._registry.release(self)

    # our side

    def close(self) -> None:
        """Close the connection (used at server shutdown)."""
        self._close(abort=bool(self.transport and self.transport.get_write_buffer_size()))

    def _close(self, abort: bool = False) -> None:
        if self._closing:
            return
        self._closing = True
        self._frames.clear()
        self._cancel_pending()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # close() flushes pending answers first; abort() when the client is
        # not reading them, or close() could wait forever.
        if abort:
            self.transport.abort()
        else:
            self.transport.close()

    def _cancel_pending(self) -> None:
        for task in list(self._tasks):
            task.cancel()  # the client is gone: its answers go nowhere

    def _update_reading(self) -> None:
        """Read while the client reads its answers and we are not at the
        pending cap; otherwise let TCP flow control hold the client back."""
        if self._closing:
            return
        want = not self._write_paused and len(self._tasks) < self._max_pending
        if want and not self._reading:
            self.transport.resume_reading()
        elif not want and self._reading:
            self.transport.pause_reading()
        self._reading = want

    def _process(self) -> None:
        while (not self._closing and not self._write_paused
               and len(self._tasks) < self._max_pending):
            try:
                query = self._frames.next_message()
            except FramingError as exc:
                log.info("closing TCP connection from %s: %s", self._peer, exc)
                self._close()
                return
            if query is None:
                break  # partial frame: wait for more data
            if self._loop is not None:
                self._last_message = self._loop.time()
            self._answer(query)
        if self._closing:
            return
        self._update_reading()
        # At EOF, close once every complete query has been answered (a
        # trailing partial frame can never complete).
        if (self._eof and not self._write_paused and not self._tasks
                and not self._frames.has_complete_frame()):
            self._close()

    def _answer(self, query: bytes) -> None:
        try:
            response = self._handler(query, "tcp", self._peer)
        except Exception:
            log.exception("handler failed on TCP query from %s", self._peer)
            return
        if response is None:
            return
        if not isinstance(response, (bytes, bytearray)):
            if not awaitable(response, self._peer):
                return
            task = asyncio.ensure_future(response)
            self._tasks.add(task)
            task.add_done_callback(self._task_done)
            return
        self._write(response)

    def _task_done(self, task: asyncio.Future) -> None:
        self._tasks.discard(task)
        response = outcome(task, self._peer)
        if self._closing:
            return
        if response is not None:
            self._write(response)
        if self._loop is not None:
            self._last_message = self._loop.time()  # an answer is activity too
        self._process()  # reads again below the cap; closes after EOF when done

    def _write(self, response: bytes) -> None:
        if len(response) > MAX_MESSAGE:
            log.error("dropping %d-byte answer to %s: larger than a TCP frame can carry",
                      len(response), self._peer)
            return
        self.transport.write(encode(response))

    def _check_idle(self) -> None:
        # Re-arm for the remaining time instead of rescheduling on every
        # message: one timer per connection however fast queries arrive.
        self._timer = None
        if self._closing:
            return
        remaining = self._last_message + self._idle_timeout - self._loop.time()
        if self._tasks:
            remaining = max(remaining, self._idle_timeout)  # waiting for us is not idle
        if remaining > 0:
            self._timer = self._loop.call_later(remaining, self._check_idle)
            return
        log.debug("closing idle TCP connection from %s", self._peer)
        self._close(abort=bool(self.transport.get_write_buffer_size()))
