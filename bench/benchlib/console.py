"""What the benchmark prints: one line at a time, flushed, and figures that may be missing."""

from __future__ import annotations


def log(msg: str = "") -> None:
    print(msg, flush=True)


def fmt(v, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)
