"""The filled-in cluster as JSON and back (what a publisher writes to etcd
and a replica reads): exact, field for field, and strict about what it reads."""

import dataclasses
import json
import typing

import pytest

from coredns_py.cluster import codec, local
from coredns_py.config import Config
from coredns_py.errors import ManifestError
from coredns_py.source import objects as o
from conftest import SEED, ZONES


def _cluster_objects(folder):
    cl = local.from_folder(folder, Config(), state=False, incremental=False,
                           log_errors=False).load().cluster
    return [*cl.services, *cl.slices, *cl.pods]


@pytest.mark.parametrize("folder", [ZONES, SEED], ids=["zones", "seed"])
def test_every_object_of_a_real_folder_comes_back_equal(folder):
    if not folder.is_dir():
        pytest.skip(f"{folder} is not there")
    objs = _cluster_objects(folder)
    assert objs
    for obj in objs:
        back = codec.decode(codec.encode(obj))
        assert back == obj
        assert back.origin == obj.origin  # not compared by ==, but carried
        assert type(back) is type(obj)


def _unusual(hint, depth=0):
    """A value of type ``hint`` that is unlike every default."""
    if hint is str:
        return "x-1"
    if hint is int:
        return 7
    if hint is bool:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType")):
        options = [a for a in args if a is not type(None)]
        return _unusual(options[-1], depth)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return (_unusual(args[0], depth + 1), _unusual(args[0], depth + 1))
        return tuple(_unusual(a, depth + 1) for a in args)
    if dataclasses.is_dataclass(hint):
        return _filled(hint, depth + 1)
    raise AssertionError(f"the test cannot make a {hint!r}")


def _filled(cls, depth=0):
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: (not f.default) if hints[f.name] is bool and f.default is True
                  else _unusual(hints[f.name], depth) for f in dataclasses.fields(cls)})


@pytest.mark.parametrize("cls", list(codec.CLASSES.values()), ids=list(codec.CLASSES))
def test_every_field_set_comes_back(cls):
    """Each field off its default: a field added to an object later is
    carried, or this test says which type the codec cannot carry."""
    obj = _filled(cls)
    text = codec.encode(obj)
    for f in dataclasses.fields(cls):
        assert f'"{f.name}":' in text.decode()
    back = codec.decode(text)
    assert back == obj and back.origin == obj.origin


def test_defaults_are_left_out_and_come_back():
    svc = o.Service("default", "web")
    text = codec.encode(svc)
    assert json.loads(text) == {"kind": "Service", "v": codec.VERSION,
                                "namespace": "default", "name": "web"}
    assert codec.decode(text) == svc


def test_none_and_empty_stay_apart():
    """selector None (no selector: no endpoints made) is not () (select nothing)."""
    for selector in (None, ()):
        svc = o.Service("default", "web", selector=selector)
        assert codec.decode(codec.encode(svc)).selector == selector
    port = o.ServicePort("http", 80, "TCP", target_port="web")
    assert codec.decode(codec.encode(o.Service("a", "b", ports=(port,)))).ports == (port,)


@pytest.mark.parametrize("text, message", [
    (b"not json", "not JSON"),
    (b"[1]", "expected a JSON object"),
    (b'{"kind": "Service", "namespace": "a", "name": "b"}', "format version"),
    (b'{"kind": "Secret", "v": 1}', "kind is not one of"),
    (b'{"kind": "Service", "v": 1, "name": "b"}', "field namespace is missing"),
    (b'{"kind": "Service", "v": 1, "namespace": "a", "name": 5}', "field name: expected str"),
    (b'{"kind": "Service", "v": 1, "namespace": "a", "name": "b", "ports": [{"port": true,'
     b' "name": ""}]}', "expected int"),
    (b'{"kind": "Service", "v": 1, "namespace": "a", "name": "b", "extra": 1}',
     "unknown field 'extra'"),
    (b'{"kind": "Pod", "v": 1, "namespace": "a", "name": "b", "labels": [["k"]]}',
     "a list of 2"),
])
def test_what_we_did_not_write_is_refused_with_the_reason(text, message):
    with pytest.raises(codec.CodecError, match=message):
        codec.decode(text)


def test_errors_travel_with_their_fields():
    err = ManifestError("bad port", "zones/a.yaml", 12, "Service default/web", "spec.ports[0]")
    back = codec.decode_error(json.loads(json.dumps(codec.encode_error(err))))
    assert str(back) == str(err)
    assert (back.path, back.line, back.obj, back.field) == (err.path, 12, err.obj, err.field)
