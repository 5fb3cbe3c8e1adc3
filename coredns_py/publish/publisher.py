"""``coredns-py publish``: lead, load the folder as ``serve`` does, publish,
watch the folder, publish each change.

The folder goes through the very code ``serve`` uses (the manifest source,
its validation, the fill-in with its memo), except that addresses are kept
in etcd (:mod:`.allocations`) instead of the local state file.  When to
publish is decided by :class:`~coredns_py.reloads.Reloads`, as when to
rebuild is for ``serve``: changes coalesced, one publish at a time, none
lost.  A publish etcd refused is tried again with a backoff; a publisher
that loses the lead stops writing at once and campaigns again.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Optional

from coredns_py.cluster import local
from coredns_py.config import Config
from coredns_py.errors import SourceError
from coredns_py.etcd.client import Etcd, EtcdError
from coredns_py.etcd.layout import Layout
from coredns_py.publish.allocations import EtcdAllocations
from coredns_py.publish.leader import Leadership
from coredns_py.publish.writer import LostLeadership, Writer
from coredns_py.reloads import Reloads

log = logging.getLogger("coredns_py.publish")

# A publish etcd refused (no member answers) is tried again after this
# long, doubled up to the ceiling: the folder's change is not lost, only late.
RETRY_FIRST = 0.5
RETRY_MAX = 5.0


class Publisher:
    def __init__(self, manifests: Path, config: Config, etcd: Etcd, layout: Layout):
        self.manifests = Path(manifests)
        self.config = config
        self.etcd = etcd
        self.layout = layout
        # Who leads, for the logs of every publisher: host, process, and a
        # random part so that two runs never share a name.
        self.identity = f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"
        self.leadership = Leadership(etcd, layout, self.identity)
        self.stopping = threading.Event()
        self._reloads: Optional[Reloads] = None
        self._stop_soon = None  # ends the current stretch of leading

    def stop(self) -> None:
        """Stop (SIGTERM): finish the publish under way, give up the lead."""
        self.stopping.set()
        if self._stop_soon is not None:
            self._stop_soon()

    def republish(self) -> None:
        """Read the whole folder again and publish it (SIGHUP)."""
        if self._reloads is not None:
            self._reloads.request(full=True)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self.stopping.is_set():
                led = await loop.run_in_executor(None, self.leadership.campaign, self.stopping)
                if not led:
                    break
                await self._lead(loop)
                if not self.stopping.is_set():
                    log.warning("publish: lost the lead; waiting to lead again")
        finally:
            await loop.run_in_executor(None, self.leadership.resign)
            log.info("publish: stopped")

    async def _lead(self, loop: asyncio.AbstractEventLoop) -> None:
        done = asyncio.Event()
        self._stop_soon = lambda: loop.call_soon_threadsafe(done.set)
        self.leadership.on_lost = self._stop_soon
        if self.leadership.lost.is_set() or self.stopping.is_set():
            return
        run = _Leading(self, loop)
        self._reloads = run.reloads
        watcher = run.source.watch(run.reloads.changed)
        run.reloads.request()
        try:
            await done.wait()
        finally:
            self._reloads = None
            run.reloads.cancel()
            watcher.stop()
            await loop.run_in_executor(None, run.finish)


class _Leading:
    """One stretch of leading: the folder's source, the writer, and what
    was not published yet."""

    def __init__(self, publisher: Publisher, loop: asyncio.AbstractEventLoop):
        self.publisher = publisher
        self.loop = loop
        lead = publisher.leadership
        self.allocations = EtcdAllocations(publisher.etcd, publisher.layout, lead.fence,
                                           publisher.config.state_path(publisher.manifests))
        # The folder exactly as serve reads it; addresses in etcd.
        self.source = local.from_folder(publisher.manifests, publisher.config,
                                        store=self.allocations)
        self.writer = Writer(publisher.etcd, publisher.layout, publisher.identity, lead.fence)
        self.reloads = Reloads(loop, self.publish, failed=self._failed,
                               served=lambda seconds: None)
        self._lock = threading.Lock()  # one publish at a time; finish() waits for it
        self._last = None  # the last load, published or not
        self._unpublished = False  # _last is not in etcd yet
        self._retry = RETRY_FIRST
        self._over = False

    def publish(self, full: bool) -> bool:
        """Load the folder and publish what changed (a worker thread)."""
        with self._lock:
            if self._over or self.publisher.leadership.lost.is_set():
                return False
            started = time.monotonic()
            try:
                load = self.source.load(full=full)
                if load is None and not (self._unpublished or full):
                    return False
                load = load or self._last
                self._last = load
                self._unpublished = True
                # Every address the objects hold is in etcd's state first.
                self.allocations.flush()
                kinds = collections.Counter(obj.kind for obj in load.objects)
                written = self.writer.publish(load.cluster, load.errors, load.files,
                                              dict(kinds), force=full)
            except LostLeadership as exc:
                log.warning("publish: %s", exc)
                self.publisher.leadership.lost.set()
                self.publisher.leadership.on_lost()
                return False
            except EtcdError as exc:
                log.warning("publish: cannot publish: %s; trying again in %.1f s",
                            exc, self._retry)
                self.loop.call_soon_threadsafe(self.loop.call_later, self._retry,
                                               self.reloads.request)
                self._retry = min(self._retry * 2, RETRY_MAX)
                return False
            except SourceError as exc:
                log.error("%s; replicas keep the last publish", exc)
                return False
            self._unpublished = False
            self._retry = RETRY_FIRST
            if written is not None:
                log.info("publish: generation %d: %d keys written, %d deleted, in %d "
                         "transaction%s (%.0f ms)", written.generation, written.puts,
                         written.deletes, written.transactions,
                         "" if written.transactions == 1 else "s",
                         (time.monotonic() - started) * 1000)
            return written is not None

    def _failed(self, exc: BaseException) -> None:
        log.error("publish failed: %r; the folder is published again at its next change", exc)

    def finish(self) -> None:
        """Wait for the publish under way; publish nothing after it."""
        with self._lock:
            self._over = True
