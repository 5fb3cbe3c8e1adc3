"""The running server: load, build a snapshot aside, swap it in, answer.

Files are watched with watchdog; a change schedules a rebuild in a worker
thread (parsing only the files that changed), and the new snapshot replaces
the old one in one assignment on the event loop.  Until the first load
completes, every query gets SERVFAIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import threading
import time
from pathlib import Path
from typing import Optional

from coredns_py.zone import answer as answer_mod
from coredns_py.cluster import fill as cluster_mod
from coredns_py.ops import metrics as metrics_mod
from coredns_py.zone import snapshot as snapshot_mod
from coredns_py.zone.answer_cache import AnswerCache
from coredns_py.config import Config
from coredns_py.errors import SourceError
from coredns_py.ops.logs import OnceLog
from coredns_py.memo import Memo
from coredns_py.source.folder import ManifestSource
from coredns_py.source.watch import Watcher

log = logging.getLogger("coredns_py.server")

# Changes arriving within this window are applied in one rebuild: an editor
# saving a file often writes, renames and touches it in quick succession.
RELOAD_DEBOUNCE = 0.02

_clock = time.perf_counter


def _freeze_heap() -> None:
    """After a build: keep the cyclic garbage collector off the snapshot.

    ``gc.freeze()`` moves every object alive now (the snapshot, the parsed
    files) out of the collector's reach.  Without it the first collection
    after a build walks everything the build made (the build runs with the
    collector paused): measured 170 ms at 10k Services, during which no
    query is answered; and every later full collection walks it again.
    The price: cyclic garbage frozen here is never collected.  Measured: 7
    objects per one-file reload, about 1,400 per full reload (SIGHUP),
    which we accept.
    """
    gc.freeze()


@contextlib.contextmanager
def _no_cyclic_gc():
    """Pause the cyclic garbage collector while a snapshot is built.

    A build allocates tens of thousands of objects next to a heap of the same
    size (the current snapshot, the parsed files); every few hundred
    allocations the collector would walk that heap again. Measured on 10k
    Services this halved a reload. Reference counting still frees garbage
    meanwhile, and the collector runs again as soon as the build ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Server:
    def __init__(self, manifests: Path, config: Config, listens: list[tuple[str, int]]):
        self.manifests = Path(manifests)
        self.config = config
        self.listens = listens
        self.source = ManifestSource(self.manifests)
        self.snapshot: Optional[snapshot_mod.Snapshot] = None
        self.loaded = None  # the last Loaded (objects and errors)
        self.last_reload: Optional[float] = None
        self.last_reload_seconds: Optional[float] = None
        self._generation = 0
        self._serial = 0
        self._lock = threading.Lock()  # one rebuild at a time
        # Results of the last build, reused for what a reload did not touch.
        self._cluster_memo = Memo()
        self._snapshot_memo = Memo()
        self._problems = OnceLog(log)
        self._pending: Optional[asyncio.TimerHandle] = None
        self._running = False
        self._dirty = False
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self.listeners = None
        self.watcher: Optional[Watcher] = None
        self.answers = AnswerCache()
        # Completes answers that need upstream data (names outside our zones,
        # ExternalNames pointing outside); None: such queries are REFUSED.
        self.forwarder = None
        # Counts every query (hot path: plain dict updates) and reload;
        # ``observe`` is what handle() reports each query to (the query log
        # wraps it when on).
        self.metrics = metrics_mod.Metrics(self)
        self.observe = self.metrics.record
        self._change_seen: Optional[float] = None  # the first change not yet served
        self._reload_started: Optional[float] = None

    # --- the core call: bytes in, bytes out ---------------------------------------

    def handle(self, wire: bytes, proto: str, peer):
        started = _clock()
        # self.snapshot is read once: the whole answer comes from that one.
        snap = self.snapshot
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

    # --- building snapshots -------------------------------------------------------

    def ns_addresses(self) -> tuple[str, ...]:
        out = []
        for host, _port in self.listens:
            try:
                ip = ipaddress.ip_address(host)
            except ValueError:
                continue
            if not ip.is_unspecified:
                out.append(str(ip))
        return tuple(out)

    def rebuild(self) -> bool:
        """Load and build a new snapshot; True when it was swapped in.

        Runs in a worker thread. A folder that cannot be read keeps the
        current snapshot (and logs why): serving the last good data beats
        serving nothing.
        """
        with self._lock, _no_cyclic_gc():
            started = time.monotonic()
            try:
                loaded = self.source.load()
            except SourceError as exc:
                log.error("%s; still serving the last good data", exc)
                self.metrics.reload_failed.inc()
                return False
            if self.snapshot is not None and loaded.generation == self._generation:
                return False
            cluster = cluster_mod.build(loaded.objects, self.config,
                                        self.config.state_path(self.manifests),
                                        self._cluster_memo)
            self._problems.report(cluster.errors)  # once each, as manifest errors
            if loaded.generation != self._generation:
                self._serial = max(self._serial + 1, int(time.time()))
            snap = snapshot_mod.build(cluster, self.config, self._serial, self.ns_addresses(),
                                      loaded.generation, self._snapshot_memo)
            self._generation = loaded.generation
            self.loaded = loaded
            self.cluster = cluster
            self.snapshot = snap  # the swap: one reference assignment
            _freeze_heap()
            self.last_reload = time.time()
            self.last_reload_seconds = time.monotonic() - started
            self.metrics.reloads.inc()
            self.metrics.build_seconds.observe(self.last_reload_seconds)
            log.info("loaded %d files: %s (%.0f ms)", loaded.files,
                     ", ".join(f"{v} {k}" for k, v in snap.counts.items()),
                     self.last_reload_seconds * 1000)
            return True

    # --- reload scheduling (event loop side) -------------------------------------------

    def changed(self) -> None:
        """Called from the watcher thread when something under the folder changed."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._schedule)

    def _schedule(self) -> None:
        if self._change_seen is None:
            self._change_seen = time.monotonic()
        if self._pending is None:
            self._pending = self._loop.call_later(RELOAD_DEBOUNCE, self._start_rebuild)

    def _start_rebuild(self) -> None:
        self._pending = None
        if self._running:
            self._dirty = True  # rebuild again when the current one ends
            return
        self._running = True
        self._reload_started, self._change_seen = self._change_seen, None
        fut = self._loop.run_in_executor(None, self.rebuild)
        fut.add_done_callback(self._rebuild_done)

    def _rebuild_done(self, fut) -> None:
        self._running = False
        if fut.exception() is not None:
            log.error("reload failed: %r; still serving the last good data", fut.exception())
            self.metrics.reload_failed.inc()
        elif fut.result() and self._reload_started is not None:
            # From the first change this rebuild took in to its answers
            # being served (the swap happened in the worker thread already).
            self.metrics.propagation_seconds.observe(time.monotonic() - self._reload_started)
        if self._dirty:
            self._dirty = False
            self._schedule()

    def request_reload(self) -> None:
        """A full reload (SIGHUP): forget the file cache and rebuild."""
        self.source = ManifestSource(self.manifests)
        self._generation = -1
        self._schedule()

    # --- life cycle ------------------------------------------------------------------

    async def start(self) -> None:
        from coredns_py.net import listeners
        self._loop = asyncio.get_running_loop()
        self.listeners = await listeners.start(self.handle, self.listens)
        # Built on the bound addresses, so no upstream is one of our own.
        from coredns_py.resolver import forward
        self.forwarder = forward.from_config(self.config, self.listeners.addresses, self.metrics)
        self.watcher = Watcher(self.manifests, self.changed)
        self.watcher.start()
        # The first load runs in the background: queries meanwhile get SERVFAIL.
        self._schedule()

    async def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.listeners is not None:
            await self.listeners.close()
        if self.forwarder is not None:
            await self.forwarder.close()
