"""The query log (``--log-queries``), like CoreDNS's *log* plugin; its lines
go out in the program's log format (``--log-format``, :mod:`coredns_py.logs`).

Off by default: a line per query costs far more than answering it (parsing
the query again, formatting, a write to stderr), which is why CoreDNS also
leaves *log* out of its default Kubernetes Corefile.  The text line is
CoreDNS's common log format:

    {remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} {duration}

e.g. ``127.0.0.1:40212 - 28238 "A IN web.default.svc.cluster.local. udp 54 false 512"
NOERROR qr,aa,rd 106 0.000138s``.  In JSON each of those is a field.
"""

from __future__ import annotations

import logging
from typing import Optional

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from coredns_py import hostport
from coredns_py.ops.scrape import rcode_label
from coredns_py.zone.wire import MAX_MESSAGE

log = logging.getLogger("coredns_py.query")

# Response header flags in the order CoreDNS's {>rflags} lists them.
_RFLAGS = (("qr", 0x8000), ("aa", 0x0400), ("tc", 0x0200), ("rd", 0x0100), ("ra", 0x0080),
           ("z", 0x0040), ("ad", 0x0020), ("cd", 0x0010))


def _client(peer) -> tuple[str, int]:
    if not peer:
        return "-", 0
    return str(peer[0]), int(peer[1])


def describe(wire: bytes, out: Optional[bytes], proto: str, peer, seconds: float) -> dict:
    """The fields of one query log line."""
    host, port = _client(peer)
    fields = {
        "remote": host, "port": port,
        "id": int.from_bytes(wire[:2], "big") if len(wire) >= 2 else 0,
        "type": "-", "class": "-", "name": "-", "proto": proto, "size": len(wire),
        "do": False, "bufsize": 512,
        "rcode": "-", "rflags": "", "rsize": 0, "duration": round(seconds, 9),
    }
    try:
        query = dns.message.from_wire(wire)
    except (dns.exception.DNSException, ValueError, IndexError):
        query = None
    if query is not None:
        if query.question:
            q = query.question[0]
            fields.update(name=q.name.to_text(), type=dns.rdatatype.to_text(q.rdtype),
                          **{"class": dns.rdataclass.to_text(q.rdclass)})
        if query.edns >= 0:
            fields["do"] = bool(query.ednsflags & dns.flags.DO)
            fields["bufsize"] = max(512, query.payload)
    if proto == "tcp":
        fields["bufsize"] = MAX_MESSAGE  # CoreDNS reports the 64 KiB maximum for TCP
    if out is not None and len(out) >= 4:
        flags = int.from_bytes(out[2:4], "big")
        rcode = flags & 0x0F
        if rcode == 0 and query is not None and query.edns > 0:
            rcode = dns.rcode.BADVERS  # the only extended rcode we send
        fields["rcode"] = rcode_label(rcode)
        fields["rflags"] = ",".join(name for name, bit in _RFLAGS if flags & bit)
        fields["rsize"] = len(out)
    return fields


def text_line(f: dict) -> str:
    return (f'{hostport.join(f["remote"], f["port"])} - {f["id"]} "{f["type"]} {f["class"]} {f["name"]} '
            f'{f["proto"]} {f["size"]} {str(f["do"]).lower()} {f["bufsize"]}" '
            f'{f["rcode"]} {f["rflags"] or "-"} {f["rsize"]} {f["duration"]:.6f}s')


class QueryLog:
    """Writes one log record per query through the ``coredns_py.query`` logger."""

    def __init__(self, logger: logging.Logger = log):
        self.logger = logger
        # Shown whatever --log-level says, as CoreDNS's log plugin is.
        logger.setLevel(logging.INFO)

    def __call__(self, wire: bytes, out, proto: str, peer, seconds: float) -> None:
        fields = describe(wire, out, proto, peer, seconds)
        self.logger.info("%s", text_line(fields), extra={"query": fields})


def observer(metrics, query_log: QueryLog):
    """What Server.handle reports each query to when the query log is on:
    the metrics first, then the log line."""
    from coredns_py.ops.metrics import PLUGIN_LOCAL
    record = metrics.record
    metrics.log_queries = True

    def observe(wire: bytes, out, proto: str, peer, seconds: float,
                plugin: str = PLUGIN_LOCAL) -> None:
        record(wire, out, proto, peer, seconds, plugin)
        query_log(wire, out, proto, peer, seconds)

    return observe
