"""``answer(snapshot, query) -> response``: a DNS message in, a DNS message out.

Pure: no sockets, no files, no clock.  The message-level rules live here
(opcode, EDNS version, question count, class, zone transfers, ANY, the
authoritative bit, SOA in negative answers, what must go upstream); what a
name holds is :mod:`coredns_py.zone.lookup`'s; the bytes are
:mod:`coredns_py.zone.wire`'s.  Together they are every DNS decision of
the server, in one place.  Expected negative outcomes (NXDOMAIN, NODATA,
REFUSED ...) are values, not exceptions.

The common query (one question, its name written out, at most an OPT
record without options) is read here directly; anything else is read by
dnspython.  Either way :func:`respond` decides on the same :class:`Query`,
and gives a :class:`Reply` of our own records
(:mod:`coredns_py.zone.records`), which :mod:`coredns_py.zone.wire` writes.
Only an answer that goes upstream, or a query that asks for padding, is
turned into dnspython's message, which the forwarder completes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype as T

from coredns_py.zone import records, wire as wire_mod
from coredns_py.zone.lookup import in_reverse_zone, resolve
from coredns_py.zone.result import STATIC, Result
from coredns_py.zone.snapshot import Snapshot

log = logging.getLogger("coredns_py.answer")

IN = dns.rdataclass.IN
QR, AA, RD, CD = (int(f) for f in (dns.flags.QR, dns.flags.AA, dns.flags.RD, dns.flags.CD))
DO = int(dns.flags.DO)
_OPT_HEAD = b"\x00\x00\x29"  # an OPT record: the root name, type 41


# --- the query ---------------------------------------------------------------------

@dataclass(slots=True)
class Query:
    """What a query asks, however it was read."""

    id: int
    flags: int  # the header's flags word
    questions: tuple  # ((name as sent, type, class), ...)
    edns: int = -1  # the EDNS version; -1: no OPT record
    payload: int = 0  # the EDNS UDP size
    ednsflags: int = 0  # the OPT record's TTL field (extended rcode, version, DO ...)
    pad: bool = False  # asks for padding (RFC 8467): dnspython writes that answer
    qend: int = 0  # where the question ends in the wire (read here directly); 0: dnspython

    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF


def read_plain(wire: bytes) -> Optional[Query]:
    """The common query read directly, or None for any other shape.

    One question with its name written out (no compression pointer), no
    answer or authority records, and nothing after it but an OPT record of
    version 0 without options: what stub resolvers send.  Anything else,
    broken input included, is dnspython's to read (and to reject)."""
    n = len(wire)
    if n < 17 or wire[2] & 0xF8 or wire[4:10] != b"\x00\x01\x00\x00\x00\x00":
        return None  # not opcode QUERY, or not one question alone
    read = wire_mod.question_labels(wire)
    if read is None:
        return None
    labels, pos = read
    qend = pos + 5
    if qend > n:
        return None
    qtype = (wire[pos + 1] << 8) | wire[pos + 2]
    qclass = (wire[pos + 3] << 8) | wire[pos + 4]
    query = Query((wire[0] << 8) | wire[1], (wire[2] << 8) | wire[3],
                  ((tuple(labels), qtype, qclass),), qend=qend)
    arcount = wire[10:12]
    if arcount == b"\x00\x00":
        return query if qend == n else None
    if (arcount != b"\x00\x01" or n != qend + wire_mod.OPT_SIZE
            or wire[qend:qend + 3] != _OPT_HEAD or wire[n - 2:] != b"\x00\x00"):
        return None  # another record, or an OPT with options: dnspython reads it
    query.edns = wire[qend + 6]
    query.payload = (wire[qend + 3] << 8) | wire[qend + 4]
    query.ednsflags = int.from_bytes(wire[qend + 5:qend + 9], "big")
    return query


def read(wire: bytes) -> Optional[Query]:
    """The query in ``wire``; None when it cannot be read (FORMERR)."""
    query = read_plain(wire)
    if query is not None:
        return query
    try:
        msg = dns.message.from_wire(wire)
    except Exception:  # any malformed packet; dnspython raises many types
        return None
    return Query(msg.id, msg.flags,
                 tuple((q.name.labels[:-1], q.rdtype, q.rdclass) for q in msg.question),
                 msg.edns, msg.payload, msg.ednsflags,
                 pad=any(o.otype == dns.edns.OptionType.PADDING for o in msg.options))


# --- the reply ---------------------------------------------------------------------

@dataclass(slots=True)
class Reply:
    """A response of our own records, for one query."""

    query: Query
    flags: int  # the header's flags word (rcode's low bits included)
    ednsflags: int = 0  # our OPT record's TTL field (extended rcode, DO)
    answer: list = field(default_factory=list)
    authority: list = field(default_factory=list)
    additional: list = field(default_factory=list)
    # What the answer depends on, for answers prepared ahead
    # (:mod:`coredns_py.zone.prepared`): result.STATIC, result.GLOBAL or a
    # namespace.
    scope: object = STATIC

    @property
    def rcode(self) -> int:
        return ((self.ednsflags >> 20) & 0xFF0) | (self.flags & 0xF)

    def set_rcode(self, rcode: int) -> None:
        self.flags = (self.flags & 0xFFF0) | (rcode & 0xF)
        self.ednsflags = (self.ednsflags & 0x00FFFFFF) | ((rcode & 0xFF0) << 20)


def _reply(query: Query) -> Reply:
    """The empty response: QR, the query's opcode and RD (dnspython's
    make_response), CD copied as RFC 4035 3.1.6 asks (CoreDNS does, through
    miekg/dns SetReply), DO echoed as RFC 3225 asks."""
    flags = QR | (query.flags & (RD | CD | 0x7800))
    return Reply(query, flags, (query.ednsflags & DO) if query.edns >= 0 else 0)


@dataclass
class Forward:
    """The answer needs upstream data: ask ``qname``/``qtype`` upstream.

    ``response`` is the response so far: for a name outside our zones an
    empty one; for an ExternalName it already holds the CNAME, and the
    upstream's records are appended after it. ``local`` is what to send when
    the query cannot go upstream (forwarding off, or a client that may not
    recurse): REFUSED for a foreign name, the bare CNAME for an ExternalName.
    """

    query: dns.message.Message
    response: dns.message.Message
    qname: dns.name.Name
    qtype: int
    local: dns.message.Message
    limit: int  # the most the client accepts (wire.limit)


@dataclass(slots=True)
class Upstream:
    """What :func:`respond` says when the answer needs upstream data: the
    question to ask there, the response so far, and the local answer."""

    qname: tuple
    qtype: int
    response: Reply
    local: Reply


# --- answering -------------------------------------------------------------------

def answer(snap: Optional[Snapshot], wire: bytes, proto: str = "udp", *,
           forwarding: bool = False):
    """Answer one DNS message: bytes, or None to send nothing (not even an
    error). With ``forwarding`` it may instead return a :class:`Forward`,
    which the server completes with an upstream answer."""
    if len(wire) < 12:
        return None  # not even a header to answer to
    if wire[2] & 0x80:
        return None  # a response, not a query: answering could loop
    query = read(wire)
    if query is None:
        return wire_mod.header_only(wire, dns.rcode.FORMERR)
    limit = wire_mod.limit(query, proto)
    try:
        out = decide(snap, query, forwarding)
    except Exception:  # a bug of ours must cost one answer, not the server
        log.exception("cannot answer %s", query.questions)
        return wire_mod.header_only(wire, dns.rcode.SERVFAIL)
    if isinstance(out, Upstream):
        return forward(wire, out, limit)
    return render(out, limit, wire)


def decide(snap: Optional[Snapshot], query: Query, forwarding: bool):
    """What to send: a :class:`Reply`, or :class:`Upstream` when the answer
    needs upstream data and ``forwarding`` can get it (without forwarding,
    the local part of such an answer is all there is)."""
    out = respond(snap, query)
    if isinstance(out, Upstream) and not forwarding:
        return out.local
    return out


def render(reply: Reply, limit: int, wire: bytes = b"") -> bytes:
    """The wire form of a reply, within ``limit`` bytes."""
    query = reply.query
    if query.pad:
        # Padding (RFC 8467) is dnspython's: it writes the whole answer.
        return wire_mod.render(to_message(reply, dns.message.from_wire(wire)), limit)
    opt = wire_mod.opt_record(reply.ednsflags, reply.ednsflags >> 24) if query.edns >= 0 else None
    return wire_mod.render_records(query.id, reply.flags, query.questions,
                                   (reply.answer, reply.authority, reply.additional), opt, limit)


def respond(snap: Optional[Snapshot], query: Query):
    """The :class:`Reply` to a query, or :class:`Upstream` when it needs
    upstream data."""
    response = _reply(query)
    if query.opcode() != dns.opcode.QUERY:
        response.set_rcode(dns.rcode.NOTIMP)
        return response
    if query.edns > 0:
        response.set_rcode(dns.rcode.BADVERS)  # RFC 6891 6.1.3: we speak version 0
        return response
    if len(query.questions) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return response
    qname, qtype, qclass = query.questions[0]
    if snap is None:
        # Not loaded yet: SERVFAIL tells resolvers to try again, where
        # NXDOMAIN would be cached as a wrong "does not exist".
        response.flags &= QR | RD | CD
        response.set_rcode(dns.rcode.SERVFAIL)
        return response
    if qclass != IN or qtype in (T.AXFR, T.IXFR):
        response.set_rcode(dns.rcode.REFUSED)  # zone transfers are not offered
        return response
    ask = qtype
    if qtype == T.ANY:
        # Does the name exist? Ask with the type it would have records of.
        ask = T.PTR if in_reverse_zone(qname) else T.A
    res = resolve(snap, qname, ask)
    if res is None:
        # Not a zone of ours: only upstream can answer.
        local = _reply(query)
        local.set_rcode(dns.rcode.REFUSED)
        return Upstream(qname, qtype, response, local)
    response.scope = res.scope
    if qtype == T.ANY and not res.nxdomain:
        # RFC 8482: answer ANY with one synthesized HINFO instead of everything.
        res = Result(answer=[records.rrset(qname, T.HINFO, [(b"RFC8482", b"")], snap.ttl)],
                     scope=res.scope)
    response.flags |= AA
    response.set_rcode(res.rcode)
    response.answer = res.answer
    response.additional = res.additional
    if res.soa is not None:
        response.authority = [res.soa]
    if res.nxdomain and res.through:
        # The stock Corefile's `fallthrough in-addr.arpa ip6.arpa`: a reverse
        # name that is no Service or endpoint IP of ours goes upstream (the
        # host's own addresses, say), as does a name of an external zone
        # with fallthrough; without forwarding, or for a client that may not
        # recurse, it stays this NXDOMAIN.
        return Upstream(qname, qtype, _reply(query), response)
    if res.chase is not None:
        return Upstream(res.chase, qtype, response, response)
    return response


# --- answers that need upstream data --------------------------------------------------

def to_message(reply: Reply, query: dns.message.Message) -> dns.message.Message:
    """The same reply as dnspython's message, for ``query`` as dnspython read it."""
    msg = dns.message.make_response(query, our_payload=wire_mod.EDNS_PAYLOAD)
    msg.flags = reply.flags
    if msg.edns >= 0:
        msg.ednsflags = reply.ednsflags
    msg.answer = [records.to_dnspython(rs) for rs in reply.answer]
    msg.authority = [records.to_dnspython(rs) for rs in reply.authority]
    msg.additional = [records.to_dnspython(rs) for rs in reply.additional]
    return msg


def forward(wire: bytes, up: Upstream, limit: int) -> Forward:
    """The :class:`Forward` the forwarder completes (dnspython's messages)."""
    query = dns.message.from_wire(wire)
    response = to_message(up.response, query)
    local = response if up.local is up.response else to_message(up.local, query)
    return Forward(query, response, records.to_name(up.qname), up.qtype, local, limit)
