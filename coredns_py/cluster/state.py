"""The allocation state: which object holds which addresses and node ports.

The state is a few tables, each mapping an object's key to what it holds::

    {"version": 2,
     "services":   {"ns/name": ["10.96.12.34", "fd00::1234"]},   # ClusterIPs
     "pods":       {"ns/name": ["10.244.5.6"]},                  # pod IPs
     "node_ports": {"ns/name:80/TCP": [31234]}}                   # per Service port

A store keeps it: :class:`FileStore` (a JSON file, the local fill-in's) or
anything with the same contract (:class:`Store`), such as a shared store a
``publish`` command writes to.  The allocator holds ``store.locked()`` while
it loads, allocates and saves, so two processes never hand out one address
twice.  A store never throws allocations away: :func:`upgrade` reads every
older format and gives the current one; a file of an unknown newer format
is left alone (read as empty, never overwritten); a missing one is rebuilt.

:class:`FileStore` also replaces a backup copy beside the file at every
write (``<name>.bak``).  A damaged state file (corrupt, truncated) is never
overwritten: it is moved aside as ``<name>.damaged-<UTC time>`` (logged, and
counted in ``coredns_py_state_files_moved_aside_total``), and its values
come from the backup, plus every complete entry still readable in the
damaged file, so a restart after the damage keeps them.  The running server
keeps the values it serves whatever the file says, and writes the file
again from everything it serves (:func:`coredns_py.cluster.allocator.allocate`).
A state file that is simply gone (deleted to start afresh) is not restored
from the backup.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ContextManager, Iterator, Optional, Protocol

from coredns_py import tally

log = logging.getLogger("coredns_py.allocator")

# 1: services and pods.  2: node_ports added.
VERSION = 2

# Each table, and the type of the values it holds.
TABLES = {"services": str, "pods": str, "node_ports": int}


class NewerFormat(ValueError):
    """The state was written by a newer coredns-py."""


def upgrade(data: object) -> dict:
    """The state in the current format, from any format ever written.

    Raises ValueError when it is no state (corrupt), NewerFormat when a
    newer version wrote it."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"unknown format version {version!r}")
    if version > VERSION:
        raise NewerFormat(f"format version {version}, newer than this program's {VERSION}")
    out = {"version": VERSION}
    for kind, value_type in TABLES.items():
        # Version 1 had no node_ports: a missing table is an empty one.
        table = data.get(kind, {})
        if not isinstance(table, dict) or not all(
                isinstance(values, list) and all(
                    isinstance(x, value_type) and not isinstance(x, bool) for x in values)
                for values in table.values()):
            raise ValueError(f"bad {kind} table")
        out[kind] = table
    return out


class Store(Protocol):
    """Where the allocation state is kept."""

    def locked(self) -> ContextManager[None]:
        """Held while the allocator loads, allocates and saves: exclusive
        across processes (and hosts, for a shared store)."""

    def load(self) -> dict:
        """The state in the current format (:func:`upgrade`); {} when there is none."""

    def save(self, data: dict) -> None:
        """Keep ``data`` (the current format); a failure is logged, not raised:
        the allocations still hold in memory."""


@dataclass(frozen=True)
class NoStore:
    """No state kept (``check``): allocation from names alone, nothing written."""

    @contextmanager
    def locked(self) -> Iterator[None]:
        yield

    def load(self) -> dict:
        return {}

    def save(self, data: dict) -> None:
        pass


# path -> ((mtime, size, inode), data): a reload of a large folder need not
# parse and check tens of thousands of entries that it wrote itself.
_STATE_CACHE: dict[Path, tuple[tuple, dict]] = {}


def _stamp(path: Path) -> Optional[tuple]:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@dataclass(frozen=True)
class FileStore:
    """The state in a JSON file, written atomically (write, fsync, rename)
    under an exclusive lock (``<file>.lock``), so ``serve`` and ``env``
    running at once agree."""

    path: Path

    def locked(self) -> ContextManager[None]:
        return _flock(self.path)

    def load(self) -> dict:
        stamp = _stamp(self.path)
        cached = _STATE_CACHE.get(self.path)
        if stamp is not None and cached is not None and cached[0] == stamp:
            return cached[1]
        data = self._read()
        if stamp is not None:
            _STATE_CACHE[self.path] = (stamp, data)
        return data

    def _read(self) -> dict:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("cannot read allocation state %s (%s); rebuilding it", self.path,
                        exc.strerror)
            return {}
        try:
            found = json.loads(raw.decode("utf-8"))
            data = upgrade(found)
        except NewerFormat as exc:
            log.warning("allocation state %s has %s; it is not used and not overwritten: "
                        "addresses may differ from the newer program's", self.path, exc)
            return {"version": VERSION, "read_only": True}
        except (ValueError, RecursionError) as exc:  # JSON and UTF-8 errors are ValueErrors
            return self._move_aside(raw, str(exc))
        if found.get("version") != VERSION:
            # Keep what the older format held, in the new one, now.
            log.info("allocation state %s upgraded from format version %s to %s", self.path,
                     found.get("version"), VERSION)
            self.save(data)
        return data

    def save(self, data: dict) -> None:
        if data.get("read_only"):
            return  # a newer program's file: theirs
        try:
            _write(self.path, {**data, "version": VERSION})
        except OSError as exc:
            log.warning("cannot write allocation state %s (%s); addresses may change on "
                        "restart", self.path, exc.strerror)

    def _move_aside(self, raw: bytes, why: str) -> dict:
        """Keep a damaged state file out of the way (never write over it);
        what its backup copy and the readable part of it say, saved as the
        state from now on."""
        path = self.path
        moved = path.with_name(f"{path.name}.damaged-"
                               f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
        for n in range(1, 100):
            if not moved.exists():
                break
            moved = moved.with_name(f"{moved.name.rsplit('.', 1)[0]}.{n}")
        try:
            os.rename(path, moved)
        except FileNotFoundError:
            return {}  # another process moved it first
        except OSError as exc:
            log.warning("allocation state %s is damaged (%s) and cannot be moved aside (%s)",
                        path, why, exc.strerror)
        else:
            tally.count(tally.STATE_MOVED_ASIDE)
        data = _recover(path, raw)
        log.warning("allocation state %s is damaged (%s): moved aside to %s; %d values read "
                    "from its backup and from what is left of it are kept, with those being "
                    "served", path, why, moved.name,
                    sum(len(t) for k, t in data.items() if k in TABLES))
        self.save(data)  # the state from now on, for every table's reader
        return data


def backup_path(path: Path) -> Path:
    """The copy written beside the state file, read when the file is damaged."""
    return path.with_name(path.name + ".bak")


def _recover(path: Path, raw: bytes) -> dict:
    """The backup copy (complete as of the last write), with every entry that
    can still be read from the damaged file added where the backup lacks it."""
    try:
        backup = upgrade(json.loads(backup_path(path).read_bytes().decode("utf-8")))
    except (OSError, ValueError, RecursionError):
        backup = {}
    out: dict = {"version": VERSION}
    for kind in TABLES:
        out[kind] = {**salvage(raw).get(kind, {}), **backup.get(kind, {})}
    return out


# What the writer below writes: a table per kind at one space of indentation,
# an entry per holder at two ("ns/name": [values]).  Each part of the entry
# pattern matches one way only: no backtracking blow-up on any input.
_TABLE = re.compile(r'^ "(\w+)": \{', re.M)
_ENTRY = re.compile(r'"((?:[^"\\\n]|\\.)+)": (\[[^\[\]\n]*\])')


def salvage(raw: bytes) -> dict:
    """Every complete entry of a damaged state file, by table, whose values
    have the table's type: ``{"services": {"ns/name": [address, ...]}, ...}``.
    (Addresses are checked where they are used: the allocator skips what
    does not parse.)"""
    text = raw.decode("utf-8", "replace")
    tables = [(m.end(), m.group(1)) for m in _TABLE.finditer(text)]
    out: dict = {}
    for i, (start, name) in enumerate(tables):
        value_type = TABLES.get(name)
        if value_type is None:
            continue
        end = tables[i + 1][0] if i + 1 < len(tables) else len(text)
        entries = out.setdefault(name, {})
        for m in _ENTRY.finditer(text, start, end):
            try:
                values = json.loads(m.group(2))
            except ValueError:
                continue
            if all(isinstance(v, value_type) and not isinstance(v, bool) for v in values):
                entries[m.group(1)] = values
    return out


def _write(path: Path, data: dict) -> None:
    """The state file, then its backup copy, each replaced atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = _dumps(data)
    _replace(path, text)
    stamp = _stamp(path)
    if stamp is not None:
        _STATE_CACHE[path] = (stamp, data)
    _replace(backup_path(path), text)
    # fsync the directory so the renames themselves survive a crash.
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _replace(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".state-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _dumps(data: dict) -> str:
    """The state as JSON, a line per entry of each table (diffs well, and a
    file cut short loses only its tail), made by json's C encoder: its
    pretty-printer (``indent=``) is pure Python and leaves reference cycles
    behind on every write, which the server's frozen heap never collects."""
    parts = []
    for key in sorted(data):
        value = data[key]
        if isinstance(value, dict) and value:
            text = "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(value[k], sort_keys=True)}"
                                      for k in sorted(value)) + "\n }"
        else:
            text = json.dumps(value, sort_keys=True)
        parts.append(f" {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        log.warning("cannot lock allocation state %s (%s)", path, exc.strerror)
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def store(where: "Store | Path | None") -> Store:
    """A store for a state file path (None: no state kept), or the store itself."""
    if where is None:
        return NoStore()
    if isinstance(where, (str, Path)):
        return FileStore(Path(where))
    return where
