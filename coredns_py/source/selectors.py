"""Label selectors, as the API server evaluates them.

A Service's ``selector`` is a plain equality map; a workload's
``spec.selector`` adds ``matchExpressions`` (k8s.io/apimachinery
``labels.Selector``).  Both are ANDed; an empty selector matches everything.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from coredns_py.source.objects import LabelRequirement


def _requirement(req: LabelRequirement, labels: Mapping[str, str]) -> bool:
    if req.operator == "In":
        return req.key in labels and labels[req.key] in req.values
    if req.operator == "NotIn":
        # A missing key satisfies NotIn, as in Kubernetes.
        return labels.get(req.key) not in req.values
    if req.operator == "Exists":
        return req.key in labels
    if req.operator == "DoesNotExist":
        return req.key not in labels
    raise ValueError(f"unknown selector operator {req.operator!r}")


def matches(match_labels: Iterable[tuple[str, str]],
            match_expressions: Iterable[LabelRequirement],
            labels: Iterable[tuple[str, str]] | Mapping[str, str]) -> bool:
    """True when ``labels`` satisfy every matchLabels pair and every expression."""
    have = labels if type(labels) is dict else dict(labels)
    if any(have.get(k) != v for k, v in match_labels):
        return False
    return all(_requirement(r, have) for r in match_expressions)
