"""One publish: the filled-in cluster as keys, written as only what
changed, in transactions etcd accepts, made visible at once.

etcd 3.4 takes at most 128 operations and 1.5 MiB in one request
(:data:`~coredns_py.etcd.client.MAX_TXN_OPS`), and a first publish of 10k
Services is some 20,000 keys.  So a publish that does not fit in one
transaction is written in several, under a new generation:

1. the first puts ``cluster/pending`` (a replica that sees it holds back
   everything it sees until it is gone) and the first changes;
2. the next ones write the rest of the changes;
3. the last puts the new ``cluster/generation`` record and deletes
   ``cluster/pending``: one revision, in which replicas apply everything.

A publish that fits in one transaction (most edits: one Service changed)
is that one transaction, record included.  Every transaction carries the
leader's fence (:meth:`coredns_py.publish.leader.Leadership.fence`): once
another publisher leads, nothing of this one lands.  A publisher that dies
halfway leaves ``pending`` set: replicas keep serving the last complete
publish, and the next leader's publish, diffed against what etcd holds,
completes it.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, NamedTuple, Optional

from coredns_py.cluster import Cluster, codec
from coredns_py.errors import CorednsPyError, ManifestError
from coredns_py.etcd import client as c
from coredns_py.etcd.client import Etcd
from coredns_py.etcd.layout import Layout, Record
from coredns_py.memo import Memo

log = logging.getLogger("coredns_py.publish")

# What one transaction may hold, leaving room under etcd's limits for the
# pending marker, the record and the JSON around them.
OPS_PER_TXN = c.MAX_TXN_OPS - 2
BYTES_PER_TXN = 1024 * 1024

# Problems carried in the record for replicas to show: enough to fix a
# folder, bounded so that a folder of broken files cannot make the record
# itself too large (each is a few hundred bytes).
MAX_RECORD_ERRORS = 1000


class LostLeadership(CorednsPyError):
    """Another publisher leads now: this one's writes are refused."""


class Written:
    """What one publish wrote."""

    def __init__(self, generation: int, puts: int, deletes: int, transactions: int):
        self.generation = generation
        self.puts = puts
        self.deletes = deletes
        self.transactions = transactions


class _Part(NamedTuple):
    """One namespace as keys: made again only when its result changed."""

    result: object  # the fill-in's result for the namespace it was made from
    keys: dict  # object key -> document
    problems: tuple  # objects too large to publish


def _by_namespace(cluster: Cluster) -> dict:
    if cluster.by_namespace:
        return cluster.by_namespace
    out: dict = {}
    for obj in (*cluster.services, *cluster.slices, *cluster.pods):
        out.setdefault(obj.namespace, []).append(obj)
    return out


def _objects(result) -> tuple:
    if isinstance(result, list):
        return tuple(result)
    return (*result.services, *result.slices, *result.pods)


class Writer:
    """Publishes clusters under ``layout``, each diffed against the last.

    The fill-in keeps the result of a namespace nobody touched (the same
    object), so a publish works out keys and documents again only for the
    namespaces that changed: one edit costs one namespace, not the cluster.
    """

    def __init__(self, etcd: Etcd, layout: Layout, identity: str,
                 fence: Callable[[], list]):
        self.etcd = etcd
        self.layout = layout
        self.identity = identity
        self.fence = fence
        # What etcd holds under cluster/: object keys by namespace, and the
        # namespace keys.  None: not known (never read, or a publish failed
        # halfway): read it first.
        self._held: Optional[dict[str, dict[bytes, bytes]]] = None
        self._held_namespaces: set[bytes] = set()
        self._parts: dict[str, _Part] = {}  # as last published (and held)
        self._generation = 0
        self._last_record: Optional[tuple] = None  # what the last record said, less time
        self._encoded = Memo()  # object -> its document, for unchanged objects

    # --- what a cluster is as keys -----------------------------------------------------

    def _part(self, ns: str, result) -> _Part:
        old = self._parts.get(ns)
        if old is not None and old.result is result:
            return old
        layout = self.layout
        out: dict[bytes, bytes] = {}
        problems = []
        for obj in _objects(result):
            key = layout.object_key(obj)
            n = 2
            while key in out:  # two objects of one name: both are kept
                key = layout.object_key(obj, f"~{n}")
                n += 1
            doc = self._encoded.get("doc", (obj,), lambda: codec.encode(obj))
            if len(doc) * 4 // 3 > BYTES_PER_TXN:
                origin = getattr(obj, "origin", None)
                problems.append(ManifestError(
                    f"too large to publish ({len(doc)} bytes encoded; etcd takes at most "
                    f"{c.MAX_REQUEST_BYTES} bytes in a request)", origin.path if origin else "",
                    origin.line if origin else None,
                    f"{type(obj).__name__} {obj.namespace}/{obj.name}"))
                continue
            out[key] = doc
        return _Part(result, out, tuple(problems))

    def keys(self, cluster: Cluster) -> tuple[dict[bytes, bytes], list[ManifestError]]:
        """Every key of a filled-in cluster, and the objects too large to publish."""
        out = {self.layout.namespace_key(ns): b"" for ns in sorted(cluster.namespaces)}
        problems: list = []
        for ns, result in _by_namespace(cluster).items():
            part = self._part(ns, result)
            out.update(part.keys)
            problems.extend(part.problems)
        return out, problems

    # --- reading what is there ----------------------------------------------------------

    def _read(self) -> None:
        layout = self.layout
        held: dict[str, dict[bytes, bytes]] = {}
        namespaces: set[bytes] = set()
        generation = 0
        for _rev, kvs in self.etcd.list_prefix(layout.cluster):
            for key, value, _mod in kvs:
                try:
                    if key == layout.generation:
                        generation = max(generation, Record.decode(value).generation)
                    elif key == layout.pending:
                        generation = max(generation, int(value))
                except ValueError:
                    pass
                if key.startswith(layout.namespaces):
                    namespaces.add(key)
                elif key.startswith(layout.objects):
                    ns = layout.namespace_of(key)
                    if ns is not None:
                        held.setdefault(ns, {})[key] = value
        self._held = held
        self._held_namespaces = namespaces
        self._parts = {}  # compare every namespace with what etcd holds
        self._generation = generation

    # --- writing ------------------------------------------------------------------------

    def publish(self, cluster: Cluster, errors: tuple, files: int, kinds: dict,
                force: bool = False) -> Optional[Written]:
        """Write what changed since the last publish; None when nothing did
        (unless ``force``).  LostLeadership when the fence no longer holds;
        EtcdError when etcd fails (the next publish reads etcd again)."""
        if self._held is None:
            self._read()
        parts = {ns: self._part(ns, result) for ns, result in _by_namespace(cluster).items()}
        self._encoded.rotate()
        held = self._held
        puts: list = []
        deletes: list = []
        for ns in parts.keys() | held.keys():
            part = parts.get(ns)
            if part is not None and self._parts.get(ns) is part:
                continue  # as published last time, and etcd holds it
            want = part.keys if part is not None else {}
            have = held.get(ns, {})
            deletes.extend(k for k in have if k not in want)
            puts.extend((k, v) for k, v in want.items() if have.get(k) != v)
        namespaces = {self.layout.namespace_key(ns) for ns in cluster.namespaces}
        deletes.extend(sorted(self._held_namespaces - namespaces))
        puts.extend((k, b"") for k in sorted(namespaces - self._held_namespaces))

        errors = tuple(errors) + tuple(p for part in parts.values() for p in part.problems)
        encoded_errors = [codec.encode_error(e) for e in errors[:MAX_RECORD_ERRORS]]
        summary = (files, tuple(sorted(kinds.items())), repr(encoded_errors), len(errors))
        if not (deletes or puts or force or summary != self._last_record):
            self._parts = parts
            return None
        generation = self._generation + 1
        record = Record(generation, self.identity, time.time(), files, dict(kinds),
                        tuple(encoded_errors), len(errors)).encode()
        ops = [c.delete(k) for k in deletes] + [c.put(k, v) for k, v in puts]
        last = [c.put(self.layout.generation, record), c.delete(self.layout.pending)]
        groups = chunks(ops)
        self._held = None  # unknown until every transaction has landed
        if len(groups) <= 1 and len(ops) + len(last) <= c.MAX_TXN_OPS and \
                sum(map(c.op_size, ops + last)) <= BYTES_PER_TXN:
            self._txn((groups[0] if groups else []) + last)
            transactions = 1
        else:
            groups[0] = [c.put(self.layout.pending, str(generation).encode())] + groups[0]
            for group in groups:
                self._txn(group)
            self._txn(last)
            transactions = len(groups) + 1
        for ns in parts.keys() | held.keys():
            if ns in parts:
                held[ns] = parts[ns].keys
            else:
                del held[ns]
        self._held = held
        self._held_namespaces = namespaces
        self._parts = parts
        self._generation = generation
        self._last_record = summary
        return Written(generation, len(puts), len(deletes), transactions)

    def _txn(self, ops: list) -> None:
        ok, _reply = self.etcd.txn(self.fence(), ops)
        if not ok:
            raise LostLeadership("another publisher leads now; this one stops writing")


def chunks(ops: list) -> list[list]:
    """Operations in groups within a transaction's limits, in order."""
    out: list[list] = []
    current: list = []
    size = 0
    for op in ops:
        n = c.op_size(op)
        if current and (len(current) >= OPS_PER_TXN or size + n > BYTES_PER_TXN):
            out.append(current)
            current, size = [], 0
        current.append(op)
        size += n
    if current:
        out.append(current)
    return out
