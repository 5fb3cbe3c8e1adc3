"""The fast YAML path gives exactly what PyYAML's SafeLoader gives.

Differential tests: every YAML file of the repository and of the tutorial's
seed folders, and tricky snippets (YAML 1.1 scalars, anchors, merge keys,
custom tags, recursion, errors), through ``yaml_load`` and through
``yaml.load_all(text, Loader=yaml.CSafeLoader)``: the same values, the same
types (``True`` is not ``1``, ``1.0`` is not ``1``), the same sharing of
aliased objects, the same errors.  And ``ManifestSource.load()`` gives the
same objects and error strings as the loader it replaced.
"""

from __future__ import annotations

import datetime
import math
import sys
from pathlib import Path
from textwrap import dedent
from typing import Any, Optional

import pytest
import yaml

from conftest import SEED, ZONES
from coredns_py.source import documents
from coredns_py.source.folder import ManifestSource
from coredns_py.source.yaml_load import Loader, construct, load_all

Reference = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ROOT = Path(__file__).resolve().parent.parent


def yaml_files() -> list[Path]:
    roots = [ZONES, ROOT / "tests", ROOT / "config"]  # tests/ holds SEED
    return sorted(p for r in roots for p in r.rglob("*")
                  if p.suffix in (".yaml", ".yml") and p.is_file())


# Each a whole stream; ids name what they exercise.
SNIPPETS = {
    "ints": """\
        decimal: 12
        zero: 0
        negative: -12
        plus: +12
        octal: 010
        octal_o: 0o17
        hex: 0x1F
        hex_upper: 0X1F
        binary: 0b101
        underscores: 1_000
        sexagesimal: 190:20:30
        negative_sexagesimal: -1:30
        huge: 123456789012345678901234567890
        leading_zero_not_octal: 09
        quoted: "12"
        single: '010'
        explicit: !!int "42"
        explicit_hex: !!int 0x10
        port: 8080
        """,
    "floats": """\
        a: 1.0
        b: 1e3
        c: 1.5e+3
        d: -.5
        e: .inf
        f: -.Inf
        g: +.INF
        h: .nan
        i: .NaN
        j: 6.8523015e+5
        k: 685.230_15e+03
        l: 190:20:30.15
        m: 1.
        n: !!float 3
        o: 0.0
        p: -0.0
        """,
    "bools_and_nulls": """\
        [yes, Yes, YES, no, No, NO, true, True, TRUE, false, False, FALSE,
         on, On, ON, off, Off, OFF, y, n, Y, N, yEs, tRue,
         ~, null, Null, NULL, nULL, '', "null", !!bool "yes", !!bool True, !!null "x",
         !!str yes, !!str 1, !!str ~]
        """,
    "empty_values": """\
        a:
        b: ''
        c: []
        d: {}
        ? e
        """,
    "strings_and_styles": """\
        plain: hello world
        single: 'it''s'
        double: "tab\\tnew\\nline \\u263A"
        literal: |
          line one
          line two
        folded: >-
          folded
          text
        colon: "a: b"
        ip: 10.96.0.1
        ipv6: fd00::1
        version: 1.2.3
        """,
    "bad_timestamp": """\
        date_like: 2024-13-45
        """,
    "timestamps": """\
        date: 2002-12-14
        canonical: 2001-12-15T02:59:43.1Z
        iso8601: 2001-12-14t21:59:43.10-05:00
        spaced: 2001-12-14 21:59:43.10 -5
        no_tz: 2001-12-15 2:59:43.10
        creationTimestamp: "2024-01-17T10:00:00Z"
        as_key:
          2002-12-14: day
        """,
    "binary": """\
        data: !!binary |
          AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4
          OTo7PD0+P0BBQkNERUY=
        small: !!binary aGVsbG8=
        """,
    "anchors_and_aliases": """\
        base: &base {app: web, tier: 1}
        again: *base
        list: &l [1, 2, 3]
        lists: [*l, *l]
        scalar: &s shared
        scalars: [*s, *s]
        nested:
          deeper: &d
            x: [a, {b: c}]
          copy: *d
        """,
    "merge_keys": """\
        defaults: &defaults
          adapter: postgres
          host: localhost
        development:
          <<: *defaults
          database: dev
          host: override
        multi:
          <<: [*defaults, {extra: 1, host: second}]
          own: 2
        inline: {<<: {a: 1}, b: 2}
        """,
    "merge_key_deep_in_a_list": """\
        items:
        - a: 1
        - b:
            - c: &x {k: v}
            - d: {<<: *x, e: f}
        """,
    "bad_merge": """\
        a: {<<: [1, 2]}
        """,
    "value_key": """\
        a: {=: 1, b: 2}
        """,
    "duplicate_keys": """\
        a: 1
        b: 2
        a: 3
        nested: {x: 1, x: {y: 2}, z: 3}
        1: int
        1.0: float
        true: bool
        """,
    "non_string_keys": """\
        1: one
        2.5: two and a half
        true: yes
        ~: null key
        0x10: hex
        """,
    "complex_keys": """\
        ? [a, b]
        : unhashable
        """,
    "mapping_key": """\
        ? {a: 1}
        : unhashable
        """,
    "sets_omaps_pairs": """\
        set: !!set {a, b, c}
        omap: !!omap [a: 1, b: 2]
        pairs: !!pairs [a: 1, a: 2]
        """,
    "explicit_collection_tags": """\
        m: !!map {a: 1}
        s: !!seq [1, 2]
        str_on_map: !!str {a: 1}
        """,
    "seq_tag_on_a_mapping": """\
        a: !!seq {a: 1}
        """,
    "custom_tag": """\
        a: !Ref something
        """,
    "custom_tag_on_mapping": """\
        a: !Thing {b: 1}
        """,
    "unknown_global_tag": """\
        a: !!python/object:os.system x
        """,
    "non_specific_tag": """\
        a: ! 12
        b: ! [1, 2]
        """,
    "bad_int": """\
        a: {b: !!int xyz}
        c: !!binary "not base64 !"
        """,
    "bad_float": """\
        a: !!float abc
        """,
    "bad_bool": """\
        a: !!bool maybe
        """,
    "recursive_list": """\
        a: &a [1, *a]
        """,
    "recursive_map": """\
        a: &a {self: *a, x: 1}
        """,
    "multi_document": """\
        apiVersion: v1
        kind: Service
        ---
        ---
        # only a comment
        ---
        - a
        - b
        ---
        plain scalar document
        ---
        42
        ...
        ---
        {flow: [nested, {deep: [1, 2, {x: y}]}], "quoted key": 'v'}
        """,
    "kubernetes_list": """\
        apiVersion: v1
        kind: List
        items:
        - apiVersion: v1
          kind: Service
          metadata: {name: a, labels: {tier: 1, enabled: true}}
          spec:
            clusterIP: 10.96.0.10
            ports: [{port: 80, targetPort: 8080}, {port: 443, targetPort: https}]
        - apiVersion: discovery.k8s.io/v1
          kind: EndpointSlice
          metadata: {name: a-1, labels: {kubernetes.io/service-name: a}}
          addressType: IPv4
          endpoints:
          - addresses: [10.1.0.1]
            conditions: {ready: yes}
        """,
    "empty_stream": "",
    "only_comments": "# nothing here\n",
    "document_end_only": "...\n",
    "unicode": """\
        name: café
        emoji: "\\U0001F600"
        ключ: значение
        """,
    "syntax_error": """\
        a: [unclosed
        """,
    "syntax_error_in_second_document": """\
        a: 1
        ---
        b: {c
        """,
    "undefined_alias": """\
        a: *nothing
        """,
    "tabs_indentation_error": "a:\n\t- b\n",
}


def deep_nesting(depth: int) -> str:
    return "[" * depth + "]" * depth  # depth lists, one in the other


def same(a: Any, b: Any, pairs: Optional[dict] = None) -> bool:
    """a and b are equal, of the same types all the way down, and share objects
    the same way (an alias in one is an alias in the other)."""
    pairs = {} if pairs is None else pairs
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) ==
                                                     math.copysign(1, b))
    if not isinstance(a, (dict, list, set)):
        return a == b
    if id(a) in pairs:
        return pairs[id(a)] is b
    if any(v is b for v in pairs.values()):
        return False  # b is shared where a is not
    pairs[id(a)] = b
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y, pairs) for x, y in zip(a, b))
    if isinstance(a, set):
        return a == b
    if list(a) != list(b) or [type(k) for k in a] != [type(k) for k in b]:
        return False  # the same keys, in the same order, of the same types
    return all(same(a[k], b[k], pairs) for k in a)


def outcome(load, text: str):
    """The documents, or the error's type and text."""
    try:
        return "ok", list(load(text))
    except Exception as exc:  # noqa: BLE001 - PyYAML raises more than YAMLError
        return "error", (type(exc), str(exc))


def assert_same_as_pyyaml(text: str) -> None:
    expected = outcome(lambda t: yaml.load_all(t, Loader=Reference), text)
    got = outcome(load_all, text)
    assert got[0] == expected[0], (got, expected)
    if got[0] == "error":
        assert got[1] == expected[1]
    else:
        assert len(got[1]) == len(expected[1])
        assert same(got[1], expected[1]), (got[1], expected[1])


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_snippet_same_as_pyyaml(name):
    assert_same_as_pyyaml(dedent(SNIPPETS[name]))


def test_snippets_cover_what_they_claim():
    # A few spot checks that the snippets do exercise PyYAML's YAML 1.1 rules.
    [ints] = load_all(dedent(SNIPPETS["ints"]))
    assert ints["octal"] == 8 and ints["hex"] == 31 and ints["underscores"] == 1000
    assert ints["sexagesimal"] == 685230 and ints["leading_zero_not_octal"] == "09"
    assert ints["quoted"] == "12" and ints["explicit"] == 42
    [[*bools, _, _, _, _, _, _, _, _, _, _, _, _, _]] = load_all(
        dedent(SNIPPETS["bools_and_nulls"]))
    assert bools[:18] == [True] * 3 + [False] * 3 + [True] * 3 + [False] * 3 + \
        [True] * 3 + [False] * 3
    [aliases] = load_all(dedent(SNIPPETS["anchors_and_aliases"]))
    assert aliases["base"] is aliases["again"] and aliases["lists"][0] is aliases["list"]
    [merged] = load_all(dedent(SNIPPETS["merge_keys"]))
    assert merged["development"] == {"adapter": "postgres", "host": "override",
                                     "database": "dev"}
    [stamps] = load_all(dedent(SNIPPETS["timestamps"]))
    assert stamps["date"] == datetime.date(2002, 12, 14)
    [rec] = load_all(dedent(SNIPPETS["recursive_map"]))
    assert rec["a"]["self"] is rec["a"]


def test_deep_nesting_same_as_pyyaml():
    # Deeper than Python's recursion limit: the fast path gives up, PyYAML decides.
    depth = sys.getrecursionlimit() + 100
    [data] = load_all(deep_nesting(depth))
    for _ in range(depth - 1):
        assert type(data) is list and len(data) == 1
        data = data[0]
    assert data == []
    assert_same_as_pyyaml(deep_nesting(50))


@pytest.mark.parametrize("path", yaml_files(), ids=str)
def test_every_yaml_file_same_as_pyyaml(path):
    assert_same_as_pyyaml(path.read_text(encoding="utf-8"))


def test_there_are_yaml_files_to_compare():
    assert len([p for p in yaml_files() if ZONES in p.parents]) > 5


def nodes(loader_class, text: str) -> list:
    """Every node of every document: class, tag, value, style and marks."""
    out = []
    loader = loader_class(text)

    def walk(node):
        out.append((type(node).__name__, node.tag, node.start_mark.line, node.start_mark.column,
                    node.end_mark.line, node.end_mark.column,
                    node.value if isinstance(node, yaml.ScalarNode) else None,
                    getattr(node, "style", None), getattr(node, "flow_style", None)))
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                walk(child)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                walk(key)
                walk(value)

    try:
        while loader.check_node():
            walk(loader.get_node())
    except yaml.YAMLError as exc:
        out.append(("error", str(exc)))
    finally:
        loader.dispose()
    return out


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_resolver_gives_pyyaml_tags(name):
    text = dedent(SNIPPETS[name])
    if "recursive" in name:
        return  # walking a recursive node tree does not end
    assert nodes(Loader, text) == nodes(Reference, text)


def test_resolver_gives_pyyaml_tags_for_every_file():
    for path in yaml_files():
        text = path.read_text(encoding="utf-8")
        assert nodes(Loader, text) == nodes(Reference, text), path


def test_path_resolvers_turn_the_cache_off(monkeypatch):
    # With a path resolver the tag of a scalar depends on where it is, not
    # only on its text: the loader must then be PyYAML's.
    class WithPaths(Loader):
        pass
    monkeypatch.setattr(WithPaths, "yaml_path_resolvers", {})
    WithPaths.add_path_resolver("tag:example.com,2000:port", ["port"], yaml.ScalarNode)
    loader = WithPaths("port: http\nother: http\n")
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    assert [v.tag for _, v in node.value] == ["tag:example.com,2000:port",
                                              "tag:yaml.org,2002:str"]


def test_fallback_sees_untouched_nodes():
    # The fast path gives up half-way through (a merge key after plain
    # keys): PyYAML must still see every node and merge as usual.
    text = "a: 1\nb: {c: 2}\nd: &x {e: 3}\nf: {<<: *x, g: 4}\n"
    loader = Loader(text)
    try:
        data = construct(loader, loader.get_single_node())
    finally:
        loader.dispose()
    assert data == yaml.load(text, Loader=Reference)
    assert data["f"] == {"e": 3, "g": 4}


# --- ManifestSource.load() against the loader it replaced --------------------

def load_both(root: Path, monkeypatch) -> tuple:
    """load() as it is, and with PyYAML's own loader and constructor in place
    of yaml_load's: everything else in documents.documents is shared."""
    new = ManifestSource(root, log_errors=False).load()
    with monkeypatch.context() as m:
        m.setattr(documents, "YamlLoader", Reference)
        m.setattr(documents, "construct", lambda loader, node: loader.construct_document(node))
        old = ManifestSource(root, log_errors=False).load()
    return new, old


def assert_same_load(new, old) -> None:
    assert new.objects == old.objects
    # origin is not compared by the dataclasses: compare it too
    assert [x.origin for x in new.objects] == [x.origin for x in old.objects]
    assert [str(e) for e in new.errors] == [str(e) for e in old.errors]
    assert new.files == old.files


@pytest.mark.parametrize("root", [ZONES, SEED], ids=["zones", "seed"])
def test_load_same_as_before(root, monkeypatch):
    new, old = load_both(root, monkeypatch)
    assert new.objects
    assert_same_load(new, old)


def test_load_of_tricky_files_same_as_before(tmp_path, monkeypatch):
    for name, text in SNIPPETS.items():
        # bad_float, bad_bool and bad_timestamp: PyYAML raises ValueError or
        # KeyError, which load() reports as invalid YAML either way.
        (tmp_path / f"{name}.yaml").write_text(dedent(text), encoding="utf-8")
    (tmp_path / "services.yaml").write_text(dedent("""\
        apiVersion: v1
        kind: List
        items:
        - apiVersion: v1
          kind: Service
          metadata: &meta {name: a, namespace: ns, labels: {tier: 1, on: yes}}
          spec:
            clusterIP: 10.96.0.10
            selector: {app: a, enabled: true, weight: 1.5}
            ports: [{port: 80, targetPort: 8080}, {port: 0x1BB, targetPort: https}]
        - apiVersion: v1
          kind: Service
          metadata: {<<: *meta, name: b}
          spec: {clusterIP: 10.96.0.11, ports: [{port: 80}]}
        - apiVersion: v1
          kind: Service
          metadata: {name: b2}
          spec: {clusterIP: 010.96.0.11, ports: [{port: 80}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: c}
        spec: {clusterIPs: [10.96.0.12, "fd00::0c"], ipFamilies: [IPv4, IPv6]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: d}
        spec: {clusterIP: 10.96.0.13, clusterIPs: [10.96.0.14]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: e, creationTimestamp: 2024-01-17T10:00:00Z}
        spec: {clusterIP: !!binary aGVsbG8=}
        ---
        apiVersion: v1
        kind: List
        items: [{apiVersion: v1, kind: Namespace, metadata: {name: ns}}, [1], 3]
        """), encoding="utf-8")
    new, old = load_both(tmp_path, monkeypatch)
    assert_same_load(new, old)
    # (Services a and b carry labels the API server refuses: `on: yes` is
    # a boolean key and value in YAML 1.1.)
    assert len(new.errors) > 5 and len(new.objects) >= 2
