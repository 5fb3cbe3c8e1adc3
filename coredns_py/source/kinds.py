"""Which documents are objects we serve: our kinds and their API versions,
other kinds (counted, not served), documents that are no Kubernetes object,
and typos of our kinds (refused, naming the kind meant)."""

from __future__ import annotations

from typing import Any, Optional

from coredns_py.errors import ManifestError, shown
from coredns_py.source import Ignored
from coredns_py.source.fields import Ctx
from coredns_py.source.namespaces import DEFAULT_PLACEMENT, Placement
from coredns_py.source.pods import WORKLOAD_KINDS


# The API group of each kind we serve, and its versions we understand.
# Other versions of these kinds are errors rather than silently misread.
_GROUPS = {
    "Service": "", "Endpoints": "", "Pod": "", "Namespace": "",
    "EndpointSlice": "discovery.k8s.io",
    **{kind: "apps" for kind in WORKLOAD_KINDS},
}
_API_VERSIONS = {
    "Service": ("v1",), "Endpoints": ("v1",), "Pod": ("v1",), "Namespace": ("v1",),
    "EndpointSlice": ("discovery.k8s.io/v1",),
    **{kind: ("apps/v1",) for kind in WORKLOAD_KINDS},
}

# Kinds of the API server that look like one of ours (a typo's distance
# away): never taken for a typo.
_BUILTIN_KINDS = frozenset((
    "Binding", "ConfigMap", "Event", "Job", "Lease", "LimitRange", "Node", "Role", "Secret",
    "ServiceAccount", "CronJob", "Ingress", "PodTemplate", "EndpointSliceList",
))


def _builtin_group(group: str) -> bool:
    """Groups of the API server itself ("", apps, batch, *.k8s.io); other
    groups (with a dot) belong to custom resources."""
    return "." not in group or group.endswith(".k8s.io")


def _distance(a: str, b: str) -> int:
    """Edit distance with adjacent transpositions (optimal string alignment)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def meant_kind(kind: str) -> Optional[str]:
    """The kind we serve that ``kind`` is a typo of (``Servce``, ``service``,
    ``Deployments``), or None."""
    if kind in _API_VERSIONS or kind in _BUILTIN_KINDS:
        return None
    low = kind.lower()
    for ours in _API_VERSIONS:
        # One slip in a short name, two in a long one: far enough that no
        # real kind (Node, Job, Role ... are listed above anyway) comes close.
        if _distance(low, ours.lower()) <= (1 if len(ours) <= 5 else 2):
            return ours
    return None


def ignored(raw: Any, path: str, line: Optional[int],
            placement: Placement = DEFAULT_PLACEMENT) -> Optional[Ignored]:
    """What a document is, before converting it: None for an object of a
    kind we serve; an :class:`Ignored` for another kind, or for a document
    that is no Kubernetes object at all (neither ``apiVersion`` nor
    ``kind``: a ``values.yaml``, a compose file).  Raises ManifestError for
    what the API server refuses outright: ``kind`` without ``apiVersion`` or
    the other way round, a ``kind`` that is a typo of one we serve, a
    version of our kinds that is not served any more."""
    if not isinstance(raw, dict) or "kind" not in raw and "apiVersion" not in raw:
        return Ignored("", "", path, line)
    kind, api = raw.get("kind"), raw.get("apiVersion")
    if type(kind) is str and kind in _API_VERSIONS and api in _API_VERSIONS[kind]:
        return None  # the common case, first
    for key, value in (("kind", kind), ("apiVersion", api)):
        if value is None or value == "":
            # The decoder's words (k8s.io/apimachinery runtime.missingKindErr).
            missing = "Kind" if key == "kind" else "apiVersion"
            raise ManifestError(f"Object '{missing}' is missing", path, line, field=key)
        if not isinstance(value, str):
            raise ManifestError(f"expected a string, got {shown(value)}", path, line, field=key)
    group = api.rpartition("/")[0]
    meta = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    name = meta.get("name") if isinstance(meta.get("name"), str) else "?"
    named = meta.get("namespace") if isinstance(meta.get("namespace"), str) else ""
    # Others' kinds as written (cluster-scoped ones have no namespace);
    # ours, and typos of ours, where they would land.
    label = f"{kind} {named + '/' if named else ''}{name}"
    ours = None
    if _builtin_group(group):
        ours = kind if kind in _API_VERSIONS else meant_kind(kind)
    if ours is not None:
        ctx = Ctx(ours, raw, path, line, placement)
        label = ctx.label.replace(ours, kind, 1)
    if kind in _API_VERSIONS:
        if api in _API_VERSIONS[kind]:
            return None
        if not _builtin_group(group):
            # A custom resource that shares a name with ours (Knative's Service).
            return Ignored(f"{kind}.{group}", label, path, line)
        raise ManifestError(f'no matches for kind "{kind}" in version "{api}": {kind} is '
                            f"served as {' or '.join(_API_VERSIONS[kind])}", path, line,
                            label, "apiVersion")
    if ours is not None:
        raise ManifestError(f'no matches for kind "{kind}" in version "{api}": did you mean '
                            f'"{ours}"?', path, line, label, "kind")
    return Ignored(kind, label, path, line)
