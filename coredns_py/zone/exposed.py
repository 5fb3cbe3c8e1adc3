"""Which part of the cluster the zones expose: CoreDNS's kubernetes options
``namespaces``, ``labels`` and ``namespace_labels`` (config keys of the same
names), applied when the snapshot is built.

- ``namespaces``: only these namespaces;
- ``namespace_labels``: only namespaces whose labels match the selector
  (every namespace carries ``kubernetes.io/metadata.name: <name>``, which the
  API server sets; a namespace without a Namespace object has only that);
- ``labels``: only Services whose labels match, and only their endpoints;
  only pods whose labels match count for ``pods verified`` (CoreDNS lists
  Services, EndpointSlices, which carry their Service's labels, and pods
  with this selector).

A namespace that is not exposed does not exist for DNS: every name in it is
NXDOMAIN (CoreDNS ``namespaceExposed``), and its addresses have no PTR.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

from coredns_py.source.convert import NAMESPACE_NAME_LABEL
from coredns_py.source.selectors import matches, parse


@functools.lru_cache(maxsize=16)
def selector(text: str) -> Optional[tuple]:
    """(matchLabels, matchExpressions) of a selector's text; None when empty.
    ValueError when it does not parse (the config refuses it first)."""
    return parse(text) if text.strip() else None


@dataclass(frozen=True)
class Exposed:
    namespaces: frozenset = frozenset()  # empty: every namespace
    labels: str = ""
    namespace_labels: str = ""

    @classmethod
    def of(cls, config) -> "Exposed":
        return cls(frozenset(config.namespaces), config.labels, config.namespace_labels)

    @property
    def everything(self) -> bool:
        return not (self.namespaces or self.labels or self.namespace_labels)

    def namespace(self, name: str, labels: Optional[tuple]) -> bool:
        if self.namespaces and name not in self.namespaces:
            return False
        wanted = selector(self.namespace_labels)
        if wanted is None:
            return True
        return matches(*wanted, labels or ((NAMESPACE_NAME_LABEL, name),))

    def services(self, services: tuple) -> tuple:
        wanted = selector(self.labels)
        if wanted is None:
            return services
        return tuple(s for s in services if matches(*wanted, s.labels))

    def pods(self, pods: tuple) -> tuple:
        wanted = selector(self.labels)
        if wanted is None:
            return pods
        return tuple(p for p in pods if matches(*wanted, p.labels))
