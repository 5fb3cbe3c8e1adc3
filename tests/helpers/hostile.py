"""Hostile manifest files, as an attacker or an unlucky user would write them
into a served folder (the cases of issue 14), and a prober that watches a
good name while they are added.

- :func:`alias_bomb` - YAML anchors of anchors: a few hundred bytes that
  expand to hundreds of millions of nodes.
- :data:`HOSTILE` - name -> (file name, how to make it in a folder), each a
  case the server must survive: the bomb where a field's value reaches an
  error message, the bomb beside a value PyYAML cannot build, a FIFO, a
  symlink to /dev/zero, 31,000 levels of ``[`` (past where libyaml's C
  recursion overflows a thread's 8 MB stack: a segfault before the limits), a
  5,000-level JSON, a file over ``max_file_bytes`` (see :data:`SMALL_LIMIT`).
- :class:`Prober` - asks one name every 100 ms from a thread; the longest
  gap between two good answers, and every answer that was not the expected.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """``a0: &a0 [lol, ...]``, then each level a list of ``width`` aliases of
    the one before: ``width ** levels`` nodes once expanded."""
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def _bomb_service() -> str:
    """A Service whose spec.type is the bomb: converting it reaches an error
    message that used to print the value (the repr of 387 million nodes)."""
    bomb = "\n".join("  " + line for line in alias_bomb().splitlines())
    return f"apiVersion: v1\nkind: Service\nmetadata:\n  name: bomb\n{bomb}\nspec:\n  type: *a8\n"


def _bomb_and_bad_scalar() -> str:
    # A value PyYAML cannot build (month 13) sends the loader looking for the
    # bad field, through every alias.
    return alias_bomb() + "metadata:\n  creationTimestamp: 2024-13-45\n"


# Small enough that a test writes a file over it in no time.
SMALL_LIMIT = 64 * 1024


def _write(text: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(text)


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _dev_zero(path: Path) -> None:
    os.symlink("/dev/zero", path)


HOSTILE: dict[str, tuple[str, Callable[[Path], None]]] = {
    "alias-bomb-in-error": ("bomb.yaml", _write(_bomb_service())),
    "alias-bomb-bad-scalar": ("bomb2.yaml", _write(_bomb_and_bad_scalar())),
    "fifo": ("x.yaml", _fifo),
    "symlink-dev-zero": ("zero.yaml", _dev_zero),
    "nested-yaml": ("deep.yaml", _write("a: " + "[" * 31_000 + "]" * 31_000 + "\n")),
    "nested-json": ("deep.json", _write("[" * 5000 + "]" * 5000)),
    "too-large": ("large.yaml", _write("# padding\n" * (SMALL_LIMIT // 10 + 1))),
}


class Prober(threading.Thread):
    """Asks ``name`` A over UDP every ``interval`` s until stopped (at most
    ``limit`` s); keeps when each good answer came and every other one."""

    def __init__(self, host: str, port: int, name: str, expect: str,
                 interval: float = 0.1, limit: float = 120.0):
        super().__init__(daemon=True)
        self.host, self.port, self.name, self.expect = host, port, name, expect
        self.interval, self.limit = interval, limit
        self.good: list[float] = []
        self.bad: list[tuple[float, str]] = []  # (when, what)
        self.started_at: Optional[float] = None
        self.stopped_at: Optional[float] = None
        self._halt = threading.Event()

    def run(self) -> None:
        self.started_at = time.monotonic()
        while not self._halt.is_set() and time.monotonic() - self.started_at < self.limit:
            sent = time.monotonic()
            q = dns.message.make_query(self.name, "A")
            try:
                r = dns.query.udp(q, self.host, port=self.port, timeout=0.5)
                got = sorted(rd.address for rs in r.answer if rs.rdtype == dns.rdatatype.A
                             for rd in rs)
                if r.rcode() == dns.rcode.NOERROR and got == [self.expect]:
                    self.good.append(time.monotonic())
                else:
                    self.bad.append((sent, f"{dns.rcode.to_text(r.rcode())} {got}"))
            except (dns.exception.Timeout, OSError):
                pass  # a gap, measured between good answers
            self._halt.wait(max(0.0, self.interval - (time.monotonic() - sent)))
        self.stopped_at = time.monotonic()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def longest_gap(self) -> float:
        """The longest time without a good answer, from the start to the end."""
        marks = [self.started_at] + self.good + [self.stopped_at]
        return max(b - a for a, b in zip(marks, marks[1:]))
