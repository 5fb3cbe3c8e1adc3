"""Raw manifest mappings to trimmed objects, with Kubernetes defaults applied.

One converter per kind (:mod:`.services`, :mod:`.endpoint_slices`,
:mod:`.pods`, and the Namespace below), each reading the fields we need
through :mod:`.fields`, which checks them as the API server validates them
(:mod:`.validation`, with its wording) and raises :class:`ManifestError`
naming the object and the field, so the rest of the code can trust what it
gets; the first problem of an object is reported.  Everything else in a
manifest (a dumped Service's ``status`` but its load balancer's ingress,
``managedFields``, annotations ...) is ignored.

:func:`~coredns_py.source.kinds.ignored` says first what a document is: an
object of a kind we serve, another kind (counted, not served), no
Kubernetes object at all (a ``values.yaml``: counted), or something the API
server would refuse outright (no ``kind``, a ``kind`` that is a typo of ours).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from coredns_py.source import fields as read
from coredns_py.source import objects as o
from coredns_py.source.endpoint_slices import endpoint_slice, endpoints
from coredns_py.source.kinds import ignored
from coredns_py.source.namespaces import DEFAULT_PLACEMENT, Placement
from coredns_py.source.pods import WORKLOAD_KINDS, pod, workload
from coredns_py.source.services import service

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server


def namespace(ctx: read.Ctx, raw: dict) -> o.Namespace:
    meta = read.metadata(ctx, raw, namespaced=False)
    labels = dict(read.string_map(ctx, meta.get("labels"), "metadata.labels"))
    labels[NAMESPACE_NAME_LABEL] = ctx.name
    return o.Namespace(ctx.name, origin=ctx.origin, labels=tuple(sorted(labels.items())))


_CONVERTERS: dict[str, Callable] = {
    "Service": service,
    "EndpointSlice": endpoint_slice,
    "Endpoints": endpoints,
    "Pod": pod,
    "Namespace": namespace,
    **{kind: workload for kind in WORKLOAD_KINDS},
}


def convert(raw: Any, path: str, line: Optional[int],
            placement: Placement = DEFAULT_PLACEMENT) -> list:
    """One manifest document to zero or more trimmed objects, in the
    namespace ``placement`` gives it.

    Documents :func:`ignored` skips (ConfigMap, Ingress, a values file ...)
    give nothing: they are normal in a real folder.
    """
    if ignored(raw, path, line, placement) is not None:
        return []
    kind = raw["kind"]
    result = _CONVERTERS[kind](read.Ctx(kind, raw, path, line, placement), raw)
    if result is None:
        return []
    return result if isinstance(result, list) else [result]
