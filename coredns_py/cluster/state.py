"""The allocation state: which object holds which addresses.

Kept by a :class:`Store`: a file on this host (:class:`FileStore`, below),
or etcd for publishers (:mod:`coredns_py.publish.allocations`), behind the
same three calls.  The allocator holds the store's lock, loads the tables,
and saves them when they changed.

The state file:

JSON (``{"version": 1, "services": {"ns/name": [ip, ...]}, "pods": {...}}``),
written atomically (write, fsync, rename) under an exclusive lock, so
``serve`` and ``env`` running at once agree.  A missing or corrupt state
file is logged and rebuilt, never fatal.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import ContextManager, Iterator, Optional, Protocol, Union

log = logging.getLogger("coredns_py.allocator")

VERSION = 1

# path -> ((mtime, size, inode), data): a reload of a large folder need not
# parse and check tens of thousands of entries that it wrote itself.
_STATE_CACHE: dict[Path, tuple[tuple, dict]] = {}


def _stamp(path: Path) -> Optional[tuple]:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def load(path: Path) -> dict:
    stamp = _stamp(path)
    cached = _STATE_CACHE.get(path)
    if stamp is not None and cached is not None and cached[0] == stamp:
        return cached[1]
    data = _read(path)
    if stamp is not None:
        _STATE_CACHE[path] = (stamp, data)
    return data


def _read(path: Path) -> dict:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        log.warning("cannot read allocation state %s (%s); rebuilding it", path, exc.strerror)
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError("unknown format")
        for kind in ("services", "pods"):
            table = data.get(kind, {})
            if not isinstance(table, dict) or not all(
                    isinstance(v, list) and all(isinstance(a, str) for a in v)
                    for v in table.values()):
                raise ValueError(f"bad {kind} table")
        return data
    except ValueError as exc:
        log.warning("allocation state %s is corrupt (%s); rebuilding it: addresses may change",
                    path, exc)
        return {}


def save(path: Path, data: dict) -> None:
    """Write the state; a failure is a warning (the addresses still hold in memory)."""
    try:
        _write(path, {**data, "version": VERSION})
    except OSError as exc:
        log.warning("cannot write allocation state %s (%s); addresses may change on "
                    "restart", path, exc.strerror)


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".state-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        stamp = _stamp(path)
        if stamp is not None:
            _STATE_CACHE[path] = (stamp, data)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    # fsync the directory so the rename itself survives a crash.
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


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


@contextmanager
def locked(path: Optional[Path]) -> Iterator[None]:
    """Hold the state file's lock (nothing to hold without a state file)."""
    if path is None:
        yield
        return
    with _flock(path):
        yield


class Store(Protocol):
    """Where the allocation state is kept: the tables of the state file
    (``{"services": {"ns/name": [ip, ...]}, "pods": {...}}``), loaded and
    saved whole, under a lock held across both."""

    def locked(self) -> ContextManager[None]: ...

    def load(self) -> dict: ...

    def save(self, data: dict) -> None: ...


class FileStore:
    """The state file of one host (the module's functions above)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def locked(self) -> ContextManager[None]:
        return locked(self.path)

    def load(self) -> dict:
        return load(self.path)

    def save(self, data: dict) -> None:
        save(self.path, data)

    # Two stores of one file are the same store (a memo compares them).
    def __eq__(self, other) -> bool:
        return isinstance(other, FileStore) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)


def store_for(where: Union[Store, Path, str, None]) -> Optional[Store]:
    """A store from what callers give: a store, a state file's path, or
    None (allocate without keeping anything: ``check``)."""
    if where is None or hasattr(where, "save"):
        return where
    return FileStore(Path(where))
