"""A generation: everything one reload produces, frozen, swapped in whole.

The snapshot the answers come from, the cluster it was built from, every
problem found on the way, what was read and when.  The server holds exactly
one current generation and replaces it with one assignment; a reader (a
query, ``/ready``, ``/metrics``, the status page) takes the reference once
and uses only that one, so it never mixes two builds (CoreDNS's file plugin
swaps its zone the same way).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Mapping, Optional

from coredns_py.cluster import Cluster, ClusterSource
from coredns_py.config import Config
from coredns_py.errors import REFUSED_REASONS, RefusedFile
from coredns_py.memo import Memo
from coredns_py.zone import snapshot as snapshot_mod
from coredns_py.zone.snapshot import Snapshot


@dataclass(frozen=True)
class Generation:
    number: int  # 1 for the first build, one more for each swap
    snapshot: Snapshot
    cluster: Cluster
    errors: tuple  # every current problem (ManifestError): the objects' and the fill-in's
    objects: tuple  # the objects read, before the fill-in
    files: int  # files (or documents) they came from
    source: str  # what it was built from: "folder zones"
    built_at: float  # unix time of the swap
    build_seconds: float  # from reading the source to the swap
    read_kinds: Optional[Mapping[str, int]] = None  # the source's own counts, if any

    @functools.cached_property
    def kinds(self) -> Mapping[str, int]:
        """Objects read, by kind: counted once per generation, when first asked
        (a folder may hold 100k objects; a scrape must not count them)."""
        if self.read_kinds is not None:
            return self.read_kinds
        kinds: dict[str, int] = {}
        for obj in self.objects:
            kinds[obj.kind] = kinds.get(obj.kind, 0) + 1
        return kinds

    @functools.cached_property
    def refused(self) -> Mapping[str, int]:
        """Files not read at all (a FIFO, over a limit), by reason."""
        out = dict.fromkeys(REFUSED_REASONS, 0)
        for err in self.errors:
            if isinstance(err, RefusedFile):
                out[err.reason] += 1
        return out

    @functools.cached_property
    def errors_by_file(self) -> Mapping[str, int]:
        out: dict[str, int] = {}
        for err in self.errors:
            path = getattr(err, "path", "") or ""
            out[path] = out.get(path, 0) + 1
        return out


class Builder:
    """Makes generations from a cluster source, reusing the previous build's
    work for what did not change.  One build at a time (the caller's lock)."""

    def __init__(self, source: ClusterSource, config: Config, ns_addresses=()):
        self.source = source
        self.config = config
        self.ns_addresses = tuple(ns_addresses)
        self._memo = Memo()  # the previous snapshot's per-namespace parts
        self._number = 0
        self._revision: Optional[int] = None
        self._serial = 0

    def reconfigure(self, config: Config) -> None:
        """Build with ``config`` from the next build on.  Nothing of the
        previous builds is reused (their parts were made with the old
        config); the generation numbers and the SOA serial go on."""
        self.config = config
        self._memo = Memo()

    def build(self, full: bool = False) -> Optional[Generation]:
        """The next generation, or None when the source has not changed.
        Raises SourceError when the source cannot be read."""
        started = time.monotonic()
        load = self.source.load(full=full)
        if load is None:
            return None
        if full or load.revision != self._revision:
            # The SOA serial says when the data last changed (unix seconds),
            # and never goes back, even for two changes in one second.  A
            # full reload counts as a change: it may see what the file
            # cache missed.
            self._serial = max(self._serial + 1, int(time.time()))
            self._revision = load.revision
        snap = snapshot_mod.build(load.cluster, self.config, self._serial, self.ns_addresses,
                                  load.revision, self._memo)
        self._number += 1
        return Generation(self._number, snap, load.cluster, tuple(load.errors), load.objects,
                          load.files, self.source.description, time.time(),
                          time.monotonic() - started, load.kinds)
