"""Label selectors, as the API server evaluates them.

A Service's ``selector`` is a plain equality map; a workload's
``spec.selector`` adds ``matchExpressions`` (k8s.io/apimachinery
``labels.Selector``).  Both are ANDed; an empty selector matches everything.
CoreDNS's ``labels`` and ``namespace_labels`` options write one as text
(:func:`parse`).
"""

from __future__ import annotations

import re
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


# --- selectors written as text --------------------------------------------------------

# A label key: an optional DNS-subdomain prefix and "/", then a name of
# alphanumerics, "-", "_" and "." (k8s.io/apimachinery validation); a value
# likewise, or empty.
_KEY = re.compile(r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
_TOKEN = re.compile(r"\s*(!=|==|=|!|\(|\)|,|[^\s!=(),]+)")


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        out.append(m.group(1))
        pos = m.end()
    return out


def parse(text: str) -> tuple[tuple[tuple[str, str], ...], tuple[LabelRequirement, ...]]:
    """A label selector in Kubernetes' text form (``kubectl -l``, CoreDNS
    ``labels`` and ``namespace_labels``) as (matchLabels, matchExpressions):
    requirements separated by commas, each ``key``, ``!key``, ``key=value``
    (or ``==``), ``key!=value``, ``key in (a, b)`` or ``key notin (a, b)``.
    ValueError names what is wrong."""
    toks = _tokens(text)
    labels: list[tuple[str, str]] = []
    exprs: list[LabelRequirement] = []
    i = 0

    def value(tok: str) -> str:
        if len(tok) > 63 or not _VALUE.fullmatch(tok) or tok in ("in", "notin"):
            raise ValueError(f"{tok!r} is not a label value")
        return tok

    while i < len(toks):
        negate = toks[i] == "!"
        i += negate
        if i >= len(toks) or not _KEY.fullmatch(toks[i]):
            raise ValueError(f"expected a label key at {' '.join(toks[i:]) or 'the end'!r}")
        key, i = toks[i], i + 1
        op = toks[i] if i < len(toks) else ","
        if negate:
            if op != ",":
                raise ValueError(f"!{key} takes no value")
            exprs.append(LabelRequirement(key, "DoesNotExist"))
        elif op == ",":
            exprs.append(LabelRequirement(key, "Exists"))
        elif op in ("=", "==", "!="):
            if i + 1 >= len(toks) or toks[i + 1] == ",":
                val = ""  # "key=" selects an empty value
                i += 1
            else:
                val, i = value(toks[i + 1]), i + 2
            if op == "!=":
                exprs.append(LabelRequirement(key, "NotIn", (val,)))
            else:
                labels.append((key, val))
        elif op in ("in", "notin"):
            if i + 1 >= len(toks) or toks[i + 1] != "(":
                raise ValueError(f"{key} {op}: expected '(' and values")
            i += 2
            values = []
            while i < len(toks) and toks[i] != ")":
                if toks[i] != ",":
                    values.append(value(toks[i]))
                i += 1
            if i >= len(toks):
                raise ValueError(f"{key} {op} (...: ')' is missing")
            if not values:
                raise ValueError(f"{key} {op} (): needs at least one value")
            exprs.append(LabelRequirement(key, "In" if op == "in" else "NotIn", tuple(values)))
            i += 1
        else:
            raise ValueError(f"after {key!r}: expected =, ==, !=, in, notin or ',', got {op!r}")
        if i < len(toks):
            if toks[i] != ",":
                raise ValueError(f"expected ',' before {toks[i]!r}")
            i += 1
            if i >= len(toks):
                raise ValueError("a ',' ends the selector")
    return tuple(labels), tuple(exprs)
