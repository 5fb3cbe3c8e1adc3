"""The running server: load, build a snapshot aside, swap it in, answer.

Files are watched with watchdog; a change schedules a rebuild in a worker
thread (parsing only the files that changed), and the new snapshot replaces
the old one in one assignment on the event loop.  Until the first load
completes, every query gets SERVFAIL.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
import time
from pathlib import Path
from typing import Optional

from coredns_py import answer as answer_mod
from coredns_py import cluster as cluster_mod
from coredns_py import snapshot as snapshot_mod
from coredns_py.answer_cache import AnswerCache
from coredns_py.config import Config
from coredns_py.manifests import ManifestSource, SourceError
from coredns_py.reload import Watcher

log = logging.getLogger("coredns_py.server")

# Changes arriving within this window are applied in one rebuild: an editor
# saving a file often writes, renames and touches it in quick succession.
RELOAD_DEBOUNCE = 0.02


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

    # --- the core call: bytes in, bytes out ---------------------------------------

    def handle(self, wire: bytes, proto: str, peer):
        # self.snapshot is read once: the whole answer comes from that one.
        snap = self.snapshot
        forwarding = self.forwarder is not None
        out = self.answers.answer(
            snap, wire, proto, lambda: answer_mod.answer(snap, wire, proto, forwarding=forwarding))
        if type(out) is answer_mod.Forward:
            return self.forwarder.complete(out, peer)  # an awaitable
        return out

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
        with self._lock:
            started = time.monotonic()
            try:
                loaded = self.source.load()
            except SourceError as exc:
                log.error("%s; still serving the last good data", exc)
                return False
            if self.snapshot is not None and loaded.generation == self._generation:
                return False
            cluster = cluster_mod.build(loaded.objects, self.config,
                                        self.config.state_path(self.manifests))
            for err in cluster.errors:
                log.error("%s", err)
            if loaded.generation != self._generation:
                self._serial = max(self._serial + 1, int(time.time()))
            snap = snapshot_mod.build(cluster, self.config, self._serial, self.ns_addresses(),
                                      loaded.generation)
            self._generation = loaded.generation
            self.loaded = loaded
            self.cluster = cluster
            self.snapshot = snap  # the swap: one reference assignment
            self.last_reload = time.time()
            self.last_reload_seconds = time.monotonic() - started
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
        if self._pending is None:
            self._pending = self._loop.call_later(RELOAD_DEBOUNCE, self._start_rebuild)

    def _start_rebuild(self) -> None:
        self._pending = None
        if self._running:
            self._dirty = True  # rebuild again when the current one ends
            return
        self._running = True
        fut = self._loop.run_in_executor(None, self.rebuild)
        fut.add_done_callback(self._rebuild_done)

    def _rebuild_done(self, fut) -> None:
        self._running = False
        if fut.exception() is not None:
            log.error("reload failed: %r; still serving the last good data", fut.exception())
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
        from coredns_py import transport
        self._loop = asyncio.get_running_loop()
        self.listeners = await transport.start(self.handle, self.listens)
        # Built on the bound addresses, so no upstream is one of our own.
        from coredns_py import forward
        self.forwarder = forward.from_config(self.config, self.listeners.addresses)
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
