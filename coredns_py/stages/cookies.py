"""DNS cookies (RFC 7873), server side, with interoperable server cookies
(RFC 9018).

A client puts a random 8-byte client cookie in its queries; we answer with
it and a server cookie: a timestamp and a SipHash-2-4 of the client cookie
and the client's address under our secret.  A query that brings back a
server cookie we made, recently, for that address comes from that address:
a spoofed source cannot know it.  Such queries are not rate limited
(:mod:`coredns_py.stages.ratelimit`), so a real client keeps its answers
while the server sheds a flood; RRL's slip tells a cookie client BADCOOKIE
(retry with the cookie) instead of TC (retry over TCP), as BIND does.

What each query gets (RFC 7873 section 5.2):

- no COOKIE option: passed on untouched;
- a malformed one (not 8, 16..40 bytes): passed on as it came, and
  ``answer()`` answers FORMERR (5.2.2);
- a client cookie only (5.2.3), or over TCP an invalid server cookie too
  (5.2.4: handled as 5.2.3): answered normally, with a fresh server cookie;
- a client cookie and an invalid server cookie over UDP (5.2.4, policy 2
  of 5.2.3): BADCOOKIE with a fresh server cookie, no answer; the client
  asks again with it.  Invalid: not version 1, not 16 bytes, another
  address's, older than an hour or more than five minutes ahead (RFC 9018
  section 4.3), or made under another secret (a restart without
  ``cookie_secret``);
- a valid one (5.2.5): answered normally; the server cookie is renewed
  once it is half an hour old, echoed before.

The COOKIE option is taken out of the query before the stages inside see
it, so answers come from the answer cache as for any query, and put back
into the response on its way out.  The marked peer
(:class:`~coredns_py.stages.CookiePeer`) tells the stages inside what was
found.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Callable, Optional

import dns.message
from siphash24 import siphash24

from coredns_py import stages
from coredns_py.net.handler import Handler
from coredns_py.stages import edns

SECRET_BYTES = 16  # SipHash-2-4's key (RFC 9018 section 4.4)
CLIENT_BYTES = 8
VERSION = 1  # RFC 9018's server cookie
SERVER_BYTES = 16  # version, 3 reserved bytes, timestamp, hash (RFC 9018 section 4)
# Lengths RFC 7873 section 4 allows: a client cookie, and with a server
# cookie of 8 to 32 bytes.  Anything else is FORMERR (5.2.2).
MIN_WITH_SERVER = CLIENT_BYTES + 8
MAX_WITH_SERVER = CLIENT_BYTES + 32

# RFC 9018 section 4.3: a server cookie is accepted for an hour after it was
# made and up to five minutes ahead (clock differences between the servers
# of an anycast set), and a fresh one is handed out once it is half an
# hour old.
LIFETIME = 3600
SKEW = 300
RENEW_AFTER = 1800

# Cookies found valid are remembered (cookie and address -> until when it
# needs no renewal), so a client's stream of queries costs one SipHash, not
# one each.  Bounded: about 150 bytes an entry; when full it starts over.
MAX_REMEMBERED = 10_000


def packed_address(peer) -> bytes:
    """The client's address as RFC 9018 hashes it: 4 or 16 bytes."""
    host = peer[0]
    if ":" in host:
        return socket.inet_pton(socket.AF_INET6, host.split("%", 1)[0])
    return socket.inet_pton(socket.AF_INET, host)


def parse_secret(text: str) -> bytes:
    """A secret written as 32 hex digits; ValueError otherwise."""
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"must be {2 * SECRET_BYTES} hex digits, got {text!r}") from None
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"must be {2 * SECRET_BYTES} hex digits, got {len(text.strip())}")
    return secret


def answerable(wire: bytes, qend: int) -> bool:
    """Whether answer() would answer ``wire`` rather than FORMERR it: only
    such a query gets BADCOOKIE (which echoes its question).  Parsed only
    here, for queries with an invalid cookie."""
    if not edns.plain_question(wire, qend):
        return False
    try:
        dns.message.from_wire(wire)
    except Exception:  # dnspython raises many types for malformed messages
        return False
    return True


class Cookies:
    """The cookie stage: ``Cookies(secret)(inner) -> handler``.

    ``secret`` None: a random one, so cookies handed out before a restart
    are invalid after it (one BADCOOKIE round trip per client).  Servers
    that answer for one another (anycast, replicas) share one.  ``counts``
    is read by the metrics.
    """

    def __init__(self, secret: Optional[bytes] = None, clock: Callable[[], float] = time.time):
        self.secret = secret if secret is not None else os.urandom(SECRET_BYTES)
        if len(self.secret) != SECRET_BYTES:
            raise ValueError(f"a cookie secret is {SECRET_BYTES} bytes")
        self._clock = clock
        # Queries by what their cookie was, and the BADCOOKIE answers sent.
        self.counts = {"valid": 0, "client_only": 0, "invalid": 0, "malformed": 0,
                       "badcookie": 0}
        self._fresh: dict[tuple[bytes, bytes], int] = {}

    # --- RFC 9018 server cookies ------------------------------------------------

    def server_cookie(self, client: bytes, address: bytes, now: int,
                      head: bytes = b"\x01\x00\x00\x00") -> bytes:
        """Version and reserved bytes (``head``), the timestamp, and the hash
        of the client cookie, those, and the client's address."""
        stamped = head + (now & 0xFFFFFFFF).to_bytes(4, "big")
        return stamped + siphash24(client + stamped + address, key=self.secret).digest()

    def check(self, client: bytes, server: bytes, address: bytes, now: int) -> Optional[bool]:
        """None: not a valid server cookie of ours; else whether it should
        be renewed (RENEW_AFTER)."""
        if len(server) != SERVER_BYTES or server[0] != VERSION:
            return None
        # Serial-number arithmetic (RFC 1982): the timestamp wraps in 2106.
        age = (now - int.from_bytes(server[4:8], "big")) & 0xFFFFFFFF
        if age >= 1 << 31:
            age -= 1 << 32
        if not -SKEW <= age <= LIFETIME:
            return None
        if self.server_cookie(client, address, int.from_bytes(server[4:8], "big"),
                              server[:4]) != server:
            return None
        return age > RENEW_AFTER

    def _valid(self, cookie: bytes, address: bytes, now: int) -> Optional[bool]:
        """check() for a whole cookie, remembering the fresh ones."""
        key = (cookie, address)
        until = self._fresh.get(key)
        if until is not None and now <= until:
            return False
        renew = self.check(cookie[:CLIENT_BYTES], cookie[CLIENT_BYTES:], address, now)
        if renew is False:
            if len(self._fresh) >= MAX_REMEMBERED:
                self._fresh.clear()
            made = int.from_bytes(cookie[CLIENT_BYTES + 4:CLIENT_BYTES + 8], "big")
            self._fresh[key] = now + RENEW_AFTER - ((now - made) & 0xFFFFFFFF)
        return renew

    # --- the stage ------------------------------------------------------------------

    def __call__(self, inner: Handler) -> Handler:
        counts = self.counts
        bare_opt_last = edns.bare_opt_last

        def handle(wire: bytes, proto: str, peer):
            # Most queries have no OPT record or one without options.
            if len(wire) < 12 or wire[10:12] == b"\x00\x00" or bare_opt_last(wire) \
                    or wire[2] & 0x80:
                return inner(wire, proto, peer)
            try:
                qend, opt = edns.locate(wire)
                where = edns.find_option(wire, opt, edns.COOKIE) if opt >= 0 else None
            except ValueError:
                return inner(wire, proto, peer)  # answer() says FORMERR
            if where is None:
                return inner(wire, proto, peer)
            cookie = wire[where[0]:where[1]]
            if not (len(cookie) == CLIENT_BYTES
                    or MIN_WITH_SERVER <= len(cookie) <= MAX_WITH_SERVER):
                counts["malformed"] += 1
                return inner(wire, proto, peer)  # FORMERR (RFC 7873 5.2.2)
            client, server = cookie[:CLIENT_BYTES], cookie[CLIENT_BYTES:]
            try:
                address = packed_address(peer)
            except (OSError, TypeError, IndexError):
                return inner(wire, proto, peer)  # not an IP peer: no cookie to make
            now = int(self._clock())
            renew = self._valid(cookie, address, now) if server else None
            if renew is not None:
                counts["valid"] += 1
                marked = stages.VerifiedPeer(peer)
                reply = self.server_cookie(client, address, now) if renew else server
            else:
                counts["invalid" if server else "client_only"] += 1
                reply = self.server_cookie(client, address, now)
                if server and proto == "udp" and answerable(wire, qend):
                    counts["badcookie"] += 1
                    return edns.badcookie(wire, edns.option(edns.COOKIE, client + reply))
                marked = stages.CookiePeer(peer)
            out = edns.option(edns.COOKIE, client + reply)
            size = edns.limit(wire, opt, proto)
            result = inner(edns.without_option(wire, opt, edns.COOKIE), proto, marked)
            return stages.then(result, lambda response: edns.add_option(response, out, size))
        return handle
