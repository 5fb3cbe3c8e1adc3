"""One manifest file: read without trusting it, split into documents, each
object converted, and what went wrong, by file, object and field.

Nothing in a file can fail more than that file, and nothing in an object
more than that object: a file that cannot be read at all keeps its last
good objects (:func:`failed`), an object that turns bad keeps its last good
version, the others are used.  The result is a :class:`FileResult`, which
the folder source keeps per file (and the parse cache per start).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from coredns_py.errors import ManifestError, RefusedFile
from coredns_py.source import Ignored, reading
from coredns_py.source.convert import convert
from coredns_py.source.documents import documents
from coredns_py.source.kinds import ignored, meant_kind
from coredns_py.source.namespaces import DEFAULT_PLACEMENT, Placement
from coredns_py.source.reading import MAX_FILE_BYTES

log = logging.getLogger("coredns_py.manifests")


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


def label(key: Optional[tuple]) -> str:
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


def looks_truncated(old: Optional[FileResult], new: FileResult) -> bool:
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
                                        shown, line, label(key))
                result.errors.append(stored(exc))
                keep_previous(key)
                continue
            if objs and key:
                if key in result.objects:
                    result.errors.append(ManifestError(
                        "defined twice in the same file; the first one is used", shown, line,
                        label(key)))
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
