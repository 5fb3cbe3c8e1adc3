"""YAML documents as PyYAML's SafeLoader gives them, only faster.

PyYAML with libyaml stays the parser and the reference: every document
gives exactly what ``yaml.load_all(text, Loader=yaml.CSafeLoader)`` gives
(YAML 1.1: ``yes``/``on`` are booleans, ``010`` is octal, ``<<`` merges ...),
the same values, types and errors.  Two things make it faster, measured on
200 files holding 10,000 Services and 1,500 EndpointSlices, GC off:

- :class:`Loader` remembers the tag of each plain scalar it has resolved.
  libyaml's composer calls the Python ``resolve()`` for every scalar, and
  PyYAML tries up to four regular expressions each time; manifests repeat
  the same keys and values over and over; it also skips PyYAML's
  path-resolver bookkeeping when there are no path resolvers.  Composing:
  ~1.0 s -> ~0.75 s.
- :func:`construct` builds the common tags (str, int, bool, null, float,
  timestamp, binary, map, seq) in one tight recursive function instead of
  PyYAML's generic ``construct_object`` with its generators and bookkeeping:
  0.78 s -> 0.13 s.  Anything else (merge keys ``<<``, ``=`` keys, sets,
  omaps, custom tags, recursive aliases, non-scalar keys, a scalar that does
  not convert) makes it give up and construct the whole document with
  PyYAML's own ``construct_document``, so rare input keeps PyYAML's exact
  result or error.
"""

from __future__ import annotations

from typing import Any, Iterator

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

# libyaml's parser is an order of magnitude faster than the pure-Python one,
# which matters at thousands of objects; PyYAML wheels ship it.
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Loader(_Base):  # type: ignore[misc, valid-type]
    """SafeLoader with a cheaper implicit resolver; the same tags.

    libyaml's composer calls three Python methods for every node:
    ``descend_resolver`` and ``ascend_resolver``, which do nothing without
    path resolvers, and ``resolve``, which tries up to four regular
    expressions on every plain scalar.  Without path resolvers (nobody adds
    them; PyYAML calls them experimental) the tag of a plain scalar depends on
    its text only, so a per-file cache gives PyYAML's tag, and collections and
    quoted scalars get the default tags.  With path resolvers this is plain
    PyYAML.  (Composing the benchmark folder: 20% fewer instructions under
    callgrind, ~1.0 s -> ~0.75 s.)
    """

    def __init__(self, stream):
        super().__init__(stream)
        if not self.yaml_path_resolvers:
            self._plain_tags: dict[str, str] = {}
            self.resolve = self._resolve_by_text
            # Builtins that take the same arguments and do nothing useful:
            # cheaper than calling PyYAML's early-returning methods.
            self.descend_resolver = {}.get  # (node, index) -> index
            self.ascend_resolver = tuple  # () -> ()

    def _resolve_by_text(self, kind, value, implicit):
        if kind is ScalarNode:
            if implicit[0]:
                tag = self._plain_tags.get(value)
                if tag is None:
                    tag = self._plain_tags[value] = _Base.resolve(self, kind, value, implicit)
                return tag
            return self.DEFAULT_SCALAR_TAG
        return self.DEFAULT_MAPPING_TAG if kind is MappingNode else self.DEFAULT_SEQUENCE_TAG


_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
# Scalar tags whose SafeConstructor method is a plain function of the node
# (no generator, no state); str, int and bool have an inline fast path first.
_SCALARS = {
    "tag:yaml.org,2002:null": SafeConstructor.construct_yaml_null,
    _BOOL: SafeConstructor.construct_yaml_bool,
    _INT: SafeConstructor.construct_yaml_int,
    "tag:yaml.org,2002:float": SafeConstructor.construct_yaml_float,
    "tag:yaml.org,2002:timestamp": SafeConstructor.construct_yaml_timestamp,
    "tag:yaml.org,2002:binary": SafeConstructor.construct_yaml_binary,
}
# bool_values is keyed by lower case; `True`, `ON` ... take the full method.
_BOOLS = SafeConstructor.bool_values


class _GiveUp(Exception):
    """The node needs PyYAML's full constructor."""


_IN_PROGRESS = object()


def _build(loader, node, built: dict) -> Any:
    """The Python value of a node; ``built`` maps collection nodes to their
    value, so an alias gives the same object, as in PyYAML."""
    cls = type(node)
    tag = node.tag
    if cls is ScalarNode:
        value = node.value
        if tag == _STR:
            return value
        if tag == _INT and value.isascii() and value.isdigit() and value[0] != "0":
            return int(value)  # what construct_yaml_int does for plain decimals
        if tag == _BOOL and value in _BOOLS:
            return _BOOLS[value]
        convert = _SCALARS.get(tag)
        if convert is None:
            raise _GiveUp
        return convert(loader, node)
    data = built.get(node)
    if data is not None:
        if data is _IN_PROGRESS:
            raise _GiveUp  # a recursive structure: PyYAML fills it in later
        return data
    built[node] = _IN_PROGRESS
    if cls is MappingNode and tag == _MAP:
        data = {}
        for key_node, value_node in node.value:
            # `<<` (merge) and `=` (value) keys, and collections as keys
            # (unhashable), are PyYAML's business.
            if type(key_node) is not ScalarNode or key_node.tag not in _KEY_TAGS:
                raise _GiveUp
            # Strings inline, without a call: a third fewer instructions.
            key = key_node.value if key_node.tag == _STR else _build(loader, key_node, built)
            if type(value_node) is ScalarNode and value_node.tag == _STR:
                data[key] = value_node.value
            else:
                data[key] = _build(loader, value_node, built)
    elif cls is SequenceNode and tag == _SEQ:
        data = [_build(loader, child, built) for child in node.value]
    else:
        raise _GiveUp
    built[node] = data
    return data


# Scalar tags allowed as keys: all hashable values.
_KEY_TAGS = frozenset((_STR, *_SCALARS))


def construct(loader, node) -> Any:
    """What ``loader.construct_document(node)`` gives, for a composed document."""
    try:
        return _build(loader, node, {})
    except Exception:  # noqa: BLE001 - anything unusual: PyYAML decides
        # Including RecursionError on very deep nesting.  The fast path does
        # not change nodes, so PyYAML sees them untouched and gives its own
        # value or raises its own error (in its own order of construction).
        return loader.construct_document(node)


def load_all(text: str) -> Iterator[Any]:
    """Like ``yaml.load_all(text, Loader=yaml.CSafeLoader)``."""
    loader = Loader(text)
    try:
        while loader.check_node():
            yield construct(loader, loader.get_node())
    finally:
        loader.dispose()
