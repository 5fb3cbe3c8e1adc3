"""Response rate limiting (RRL), as Knot's ``rrl`` module and BIND's
``rate-limit`` do it.

A UDP query's source address can be forged: an attacker sends queries "from"
a victim and we would flood the victim with answers many times larger
(measured before this stage: 20,000 queries in 2 s got 20,000 answers,
23.4 MB, up to 23.6x the bytes asked).  RRL counts the answers going to each
client network, per kind of answer, and past a rate answers only some of the
queries, with a truncated answer (TC=1, "slip"): a real client asks again
over TCP, where the source cannot be forged; a victim gets no more bytes than
were sent in its name.

- Client network: the /24 of an IPv4 address, the /56 of an IPv6 one
  (BIND's and Knot's defaults: one customer's allocation).
- Kind of answer, each its own account: a positive answer counts per
  question name and type (identical answers, BIND's responses-per-second);
  NODATA likewise; every NXDOMAIN to that network in one account (BIND
  counts them per zone, and we serve one zone: a flood of random names
  cannot spread over many accounts); every error (REFUSED, FORMERR,
  SERVFAIL ...) in one account.
- Rate: each account is a token bucket holding ``rate`` answers, refilled at
  ``rate`` per second (Knot's scheme: a burst of one second's worth).
- Slip: of the answers past the rate, every ``slip``-th is sent truncated
  and the others are dropped (0: all dropped; 1: all truncated).  For a
  client that sent a DNS cookie the slipped answer is BADCOOKIE with a
  fresh cookie instead, so it retries over UDP with the cookie (BIND).
- Never limited: TCP (the source is proven by the handshake) and queries
  with a valid server cookie (:class:`~coredns_py.stages.VerifiedPeer`).

Accounts live in a bounded table: an account idle for a second is full
again, as good as absent, so those go first when the table is full.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Callable

from coredns_py import stages
from coredns_py.logs import IntervalLog
from coredns_py.net.handler import Handler
from coredns_py.stages import edns

log = logging.getLogger("coredns_py.ratelimit")

# Client networks (BIND's ipv4-prefix-length and ipv6-prefix-length, Knot's
# defaults too).
IPV4_PREFIX = 24
IPV6_PREFIX_BYTES = 7  # /56

# Accounts kept at most (BIND's max-table-size and the CoreDNS rrl plugin's
# default): about 200 bytes each, so 20 MB at worst.
TABLE_SIZE = 100_000

# When the table is full, accounts untouched this long (their bucket is
# full again) are forgotten; if that frees too little, the oldest go.
IDLE_ACCOUNT = 1.0

# At most one log line per this many seconds about limited clients.
LOG_INTERVAL = 10.0

_NXDOMAIN = 3
_KINDS = {"answer": "answers", "nodata": "NODATA answers", "nxdomain": "NXDOMAIN answers",
          "error": "error answers"}


def client_network(peer) -> object:
    """The account owner: the client's /24 or /56 (a hashable value)."""
    host = peer[0]
    if ":" in host:
        return socket.inet_pton(socket.AF_INET6, host.split("%", 1)[0])[:IPV6_PREFIX_BYTES]
    return host.rpartition(".")[0]


def describe_network(network) -> str:
    if isinstance(network, bytes):
        return socket.inet_ntop(socket.AF_INET6, network + bytes(16 - len(network))) + "/56"
    return f"{network}.0/{IPV4_PREFIX}"


def account_key(response: bytes, network) -> tuple:
    """What the answer is counted against: the client's network and the
    kind of answer (with the question, for positive and NODATA ones)."""
    rcode = response[3] & 0x0F
    if rcode == 0:
        # The question, letter case folded (else 0x20 variants of one name
        # would each get an account).  The name ends at its first zero byte
        # (a zero inside a label only makes the key shorter: stricter).
        end = response.find(0, 12) + 5
        kind = "answer" if response[6:8] != b"\x00\x00" else "nodata"
        return (network, kind, response[12:end].lower())
    return (network, "nxdomain" if rcode == _NXDOMAIN else "error")


class RateLimit:
    """The RRL stage: ``RateLimit(rate, slip)(inner) -> handler``.

    ``counts`` (read by the metrics): answers past the rate, and of those
    the ones sent truncated, sent as BADCOOKIE, dropped.
    """

    def __init__(self, rate: int, slip: int, *, table_size: int = TABLE_SIZE,
                 clock: Callable[[], float] = time.monotonic):
        if rate < 1:
            raise ValueError("rate must be at least 1 answer per second")
        self.rate = float(rate)
        self.slip = slip
        self.table_size = table_size
        self._clock = clock
        # key -> [tokens, last refill, answers past the rate so far]
        self._accounts: dict[tuple, list] = {}
        self.counts = {"exceeded": 0, "truncated": 0, "badcookie": 0, "dropped": 0}
        self._log = IntervalLog(log, logging.INFO, LOG_INTERVAL)

    def __len__(self) -> int:
        return len(self._accounts)

    def __call__(self, inner: Handler) -> Handler:
        allow = self.allow
        verified = stages.VerifiedPeer

        def handle(wire: bytes, proto: str, peer):
            result = inner(wire, proto, peer)
            if proto != "udp" or type(peer) is verified or result is None:
                return result
            if type(result) is bytes:
                return allow(result, peer)
            return stages.then(result, lambda response: allow(response, peer))
        return handle

    def allow(self, response: bytes, peer):
        """``response``, or what goes in its place past the rate (a truncated
        or BADCOOKIE answer, or None: nothing)."""
        if len(response) < 12:
            return response
        try:
            key = account_key(response, client_network(peer))
        except (OSError, TypeError, IndexError):
            return response  # not an IP peer
        now = self._clock()
        account = self._accounts.get(key)
        if account is None:
            if len(self._accounts) >= self.table_size:
                self._make_room(now)
            self._accounts[key] = [self.rate - 1.0, now, 0]
            return response
        tokens = account[0] + (now - account[1]) * self.rate
        account[1] = now
        if tokens >= 1.0:
            account[0] = min(tokens, self.rate) - 1.0
            return response
        account[0] = tokens
        return self._limited(account, key, response, peer)

    def _limited(self, account: list, key: tuple, response: bytes, peer):
        counts = self.counts
        counts["exceeded"] += 1
        account[2] += 1
        self._log.event("rate limiting %s to %s (over %d a second; slip %d)",
                        _KINDS[key[1]], describe_network(key[0]), self.rate, self.slip)
        if self.slip and account[2] % self.slip == 0:
            try:
                if isinstance(peer, stages.CookiePeer):
                    counts["badcookie"] += 1
                    return edns.badcookie(response)
                counts["truncated"] += 1
                return edns.truncated(response)
            except ValueError:
                pass  # a response we cannot walk: drop it
        counts["dropped"] += 1
        return None

    def _make_room(self, now: float) -> None:
        accounts = self._accounts
        for key in [k for k, a in accounts.items() if now - a[1] >= IDLE_ACCOUNT]:
            del accounts[key]
        excess = len(accounts) - self.table_size * 9 // 10
        if excess > 0:  # a flood from many networks: the oldest accounts go
            for key in list(accounts)[:excess]:
                del accounts[key]
