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

from typing import Optional

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rrset

from coredns_py import stages
from coredns_py.net.handler import Handler
from coredns_py.stages import edns
from coredns_py.stages.rewrite_rules import VALUE_FIELDS, apply
from coredns_py.zone import wire as wire_mod

# Answers written back, kept for the next time (a few hundred bytes each),
# and the names whose fate is known (the rules' result, or "no match").
MAX_REVERTED = 4096
MAX_DECIDED = 16384


def _revert_rrset(rs: dns.rrset.RRset, reverts: list) -> dns.rrset.RRset:
    name = rs.name.to_text()
    rdatas = list(rs)
    for kind, rewrite in reversed(reverts):  # in reverse order, as CoreDNS
        if kind == "name":
            name = rewrite(name)
        elif rs.rdtype in VALUE_FIELDS:
            attr = VALUE_FIELDS[rs.rdtype]
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
