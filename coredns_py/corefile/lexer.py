"""Corefile tokens, as CoreDNS's Caddyfile reader splits them.

Words are separated by white space; a newline ends a directive's line;
``"..."`` quotes a word (which may then hold spaces, newlines and ``\\"``);
``#`` at the start of a word comments out the rest of the line; ``{`` and
``}`` open and close blocks.  Environment variables are replaced inside
words: ``{$NAME}`` and ``{%NAME%}`` (an unset variable is empty, as in
CoreDNS); ``{$NAME:default}`` gives a default.

Every token knows its file and line, so every error names them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping, Optional

from coredns_py.errors import ConfigError

_ENV = re.compile(r"\{\$([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}|\{%([A-Za-z_][A-Za-z0-9_]*)%\}")


@dataclass
class Token:
    text: str
    file: str
    line: int
    first: bool = False  # the first word of its line: a directive's name
    quoted: bool = False

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def __str__(self) -> str:
        return self.text


def expand_env(text: str, env: Optional[Mapping[str, str]] = None) -> str:
    env = os.environ if env is None else env

    def value(m: re.Match) -> str:
        name = m.group(1) or m.group(3)
        default = m.group(2)
        got = env.get(name)
        if got is None or (got == "" and default is not None):
            return default or ""
        return got
    return _ENV.sub(value, text)


def tokenize(text: str, file: str, env: Optional[Mapping[str, str]] = None) -> list[Token]:
    """The tokens of a Corefile's text."""
    out: list[Token] = []
    i, n, line = 0, len(text), 1
    at_line_start = True
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            at_line_start = True
            i += 1
            continue
        if c.isspace():
            i += 1
            continue
        if c == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        start_line = line
        if c == '"':
            i += 1
            word = []
            while True:
                if i >= n:
                    raise ConfigError(f"{file}:{start_line}: a quoted word is not closed")
                c = text[i]
                if c == "\\" and i + 1 < n and text[i + 1] == '"':
                    word.append('"')
                    i += 2
                    continue
                if c == '"':
                    i += 1
                    break
                if c == "\n":
                    line += 1
                word.append(c)
                i += 1
            out.append(Token(expand_env("".join(word), env), file, start_line, at_line_start,
                             quoted=True))
        else:
            start = i
            while i < n and not text[i].isspace():
                # "{$VAR}" is one word: its braces are not a block's.
                if text[i] == "{" and i + 1 < n and text[i + 1] in "$%":
                    end = text.find("}", i)
                    if end > 0:
                        i = end + 1
                        continue
                i += 1
            out.append(Token(expand_env(text[start:i], env), file, start_line, at_line_start))
        at_line_start = False
    return out
