"""A manifest file's text as documents: YAML (multi-document, YAML 1.1 as
Kubernetes reads it) or JSON, each with the line it starts on.

Errors are the parsers' own (``yaml.YAMLError``, ``json.JSONDecodeError``),
raised for the file as a whole; a value PyYAML cannot build is turned into
a YAML error naming its field and line.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import yaml

from coredns_py.source.yaml_load import Loader as YamlLoader, construct


def documents(text: str, path: str) -> list[tuple[Optional[int], Any, list]]:
    """(line, document, item lines) for every document; item lines are the
    lines of a List's items, when the document is a List."""
    if path.lower().endswith(".json"):
        data = json.loads(text)
        return [(1, data, [])]
    out = []
    loader = YamlLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
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
    return out


_VALUE_ERRORS = (ValueError, KeyError, TypeError, OverflowError)


def _value_error(loader, document, exc: Exception) -> yaml.YAMLError:
    """A YAML error naming the first scalar of ``document`` that cannot be
    built (its field path and line), or the document when none is found."""
    def walk(node, path):
        if isinstance(node, yaml.ScalarNode):
            # Fresh constructor state: the failed attempt left its own behind.
            loader.constructed_objects, loader.recursive_objects = {}, {}
            try:
                loader.construct_object(node, deep=True)
            except _VALUE_ERRORS as err:
                return node, path, err
            return None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                label = key.value if isinstance(key, yaml.ScalarNode) else "?"
                found = walk(key, path) or walk(value, path + (label,))
                if found:
                    return found
        elif isinstance(node, yaml.SequenceNode):
            for i, child in enumerate(node.value):
                found = walk(child, path + (f"[{i}]",))
                if found:
                    return found
        return None

    try:
        found = walk(document, ())
    except RecursionError:  # nested too deep to walk: name the document only
        found = None
    if found is None:
        return yaml.constructor.ConstructorError(
            None, None, f"cannot read this document: {exc}", document.start_mark)
    node, path, err = found
    field = ".".join(path).replace(".[", "[") or "value"
    return yaml.constructor.ConstructorError(
        None, None, f"{field}: cannot read {node.value!r} as {node.tag.rpartition(':')[2]}: {err}",
        node.start_mark)
