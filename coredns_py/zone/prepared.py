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
others are kept.  An answer is made on its first query (see "lazily" in
bench/README.md for why not at build time).

Only the common query shape takes this path: opcode QUERY, one question
with its name written out, no other records but an OPT of version 0
without options (what stub resolvers send).  Anything else, and answers
that do not fit the client's size, go through ``answer()`` every time.
"""

from __future__ import annotations

from typing import Optional

from coredns_py.zone import answer as answer_mod
from coredns_py.zone import wire as wire_mod
from coredns_py.zone.lookup import SOA_TAIL, STATIC, soa_serial
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
        # question (name lower-cased, type, class) -> (scope, its value,
        # heads, records, the question's type and class as sent)
        self._entries: dict[bytes, tuple] = {}
        self._serial_of = None  # the snapshot whose SOA serial is in _serial
        self._serial = b""
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def answer(self, snap, wire: bytes, proto: str, forwarding: bool = False):
        """``answer(snap, wire, proto, forwarding=...)``, from a kept entry when
        there is one, and kept for next time when it can be."""
        n = len(wire)
        if snap is None or n < 17 or wire[2] & 0xF8 or wire[4:10] != _ONE_QUESTION:
            return answer_mod.answer(snap, wire, proto, forwarding=forwarding)
        arcount = wire[10:12]
        if arcount == _NO_AR:
            qend = n
            opt = b""
            limit = wire_mod.CLASSIC_UDP if proto == "udp" else wire_mod.MAX_MESSAGE
        elif (arcount == _ONE_AR and wire[n - 11:n - 8] == _OPT_HEAD and not wire[n - 5]
              and wire[n - 2:] == _NO_AR):
            qend = n - _OPT_SIZE
            opt = _OPT_DO if wire[n - 4] & 0x80 else _OPT
            if proto == "udp":
                limit = max(wire_mod.CLASSIC_UDP,
                            min((wire[n - 8] << 8) | wire[n - 7], wire_mod.EDNS_PAYLOAD))
            else:
                limit = wire_mod.MAX_MESSAGE
        else:
            return answer_mod.answer(snap, wire, proto, forwarding=forwarding)
        key = wire[12:qend].lower()
        entry = self._entries.get(key)
        scopes = snap.scopes
        if (entry is None or scopes.get(entry[0], scopes[STATIC]) is not entry[1]
                or not wire.endswith(entry[4], 0, qend)):
            entry = self._prepare(snap, wire, key, forwarding)
            if entry is None:  # nothing to keep: answer()'s own
                return answer_mod.answer(snap, wire, proto, forwarding=forwarding)
            self.misses += 1
        else:
            self.hits += 1
        heads, body = entry[2], entry[3]
        head = heads[(wire[2] & 1) | ((wire[3] & 0x10) >> 3) | (4 if opt else 0)]
        if heads[8]:  # ends with a zone's SOA: its serial is this snapshot's
            if snap is not self._serial_of:
                self._serial, self._serial_of = soa_serial(snap), snap
            body += self._serial + heads[8]
        if qend + len(body) + len(opt) > limit:
            # Too big for this client: answer() truncates it.
            return answer_mod.answer(snap, wire, proto, forwarding=forwarding)
        return wire[:2] + head + wire[12:qend] + body + opt

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
        entry = (out.scope, snap.scopes.get(out.scope, snap.scopes[STATIC]),
                 _heads((plain[2] << 8) | plain[3], plain[6:12], timers), body,
                 _share(wire[qend - 4:qend]))
        if len(self._entries) >= self.max_entries:
            self._entries = {}
        self._entries[key] = entry
        return entry
