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
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Hashable, Optional

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


class Cache:
    """LRU cache of :class:`Answer` by :func:`key`, with TTLs."""

    def __init__(self, capacity: int, max_ttl: int,
                 clock: Callable[[], float] = time.monotonic):
        self.capacity = capacity
        self.max_ttl = max_ttl
        self._clock = clock
        # key -> (answer, expiry time, is a denial)
        self._entries: "OrderedDict[Hashable, tuple[Answer, float, bool]]" = OrderedDict()
        self._denials = 0
        self.hits = self.misses = self.evictions = 0
        # Called with ``denial`` when an entry is evicted to make room (metrics).
        self.on_evict: Optional[Callable[[bool], None]] = None

    def __len__(self) -> int:
        return len(self._entries)

    def counts(self) -> tuple[int, int]:
        """(positive entries, negative entries), expired ones included until met."""
        return len(self._entries) - self._denials, self._denials

    def _drop(self, k: Hashable) -> bool:
        _ans, _expires, denial = self._entries.pop(k)
        self._denials -= denial
        return denial

    def get(self, k: Hashable) -> Optional[Answer]:
        """The cached answer with its remaining TTL, or None (missing or expired)."""
        entry = self._entries.get(k)
        if entry is None:
            self.misses += 1
            return None
        ans, expires, _denial = entry
        remaining = expires - self._clock()
        if remaining <= 0:
            self._drop(k)
            self.misses += 1
            return None
        self._entries.move_to_end(k)
        self.hits += 1
        return ans.with_ttl(int(remaining))

    def put(self, k: Hashable, ans: Answer) -> bool:
        """Cache ``ans`` if it may be cached; True when it was."""
        if self.capacity <= 0:
            return False
        ttl = cache_ttl(ans, self.max_ttl)
        if ttl is None:
            return False
        if k in self._entries:
            self._drop(k)
        elif len(self._entries) >= self.capacity:
            denial = self._drop(next(iter(self._entries)))  # the least recently used
            self.evictions += 1
            if self.on_evict is not None:
                self.on_evict(denial)
        denial = is_denial(ans)
        self._entries[k] = (ans, self._clock() + ttl, denial)
        self._denials += denial
        return True

    def clear(self) -> None:
        self._entries.clear()
        self._denials = 0
