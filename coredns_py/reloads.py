"""When to rebuild: changes coalesced, one build at a time, none lost.

The source says "something changed" from its own thread (a file watcher, a
store's watch); a rebuild then runs in a worker thread, off the event loop
that answers DNS, and swaps its generation in when done.  Changes that
arrive within RELOAD_DEBOUNCE are applied in one rebuild; a change that
arrives while a rebuild runs triggers another one after it, so the last
change is always served.  A full reload (SIGHUP) asked for meanwhile is kept
for the next rebuild, never dropped.
"""

from __future__ import annotations

import asyncio
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
        if self._running:
            self._again = True  # rebuild again when the current one ends
            return
        self._running = True
        full, self._full = self._full, False
        started, self._change_seen = self._change_seen, None
        fut = self._loop.run_in_executor(None, self._rebuild, full)
        fut.add_done_callback(lambda f: self._done(f, started))

    def _done(self, fut: asyncio.Future, started: Optional[float]) -> None:
        self._running = False
        exc = fut.exception()
        if exc is not None:
            self._failed(exc)
        elif fut.result() and started is not None:
            self._served(time.monotonic() - started)
        if self._again or self._full:
            self._again = False
            self.request()

    def cancel(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
