"""Counts of rare events for ``/metrics``: a file change held back while the
file was still being written, an allocation state file moved aside.

Process-wide, like the log: the room where such an event happens (the
folder source, the state file) counts it here and needs no path to the
metrics; :mod:`coredns_py.ops.metrics` reads the totals at scrape time.
Counters only go up; a gauge is the latest value set.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_counters: dict[str, int] = {}
_gauges: dict[str, float] = {}


def count(event: str, n: int = 1) -> None:
    with _lock:
        _counters[event] = _counters.get(event, 0) + n


def gauge(name: str, value: float) -> None:
    with _lock:
        _gauges[name] = value


def counters() -> dict[str, int]:
    with _lock:
        return dict(_counters)


def gauges() -> dict[str, float]:
    with _lock:
        return dict(_gauges)


# The events counted, named as their metrics are (coredns_py_<name>).
HELD_BACK = "manifest_changes_held_back_total"
SETTLING = "manifest_files_settling"
STATE_MOVED_ASIDE = "state_files_moved_aside_total"
