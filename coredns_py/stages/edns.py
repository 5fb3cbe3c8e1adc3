"""EDNS on the wire, for the stages: the OPT record of a message (RFC 6891),
its options, and the short answers a stage sends instead of an answer.

The stages see wire bytes (that is what keeps ``zone/`` pure and its
prepared answers exact), so they find the OPT record by walking the
message's records, read and change its options in place, and build the few
answers they send themselves: truncated (TC=1, RFC 1035 4.1.1, for RRL's
slip) and BADCOOKIE (RFC 7873 section 5.2.3).  Nothing here parses record
data or judges a message: a message that cannot be walked is left to
``answer()``, which answers FORMERR.
"""

from __future__ import annotations

from typing import Optional

from coredns_py.zone.wire import CLASSIC_UDP, EDNS_PAYLOAD, MAX_MESSAGE, header_only

OPT = 41
COOKIE = 10  # option code (RFC 7873)
BADCOOKIE = 23  # extended rcode (RFC 7873 section 8)

_OPT_HEAD = b"\x00\x00\x29"  # a root owner name and type 41
_BARE_OPT = 11  # an OPT record without options: root, type, class, TTL, RDLENGTH
_TC = 0x02  # in the third header byte


def bare_opt_last(wire: bytes) -> bool:
    """The message ends with an OPT record without options (the common
    shape of a query and of our answers: nothing to look for)."""
    return wire[-_BARE_OPT:-8] == _OPT_HEAD and wire[-2:] == b"\x00\x00"


def _skip_name(wire: bytes, pos: int) -> int:
    n = len(wire)
    while True:
        if pos >= n:
            raise ValueError("name runs off the end")
        length = wire[pos]
        if length == 0:
            return pos + 1
        if length >= 0xC0:
            return pos + 2  # a compression pointer ends the name
        if length > 63:
            raise ValueError("unknown label type")
        pos += length + 1


def sections(wire: bytes) -> tuple[int, list[list[tuple[int, int, int]]]]:
    """(end of the question section, the answer, authority and additional
    sections: each record as (its start, the end of its owner name, its
    end)).  The type, class, TTL and RDLENGTH are the 10 bytes after the
    owner name.

    Raises ValueError when the message cannot be walked (counts that do
    not match, a record running past the end): ``answer()`` decides what
    such a message gets.
    """
    n = len(wire)
    if n < 12:
        raise ValueError("shorter than a header")
    pos = 12
    for _ in range(int.from_bytes(wire[4:6], "big")):
        pos = _skip_name(wire, pos) + 4
    if pos > n:
        raise ValueError("question runs off the end")
    qend = pos
    out: list[list[tuple[int, int, int]]] = [[], [], []]
    for i, count in enumerate((wire[6:8], wire[8:10], wire[10:12])):
        for _ in range(int.from_bytes(count, "big")):
            start = pos
            pos = _skip_name(wire, pos)
            if pos + 10 > n:
                raise ValueError("record runs off the end")
            name_end = pos
            pos += 10 + int.from_bytes(wire[pos + 8:pos + 10], "big")
            if pos > n:
                raise ValueError("record data runs off the end")
            out[i].append((start, name_end, pos))
    return qend, out


def locate(wire: bytes) -> tuple[int, int]:
    """(end of the question section, offset of the OPT record or -1); a
    message that cannot be walked raises ValueError (see :func:`sections`)."""
    qend, (_, _, additional) = sections(wire)
    for start, name_end, _ in additional:
        if start + 1 == name_end and wire[name_end:name_end + 2] == b"\x00\x29":
            return qend, start
    return qend, -1


def plain_question(wire: bytes, qend: int) -> bool:
    """The question names hold no compression pointer, so the question can be
    copied into another message as it is."""
    pos = 12
    while pos < qend:
        length = wire[pos]
        if length > 63:
            return False
        pos = pos + 5 if length == 0 else pos + length + 1
    return True


def find_option(wire: bytes, opt: int, code: int) -> Optional[tuple[int, int]]:
    """The (start, end) of the data of the first option ``code`` in the OPT
    record at ``opt``, or None; ValueError for options that overrun it."""
    pos = opt + _BARE_OPT
    end = pos + int.from_bytes(wire[opt + 9:opt + 11], "big")
    found = None
    while pos < end:
        if pos + 4 > end:
            raise ValueError("option header runs off the record")
        data = pos + 4
        stop = data + int.from_bytes(wire[pos + 2:pos + 4], "big")
        if stop > end:
            raise ValueError("option data runs off the record")
        if found is None and int.from_bytes(wire[pos:pos + 2], "big") == code:
            found = (data, stop)
        pos = stop
    return found


def without_option(wire: bytes, opt: int, code: int) -> bytes:
    """``wire`` with every option ``code`` taken out of its OPT record (whose
    options were found well formed by find_option)."""
    start = opt + _BARE_OPT
    end = start + int.from_bytes(wire[opt + 9:opt + 11], "big")
    if int.from_bytes(wire[start:start + 2], "big") == code \
            and start + 4 + int.from_bytes(wire[start + 2:start + 4], "big") == end:
        return wire[:opt + 9] + b"\x00\x00" + wire[end:]  # the only option
    kept = []
    pos = start
    while pos < end:
        stop = pos + 4 + int.from_bytes(wire[pos + 2:pos + 4], "big")
        if int.from_bytes(wire[pos:pos + 2], "big") != code:
            kept.append(wire[pos:stop])
        pos = stop
    rdata = b"".join(kept)
    return wire[:opt + 9] + len(rdata).to_bytes(2, "big") + rdata + wire[end:]


def option(code: int, data: bytes) -> bytes:
    """One option: code, length, data."""
    return code.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data


def udp_payload(wire: bytes, opt: int) -> int:
    """The most a UDP client with this OPT record accepts, within our limits
    (the rule of zone.wire.udp_limit, read from the wire)."""
    if opt < 0:
        return CLASSIC_UDP
    return max(CLASSIC_UDP, min(int.from_bytes(wire[opt + 3:opt + 5], "big"), EDNS_PAYLOAD))


def limit(wire: bytes, opt: int, proto: str) -> int:
    return udp_payload(wire, opt) if proto == "udp" else MAX_MESSAGE


def add_option(response: Optional[bytes], opt_bytes: bytes, size_limit: int) -> Optional[bytes]:
    """``response`` with ``opt_bytes`` (whole options) added to its OPT
    record; a response without one is returned as it is.  When the result
    would pass ``size_limit``, the answer is truncated instead: header and
    question, TC set, the OPT record with the option (the client retries
    over TCP, RFC 7766 section 5)."""
    if response is None:
        return None
    if bare_opt_last(response):
        qend, opt = -1, len(response) - _BARE_OPT
    else:
        try:
            qend, opt = locate(response)
        except ValueError:
            return response
        if opt < 0:
            return response
    rdlen = int.from_bytes(response[opt + 9:opt + 11], "big")
    end = opt + _BARE_OPT + rdlen
    out = (response[:opt + 9] + (rdlen + len(opt_bytes)).to_bytes(2, "big")
           + response[opt + _BARE_OPT:end] + opt_bytes + response[end:])
    if len(out) <= size_limit:
        return out
    if qend < 0:
        qend, _ = locate(response)
    header = (bytes([response[0], response[1], response[2] | _TC, response[3]])
              + response[4:6] + b"\x00\x00\x00\x00\x00\x01")
    return (header + response[12:qend] + response[opt:opt + 9]
            + len(opt_bytes).to_bytes(2, "big") + opt_bytes)


def truncated(response: bytes) -> bytes:
    """A truncated version of ``response``: its header with TC set and no
    records, and its question; the client asks again over TCP.  What RRL
    sends for a slipped answer (as BIND and Knot do)."""
    qend, _ = locate(response)
    return (bytes([response[0], response[1], response[2] | _TC, response[3]])
            + response[4:6] + bytes(6) + response[12:qend])


def badcookie(message: bytes, options: bytes = b"") -> bytes:
    """A BADCOOKIE answer to ``message`` (a query, or our response to it):
    its ID, opcode, RD and question, no records, and an OPT record carrying
    ``options`` (the cookie stage adds the fresh COOKIE)."""
    qend, _ = locate(message)
    header = header_only(message, BADCOOKIE & 0x0F)
    ext_rcode = BADCOOKIE >> 4
    opt = (b"\x00\x00\x29" + EDNS_PAYLOAD.to_bytes(2, "big") + bytes([ext_rcode, 0, 0, 0])
           + len(options).to_bytes(2, "big") + options)
    return header[:4] + message[4:6] + b"\x00\x00\x00\x00\x00\x01" + message[12:qend] + opt
