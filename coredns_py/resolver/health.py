"""Is an upstream up?  Health checks as CoreDNS's forward plugin runs them.

A query that fails (no answer in time, connection refused, a broken
answer) starts a health check of that upstream: a ``. IN NS`` query (RD
set) every ``health_check`` seconds until one gets any answer at all --
REFUSED and SERVFAIL count as up, only silence and network errors as down.
Each check without an answer adds one to the upstream's failures; an
answer sets them back to zero and ends the checking.  With more than
``max_fails`` failures the upstream is *down*: it is not asked while
another one is not down.  ``max_fails: 0`` turns checking off: such
upstreams are never down.

One addition to CoreDNS: while an upstream is being checked (it failed a
query and has not answered a check since) it is asked after the others
that are not, so a dead first upstream costs one timeout, not one per query
until it is found down (with CoreDNS's defaults that takes three checks).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Optional

log = logging.getLogger("coredns_py.forward")

# CoreDNS's defaults: a check every 0.5 s; down after more than 2 failed
# checks in a row.
DEFAULT_INTERVAL = 0.5
DEFAULT_MAX_FAILS = 2
# How long a check waits for its answer (CoreDNS's health checker: 1 s).
CHECK_TIMEOUT = 1.0

Check = Callable[[], Awaitable[bool]]


class Health:
    """One upstream's health: its failed checks, and the checking task."""

    def __init__(self, name: str, check: Check, *, interval: float = DEFAULT_INTERVAL,
                 max_fails: int = DEFAULT_MAX_FAILS,
                 on_check_failed: Optional[Callable[[], None]] = None):
        self.name = name
        self._check = check
        self.interval = interval
        self.max_fails = max_fails
        self.fails = 0  # checks in a row without an answer
        self._on_check_failed = on_check_failed
        self._task: Optional[asyncio.Task] = None

    @property
    def down(self) -> bool:
        """More than max_fails checks in a row failed (never, with max_fails 0)."""
        return self.max_fails > 0 and self.fails > self.max_fails

    @property
    def checking(self) -> bool:
        """A query to it failed and no check has been answered since."""
        return self._task is not None

    def failed(self, why: str) -> None:
        """A query to this upstream failed: check it until it answers."""
        if self.max_fails <= 0 or self._task is not None:
            return
        log.warning("upstream %s failed (%s); checking it every %g s, the others are "
                    "asked first meanwhile", self.name, why, self.interval)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while not await self._check():
                self.fails += 1
                if self._on_check_failed is not None:
                    self._on_check_failed()
                if self.fails == self.max_fails + 1:
                    log.warning("upstream %s is down: %d health checks in a row without "
                                "an answer; not asked while another upstream is up",
                                self.name, self.fails)
                await asyncio.sleep(self.interval)
            self.fails = 0
            log.info("upstream %s answers again", self.name)
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
