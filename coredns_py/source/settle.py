"""When a changed manifest file is published: once it has stopped changing.

A file rewritten in place (``kubectl get ... > svc.yaml``, an editor that
truncates and writes, ``cp``) is empty or cut mid-document while it is
written.  Read then, its Services vanish (NXDOMAIN) or lose their
``clusterIP`` and get a newly allocated, wrong address, until the write
ends.  So the source reads a changed file only once it has stayed unchanged
for a settle time, and keeps serving the file's last version meanwhile:

- a file is settled when its modification time is at least
  :data:`SETTLE_SECONDS` old (a writer still writing keeps it young), or when
  the source has seen it unchanged (same mtime, size and inode) for that long
  (an mtime in the future, or set back by the writer, cannot hold it forever);
- a rewrite that looks truncated (a file that held objects now parses to
  fewer objects, more errors, or not at all) must also have been seen
  unchanged for the settle time, whatever its mtime says (coarse mtimes on
  some filesystems, a writer that set it back);
- a file that disappears keeps its objects for the settle time too
  (``rm`` then write, a move in two steps).

Moving a finished file into the folder (a rename keeps its old mtime) is
published at once.  A change held back is looked at again when its time is
up (a timer calls the watcher's callback).

The settle time is measured against the reload target (a one-file change at
10k Services served within 300 ms of the last write): see ``bench/hostile.py``.
The same stamp also makes a change within one mtime tick safe: a file is
only taken in once its mtime is older than the tick, so a later write in that
tick cannot hide behind an equal (mtime, size, inode).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from coredns_py import tally

log = logging.getLogger("coredns_py.manifests")

# Long enough to cover the pauses of a writer streaming a file (a shell
# redirect, kubectl, an editor's write loop), short enough that a one-file
# reload at 10k Services is still served within 300 ms of the last write.
SETTLE_SECONDS = 0.1
# A timer never fires sooner than this (a burst of holds makes one wake-up),
# and fires this much after a change is due (file times and our clock differ
# by a tick: a wake-up a hair early would find the change still held).
_MIN_WAKE = 0.005
_MARGIN = 0.002


class Settling:
    """The settle rule for one source; ``wake()`` is called (from a timer
    thread) when a held-back change is due to be looked at again."""

    def __init__(self, seconds: float = SETTLE_SECONDS):
        self.seconds = seconds
        self.wake: Optional[Callable[[], None]] = None
        self._seen: dict[Path, tuple[tuple, float]] = {}  # path -> (stamp, first seen)
        self._gone: dict[Path, float] = {}  # path -> first seen missing
        self._held: set[Path] = set()  # held back in the current load
        self._soonest = math.inf  # the shortest hold of the current load
        # After a load: seconds until the first change it held back is due
        # (None: nothing held back).
        self.due: Optional[float] = None
        self._counted: set[tuple] = set()  # (path, stamp) holds already counted
        self._next_wake = math.inf
        self._timer: Optional[threading.Timer] = None
        self._lock = threading.Lock()

    # --- the rule ------------------------------------------------------------------

    def changed_wait(self, path: Path, stamp: tuple) -> float:
        """Seconds before the changed file ``path`` (now ``stamp``) may be read."""
        self._gone.pop(path, None)
        observed = self._observed(path, stamp)
        age = time.time() - stamp[0] / 1e9
        by_mtime = self.seconds - age if age >= 0 else math.inf
        return max(0.0, min(by_mtime, self.seconds - observed))

    def truncated_wait(self, path: Path, stamp: tuple) -> float:
        """Seconds before a rewrite of ``path`` that looks truncated may be published."""
        return max(0.0, self.seconds - self._observed(path, stamp))

    def gone_wait(self, path: Path) -> float:
        """Seconds before the disappearance of ``path`` may be published."""
        now = time.monotonic()
        return max(0.0, self.seconds - (now - self._gone.setdefault(path, now)))

    def _observed(self, path: Path, stamp: tuple) -> float:
        now = time.monotonic()
        seen = self._seen.get(path)
        if seen is None or seen[0] != stamp:
            seen = self._seen[path] = (stamp, now)
        return now - seen[1]

    # --- one load ----------------------------------------------------------------------

    def hold(self, path: Path, stamp: Optional[tuple], wait: float) -> None:
        """Keep the last version of ``path`` for now; look again in ``wait`` s."""
        self._held.add(path)
        self._soonest = min(self._soonest, wait)
        if (path, stamp) not in self._counted:
            self._counted.add((path, stamp))
            tally.count(tally.HELD_BACK)
            log.debug("%s is still changing: serving its last version for %.0f ms more",
                      path, wait * 1000)
        self._wake_in(wait)

    def published(self, path: Path) -> None:
        self._seen.pop(path, None)
        self._gone.pop(path, None)

    def end_load(self, listed) -> None:
        """After a load (``listed``: the files there now): forget what was
        seen of files no longer there, publish the gauge."""
        for path in [p for p in self._seen if p not in listed]:
            del self._seen[path]
        self._counted = {key for key in self._counted if key[0] in self._held}
        tally.gauge(tally.SETTLING, len(self._held))
        self.due = self._soonest if self._held else None
        self._held, self._soonest = set(), math.inf

    # --- waking up -------------------------------------------------------------------------

    def _wake_in(self, wait: float) -> None:
        at = time.monotonic() + max(wait + _MARGIN, _MIN_WAKE)
        with self._lock:
            if self.wake is None or at >= self._next_wake:
                return  # one wake-up at the earliest time is enough
            if self._timer is not None:
                self._timer.cancel()
            self._next_wake = at
            self._timer = threading.Timer(at - time.monotonic(), self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self._timer, self._next_wake = None, math.inf
            wake = self.wake
        if wake is not None:
            wake()

    def stop(self) -> None:
        with self._lock:
            self.wake = None
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._next_wake = None, math.inf
