"""A manifest file's text as documents: YAML (multi-document, YAML 1.1 as
Kubernetes reads it) or JSON, each with the line it starts on.

Errors are the parsers' own (``yaml.YAMLError``, ``json.JSONDecodeError``),
raised for the file as a whole; a value PyYAML cannot build is turned into
a YAML error naming its field and line.  A document nested too deep or
expanding too far through its aliases is refused before anything walks it
(:mod:`coredns_py.source.bounds`), whichever way it is parsed.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import yaml

from coredns_py.errors import SHOWN_CHARS, shown
from coredns_py.source.bounds import DepthCheckedLoader, check_expansion, may_nest_deeper, \
    too_deep
from coredns_py.source.yaml_load import Loader as YamlLoader, construct


def documents(text: str, path: str) -> list[tuple[Optional[int], Any, list]]:
    """(line, document, item lines) for every document; item lines are the
    lines of a List's items, when the document is a List."""
    if path.lower().endswith(".json"):
        try:
            data = json.loads(text)
        except RecursionError:  # json stops at Python's recursion limit
            raise too_deep(path, None) from None
        return [(1, data, [])]
    out = []
    loader = DepthCheckedLoader(text, path) if may_nest_deeper(text) else YamlLoader(text)
    anchors = "&" in text  # without an anchor there is no alias
    try:
        while loader.check_node():
            node = loader.get_node()
            if anchors:
                check_expansion(node, path)
            line = node.start_mark.line + 1
            item_lines: list = []
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if getattr(key, "value", None) == "items" and isinstance(
                            value, yaml.SequenceNode):
                        item_lines = [v.start_mark.line + 1 for v in value.value]
            try:
                data = construct(loader, node)
            except _VALUE_ERRORS as exc:
                # PyYAML lets some bad scalars escape as plain Python errors
                # (`when: 2024-13-45` is a timestamp with month 13, `!!bool
                # maybe`): report them as the YAML errors they are.
                raise _value_error(loader, node, exc) from exc
            out.append((line, data, item_lines))
    finally:
        loader.dispose()
        # The loader holds bound methods of itself (its resolver hooks): a
        # reference cycle that only the cyclic collector would free, and the
        # collector is paused while a snapshot is built.
        vars(loader).clear()
    return out


_VALUE_ERRORS = (ValueError, KeyError, TypeError, OverflowError)
# A field path in a message names at most this many keys and indexes.
_SHOWN_PARTS = 16


def _value_error(loader, document, exc: Exception) -> yaml.YAMLError:
    """A YAML error naming the first scalar of ``document`` that cannot be
    built (its field path and line), or the document when none is found.

    Each node is looked at once, in document order, without recursion: an
    aliased node is not walked again (through aliases a small document can
    name millions of paths)."""
    seen: set[int] = set()
    stack: list = [(document, ())]
    found = None
    while stack and found is None:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            # Fresh constructor state: the failed attempt left its own behind.
            loader.constructed_objects, loader.recursive_objects = {}, {}
            try:
                loader.construct_object(node, deep=True)
            except _VALUE_ERRORS as err:
                found = node, path, err
        elif isinstance(node, yaml.MappingNode):
            for key, value in reversed(node.value):  # popped in document order
                label = key.value if isinstance(key, yaml.ScalarNode) else "?"
                stack.append((value, path + (label,)))
                stack.append((key, path))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, path + (f"[{i}]",))
                         for i, child in reversed(list(enumerate(node.value))))
    if found is None:
        return yaml.constructor.ConstructorError(
            None, None, f"cannot read this document: {exc}", document.start_mark)
    node, path, err = found
    if len(path) > _SHOWN_PARTS:  # nested hundreds deep: its head and its tail
        path = path[:_SHOWN_PARTS // 2] + ("[...]",) + path[-(_SHOWN_PARTS // 2):]
    field = ".".join(p[:SHOWN_CHARS] for p in path).replace(".[", "[") or "value"
    return yaml.constructor.ConstructorError(
        None, None, f"{field}: cannot read {shown(node.value)} as "
        f"{node.tag.rpartition(':')[2]}: {err}", node.start_mark)
