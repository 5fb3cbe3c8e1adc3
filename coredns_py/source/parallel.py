"""Reading many manifest files on every core we may use.

At start-up the server answers nothing yet (SERVFAIL until the first load),
and reading YAML is most of the wait (about 0.7 s per 10,000 Services on
one core).  So when a load has many files to read, the files are shared out
among processes, one per CPU this process may run on (its affinity mask, so
``taskset`` is respected): each child parses its share and hands the result
back pickled (unpickling is about 15 times cheaper than parsing), and this
process parses a share of its own meanwhile.  A reload that reads one or a
few files reads them here, as before.

Children are made with ``fork``: they start at once, with the parser
already imported, and leave nothing behind (``os._exit``).  A child that
fails (killed, out of memory) costs nothing but time: its files are read
here.  The parse results are the same objects either way
(:func:`coredns_py.source.manifest_file.parse_file` runs in the child).
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
from typing import Callable, Optional

log = logging.getLogger("coredns_py.manifests")

# Below this many bytes to read, forking costs more than it saves (a fork
# and a pickle round trip are a few milliseconds; 1 MB of manifests is
# about 0.2 s of parsing).
MIN_PARALLEL_BYTES = 1_000_000

Todo = list  # [(path, stamp, previous FileResult or None)]; stamp[1] is the size


def usable_cpus() -> int:
    """CPUs this process may run on (``taskset``, cgroup cpusets)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def shares(todo: Todo, n: int) -> list[Todo]:
    """``todo`` cut into ``n`` shares of about the same number of bytes
    (largest file first, each to the lightest share so far), each share in
    the original order."""
    load = [0] * n
    out: list[list] = [[] for _ in range(n)]
    for i in sorted(range(len(todo)), key=lambda i: -todo[i][1][1]):
        k = load.index(min(load))
        load[k] += todo[i][1][1] + 1
        out[k].append(i)
    return [[todo[i] for i in sorted(share)] for share in out]


def parse_all(todo: Todo, parse: Callable, workers: Optional[int] = None,
              min_bytes: int = MIN_PARALLEL_BYTES) -> dict:
    """``{path: parse(path, stamp, previous)}`` for every entry of ``todo``,
    in parallel when there is enough to read and more than one CPU."""
    workers = usable_cpus() if workers is None else workers
    size = sum(stamp[1] for _path, stamp, _old in todo)
    if workers < 2 or len(todo) < 2 or size < min_bytes or not hasattr(os, "fork"):
        return {path: parse(path, stamp, old) for path, stamp, old in todo}
    parts = shares(todo, min(workers, len(todo)))
    children = [_spawn(part, parse) for part in parts[1:]]
    out = {path: parse(path, stamp, old) for path, stamp, old in parts[0]}
    for part, child in zip(parts[1:], children):
        got = _collect(child)
        if got is None:
            got = {path: parse(path, stamp, old) for path, stamp, old in part}
        out.update(got)
    return {path: out[path] for path, _stamp, _old in todo}


def _spawn(part: Todo, parse: Callable) -> Optional[tuple]:
    """A child parsing ``part`` into a temporary file: (pid, file), or None
    when it cannot be started."""
    try:
        out = tempfile.TemporaryFile()
        pid = os.fork()
    except OSError as exc:
        log.debug("cannot start a parsing process: %s", exc)
        return None
    if pid == 0:  # the child: parse, write, leave without running anything else
        code = 1
        try:
            data = {path: parse(path, stamp, old) for path, stamp, old in part}
            pickle.dump(data, out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()
            code = 0
        finally:
            os._exit(code)
    return pid, out


def _collect(child: Optional[tuple]) -> Optional[dict]:
    if child is None:
        return None
    pid, out = child
    with out:
        try:
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                log.debug("parsing process %d failed (status %d)", pid, status)
                return None
            out.seek(0)
            return pickle.load(out)
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            log.debug("cannot read what parsing process %d wrote: %s", pid, exc)
            return None

