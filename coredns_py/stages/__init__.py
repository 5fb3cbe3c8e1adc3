"""Stages: what keeps state or reads the clock around the pure ``answer()``.

CoreDNS chains plugins around its kubernetes handler; here a stage wraps the
server's handler (``handler(wire, proto, peer) -> bytes | None | awaitable``,
:data:`coredns_py.net.handler.Handler`) and returns a handler of the same
shape.  A stage may answer by itself (a rate-limited client, a hosts entry),
change the query before the inner handler sees it (rewrite), or change the
response after it (answer rotation), including one that arrives later from
upstream (:func:`then`).  ``zone/`` stays pure and its prepared answers stay
exact: every stage works on wire bytes from outside.

A stage the configuration turns off is not in the chain at all, so it costs
the hot path nothing.  The server builds the chain once, at start
(:func:`chain`), outermost first, in CoreDNS's plugin order (plugin.cfg):
rate limiting and cookies see every packet first; what answers from other
data (hosts) comes before the cluster zone; what reorders records comes
last, next to the answer.
"""

from __future__ import annotations

import inspect
from typing import Callable, Iterable, Optional

from coredns_py.net.handler import Handler, HandlerResult

Stage = Callable[[Handler], Handler]
"""``stage(inner) -> handler``: a handler that calls ``inner`` (or not)."""


def chain(core: Handler, stages: Iterable[Optional[Stage]]) -> Handler:
    """``core`` wrapped by ``stages``, the first one outermost; None entries
    (stages turned off) are skipped."""
    handler = core
    for stage in reversed([s for s in stages if s is not None]):
        handler = stage(handler)
    return handler


def then(result: HandlerResult, after: Callable[[bytes], Optional[bytes]]) -> HandlerResult:
    """``after(response)`` applied to a handler's result, now or when an
    awaitable one arrives (None stays None: nothing is sent)."""
    if result is None:
        return None
    if isinstance(result, (bytes, bytearray)):
        return after(result)
    if inspect.isawaitable(result):
        async def later():
            out = await result
            return None if out is None else after(out)
        return later()
    return result  # not ours to judge: the transport logs what it cannot send
