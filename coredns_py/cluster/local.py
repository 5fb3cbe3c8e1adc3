"""The local fill-in as a cluster source: objects from an object source
(a folder of manifests), filled in here, addresses kept in a state store
(the folder's state file; etcd for ``publish``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from coredns_py.cluster import ClusterLoad, fill, state
from coredns_py.cluster.state import Store
from coredns_py.config import Config
from coredns_py.memo import Memo, NoMemo
from coredns_py.logs import OnceLog
from coredns_py.source import ObjectSource

# The fill-in's problems (address conflicts, missing ranges) are logged under
# the server's name, as they always were.
log = logging.getLogger("coredns_py.server")


class LocalCluster:
    """A :class:`~coredns_py.cluster.ClusterSource` that allocates.

    ``incremental``: keep the previous build's results and work out again
    only the namespaces a reload touched (the server); one-off commands
    (``check``, ``get``, ``env``) build once and need no memo.
    ``log_errors``: log each fill-in problem once (``check`` prints them itself).
    """

    def __init__(self, objects: ObjectSource, config: Config, store: "Store | Path | None", *,
                 incremental: bool = True, log_errors: bool = True):
        self.objects = objects
        self.config = config
        self.store = state.store(store)
        self.description = objects.description
        self._memo = Memo() if incremental else NoMemo()
        self._revision: Optional[int] = None
        self._problems = OnceLog(log) if log_errors else None

    def load(self, full: bool = False) -> Optional[ClusterLoad]:
        if full:
            self.objects.reset()
        loaded = self.objects.load()
        if not full and loaded.generation == self._revision:
            return None
        cluster = fill.build(loaded.objects, self.config, self.store, self._memo)
        if self._problems is not None:
            self._problems.report(cluster.errors)
        self._revision = loaded.generation
        return ClusterLoad(cluster, loaded.errors + cluster.errors, loaded.objects,
                           loaded.files, loaded.generation, loaded.ignored, loaded.notices)

    def close(self) -> None:
        """The server stops: the state says what was served (it is written
        again if it was damaged or changed since the last build)."""
        fill.keep_served(self._memo, self.config, self.store)

    def ready(self) -> tuple[bool, str]:
        return self.objects.ready()

    def watch(self, changed):
        return self.objects.watch(changed)


def from_folder(manifests: Path, config: Config, *, state: bool = True,
                incremental: bool = True, log_errors: bool = True,
                store: Optional[Store] = None) -> LocalCluster:
    """The cluster of a folder of manifests, as ``serve`` and every other
    command reads it: objects that name no namespace land in
    ``config.default_namespace``; ``state=False`` allocates without reading
    or writing the state file (``check``); ``store`` keeps the addresses
    elsewhere than the folder's state file (``publish``: in etcd)."""
    from coredns_py.source.folder import ManifestSource
    from coredns_py.source.parse_cache import for_state
    from coredns_py.source.settle import Settling
    state_path = config.state_path(manifests) if state else None
    # The server waits for a changed file to stop changing; a one-off
    # command reads the folder as it is.
    source = ManifestSource(manifests, log_errors=log_errors, cache=for_state(state_path),
                            default_namespace=config.default_namespace,
                            max_file_bytes=config.max_file_bytes,
                            settle=Settling() if incremental else None)
    return LocalCluster(source, config, store if store is not None else state_path,
                        incremental=incremental, log_errors=log_errors)
