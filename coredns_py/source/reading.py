"""Reading one manifest file without trusting it: regular files only, never
blocking, never more than the configured size.

A served folder is written by people and programs we do not control.  A FIFO
named ``x.yaml`` blocks a plain ``open()`` until someone writes to it; a
symlink to ``/dev/zero`` reads forever; a 5 GB file takes the memory of the
whole machine.  So a file is stat'ed first (a device is never even opened:
opening some has side effects), opened with ``O_NONBLOCK`` (a FIFO swapped
in since the stat opens at once, and ``fstat`` refuses it), and read up to
the size limit plus one byte, so a file that grows while read is caught too.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from coredns_py.errors import NOT_REGULAR, TOO_LARGE, RefusedFile

# The default of the config key max_file_bytes: 256 MiB.  A dump of 100k
# Services fits, as kubectl writes it (measured: `kubectl get services -A -o
# json` is about 171 MB, `-o yaml` 93 MB, and with their EndpointSlices 206 MB
# in YAML); parsed, such a file takes a few GB of memory, so a larger one is
# more likely a mistake (a log, a disk image) than a cluster.  The API server
# takes at most 3 MiB per request (MaxRequestBodyBytes, twice etcd's 1.5 MiB
# object limit), but a file here holds a whole cluster, not one object.
MAX_FILE_BYTES = 256 * 1024 * 1024

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)


def file_type(mode: int) -> str:
    """What a non-regular file is, in the words of ``ls -l``'s first column."""
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def refuse_unless_regular(path: Path, st: os.stat_result) -> None:
    """Raise :class:`RefusedFile` unless ``st`` (of ``path``, symlinks
    followed) is a regular file."""
    if not stat.S_ISREG(st.st_mode):
        raise RefusedFile(f"not a regular file ({file_type(st.st_mode)}); only regular "
                          "files are read", str(path), NOT_REGULAR)


def refuse_if_too_large(path: Path, size: int, limit: int) -> None:
    if size > limit:
        raise RefusedFile(f"{size} bytes, over the limit of {limit} bytes (config key "
                          "max_file_bytes)", str(path), TOO_LARGE)


def read_text(path: Path, limit: int) -> str:
    """The UTF-8 text of the regular file ``path``, at most ``limit`` bytes.

    Raises :class:`RefusedFile` for a file that is not regular or is too
    large, ``OSError`` when it cannot be opened or read, and
    ``UnicodeDecodeError`` when it is not UTF-8.
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        refuse_unless_regular(path, st)
        refuse_if_too_large(path, st.st_size, limit)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(limit + 1)  # a regular file: O_NONBLOCK changes nothing
    finally:
        os.close(fd)
    if len(data) > limit:
        raise RefusedFile(f"grew past the limit of {limit} bytes while being read (config "
                          "key max_file_bytes)", str(path), TOO_LARGE)
    return data.decode("utf-8")
