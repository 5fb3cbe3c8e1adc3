"""``answer(snapshot, query) -> response``: a DNS message in, a DNS message out.

Pure: no sockets, no files, no clock.  The message-level rules live here
(opcode, EDNS version, question count, class, zone transfers, ANY, the
authoritative bit, SOA in negative answers, what must go upstream); what a
name holds is :mod:`coredns_py.zone.lookup`'s; the bytes are
:mod:`coredns_py.zone.wire`'s.  Together they are every DNS decision of
the server, in one place.  Expected negative outcomes (NXDOMAIN, NODATA,
REFUSED ...) are values, not exceptions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype as T
import dns.rdtypes.ANY.HINFO

from coredns_py.zone import wire as wire_mod
from coredns_py.zone.lookup import REVERSE_ZONES, Result, rrset, resolve, soa_rrset
from coredns_py.zone.snapshot import Snapshot

log = logging.getLogger("coredns_py.answer")

IN = dns.rdataclass.IN

# --- the message level ------------------------------------------------------------

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


def answer(snap: Optional[Snapshot], wire: bytes, proto: str = "udp", *,
           forwarding: bool = False):
    """Answer one DNS message: bytes, or None to send nothing (not even an
    error). With ``forwarding`` it may instead return a :class:`Forward`,
    which the server completes with an upstream answer."""
    if len(wire) < 12:
        return None  # not even a header to answer to
    if wire[2] & 0x80:
        return None  # a response, not a query: answering could loop
    try:
        query = dns.message.from_wire(wire)
    except Exception:  # any malformed packet; dnspython raises many types
        return wire_mod.header_only(wire, dns.rcode.FORMERR)
    limit = wire_mod.limit(query, proto)
    try:
        response = respond(snap, query, limit)
    except Exception:  # a bug of ours must cost one answer, not the server
        log.exception("cannot answer %s", query.question)
        return wire_mod.header_only(wire, dns.rcode.SERVFAIL)
    if isinstance(response, Forward):
        if forwarding:
            return response
        response = response.local
    return wire_mod.render(response, limit)


def respond(snap: Optional[Snapshot], query: dns.message.Message, limit: int = wire_mod.MAX_MESSAGE):
    """The response message for a parsed query, or a :class:`Forward`."""
    response = dns.message.make_response(query, our_payload=wire_mod.EDNS_PAYLOAD)
    # CD is copied as RFC 4035 3.1.6 asks (CoreDNS does, through miekg/dns
    # SetReply); DO is echoed as RFC 3225 asks.
    response.flags |= query.flags & dns.flags.CD
    if query.edns >= 0:
        response.ednsflags |= query.ednsflags & dns.flags.DO
    if query.opcode() != dns.opcode.QUERY:
        response.set_rcode(dns.rcode.NOTIMP)
        return response
    if query.edns > 0:
        response.set_rcode(dns.rcode.BADVERS)  # RFC 6891 6.1.3: we speak version 0
        return response
    if len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return response
    question = query.question[0]
    qname, qtype = question.name, question.rdtype
    if snap is None:
        # Not loaded yet: SERVFAIL tells resolvers to try again, where
        # NXDOMAIN would be cached as a wrong "does not exist".
        return wire_mod.servfail(response, query)
    if question.rdclass != IN or qtype in (T.AXFR, T.IXFR):
        response.set_rcode(dns.rcode.REFUSED)  # zone transfers are not offered
        return response
    ask = qtype
    if qtype == T.ANY:
        # Does the name exist? Ask with the type it would have records of.
        ask = T.PTR if any(qname.is_subdomain(z) for z in REVERSE_ZONES) else T.A
    res = resolve(snap, qname, ask)
    if res is None:
        # Not a zone of ours: only upstream can answer.
        local = dns.message.make_response(query, our_payload=wire_mod.EDNS_PAYLOAD)
        local.ednsflags = response.ednsflags
        local.set_rcode(dns.rcode.REFUSED)
        return Forward(query, response, qname, qtype, local, limit)
    if qtype == T.ANY and not res.nxdomain:
        # RFC 8482: answer ANY with one synthesized HINFO instead of everything.
        hinfo = dns.rdtypes.ANY.HINFO.HINFO(IN, T.HINFO, b"RFC8482", b"")
        res = Result(answer=[rrset(qname, T.HINFO, [hinfo], snap.ttl)])
    response.flags |= dns.flags.AA
    response.set_rcode(res.rcode)
    response.answer = res.answer
    response.additional = res.additional
    if res.soa_zone is not None:
        response.authority = [soa_rrset(snap, res.soa_zone)]
    if res.nxdomain and not qname.is_subdomain(snap.zone):
        # The stock Corefile's `fallthrough in-addr.arpa ip6.arpa`: a reverse
        # name that is no Service or endpoint IP of ours goes upstream (the
        # host's own addresses, say); without forwarding, or for a client
        # that may not recurse, it stays this NXDOMAIN.
        fresh = dns.message.make_response(query, our_payload=wire_mod.EDNS_PAYLOAD)
        fresh.ednsflags = response.ednsflags
        fresh.flags |= query.flags & dns.flags.CD
        return Forward(query, fresh, qname, qtype, response, limit)
    if res.chase is not None:
        return Forward(query, response, res.chase, qtype, response, limit)
    return response
