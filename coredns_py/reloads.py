"""When to rebuild: changes coalesced, one build at a time, none lost.

The source says "something changed" from its own thread (a file watcher, a
store's watch); a rebuild then runs in a worker thread, off the event loop
that answers DNS, and swaps its generation in when done.  Changes that
arrive within RELOAD_DEBOUNCE are applied in one rebuild; a change that
arrives while a rebuild runs triggers another one after it, so the last
change is always served.  A full reload (SIGHUP) asked for meanwhile is kept
for the next rebuild, never dropped.

The worker is a daemon thread of its own, not the event loop's executor: a
rebuild still running when the server stops (a huge file being parsed) is
abandoned, not waited for (asyncio.run() waits for its executor's threads,
and the interpreter for every thread that is not a daemon).  Nothing is lost
by abandoning it: the state file is replaced atomically, and what the
rebuild would swap in is no longer served.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Callable, Optional

# Changes arriving within this window are applied in one rebuild: an editor
# saving a file often writes, renames and touches it in quick succession.
RELOAD_DEBOUNCE = 0.02


class Reloads:
    """Schedules ``rebuild(full) -> swapped`` on the event loop's executor.

    ``failed(exc)`` is told of a rebuild that raised; ``served(seconds)`` of
    one that swapped a generation in, with the time from the first change it
    took in to that swap.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, rebuild: Callable[[bool], bool], *,
                 failed: Callable[[BaseException], None],
                 served: Callable[[float], None], debounce: float = RELOAD_DEBOUNCE):
        self._loop = loop
        self._rebuild = rebuild
        self._failed = failed
        self._served = served
        self._debounce = debounce
        self._pending: Optional[asyncio.TimerHandle] = None
        self._running = False
        self._again = False  # a change came while a rebuild ran
        self._full = False  # a full reload is asked for and not yet started
        self._change_seen: Optional[float] = None  # the first change not yet taken in
        self._stopped = False

    def changed(self) -> None:
        """Something changed (any thread)."""
        self._loop.call_soon_threadsafe(self.request)

    def request(self, full: bool = False) -> None:
        """A rebuild soon; ``full``: forget every cache first (event loop thread)."""
        self._full = self._full or full
        if self._change_seen is None:
            self._change_seen = time.monotonic()
        if self._pending is None:
            self._pending = self._loop.call_later(self._debounce, self._start)

    def _start(self) -> None:
        self._pending = None
        if self._stopped:
            return
        if self._running:
            self._again = True  # rebuild again when the current one ends
            return
        self._running = True
        full, self._full = self._full, False
        started, self._change_seen = self._change_seen, None
        threading.Thread(target=self._work, args=(full, started), name="coredns-py-reload",
                         daemon=True).start()

    def _work(self, full: bool, started: Optional[float]) -> None:
        """The worker thread: one rebuild, its outcome handed to the event loop."""
        exc: Optional[BaseException] = None
        swapped = False
        try:
            swapped = self._rebuild(full)
        except BaseException as err:  # noqa: BLE001 - reported by _done, on the loop
            exc = err
        try:
            self._loop.call_soon_threadsafe(self._done, swapped, exc, started)
        except RuntimeError:
            pass  # the loop is closed: the server has stopped

    def _done(self, swapped: bool, exc: Optional[BaseException],
              started: Optional[float]) -> None:
        self._running = False
        if self._stopped:
            return
        if exc is not None:
            self._failed(exc)
        elif swapped and started is not None:
            self._served(time.monotonic() - started)
        if self._again or self._full:
            self._again = False
            self.request()

    def cancel(self) -> None:
        """The server stops: no rebuild starts any more, a running one is abandoned."""
        self._stopped = True
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
