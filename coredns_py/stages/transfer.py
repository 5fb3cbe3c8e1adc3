"""Zone transfers (CoreDNS *transfer*): AXFR, and IXFR answered as AXFR or
"up to date", of our zones, to the clients the config allows.

As CoreDNS (plugin/transfer/transfer.go):

- a transfer of one of our zones' apex, over UDP, is REFUSED (TCP only);
- a client not in ``transfer_to`` is REFUSED (default: loopback only;
  ``*``: everybody; a Corefile without ``transfer``: nobody, as CoreDNS);
- AXFR: every record of the zone (:mod:`coredns_py.zone.transfer`), the SOA
  first and last, in as many messages as it takes
  (:data:`coredns_py.zone.wire.XFR_MESSAGE_SIZE` each), made as the
  connection takes them (:class:`coredns_py.net.handler.Messages`);
- IXFR: a client whose SOA serial is the zone's (or newer) gets the SOA
  alone; any other gets the whole zone (there is no history to send a
  difference from, RFC 1995 section 4).

Anything else (another type, a name that is not a zone apex of ours, a zone
``transfer_zones`` leaves out) goes on to the inner handler, which answers
a transfer of it REFUSED.  Zone transfers carry no TSIG here.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import time
from typing import Callable, Iterator, Optional

import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype as T

from coredns_py.net.handler import Handler, Messages
from coredns_py.zone import transfer as zone_transfer
from coredns_py.zone import wire as wire_mod

log = logging.getLogger("coredns_py.transfer")

PLUGIN = "transfer"  # the `plugin` label of its answers in coredns_dns_responses_total

_XFR = (b"\x00\xfc", b"\x00\xfb")  # AXFR, IXFR
_QR, _AA = 0x8000, 0x0400


def serial_newer_or_same(theirs: int, ours: int) -> bool:
    """RFC 1982 serial arithmetic: is ``theirs`` the same as ``ours`` or newer?"""
    return theirs == ours or 0 < (theirs - ours) % 2 ** 32 < 2 ** 31


class Transfer:
    """Who may transfer which zones, and the stage that answers them."""

    def __init__(self, to, zones, current: Callable, observe: Callable):
        self.networks = tuple(ipaddress.ip_network(n) for n in to)
        self.zones = frozenset(tuple(label.encode() for label in z.split("."))
                               for z in zones)  # empty: every zone of ours
        self.current = current  # () -> the snapshot to answer from, or None
        self.observe = observe

    def allowed(self, peer) -> bool:
        try:
            ip = ipaddress.ip_address(peer[0].split("%", 1)[0])
        except (ValueError, TypeError, IndexError):
            return False
        return any(ip in net for net in self.networks if net.version == ip.version)

    def stage(self, inner: Handler) -> Handler:
        clock = time.perf_counter

        def handler(wire: bytes, proto: str, peer):
            # The question's type, read past the name's root label (a label
            # holding a zero byte would misread it: answer() judges those).
            end = wire.find(0, 12)
            if end < 0 or wire[end + 1:end + 3] not in _XFR or wire[2] & 0xF8:
                return inner(wire, proto, peer)
            started = clock()
            out = self.answer(wire, proto, peer)
            if out is None:
                return inner(wire, proto, peer)
            first = out if isinstance(out, bytes) else out[0]
            self.observe(wire, first, proto, peer, clock() - started, PLUGIN)
            if isinstance(out, bytes):
                return out
            return Messages(itertools.chain((first,), out[1]))
        return handler

    def answer(self, wire: bytes, proto: str, peer):
        """REFUSED bytes, or (the first message, the messages) of a transfer;
        None when it is not one of ours to answer."""
        snap = self.current()
        if snap is None:
            return None  # not loaded: answer() says SERVFAIL
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None  # answer() says FORMERR
        if len(query.question) != 1 or query.edns > 0:
            return None
        q = query.question[0]
        zone = zone_transfer.find_zone(snap, q.name.labels[:-1])
        if zone is None or (self.zones and zone not in self.zones):
            return None
        response = dns.message.make_response(query, our_payload=wire_mod.EDNS_PAYLOAD)
        zone_text = q.name.to_text().lower()
        if proto != "tcp" or not self.allowed(peer):
            log.info("transfer of %s to %s refused (%s)", zone_text, peer[0],
                     "over UDP" if proto != "tcp" else "config key transfer_to")
            response.set_rcode(dns.rcode.REFUSED)
            return wire_mod.render(response, wire_mod.limit(query, proto))
        flags = response.flags | _AA
        opt = wire_mod.opt_record(query.ednsflags) if query.edns >= 0 else None
        question = ((q.name.labels[:-1], q.rdtype, q.rdclass),)
        records = zone_transfer.records(snap, zone)
        if q.rdtype == T.IXFR and self._up_to_date(query, snap):
            records = iter([next(records)])  # the SOA alone: nothing changed
        messages = self._counted(wire_mod.xfr_messages(query.id, flags, question, records, opt),
                                 zone_text, peer, snap.serial)
        return next(messages), messages

    @staticmethod
    def _up_to_date(query, snap) -> bool:
        for rrset in query.authority:
            if rrset.rdtype == T.SOA and len(rrset):
                return serial_newer_or_same(rrset[0].serial, snap.serial)
        return False  # no SOA: as an AXFR

    def _counted(self, messages: Iterator[bytes], zone: str, peer, serial: int):
        """The messages, then one log line saying what was sent."""
        count = size = 0
        for message in messages:
            count += 1
            size += len(message)
            yield message
        log.info("transfer of %s to %s: %d messages, %d bytes, serial %d", zone, peer[0],
                 count, size, serial)


def stage(to, zones, current, observe) -> Optional[Callable[[Handler], Handler]]:
    """The transfer stage, or None when nobody may transfer (not in the chain)."""
    if not to:
        return None
    return Transfer(to, zones, current, observe).stage
