"""What one manifest document may cost to read: how deep it nests and how far
its aliases expand, bounded as the Kubernetes API server bounds what it decodes.

YAML aliases (``*name``) repeat a node anchored elsewhere (``&name``) without
copying it: nine levels of nine aliases is 400 bytes of text and 387 million
nodes once expanded (the "billion laughs").  The values built from a document
share the aliased objects, so building them is cheap; but whatever walks them
(printing a value in an error, hashing a workload's pod template) walks the
whole expansion.  And libyaml's composer recurses in C once per level of
nesting, about 300 bytes of stack each: 30,000 levels of ``[`` (30 KB of
text) overflow a thread's 8 MB stack and kill the process.

The limits:

- **Alias expansion**, counted as go-yaml counts it (gopkg.in/yaml.v2 since
  v2.2.8 and yaml.v3, the fix of CVE-2019-11254; sigs.k8s.io/yaml, with which
  the API server and kubectl decode YAML, is built on go-yaml v2): every node
  decoded counts once per place it appears after expansion, and a document
  where more than :func:`allowed_alias_ratio` of those decodes come from
  alias expansion is refused, once it has over 100 alias decodes and over
  1,000 decodes in all.  A few aliases in a manifest pass; a bomb does not.
  An anchor that contains an alias of itself (a recursive structure) is
  refused, as go-yaml refuses it ("anchor ... value contains itself").
- **Nesting**: at most :data:`MAX_NESTING` levels, counted after aliases are
  expanded (a chain of anchors, each holding an alias of the one before,
  nests as deep as the chain is long).  go-yaml's scanner stops at 10,000
  (``max_flow_level``, ``max_indents``), as Go's encoding/json does for the
  API server's JSON; we stop at 1,000, because libyaml's composer recurses in
  C (10,000 levels is 3 MB of a thread's stack), Python's recursion limit is
  1,000, and no Kubernetes object comes near either (a CRD's schema, the
  deepest, is a few dozen levels).  JSON is read by Python's ``json``, which
  stops at its recursion limit, about the same depth.

The nesting of a text is bounded before libyaml sees it (:func:`may_nest_deeper`,
a few passes over the text at C speed, ~2% of parsing it); only a text that
might nest too deep is composed by :class:`DepthCheckedLoader`, which counts
levels as it goes (composing is about a fifth slower) and stops at the limit.
Aliases are only looked at when the text has an ``&`` (an anchor) at all.
"""

from __future__ import annotations

import re
from typing import Any

from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from coredns_py.errors import TOO_DEEP, TOO_MANY_ALIASES, RefusedFile
from coredns_py.source.yaml_load import Loader

MAX_NESTING = 1000

# go-yaml's decode.go: up to 400,000 decodes ("~500kb of dense object
# declarations, or ~5kb of dense object declarations with 10000% alias
# expansion") 99% may come from aliases; from 4,000,000 ("~5MB of dense
# object declarations") only 10%; in between the share slides linearly.
ALIAS_RATIO_RANGE_LOW = 400_000
ALIAS_RATIO_RANGE_HIGH = 4_000_000
# Below these a document is never refused for its aliases (go-yaml's too).
MIN_ALIAS_DECODES = 100
MIN_DECODES = 1000


def allowed_alias_ratio(decodes: int) -> float:
    """The share of a document's decodes that may come from alias expansion."""
    if decodes <= ALIAS_RATIO_RANGE_LOW:
        return 0.99
    if decodes >= ALIAS_RATIO_RANGE_HIGH:
        return 0.10
    return 0.99 - 0.89 * (decodes - ALIAS_RATIO_RANGE_LOW) / (
        ALIAS_RATIO_RANGE_HIGH - ALIAS_RATIO_RANGE_LOW)


# --- nesting, before composing ------------------------------------------------

# What may stand before a block collection on its own line: indentation, the
# indicators of compact nesting ("- - key: v", "? - a", "--- "), tabs after
# them.  (libyaml starts no block sequence after an anchor or a tag on the
# same line, and only one mapping.)
_PREFIX_CHARS = r"[ \t\-?:]"
# YAML 1.1's line breaks besides "\n"; rare, and they make the search slower.
_OTHER_BREAKS = ("\r", "\x85", "\u2028", "\u2029")


def may_nest_deeper(text: str, limit: int = MAX_NESTING) -> bool:
    """False when ``text`` surely nests at most ``limit`` levels deep.

    A sound bound, at C speed: a level takes at least one character; flow
    collections nest at most as deep as there are ``[`` and ``{`` (leaving out
    empty ``[]`` and ``{}``, which add one level at most, at the bottom); block
    collections nest at most 2 * (C + 2) + 1 deep, where C is the longest run
    of indentation and indicators that starts a line, because libyaml's stack
    of block indents holds strictly increasing columns, and between two of
    them at most one sequence written at its parent's own indentation.
    """
    if len(text) <= limit:
        return False
    flows = (text.count("[") + text.count("{")) - text.count("[]") - text.count("{}") + 1
    longest_prefix = (limit - flows - 5) // 2
    if longest_prefix <= 0:
        return True
    run = f"{_PREFIX_CHARS}{{{longest_prefix}}}"
    breaks = "[\n" + "".join(b for b in _OTHER_BREAKS if b in text) + "]"
    return (re.match("\ufeff?" + run, text) is not None
            or re.search(breaks + run, text) is not None)


class DepthCheckedLoader(Loader):
    """:class:`~coredns_py.source.yaml_load.Loader` that stops composing
    beyond :data:`MAX_NESTING` levels, before libyaml's composer recurses
    deeper in C.  It counts in the resolver hooks the composer calls on the
    way into and out of every node."""

    def __init__(self, stream, path: str):
        super().__init__(stream)
        self._path = path
        self._depth = 0
        self._descend, self._ascend = self.descend_resolver, self.ascend_resolver
        self.descend_resolver = self._count_descend
        self.ascend_resolver = self._count_ascend

    def _count_descend(self, parent, index):
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise too_deep(self._path, parent.start_mark.line + 1 if parent else None)
        return self._descend(parent, index)

    def _count_ascend(self):
        self._depth -= 1
        return self._ascend()


def too_deep(path: str, line) -> RefusedFile:
    return RefusedFile(f"nested more than {MAX_NESTING} levels deep (the limit for a "
                       "document)", path, TOO_DEEP, line)


# --- aliases, after composing ----------------------------------------------------

def check_expansion(document: Any, path: str) -> None:
    """Raise :class:`RefusedFile` when the composed ``document`` (nodes, aliases
    shared) expands too far or too deep, or refers to itself.

    Each distinct node is visited once, in document order and without
    recursion: the first visit of a node is its anchor, every later edge to it
    is an alias, which go-yaml decodes again whole (its expanded size).
    """
    size: dict[int, int] = {}  # id(node) -> nodes once expanded, itself included
    depth: dict[int, int] = {}  # id(node) -> levels once expanded, itself included
    alias_decodes = aliases = 0
    on_path = {id(document)}
    stack = [(document, iter(_children(document)))]
    while stack:
        node, children = stack[-1]
        for child in children:
            key = id(child)
            if key in size:  # seen whole before: an alias
                aliases += 1
                alias_decodes += size[key]
            elif key in on_path:
                raise RefusedFile("an anchor contains an alias of itself (a recursive "
                                  "structure)", path, TOO_MANY_ALIASES,
                                  child.start_mark.line + 1)
            elif type(child) is ScalarNode:
                size[key] = depth[key] = 1
            else:
                on_path.add(key)
                stack.append((child, iter(_children(child))))
                break
        else:
            stack.pop()
            on_path.discard(id(node))
            kids = _children(node)
            size[id(node)] = 1 + sum(size[id(c)] for c in kids)
            depth[id(node)] = 1 + max((depth[id(c)] for c in kids), default=0)
    line = document.start_mark.line + 1
    if depth[id(document)] > MAX_NESTING:
        raise too_deep(path, line)
    # go-yaml counts the alias node itself as one decode, outside the expansion.
    decodes = len(size) + aliases + alias_decodes
    if (alias_decodes > MIN_ALIAS_DECODES and decodes > MIN_DECODES
            and alias_decodes / decodes > allowed_alias_ratio(decodes)):
        raise RefusedFile(f"aliases expand it to {decodes:,} nodes, {alias_decodes:,} of them "
                          "repeated by aliases (the limit, as the API server's YAML decoder "
                          f"sets it, is {allowed_alias_ratio(decodes):.0%} of them)", path,
                          TOO_MANY_ALIASES, line)


def _children(node) -> list:
    cls = type(node)
    if cls is SequenceNode:
        return node.value
    if cls is MappingNode:
        return [part for pair in node.value for part in pair]
    return []
