"""Accepting TCP connections: our own accept loop on a listening socket.

asyncio's server logs a traceback for every ``accept()`` that fails for
lack of descriptors or memory, and keeps trying (measured: 2,336
"Too many open files" tracebacks in 40 s with ``ulimit -n 1024``).  Here
such a failure is counted, logged at most once per interval, and accepting
pauses briefly so the connections waiting in the kernel's backlog are taken
once descriptors are free again.  Each accepted socket becomes an ordinary
asyncio transport (``loop.connect_accepted_socket``) with the server's
protocol; the connection caps are the protocol's registry's business.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from typing import Callable

from coredns_py.logs import IntervalLog

log = logging.getLogger("coredns_py.transport")

# Connections accepted per wake-up: enough to drain a burst, small enough
# that a connection flood leaves UDP and open connections their turn (the
# same bound as a UDP batch).
ACCEPT_BATCH = 32

# After an accept() failed for want of descriptors or memory, wait this long
# before trying again (asyncio waits 1 s).  Connections arriving meanwhile
# wait in the kernel's backlog (net.listen.TCP_BACKLOG).
ACCEPT_RETRY_DELAY = 0.5

# At most one log line per this many seconds about failing accept() calls.
ACCEPT_ERROR_LOG_INTERVAL = 10.0

# accept() errors that mean "out of a resource, try again later".
_EXHAUSTED = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))


class Acceptor:
    """Accepts connections on ``sock`` and serves each with ``factory()``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 factory: Callable[[], asyncio.Protocol]):
        self._loop = loop
        self._sock = sock
        self._factory = factory
        self._starting: set[asyncio.Task] = set()
        self._retry: asyncio.TimerHandle | None = None
        self._closed = False
        self.errors = 0  # accept() calls that failed for want of a resource
        self._errors_log = IntervalLog(log, logging.ERROR, ACCEPT_ERROR_LOG_INTERVAL)
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._ready)

    def _ready(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client gave up while waiting in the backlog
            except OSError as exc:
                if exc.errno in _EXHAUSTED:
                    self._exhausted(exc)
                else:
                    self._errors_log.event("cannot accept TCP connections on %s: %s",
                                           self._where(), exc)
                return
            self._serve(conn)

    def _where(self) -> str:
        try:
            host, port = self._sock.getsockname()[:2]
        except OSError:
            return "?"
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _exhausted(self, exc: OSError) -> None:
        self.errors += 1
        self._errors_log.event("cannot accept TCP connections on %s: %s; pausing %g s",
                               self._where(), exc.strerror or exc, ACCEPT_RETRY_DELAY)
        self._loop.remove_reader(self._sock.fileno())
        self._retry = self._loop.call_later(ACCEPT_RETRY_DELAY, self._resume)

    def _resume(self) -> None:
        self._retry = None
        if not self._closed:
            self._loop.add_reader(self._sock.fileno(), self._ready)

    def _serve(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        task = self._loop.create_task(self._loop.connect_accepted_socket(self._factory, conn))
        self._starting.add(task)
        task.add_done_callback(lambda t: self._started(t, conn))

    def _started(self, task: asyncio.Task, conn: socket.socket) -> None:
        self._starting.discard(task)
        if task.cancelled():
            conn.close()
            return
        exc = task.exception()
        if exc is not None:
            conn.close()
            self._errors_log.event("cannot serve a TCP connection on %s: %s", self._where(), exc)

    def close(self) -> None:
        """Stop accepting and close the listening socket."""
        if self._closed:
            return
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
        else:
            self._loop.remove_reader(self._sock.fileno())
        for task in list(self._starting):
            task.cancel()
        self._sock.close()
