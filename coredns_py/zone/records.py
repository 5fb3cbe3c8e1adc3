"""Records as the lookup makes them: small tuples, not dnspython objects.

An answer is a handful of records, and building them as dnspython rdata and
RRset objects cost more than everything else an answer needs (40 us of a
180 us answer at 10k Services, most of it validating what we built
ourselves).  So the zone code builds records as plain values, and
:mod:`coredns_py.zone.wire` writes them; dnspython is only asked to build its
own objects where a caller needs them (the status page shows records as
text, and a forwarded answer is completed as a dnspython message).

Names are tuples of labels (bytes), leftmost first, without the root label:
``(b"web", b"default", b"svc", b"cluster", b"local")``.  The owner of a record
that answers the question is the question's name as sent, so that the
writer can point at the question (any letter case); every other name is
written from our data, in lower case.

Rdata by type (what :func:`coredns_py.zone.wire` writes for each):

    A, AAAA            the packed address (bytes)
    NS, CNAME, PTR     a name
    SRV                (priority, weight, port, target name)
    TXT                a tuple of character strings (bytes)
    SOA                (mname, rname, serial, refresh, retry, expire, minimum)
    HINFO              (cpu, os), character strings
"""

from __future__ import annotations

import socket
from typing import NamedTuple

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype as T
import dns.rrset

IN = dns.rdataclass.IN

Labels = tuple  # tuple[bytes, ...]: a name, leftmost label first, no root label


class RRset(NamedTuple):
    owner: Labels
    rdtype: int
    ttl: int
    rdatas: tuple


# Types whose rdata holds names; two of their rdatas are the same record when
# they differ only in the letter case of a name (dnspython compares rdatas in
# canonical form, RFC 4034 6.2, and so keeps only the first).
_NAME_FIELDS = {T.NS: (0,), T.CNAME: (0,), T.PTR: (0,), T.SRV: (3,), T.SOA: (0, 1)}


def _lower(name: Labels) -> Labels:
    return tuple(label.lower() for label in name)


def _dedup_key(rdtype: int, rd):
    fields = _NAME_FIELDS.get(rdtype)
    if fields is None:
        return rd
    if fields == (0,) and rdtype != T.SOA:
        return _lower(rd)
    return tuple(_lower(v) if i in fields else v for i, v in enumerate(rd))


def rrset(owner: Labels, rdtype: int, rdatas, ttl: int) -> RRset:
    """An RRset; a record given twice is kept once, where it came first (as
    dnspython's RRset does: the SRV weights count candidates before that)."""
    if len(rdatas) == 1:
        return RRset(owner, rdtype, ttl, tuple(rdatas))
    if rdtype not in _NAME_FIELDS:
        return RRset(owner, rdtype, ttl, tuple(dict.fromkeys(rdatas)))
    seen = {}
    for rd in rdatas:
        seen.setdefault(_dedup_key(rdtype, rd), rd)
    return RRset(owner, rdtype, ttl, tuple(seen.values()))


def address(ip: str) -> tuple[int, bytes]:
    """(A or AAAA, packed address) of an address in canonical text."""
    if ":" in ip:
        return T.AAAA, socket.inet_pton(socket.AF_INET6, ip)
    return T.A, socket.inet_aton(ip)


def name_text(name: Labels) -> str:
    return dns.name.Name(name + (b"",)).to_text()


def to_name(name: Labels) -> dns.name.Name:
    return dns.name.Name(name + (b"",))


def _rdata_text(rdtype: int, rd) -> str:
    if rdtype == T.A:
        return socket.inet_ntop(socket.AF_INET, rd)
    if rdtype == T.AAAA:
        return socket.inet_ntop(socket.AF_INET6, rd)
    if rdtype in (T.NS, T.CNAME, T.PTR):
        return name_text(rd)
    if rdtype == T.SRV:
        return f"{rd[0]} {rd[1]} {rd[2]} {name_text(rd[3])}"
    if rdtype in (T.TXT, T.HINFO):
        return " ".join('"' + s.decode("latin-1").replace("\\", "\\\\").replace('"', '\\"') + '"'
                        for s in rd)
    if rdtype == T.SOA:
        return f"{name_text(rd[0])} {name_text(rd[1])} " + " ".join(str(v) for v in rd[2:])
    raise ValueError(f"no text form for type {rdtype}")


def to_dnspython(rs: RRset) -> dns.rrset.RRset:
    """The same RRset as dnspython's objects (status page, forwarded answers)."""
    out = dns.rrset.RRset(to_name(rs.owner), IN, rs.rdtype)
    out.update_ttl(rs.ttl)
    for rd in rs.rdatas:
        out.add(dns.rdata.from_text(IN, rs.rdtype, _rdata_text(rs.rdtype, rd)))
    return out
