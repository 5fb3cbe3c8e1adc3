"""The manifest source: the only module that reads manifest files.

It walks a folder, parses each file on its own and caches the result by
(mtime, size, inode), so a reload re-reads only what changed.  When a file
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
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from coredns_py.source.convert import convert
from coredns_py.errors import TOO_LARGE, ManifestError, RefusedFile, SourceError
from coredns_py.source import Loaded
from coredns_py.logs import OnceLog
from coredns_py.source import parallel
from coredns_py.source.documents import documents
from coredns_py.source.parse_cache import ParseCache
from coredns_py.source.reading import MAX_FILE_BYTES, read_text, refuse_unless_regular
from coredns_py.source.settle import Settling
from coredns_py.source.watch import Watcher

log = logging.getLogger("coredns_py.manifests")

SUFFIXES = (".yaml", ".yml", ".json")

# The first load waits at most this many settle times for files still being
# written (a folder being copied in as the server starts); what is still
# changing after that is read once it settles.
FIRST_LOAD_WAIT = 3


def is_manifest_file(name: str) -> bool:
    """Manifest files by name; hidden files and editor leftovers are not.

    Vim swap files end in .swp, Emacs backups in ~ and lock files start with
    .#; all of them are hidden or have the wrong suffix, checked here so the
    watcher and the loader agree.
    """
    base = os.path.basename(name)
    if base.startswith(".") or base.endswith("~"):
        return False
    return base.lower().endswith(SUFFIXES)


def list_files(root: Path) -> list[Path]:
    """Every manifest file under root, recursively, in path order."""
    if not root.is_dir():
        if not root.exists():
            raise SourceError(f"manifests folder {root} does not exist")
        raise SourceError(f"manifests path {root} is not a folder")
    if not os.access(root, os.R_OK | os.X_OK):
        raise SourceError(f"manifests folder {root} is not readable")
    out = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=None):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if is_manifest_file(name):
                out.append(Path(dirpath) / name)
    return sorted(out, key=lambda p: p.relative_to(root).parts)


def folder_readable(path) -> bool:
    """True when the folder can be opened now (a cheap live check)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    os.close(fd)
    return True


@dataclass
class FileResult:
    """What one file gave: objects by identity, and its errors."""

    stamp: tuple
    objects: dict[tuple, list] = field(default_factory=dict)  # (kind, ns, name) -> objects
    errors: list[ManifestError] = field(default_factory=list)
    syntax_error: bool = False


def _identity(raw: Any) -> Optional[tuple]:
    if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str):
        return None
    meta = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    name, ns = meta.get("name"), meta.get("namespace") or "default"
    if not isinstance(name, str) or not isinstance(ns, str):
        return None
    if raw["kind"] == "Namespace":
        ns = ""
    return (raw["kind"], ns, name)


def _label(key: Optional[tuple]) -> str:
    """``Kind namespace/name`` of an object's identity ("" when unknown)."""
    if key is None:
        return ""
    kind, ns, name = key
    return f"{kind} {ns + '/' if ns else ''}{name}"


def stored(error: ManifestError) -> ManifestError:
    """An error as it is kept until the file changes: without its traceback
    and the exceptions it was raised from, whose frames would keep the file's
    text and documents alive (and this module's closures, in reference
    cycles that the frozen heap never collects)."""
    error.__traceback__ = error.__context__ = error.__cause__ = None
    return error


def failed(result: FileResult, error: ManifestError, previous: Optional[FileResult]) -> FileResult:
    """``result`` for a file that could not be read at all: its error, and the
    last good objects of the file (an editor's half-saved file, a file swapped
    for a FIFO, must not make names vanish)."""
    result.syntax_error = True
    result.errors.append(stored(error))
    if previous is not None:
        result.objects = previous.objects
    return result


def _looks_truncated(old: Optional[FileResult], new: FileResult) -> bool:
    """A rewrite of a file that held objects that gives fewer of them, more
    errors, or nothing readable: what a file caught mid-write looks like."""
    return old is not None and bool(old.objects) and (
        new.syntax_error or len(new.objects) < len(old.objects)
        or len(new.errors) > len(old.errors))


def parse_file(path: Path, stamp: tuple, previous: Optional[FileResult],
               limit: int = MAX_FILE_BYTES) -> FileResult:
    """Parse one file. Bad objects keep their last good version from ``previous``.

    Nothing in a file can fail more than that file: whatever reading it
    raises is its error (a limit, a parser's error, an exception we did not
    foresee), and the other files are served as before.
    """
    shown = str(path)
    result = FileResult(stamp)
    try:
        text = read_text(path, limit)
        docs = documents(text, shown)
    except RefusedFile as exc:
        return failed(result, exc, previous)
    except (OSError, UnicodeDecodeError) as exc:
        return failed(result, ManifestError(
            f"cannot read: {getattr(exc, 'strerror', None) or exc}", shown), previous)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        return failed(result, ManifestError(f"invalid YAML: {problem}", shown,
                                            mark.line + 1 if mark else None), previous)
    except json.JSONDecodeError as exc:
        return failed(result, ManifestError(f"invalid JSON: {exc.msg}", shown, exc.lineno),
                      previous)
    except MemoryError:
        return failed(result, ManifestError("cannot read: out of memory while loading it",
                                            shown), previous)
    except Exception as exc:  # noqa: BLE001 - one file's problem, never the reload's
        log.debug("reading %s failed", shown, exc_info=True)
        return failed(result, ManifestError(f"cannot read: {type(exc).__name__}: {exc}",
                                            shown), previous)

    def add(raw: Any, line: Optional[int]) -> None:
        key = _identity(raw)
        try:
            objs = convert(raw, shown, line)
        except Exception as exc:  # noqa: BLE001 - one object's problem
            if not isinstance(exc, ManifestError):
                log.debug("converting an object of %s failed", shown, exc_info=True)
                exc = ManifestError(f"cannot read this object: {type(exc).__name__}", shown,
                                    line, _label(key))
            result.errors.append(stored(exc))
            if key and previous is not None and key in previous.objects:
                result.objects.setdefault(key, previous.objects[key])
            return
        if objs and key:
            if key in result.objects:
                result.errors.append(ManifestError(
                    "defined twice in the same file; the first one is used", shown, line,
                    _label(key)))
                return
            result.objects[key] = objs

    for line, raw, item_lines in docs:
        if raw is None:
            continue  # an empty document (a stray ---)
        if isinstance(raw, dict) and raw.get("kind") == "List" or (
                isinstance(raw, dict) and str(raw.get("kind", "")).endswith("List")
                and isinstance(raw.get("items"), list)):
            items = raw.get("items")
            if not isinstance(items, list):
                result.errors.append(ManifestError("expected a list", shown, line, field="items"))
                continue
            for i, item in enumerate(items):
                add(item, item_lines[i] if i < len(item_lines) else line)
        else:
            add(raw, line)
    return result


class ManifestSource:
    """A folder of manifests, re-read incrementally on every ``load()``
    (an :class:`~coredns_py.source.ObjectSource`).

    ``cache``: what the last run parsed (:mod:`coredns_py.source.parse_cache`).
    ``max_file_bytes``: larger files are refused.  ``settle``: read a changed
    file only once it has stopped changing (:mod:`coredns_py.source.settle`),
    for a server that watches the folder; one-off commands read what is there.
    """

    def __init__(self, root: Path, log_errors: bool = True, cache: Optional[ParseCache] = None,
                 *, max_file_bytes: int = MAX_FILE_BYTES, settle: Optional[Settling] = None):
        self.root = Path(root)
        self._cache = cache  # what the last run parsed (source/parse_cache.py)
        self.description = f"folder {self.root}"
        self.max_file_bytes = max_file_bytes
        self._settle = settle
        self._files: dict[Path, FileResult] = {}
        self._reparse = False
        self._generation = 0
        self._last: Optional[tuple] = None
        self._errors = OnceLog(log) if log_errors else None

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
        watcher.start()
        if self._settle is None:
            return watcher
        self._settle.wake = changed  # a held-back change is looked at again
        return _Watching(watcher, self._settle)

    def load(self) -> Loaded:
        paths = list_files(self.root)  # raises SourceError when the folder is gone
        files, parsed = self._read(paths)
        if self._last is None and self._settle is not None:
            # The first load: nothing is served yet, so wait a little for
            # files still being written rather than start without them.
            deadline = time.monotonic() + FIRST_LOAD_WAIT * self._settle.seconds
            while self._settle.due is not None and time.monotonic() < deadline:
                time.sleep(min(self._settle.due, max(0.0, deadline - time.monotonic())))
                self._files = files
                paths = list_files(self.root)
                files, more = self._read(paths)
                parsed += more
        self._files = files
        if self._cache is not None:
            self._cache.save(files, parsed)

        objects: list = []
        errors: list[ManifestError] = []
        owner: dict[tuple, Path] = {}
        listed = set(paths)
        for path in paths + [p for p in files if p not in listed]:  # then deletions held back
            res = files.get(path)
            if res is None:
                continue
            errors.extend(res.errors)
            for key, objs in res.objects.items():
                first = owner.get(key)
                if first is not None:
                    errors.append(ManifestError(
                        f"also defined in {first}; the one in {first} is used", str(path),
                        getattr(objs[0].origin, "line", None) if objs else None,
                        _label(key)))
                    continue
                owner[key] = path
                objects.extend(objs)
        result = tuple(objects)
        # A new generation when the objects change, or only the problems (a
        # file refused or broken now): /metrics and the status page show them.
        current = (result, tuple(map(str, errors)))
        if current != self._last:
            self._generation += 1
            self._last = current
        if self._errors is not None:
            self._errors.report(errors)
        return Loaded(result, tuple(errors), len(paths), self._generation)

    def _read(self, paths: list[Path]) -> tuple[dict[Path, FileResult], int]:
        """Each file's result: parsed again if it changed (and has settled),
        else the last one; and how many files were parsed."""
        settle, limit = self._settle, self.max_file_bytes
        reparse, self._reparse = self._reparse, False
        files: dict[Path, FileResult] = {}
        todo = []
        for path in paths:
            try:
                st = path.stat()
            except OSError:
                continue  # deleted between the listing and now
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            old = self._files.get(path)
            if old is not None and old.stamp == stamp and not reparse:
                files[path] = old
                continue
            if settle is not None and (old is None or old.stamp != stamp):
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
            if settle is not None and old is not None and old.stamp != stamp \
                    and _looks_truncated(old, new):
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
