"""Corefile structure: snippets, imports, server blocks and their directives.

As in CoreDNS (the Caddyfile format):

- ``(name) { ... }`` at the top level defines a snippet; ``import name``
  puts its lines where the import is, inside a block or outside;
- ``import PATH`` (a file, or a glob such as ``custom/*.server``) puts the
  files' lines there; a relative path is relative to the importing file;
  a glob that matches nothing imports nothing (k3s imports
  ``/etc/coredns/custom/*.override``, usually empty), a plain path that
  does not exist is an error;
- a server block is one or more keys (``.:53``, ``corp.example:53``,
  ``dns://.:1053``, comma or space separated) and ``{ directives }``;
- a directive is a line: its name, its arguments, and optionally a block
  of option lines ``{ ... }``.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from coredns_py.corefile.lexer import Token, tokenize
from coredns_py.errors import ConfigError

# Imports nest at most this deep: a file importing itself is an error, not
# a hang (Caddy stops cycles the same way).
MAX_IMPORT_DEPTH = 10
# A Corefile is a few kilobytes; an import that pulls megabytes is a mistake.
MAX_FILE_BYTES = 1024 * 1024


@dataclass
class Line:
    """A directive or an option: its name, arguments, and its own block."""

    name: Token
    args: list[Token]
    block: list["Line"] = field(default_factory=list)
    has_block: bool = False

    @property
    def where(self) -> str:
        return self.name.where

    def words(self) -> list[str]:
        return [t.text for t in self.args]


@dataclass
class ServerBlock:
    keys: list[Token]
    lines: list[Line]

    @property
    def where(self) -> str:
        return self.keys[0].where


@dataclass
class Parsed:
    blocks: list[ServerBlock]
    files: list[Path]  # every file read, the Corefile first


def read(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read Corefile {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None


def _split_lines(tokens: list[Token]) -> list[list[Token]]:
    lines: list[list[Token]] = []
    for tok in tokens:
        if tok.first or not lines:
            lines.append([tok])
        else:
            lines[-1].append(tok)
    return lines


class _Reader:
    def __init__(self):
        self.files: list[Path] = []
        self.snippets: dict[str, list[Token]] = {}

    def file_tokens(self, path: Path, depth: int) -> list[Token]:
        if depth > MAX_IMPORT_DEPTH:
            raise ConfigError(f"{path}: imports nest more than {MAX_IMPORT_DEPTH} deep "
                              "(does a file import itself?)")
        path = Path(path)
        if path not in self.files:
            self.files.append(path)
        tokens = tokenize(read(path), str(path))
        return self.expand(self.take_snippets(tokens), path.parent, depth)

    def take_snippets(self, tokens: list[Token]) -> list[Token]:
        """Remove the top-level ``(name) { ... }`` definitions, keeping them."""
        out: list[Token] = []
        i, depth = 0, 0
        while i < len(tokens):
            tok = tokens[i]
            if depth == 0 and tok.first and tok.text.startswith("(") and tok.text.endswith(")") \
                    and not tok.quoted:
                name = tok.text[1:-1]
                if not name:
                    raise ConfigError(f"{tok.where}: a snippet needs a name: (name) {{ ... }}")
                if i + 1 >= len(tokens) or tokens[i + 1].text != "{":
                    raise ConfigError(f"{tok.where}: snippet ({name}): expected '{{'")
                body, i = _balanced(tokens, i + 1)
                if name in self.snippets:
                    raise ConfigError(f"{tok.where}: snippet ({name}) is defined twice")
                self.snippets[name] = body
                continue
            if tok.text == "{" and not tok.quoted:
                depth += 1
            elif tok.text == "}" and not tok.quoted:
                depth -= 1
            out.append(tok)
            i += 1
        return out

    def expand(self, tokens: list[Token], base: Path, depth: int) -> list[Token]:
        """``import`` lines replaced by what they import."""
        out: list[Token] = []
        for line in _split_lines(tokens):
            head = line[0]
            if head.text != "import" or head.quoted:
                out.extend(line)
                continue
            if len(line) != 2:
                raise ConfigError(f"{head.where}: import takes one snippet name or file pattern")
            target = line[1]
            if target.text in self.snippets:
                got = self.expand([_copy(t) for t in self.snippets[target.text]], base,
                                  depth + 1)
            else:
                got = self.import_files(target, base, depth)
            if got:
                got[0].first = True
            out.extend(got)
        return out

    def import_files(self, target: Token, base: Path, depth: int) -> list[Token]:
        pattern = os.path.join(str(base), os.path.expanduser(target.text))
        if glob.has_magic(pattern):
            paths = sorted(glob.glob(pattern))
        else:
            if not os.path.exists(pattern):
                raise ConfigError(f"{target.where}: import {target.text}: no such file or "
                                  "snippet")
            paths = [pattern]
        out: list[Token] = []
        for p in paths:
            got = self.file_tokens(Path(p), depth + 1)
            if got:
                got[0].first = True
            out.extend(got)
        return out


def _copy(tok: Token) -> Token:
    return Token(tok.text, tok.file, tok.line, tok.first, tok.quoted)


def _balanced(tokens: list[Token], open_at: int) -> tuple[list[Token], int]:
    """The tokens between the ``{`` at ``open_at`` and its ``}``, and the
    index after that ``}``."""
    depth = 0
    for j in range(open_at, len(tokens)):
        t = tokens[j]
        if t.quoted:
            continue
        if t.text == "{":
            depth += 1
        elif t.text == "}":
            depth -= 1
            if depth == 0:
                return tokens[open_at + 1:j], j + 1
    raise ConfigError(f"{tokens[open_at].where}: '{{' is never closed")


def _lines(tokens: list[Token], nested: bool) -> list[Line]:
    """Directive lines of a block's body (``nested``: an option block, whose
    lines take no block of their own)."""
    out: list[Line] = []
    i = 0
    while i < len(tokens):
        head = tokens[i]
        if head.text in ("{", "}") and not head.quoted:
            raise ConfigError(f"{head.where}: unexpected '{head.text}'")
        j = i + 1
        args: list[Token] = []
        while j < len(tokens) and not tokens[j].first and not (
                tokens[j].text in ("{", "}") and not tokens[j].quoted):
            args.append(tokens[j])
            j += 1
        line = Line(head, args)
        if j < len(tokens) and tokens[j].text == "{" and not tokens[j].quoted \
                and not tokens[j].first:
            if nested:
                raise ConfigError(f"{tokens[j].where}: options of {head.text} take no block")
            body, j = _balanced(tokens, j)
            line.block = _lines(body, nested=True)
            line.has_block = True
        out.append(line)
        i = j
    return out


def parse_tokens(tokens: list[Token]) -> list[ServerBlock]:
    blocks: list[ServerBlock] = []
    i = 0
    while i < len(tokens):
        keys: list[Token] = []
        while i < len(tokens) and not (tokens[i].text == "{" and not tokens[i].quoted):
            if tokens[i].text == "}" and not tokens[i].quoted:
                raise ConfigError(f"{tokens[i].where}: unexpected '}}'")
            if keys and tokens[i].first:
                raise ConfigError(f"{keys[0].where}: server block {keys[0].text}: expected "
                                  "'{' after its keys")
            for part in tokens[i].text.split(","):
                if part:
                    keys.append(Token(part, tokens[i].file, tokens[i].line))
            i += 1
        if i >= len(tokens):
            where = keys[0].where if keys else "Corefile"
            raise ConfigError(f"{where}: server block without '{{ ... }}'")
        if not keys:
            raise ConfigError(f"{tokens[i].where}: a block without a zone (expected e.g. .:53)")
        body, i = _balanced(tokens, i)
        blocks.append(ServerBlock(keys, _lines(body, nested=False)))
    return blocks


def parse_file(path: Path) -> Parsed:
    reader = _Reader()
    tokens = reader.file_tokens(Path(path), 0)
    return Parsed(parse_tokens(tokens), reader.files)


def parse_text(text: str, name: str = "Corefile", base: Optional[Path] = None) -> Parsed:
    """For tests: a Corefile given as text (imports relative to ``base``)."""
    reader = _Reader()
    tokens = reader.expand(reader.take_snippets(tokenize(text, name)), base or Path("."), 0)
    return Parsed(parse_tokens(tokens), reader.files)
