"""The ``rewrite`` rules: CoreDNS's ``name`` rules read from the config (or a
Corefile), each able to rewrite a name and to say how the answer is written
back.  What the rules do to queries is :mod:`coredns_py.stages.rewrite`'s.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import dns.rdatatype as T

from coredns_py.errors import ConfigError

MATCHES = ("exact", "prefix", "suffix", "substring", "regex")
# CoreDNS refuses longer patterns (compiling them can take a lot of memory).
MAX_REGEX = 10000

# Record types whose value is a name that `answer auto` and `answer value`
# rewrite, and the field holding it (CoreDNS getRecordValueForRewrite).
VALUE_FIELDS = {T.CNAME: "target", T.DNAME: "target", T.NS: "target", T.PTR: "target",
                 T.SRV: "target", T.MX: "exchange", T.NAPTR: "replacement", T.SOA: "mname"}


def normalize(text: str) -> str:
    """CoreDNS's plugin.Name(...).Normalize(): lower case, a final dot."""
    text = text.lower()
    return text if text.endswith(".") else text + "."


def _groups(replacement: str, match: re.Match) -> str:
    out = replacement
    for i, value in enumerate([match.group(0), *match.groups()]):
        out = out.replace("{%d}" % i, value or "")
    return out


def _regex(where: str, pattern: str, replacement: str) -> re.Pattern:
    if len(pattern) > MAX_REGEX:
        raise ConfigError(f"{where}: regex pattern too long ({len(pattern)} > {MAX_REGEX})")
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{where}: invalid regex {pattern!r}: {exc}") from None
    used = {int(n) for n in re.findall(r"\{(\d+)\}", replacement)}
    if used and max(used) > rx.groups:
        raise ConfigError(f"{where}: {replacement!r} uses more groups than {pattern!r} has")
    return rx


@dataclass(frozen=True)
class Answer:
    """A response rule: ``auto`` (the rewrite undone), or a regex rewrite of
    owner names (``name``) or record values (``value``)."""

    kind: str  # "name", "value"
    pattern: Any = None  # re.Pattern
    replacement: str = ""


@dataclass(frozen=True)
class NameRule:
    mode: str  # "stop" or "continue"
    match: str  # one of MATCHES
    source: str  # normalized (or the regex's text)
    target: str  # normalized
    auto: bool = False
    answers: tuple = ()  # Answer, in the order written
    text: str = field(default="", compare=False)  # the rule as written
    pattern: Any = field(default=None, compare=False)  # the compiled regex

    def rewrite(self, name: str) -> Optional[str]:
        """The new name, or None when the rule does not match ``name``."""
        match, src = self.match, self.source
        if match == "exact":
            return self.target if name == src else None
        if match == "prefix":
            return self.target + name[len(src):] if name.startswith(src) else None
        if match == "suffix":
            return name[:-len(src)] + self.target if name.endswith(src) else None
        if match == "substring":
            return name.replace(src, self.target) if src in name else None
        m = self.pattern.search(name)
        return _groups(self.target, m) if m else None

    def reverts(self, asked: str, new: str) -> list:
        """The response rules for a question ``asked`` rewritten to ``new``:
        (kind, rewrite function) in the order written."""
        out = []
        if self.auto or self.match == "exact":
            if self.match == "suffix":
                undo = _suffix_undo(self.target, self.source)
            else:
                undo = _remap(new, asked)
            out += [("name", undo), ("value", undo)]
        for a in self.answers:
            out.append((a.kind, _regex_rewriter(a.pattern, a.replacement)))
        return out


def _remap(orig: str, replacement: str) -> Callable[[str], str]:
    """``orig`` (and names below it) to ``replacement`` (CoreDNS remap)."""
    def rewrite(src: str) -> str:
        if src == orig:
            return replacement
        i = len(src) - len(orig)
        if i > 0 and src[i - 1] == "." and src[i:] == orig:
            return src[:i] + replacement
        return src
    return rewrite


def _suffix_undo(suffix: str, replacement: str) -> Callable[[str], str]:
    def rewrite(src: str) -> str:
        return src[:-len(suffix)] + replacement if src.endswith(suffix) else src
    return rewrite


def _regex_rewriter(pattern: re.Pattern, replacement: str) -> Callable[[str], str]:
    def rewrite(src: str) -> str:
        m = pattern.search(src)
        return _groups(replacement, m) if m else src
    return rewrite


def parse_rule(where: str, words: list[str]) -> NameRule:
    """One rule from its words (CoreDNS's ``rewrite`` arguments)."""
    text = " ".join(words)
    args = list(words)
    mode = "stop"
    if args and args[0].lower() in ("stop", "continue"):
        mode = args.pop(0).lower()
    if not args:
        raise ConfigError(f"{where}: rewrite needs a rule")
    field_name = args.pop(0).lower()
    if field_name == "answer":
        raise ConfigError(f"{where}: response rewrites must begin with a name rule")
    if field_name != "name":
        raise ConfigError(f"{where}: rewrite {field_name}: not implemented (only `name` rules)")
    if len(args) < 2:
        raise ConfigError(f"{where}: rewrite name needs FROM and TO")
    if len(args) == 2:
        match, src, dst = "exact", args[0], args[1]
        rest: list[str] = []
    else:
        match, src, dst, rest = args[0].lower(), args[1], args[2], args[3:]
        if match not in MATCHES:
            raise ConfigError(f"{where}: rewrite name {args[0]}: one of {', '.join(MATCHES)}")
    pattern = None
    if match == "regex":
        pattern = _regex(where, src, dst)
        dst = normalize(dst)
    else:
        src, dst = normalize(src), normalize(dst)
    auto, answers = _answers(where, rest)
    return NameRule(mode, match, src, dst, auto, answers, text, pattern)


def _answers(where: str, args: list[str]) -> tuple[bool, tuple]:
    """``answer auto``, ``answer name FROM TO``, ``answer value FROM TO``
    (after the first, the word ``answer`` may be left out)."""
    auto, out, i = False, [], 0
    if args and args[0] != "answer":
        raise ConfigError(f"{where}: after FROM and TO: expected `answer ...`, got {args[0]!r}")
    if args and len(args) < 2:
        raise ConfigError(f"{where}: `answer` needs auto, name or value")
    while i < len(args):
        if args[i] == "answer":
            i += 1
        if i >= len(args):
            raise ConfigError(f"{where}: `answer` needs auto, name or value")
        kind = args[i]
        i += 1
        if kind == "auto":
            auto = True
        elif kind in ("name", "value"):
            if i + 2 > len(args):
                raise ConfigError(f"{where}: answer {kind} needs FROM and TO")
            out.append(Answer(kind, _regex(where, args[i], args[i + 1]), normalize(args[i + 1])))
            i += 2
        else:
            raise ConfigError(f"{where}: answer {kind!r}: expected auto, name or value")
    if auto and any(a.kind == "name" for a in out):
        raise ConfigError(f"{where}: answer auto cannot be combined with answer name")
    return auto, tuple(out)


def parse(source: str, value: Any) -> tuple[NameRule, ...]:
    """The ``rewrite`` key: a list of rules, each a string of CoreDNS's
    words (quoted as a shell would, for a space in a pattern) or a list."""
    if not isinstance(value, list):
        raise ConfigError(f"{source}: config key rewrite: expected a list of rules, "
                          f"got {value!r}")
    rules = []
    for i, item in enumerate(value):
        where = f"{source}: config key rewrite[{i}]"
        if isinstance(item, str):
            try:
                words = shlex.split(item)
            except ValueError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        elif isinstance(item, list) and all(isinstance(w, str) for w in item):
            words = item
        else:
            raise ConfigError(f"{where}: expected a rule (a string), got {item!r}")
        rules.append(parse_rule(where, words))
    return tuple(rules)


def apply(rules, name: str) -> tuple[Optional[str], list]:
    """(the new name or None when no rule matched, the response rules)."""
    new = None
    reverts: list = []
    for rule in rules:
        current = name if new is None else new
        out = rule.rewrite(current)
        if out is None:
            continue
        reverts += rule.reverts(current, out)
        new = out
        if rule.mode == "stop":
            break
    return new, reverts
