"""The cluster fill-in: what the API server and the controllers add to the
objects between ``kubectl apply`` and the first DNS answer (ClusterIPs, pods
of workloads, endpoints of selectors), and the second seam of the data flow.

A :class:`ClusterSource` gives a filled-in :class:`Cluster`.  Today it is
:class:`~coredns_py.cluster.local.LocalCluster`: objects from an object
source (:mod:`coredns_py.source`), filled in here, addresses kept in a
state file.  A source that holds the cluster after allocation (a shared
store that replicas read) plugs in at the same seam, so that replicas never
allocate; nothing downstream (the snapshot, the answers, the status page)
knows which one fed it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol

from coredns_py.errors import ManifestError
from coredns_py.source import Stoppable, objects as o


@dataclass(frozen=True)
class Cluster:
    namespaces: frozenset[str]
    services: tuple[o.Service, ...]
    slices: tuple[o.EndpointSlice, ...]
    pods: tuple[o.Pod, ...]
    errors: tuple[ManifestError, ...]
    # The same, per namespace (the snapshot reuses what a reload did not touch).
    by_namespace: dict = field(default_factory=dict, compare=False)

    def service_slices(self, namespace: str, name: str) -> list[o.EndpointSlice]:
        return [s for s in self.slices if s.namespace == namespace and s.service == name]


@dataclass(frozen=True)
class ClusterLoad:
    """What one load of a cluster source gives."""

    cluster: Cluster
    errors: tuple  # every current problem: the objects' own and the fill-in's
    objects: tuple  # the objects read, before the fill-in (counted by kind)
    files: int  # files (or documents) they were read from
    revision: int  # increases whenever the objects change
    ignored: tuple = ()  # source.Ignored: documents read but not served
    notices: tuple = ()  # ManifestWarning: said, never fatal


class ClusterSource(Protocol):
    """Where the server's filled-in cluster comes from."""

    description: str  # for logs and the status page: "folder zones"

    def load(self, full: bool = False) -> Optional[ClusterLoad]:
        """The cluster now, or None when nothing changed since the last load.
        ``full``: forget every cache first and load even when nothing changed
        (SIGHUP).  Raises SourceError when the source cannot be read."""

    def ready(self) -> tuple[bool, str]:
        """Can the source be read now? ``(ok, reason)``, a cheap live check."""

    def watch(self, changed: Callable[[], None]) -> Stoppable:
        """Call ``changed()`` (from any thread) whenever something may have changed."""
