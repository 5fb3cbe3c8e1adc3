"""The project's exceptions: one base class, one subclass per failure.

As in dnspython's ``dns/exception.py``, the docstring is the default message.
User-facing errors name the file, the object (``Kind namespace/name``) and the
field, so a user can go straight to the line to fix.
"""

from __future__ import annotations

import errno
from typing import Optional


class CorednsPyError(Exception):
    """coredns_py failed."""

    def __init__(self, msg: Optional[str] = None):
        super().__init__(msg or (self.__doc__ or "").strip())


class ConfigError(CorednsPyError):
    """The configuration is invalid."""


class ManifestError(CorednsPyError):
    """A manifest is invalid.

    ``path`` and ``line`` say where; ``obj`` is ``Kind namespace/name`` when the
    object could be identified; ``field`` is the dotted path of the bad field.
    """

    def __init__(self, message: str, path: str = "", line: Optional[int] = None,
                 obj: str = "", field: str = ""):
        self.message = message
        self.path = path
        self.line = line
        self.obj = obj
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path
        if self.line:
            where = f"{where}:{self.line}"
        parts = [p for p in (where, self.obj) if p]
        if self.field:
            parts.append(f"field {self.field}")
        parts.append(self.message)
        return ": ".join(parts)


class RefusedFile(ManifestError):
    """A manifest file was not read at all: it is not a regular file, or it
    is over a limit (size, nesting, alias expansion).

    ``reason`` is one of :data:`REFUSED_REASONS`, the label of the
    ``coredns_py_manifest_files_refused`` metric.
    """

    def __init__(self, message: str, path: str = "", reason: str = "",
                 line: Optional[int] = None):
        # (Defaults: unpickling, after a file was read in another process,
        # calls this with the message alone, then restores the attributes.)
        self.reason = reason
        super().__init__(message, path, line)


NOT_REGULAR, TOO_LARGE, TOO_DEEP, TOO_MANY_ALIASES = (
    "not_regular_file", "too_large", "too_deep", "too_many_aliases")
REFUSED_REASONS = (NOT_REGULAR, TOO_LARGE, TOO_DEEP, TOO_MANY_ALIASES)

# Values shown in a message are cut to this many characters: a message names
# a value so the user finds it, it never prints a 100 MB string back.
SHOWN_CHARS = 60


def shown(value) -> str:
    """A value as an error message shows it: a scalar's repr, cut short; a
    mapping or a list by its kind only.  Never walks a collection (one
    reached through YAML aliases may expand to gigabytes when printed) and
    never copies a long string whole."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple, set)):
        return "a list"
    if isinstance(value, (str, bytes)):
        text = repr(value[:SHOWN_CHARS])
        return text if len(value) <= SHOWN_CHARS else text + "[...]"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return "a very long integer"  # str() of 4300 digits or more raises
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    return f"a {type(value).__name__}"


class ManifestWarning(ManifestError):
    """A manifest is read, but not quite as a cluster would read it (a
    kustomize field that is not applied, a symlink loop); said, never fatal."""


class SourceError(CorednsPyError):
    """The source of objects cannot be read (the manifests folder is gone, say)."""


class ListenError(CorednsPyError):
    """An address cannot be listened on (DNS or HTTP); ``str()`` is one line for stderr.

    ``errno`` is the OS error number when there is one (e.g. EADDRINUSE).
    """

    def __init__(self, message: str, code: Optional[int] = None):
        super().__init__(message)
        self.errno = code


class FramingError(CorednsPyError):
    """A DNS-over-TCP client broke the framing; its connection is closed."""


def os_reason(exc: OSError) -> str:
    """Why a bind failed, in the words a user acts on."""
    if exc.errno == errno.EADDRINUSE:
        return "address already in use"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "address not available on this machine"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
    return (exc.strerror or str(exc)).lower()
