"""The manifest source: a folder of manifests, as objects, reload after reload.

It walks the folder (:mod:`.tree`), parses each file on its own
(:mod:`.manifest_file`) and keeps the result by (mtime, size, inode), so a
reload re-reads only what changed.  When a file
stops parsing it keeps that file's last good objects and reports the error;
when one object in a file turns bad, the others are used and the bad one keeps
its last good version.  A file is read without trusting it (regular files
only, bounded in size: :mod:`.reading`; in nesting and aliases: :mod:`.bounds`),
whatever fails while reading it is that file's error, and a changed file is
read once it has stopped changing (:mod:`.settle`).  Nothing downstream knows
where objects came from, so
another source plugs in at the same seam (:class:`coredns_py.source.ObjectSource`).
(CoreDNS ``plugin/hosts/hostsfile.go`` and ``plugin/file/reload.go`` do the
same for their files.)
"""

from __future__ import annotations

import functools
import logging
import time
from itertools import chain
from pathlib import Path
from typing import Optional

from coredns_py.errors import TOO_LARGE, ManifestError, RefusedFile
from coredns_py.logs import OnceLog
from coredns_py.source import Ignored, Loaded, kustomize, parallel
from coredns_py.source.manifest_file import (FileResult, failed, label, looks_truncated,
                                             parse_file, read_text)
from coredns_py.source.namespaces import DEFAULT_NAMESPACE, Placement
from coredns_py.source.parse_cache import ParseCache
from coredns_py.source.reading import MAX_FILE_BYTES, refuse_unless_regular
from coredns_py.source.settle import Settling
from coredns_py.source.tree import folder_readable, is_manifest_file, walk
from coredns_py.source.watch import Watcher

log = logging.getLogger("coredns_py.manifests")


# The first load waits at most this many settle times for files still being
# written (a folder being copied in as the server starts); what is still
# changing after that is read once it settles.
FIRST_LOAD_WAIT = 3


class ManifestSource:
    """A folder of manifests, re-read incrementally on every ``load()``
    (an :class:`~coredns_py.source.ObjectSource`).

    ``default_namespace`` is where objects that name no namespace land
    (``kubectl apply -n``); kustomizations in the folder may force another.
    ``max_file_bytes``: larger files are refused.  ``settle``: read a changed
    file only once it has stopped changing (:mod:`coredns_py.source.settle`),
    for a server that watches the folder; one-off commands read what is there.
    """

    def __init__(self, root: Path, log_errors: bool = True, cache: Optional[ParseCache] = None,
                 default_namespace: str = DEFAULT_NAMESPACE, *,
                 max_file_bytes: int = MAX_FILE_BYTES, settle: Optional[Settling] = None):
        self.root = Path(root)
        self._cache = cache  # what the last run parsed (source/parse_cache.py)
        self.default_namespace = default_namespace
        self.description = f"folder {self.root}"
        self.max_file_bytes = max_file_bytes
        self._settle = settle
        self._files: dict[Path, FileResult] = {}
        self._reparse = False
        self._generation = 0
        self._last: Optional[tuple] = None
        self._errors = OnceLog(log) if log_errors else None
        self._notices = OnceLog(log, logging.WARNING) if log_errors else None
        self._watcher: Optional[Watcher] = None
        self._outside: list[Path] = []  # symlinked folders outside root, as last listed

    def reset(self) -> None:
        """Parse every file again at the next load (the generation keeps
        counting, and a file that no longer parses keeps its last good objects)."""
        self._reparse = True

    def ready(self) -> tuple[bool, str]:
        if folder_readable(self.root):
            return True, "OK"
        return False, f"cannot read the manifests folder {self.root}"

    def watch(self, changed):
        watcher = Watcher(self.root, changed, is_manifest_file)
        watcher.follow(self._outside)
        watcher.start()
        self._watcher = watcher
        if self._settle is None:
            return watcher
        self._settle.wake = changed  # a held-back change is looked at again
        return _Watching(watcher, self._settle)

    def _placements(self, forced: tuple[str, ...]) -> tuple[Placement, ...]:
        return tuple(Placement(self.default_namespace, force) for force in forced)

    def load(self) -> Loaded:
        listing = walk(self.root)  # raises SourceError when the folder is gone
        self._outside = listing.outside
        if self._watcher is not None:
            self._watcher.follow(listing.outside)
        plan = kustomize.plan(self.root, listing.kustomizations, listing.files,
                              functools.partial(read_text, limit=self.max_file_bytes))
        paths = listing.files
        files, parsed = self._read(paths, plan)
        if self._last is None and self._settle is not None:
            # The first load: nothing is served yet, so wait a little for
            # files still being written rather than start without them.
            deadline = time.monotonic() + FIRST_LOAD_WAIT * self._settle.seconds
            while self._settle.due is not None and time.monotonic() < deadline:
                time.sleep(min(self._settle.due, max(0.0, deadline - time.monotonic())))
                self._files = files
                files, more = self._read(paths, plan)
                parsed += more
        self._files = files
        if self._cache is not None:
            self._cache.save(files, parsed)

        objects: list = []
        errors: list[ManifestError] = list(plan.errors)
        skipped: list[Ignored] = []
        owner: dict[tuple, Path] = {}
        listed = set(paths)
        for path in paths + [p for p in files if p not in listed]:  # then deletions held back
            res = files.get(path)
            if res is None:
                continue
            errors.extend(res.errors)
            skipped.extend(res.ignored)
            mine = res.objects
            if owner.keys().isdisjoint(mine):
                # No object the files before defined (nearly always): in
                # bulk, without a Python step per object (a tenth of a
                # one-file reload at 100k Services went there).
                owner.update(dict.fromkeys(mine, path))
                objects.extend(chain.from_iterable(mine.values()))
                continue
            for key, objs in mine.items():
                first = owner.get(key)
                if first is not None:
                    errors.append(ManifestError(
                        f"also defined in {first}; the one in {first} is used", str(path),
                        getattr(objs[0].origin, "line", None) if objs else None,
                        label(key)))
                    continue
                owner[key] = path
                objects.extend(objs)
        result = tuple(objects)
        notices = tuple(listing.loops) + tuple(plan.notices)
        # A new generation when the objects change, or only the problems (a
        # file refused or broken now): /metrics and the status page show them.
        current = (result, tuple(map(str, errors)))
        if current != self._last:
            self._generation += 1
            self._last = current
        if self._errors is not None:
            self._errors.report(errors)
            self._notices.report(notices)
        return Loaded(result, tuple(errors), len(paths) + len(listing.kustomizations),
                      self._generation, tuple(skipped), notices)

    def _read(self, paths: list[Path], plan) -> tuple[dict[Path, FileResult], int]:
        """Each file's result: parsed again if it changed (and has settled),
        else the last one; and how many files were parsed."""
        settle, limit = self._settle, self.max_file_bytes
        reparse, self._reparse = self._reparse, False
        files: dict[Path, FileResult] = {}
        todo = []
        for path in paths:
            placements = self._placements(plan.forced.get(path, ("",)))
            try:
                st = path.stat()
            except OSError:
                continue  # deleted between the listing and now
            # Where its objects land is part of what a file gave.
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino, placements)
            old = self._files.get(path)
            if old is not None and old.stamp == stamp and not reparse:
                files[path] = old
                continue
            if settle is not None and (old is None or old.stamp[:3] != stamp[:3]):
                wait = settle.changed_wait(path, stamp)
                if wait > 0:
                    settle.hold(path, stamp, wait)
                    if old is not None:
                        files[path] = old
                    continue
            try:
                refuse_unless_regular(path, st)  # a device is never even opened
            except RefusedFile as exc:
                files[path] = failed(FileResult(stamp), exc, old)
                continue
            todo.append((path, stamp, old))
        if self._cache is not None:
            kept, todo = self._cache.take(todo)
            for path, res in kept.items():
                # Read under another max_file_bytes: read again.
                if (res.stamp[1] > limit) != any(getattr(e, "reason", "") == TOO_LARGE
                                                 for e in res.errors):
                    todo.append((path, res.stamp, None))
                else:
                    files[path] = res
        # On every core when there is much to read (source/parallel.py).
        parsed = parallel.parse_all(todo, functools.partial(parse_file, limit=limit))
        for path, stamp, old in todo:
            new = parsed[path]
            if settle is not None and old is not None and old.stamp[:3] != stamp[:3] \
                    and looks_truncated(old, new):
                wait = settle.truncated_wait(path, stamp)
                if wait > 0:
                    settle.hold(path, stamp, wait)
                    files[path] = old
                    continue
            if settle is not None:
                settle.published(path)
            files[path] = new
        if settle is not None:
            listed = set(paths)
            for path, old in self._files.items():
                if path not in listed:  # deleted, or moved away
                    wait = settle.gone_wait(path)
                    if wait > 0:
                        settle.hold(path, None, wait)
                        files[path] = old
                    else:
                        settle.published(path)
            settle.end_load(listed)
        return files, len(todo)


class _Watching:
    """The watcher, and the settle timer that wakes the server for held-back changes."""

    def __init__(self, watcher: Watcher, settle: Settling):
        self.watcher, self.settle = watcher, settle

    def stop(self) -> None:
        self.settle.stop()
        self.watcher.stop()
