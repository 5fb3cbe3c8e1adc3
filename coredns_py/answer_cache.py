"""The hot path: answers kept as wire bytes, per snapshot.

``answer()`` is the one place where DNS decisions are made; this module only
remembers what it said.  A response is the query's ID, a header, the query's
own question section (echoed byte for byte, so 0x20 case randomisation
survives), and a tail of records.  The tail does not depend on the letter
case of the question: every owner name in it that equals the question name or
one of its suffixes is written as a compression pointer into the question
(dnspython compresses case-insensitively), and every other name is written
from our lower-case data.  So the tail can be reused for any query that
differs only in ID and letter case, which makes a repeated query a dictionary
lookup and two concatenations.

What may not be reused is not stored: queries of unusual shape (compressed
question, extra records other than one OPT, trailing bytes) and anything
that needs upstream data always take the plain path.  The cache belongs to
one snapshot and is dropped with it, so a reload is never answered from old
data.
"""

from __future__ import annotations

from typing import Callable, Optional

# Bound on remembered answers per snapshot: about 300 bytes each, so the
# cache stays under about 80 MB.  When full it starts over rather than
# tracking recency, which costs nothing on the hot path.  (At 100k Services
# the benchmark's mix has ~80k distinct questions per transport; a bound of
# 100k made UDP and TCP rounds empty it for each other.)
MAX_ENTRIES = 262_144

_OPT_HEAD = b"\x00\x00\x29"  # root owner name, type OPT (41)


def cache_key(wire: bytes, proto: str) -> Optional[tuple]:
    """(key, end of question) for a plain query, None for anything else.

    The key holds what the answer depends on: the flags word (opcode, RD,
    CD ...), the question with its name lower-cased, the OPT record's payload
    size, extended rcode, version and flags (not its options, which we do not
    answer), and the transport (which sets the size limit).
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
        opt = None
    elif arcount == b"\x00\x01":
        if wire[qend:qend + 3] != _OPT_HEAD or qend + 11 > n:
            return None
        rdlen = int.from_bytes(wire[qend + 9:qend + 11], "big")
        if qend + 11 + rdlen != n:
            return None
        opt = wire[qend + 3:qend + 9]
    else:
        return None
    if qend > n:
        return None
    key = (wire[2:4], wire[12:pos].lower() + wire[pos:qend], opt, proto)
    return key, qend


class AnswerCache:
    def __init__(self, max_entries: int = MAX_ENTRIES):
        self.max_entries = max_entries
        self._snapshot = None
        self._entries: dict[tuple, tuple[bytes, bytes]] = {}
        self.hits = 0
        self.misses = 0

    def answer(self, snap, wire: bytes, proto: str, plain: Callable[[], object]):
        """The cached answer for ``wire``, or ``plain()``'s, remembered when safe."""
        if snap is not self._snapshot:
            self._snapshot = snap
            self._entries = {}
        found = cache_key(wire, proto)
        if found is None:
            return plain()
        key, qend = found
        entry = self._entries.get(key)
        if entry is not None:
            self.hits += 1
            return wire[:2] + entry[0] + wire[12:qend] + entry[1]
        self.misses += 1
        out = plain()
        # Only plain bytes that echo the question in place can be reused; a
        # Forward (upstream data) or a dropped query never is. Before the
        # first load (snap is None) nothing is kept.
        if snap is not None and type(out) is bytes and out[12:qend] == wire[12:qend]:
            if len(self._entries) >= self.max_entries:
                self._entries = {}
            self._entries[key] = (out[2:12], out[qend:])
        return out
