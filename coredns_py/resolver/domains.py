"""Which upstreams a name goes to: per-domain forwarding, longest suffix wins.

CoreDNS picks the server block whose zone is the longest suffix of the
name (``corp.example { forward . 10.0.0.53 }`` beside ``. { forward .
/etc/resolv.conf }``), as kube-dns's ``stubDomains`` did: a VPN's domain
goes to the VPN's resolver, everything else to the host's.  Reverse zones
are domains like any other (``10.in-addr.arpa``).  A domain with no pool
(a block without ``forward``, a name under ``except``) is not forwarded:
such names get what the server says without an upstream, REFUSED.

Unlike CoreDNS within one server block, the order domains are written in
does not matter: the longest suffix wins.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Optional

import dns.name

from coredns_py.resolver.pool import Pool


class Domains:
    def __init__(self, pools: Mapping[dns.name.Name, Optional[Pool]]):
        self._table = dict(pools)

    def find(self, name: dns.name.Name) -> Optional[Pool]:
        """The pool of the longest domain that is a suffix of ``name``; None
        when that domain is not forwarded, or no domain holds ``name``."""
        table = self._table
        while True:
            if name in table:  # dnspython names compare case-insensitively
                return table[name]
            if len(name) <= 1:
                return None
            name = name.parent()

    def pools(self) -> list[Pool]:
        """Every pool, each once, in the order given."""
        out: list[Pool] = []
        for pool in self._table.values():
            if pool is not None and pool not in out:
                out.append(pool)
        return out

    def domains(self) -> Iterable[dns.name.Name]:
        return self._table.keys()

    def __bool__(self) -> bool:
        return any(pool is not None for pool in self._table.values())
