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
from itertools import chain
from pathlib import Path
from typing import Any, Optional

import yaml

from coredns_py.source import kustomize
from coredns_py.source.convert import convert
from coredns_py.source.kinds import ignored, meant_kind
from coredns_py.errors import TOO_LARGE, ManifestError, ManifestWarning, RefusedFile, SourceError
from coredns_py.source import Ignored, Loaded
from coredns_py.source.namespaces import DEFAULT_NAMESPACE, DEFAULT_PLACEMENT, Placement
from coredns_py.logs import OnceLog
from coredns_py.source import parallel
from coredns_py.source.documents import documents
from coredns_py.source import reading
from coredns_py.source.parse_cache import ParseCache
from coredns_py.source.reading import MAX_FILE_BYTES, refuse_unless_regular
from coredns_py.source.settle import Settling
from coredns_py.source.watch import Watcher

log = logging.getLogger("coredns_py.manifests")

SUFFIXES = (".yaml", ".yml", ".json")

# The first load waits at most this many settle times for files still being
# written (a folder being copied in as the server starts); what is still
# changing after that is read once it settles.
FIRST_LOAD_WAIT = 3


def is_manifest_file(name: str) -> bool:
    """Files the source reads, by name: manifests and kustomizations;
    hidden files and editor leftovers are not.

    Vim swap files end in .swp, Emacs backups in ~ and lock files start with
    .#; all of them are hidden or have the wrong suffix, checked here so the
    watcher and the loader agree.
    """
    base = os.path.basename(name)
    if base.startswith(".") or base.endswith("~"):
        return False
    return base.lower().endswith(SUFFIXES) or kustomize.is_kustomization(base)


@dataclass
class Listing:
    """What a walk of the folder found."""

    files: list[Path]  # manifest files, in path order
    kustomizations: list[Path]
    # Folders reached through a symlink that lie outside the folder's own
    # tree: the watcher watches them too.
    outside: list[Path] = field(default_factory=list)
    loops: list[ManifestWarning] = field(default_factory=list)


def _check_root(root: Path) -> None:
    if not root.is_dir():
        if not root.exists():
            raise SourceError(f"manifests folder {root} does not exist")
        raise SourceError(f"manifests path {root} is not a folder")
    if not os.access(root, os.R_OK | os.X_OK):
        raise SourceError(f"manifests folder {root} is not readable")


def walk(root: Path) -> Listing:
    """Every manifest file and kustomization under root, recursively.

    Symlinked folders are followed, as users link shared manifests into a
    folder.  Each folder is read once: a folder reached both directly and
    through a link (``current -> v2`` beside ``v2/``) is read under its own
    name; a link back to a folder it is inside of (a loop) is not followed
    and is reported.  Hidden folders (.git) are skipped.
    """
    _check_root(root)
    files: list[Path] = []
    kusts: list[Path] = []
    out = Listing(files, kusts)
    real_root = os.path.realpath(root)
    st = os.stat(root)
    visited = {(st.st_dev, st.st_ino)}
    links: list[tuple[str, tuple, tuple]] = []  # (link path, its ancestors' keys, target key)

    def read_tree(top: str, ancestors: tuple) -> None:
        """The folders under top that are no symlinks; links are kept for later,
        so that a folder's own name wins over a link to it."""
        stack = [(top, ancestors)]
        while stack:
            directory, chain = stack.pop()
            try:
                with os.scandir(directory) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError:
                continue  # unreadable or gone: what can be read is served
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    if entry.is_dir():
                        est = entry.stat()
                        key = (est.st_dev, est.st_ino)
                        if entry.is_symlink():
                            links.append((entry.path, chain, key))
                        elif key not in visited:
                            visited.add(key)
                            stack.append((entry.path, chain + (key,)))
                    elif is_manifest_file(entry.name):  # what a file is: the loader's concern
                        (kusts if kustomize.is_kustomization(entry.name) else files).append(
                            Path(entry.path))
                except OSError:
                    continue  # a dangling link, or a file gone meanwhile

    read_tree(str(root), tuple(visited))
    while links:
        links.sort()
        path, chain, key = links.pop(0)
        if key in chain:
            target = os.path.realpath(path)
            out.loops.append(ManifestWarning(
                f"symlink loop: {path} leads back to {target}, a folder it is in; "
                "not followed", path))
            continue
        if key in visited:
            continue  # read already under another name
        visited.add(key)
        real = os.path.realpath(path)
        if real != real_root and not real.startswith(real_root + os.sep):
            out.outside.append(Path(path))
        read_tree(path, chain + (key,))

    # Path order: each file's parts below root (every path found is root's
    # text, a separator, then the rest).  pathlib's relative_to took 15 ms
    # of a 2000-file listing.
    cut = len(os.path.join(str(root), ""))

    def order(p: Path):
        return tuple(str(p)[cut:].split(os.sep))

    files.sort(key=order)
    kusts.sort(key=order)
    return out


def list_files(root: Path) -> list[Path]:
    """Every manifest file under root, recursively, in path order."""
    return walk(root).files


def folder_readable(path) -> bool:
    """True when the folder can be opened now (a cheap live check)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    os.close(fd)
    return True


def read_text(path: Path, limit: int = MAX_FILE_BYTES) -> str:
    """A file's text: every file the source reads is read here, without
    trusting it (:func:`coredns_py.source.reading.read_text`)."""
    return reading.read_text(path, limit)


@dataclass
class FileResult:
    """What one file gave: objects by identity, and its errors."""

    stamp: tuple
    objects: dict[tuple, list] = field(default_factory=dict)  # (kind, ns, name) -> objects
    errors: list[ManifestError] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)
    syntax_error: bool = False


def _identity(raw: Any, placement: Placement, kind: Optional[str] = None) -> Optional[tuple]:
    kind = kind or (raw.get("kind") if isinstance(raw, dict) else None)
    if not isinstance(kind, str):
        return None
    meta = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    name = meta.get("name")
    if not isinstance(name, str):
        return None
    if kind == "Namespace":
        return (kind, "", name)
    return (kind, placement.namespace(meta.get("namespace")), name)


def _is_list(raw: Any) -> bool:
    return isinstance(raw, dict) and (raw.get("kind") == "List" or (
        str(raw.get("kind", "")).endswith("List") and isinstance(raw.get("items"), list)))


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
        result.ignored = previous.ignored
    return result


def _looks_truncated(old: Optional[FileResult], new: FileResult) -> bool:
    """A rewrite of a file that held objects that gives fewer of them, more
    errors, or nothing readable: what a file caught mid-write looks like."""
    return old is not None and bool(old.objects) and (
        new.syntax_error or len(new.objects) < len(old.objects)
        or len(new.errors) > len(old.errors))


def parse_file(path: Path, stamp: tuple, previous: Optional[FileResult],
               limit: int = MAX_FILE_BYTES) -> FileResult:
    """Parse one file. ``stamp`` is (mtime_ns, size, inode, placements):
    the file's objects land in each namespace its placements give (one,
    unless kustomizations put the file in several). Bad objects keep their
    last good version from ``previous``.

    Nothing in a file can fail more than that file: whatever reading it
    raises is its error (a limit, a parser's error, an exception we did not
    foresee), and the other files are served as before."""
    placements = stamp[3] if len(stamp) > 3 else (DEFAULT_PLACEMENT,)
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

    def keep_previous(key: Optional[tuple]) -> None:
        if key and previous is not None and key in previous.objects:
            result.objects.setdefault(key, previous.objects[key])

    def add(raw: Any, line: Optional[int]) -> None:
        try:
            skip = ignored(raw, shown, line, placements[0])
        except ManifestError as exc:
            result.errors.append(stored(exc))
            # A typo in kind: the object it was keeps its last good version.
            meant = meant_kind(raw.get("kind")) if isinstance(raw.get("kind"), str) else None
            for placement in placements:
                keep_previous(_identity(raw, placement, meant))
            return
        if skip is not None:
            result.ignored.append(skip)
            return
        for placement in placements:
            key = _identity(raw, placement)
            try:
                objs = convert(raw, shown, line, placement)
            except Exception as exc:  # noqa: BLE001 - one object's problem
                if not isinstance(exc, ManifestError):
                    log.debug("converting an object of %s failed", shown, exc_info=True)
                    exc = ManifestError(f"cannot read this object: {type(exc).__name__}",
                                        shown, line, _label(key))
                result.errors.append(stored(exc))
                keep_previous(key)
                continue
            if objs and key:
                if key in result.objects:
                    result.errors.append(ManifestError(
                        "defined twice in the same file; the first one is used", shown, line,
                        _label(key)))
                    continue
                result.objects[key] = objs

    for line, raw, item_lines in docs:
        if raw is None:
            continue  # an empty document (a stray ---)
        if _is_list(raw):
            items = raw.get("items")
            if not isinstance(items, list):
                result.errors.append(ManifestError("expected a list", shown, line, field="items"))
                continue
            for i, item in enumerate(items):
                item_line = item_lines[i] if i < len(item_lines) else line
                if not isinstance(item, dict):
                    result.errors.append(ManifestError(
                        "expected a Kubernetes object (a mapping)", shown, item_line,
                        field=f"items[{i}]"))
                    continue
                add(item, item_line)
        else:
            add(raw, line)
    return result


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
                        _label(key)))
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
