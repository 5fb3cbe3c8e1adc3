"""Allocation, as the API server does for ClusterIPs and node ports and the
pod network for pod IPs, kept stable in the allocation state.

The same holder (``Service ns/name``, ``Pod ns/name``, a Service's port
``ns/name:80/TCP``) keeps what it got across reloads, restarts and moving it
to another file; only deleting it frees it.  A new holder first tries a slot
chosen by a hash of its key, so even a lost state usually gives the same
values back.

What is handed out is a :class:`Space`: IP addresses from CIDRs
(:class:`Addresses`, one pool per family) or node ports from a range
(:class:`NodePorts`).  The state is kept by a store (:mod:`.state`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import socket
from typing import Iterable, Optional, Sequence

from coredns_py.cluster import state as state_mod
from coredns_py.source import objects as o

log = logging.getLogger("coredns_py.allocator")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def reserved_offsets(kind: str) -> tuple[int, ...]:
    """Offsets in a range that are never handed out.

    Services: .0 is the network, .1 is ``kubernetes.default`` and .10 the
    cluster DNS (kubeadm's convention). Pods: .0 and .1 (the bridge/gateway).
    """
    return (0, 1, 10) if kind == "services" else (0, 1)


class Pool:
    """A range of integers (addresses, ports) and who holds which."""

    def __init__(self, base: int, size: int, reserved: Iterable[int] = ()):
        self.base = base
        self.size = size
        self.reserved = set(reserved)
        self.used: set[int] = set()

    def contains(self, n: int) -> bool:
        return self.base <= n < self.base + self.size

    def free(self, n: int) -> bool:
        return self.contains(n) and n not in self.used and n not in self.reserved

    def allocate(self, key: str) -> Optional[int]:
        """A free value, starting from a slot derived from the key."""
        # Large IPv6 ranges: stay in the first 2**20 addresses so probing is cheap.
        size = min(self.size, 1 << 20)
        start = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % size
        for i in range(size):
            n = self.base + (start + i) % size
            if n not in self.used and n not in self.reserved:
                self.used.add(n)
                return n
        return None


# Address text -> (family, integer). Parsing with ipaddress costs micro-
# seconds, and a reload sees the same tens of thousands of addresses again.
# Kept from one build to the next for the addresses that build used (see
# new_build()): those of a big file that was removed are forgotten, rather
# than pinning the memory it took.
_PARSED: dict[str, tuple[int, int]] = {}
_PARSED_BEFORE: dict[str, tuple[int, int]] = {}
_PARSED_MAX = 1 << 20


def _parse(text: str) -> tuple[int, int]:
    hit = _PARSED.get(text)
    if hit is None:
        hit = _PARSED_BEFORE.get(text)
        if hit is None:
            if o.is_dotted_quad(text):
                hit = (4, int.from_bytes(socket.inet_aton(text), "big"))
            else:
                ip = ipaddress.ip_address(text)  # ValueError for junk from a state file
                hit = (ip.version, int(ip))
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[text] = hit
    return hit


def new_build() -> None:
    """A build starts: what the last build parsed is kept aside, and forgotten
    at end_build() unless this build parses it again."""
    global _PARSED, _PARSED_BEFORE
    _PARSED_BEFORE, _PARSED = _PARSED, {}


def end_build() -> None:
    global _PARSED_BEFORE
    _PARSED_BEFORE = {}


class Addresses:
    """IP addresses from one CIDR per family (family 4 or 6); values are
    canonical address text.  An explicit address outside the ranges is
    honoured, as a dump of another cluster carries them."""

    strict = False

    def __init__(self, kind: str, cidrs: Sequence[str], reserved: Iterable[str] = ()):
        self.pools: dict[int, Pool] = {}
        self.networks: dict[int, IPNetwork] = {}
        for cidr in cidrs:
            net = ipaddress.ip_network(cidr)
            self.networks[net.version] = net
            base = int(net.network_address)
            taken = {base + r for r in reserved_offsets(kind)}
            if net.version == 4 and net.num_addresses > 2:
                taken.add(int(net.broadcast_address))
            self.pools[net.version] = Pool(base, net.num_addresses, taken)
        for text in reserved:
            fam, n = _parse(text)
            if fam in self.pools:
                self.pools[fam].reserved.add(n)

    parse = staticmethod(_parse)

    @staticmethod
    def family(value: str) -> int:
        return o.family(value)

    @staticmethod
    def text(family: int, n: int) -> str:
        return str(ipaddress.IPv4Address(n) if family == 4 else ipaddress.IPv6Address(n))

    @staticmethod
    def taken(value: str, holder: str) -> str:
        return f"address {value} is already used by {holder}"

    def exhausted(self, family: int) -> str:
        return f"range {self.networks[family]} is exhausted"

    @staticmethod
    def missing(family: int) -> str:
        return f"no IPv{family} range configured to allocate from"


class NodePorts:
    """Node ports from the API server's --service-node-port-range (one pool,
    family 0).  An explicit node port outside the range is refused, as the
    API server refuses it."""

    strict = True

    def __init__(self, first: int, last: int):
        self.first, self.last = first, last
        self.pools = {0: Pool(first, last - first + 1)}

    @staticmethod
    def parse(value: int) -> tuple[int, int]:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"not a port: {value!r}")
        return 0, value

    @staticmethod
    def family(value: int) -> int:
        return 0

    @staticmethod
    def text(family: int, n: int) -> int:
        return n

    @staticmethod
    def taken(value: int, holder: str) -> str:
        # The API server's words (portallocator's ErrAllocated), and who has it here.
        return f"Invalid value: {value}: provided port is already allocated (to {holder})"

    def exhausted(self, family: int) -> str:
        return f"node port range {self.first}-{self.last} is exhausted"

    @staticmethod
    def missing(family: int) -> str:
        return "no node port range configured"

    def outside(self, value: int) -> str:
        return (f"Invalid value: {value}: provided port is not in the valid range. The range "
                f"of valid ports is {self.first}-{self.last}")


Space = Addresses | NodePorts


class Request:
    """What one holder needs: its key, the values it gives itself, and the
    families (4/6 for addresses, primary first; 0 for a node port) it needs
    one value of."""

    __slots__ = ("key", "explicit", "families", "result", "error")

    def __init__(self, key: str, explicit: Sequence, families: Sequence[int]):
        self.key = key
        self.explicit = list(explicit)
        self.families = list(families)
        self.result: list = []
        self.error = ""


class FixedConflict(Exception):
    """An explicit value of a request is held by a fixed (unchanged) holder."""


def allocate(kind: str, requests: list[Request], space: Space,
             store: "state_mod.Store | None" = None, fixed: Optional[dict[str, list]] = None,
             served: Optional[dict[str, list]] = None) -> None:
    """Fill ``request.result`` (and ``request.error``) for every request.

    ``kind`` is the table in the state ("services", "pods", "node_ports").
    Requests come in path order: on a conflict between explicit values the
    first keeps it and the second gets an error (and a new value).

    ``fixed`` holds the values of holders a reload did not touch (key ->
    values): they are kept as they are, and only ``requests`` are worked out
    around them. When an explicit value of a request is one of them, who
    keeps it depends on path order, which only a full run knows:
    FixedConflict is raised and the caller runs again with everything.

    ``served`` holds the allocated (not explicit) values the running server
    serves now, changed holders' included.  A request keeps what it is
    served before what the state says, and the state is written from
    ``served`` and the requests, never from itself: a state file that was
    damaged (moved aside, read in part) cannot take a value away from a
    holder that is being served with it.
    """
    fixed = fixed or {}
    served = served or {}
    store = state_mod.store(store)
    pools = space.pools
    with store.locked():
        data = store.load()
        table: dict[str, list] = dict(data.get(kind, {}))
        claimed: dict[int, str] = {}
        held: dict[int, str] = {}
        for key, values in fixed.items():
            for value in values:
                fam, n = space.parse(value)
                held[n] = key
                pool = pools.get(fam)
                if pool and pool.contains(n):
                    pool.used.add(n)

        # 1. Explicit values are authoritative, first by path order.
        for req in requests:
            for value in req.explicit:
                fam, n = space.parse(value)
                pool = pools.get(fam)
                if space.strict and not (pool and pool.contains(n)):
                    req.error = space.outside(value)
                    continue
                if n in held and held[n] != req.key:
                    raise FixedConflict(value)
                holder = claimed.get(n)
                if holder is not None and holder != req.key:
                    req.error = space.taken(value, holder)
                    continue
                claimed[n] = req.key
                req.result.append(value)
                if pool and pool.contains(n):
                    pool.used.add(n)
            if req.explicit and not req.result:
                # Every value it asked for is taken: it gets new ones (and
                # keeps its name in DNS) until the conflict is fixed.
                req.explicit = []

        # 2. Remembered values (served now, else in the state), unless an
        # explicit claim took them.
        for req in requests:
            if req.explicit:
                continue
            for value in served.get(req.key) or table.get(req.key, ()):
                try:
                    fam, n = space.parse(value)
                except ValueError:
                    continue
                pool = pools.get(fam)
                if (fam in req.families and pool and pool.free(n)
                        and all(space.family(r) != fam for r in req.result)):
                    pool.used.add(n)
                    req.result.append(value)

        # 3. New values for what is still missing.
        for req in requests:
            if req.explicit:
                continue
            for fam in req.families:
                if any(space.family(r) == fam for r in req.result):
                    continue
                pool = pools.get(fam)
                if pool is None:
                    req.error = space.missing(fam)
                    continue
                n = pool.allocate(req.key)
                if n is None:
                    req.error = space.exhausted(fam)
                    continue
                req.result.append(space.text(fam, n))
            order = {fam: i for i, fam in enumerate(req.families)}
            req.result.sort(key=lambda value: order.get(space.family(value), 9))

        # The whole current view: untouched holders as served (or, with no
        # server behind, as the state had them), then the requests.
        new_table = {key: served.get(key) or table[key] for key in fixed
                     if key in served or key in table}
        new_table.update((r.key, r.result) for r in requests if r.result and not r.explicit)
        if new_table != table:
            store.save({**data, kind: new_table})
        # Keys that vanished are freed simply by not being written back.
