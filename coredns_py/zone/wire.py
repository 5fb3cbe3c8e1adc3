"""DNS messages on the wire: their size limits, and rendering a response.

Every response, local or forwarded, leaves through :func:`render`; the
answers that carry no data (FORMERR for a packet too broken to parse,
SERVFAIL) are made here too, so a local and a forwarded SERVFAIL look alike.
"""

from __future__ import annotations

from typing import Optional

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.rcode

# The EDNS buffer we advertise and the most we send over UDP: 1232 bytes fits
# an IPv6 packet on a 1280-byte MTU without fragmentation (DNS Flag Day 2020;
# BIND, Knot and Unbound default to it).
EDNS_PAYLOAD = 1232
# Without EDNS a UDP answer is at most 512 bytes (RFC 1035 4.2.1).
CLASSIC_UDP = 512
# The largest DNS message: a TCP frame's 2-byte length (RFC 1035 4.2.2), and
# a UDP payload (the 16-bit IP length field), so no datagram we read is cut.
MAX_MESSAGE = 65535


def udp_limit(query: dns.message.Message) -> int:
    """The most a UDP client accepts: its EDNS size, within [512, EDNS_PAYLOAD]."""
    if query.edns < 0:
        return CLASSIC_UDP
    return max(CLASSIC_UDP, min(query.payload, EDNS_PAYLOAD))


def limit(query: dns.message.Message, proto: str) -> int:
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
