"""The hot path: answers kept as wire bytes, across reloads.

``answer()`` is the one place where DNS decisions are made; this module keeps
what it said, as bytes, and says it again.  For a question (its name in
lower case, its type and class) the answer is the same for every query but
for a few header bits and the query's own question, so one entry serves
them all:

- the ID, RD and CD come from the query (RD and CD are copied; AA and the
  rcode are the answer's), and the question is the query's own, echoed byte
  for byte (0x20 case randomisation survives).  Every owner name that equals
  the question name or one of its suffixes is a compression pointer into the
  question (names compress case-insensitively), every other name comes from
  our lower-case data: so the records do not depend on the letter case of
  the question;
- an OPT record (payload 1232, the query's DO echoed) ends the answer when
  the query had one; the records do not depend on it either;
- an answer that ends with a zone's SOA (every NXDOMAIN and NODATA, and
  SOA at the apex) is kept without the SOA's serial, which is written from
  the current snapshot: the serial changes at every reload, and the rest of
  such an answer need not.  The timers after it are kept with the header
  variants (a zone's own ``ttl`` is its SOA's minimum).

An entry is good as long as what the answer was made from is unchanged:
lookup tags every answer with its scope (the config, one namespace, or the
whole cluster), and the snapshot maps each scope to a value that stays the
same object while that input does (a namespace's share of the snapshot is
reused by the build's memo while its objects are unchanged).  An entry
records the value it was made with and is used only while the current
snapshot holds the same one.  So a reload that touches one namespace makes
again only that namespace's answers (and those that depend on the whole
cluster: reverse names, the apex NS, CNAMEs followed inside the zone); the
others are kept.  An answer is made on its first query, not at build
time: making every Service's A, AAAA and SRV answers would double the
start-up at 10k Services and still leave the search-path names, which
cannot be listed (bench/prepare_cost.py; bench/README.md, "Cold p99").

Only the common query shape takes this path: opcode QUERY, one question
with its name written out, no other records but an OPT of version 0
without options (what stub resolvers send).  Anything else, and answers
that do not fit the client's size, go through ``answer()`` every time.
Zone transfers (AXFR, IXFR) are never kept: they are the transfer stage's,
which a kept answer is given before (stages.passes_prepared).  Answers
made without a forwarder are forgotten when one starts (a foreign name's
REFUSED would outlive it), and the other way round.
"""

from __future__ import annotations

import sys
from typing import Optional

from coredns_py.zone import answer as answer_mod
from coredns_py.zone import wire as wire_mod
from coredns_py.zone.lookup import SOA_TAIL, soa_serial
from coredns_py.zone.records import RRset

# Bound on kept answers.  Each costs about 250 bytes (its question as the
# key, the records, a small tuple): 262,144 of them about 65 MB, which the
# benchmark's mix at 100k Services (about 80k distinct questions) stays
# well under.  When full it starts over rather than tracking recency, which
# costs nothing on the hot path.
MAX_ENTRIES = 262_144

_ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00"  # QDCOUNT 1, ANCOUNT 0, NSCOUNT 0
_NO_AR = b"\x00\x00"
_ONE_AR = b"\x00\x01"
_OPT_HEAD = b"\x00\x00\x29"  # root owner name, type OPT (41)
_OPT = wire_mod.opt_record(0)
_OPT_DO = wire_mod.opt_record(answer_mod.DO)
_OPT_SIZE = wire_mod.OPT_SIZE
_SOA = 6
_CLASSIC_UDP = wire_mod.CLASSIC_UDP
_MAX_MESSAGE = wire_mod.MAX_MESSAGE
_EDNS_PAYLOAD = wire_mod.EDNS_PAYLOAD
# Zone transfers are never kept: their question goes to the transfer stage
# (stages/transfer.py), which a kept answer must not bypass.
_TRANSFERS = (b"\x00\xfb", b"\x00\xfc")  # IXFR, AXFR

# The index into an entry's heads of a query's RD (header byte 2) with or
# without EDNS, and of its CD (byte 3): tables, cheaper than the bit
# arithmetic on the hot path.
_RD = tuple(b & 1 for b in range(256))
_RD_EDNS = tuple(b & 1 | 4 for b in range(256))
_CD = tuple((b & 0x10) >> 3 for b in range(256))

# Header variants (flags and counts, without the ID) shared by every entry
# that has them: most answers are one of a few dozen.
_shared: dict = {}


def _share(value):
    return _shared.setdefault(value, value)


def _heads(flags: int, counts: bytes, timers: bytes) -> tuple:
    """The 10 header bytes after the ID for each (RD, CD, EDNS) of a query,
    indexed RD | CD >> 3 | EDNS << 2, and, when the answer ends with a
    zone's SOA, the SOA's timers that follow its serial (else b"")."""
    key = (flags, counts, timers)
    heads = _shared.get(key)
    if heads is None:
        heads = _shared[key] = _make_heads(flags, counts, timers)
    return heads


def _make_heads(flags: int, counts: bytes, timers: bytes) -> tuple:
    an_ns, ar = counts[:4], int.from_bytes(counts[4:6], "big")
    heads = []
    for i in range(8):
        f = flags | (0x100 if i & 1 else 0) | (0x10 if i & 2 else 0)
        heads.append(_share(f.to_bytes(2, "big") + b"\x00\x01" + an_ns
                            + (ar + (i >> 2)).to_bytes(2, "big")))
    return _share((*heads, timers))


def _key(snap, wire: bytes) -> Optional[bytes]:
    """The entry key of a query of the shape kept (its question, lower
    case), or None."""
    n = len(wire)
    if snap is None or n < 17 or wire[2] & 0xF8 or wire[4:10] != _ONE_QUESTION:
        return None
    arcount = wire[10:12]
    if arcount == _NO_AR:
        return wire[12:].lower()
    if (arcount == _ONE_AR and wire[n - 11:n - 8] == _OPT_HEAD and not wire[n - 5]
            and wire[n - 2:] == _NO_AR):
        return wire[12:n - _OPT_SIZE].lower()
    return None


def _ends_with_soa(reply: answer_mod.Reply) -> bool:
    last: Optional[RRset] = None
    for section in (reply.answer, reply.authority, reply.additional):
        if section:
            last = section[-1]
    return last is not None and last.rdtype == _SOA and len(last.rdatas) == 1


class PreparedAnswers:
    """Answers as bytes, for whichever snapshot is current."""

    def __init__(self, max_entries: int = MAX_ENTRIES):
        self.max_entries = max_entries
        # question as sent (name lower-cased, type, class) -> (scope, its
        # value, heads, records, the question's type and class as sent)
        self._entries: dict[bytes, tuple] = {}
        self._serial_of = None  # the snapshot whose SOA serial is in _serial
        self._serial = b""
        # Whether the entries were made with a forwarder to complete answers
        # (without one, the local part of such an answer is kept: REFUSED
        # for a foreign name, say, which must not outlive the forwarder's
        # arrival).
        self._forwarding = False
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def forwarding(self, on: bool) -> None:
        """From now on answers are made with (or without) a forwarder: the
        entries made otherwise are forgotten."""
        if on != self._forwarding:
            self._entries = {}
            self._forwarding = on

    def answer(self, snap, wire: bytes, proto: str, forwarding: bool = False):
        """``answer(snap, wire, proto, forwarding=...)``, from a kept entry when
        there is one, and kept for next time when it can be."""
        if forwarding != self._forwarding:
            self.forwarding(forwarding)
        out = self.kept(snap, wire, proto)
        if out is not None:
            return out
        key = _key(snap, wire)
        if key is not None and not self._valid(snap, wire, key) and \
                self._prepare(snap, wire, key, forwarding) is not None:
            self.misses += 1
            out = self.kept(snap, wire, proto)
            if out is not None:
                self.hits -= 1  # kept() counted this miss as a hit
                return out
        # Not a shape or an answer we keep, or too big for this client
        # (answer() truncates it): answer()'s own.
        return answer_mod.answer(snap, wire, proto, forwarding=forwarding)

    def kept(self, snap, wire: bytes, proto: str) -> Optional[bytes]:
        """The kept answer to ``wire`` for ``snap``, or None when there is
        none to give: not a query of the shape kept, no entry or a stale
        one, or an answer too big for this client.  The hot path: every
        query the server answers from its zones goes through here first."""
        n = len(wire)
        if snap is None or n < 17 or wire[2] & 0xF8 or wire[4:10] != _ONE_QUESTION:
            return None
        if not wire[11] and not wire[10]:  # no additional record
            qend = n
            opt = b""
            rd = _RD
            limit = _CLASSIC_UDP if proto == "udp" else _MAX_MESSAGE
        elif (wire[11] == 1 and not wire[10] and wire.startswith(_OPT_HEAD, n - 11)
              and not wire[n - 5] and wire.endswith(_NO_AR)):
            qend = n - _OPT_SIZE
            opt = _OPT_DO if wire[n - 4] & 0x80 else _OPT
            rd = _RD_EDNS
            if proto == "udp":
                limit = max(_CLASSIC_UDP, min((wire[n - 8] << 8) | wire[n - 7], _EDNS_PAYLOAD))
            else:
                limit = _MAX_MESSAGE
        else:
            return None
        question = wire[12:qend]
        entry = self._entries.get(question.lower())
        if entry is None:
            return None
        scope, value, heads, body, sent = entry
        if snap.scopes[scope] is not value or question[-4:] != sent:
            return None
        if heads[8]:  # ends with a zone's SOA: its serial is this snapshot's
            if snap is not self._serial_of:
                self._serial, self._serial_of = soa_serial(snap), snap
            body += self._serial + heads[8]
        if qend + len(body) + len(opt) > limit:
            return None
        self.hits += 1
        return b"".join((wire[:2], heads[rd[wire[2]] | _CD[wire[3]]], question, body, opt))

    def _valid(self, snap, wire: bytes, key: bytes) -> bool:
        entry = self._entries.get(key)
        return (entry is not None and snap.scopes[entry[0]] is entry[1]
                and wire.endswith(entry[4], 0, 12 + len(key)))

    def _prepare(self, snap, wire: bytes, key: bytes, forwarding: bool) -> Optional[tuple]:
        """A new entry for the question in ``wire``, or None when its answer
        is not one to keep (it goes upstream, it failed, it never fits)."""
        query = answer_mod.read_plain(wire)
        if query is None:
            return None
        try:
            out = answer_mod.decide(snap, query, forwarding)
        except Exception:  # answer() logs it and sends SERVFAIL
            return None
        if not isinstance(out, answer_mod.Reply):
            return None
        qend = query.qend
        if wire[qend - 4:qend - 2] in _TRANSFERS:
            return None
        # The answer as it would go to a query without RD, CD and EDNS, and
        # without a size limit; the entry is the part after the question.
        plain = wire_mod.render_records(0, out.flags & ~(answer_mod.RD | answer_mod.CD),
                                        query.questions,
                                        (out.answer, out.authority, out.additional), None,
                                        wire_mod.MAX_MESSAGE)
        if plain[2] & 0x02:  # truncated even over TCP
            return None
        body = plain[qend:]
        timers = b""
        if _ends_with_soa(out):
            body, timers = body[:-SOA_TAIL], body[-SOA_TAIL + 4:]
        scope = out.scope
        if type(scope) is str:
            # A namespace's name, made anew by each lookup: one object for
            # every entry of the namespace (measured 1.3 MB at 10k Services
            # with the benchmark's mix).  Interned strings are freed with
            # their last entry.
            scope = sys.intern(scope)
        entry = (scope, snap.scopes[scope],
                 _heads((plain[2] << 8) | plain[3], plain[6:12], timers), body,
                 _share(wire[qend - 4:qend]))
        if len(self._entries) >= self.max_entries:
            self._entries = {}
        self._entries[key] = entry
        return entry
