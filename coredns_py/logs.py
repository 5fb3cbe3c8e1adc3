"""The program's log: its two formats (``--log-format text|json``), the
rule that a recurring problem is logged once, and the rule that an event
that can repeat thousands of times a second (an attack, running out of
descriptors) is logged at most once per interval."""

from __future__ import annotations

import datetime
import json
import logging
import time

FORMATS = ("text", "json")
TEXT_FORMAT = "coredns-py: %(levelname)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, msg, and a query's fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        query = getattr(record, "query", None)
        if query is not None:
            out.update(query)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


class OnceLog:
    """Logs each problem once: a reload that finds the same broken file or the
    same address conflict again says nothing new, and a problem that was fixed
    and comes back is logged again."""

    def __init__(self, logger, level: int = logging.ERROR):
        self.logger = logger
        self.level = level
        self._current: set[str] = set()

    def report(self, problems) -> None:
        texts = {str(p) for p in problems}
        for text in sorted(texts - self._current):
            self.logger.log(self.level, "%s", text)
        self._current = texts


class IntervalLog:
    """Logs a recurring event at most once per ``interval`` seconds.

    The first occurrence is logged at once; later ones within the interval
    are only counted, and the next line says how many there were.  For
    events an attacker or an exhausted resource can repeat thousands of
    times a second, where one line per event would be a log flood that
    hides everything else (and costs more than the event).
    """

    def __init__(self, logger, level: int = logging.WARNING, interval: float = 10.0,
                 clock=time.monotonic):
        self.logger = logger
        self.level = level
        self.interval = interval
        self._clock = clock
        self._next = float("-inf")
        self._unlogged = 0

    def event(self, msg: str, *args) -> None:
        self._unlogged += 1
        now = self._clock()
        if now < self._next:
            return
        if self._unlogged > 1:
            msg += f" ({self._unlogged - 1} more since the last such line)"
        self.logger.log(self.level, msg, *args)
        self._unlogged = 0
        self._next = now + self.interval
