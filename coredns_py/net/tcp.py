"""DNS over TCP: 2-byte length-prefixed messages on a connection (RFC 1035
4.2.2, RFC 7766).

:class:`TcpProtocol` is the adapter between one connection and the handler,
with the limits that keep one client from taking the server down (idle
timeout, unanswered bytes, answers pending, messages answered per turn of
the event loop); the bytes themselves are cut into messages by
:class:`~coredns_py.net.framing.FrameDecoder`, and the server's live
connections are held by :class:`~coredns_py.net.connections.ConnectionRegistry`.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import socket
import struct
import termios
from typing import Optional

from coredns_py.errors import FramingError
from coredns_py.net.connections import ConnectionRegistry
from coredns_py.net.framing import MAX_TCP_BUFFER, FrameDecoder, encode
from coredns_py.net.handler import Handler, Messages, awaitable, outcome
from coredns_py.zone.wire import MAX_MESSAGE

log = logging.getLogger("coredns_py.transport")

# Close a TCP connection after this long without a complete query.  RFC 7766
# section 6.2.3 recommends a server idle period "on the order of seconds" so
# idle clients cannot pile up connections; 10 s is also CoreDNS's TCP idle
# timeout.  Counted from the last *complete* message, so a client trickling
# one byte at a time cannot hold a connection open forever.
TCP_IDLE_TIMEOUT = 10.0

# Answers being worked out at once per TCP connection.  RFC 7766 section 6.2.1.1
# lets a client pipeline queries and have them answered out of order; at
# this many outstanding we stop reading that connection until one is sent,
# so one client cannot queue unbounded work (each answer may take up to
# 64 KiB).  Stub resolvers pipeline a handful; 32 leaves room for bulk tools.
MAX_TCP_PENDING = 32

# Messages answered from one connection per turn of the event loop; the rest
# wait for the next turn (reading stops meanwhile).  Without a bound one
# client pipelining thousands of queries in one write had them all
# answered before any UDP query or other connection got a turn (measured:
# 5,000 pipelined queries delayed UDP answers by up to 0.85 s).  32 cached
# answers take well under a millisecond, the same work as one UDP batch
# (net.udp.UDP_BATCH).
TCP_BATCH = 32

_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


def unsent(transport) -> int:
    """Bytes written to ``transport`` that the client has not yet
    acknowledged: asyncio's buffer plus the kernel's send queue."""
    queued = transport.get_write_buffer_size()
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            queued += struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ,
                                                     b"\0\0\0\0"))[0]
        except (OSError, ValueError):
            pass
    return queued


def reset(transport) -> None:
    """Close abortively: the kernel discards what is unsent and sends RST.

    A plain close (even asyncio's abort) leaves what the kernel still holds
    to be delivered: to a client that never reads, that is the whole send
    buffer, pinned for minutes after we gave up on it (measured: 750 MB over
    a few hundred slow readers).
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        except OSError:
            pass
    transport.abort()


class TcpProtocol(asyncio.Protocol):
    """DNS over TCP: 2-byte big-endian length prefix per message (RFC 1035
    4.2.2, RFC 7766 section 8).

    Messages may arrive split across any number of reads, or several in one
    read (pipelining); complete ones are answered in order, at most
    TCP_BATCH per turn of the event loop, and the connection stays open for
    more until the client closes it, sends a zero-length frame, exceeds a
    limit or stays idle too long.  An answer the handler must wait for (an
    awaitable) is sent when it is ready, possibly after later ones; at
    ``max_pending`` such answers we stop reading the connection until one is
    sent.  ``idle_timeout=None`` disables the idle timer.
    """

    def __init__(self, handler: Handler, *, idle_timeout: Optional[float] = TCP_IDLE_TIMEOUT,
                 max_buffer: int = MAX_TCP_BUFFER,
                 registry: Optional[ConnectionRegistry] = None,
                 max_pending: int = MAX_TCP_PENDING, batch: int = TCP_BATCH):
        self._handler = handler
        self._idle_timeout = idle_timeout
        self._registry = registry
        self._max_pending = max_pending
        self._batch = batch
        self._tasks: set[asyncio.Future] = set()  # answers being worked out
        self._reading = True
        self.transport: Optional[asyncio.Transport] = None
        self.peer = None
        self.source = None  # the client's address, without the port
        self._frames = FrameDecoder(max_buffer)  # bytes received, not yet answered
        self._closing = False
        self._write_paused = False
        self._eof = False
        self._more = False  # complete messages left for the next turn
        self._messages = None  # a multi-message answer being sent (handler.Messages)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._timer: Optional[asyncio.TimerHandle] = None
        self._last_message = 0.0

    # asyncio callbacks

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.peer = transport.get_extra_info("peername")
        self.source = self.peer[0] if self.peer else None
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None  # driven by hand (tests): no later turns, no timer
        if self._registry is not None and not self._registry.admit(self):
            self._closing = True
            reset(transport)  # nothing to flush; free the descriptor now
            return
        if self._idle_timeout is not None and self._loop is not None:
            self._last_message = self._loop.time()
            self._timer = self._loop.call_later(self._idle_timeout, self._check_idle)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._frames.feed(data)
        self._process()
        # The cap is on bytes held while we are not answering because the
        # client does not read (or waits on too many answers): when we only
        # wait for our next turn, reading is paused and one read is the most
        # that can arrive.
        if not self._closing and not self._more and self._frames.over_limit():
            log.warning("closing TCP connection from %s: over %d unanswered bytes",
                        self.peer, self._frames.limit)
            if self._registry is not None:
                self._registry.closed["flood"] += 1
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

    def idle(self) -> bool:
        """Nothing to do for this client: no query waiting or being answered,
        no answer unsent.  Such a connection may be closed to make room."""
        return (not self._closing and not self._tasks and not self._more
                and self._messages is None and not self._frames.has_complete_frame()
                and (self.transport is None or unsent(self.transport) == 0))

    def close(self) -> None:
        """Close the connection (at shutdown, or to make room)."""
        self._close(abort=bool(self.transport and unsent(self.transport)))

    def _close(self, abort: bool = False) -> None:
        if self._closing:
            return
        self._closing = True
        self._frames.clear()
        self._cancel_pending()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # close() flushes pending answers first; a reset when the client is
        # not reading them, or close() could wait forever and the kernel
        # would keep them after that.
        if abort:
            reset(self.transport)
        else:
            self.transport.close()

    def _cancel_pending(self) -> None:
        for task in list(self._tasks):
            task.cancel()  # the client is gone: its answers go nowhere

    def _update_reading(self) -> None:
        """Read while the client reads its answers, we are not at the
        pending cap and nothing waits for our next turn; otherwise let TCP
        flow control hold the client back."""
        if self._closing:
            return
        want = (not self._write_paused and not self._more and self._messages is None
                and len(self._tasks) < self._max_pending)
        if want and not self._reading:
            self.transport.resume_reading()
        elif not want and self._reading:
            self.transport.pause_reading()
        self._reading = want

    def _process(self) -> None:
        if self._messages is not None:
            self._send_messages()  # a transfer first: the next queries wait
        budget = self._batch
        answered = 0
        while (not self._closing and not self._write_paused and self._messages is None
               and len(self._tasks) < self._max_pending):
            if answered == budget and self._loop is not None:
                if self._frames.has_complete_frame() and not self._more:
                    self._more = True  # the rest on a later turn of the loop
                    self._loop.call_soon(self._next_turn)
                break
            try:
                query = self._frames.next_message()
            except FramingError as exc:
                log.info("closing TCP connection from %s: %s", self.peer, exc)
                self._close()
                return
            if query is None:
                break  # partial frame: wait for more data
            answered += 1
            self._answer(query)
        if self._closing:
            return
        if answered:
            if self._loop is not None:
                self._last_message = self._loop.time()
            if self._registry is not None:
                self._registry.touch(self)
        self._update_reading()
        # At EOF, close once every complete query has been answered (a
        # trailing partial frame can never complete).
        if (self._eof and not self._write_paused and not self._tasks and not self._more
                and self._messages is None and not self._frames.has_complete_frame()):
            self._close()

    def _next_turn(self) -> None:
        self._more = False
        if not self._closing:
            self._process()

    def _answer(self, query: bytes) -> None:
        try:
            response = self._handler(query, "tcp", self.peer)
        except Exception:
            log.exception("handler failed on TCP query from %s", self.peer)
            return
        if response is None:
            return
        if type(response) is Messages:
            self._messages = response.messages
            self._send_messages()
            return
        if not isinstance(response, (bytes, bytearray)):
            if not awaitable(response, self.peer):
                return
            task = asyncio.ensure_future(response)
            self._tasks.add(task)
            task.add_done_callback(self._task_done)
            return
        self._write(response)

    def _task_done(self, task: asyncio.Future) -> None:
        self._tasks.discard(task)
        response = outcome(task, self.peer)
        if self._closing:
            return
        if response is not None:
            self._write(response)
        if self._loop is not None:
            self._last_message = self._loop.time()  # an answer is activity too
        self._process()  # reads again below the cap; closes after EOF when done

    def _send_messages(self) -> None:
        """Write the messages of a multi-message answer while the client
        takes them: a full send buffer (pause_writing) leaves the rest for
        resume_writing.  A message written counts as activity."""
        try:
            while not self._write_paused and not self._closing:
                message = next(self._messages, None)
                if message is None:
                    self._messages = None
                    return
                self._write(message)
                if self._loop is not None:
                    self._last_message = self._loop.time()
        except Exception:  # a bug of ours: the transfer cannot go on
            log.exception("answer of several messages to %s failed; closing", self.peer)
            self._messages = None
            self._close(abort=True)

    def _write(self, response: bytes) -> None:
        if len(response) > MAX_MESSAGE:
            log.error("dropping %d-byte answer to %s: larger than a TCP frame can carry",
                      len(response), self.peer)
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
        log.debug("closing idle TCP connection from %s", self.peer)
        if self._registry is not None:
            self._registry.closed["idle"] += 1
        # Answers the client never collected: reset, so the kernel does not
        # keep them (and keep trying to deliver them) after we gave up.
        self._close(abort=bool(unsent(self.transport)))
