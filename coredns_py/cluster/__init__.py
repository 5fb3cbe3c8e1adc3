"""The cluster fill-in: what the API server and the controllers add to the
objects between ``kubectl apply`` and the first DNS answer (ClusterIPs, pods
of workloads, endpoints of selectors), and the second seam of the data flow.

A :class:`ClusterSource` gives a filled-in :class:`Cluster`: either
:class:`~coredns_py.cluster.local.LocalCluster` (objects from an object
source, :mod:`coredns_py.source`, filled in here, addresses kept in a state
store), or :class:`~coredns_py.cluster.replica.EtcdCluster` (the cluster a
publisher filled in and wrote to etcd), so that replicas never allocate;
nothing downstream (the snapshot, the answers, the status page) knows which
one fed it.
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
    # The labels of each Namespace object (CoreDNS `namespace_labels`); a
    # namespace that has objects but no Namespace has none here.
    namespace_labels: dict = field(default_factory=dict, compare=False)

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
    # Objects read, by kind, when the source counted them itself (a replica
    # has the publisher's counts, not its objects); None: count ``objects``.
    kinds: Optional[dict] = None


class ClusterSource(Protocol):
    """Where the server's filled-in cluster comes from.

    A source may also have ``gauges() -> [(name, help, value)]``, figures of
    its own that ``/metrics`` reports as ``coredns_py_<name>`` (a replica's
    etcd revision and connection, :mod:`coredns_py.cluster.replica`).
    """

    description: str  # for logs and the status page: "folder zones"

    def load(self, full: bool = False) -> Optional[ClusterLoad]:
        """The cluster now, or None when nothing changed since the last load.
        ``full``: forget every cache first and load even when nothing changed
        (SIGHUP).  Raises SourceError when the source cannot be read."""

    def ready(self) -> tuple[bool, str]:
        """Can the source be read now? ``(ok, reason)``, a cheap live check."""

    def watch(self, changed: Callable[[], None]) -> Stoppable:
        """Call ``changed()`` (from any thread) whenever something may have changed."""
