"""The file a server's configuration comes from, read again on reload.

Either the YAML config (``--config``) or a Corefile (``--corefile``,
:mod:`coredns_py.corefile`) with the files it imports.  ``changed()``
compares the content of every file read last time (a SHA-256 of each, as
CoreDNS's *reload* plugin compares its Corefile's hash), so touching a file
without changing it reloads nothing, and an edit to an imported file does.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Optional

from coredns_py import config as config_mod


def _digest(path: Path) -> Optional[bytes]:
    try:
        return hashlib.sha256(Path(path).read_bytes()).digest()
    except OSError:
        return None


class ConfigFile:
    def __init__(self, path: Optional[Path] = None, *, corefile: bool = False):
        self.path = Path(path) if path is not None else None
        self.corefile = corefile
        self.files: list[Path] = []  # every file the last load read
        self._digests: dict[Path, Optional[bytes]] = {}
        self.not_acted_on: tuple[str, ...] = ()  # Corefile options accepted, doing nothing
        # Keys a command-line option sets (--default-namespace): they win
        # over the file at every load, reloads included.
        self.overrides: dict = {}

    @property
    def description(self) -> str:
        if self.path is None:
            return str(config_mod.DEFAULT_CONFIG)
        return str(self.path)

    def load(self) -> config_mod.Config:
        """Read and parse it; raises ConfigError (naming the file and line)."""
        main = self.path if self.path is not None else config_mod.DEFAULT_CONFIG
        try:
            if self.corefile:
                from coredns_py import corefile
                parsed = corefile.load(self.path)
                cfg, files = parsed.config, parsed.files
                self.not_acted_on = parsed.not_acted_on
            else:
                cfg = config_mod.load(self.path)
                files = [main]
        except Exception:
            # Remember what was refused, so it is not tried (and reported)
            # again until it changes once more.
            self._digests = {**self._digests, Path(main): _digest(Path(main))}
            raise
        self.files = [Path(f) for f in files]
        self._digests = {f: _digest(f) for f in self.files}
        return dataclasses.replace(cfg, **self.overrides) if self.overrides else cfg

    def changed(self) -> bool:
        """Did any file the last load read change (or appear, or go)?"""
        return any(_digest(f) != d for f, d in self._digests.items())
