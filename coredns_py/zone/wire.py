"""DNS messages on the wire: their size limits, and rendering a response.

A local answer (records of :mod:`coredns_py.zone.records`) leaves through
:func:`render_records`, a forwarded one (a dnspython message) through
:func:`render`; both write the same bytes for the same message (name
compression, record order, truncation: dnspython's rules, which a test
checks record for record).  The answers that carry no data (FORMERR for a
packet too broken to parse, SERVFAIL) are made here too, so a local and a
forwarded SERVFAIL look alike.
"""

from __future__ import annotations

import struct
from typing import Optional, Sequence

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype as T

# The EDNS buffer we advertise and the most we send over UDP: 1232 bytes fits
# an IPv6 packet on a 1280-byte MTU without fragmentation (DNS Flag Day 2020;
# BIND, Knot and Unbound default to it).
EDNS_PAYLOAD = 1232
# Without EDNS a UDP answer is at most 512 bytes (RFC 1035 4.2.1).
CLASSIC_UDP = 512
# The largest DNS message: a TCP frame's 2-byte length (RFC 1035 4.2.2), and
# a UDP payload (the 16-bit IP length field), so no datagram we read is cut.
MAX_MESSAGE = 65535
# The longest name on the wire (RFC 1035 2.3.4); dnspython rejects longer.
MAX_NAME = 255


def question_labels(wire: bytes) -> Optional[tuple[list, int]]:
    """The labels of the first question's name, read from the wire after the
    12-byte header, and where its root label is; None when the name is cut
    short, longer than a name may be, or not written out (a compression
    pointer or an extended label type: such a query is dnspython's to read).

    The one reader of a question name from bytes: the answer's own reader of
    the common query and the stages that look at a query before it do not
    each decide again where a name ends."""
    n = len(wire)
    pos = 12
    labels = []
    while pos < n:
        length = wire[pos]
        if length == 0:
            return (labels, pos) if pos - 12 + 1 <= MAX_NAME else None
        if length & 0xC0:
            return None
        end = pos + 1 + length
        labels.append(wire[pos + 1:end])
        pos = end
    return None


def udp_limit(query) -> int:
    """The most a UDP client accepts: its EDNS size, within [512, EDNS_PAYLOAD]."""
    if query.edns < 0:
        return CLASSIC_UDP
    return max(CLASSIC_UDP, min(query.payload, EDNS_PAYLOAD))


def limit(query, proto: str) -> int:
    """The most a response to ``query`` may hold over ``proto`` ("udp" or "tcp")."""
    return udp_limit(query) if proto == "udp" else MAX_MESSAGE


def header_only(wire: bytes, rcode: int) -> bytes:
    """A response with no sections, for queries too broken to parse: the
    query's ID, QR, its opcode and RD, and ``rcode``."""
    flags = int.from_bytes(wire[2:4], "big")
    out_flags = 0x8000 | (flags & 0x7800) | (flags & 0x0100) | rcode  # QR, opcode, RD
    return wire[:2] + out_flags.to_bytes(2, "big") + bytes(8)


def render(response: dns.message.Message, max_size: int) -> bytes:
    """Wire form; over ``max_size``, whole RRsets are dropped and TC is set.

    Records keep their order (dnspython would shuffle them): CoreDNS's
    kubernetes plugin answers in a fixed order too (shuffling is its separate
    loadbalance plugin), and a fixed order is what lets the hot path reuse
    answers as bytes.  When not even the header and question fit (no size we
    allow is that small) the answer is a bare SERVFAIL.
    """
    try:
        return response.to_wire(max_size=max_size, prefer_truncation=True, want_shuffle=False)
    except dns.exception.TooBig:
        header = response.id.to_bytes(2, "big") + response.flags.to_bytes(2, "big")
        return header_only(header, dns.rcode.SERVFAIL)


def servfail(response: dns.message.Message, query: dns.message.Message,
             ede: Optional[dns.edns.EDEOption] = None) -> dns.message.Message:
    """``response`` made a SERVFAIL: no records, our header bits (QR, RD, the
    query's CD), and for an EDNS client the Extended DNS Error ``ede``
    (RFC 8914), so that dig shows why."""
    response.flags = (response.flags & (dns.flags.QR | dns.flags.RD)) | (
        query.flags & dns.flags.CD)
    response.answer, response.authority, response.additional = [], [], []
    if ede is not None and response.edns >= 0:
        response.use_edns(0, response.ednsflags & dns.flags.DO, EDNS_PAYLOAD, options=[ede])
    response.set_rcode(dns.rcode.SERVFAIL)
    return response


# --- local answers: our records, written as dnspython would write them ----------

_HHIH = struct.Struct("!HHIH")
_HHH = struct.Struct("!HHH")
_HH = struct.Struct("!HH")
_SOA_TIMERS = struct.Struct("!IIIII")
_IN = 1
OPT_SIZE = 11  # an OPT record without options: root, type, class, TTL, RDLENGTH


def write_name(out: bytearray, name, compress: Optional[dict]) -> None:
    """A name, compressed as dnspython compresses: each suffix already
    written (in any letter case) becomes a pointer to it; each suffix
    written here is remembered while it starts below 0x4000.  ``compress``
    None: written in full and not remembered (SRV targets, RFC 2782)."""
    wire = b"".join([_LENGTH[len(label)] + label for label in name])
    if compress is not None:
        # The keys: each suffix's wire form in lower case (names compare
        # case-insensitively, and a label's length byte is never a letter).
        lower = wire.lower()
        start = 0
        for label in name:
            pos = compress.get(lower[start:])
            if pos is not None:
                out += wire[:start]
                out += (0xC000 | pos).to_bytes(2, "big")
                return
            if len(out) + start <= 0x3FFF:
                compress[lower[start:]] = len(out) + start
            start += len(label) + 1
    out += wire
    out.append(0)


_LENGTH = [bytes((n,)) for n in range(256)]


def _write_string(out: bytearray, s: bytes) -> None:
    out.append(len(s))
    out += s


def write_rdata(out: bytearray, rdtype: int, rd, compress: dict) -> None:
    if rdtype in (T.A, T.AAAA):
        out += rd
    elif rdtype in (T.CNAME, T.PTR, T.NS):
        write_name(out, rd, compress)
    elif rdtype == T.SRV:
        out += _HHH.pack(rd[0], rd[1], rd[2])
        write_name(out, rd[3], None)
    elif rdtype == T.SOA:
        write_name(out, rd[0], compress)
        write_name(out, rd[1], compress)
        out += _SOA_TIMERS.pack(*rd[2:])
    elif rdtype in (T.TXT, T.HINFO):
        for s in rd:
            _write_string(out, s)
    else:
        raise ValueError(f"cannot write rdata of type {rdtype}")


def write_rrset(out: bytearray, rs, compress: dict) -> int:
    """Every record of ``rs`` (owner name, type, class, TTL, rdata); how many."""
    for rd in rs.rdatas:
        write_name(out, rs.owner, compress)
        out += _HHIH.pack(rs.rdtype, _IN, rs.ttl, 0)
        start = len(out)
        write_rdata(out, rs.rdtype, rd, compress)
        out[start - 2:start] = (len(out) - start).to_bytes(2, "big")
    return len(rs.rdatas)


def opt_record(ednsflags: int, ext_rcode: int = 0) -> bytes:
    """Our OPT record: payload EDNS_PAYLOAD, version 0, no options."""
    return (b"\x00\x00\x29" + EDNS_PAYLOAD.to_bytes(2, "big") + bytes((ext_rcode, 0))
            + (ednsflags & 0xFFFF).to_bytes(2, "big") + b"\x00\x00")


def render_records(qid: int, flags: int, questions: Sequence[tuple],
                   sections: Sequence[Sequence], opt: Optional[bytes], max_size: int) -> bytes:
    """A response of our records; over ``max_size``, whole RRsets are dropped
    from the first that does not fit, and TC is set unless that one was in
    the additional section (dnspython's ``prefer_truncation``, which
    :func:`render` uses for forwarded answers).  ``questions``: (name,
    type, class); ``opt``: the OPT record to end with (room is kept for it)."""
    out = bytearray(12)
    compress: dict = {}
    budget = max(CLASSIC_UDP, min(max_size, MAX_MESSAGE)) - (len(opt) if opt else 0)
    for name, qtype, qclass in questions:
        write_name(out, name, compress)
        out += _HH.pack(qtype, qclass)
    counts = [0, 0, 0]
    done = False
    for i, section in enumerate(sections):
        for rs in section:
            start = len(out)
            n = write_rrset(out, rs, compress)
            if len(out) > budget:
                del out[start:]
                for key in [k for k, v in compress.items() if v >= start]:
                    del compress[key]
                if i < 2:
                    flags |= dns.flags.TC
                done = True
                break
            counts[i] += n
        if done:
            break
    if opt:
        out += opt
        counts[2] += 1
    out[0:12] = struct.pack("!HHHHHH", qid, flags, len(questions), *counts)
    return bytes(out)


# --- zone transfers: one answer in several messages ----------------------------------

# The most one message of a zone transfer holds (a record bigger than that
# goes alone): BIND's transfer-message-size default.  Bigger messages save
# little (each repeats only a header and the question), and each is built
# whole before it is sent.
XFR_MESSAGE_SIZE = 20480


def xfr_messages(qid: int, flags: int, questions: Sequence[tuple], rrsets,
                 opt: Optional[bytes], size: int = XFR_MESSAGE_SIZE):
    """The messages of a zone transfer (RFC 5936 2.2): the records of
    ``rrsets`` in the order given, as many as fit ``size`` bytes in each
    message, every message with the question and ``opt``.  A generator:
    each message is made when the transport asks for it."""
    budget = size - (len(opt) if opt else 0)
    out, compress, count = _xfr_start(questions)
    for rs in rrsets:
        for rd in rs.rdatas:
            one = rs._replace(rdatas=(rd,))
            start = len(out)
            write_rrset(out, one, compress)
            if len(out) > budget and count:
                del out[start:]
                yield _xfr_finish(out, qid, flags, len(questions), count, opt)
                out, compress, count = _xfr_start(questions)
                write_rrset(out, one, compress)
            count += 1
    yield _xfr_finish(out, qid, flags, len(questions), count, opt)


def _xfr_start(questions) -> tuple[bytearray, dict, int]:
    out = bytearray(12)
    compress: dict = {}
    for name, qtype, qclass in questions:
        write_name(out, name, compress)
        out += _HH.pack(qtype, qclass)
    return out, compress, 0


def _xfr_finish(out: bytearray, qid: int, flags: int, qdcount: int, count: int,
                opt: Optional[bytes]) -> bytes:
    if opt:
        out += opt
    out[0:12] = struct.pack("!HHHHHH", qid, flags, qdcount, count, 0, 1 if opt else 0)
    return bytes(out)
