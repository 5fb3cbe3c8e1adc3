"""Answer rotation (CoreDNS *loadbalance*, ``round_robin``): the A, AAAA
and MX records of an answer in random order, so that clients which take
the first address spread over every endpoint of a headless Service (or
every address an upstream gives).

As CoreDNS: only NOERROR answers, never a zone transfer; every section;
each RRset shuffled with a uniform permutation; then, with ``prefer``
(CoreDNS ``prefer CIDR...``), the addresses in those networks first, in the
order of the list.  Records stay within their RRset and RRsets keep their
order (CoreDNS also regroups a section with several types: CNAMEs first,
then the rest, addresses, MX; our answers, and upstream ones, are already
in that order but for the RRsets' own, which a client does not read).

It works on the response's wire, after the answer is made: the prepared
answers (zone/prepared.py) stay exact and shared, and this stage writes a
copy.  An A or AAAA record's TTL, length and address are the last 10 or 22
bytes of the record, the same size for every record of its RRset, so
shuffling is moving those slices, whatever the owner names (compressed or
not); nothing is parsed but the record boundaries.  MX data holds a name
that others may point into, so an answer with several MX records is read
and written again whole (forwarded answers only: our zones have no MX).
"""

from __future__ import annotations

import ipaddress
import random
from typing import Callable, Sequence

import dns.exception
import dns.message
import dns.rdatatype
import dns.rrset

from coredns_py import stages
from coredns_py.net.handler import Handler
from coredns_py.stages import edns
from coredns_py.zone import wire as wire_mod

POLICIES = ("round_robin",)

_A, _AAAA, _MX = b"\x00\x01", b"\x00\x1c", b"\x00\x0f"
_XFR = (b"\x00\xfc", b"\x00\xfb")  # AXFR, IXFR
# An address record's tail: TTL (4), RDLENGTH (2) and the address.
_TAIL = {_A: 10, _AAAA: 22}
_MAX_POINTERS = 64  # a name that follows more pointers is broken (or hostile)

_shuffle = random.shuffle
_bit = random.getrandbits


def _owner(wire: bytes, pos: int) -> bytes:
    """The name at ``pos``, pointers followed, in lower case (names compare
    case-insensitively)."""
    parts = []
    for _ in range(_MAX_POINTERS):
        length = wire[pos]
        if length == 0:
            return b"".join(parts)
        if length >= 0xC0:
            pos = ((length & 0x3F) << 8) | wire[pos + 1]
            continue
        parts.append(wire[pos:pos + length + 1].lower())
        pos += length + 1
    raise ValueError("too many compression pointers")


def _runs(wire: bytes, records: list):
    """(type, the records) of each run of two or more consecutive A, AAAA or
    MX records with one owner: an RRset."""
    i, n = 0, len(records)
    while i < n:
        start, name_end, _ = records[i]
        rtype = wire[name_end:name_end + 2]
        j = i + 1
        if rtype in _TAIL or rtype == _MX:
            raw = wire[start:name_end]
            key = None
            while j < n:
                s, e, _ = records[j]
                if wire[e:e + 2] != rtype:
                    break
                if wire[s:e] != raw:
                    if key is None:
                        key = _owner(wire, start)
                    if _owner(wire, s) != key:
                        break
                j += 1
            if j - i > 1:
                yield rtype, records[i:j]
        i = j


def _preferred(prefer: Sequence, rdata: bytes) -> int:
    ip = ipaddress.ip_address(rdata)
    for rank, net in enumerate(prefer):
        if ip.version == net.version and ip in net:
            return rank
    return len(prefer)


# Where the RRsets to shuffle are, per response (its bytes after the ID):
# walking a message costs a few microseconds in Python, and the same answer
# goes out again and again (a prepared answer differs only in its ID).
# Bounded; when full it starts over, as the prepared answers do.
MAX_LAYOUTS = 4096
_REWRITE = "rewrite"  # the layout of an answer with several MX records
_layouts: dict = {}


def _layout(response: bytes):
    """((tail size, (end of each record, ...)), ...) for each A or AAAA
    RRset of two or more records; _REWRITE when MX records need shuffling;
    () when there is nothing to do."""
    try:
        qend, sections = edns.sections(response)
        if response[qend - 4:qend - 2] in _XFR:
            return ()
        out = []
        for records in sections:
            for rtype, run in _runs(response, records):
                if rtype == _MX:
                    return _REWRITE
                size = _TAIL[rtype]
                lengths = {response[end - size + 4:end - size + 6] for _, _, end in run}
                if lengths == {(size - 6).to_bytes(2, "big")}:  # else broken: leave it be
                    out.append((size, tuple(end for _, _, end in run)))
        return tuple(out)
    except (ValueError, IndexError):
        return ()  # cannot be walked: as it is


def shuffle(response: bytes, prefer: Sequence = (), query: bytes = b"",
            proto: str = "tcp") -> bytes:
    """``response`` with its A, AAAA and MX RRsets shuffled (a new bytes;
    ``response`` itself as it is when there is nothing to shuffle).
    ``query`` and ``proto`` say how much the client accepts, for an answer
    written again whole."""
    if len(response) < 12 or response[3] & 0x0F or (
            response[7] < 2 and response[9] < 2 and response[11] < 2
            and not (response[6] or response[8] or response[10])):
        return response  # not NOERROR, or no section with two records
    key = response[2:]
    layout = _layouts.get(key)
    if layout is None:
        layout = _layout(response)
        if len(_layouts) >= MAX_LAYOUTS:
            _layouts.clear()
        _layouts[key] = layout
    if not layout:
        return response
    if layout is _REWRITE:
        return _rewritten(response, prefer, query, proto)
    out = bytearray(response)
    for size, ends in layout:
        tails = [response[end - size:end] for end in ends]
        if len(tails) == 2:  # the common pair: one random bit (as CoreDNS)
            if _bit(1):
                tails.reverse()
        else:
            _shuffle(tails)
        if prefer:
            tails.sort(key=lambda t: _preferred(prefer, t[6:]))
        for end, tail in zip(ends, tails):
            out[end - size:end] = tail
    return bytes(out)


def _rewritten(response: bytes, prefer: Sequence, query: bytes, proto: str) -> bytes:
    """The whole message read and written again with its RRsets shuffled
    (for MX, whose data holds names)."""
    try:
        msg = dns.message.from_wire(response)
        limit = edns.limit(query, edns.locate(query)[1], proto) if query else \
            wire_mod.MAX_MESSAGE
    except (dns.exception.DNSException, ValueError):
        return response
    for section in (msg.answer, msg.authority, msg.additional):
        for i, rrset in enumerate(section):
            if rrset.rdtype not in (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.MX) \
                    or len(rrset) < 2:
                continue
            items = list(rrset)
            _shuffle(items)
            if prefer and rrset.rdtype != dns.rdatatype.MX:
                items.sort(key=lambda rd: _preferred(prefer, ipaddress.ip_address(
                    rd.address).packed))
            new = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype)
            new.update_ttl(rrset.ttl)
            for rd in items:
                new.add(rd)
            section[i] = new
    return wire_mod.render(msg, limit)


def stage(prefer: Sequence[str] = ()) -> Callable[[Handler], Handler]:
    """The loadbalance stage: every response the inner handler gives (now
    or later, from upstream) shuffled."""
    networks = tuple(ipaddress.ip_network(p) for p in prefer)

    def wrap(inner: Handler) -> Handler:
        def handler(wire: bytes, proto: str, peer):
            result = inner(wire, proto, peer)
            if type(result) is bytes:
                return shuffle(result, networks, wire, proto)
            return stages.then(result, lambda response: shuffle(response, networks, wire, proto))
        return handler
    return wrap
