"""A replica's cluster: the filled-in cluster a publisher keeps in etcd.

The second seam's other side (:class:`~coredns_py.cluster.ClusterSource`):
no folder, no allocation, no fill-in; the objects come as the publisher
filled them in (:mod:`coredns_py.publish`), so every replica answers with
the same addresses.  As Kubernetes' client-go reflector does, it lists the
keys once (paged, at one revision), then watches from the next revision
and applies each change to what it holds:

- only what changed is decoded again: an unchanged key keeps the very
  object it was decoded into, and a namespace with no changed key keeps its
  result, so the snapshot's memo reuses their work (as it does for files);
- a change becomes visible only when no publish is pending
  (``cluster/pending``, :mod:`coredns_py.etcd.layout`): a replica never
  serves half of one;
- answers come from memory only: nothing here runs per DNS query;
- a compacted revision means listing again (what changed meanwhile is
  worked out key by key, so unchanged objects stay the same objects);
- when etcd cannot be reached, the last snapshot keeps being served; the
  replica tries the other members, then again with a backoff, and says so
  in its log, in ``/ready`` and in its metrics.

The objects of a namespace are in key order (kind, then name), the same on
every replica.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from typing import Callable, Optional

from coredns_py.cluster import Cluster, ClusterLoad
from coredns_py.cluster import codec
from coredns_py.cluster.fill import NamespaceResult
from coredns_py.errors import SourceError
from coredns_py.etcd.client import Etcd, EtcdError, prefix_end
from coredns_py.etcd.layout import Layout, Record
from coredns_py.etcd.watch import Compacted, StreamBroken, Watch
from coredns_py.logs import OnceLog
from coredns_py.source import objects as o

log = logging.getLogger("coredns_py.etcd")

# Keys per page of a list: a page of 1000 objects is about 400 KB of JSON,
# well under the gateway's message limits, and 10k Services take ~30 pages.
LIST_PAGE = 1000

# Waiting between attempts when no member answers: doubled each time up to
# the ceiling, with jitter so that replicas do not all come back at once.
# A restarted etcd member serves again within a second or two.
BACKOFF_FIRST = 0.2
BACKOFF_MAX = 3.0

# An outage still going on is logged again this often.
OUTAGE_LOG_EVERY = 60.0

# A one-off command (get, env) waits this long for a complete publish when
# it finds one being written.
ONE_OFF_WAIT = 10.0


class _Mirror:
    """The keys under ``cluster/`` as decoded objects, between commits.
    Only the sync thread touches it."""

    def __init__(self, layout: Layout, problems: Optional[OnceLog]):
        self.layout = layout
        self.problems = problems
        self.bad: dict[bytes, str] = {}  # keys that did not decode, why
        # namespace -> key -> (mod_revision, object)
        self.objects: dict[str, dict[bytes, tuple[int, object]]] = {}
        self.namespaces: set[str] = set()
        self.record: Optional[Record] = None
        self.record_revision = 0
        self.pending = False
        self.dirty: set[str] = set()  # namespaces changed since the last commit
        self.results: dict[str, NamespaceResult] = {}  # the last commit's
        self.committed_revision = 0  # record_revision at the last commit

    # --- changes --------------------------------------------------------------------

    def apply(self, key: bytes, value: Optional[bytes], revision: int) -> None:
        layout = self.layout
        if key == layout.generation:
            if value is not None:
                try:
                    self.record = Record.decode(value)
                    self.record_revision = revision
                except ValueError as exc:
                    self._bad(key, f"not a generation record: {exc}")
            return
        if key == layout.pending:
            self.pending = value is not None
            return
        ns = layout.namespace_of(key)
        if ns is None:
            return
        if key.startswith(layout.namespaces):
            if (value is not None) != (ns in self.namespaces):
                (self.namespaces.add if value is not None else self.namespaces.discard)(ns)
                self.dirty.add(ns)
            return
        table = self.objects.setdefault(ns, {})
        if value is None:
            if table.pop(key, None) is not None:
                self.dirty.add(ns)
            self.bad.pop(key, None)
            return
        old = table.get(key)
        if old is not None and old[0] == revision:
            return  # listed again, not changed: keep the very object
        try:
            obj = codec.decode(value)
            if obj.namespace != ns:
                raise codec.CodecError(f"its namespace is {obj.namespace!r}")
        except codec.CodecError as exc:
            # Keep what this key held before (if anything): bad data never
            # replaces good data.
            self._bad(key, str(exc))
            return
        self.bad.pop(key, None)
        table[key] = (revision, obj)
        self.dirty.add(ns)

    def _bad(self, key: bytes, why: str) -> None:
        self.bad[key] = why
        if self.problems is not None:
            self.problems.report(f"etcd key {k.decode('utf-8', 'replace')}: {w}"
                                 for k, w in self.bad.items())

    def replace(self, pages) -> int:
        """A fresh list, a page at a time: what changed is applied, what is
        gone deleted; the number of keys listed.  (A list that fails halfway
        leaves a mix that is never committed: the next list replaces it.)"""
        seen = set()
        self.pending = False
        for kvs in pages:
            for key, value, revision in kvs:
                seen.add(key)
                self.apply(key, value, revision)
        for ns in list(self.objects):
            for key in [k for k in self.objects[ns] if k not in seen]:
                self.apply(key, None, 0)
        for ns in list(self.namespaces):
            if self.layout.namespace_key(ns) not in seen:
                self.apply(self.layout.namespace_key(ns), None, 0)
        return len(seen)

    # --- commits --------------------------------------------------------------------

    def ready_to_commit(self) -> bool:
        """A complete publish is there that is not served yet."""
        return (self.record is not None and not self.pending
                and (bool(self.dirty) or self.record_revision != self.committed_revision))

    def commit(self) -> ClusterLoad:
        for ns in self.dirty:
            table = self.objects.get(ns)
            if not table:
                self.objects.pop(ns, None)
                self.results.pop(ns, None)
                continue
            services, slices, pods = [], [], []
            for key in sorted(table):
                obj = table[key][1]
                kind = type(obj)
                (services if kind is o.Service else
                 slices if kind is o.EndpointSlice else pods).append(obj)
            self.results[ns] = NamespaceResult(tuple(services), tuple(slices), tuple(pods), ())
        self.dirty = set()
        self.committed_revision = self.record_revision
        results = {ns: self.results[ns] for ns in sorted(self.results)}
        cluster = Cluster(
            frozenset(self.namespaces) | frozenset(results),
            tuple(s for r in results.values() for s in r.services),
            tuple(s for r in results.values() for s in r.slices),
            tuple(p for r in results.values() for p in r.pods),
            (), results)
        record = self.record
        errors = []
        for data in record.errors:
            try:
                errors.append(codec.decode_error(data))
            except codec.CodecError:
                continue
        return ClusterLoad(cluster, tuple(errors), (), record.files, self.record_revision,
                           kinds=dict(record.kinds))


class EtcdCluster:
    """A :class:`~coredns_py.cluster.ClusterSource` that reads what a
    publisher wrote under ``layout.prefix``; it never allocates."""

    def __init__(self, etcd: Etcd, layout: Layout, *, log_errors: bool = True):
        self.etcd = etcd
        self.layout = layout
        self.description = f"etcd {etcd.describe()} prefix {layout.prefix}"
        self._mirror = _Mirror(layout, OnceLog(log) if log_errors else None)
        self._current: Optional[ClusterLoad] = None  # the last commit, swapped whole
        self._served: Optional[ClusterLoad] = None  # what load() gave last
        self._changed: Callable[[], None] = lambda: None
        self._thread: Optional[threading.Thread] = None
        self._stopping = threading.Event()
        self._relist = False
        self._watch: Optional[Watch] = None
        # What the metrics, /ready and the log say (written by the sync thread).
        self.connected = False
        self.revision = 0  # the etcd revision of what the replica has seen
        self.updated_at: Optional[float] = None  # monotonic: the last commit
        self.lost_at: Optional[float] = None  # monotonic: since when unreachable
        self.lost_reason = ""
        self._lost_logged = 0.0
        self._retried = False  # a broken stream was retried on another member at once

    # --- the ClusterSource --------------------------------------------------------

    def load(self, full: bool = False) -> Optional[ClusterLoad]:
        if self._thread is None:
            return self._load_once()
        if full:
            self._relist = True  # SIGHUP: list everything again
            self._break_watch()
        current = self._current
        if current is None or (current is self._served and not full):
            return None
        self._served = current
        return current

    def ready(self) -> tuple[bool, str]:
        if self._thread is None:
            return True, "OK"
        if not self.connected and self.lost_at is not None:
            return False, (f"etcd unreachable for {time.monotonic() - self.lost_at:.0f} s "
                           f"({self.lost_reason}); answering from the last snapshot "
                           f"(revision {self.revision})")
        if self._current is None:
            return False, f"waiting for a complete publish under {self.layout.prefix}"
        return True, "OK"

    def watch(self, changed: Callable[[], None]):
        self._changed = changed
        self._thread = threading.Thread(target=self._run, name="etcd-replica", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._break_watch()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    def gauges(self) -> list[tuple[str, str, float]]:
        """What ``/metrics`` reports of this source: (name, help, value)."""
        since = (time.monotonic() - self.updated_at) if self.updated_at is not None else -1
        return [
            ("etcd_revision", "The etcd revision the replica has applied.", self.revision),
            ("etcd_connected", "1 while the replica follows etcd, 0 while it cannot reach "
             "any member (it keeps answering from its last snapshot).",
             1 if self.connected else 0),
            ("etcd_seconds_since_update", "Seconds since the replica last applied a "
             "publish (-1 before the first).", round(since, 3)),
        ]

    # --- one-off commands (get, env) --------------------------------------------------

    def _load_once(self) -> ClusterLoad:
        try:
            self._list()
            deadline = time.monotonic() + ONE_OFF_WAIT
            while self._current is None and self._mirror.record is not None:
                if time.monotonic() > deadline:
                    raise SourceError(f"a publish under {self.layout.prefix} on etcd "
                                      f"{self.etcd.describe()} is not complete after "
                                      f"{ONE_OFF_WAIT:g} s")
                timer = threading.Timer(max(0.0, deadline - time.monotonic()),
                                        self._break_watch)
                timer.start()
                try:
                    self._follow(until_commit=True)
                finally:
                    timer.cancel()
        except (EtcdError, StreamBroken) as exc:
            raise SourceError(str(exc)) from None
        if self._current is None:
            raise SourceError(f"nothing is published under {self.layout.prefix} on etcd "
                              f"{self.etcd.describe()} (is `coredns-py publish` running?)")
        return self._current

    # --- the sync thread ----------------------------------------------------------------

    def _run(self) -> None:
        backoff = BACKOFF_FIRST
        need_list = self._current is None  # a one-off load may have listed already
        self._retried = False
        while not self._stopping.is_set():
            try:
                if need_list or self._relist:
                    self._relist = False
                    self._list()
                    need_list = False
                backoff = BACKOFF_FIRST
                self._follow()
            except Compacted as exc:
                log.warning("etcd: %s, past the replica's revision %d: listing %s again",
                            exc, self.revision, self.layout.prefix)
                need_list = True
            except (StreamBroken, EtcdError) as exc:
                if self._stopping.is_set():
                    break
                if self._relist:
                    continue
                self.etcd.next_endpoint()
                if isinstance(exc, StreamBroken) and self.connected and not self._retried:
                    # The member went away: try the next one at once.
                    log.info("etcd: %s; following another member", exc)
                    self._retried = True
                    continue
                self._lost(exc)
                self._stopping.wait(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, BACKOFF_MAX)
            except Exception:  # a bug must not end the following: list again
                log.exception("etcd: unexpected error following %s; listing it again",
                              self.layout.prefix)
                need_list = True
                self._stopping.wait(BACKOFF_MAX)

    def _list(self) -> None:
        started = time.monotonic()
        revision = [0]

        def pages():
            for revision[0], page in _prefetched(
                    self.etcd.list_prefix(self.layout.cluster, page=LIST_PAGE)):
                yield page
        count = self._mirror.replace(pages())
        self.revision = revision[0]
        self._found()
        log.info("etcd: listed %d keys of %s at revision %d from %s (%.0f ms)", count,
                 self.layout.prefix, self.revision, self.etcd.endpoint,
                 (time.monotonic() - started) * 1000)
        if self._mirror.record is None:
            log.info("etcd: nothing published under %s yet; waiting for a publisher",
                     self.layout.prefix)
        self._maybe_commit()

    def _follow(self, until_commit: bool = False) -> None:
        """Apply the watch's changes until the stream ends (or, for a one-off
        command, until a publish is complete)."""
        watch = Watch(self.etcd, self.layout.cluster, prefix_end(self.layout.cluster),
                      self.revision + 1)
        self._watch = watch
        try:
            if self._stopping.is_set() or self._relist:
                return
            for batch in watch:
                self._found()
                for event in batch.events:
                    self._mirror.apply(event.key, event.value, event.mod_revision)
                    self.revision = max(self.revision, event.mod_revision)
                if self._maybe_commit() and until_commit:
                    return
        finally:
            self._watch = None
            watch.close()

    def _maybe_commit(self) -> bool:
        if not self._mirror.ready_to_commit():
            return False
        self._current = self._mirror.commit()
        self.updated_at = time.monotonic()
        self._changed()
        return True

    def _break_watch(self) -> None:
        watch = self._watch
        if watch is not None:
            watch.close()

    def _found(self) -> None:
        if not self.connected and self.lost_at is not None:
            log.warning("etcd: reachable again at %s after %.1f s; following from revision %d",
                        self.etcd.endpoint, time.monotonic() - self.lost_at, self.revision)
        self.connected = True
        self.lost_at = None
        self._retried = False  # the next broken stream may try another member at once

    def _lost(self, exc: BaseException) -> None:
        now = time.monotonic()
        reason = str(exc)
        if self.connected or self.lost_at is None:
            self.lost_at = now
            self._lost_logged = now
            what = ("answering from the last snapshot (revision %d)" % self.revision
                    if self._current is not None else "not ready until it answers")
            log.warning("etcd: %s; %s, retrying", reason, what)
        elif now - self._lost_logged >= OUTAGE_LOG_EVERY:
            self._lost_logged = now
            log.warning("etcd: still unreachable after %.0f s: %s", now - self.lost_at, reason)
        self.connected = False
        self.lost_reason = reason


def _prefetched(pages, ahead: int = 4):
    """The pages of a list, each fetched while the one before is decoded:
    etcd's side of a page (and the wait for it) overlaps our decoding."""
    q: queue.Queue = queue.Queue(maxsize=ahead)
    done = object()
    abandoned = threading.Event()  # the reader stopped early: stop fetching

    def hand_over(item) -> None:
        while not abandoned.is_set():
            try:
                q.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def fetch() -> None:
        try:
            for page in pages:
                if abandoned.is_set():
                    return
                hand_over(page)
            hand_over(done)
        except BaseException as exc:  # handed to the reader, raised there
            hand_over(exc)

    threading.Thread(target=fetch, name="etcd-list", daemon=True).start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        abandoned.set()
