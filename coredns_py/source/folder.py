"""The manifest source: the only module that reads manifest files.

It walks a folder, parses each file on its own and caches the result by
(mtime, size, inode), so a reload re-reads only what changed.  When a file
stops parsing it keeps that file's last good objects and reports the error;
when one object in a file turns bad, the others are used and the bad one keeps
its last good version.  Nothing downstream knows where objects came from, so
another source plugs in at the same seam (:class:`coredns_py.source.ObjectSource`).
(CoreDNS ``plugin/hosts/hostsfile.go`` and ``plugin/file/reload.go`` do the
same for their files.)
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from coredns_py.source.convert import convert
from coredns_py.errors import ManifestError, SourceError
from coredns_py.source import Loaded
from coredns_py.logs import OnceLog
from coredns_py.source import parallel
from coredns_py.source.documents import documents
from coredns_py.source.parse_cache import ParseCache
from coredns_py.source.watch import Watcher

log = logging.getLogger("coredns_py.manifests")

SUFFIXES = (".yaml", ".yml", ".json")


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


def parse_file(path: Path, stamp: tuple, previous: Optional[FileResult]) -> FileResult:
    """Parse one file. Bad objects keep their last good version from ``previous``."""
    shown = str(path)
    result = FileResult(stamp)
    try:
        text = path.read_text(encoding="utf-8")
        docs = documents(text, shown)
    except (OSError, UnicodeDecodeError) as exc:
        result.syntax_error = True
        result.errors.append(ManifestError(f"cannot read: {getattr(exc, 'strerror', None) or exc}",
                                           shown))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        result.syntax_error = True
        result.errors.append(ManifestError(f"invalid YAML: {problem}", shown,
                                           mark.line + 1 if mark else None))
    except json.JSONDecodeError as exc:
        result.syntax_error = True
        result.errors.append(ManifestError(f"invalid JSON: {exc.msg}", shown, exc.lineno))
    if result.syntax_error:
        if previous is not None:
            # Keep the last good objects of the file: an editor's half-saved
            # file must not make names vanish.
            result.objects = previous.objects
        return result

    def add(raw: Any, line: Optional[int]) -> None:
        key = _identity(raw)
        try:
            objs = convert(raw, shown, line)
        except ManifestError as exc:
            result.errors.append(exc)
            if key and previous is not None and key in previous.objects:
                result.objects.setdefault(key, previous.objects[key])
            return
        if objs and key:
            if key in result.objects:
                result.errors.append(ManifestError(
                    "defined twice in the same file; the first one is used", shown, line,
                    f"{key[0]} {key[1] + '/' if key[1] else ''}{key[2]}"))
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
    (an :class:`~coredns_py.source.ObjectSource`)."""

    def __init__(self, root: Path, log_errors: bool = True, cache: Optional[ParseCache] = None):
        self.root = Path(root)
        self._cache = cache  # what the last run parsed (source/parse_cache.py)
        self.description = f"folder {self.root}"
        self._files: dict[Path, FileResult] = {}
        self._generation = 0
        self._last_objects: Optional[tuple] = None
        self._errors = OnceLog(log) if log_errors else None

    def reset(self) -> None:
        """Parse every file again at the next load (the generation keeps counting)."""
        self._files = {}

    def ready(self) -> tuple[bool, str]:
        if folder_readable(self.root):
            return True, "OK"
        return False, f"cannot read the manifests folder {self.root}"

    def watch(self, changed):
        watcher = Watcher(self.root, changed, is_manifest_file)
        watcher.start()
        return watcher

    def load(self) -> Loaded:
        paths = list_files(self.root)  # raises SourceError when the folder is gone
        files: dict[Path, FileResult] = {}
        todo = []
        for path in paths:
            try:
                st = path.stat()
                stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            except OSError:
                continue  # deleted between the listing and now
            old = self._files.get(path)
            if old is not None and old.stamp == stamp:
                files[path] = old
                continue
            todo.append((path, stamp, old))
        if self._cache is not None:
            kept, todo = self._cache.take(todo)
            files.update(kept)
        files.update(parallel.parse_all(todo, parse_file))  # on every core, when many
        self._files = files
        if self._cache is not None:
            self._cache.save(files, len(todo))

        objects: list = []
        errors: list[ManifestError] = []
        owner: dict[tuple, Path] = {}
        for path in paths:
            res = files.get(path)
            if res is None:
                continue
            errors.extend(res.errors)
            for key, objs in res.objects.items():
                first = owner.get(key)
                if first is not None:
                    kind, ns, name = key
                    errors.append(ManifestError(
                        f"also defined in {first}; the one in {first} is used", str(path),
                        getattr(objs[0].origin, "line", None) if objs else None,
                        f"{kind} {ns + '/' if ns else ''}{name}"))
                    continue
                owner[key] = path
                objects.extend(objs)
        result = tuple(objects)
        if result != self._last_objects:
            self._generation += 1
            self._last_objects = result
        if self._errors is not None:
            self._errors.report(errors)
        return Loaded(result, tuple(errors), len(paths), self._generation)

