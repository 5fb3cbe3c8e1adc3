"""The running server: a cluster source, the current generation, the answers.

A rebuild runs in a worker thread (:mod:`coredns_py.reloads` decides when);
the new :class:`~coredns_py.generation.Generation` replaces the old one in
one assignment.  Until the first build completes, every query gets SERVFAIL.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
import time
from typing import Optional

from coredns_py.cluster import ClusterSource
from coredns_py.config import Config
from coredns_py.errors import SourceError
from coredns_py.generation import Builder, Generation
from coredns_py import heap
from coredns_py.ops import metrics as metrics_mod
from coredns_py import stages
from coredns_py.reloads import Reloads
from coredns_py.zone import answer as answer_mod
from coredns_py.zone.answer_cache import AnswerCache

log = logging.getLogger("coredns_py.server")

_clock = time.perf_counter

# The most stopping waits for the source to save what it keeps (the state
# file, behind a lock another process may hold).
CLOSE_SECONDS = 2.0


def _own_addresses(listens) -> tuple[str, ...]:
    """The addresses this server answers on, for the apex NS (0.0.0.0 is none)."""
    out = []
    for host, _port in listens:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            continue
        if not ip.is_unspecified:
            out.append(str(ip))
    return tuple(out)


class Server:
    def __init__(self, source: ClusterSource, config: Config, listens: list[tuple[str, int]]):
        self.source = source
        self.config = config
        self.listens = listens
        # What queries are answered from; None until the first build.  Replaced
        # whole, never changed in place: read it once and use only that one.
        self.generation: Optional[Generation] = None
        self._builder = Builder(source, config, _own_addresses(listens))
        self.reloads: Optional[Reloads] = None
        self.entry = self.handle  # what the listeners call: handle() inside its stages
        self.listeners = None
        self.watcher = None
        self.answers = AnswerCache()
        # Completes answers that need upstream data (names outside our zones,
        # ExternalNames pointing outside); None: such queries are REFUSED.
        self.forwarder = None
        # Counts every query (hot path: plain dict updates) and reload;
        # ``observe`` is what handle() reports each query to (the query log
        # wraps it when on).
        self.metrics = metrics_mod.Metrics(current=lambda: self.generation,
                                           addresses=listens, answers=self.answers)
        self.observe = self.metrics.record

    # --- the core call: bytes in, bytes out ---------------------------------------

    def handle(self, wire: bytes, proto: str, peer):
        started = _clock()
        gen = self.generation  # read once: the whole answer comes from this one
        snap = gen.snapshot if gen is not None else None
        forwarding = self.forwarder is not None
        try:
            out = self.answers.answer(
                snap, wire, proto,
                lambda: answer_mod.answer(snap, wire, proto, forwarding=forwarding))
        except Exception:
            self.metrics.panics += 1
            raise
        if type(out) is answer_mod.Forward:
            return self._forward(out, wire, proto, peer, started)
        self.observe(wire, out, proto, peer, _clock() - started)
        return out

    def _forward(self, fwd, wire: bytes, proto: str, peer, started: float):
        """The forwarder's bytes (a refused client, a cache hit), or a task the
        transport waits for; either way the query is counted when answered."""
        out = self.forwarder.complete(fwd, peer)
        if out is None or isinstance(out, (bytes, bytearray)):
            self.observe(wire, out, proto, peer, _clock() - started, metrics_mod.PLUGIN_FORWARD)
            return out
        # A task, not a wrapping coroutine: the transport cancels it cleanly
        # when it is over its cap of pending answers.
        task = asyncio.ensure_future(out)
        task.add_done_callback(lambda t: self.observe(
            wire, None if t.cancelled() or t.exception() is not None else t.result(),
            proto, peer, _clock() - started, metrics_mod.PLUGIN_FORWARD))
        return task

    # --- generations -----------------------------------------------------------------

    def rebuild(self, full: bool = False) -> bool:
        """Build the next generation and swap it in; True when it was.

        Runs in a worker thread, one at a time (Reloads sees to it).  A
        source that cannot be read keeps the current generation (and logs
        why): serving the last good data beats serving nothing.
        """
        with heap.build_paused():
            try:
                gen = self._builder.build(full)
            except SourceError as exc:
                log.error("%s; still serving the last good data", exc)
                self.metrics.reload_failed.inc()
                return False
            if gen is None:
                return False
            self.generation = gen  # the swap: one reference assignment
            heap.after_swap()
        self.metrics.reloads.inc()
        self.metrics.build_seconds.observe(gen.build_seconds)
        log.info("loaded %d files: %s (%.0f ms)", gen.files,
                 ", ".join(f"{v} {k}" for k, v in gen.snapshot.counts.items()),
                 gen.build_seconds * 1000)
        return True

    def addresses(self) -> list[tuple[str, int]]:
        """Where DNS is served: the bound addresses once started (port 0 resolved)."""
        return list(self.listeners.addresses) if self.listeners is not None else list(self.listens)

    def request_reload(self) -> None:
        """A full reload (SIGHUP): forget every cache and rebuild."""
        if self.reloads is not None:
            self.reloads.request(full=True)

    def _reload_failed(self, exc: BaseException) -> None:
        log.error("reload failed: %r; still serving the last good data", exc)
        self.metrics.reload_failed.inc()

    # --- life cycle ------------------------------------------------------------------

    def _close_source(self) -> None:
        """Let the source write what it keeps (the state file), in a thread of
        its own and for at most CLOSE_SECONDS: stopping never hangs on a lock."""
        close = getattr(self.source, "close", None)
        if close is None:
            return

        def run() -> None:
            try:
                close()
            except Exception as exc:  # noqa: BLE001 - stopping goes on
                log.warning("could not save the allocation state on the way out: %s", exc)
        worker = threading.Thread(target=run, name="coredns-py-close", daemon=True)
        worker.start()
        worker.join(CLOSE_SECONDS)

    async def start(self) -> None:
        from coredns_py.net import listeners
        from coredns_py.resolver import forward
        loop = asyncio.get_running_loop()
        # The stateful stages around handle() (coredns_py.stages), outermost
        # first; none yet.
        self.entry = stages.chain(self.handle, [])
        self.listeners = await listeners.start(self.entry, self.listens)
        self.metrics.addresses = self.addresses()
        # Built on the bound addresses, so no upstream is one of our own.
        self.forwarder = forward.from_config(self.config, self.listeners.addresses, self.metrics)
        self.metrics.forward_enabled = self.forwarder is not None
        self.reloads = Reloads(loop, self.rebuild, failed=self._reload_failed,
                               served=self.metrics.propagation_seconds.observe)
        self.watcher = self.source.watch(self.reloads.changed)
        # The first load runs in the background: queries meanwhile get SERVFAIL.
        self.reloads.request()

    async def stop(self) -> None:
        if self.reloads is not None:
            self.reloads.cancel()
        if self.watcher is not None:
            self.watcher.stop()
        self._close_source()
        if self.listeners is not None:
            await self.listeners.close()
        if self.forwarder is not None:
            await self.forwarder.close()
