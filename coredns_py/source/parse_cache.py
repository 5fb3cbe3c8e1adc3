"""What the last run parsed, kept in the state folder for the next start.

A restart reads the same files as the run before it, and parsing is most
of a start (about 7 s of one core at 100,000 Services); reading back the
parse results pickled takes about a fifteenth of that.  So after a load
that parsed many files, the results of every file are written next to the
allocation state file (``<state>.parsed``), each with the file's identity
(mtime in ns, size, inode: what the source compares on every reload); the
next start takes the result of every file whose identity is unchanged and
parses the others.  The cache says which code wrote it (the parser's and
converter's own files, the Python version): written by other code, it is
not read.

It is written by a child process (``fork``), so that neither the first
answer nor the queries after it wait for the pickling; a cache that cannot
be read or written is only a slower start (logged at debug level).  The
state folder is the user's own (``$XDG_STATE_HOME``): whoever can write
there could already change the allocations, and now what is loaded too.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import sys
from pathlib import Path
from typing import Optional

log = logging.getLogger("coredns_py.manifests")

FORMAT = 1
# A load that parsed fewer files than this share of the folder (a reload of
# an edited file) does not rewrite the cache: the next start parses those
# few files again, which costs less than writing every file's result.
REWRITE_SHARE = 0.1


def fingerprint() -> str:
    """Which code parses: the files of this package that turn a manifest into
    objects, and the Python that runs them."""
    h = hashlib.sha256(f"{FORMAT} {sys.version}".encode())
    here = Path(__file__).resolve().parent
    for name in sorted(os.listdir(here)):
        if name.endswith(".py"):
            st = os.stat(here / name)
            h.update(f"{name} {st.st_size} {st.st_mtime_ns}".encode())
    return h.hexdigest()


class ParseCache:
    """The parse results kept for a folder, in the file ``path``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._kept: Optional[dict] = None  # read at the first load, then dropped

    def take(self, todo: list) -> tuple[dict, list]:
        """({path: kept result} for the files of ``todo`` unchanged since
        the cache was written, the rest of ``todo``).  Only the first load
        asks: later ones have the results in memory."""
        kept, self._kept = (self._read() if self._kept is None else {}), {}
        hits, rest = {}, []
        for path, stamp, old in todo:
            entry = kept.get(str(path))
            if old is None and entry is not None and entry[0] == stamp:
                hits[path] = entry[1]
            else:
                rest.append((path, stamp, old))
        return hits, rest

    def _read(self) -> dict:
        try:
            with open(self.path, "rb") as fh:
                data = pickle.load(fh)
        except FileNotFoundError:
            return {}
        except Exception as exc:  # noqa: BLE001 - any broken cache: parse instead
            log.debug("parse cache %s not used: %s", self.path, exc)
            return {}
        if not isinstance(data, dict) or data.get("code") != fingerprint():
            log.debug("parse cache %s was written by other code; not used", self.path)
            return {}
        return data.get("files", {})

    def save(self, files: dict, parsed: int) -> bool:
        """Keep ``files`` ({path: FileResult}) for the next start, if this
        load parsed enough of them to be worth it; True when the writer
        was started (it writes in the background)."""
        if parsed < max(1, int(len(files) * REWRITE_SHARE)) or not hasattr(os, "fork"):
            return False
        data = {"code": fingerprint(),
                "files": {str(path): (res.stamp, res) for path, res in files.items()}}
        try:
            pid = os.fork()
        except OSError as exc:
            log.debug("cannot start the process that writes the parse cache: %s", exc)
            return False
        if pid:
            os.waitpid(pid, 0)  # the child only forks again and leaves
            return True
        # The child forks the writer and exits at once, so that nobody has
        # to wait for the writer (init reaps it).
        code = 1
        try:
            if os.fork() == 0:
                _write(self.path, data)
            code = 0
        finally:
            os._exit(code)


def _write(path: Path, data: dict) -> None:
    """In the writer process: the cache written aside, then renamed over."""
    code = 1
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            pickle.dump(data, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
        code = 0
    except Exception:  # noqa: BLE001 - a cache not written is only a slower start
        try:
            os.unlink(tmp)
        except Exception:  # noqa: BLE001
            pass
    finally:
        os._exit(code)


def for_state(state_path: Optional[Path]) -> Optional[ParseCache]:
    """The parse cache beside an allocation state file; None without one."""
    if state_path is None:
        return None
    return ParseCache(Path(f"{state_path}.parsed"))
