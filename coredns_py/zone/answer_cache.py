"""The hot path: answers kept as wire bytes, per snapshot.

``answer()`` is the one place where DNS decisions are made; this module only
remembers what it said.  A response is the query's ID, a header, the query's
own question section (echoed byte for byte, so 0x20 case randomisation
survives), and a tail of records.  The tail does not depend on the letter
case of the question: every owner name in it that equals the question name or
one of its suffixes is written as a compression pointer into the question
(dnspython compresses case-insensitively), and every other name is written
from our lower-case data.  So one answer serves every query that differs
only in ID and letter case.

Answers are filed under the *canonical query*: the query without its ID,
its question name in lower case.  Most queries are already canonical (stub
resolvers send names as written, in lower case), so the common lookup is
one slice of the query and one dictionary probe; only a miss there parses
the question to build the canonical form.  The entry is the response's header (without
the ID) and its records: the query's own question is spliced in between.
(Not keeping the question in the entry saved about 40 bytes an answer, a
sixth of the cache; a canonical query's question ends where its OPT
record, exactly 11 bytes without options, begins, so no parsing is needed.)

What may not be reused is not stored: queries of unusual shape (compressed
question, extra records other than one OPT, EDNS options, trailing bytes)
and anything that needs upstream data always take the plain path.  The
cache belongs to one snapshot and is dropped with it, so a reload is never
answered from old data.
"""

from __future__ import annotations

from typing import Callable, Optional

# Bound on remembered answers per snapshot, over both transports: about 200
# bytes each (measured at 10k Services), so the cache stays under about 55 MB.  When full it starts over
# rather than tracking recency, which costs nothing on the hot path.  (At
# 100k Services the benchmark's mix has ~80k distinct questions per
# transport; a bound of 100k made UDP and TCP rounds empty it for each other.)
MAX_ENTRIES = 262_144

_OPT_HEAD = b"\x00\x00\x29"  # root owner name, type OPT (41)
_BARE_OPT = 11  # an OPT record without options: root, type, class, TTL, RDLENGTH


def canonical(wire: bytes) -> Optional[tuple[bytes, int]]:
    """(canonical query, end of question) for a plain query, None for anything else.

    The canonical query holds what the answer depends on: the flags word
    (opcode, RD, CD ...), the question with its name lower-cased, and the OPT
    record's payload size, extended rcode, version and flags.  A query with
    EDNS options is not plain.  Lower-casing touches only the name:
    the label lengths (at most 63) are never ASCII letters, and the type
    and class bytes after the name are kept as they are.
    """
    n = len(wire)
    # QR clear, opcode QUERY, exactly one question, no answer/authority records.
    if n < 17 or wire[2] & 0xF8 or wire[4:10] != b"\x00\x01\x00\x00\x00\x00":
        return None
    pos = 12
    while True:
        length = wire[pos]
        if length == 0:
            break
        if length & 0xC0:
            return None  # a compressed or extended label in a question: plain path
        pos += length + 1
        if pos >= n:
            return None
    qend = pos + 5
    arcount = wire[10:12]
    if arcount == b"\x00\x00":
        if qend != n:
            return None
        rest = wire[pos:qend]
    elif arcount == b"\x00\x01":
        if wire[qend:qend + 3] != _OPT_HEAD or qend + 11 > n:
            return None
        if qend + _BARE_OPT != n or wire[n - 2:] != b"\x00\x00":
            # EDNS options: each may change the answer (a malformed one is
            # FORMERR, padding pads it, RFC 8467) or be answered by a stage
            # (cookies), so such queries always take the plain path.
            return None
        rest = wire[pos:n]
    else:
        return None
    return wire[2:12] + wire[12:pos].lower() + rest, qend


class AnswerCache:
    def __init__(self, max_entries: int = MAX_ENTRIES):
        self.max_entries = max_entries
        self._snapshot = None
        # One table per transport: the size limit (truncation) differs.
        self._tables: dict[str, dict[bytes, bytes]] = {"udp": {}, "tcp": {}}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return sum(len(t) for t in self._tables.values())

    def answer(self, snap, wire: bytes, proto: str, plain: Callable[[], object]):
        """The cached answer for ``wire``, or ``plain()``'s, remembered when safe."""
        if snap is not self._snapshot:
            self._snapshot = snap
            self._tables = {"udp": {}, "tcp": {}}
        table = self._tables[proto]
        entry = table.get(wire[2:])
        if entry is not None:  # a canonical query seen before
            self.hits += 1
            qend = len(wire) if wire[11] == 0 else len(wire) - _BARE_OPT
            return wire[:2] + entry[:10] + wire[12:qend] + entry[10:]
        found = canonical(wire)
        if found is None:
            return plain()
        key, qend = found
        entry = table.get(key)
        if entry is not None:  # the same in another case, or with options
            self.hits += 1
            return wire[:2] + entry[:10] + wire[12:qend] + entry[10:]
        self.misses += 1
        out = plain()
        # Only plain bytes that echo the question in place can be reused; a
        # Forward (upstream data) or a dropped query never is. Before the
        # first load (snap is None) nothing is kept.
        if snap is not None and type(out) is bytes and out[12:qend] == wire[12:qend]:
            if len(self) >= self.max_entries:
                self._tables = {"udp": {}, "tcp": {}}
                table = self._tables[proto]
            table[key] = out[2:12] + out[qend:]
        return out
