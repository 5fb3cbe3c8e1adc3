"""A CoreDNS Corefile as the configuration (``--corefile FILE``).

- ``lexer``   -- words, quotes, comments, braces, ``{$ENV}``, with file and line
- ``blocks``  -- snippets, ``import`` of snippets and files, server blocks, directives
- ``plugins`` -- each directive into the same Config the YAML file gives

The Corefile of a cluster's ``coredns`` ConfigMap can be used unchanged;
what is not implemented is an error naming its line, never ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from coredns_py.config import Config
from coredns_py.corefile import blocks, plugins


@dataclass(frozen=True)
class Loaded:
    config: Config
    files: tuple[Path, ...]  # the Corefile and every file it imports
    not_acted_on: tuple[str, ...]  # "Corefile:12: forward max_concurrent 1000 (why)"


def load(path: Path) -> Loaded:
    """Read and map a Corefile; ConfigError names the file and line."""
    parsed = blocks.parse_file(Path(path))
    config, ignored = plugins.build(Path(path), parsed.blocks)
    return Loaded(config, tuple(parsed.files), tuple(ignored))
