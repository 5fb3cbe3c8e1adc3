"""IP allocation, as the API server does for ClusterIPs and the pod network
for pod IPs, kept stable in a small state file.

The same object (``Service ns/name`` or ``Pod ns/name``) keeps the same
addresses across reloads, restarts and moving it to another file; only
deleting it frees them.  A new object first tries a slot chosen by a hash of
its name, so even a lost state file usually gives the same addresses back.

The state is kept by :mod:`coredns_py.cluster.state`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import socket
from pathlib import Path
from typing import Optional, Sequence

from coredns_py.cluster import state
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
    """One CIDR and who holds which address in it, as integers."""

    def __init__(self, network: IPNetwork, reserved: Sequence[int]):
        self.network = network
        self.base = int(network.network_address)
        self.size = network.num_addresses
        self.reserved = {self.base + r for r in reserved}
        if network.version == 4 and self.size > 2:
            self.reserved.add(int(network.broadcast_address))
        self.used: set[int] = set()

    def contains(self, n: int) -> bool:
        return self.base <= n < self.base + self.size

    def free(self, n: int) -> bool:
        return self.contains(n) and n not in self.used and n not in self.reserved

    def allocate(self, key: str) -> Optional[str]:
        """A free address, starting from a slot derived from the key."""
        # Large IPv6 ranges: stay in the first 2**20 addresses so probing is cheap.
        size = min(self.size, 1 << 20)
        start = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % size
        for i in range(size):
            n = self.base + (start + i) % size
            if n not in self.used and n not in self.reserved:
                self.used.add(n)
                return str(ipaddress.ip_address(n))
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


class Request:
    """What one object needs: its key, the addresses it gives itself, and
    the families (4/6, primary first) it needs addresses for."""

    __slots__ = ("key", "explicit", "families", "result", "error")

    def __init__(self, key: str, explicit: Sequence[str], families: Sequence[int]):
        self.key = key
        self.explicit = list(explicit)
        self.families = list(families)
        self.result: list[str] = []
        self.error = ""


class FixedConflict(Exception):
    """An explicit address of a request is held by a fixed (unchanged) object."""


def allocate(kind: str, requests: list[Request], cidrs: Sequence[str],
             state_path: Optional[Path], fixed: Optional[dict[str, list[str]]] = None,
             served: Optional[dict[str, list[str]]] = None) -> None:
    """Fill ``request.result`` (and ``request.error``) for every request.

    ``kind`` is "services" or "pods", the table in the state file. Requests
    come in path order: on a conflict between explicit addresses the first
    keeps the address and the second gets an error.

    ``fixed`` holds the addresses of objects a reload did not touch (key ->
    addresses): they are kept as they are, and only ``requests`` are worked
    out around them. When an explicit address of a request is one of them,
    who keeps it depends on path order, which only a full run knows:
    FixedConflict is raised and the caller runs again with everything.

    ``served`` holds the allocated (not explicit) addresses the running
    server serves now, changed objects' included.  A request keeps what it
    is served before what the state file says, and the state file is written
    from ``served`` and the requests, never from itself: a state file that
    was damaged (moved aside, read in part) cannot take an address away
    from an object that is being served with it.
    """
    fixed = fixed or {}
    served = served or {}
    pools = {ipaddress.ip_network(c).version: Pool(ipaddress.ip_network(c),
                                                    reserved_offsets(kind)) for c in cidrs}
    with state.locked(state_path):
        data = state.load(state_path) if state_path else {}
        table: dict[str, list[str]] = dict(data.get(kind, {}))
        claimed: dict[int, str] = {}
        held: dict[int, str] = {}
        for key, addrs in fixed.items():
            for text in addrs:
                fam, n = _parse(text)
                held[n] = key
                pool = pools.get(fam)
                if pool and pool.contains(n):
                    pool.used.add(n)

        # 1. Explicit addresses are authoritative, first by path order.
        for req in requests:
            for text in req.explicit:
                fam, n = _parse(text)
                if n in held and held[n] != req.key:
                    raise FixedConflict(text)
                holder = claimed.get(n)
                if holder is not None and holder != req.key:
                    req.error = f"address {text} is already used by {holder}"
                    continue
                claimed[n] = req.key
                req.result.append(text)
                pool = pools.get(fam)
                if pool and pool.contains(n):
                    pool.used.add(n)
            if req.explicit and not req.result:
                # Every address it asked for is taken: it gets new ones (and
                # keeps its name in DNS) until the conflict is fixed.
                req.explicit = []

        # 2. Remembered addresses (served now, else in the state file),
        # unless an explicit claim took them.
        for req in requests:
            if req.explicit:
                continue
            for text in served.get(req.key) or table.get(req.key, ()):
                try:
                    fam, n = _parse(text)
                except ValueError:
                    continue
                pool = pools.get(fam)
                if (fam in req.families and pool and pool.free(n)
                        and all(o.family(r) != fam for r in req.result)):
                    pool.used.add(n)
                    req.result.append(text)

        # 3. New addresses for what is still missing.
        for req in requests:
            if req.explicit:
                continue
            for fam in req.families:
                if any(o.family(r) == fam for r in req.result):
                    continue
                pool = pools.get(fam)
                if pool is None:
                    req.error = f"no IPv{fam} range configured to allocate from"
                    continue
                ip = pool.allocate(req.key)
                if ip is None:
                    req.error = f"range {pool.network} is exhausted"
                    continue
                req.result.append(ip)
            order = {fam: i for i, fam in enumerate(req.families)}
            req.result.sort(key=lambda a: order.get(o.family(a), 9))

        # The whole current view: untouched objects as served (or, with no
        # server behind, as the state file had them), then the requests.
        new_table = {key: served.get(key) or table[key] for key in fixed
                     if key in served or key in table}
        new_table.update((r.key, r.result) for r in requests if r.result and not r.explicit)
        if state_path is not None and (new_table != table or new_table and not
                                       state_path.exists()):
            state.save(state_path, {**data, kind: new_table})
        # Keys that vanished are freed simply by not being written back.
