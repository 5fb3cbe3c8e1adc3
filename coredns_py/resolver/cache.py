"""A bounded cache of upstream answers (CoreDNS ``cache``).

Only upstream answers are cached: our own zone's answers come from the
current snapshot, cost a dictionary lookup and change on every reload.

* The key is everything that can change an upstream answer: the name (case
  does not matter), the type, the class, and the client's DO and CD bits (a
  DNSSEC-aware client gets RRSIGs and unvalidated data that another client
  must not see).  So no answer is ever served for another question.
* Positive answers live as long as their smallest TTL; negative ones
  (NXDOMAIN, and NODATA: NOERROR without answer) as long as RFC 2308 section
  5 says: the smaller of the SOA's TTL and its MINIMUM field.  A negative
  answer without an SOA is not cached (RFC 2308 section 5).  Every TTL is
  capped at ``max_ttl``.  Errors (SERVFAIL, REFUSED ...) and truncated
  answers are never cached.
* Served from the cache, every record carries the entry's remaining TTL, as
  CoreDNS does, so a client never caches it past its life here.
* Bounded: at ``capacity`` entries the least recently used one is evicted
  before a new one goes in; expired entries are dropped when met.
* ``prefetch`` (CoreDNS ``prefetch AMOUNT DURATION PERCENTAGE%``): an entry
  asked at least ``prefetch`` times, with no gap of ``prefetch_window``
  seconds between two questions, is due for a refresh once its remaining
  TTL is ``prefetch_percentage`` % of its original TTL or less (at least
  one second before it expires); the forwarder asks upstream again in the
  background, and the entry keeps its count.
* ``serve_stale`` (CoreDNS ``serve_stale DURATION``): an expired entry is
  kept, and served with TTL 0, for up to ``serve_stale`` seconds after it
  expired.  In the ``immediate`` mode it is served at once and refreshed in
  the background; in ``verify`` mode upstream is asked first and the stale
  answer only served when no upstream answers (or one says SERVFAIL).  So a
  laptop that goes offline keeps resolving the names it used lately.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Hashable, NamedTuple, Optional

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype

# The header bits of an upstream answer worth keeping.
KEPT_FLAGS = dns.flags.AA | dns.flags.TC | dns.flags.RA | dns.flags.AD


@dataclass(frozen=True)
class Answer:
    """What an upstream said: rcode, header flags and the three sections."""

    rcode: int
    flags: int
    answer: tuple
    authority: tuple
    additional: tuple

    @classmethod
    def from_message(cls, msg: dns.message.Message) -> "Answer":
        return cls(msg.rcode(), msg.flags & KEPT_FLAGS, tuple(msg.answer),
                   tuple(msg.authority), tuple(msg.additional))

    def with_ttl(self, ttl: int) -> "Answer":
        """A copy whose every record has this TTL (the originals are untouched)."""
        def aged(rrsets):
            out = []
            for rs in rrsets:
                copy = rs.copy()
                copy.ttl = ttl
                out.append(copy)
            return tuple(out)
        return Answer(self.rcode, self.flags, aged(self.answer), aged(self.authority),
                      aged(self.additional))


def key(qname: dns.name.Name, qtype: int, do: bool, cd: bool,
        rdclass: int = dns.rdataclass.IN) -> tuple:
    """The cache key of a question (dnspython names compare case-insensitively)."""
    return (qname, qtype, rdclass, bool(do), bool(cd))


def is_denial(ans: Answer) -> bool:
    """NXDOMAIN or NODATA: a negative answer (RFC 2308)."""
    return ans.rcode == dns.rcode.NXDOMAIN or (ans.rcode == dns.rcode.NOERROR and not ans.answer)


def cache_ttl(ans: Answer, max_ttl: int) -> Optional[int]:
    """How long ``ans`` may be cached, in seconds; None when it may not be."""
    if ans.flags & dns.flags.TC:
        return None
    if is_denial(ans):
        soas = [rs for rs in ans.authority if rs.rdtype == dns.rdatatype.SOA]
        if not soas:
            return None
        ttl = min(min(soas[0].ttl, rd.minimum) for rd in soas[0])
    elif ans.rcode == dns.rcode.NOERROR:
        ttl = min(rs.ttl for rs in ans.answer + ans.authority + ans.additional)
    else:
        return None
    ttl = min(ttl, max_ttl)
    return ttl if ttl > 0 else None


class Hit(NamedTuple):
    """A cached answer (TTLs set to what remains of them; 0 when stale)."""

    answer: Answer
    stale: bool  # expired, served under serve_stale
    refresh: bool  # ask upstream again (prefetch due, or stale)


class _Entry:
    __slots__ = ("answer", "expires", "ttl", "denial", "hits", "last_hit")

    def __init__(self, answer: Answer, expires: float, ttl: int, denial: bool, hits: int,
                 last_hit: float):
        self.answer = answer
        self.expires = expires
        self.ttl = ttl  # the TTL it was cached with
        self.denial = denial
        self.hits = hits
        self.last_hit = last_hit


class Cache:
    """LRU cache of :class:`Answer` by :func:`key`, with TTLs."""

    def __init__(self, capacity: int, max_ttl: int,
                 clock: Callable[[], float] = time.monotonic, *, prefetch: int = 0,
                 prefetch_window: float = 60.0, prefetch_percentage: int = 10,
                 serve_stale: float = 0.0, verify_stale: bool = False):
        self.capacity = capacity
        self.max_ttl = max_ttl
        self.prefetch = prefetch
        self.prefetch_window = prefetch_window
        self.prefetch_percentage = prefetch_percentage
        self.serve_stale = serve_stale
        self.verify_stale = verify_stale
        self._clock = clock
        self._entries: "OrderedDict[Hashable, _Entry]" = OrderedDict()
        self._denials = 0
        self.hits = self.misses = self.evictions = 0
        self.prefetches = self.stale_hits = 0
        # Called with ``denial`` when an entry is evicted to make room (metrics).
        self.on_evict: Optional[Callable[[bool], None]] = None

    def same_settings(self, other: "Cache") -> bool:
        """Would ``other`` keep the same answers the same way (a reload may keep us)?"""
        names = ("capacity", "max_ttl", "prefetch", "prefetch_window", "prefetch_percentage",
                 "serve_stale", "verify_stale")
        return all(getattr(self, n) == getattr(other, n) for n in names)

    def __len__(self) -> int:
        return len(self._entries)

    def counts(self) -> tuple[int, int]:
        """(positive entries, negative entries), expired ones included until met."""
        return len(self._entries) - self._denials, self._denials

    def _drop(self, k: Hashable) -> bool:
        entry = self._entries.pop(k)
        self._denials -= entry.denial
        return entry.denial

    def get(self, k: Hashable) -> Optional[Answer]:
        """The cached answer with its remaining TTL, or None (missing or expired)."""
        hit = self.lookup(k)
        return hit.answer if hit is not None else None

    def lookup(self, k: Hashable) -> Optional[Hit]:
        """The cached answer and what to do about it, or None (missing, or
        expired beyond serve_stale)."""
        entry = self._entries.get(k)
        if entry is None:
            self.misses += 1
            return None
        now = self._clock()
        remaining = entry.expires - now
        if remaining <= 0 and -remaining >= self.serve_stale:
            self._drop(k)
            self.misses += 1
            return None
        self._entries.move_to_end(k)
        self.hits += 1
        if remaining <= 0:
            self.stale_hits += 1
            return Hit(entry.answer.with_ttl(0), True, True)
        due = False
        if self.prefetch > 0:
            # CoreDNS counts questions in a row with no gap of the window or
            # more; a longer gap starts the count again.
            entry.hits = entry.hits + 1 if now - entry.last_hit < self.prefetch_window else 1
            entry.last_hit = now
            threshold = max(1, math.ceil(self.prefetch_percentage / 100 * entry.ttl))
            due = entry.hits >= self.prefetch and remaining <= threshold
            self.prefetches += due
        return Hit(entry.answer.with_ttl(int(remaining)), False, due)

    def put(self, k: Hashable, ans: Answer) -> bool:
        """Cache ``ans`` if it may be cached; True when it was.  A refreshed
        entry keeps its question count (for prefetch)."""
        if self.capacity <= 0:
            return False
        ttl = cache_ttl(ans, self.max_ttl)
        if ttl is None:
            return False
        now = self._clock()
        hits, last_hit = 1, now
        if k in self._entries:
            old = self._entries[k]
            hits, last_hit = old.hits, old.last_hit
            self._drop(k)
        elif len(self._entries) >= self.capacity:
            denial = self._drop(next(iter(self._entries)))  # the least recently used
            self.evictions += 1
            if self.on_evict is not None:
                self.on_evict(denial)
        denial = is_denial(ans)
        self._entries[k] = _Entry(ans, now + ttl, ttl, denial, hits, last_hit)
        self._denials += denial
        return True

    def clear(self) -> None:
        self._entries.clear()
        self._denials = 0
