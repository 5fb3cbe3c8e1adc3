"""The allocation state in etcd: a :class:`~coredns_py.cluster.state.Store`
for the publisher.

The tables of the state file (``services``, ``pods``, ...: who holds which
addresses) are kept one entry per key, ``<prefix>state/<table>/<ns>/<name>``
holding the entry's JSON, so a change writes only the entries it changed.
Only the leader writes them, and every write carries its fence (the
leader key it created, :mod:`coredns_py.publish.leader`): two publishers
can never both hand out an address, because only one of them can write at
a time, and each new leader reads the state afresh before it allocates
anything.  A publish writes the state first and the objects after it, so
every address a replica serves is in the state.

The first publish to an empty prefix imports the folder's local state file
(the one ``serve`` kept), so switching a folder to ``publish`` keeps every
ClusterIP and pod IP.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Callable, Optional

from coredns_py.cluster import state
from coredns_py.etcd import client as c
from coredns_py.etcd.client import Etcd, EtcdError
from coredns_py.etcd.layout import Layout
from coredns_py.publish.writer import LostLeadership, chunks

log = logging.getLogger("coredns_py.publish")


def _tables(data: dict) -> dict[str, dict]:
    """The tables of a state dict (every mapping in it; ``version`` is not one)."""
    return {name: table for name, table in data.items() if isinstance(table, dict)}


class EtcdAllocations:
    """The allocation state under ``layout.state``, written under ``fence``.

    As every store, ``save`` never raises (the allocations hold in memory
    meanwhile); what it could not write is kept, and :meth:`flush` writes it
    before anything that uses those addresses is published.
    """

    def __init__(self, etcd: Etcd, layout: Layout, fence: Callable[[], list],
                 import_from: Optional[Path] = None):
        self.etcd = etcd
        self.layout = layout
        self.fence = fence
        self.import_from = import_from
        self._lock = threading.Lock()
        # What etcd holds; None: read it at the next load (first use, or a
        # write that failed halfway).
        self._data: Optional[dict] = None
        self._unsaved: Optional[dict] = None  # what save() could not write yet

    def locked(self):
        return self._lock

    def load(self) -> dict:
        if self._unsaved is not None:
            return self._unsaved  # newer than etcd: the allocator builds on it
        if self._data is None:
            self._data = self._read()
        return self._data

    def save(self, data: dict) -> None:
        self._unsaved = {**data, "version": state.VERSION}
        try:
            self.flush()
        except (EtcdError, LostLeadership) as exc:
            log.warning("publish: cannot write the allocation state yet (%s); it is written "
                        "before the next publish", exc)

    def flush(self) -> None:
        """Write what save() could not: EtcdError or LostLeadership when it
        still cannot (nothing may be published meanwhile)."""
        data = self._unsaved
        if data is None:
            return
        if self._data is None:
            self._data = self._read()
        old = _tables(self._data)
        ops = []
        for name, table in _tables(data).items():
            before = old.get(name, {})
            for key, value in table.items():
                if before.get(key) != value:
                    ops.append(c.put(self.layout.state_key(name, key),
                                     json.dumps(value, separators=(",", ":")).encode()))
            ops.extend(c.delete(self.layout.state_key(name, key))
                       for key in before if key not in table)
        self._write(ops)
        self._data = data
        self._unsaved = None

    def _write(self, ops: list) -> None:
        if not ops:
            return
        self._data = None  # unknown until every transaction has landed
        for chunk in chunks(ops):
            ok, _reply = self.etcd.txn(self.fence(), chunk)
            if not ok:
                raise LostLeadership("another publisher leads now; this one stops allocating")

    def _read(self) -> dict:
        data: dict = {}
        version = None
        for _rev, kvs in self.etcd.list_prefix(self.layout.state):
            for key, value, _mod in kvs:
                if key == self.layout.state_version:
                    version = value.decode("ascii", "replace")
                    continue
                entry = self.layout.state_entry(key)
                if entry is None:
                    continue
                try:
                    held = json.loads(value)
                    # What a state table holds: a list of addresses or ports.
                    if type(held) is not list or not all(type(x) in (str, int) for x in held):
                        raise ValueError("expected a list of addresses or ports")
                    data.setdefault(entry[0], {})[entry[1]] = held
                except ValueError as exc:
                    log.warning("publish: allocation state %s is not what this program "
                                "writes (%s); that entry is allocated again",
                                key.decode("utf-8", "replace"), exc)
        if version is not None:
            if not version.isdigit() or int(version) > state.VERSION:
                raise EtcdError(f"the allocation state under {self.layout.prefix} has format "
                                f"version {version}, newer than this program's "
                                f"{state.VERSION}: publish with the newer coredns-py")
            return {**data, "version": state.VERSION}
        # A prefix nobody published to: start from the folder's state file.
        imported = state.FileStore(self.import_from).load() if self.import_from else {}
        tables = _tables(imported)
        count = sum(len(t) for t in tables.values())
        if count:
            log.info("publish: importing %d allocations from the local state file %s",
                     count, self.import_from)
        ops = [c.put(self.layout.state_key(name, key),
                     json.dumps(value, separators=(",", ":")).encode())
               for name, table in tables.items() for key, value in table.items()]
        ops.append(c.put(self.layout.state_version, str(state.VERSION).encode()))
        self._write(ops)
        return {**tables, "version": state.VERSION}
