"""Stages: what keeps state or reads the clock around the pure ``answer()``.

CoreDNS chains plugins around its kubernetes handler; here a stage wraps the
server's handler (``handler(wire, proto, peer) -> bytes | None | awaitable``,
:data:`coredns_py.net.handler.Handler`) and returns a handler of the same
shape.  A stage may answer by itself (a rate-limited client, a hosts entry),
change the query before the inner handler sees it (rewrite), or change the
response after it (answer rotation), including one that arrives later from
upstream (:func:`then`).  ``zone/`` stays pure and its prepared answers stay
exact: every stage works on wire bytes from outside.

A stage may tell the stages inside it what it learnt about the client by
handing them the peer as a :class:`CookiePeer` (the same address tuple, so
everything that reads the peer still works): the query carried a DNS
cookie, and for a :class:`VerifiedPeer` one we issued to that address, so
the address is not spoofed.

A stage the configuration turns off is not in the chain at all, so it costs
the hot path nothing.  The server builds the chain once, at start
(:func:`chain`), outermost first, in CoreDNS's plugin order (plugin.cfg):
rate limiting and cookies see every packet first; what answers from other
data (hosts) comes before the cluster zone; what reorders records comes
last, next to the answer.
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
from typing import Callable, Iterable, Optional

from coredns_py.net.handler import Handler, HandlerResult
from coredns_py.zone import wire as wire_mod

Stage = Callable[[Handler], Handler]
"""``stage(inner) -> handler``: a handler that calls ``inner`` (or not)."""


class CookiePeer(tuple):
    """A client address whose query carried a DNS cookie (RFC 7873): a
    client that can be told BADCOOKIE and come back with the cookie."""

    __slots__ = ()


class VerifiedPeer(CookiePeer):
    """A client address that brought back a valid server cookie of ours:
    it really is at that address (a spoofed source never saw the cookie)."""

    __slots__ = ()


def chain(core: Handler, stages: Iterable[Optional[Stage]],
          kept_first: Optional[Callable[[Handler], Handler]] = None) -> Handler:
    """``core`` wrapped by ``stages``, the first one outermost; None entries
    (stages turned off) are skipped.  When every stage on passes prepared
    questions through (:func:`passes_prepared`), ``kept_first(chained)``
    is the handler instead: it gives a kept answer itself, before the
    chain, and hands the chain everything else."""
    on = [s for s in stages if s is not None]
    handler = core
    for stage in reversed(on):
        handler = stage(handler)
    if kept_first is not None and on and all(getattr(s, "passes_prepared", False) for s in on):
        return kept_first(handler)
    return handler


def passes_prepared(stage: Stage) -> Stage:
    """``stage``, marked as one that hands every question the prepared
    answers keep (zone/prepared.py) to the handler inside as it came, and
    does nothing else with it: the transfer stage, which acts on AXFR and
    IXFR alone, never kept.  A kept answer may then be given without
    going through it, so that a stage on by default costs the hot path
    nothing."""
    def marked(inner: Handler) -> Handler:
        return stage(inner)
    marked.passes_prepared = True
    return marked


def question(wire: bytes) -> Optional[tuple[str, int, int, int]]:
    """(name as "a.b." in lower case, type, class, where the question ends)
    of a one-question QUERY, read straight from the wire; None for anything
    else, and for a name that is compressed or has a label holding a dot or
    a byte that is not ASCII (such a query goes on to answer() untouched)."""
    n = len(wire)
    if n < 17 or wire[2] & 0xF8 or wire[4:6] != b"\x00\x01":
        return None  # a response, another opcode, or not one question
    read = wire_mod.question_labels(wire)
    if read is None:
        return None  # cut short, or compressed: let answer() judge
    labels, pos = read
    if any(b"." in label for label in labels):
        return None
    if pos + 5 > n:
        return None  # truncated
    try:
        name = b".".join(labels).decode("ascii").lower() + "."
    except UnicodeDecodeError:
        return None
    return (name if labels else "."), int.from_bytes(wire[pos + 1:pos + 3], "big"), \
        int.from_bytes(wire[pos + 3:pos + 5], "big"), pos + 5


def then(result: HandlerResult, after: Callable[[bytes], Optional[bytes]]) -> HandlerResult:
    """``after(response)`` applied to a handler's result, now or when an
    awaitable one arrives (None stays None: nothing is sent)."""
    if result is None:
        return None
    if isinstance(result, (bytes, bytearray)):
        return after(result)
    if isinstance(result, asyncio.Future):
        return _then_future(result, after)
    if inspect.isawaitable(result):
        async def later():
            out = await result
            return None if out is None else after(out)
        return later()
    return result  # not ours to judge: the transport logs what it cannot send


def _then_future(result: asyncio.Future, after) -> asyncio.Future:
    """then() for a task (a forwarded answer): a future, so that a transport
    that cancels it (a client gone, the cap on pending answers) cancels the
    task itself, as when no stage is in the chain."""
    out = result.get_loop().create_future()

    def finish(done: asyncio.Future) -> None:
        if out.done():
            return
        if done.cancelled():
            out.cancel()
            return
        exc = done.exception()
        if exc is not None:
            out.set_exception(exc)
            return
        try:
            value = done.result()
            out.set_result(None if value is None else after(value))
        except Exception as exc:  # the stage's own bug: the transport logs it
            out.set_exception(exc)

    result.add_done_callback(finish)
    out.add_done_callback(lambda o: result.cancel() if o.cancelled() else None)
    return out


def exposed(listens) -> bool:
    """Whether any listen address is reachable from outside this host (not
    loopback; 0.0.0.0 and :: are every address)."""
    for host, _port in listens:
        try:
            if not ipaddress.ip_address(host).is_loopback:
                return True
        except ValueError:
            return True
    return False


def wanted(switch: str, exposed_: bool) -> bool:
    """A stage's config switch ("on", "off", "auto") decided: "auto" means on
    when the server is exposed.  Abuse protections guard against other hosts;
    on loopback only, every client is this host's own."""
    return switch == "on" or (switch == "auto" and exposed_)
