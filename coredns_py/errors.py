"""The project's exceptions: one base class, one subclass per failure.

As in dnspython's ``dns/exception.py``, the docstring is the default message.
User-facing errors name the file, the object (``Kind namespace/name``) and the
field, so a user can go straight to the line to fix.
"""

from __future__ import annotations

from typing import Optional


class CorednsPyError(Exception):
    """coredns_py failed."""

    def __init__(self, msg: Optional[str] = None):
        super().__init__(msg or (self.__doc__ or "").strip())


class OnceLog:
    """Logs each problem once: a reload that finds the same broken file or the
    same address conflict again says nothing new, and a problem that was fixed
    and comes back is logged again."""

    def __init__(self, logger):
        self.logger = logger
        self._current: set[str] = set()

    def report(self, problems) -> None:
        texts = {str(p) for p in problems}
        for text in sorted(texts - self._current):
            self.logger.error("%s", text)
        self._current = texts


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
