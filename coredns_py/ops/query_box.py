"""The status page's query box: a name and a type asked of ``answer()`` on the
current generation, as a client over TCP would, shown as dig shows it.  No
DNS packet is sent."""

from __future__ import annotations

from typing import Optional

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from coredns_py.generation import Generation
from coredns_py.zone import answer as answer_mod
from coredns_py.zone import wire


class QueryError(ValueError):
    """A name or type the query box cannot ask."""


def run_query(gen: Optional[Generation], forwarding: bool, name: str, rdtype: str) -> dict:
    """Ask ``answer()`` on a generation's snapshot, as a client over TCP would."""
    name = (name or "").strip()
    if not name or len(name) > 1024:
        raise QueryError("type a domain name")
    try:
        qname = dns.name.from_text(name)
    except dns.exception.DNSException as exc:
        raise QueryError(f"not a domain name: {exc}") from None
    try:
        qtype = dns.rdatatype.from_text((rdtype or "A").strip().upper())
    except dns.exception.DNSException:
        raise QueryError(f"unknown type {rdtype!r}") from None
    query = dns.message.make_query(qname, qtype, use_edns=0, payload=wire.EDNS_PAYLOAD)
    query.id = 0
    snap = gen.snapshot if gen is not None else None
    out = answer_mod.answer(snap, query.to_wire(), "tcp", forwarding=forwarding)
    note = ""
    if isinstance(out, answer_mod.Forward):
        note = (f"needs upstream data: the server asks upstream for "
                f"{out.qname.to_text()} {dns.rdatatype.to_text(out.qtype)}; "
                f"shown is the part it answers itself")
        out = wire.render(out.response if out.response.answer else out.local, out.limit)
    if out is None:
        raise QueryError("the server sends no answer to this query")
    response = dns.message.from_wire(out)
    if snap is None:
        note = note or "not loaded yet: every query gets SERVFAIL"
    return {
        "question": f"{qname.to_text()} {dns.rdatatype.to_text(qtype)}",
        "rcode": dns.rcode.to_text(response.rcode()),
        "flags": _flags(response),
        "answer": [rr for rs in response.answer for rr in rs.to_text().splitlines()],
        "authority": [rr for rs in response.authority for rr in rs.to_text().splitlines()],
        "additional": [rr for rs in response.additional for rr in rs.to_text().splitlines()],
        "size": len(out),
        "note": note,
        "text": dig_text(response, len(out)),
    }


def _flags(msg: dns.message.Message) -> str:
    return dns.flags.to_text(msg.flags).lower()


def dig_text(msg: dns.message.Message, size: int) -> str:
    """The response as ``dig`` prints it (header, sections), without timings."""
    lines = [
        f";; ->>HEADER<<- opcode: {dns.opcode.to_text(msg.opcode())}, "
        f"status: {dns.rcode.to_text(msg.rcode())}, id: {msg.id}",
        f";; flags: {_flags(msg)}; QUERY: {len(msg.question)}, ANSWER: "
        f"{sum(len(r) for r in msg.answer)}, AUTHORITY: {sum(len(r) for r in msg.authority)}, "
        f"ADDITIONAL: {sum(len(r) for r in msg.additional) + (1 if msg.edns >= 0 else 0)}",
    ]
    if msg.edns >= 0:
        lines += ["", ";; OPT PSEUDOSECTION:",
                  f"; EDNS: version: {msg.edns}, flags:"
                  f"{' do' if msg.ednsflags & 0x8000 else ''}; udp: {msg.payload}"]
    lines += ["", ";; QUESTION SECTION:"]
    lines += [f";{q.name.to_text()}\t\t{dns.rdataclass.to_text(q.rdclass)}\t"
              f"{dns.rdatatype.to_text(q.rdtype)}" for q in msg.question]
    for title, section in (("ANSWER", msg.answer), ("AUTHORITY", msg.authority),
                           ("ADDITIONAL", msg.additional)):
        if section:
            lines += ["", f";; {title} SECTION:"]
            lines += [rr for rs in section for rr in rs.to_text().splitlines()]
    lines += ["", f";; MSG SIZE  rcvd: {size}"]
    return "\n".join(lines) + "\n"
