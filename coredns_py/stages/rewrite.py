"""Query names rewritten before the answer (CoreDNS *rewrite*, its ``name``
rules), and the answer written back so the client sees the name it asked.

The ``rewrite`` config key lists rules as CoreDNS writes them::

    rewrite:
      - name exact api.myapp.test api.default.svc.cluster.local
      - continue name suffix .myapp.test .default.svc.cluster.local answer auto
      - name regex (.*)-(us-west-1)\\.example\\.org {1}.service.{2}.consul answer name (.*)\\.service\\.(us-west-1)\\.consul {1}-{2}.example.org

As CoreDNS (plugin/rewrite/name.go, reverter.go):

- the question's name, lower case with its final dot, is matched by each
  rule in order: ``exact`` (the default), ``prefix``, ``suffix``,
  ``substring`` (FROM and TO lower-cased and ending with a dot) or
  ``regex`` (the first match anywhere in the name; TO may use ``{1}``...
  for its groups, and becomes the whole new name); a rule that matches
  rewrites the name and ends the list, unless it says ``continue``;
- the answer gets the client's question back, and with ``answer auto``
  (always for ``exact``) every name and record value (CNAME, SRV, MX, NS,
  PTR, DNAME and the SOA's server) equal to the new name or below it is
  mapped back to the name asked (for ``suffix``: the new suffix back to the
  old); ``answer name FROM TO`` rewrites owner names and ``answer value
  FROM TO`` record values by regular expression; response rules apply in
  the reverse order of the rules that matched;
- a new name that is not a domain name is answered SERVFAIL.

Regular expressions are Python's (the same as Go's for the usual
patterns).  Rules of other fields (type, class, ttl, edns0, cname, rcode)
are not implemented.

A question no rule matches goes on untouched, after one look at its name
(as does a name with a label holding a dot or a byte that is not ASCII:
:func:`coredns_py.stages.question`).
An answer written back is kept (bounded), keyed by the inner answer and the
question asked: the same answer to the same question is written back once.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype as T
import dns.rrset

from coredns_py import stages
from coredns_py.errors import ConfigError
from coredns_py.net.handler import Handler
from coredns_py.stages import edns
from coredns_py.zone import wire as wire_mod

MATCHES = ("exact", "prefix", "suffix", "substring", "regex")
# CoreDNS refuses longer patterns (compiling them can take a lot of memory).
MAX_REGEX = 10000
# Answers written back, kept for the next time (a few hundred bytes each),
# and the names whose fate is known (the rules' result, or "no match").
MAX_REVERTED = 4096
MAX_DECIDED = 16384

# Record types whose value is a name that `answer auto` and `answer value`
# rewrite, and the field holding it (CoreDNS getRecordValueForRewrite).
_VALUE_FIELDS = {T.CNAME: "target", T.DNAME: "target", T.NS: "target", T.PTR: "target",
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


# --- the stage ----------------------------------------------------------------------------


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


def _revert_rrset(rs: dns.rrset.RRset, reverts: list) -> dns.rrset.RRset:
    name = rs.name.to_text()
    rdatas = list(rs)
    for kind, rewrite in reversed(reverts):  # in reverse order, as CoreDNS
        if kind == "name":
            name = rewrite(name)
        elif rs.rdtype in _VALUE_FIELDS:
            attr = _VALUE_FIELDS[rs.rdtype]
            for i, rd in enumerate(rdatas):
                value = getattr(rd, attr).to_text()
                changed = rewrite(value)
                if changed != value:
                    rdatas[i] = rd.replace(**{attr: dns.name.from_text(changed)})
    out = dns.rrset.RRset(dns.name.from_text(name), rs.rdclass, rs.rdtype)
    out.update_ttl(rs.ttl)
    for rd in rdatas:
        out.add(rd)
    return out


def revert(response: bytes, query: bytes, qend: int, reverts: list, proto: str) -> bytes:
    """The inner answer with the client's question back and the response
    rules applied, written again within what the client accepts."""
    try:
        msg = dns.message.from_wire(response)
        asked, _ = dns.name.from_wire(query, 12)
    except dns.exception.DNSException:
        return response
    qtype = int.from_bytes(query[qend - 4:qend - 2], "big")
    qclass = int.from_bytes(query[qend - 2:qend], "big")
    msg.question = [dns.rrset.RRset(asked, qclass, qtype)]
    if reverts:
        for section in (msg.answer, msg.authority, msg.additional):
            section[:] = [_revert_rrset(rs, reverts) for rs in section]
    try:
        limit = edns.limit(query, edns.locate(query)[1], proto)
    except ValueError:
        limit = wire_mod.limit(msg, proto)
    return wire_mod.render(msg, limit)


def _to_wire(name: str) -> Optional[bytes]:
    """A name's text as the wire writes it; None when it is not a domain
    name (an empty or too long label, too long in all)."""
    if "\\" in name:  # escapes: dnspython reads them
        try:
            return dns.name.from_text(name).to_wire()
        except dns.exception.DNSException:
            return None
    if name == ".":
        return b"\x00"
    try:
        labels = name.rstrip(".").encode("ascii").split(b".")
    except UnicodeEncodeError:
        return None
    if not name.endswith(".") or any(not 0 < len(label) < 64 for label in labels):
        return None
    out = b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"
    return out if len(out) <= 255 else None


def _servfail(query: bytes) -> bytes:
    return wire_mod.header_only(query, dns.rcode.SERVFAIL)


_UNSEEN = object()


class Rewrite:
    """The rules, what they decided for each name asked, and the answers
    written back so far."""

    def __init__(self, rules):
        self.rules = tuple(rules)
        # The question's name as sent, lower-cased (the wire form up to its
        # root label) -> (the name as text, the new name, the response
        # rules, the new name's wire), or None when no rule matches: one
        # dictionary lookup for a name seen before, matching or not.
        self._decided: dict = {}
        self._reverted: dict = {}

    def decide(self, wire: bytes, end: int):
        """What the rules do to the question of ``wire`` (its name's root
        label at ``end``); None: nothing."""
        q = stages.question(wire)
        if q is None or q[3] != end + 5:
            return None  # a name we do not rewrite (a dot or odd bytes in a label)
        name = q[0]
        new, reverts = apply(self.rules, name)
        if new is None:
            return None
        return name, new, reverts, _to_wire(new)

    def written_back(self, response: bytes, query: bytes, qend: int, reverts: list,
                     proto: str, key) -> bytes:
        if response is None:
            return None
        full = (response[2:], key)
        kept = self._reverted.get(full)
        if kept is not None:
            return response[:2] + kept
        out = revert(response, query, qend, reverts, proto)
        if len(self._reverted) >= MAX_REVERTED:
            self._reverted = {}
        self._reverted[full] = out[2:]
        return out

    def stage(self, inner: Handler) -> Handler:
        decided = self._decided

        def handler(wire: bytes, proto: str, peer):
            end = wire.find(0, 12)
            if end < 0 or wire[2] & 0xF8 or wire[4:6] != b"\x00\x01":
                return inner(wire, proto, peer)  # a response, not a QUERY, not one question
            key = wire[12:end].lower()  # (a label's length byte is never a letter)
            hit = decided.get(key, _UNSEEN)
            if hit is _UNSEEN:
                hit = self.decide(wire, end)
                if len(decided) >= MAX_DECIDED:
                    decided.clear()
                decided[key] = hit
            if hit is None:
                return inner(wire, proto, peer)
            name, new, reverts, name_wire = hit
            if name_wire is None:
                return _servfail(wire)  # not a domain name (CoreDNS: SERVFAIL)
            qend = end + 5
            new_wire = wire[:12] + name_wire + wire[qend - 4:]
            # What the answer is written back with: the question as asked,
            # the rules that matched, how much the client takes.
            written = (wire[12:qend], name, new, proto, wire[qend:])
            result = inner(new_wire, proto, peer)
            return stages.then(result, lambda response: self.written_back(
                response, wire, qend, reverts, proto, written))
        return handler
