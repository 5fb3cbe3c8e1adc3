"""The handler: the one call a transport makes into the DNS core, and the
answers it gives later.

The core answers a query with the response wire, ``None`` for "send
nothing", or -- when the answer needs an upstream server -- an awaitable of
either; over TCP, a zone transfer's several messages (:class:`Messages`).
A transport runs such an awaitable as a task and sends its result when
done, answering other queries meanwhile.  This module holds what UDP
and TCP share about that: telling the kinds of result apart, collecting a
finished task's answer, and the cap on answers pending over UDP.

Errors raised by the handler (or by its awaitable) are logged and swallowed:
a hostile or broken packet costs that one query its answer, never the server.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Awaitable, Callable, Iterable, Iterator, Optional, Union

from coredns_py.logs import IntervalLog

log = logging.getLogger("coredns_py.transport")


class Messages:
    """A handler result that is several response messages to one query, sent
    in order over TCP: a zone transfer (RFC 5936 section 2.2).  It wraps an
    iterator of message wires that the TCP transport takes one at a time as
    the client reads them, so a big zone is made as it is sent and never
    held whole, in memory or in the send buffer; meanwhile that connection's
    next queries wait (a transfer's messages are not interleaved with other
    answers).  A handler never gives one for a UDP query (zone transfers
    are TCP only: it answers REFUSED)."""

    __slots__ = ("messages",)

    def __init__(self, messages: Iterable[bytes]):
        self.messages: Iterator[bytes] = iter(messages)


HandlerResult = Union[bytes, None, Messages, Awaitable[Optional[bytes]]]
Handler = Callable[[bytes, str, tuple], HandlerResult]
"""``handler(query_wire, proto, peer) -> response wire, None, Messages (TCP
only), or an awaitable of a response wire or None``.

``proto`` is ``"udp"`` or ``"tcp"``; ``peer`` is the client address tuple.
"""

# Answers still being worked out (forwarded upstream) at once, over all UDP
# listen addresses.  Each holds a task and, while it waits for an upstream,
# a socket; a flood of foreign names must not turn into unbounded memory
# and descriptors.  Past this a query is dropped: UDP clients retry (after
# 5 s for glibc), by which time the backlog has cleared or the upstream is
# known to be down.  1000 is 4x what a 250 queries/s burst needs when the
# upstream takes a second.
MAX_UDP_PENDING = 1000


def awaitable(result, peer) -> bool:
    """True for an awaitable handler result; anything else but bytes is a bug,
    logged here so that it costs one answer, not the listener."""
    if inspect.isawaitable(result):
        return True
    log.error("handler returned %s for a query from %s, not bytes, None or an awaitable",
              type(result).__name__, peer)
    return False


def _discard(result) -> None:
    """Drop an awaitable we will not run without a "never awaited" warning."""
    if inspect.iscoroutine(result):
        result.close()
    elif isinstance(result, asyncio.Future):
        result.cancel()


class PendingAnswers:
    """The answers being worked out for UDP clients, shared by every UDP
    socket of one server so that MAX_UDP_PENDING is a global cap."""

    def __init__(self, limit: int = MAX_UDP_PENDING):
        self.limit = limit
        self.tasks: set[asyncio.Future] = set()
        self.shed = 0  # queries dropped at the cap
        self._shed_log = IntervalLog(log, logging.WARNING)

    def admit(self, result) -> Optional[asyncio.Future]:
        """A task running ``result``, or None (and ``result`` dropped) at the cap."""
        if len(self.tasks) >= self.limit:
            _discard(result)
            self.shed += 1
            self._shed_log.event("%d UDP answers pending: dropping new queries that need "
                                 "an upstream", len(self.tasks))
            return None
        task = asyncio.ensure_future(result)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def cancel_all(self) -> None:
        for task in list(self.tasks):
            task.cancel()


def outcome(task: asyncio.Future, peer) -> Optional[bytes]:
    """The bytes a finished handler task produced, or None (cancelled, failed)."""
    if task.cancelled():
        return None
    exc = task.exception()
    if exc is not None:
        log.error("handler failed on query from %s", peer, exc_info=exc)
        return None
    return task.result()
