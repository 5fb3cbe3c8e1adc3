"""The allocation state file: which object holds which addresses.

JSON (``{"version": 1, "services": {"ns/name": [ip, ...]}, "pods": {...}}``),
written atomically (write, fsync, rename) under an exclusive lock, so
``serve`` and ``env`` running at once agree.  A missing state file is
rebuilt, never fatal.

Every write also replaces a backup copy beside it (``<name>.bak``).  A
damaged state file (corrupt, truncated, not ours) is never overwritten: it
is moved aside as ``<name>.damaged-<UTC time>`` (logged, and counted in
``coredns_py_state_files_moved_aside_total``), and its addresses come from
the backup, plus every complete entry still readable in the damaged file,
so a restart after the damage keeps them.  The running server keeps the
addresses it serves whatever the file says, and writes the file again from
everything it serves (:func:`coredns_py.cluster.allocator.allocate`).  A
state file that is simply gone (deleted to start afresh) is not restored
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
from pathlib import Path
from typing import Iterator, Optional

from coredns_py import tally

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
        log.warning("cannot read allocation state %s (%s); addresses are kept from what is "
                    "served", path, exc.strerror)
        return {}
    try:
        return _parse(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        return _move_aside(path, raw, str(exc))


def _parse(raw: bytes) -> dict:
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


def backup_path(path: Path) -> Path:
    """The copy written beside the state file, read when the file is damaged."""
    return path.with_name(path.name + ".bak")


def _move_aside(path: Path, raw: bytes, why: str) -> dict:
    """Keep a damaged state file out of the way (never write over it); what
    its backup copy and the readable part of it say."""
    moved = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
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
    log.warning("allocation state %s is damaged (%s): moved aside to %s; %d addresses read "
                "from its backup and from what is left of it are kept, with those being "
                "served", path, why, moved.name,
                sum(len(t) for t in data.values() if isinstance(t, dict)))
    if data:
        save(path, data)  # what was recovered is the state now, for every table's reader
    return data


def _recover(path: Path, raw: bytes) -> dict:
    """The backup copy (complete as of the last write), with every entry that
    can still be read from the damaged file added where the backup lacks it."""
    try:
        backup = _parse(backup_path(path).read_bytes())
    except (OSError, ValueError, RecursionError):
        backup = {}
    out = {kind: dict(table) for kind, table in salvage(raw).items()}
    for kind, table in backup.items():
        if isinstance(table, dict):
            out[kind] = {**out.get(kind, {}), **table}
    return out


# What the writer below writes: a table per kind at one space of indentation,
# an entry per object at two ("ns/name": [addresses]).
_TABLE = re.compile(r'^ "(\w+)": \{', re.M)
# (Each part matches one way only: no backtracking blow-up on any input.)
_ENTRY = re.compile(r'"((?:[^"\\\n]|\\.)+)": \[\s*((?:"[^"\\\n]*"\s*(?:,\s*)?)*)\]')
_TEXT = re.compile(r'"([^"\\\n]*)"')


def salvage(raw: bytes) -> dict:
    """Every complete entry of a damaged state file, by table: ``{"services":
    {"ns/name": [address, ...]}, ...}``.  Addresses are checked where they are
    used (the allocator skips what does not parse)."""
    text = raw.decode("utf-8", "replace")
    tables = [(m.end(), m.group(1)) for m in _TABLE.finditer(text)]
    out: dict = {}
    for i, (start, name) in enumerate(tables):
        end = tables[i + 1][0] if i + 1 < len(tables) else len(text)
        out[name] = {m.group(1): _TEXT.findall(m.group(2))
                     for m in _ENTRY.finditer(text, start, end)}
    return out


def save(path: Path, data: dict) -> None:
    """Write the state; a failure is a warning (the addresses still hold in memory)."""
    try:
        _write(path, {**data, "version": VERSION})
    except OSError as exc:
        log.warning("cannot write allocation state %s (%s); addresses may change on "
                    "restart", path, exc.strerror)


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


@contextmanager
def locked(path: Optional[Path]) -> Iterator[None]:
    """Hold the state file's lock (nothing to hold without a state file)."""
    if path is None:
        yield
        return
    with _flock(path):
        yield
