"""Hostile DNS packets from a seed: real queries, mutated.

Shared by the fuzz test (tests/test_fuzz.py, seconds) and the
million-packet run (bench/fuzz_parser.py).  Every packet is one of the
seed queries with one or more mutations: bit flips, truncation, bytes
overwritten, a question name that points at itself or two names pointing at
each other (pointer loops), counts that do not match the records, broken OPT
records (a length past the end, options that overrun it, two OPTs, an OPT
with a non-root owner or in the answer section), cookies of every length,
junk appended, the QR bit set (a response: must never be answered), or
plain random bytes.  And :func:`check_answer` says what an answer must be;
:func:`numbered`, :func:`reply_problem` and :func:`pipelined` send such
packets and match the answers to them.
"""

from __future__ import annotations

import random
import socket
import struct
from typing import Optional

import dns.edns
import dns.message
import dnslib

NAMES = ["webapp.default.svc.cluster.local", "WebApp.Default.SVC.cluster.local",
         "_http._tcp.webapp.default.svc.cluster.local", "kubernetes.default.svc.cluster.local",
         "nope.cluster.local", "10.0.96.10.in-addr.arpa", "cluster.local", "example.com",
         "a" * 63 + ".cluster.local", "x.y.z.default.pod.cluster.local"]
TYPES = ["A", "AAAA", "SRV", "PTR", "TXT", "SOA", "NS", "ANY", "AXFR", "CNAME", 65, 0, 255]


def seed_queries(rng: random.Random) -> list[bytes]:
    out = []
    for name in NAMES:
        for rdtype in TYPES:
            q = dns.message.make_query(name, rdtype)
            out.append(q.to_wire())
            e = dns.message.make_query(name, rdtype, use_edns=0, payload=rng.choice([512, 1232, 4096]),
                                       want_dnssec=rng.random() < 0.3)
            out.append(e.to_wire())
    cookie = dns.message.make_query(NAMES[0], "A", use_edns=0,
                                    options=[dns.edns.CookieOption(b"c" * 8, b"")])
    out.append(cookie.to_wire())
    both = dns.message.make_query(NAMES[0], "A", use_edns=0,
                                  options=[dns.edns.CookieOption(b"c" * 8, b"s" * 16)])
    out.append(both.to_wire())
    return out


def _flip(rng, w: bytearray) -> None:
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(w))
        w[i] ^= 1 << rng.randrange(8)


def _truncate(rng, w: bytearray) -> None:
    del w[rng.randrange(len(w)):]


def _overwrite(rng, w: bytearray) -> None:
    for _ in range(rng.randint(1, 4)):
        w[rng.randrange(len(w))] = rng.randrange(256)


def _self_pointer(rng, w: bytearray) -> None:
    # the question name is a pointer to itself (offset 12)
    w[12:] = b"\xc0\x0c" + bytes(w[-4:])


def _pointer_pair(rng, w: bytearray) -> None:
    # two names pointing at each other: a question and an answer record
    w[4:12] = struct.pack("!4H", 1, 1, 0, 0)
    w[12:] = b"\xc0\x12\x00\x01\x00\x01" + b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04" \
        + bytes(4)


def _counts(rng, w: bytearray) -> None:
    choices = [0, 1, 2, 3, 255, 0xFFFF]
    w[4:12] = struct.pack("!4H", *(rng.choice(choices) for _ in range(4)))


def _opt(rng, w: bytearray) -> None:
    kind = rng.randrange(6)
    owner = b"\x00"
    if kind == 0:  # RDLENGTH past the end
        rr = owner + b"\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x40" + b"\x00\x0a\x00\x08" + b"c" * 4
    elif kind == 1:  # an option running past the record
        rr = owner + b"\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x08" + b"\x00\x0a\x00\x20" + b"c" * 4
    elif kind == 2:  # two OPT records
        rr = (owner + b"\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00") * 2
        w[10:12] = b"\x00\x02"
        w += rr
        return
    elif kind == 3:  # an OPT with an owner name
        rr = b"\x01a\x00" + b"\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
    elif kind == 4:  # a cookie of any length
        n = rng.choice([0, 1, 7, 8, 9, 15, 16, 24, 40, 41, 200])
        data = bytes(rng.randrange(256) for _ in range(n))
        rr = owner + b"\x00\x29\x04\xd0\x00\x00\x00\x00" + struct.pack("!H", n + 4) \
            + b"\x00\x0a" + struct.pack("!H", n) + data
    else:  # OPT in the answer section
        rr = owner + b"\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
        w[6:8] = b"\x00\x01"
        w[10:12] = b"\x00\x00"
        w += rr
        return
    w[10:12] = b"\x00\x01"
    w += rr


def _qr(rng, w: bytearray) -> None:
    w[2] |= 0x80


def _junk(rng, w: bytearray) -> None:
    w += bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))


def _huge_label(rng, w: bytearray) -> None:
    w[12] = rng.choice([64, 127, 128, 191, 255])


MUTATIONS = [_flip, _truncate, _overwrite, _self_pointer, _pointer_pair, _counts, _opt, _qr,
             _junk, _huge_label]


def packet(rng: random.Random, seeds: list[bytes]) -> bytes:
    """One hostile packet."""
    if rng.random() < 0.03:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 100)))
    w = bytearray(rng.choice(seeds))
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        if len(w) < 13:
            break
        rng.choice(MUTATIONS)(rng, w)
    return bytes(w)


def numbered(wire: bytes, n: int) -> bytes:
    """``wire`` with ID ``n`` (modulo 2**16), to match answers to queries."""
    return (n & 0xFFFF).to_bytes(2, "big") + wire[2:] if len(wire) >= 2 else wire


def reply_problem(sent: dict, answer: bytes) -> tuple[Optional[bytes], Optional[str]]:
    """(the query of ``sent``, ID -> query, that ``answer`` answers, what is
    wrong with the answer or None)."""
    query = sent.get(int.from_bytes(answer[:2], "big"))
    return query, ("answer to nothing sent" if query is None else check_answer(query, answer))


def pipelined(port: int, frames: list[bytes], timeout: float) -> tuple[list[bytes], bytes]:
    """Send ``frames`` (each already behind its length) down one TCP
    connection to 127.0.0.1:``port``, close the sending side, read until
    the server closes: (the answers, whatever trailed the last whole frame,
    which should be nothing)."""
    data = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"".join(frames))
        s.shutdown(socket.SHUT_WR)
        try:
            while chunk := s.recv(1 << 16):
                data += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    answers, pos = [], 0
    while pos + 2 <= len(data):
        end = pos + 2 + int.from_bytes(data[pos:pos + 2], "big")
        if end > len(data):
            break  # a partial frame: returned as what trails
        answers.append(bytes(data[pos + 2:end]))
        pos = end
    return answers, bytes(data[pos:])


def check_answer(query: bytes, answer: Optional[bytes]) -> Optional[str]:
    """What is wrong with ``answer`` to ``query`` (None: nothing).

    No answer to a response (QR set) or to a packet shorter than a header;
    any answer parses with dnspython and with dnslib, is a response, and
    carries the query's ID.  (dnslib refuses labels that are not UTF-8,
    which DNS allows (RFC 2181 section 11) and which an answer echoes from
    the question: such answers are checked with dnspython alone.)
    """
    if answer is None:
        return None
    if len(query) < 12:
        return "answered a packet shorter than a header"
    if query[2] & 0x80:
        return "answered a response (QR=1)"
    if answer[:2] != query[:2]:
        return "answer with another ID"
    if not answer[2] & 0x80:
        return "answer without QR"
    try:
        msg = dns.message.from_wire(answer)
    except Exception as exc:
        return f"dnspython cannot parse the answer: {exc!r}"
    try:
        dnslib.DNSRecord.parse(answer)
    except Exception as exc:
        if not _binary_labels(msg):
            return f"dnslib cannot parse the answer: {exc!r}"
    return None


def _binary_labels(msg: dns.message.Message) -> bool:
    names = [q.name for q in msg.question]
    names += [rrset.name for section in (msg.answer, msg.authority, msg.additional)
              for rrset in section]
    for name in names:
        for label in name.labels:
            try:
                label.decode()
            except UnicodeDecodeError:
                return True
    return False
