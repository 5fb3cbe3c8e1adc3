"""The live TCP connections of one server: how many there may be, in all
and per client address; room made at a cap by closing the connection idle
the longest (RFC 7766 section 6.2.3); every connection reached at shutdown."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from coredns_py.logs import IntervalLog

if TYPE_CHECKING:
    from coredns_py.net.tcp import TcpProtocol

log = logging.getLogger("coredns_py.transport")

# Open TCP connections across the whole server (all listen addresses), at
# most: each one holds a file descriptor and up to a few hundred KB of
# buffers.  The real cap is lower when the descriptor limit is
# (net.descriptors.tcp_connection_cap).  At the cap a new connection takes
# the place of the one idle the longest; only when every connection is busy
# is the new one closed at once.
MAX_TCP_CONNECTIONS = 1000

# Open TCP connections from one client address.  Without it one client can
# take every slot (measured: one hog held all 1,000 and other clients got 0
# answers in 40 s).  64 is far more than a resolver or a stub needs (they
# reuse one connection, RFC 7766 section 6.2.1), and leaves room for many
# programs on one host, which all come from 127.0.0.1 (or one NAT address).
# At this limit the client's own idle connection is closed first.
MAX_TCP_PER_SOURCE = 64

# How often a refused or shed connection is logged (at most; the line says
# how many there were since the previous one).
REFUSAL_LOG_INTERVAL = 10.0


class ConnectionRegistry:
    """Live TCP connections of one server, least recently active first.

    Enforces the caps (in all, and per client address), making room at a
    cap by closing the connection that has been idle the longest, and lets
    close() reach every connection.  Counts what it closed and refused, by
    reason, for the metrics.
    """

    def __init__(self, limit: int = MAX_TCP_CONNECTIONS,
                 per_source: int = MAX_TCP_PER_SOURCE):
        self.limit = limit
        self.per_source = per_source
        self.live: dict[TcpProtocol, None] = {}  # insertion order: least recently active first
        self._sources: dict[object, int] = {}
        self._empty = asyncio.Event()
        self._empty.set()
        # Connections we closed, by reason: idle timeout, to make room at
        # the server's cap or at a client's own cap, unanswered-bytes flood.
        self.closed = {"idle": 0, "cap": 0, "per_source": 0, "flood": 0}
        # New connections closed at once: every slot busy.
        self.refused = {"cap": 0, "per_source": 0}
        self._refusals = {reason: IntervalLog(log, logging.WARNING, REFUSAL_LOG_INTERVAL)
                          for reason in self.refused}

    def admit(self, proto: "TcpProtocol") -> bool:
        source = proto.source
        if self._sources.get(source, 0) >= self.per_source:
            if not self._make_room("per_source", source):
                self.refused["per_source"] += 1
                self._refusals["per_source"].event(
                    "%d busy TCP connections from %s: refusing another (per-client limit)",
                    self.per_source, source)
                return False
        if len(self.live) >= self.limit:
            if not self._make_room("cap"):
                self.refused["cap"] += 1
                self._refusals["cap"].event("%d TCP connections open, none idle: refusing new "
                                            "ones", len(self.live))
                return False
        self.live[proto] = None
        self._sources[source] = self._sources.get(source, 0) + 1
        self._empty.clear()
        return True

    def _make_room(self, reason: str, source=None) -> bool:
        """Close the connection idle the longest (of ``source``, if given)."""
        for proto in self.live:
            if (source is None or proto.source == source) and proto.idle():
                log.debug("closing idle TCP connection from %s to make room (%s)",
                          proto.peer, reason)
                self.closed[reason] += 1
                proto.close()
                self.release(proto)  # now: its connection_lost comes a turn later
                return True
        return False

    def touch(self, proto: "TcpProtocol") -> None:
        """``proto`` was active: it becomes the last to be closed for room."""
        if proto in self.live:
            del self.live[proto]
            self.live[proto] = None

    def release(self, proto: "TcpProtocol") -> None:
        if self.live.pop(proto, False) is False:  # not (or no longer) ours
            return
        left = self._sources.get(proto.source, 0) - 1
        if left > 0:
            self._sources[proto.source] = left
        else:
            self._sources.pop(proto.source, None)
        if not self.live:
            self._empty.set()

    def close_all(self) -> None:
        for proto in list(self.live):
            proto.close()

    async def wait_empty(self) -> None:
        await self._empty.wait()
