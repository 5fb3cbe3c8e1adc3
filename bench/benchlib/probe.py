"""One DNS query at a time with dnspython: is a server answering, and what."""

from __future__ import annotations

import time
from typing import Optional

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from benchlib.proc import Proc


def ask(port: int, name: str, rdtype: str = "A", timeout: float = 0.2,
        tcp: bool = False) -> Optional[dns.message.Message]:
    """One query to 127.0.0.1:port; None on timeout or refusal."""
    q = dns.message.make_query(name, rdtype)
    try:
        if tcp:
            return dns.query.tcp(q, "127.0.0.1", port=port, timeout=timeout)
        return dns.query.udp(q, "127.0.0.1", port=port, timeout=timeout)
    except (dns.exception.Timeout, OSError, EOFError, dns.exception.DNSException):
        return None


def addresses(msg: Optional[dns.message.Message]) -> list:
    if msg is None:
        return []
    return sorted(rd.address for rrset in msg.answer if rrset.rdtype == dns.rdatatype.A
                  for rd in rrset)


def wait_first_answer(proc: Proc, port: int, name: str, expect: Optional[str],
                      limit: float) -> dict:
    """Poll with one UDP query at a time until a NOERROR answer with an address
    (``expect`` when given).  Times are from the process start."""
    out: dict = {"listening_s": None, "first_answer_s": None, "gave_up_s": None}
    deadline = proc.started + limit
    while time.monotonic() < deadline:
        if not proc.alive():
            out["exited"] = proc.popen.returncode
            return out
        resp = ask(port, name, "A", timeout=0.05)
        now = time.monotonic() - proc.started
        if resp is not None:
            if out["listening_s"] is None:
                out["listening_s"] = now
            got = addresses(resp)
            if resp.rcode() == dns.rcode.NOERROR and got and (expect is None or expect in got):
                out["first_answer_s"] = now
                return out
            time.sleep(0.005)
        else:
            time.sleep(0.01)
    out["gave_up_s"] = limit
    return out


def time_to_answer(proc: Proc, port: int, name: str, expect: Optional[str], t0: float,
                   limit: float) -> Optional[float]:
    """Seconds from ``t0`` until ``name`` answers an address (``expect`` when given),
    polling with one UDP query every ~2 ms; None after ``limit`` s or if the server
    exited."""
    while time.monotonic() - t0 < limit and proc.alive():
        got = addresses(ask(port, name, "A", timeout=0.1))
        if got and (expect is None or expect in got):
            return time.monotonic() - t0
        time.sleep(0.002)
    return None
