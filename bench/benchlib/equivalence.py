"""Do both servers give the same answers?  A sample of the query mix, compared."""

from __future__ import annotations

import random
from typing import Optional

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from benchlib.console import log
from benchlib.probe import ask


def normalise(msg: Optional[dns.message.Message]) -> tuple:
    """What must match between the two servers: rcode, flags AA, the answer and
    additional RRs (lower-cased), and the authority's types (SOA serials differ)."""
    if msg is None:
        return ("timeout",)

    def rrs(section):
        return tuple(sorted(str(rr).lower() for rrset in section
                            for rr in rrset.to_text().splitlines()))
    return (dns.rcode.to_text(msg.rcode()), bool(msg.flags & dns.flags.AA), rrs(msg.answer),
            rrs(msg.additional),
            tuple(sorted(dns.rdatatype.to_text(r.rdtype) for r in msg.authority)))


def compare_servers(ports: dict, queries: list, sample: int, seed: int) -> dict:
    rng = random.Random(seed + 2)
    picked = rng.sample(queries, min(sample, len(queries)))
    names = list(ports)
    mismatches = []
    for name, qtype in picked:
        got = [normalise(ask(ports[s], name, qtype, timeout=2.0)) for s in names]
        if got[0] != got[1]:
            mismatches.append({"query": f"{name} {qtype}", names[0]: repr(got[0]),
                               names[1]: repr(got[1])})
    return {"checked": len(picked), "mismatches": len(mismatches), "examples": mismatches[:3]}


def check_answers(args, ports: dict, queries: list) -> dict:
    """Compare a sample of the mix between the two servers and say how many agree."""
    cmp = compare_servers(ports, queries, args.compare_sample, args.seed)
    log(f"same answers from both servers: {cmp['checked'] - cmp['mismatches']}"
        f"/{cmp['checked']} sampled queries")
    for ex in cmp["examples"]:
        log(f"  differs: {ex}")
    return cmp
