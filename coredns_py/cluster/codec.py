"""The filled-in cluster as JSON, object by object, and back, exactly.

A publisher writes each object of its filled-in cluster (a Service with its
ClusterIPs, an EndpointSlice, a Pod with its IP) as one JSON document; a
replica reads it back into the very dataclass the local fill-in makes
(:mod:`coredns_py.source.objects`), equal field for field, so that nothing
downstream can tell a replica's cluster from the publisher's.

The encoding follows the dataclasses themselves: one JSON object per
dataclass, named by its field names, fields that hold their default left
out; tuples are JSON arrays.  It is worked out once per class from the type
hints, so a field added to an object later is carried without a change
here (and ``tests/test_codec.py`` fails if a type appears that it cannot
carry).  The document says its class (``"kind"``) and the format
(``"v"``), so a replica refuses what it does not understand instead of
guessing.

Decoding checks every type: etcd may hold something another program wrote,
and a bad document must be an error naming its key, not a crash.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Callable, Union

from coredns_py.errors import CorednsPyError
from coredns_py.source import objects as o

# The format of the documents; a replica refuses another one.
VERSION = 1

# The objects a filled-in cluster is made of, by the name the document gives.
CLASSES = {cls.__name__: cls for cls in (o.Service, o.EndpointSlice, o.Pod)}


class CodecError(CorednsPyError):
    """A stored object cannot be read back."""


Decoder = Callable[[Any], Any]
Encoder = Callable[[Any], Any]


def _fail(expected: str, value: Any) -> typing.NoReturn:
    raise CodecError(f"expected {expected}, got {type(value).__name__} {value!r:.60}")


def _scalar(kind: type) -> tuple[Encoder, Decoder]:
    def decode(value):
        # bool is an int to Python, not to a field declared int (and back).
        if type(value) is not kind:
            _fail(kind.__name__, value)
        return value
    return (lambda v: v), decode


def _codec(hint: Any) -> tuple[Encoder, Decoder]:
    """(encode, decode) for a value of type ``hint``."""
    if hint in (str, int, bool):
        return _scalar(hint)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        optional = len(options) < len(args)
        if all(a in (str, int, bool) for a in options):
            allowed = tuple(options)

            def decode_scalars(value):
                if value is None and optional:
                    return None
                if type(value) not in allowed:
                    _fail(" or ".join(a.__name__ for a in allowed), value)
                return value
            return (lambda v: v), decode_scalars
        if len(options) != 1:
            raise TypeError(f"codec: cannot carry {hint!r}")
        enc, dec = _codec(options[0])
        return ((lambda v: None if v is None else enc(v)),
                (lambda v: None if v is None else dec(v)))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            enc, dec = _codec(args[0])

            def decode_items(value):
                if type(value) is not list:
                    _fail("a list", value)
                return tuple(map(dec, value))
            return (lambda v: [enc(x) for x in v]), decode_items
        pairs = [_codec(a) for a in args]

        def decode_fixed(value):
            if type(value) is not list or len(value) != len(pairs):
                _fail(f"a list of {len(pairs)}", value)
            return tuple(dec(x) for (_e, dec), x in zip(pairs, value))
        return (lambda v: [enc(x) for (enc, _d), x in zip(pairs, v)]), decode_fixed
    if dataclasses.is_dataclass(hint):
        shape = _shape(hint)
        return shape.encode, shape.decode
    raise TypeError(f"codec: cannot carry {hint!r}")


class _Shape:
    """How one dataclass is written: its fields, their defaults and codecs."""

    def __init__(self, cls: type):
        self.cls = cls
        hints = typing.get_type_hints(cls)
        self.fields = []
        self.required = []
        # name -> (the scalar type, checked inline; or None and a decoder):
        # a replica decodes tens of thousands of objects at start.
        self.decoders: dict[str, tuple] = {}
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = dataclasses.MISSING
                self.required.append(f.name)
            enc, dec = _codec(hints[f.name])
            self.fields.append((f.name, default, enc))
            scalar = hints[f.name] if hints[f.name] in (str, int, bool) else None
            self.decoders[f.name] = (scalar, dec)

    def encode(self, obj) -> dict:
        out = {}
        for name, default, enc in self.fields:
            value = getattr(obj, name)
            if default is dataclasses.MISSING or value != default:
                out[name] = enc(value)
        return out

    def decode(self, data) -> Any:
        if type(data) is not dict:
            _fail(f"a {self.cls.__name__} object", data)
        values = {}
        decoders = self.decoders
        for name, value in data.items():
            entry = decoders.get(name)
            if entry is None:
                raise CodecError(f"{self.cls.__name__}: unknown field {name!r}")
            scalar, dec = entry
            if scalar is not None and type(value) is scalar:
                values[name] = value
                continue
            try:
                values[name] = dec(value)
            except CodecError as exc:
                raise CodecError(f"{self.cls.__name__} field {name}: {exc}") from None
        for name in self.required:
            if name not in values:
                raise CodecError(f"{self.cls.__name__}: field {name} is missing")
        return self.cls(**values)


_SHAPES: dict[type, _Shape] = {}


def _shape(cls: type) -> _Shape:
    shape = _SHAPES.get(cls)
    if shape is None:
        shape = _SHAPES[cls] = _Shape(cls)
    return shape


def encode(obj) -> bytes:
    """One object of a filled-in cluster as a JSON document (UTF-8)."""
    cls = type(obj)
    if cls.__name__ not in CLASSES:
        raise TypeError(f"codec: not an object of a cluster: {cls.__name__}")
    body = _shape(cls).encode(obj)
    body["kind"] = cls.__name__
    body["v"] = VERSION
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False,
                      sort_keys=True).encode("utf-8")


def decode(raw: bytes) -> Any:
    """The object a document holds; CodecError when it is not one we wrote."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise CodecError(f"not JSON: {exc}") from None
    if type(data) is not dict:
        _fail("a JSON object", data)
    if data.pop("v", None) != VERSION:
        raise CodecError(f"format version is not {VERSION}")
    cls = CLASSES.get(data.pop("kind", None))
    if cls is None:
        raise CodecError(f"kind is not one of {', '.join(CLASSES)}")
    return _shape(cls).decode(data)


# The errors of a publish travel with it (replicas show them as the
# publisher found them): a ManifestError is its five fields.
_ERROR_FIELDS = ("message", "path", "line", "obj", "field")


def encode_error(err) -> dict:
    return {name: getattr(err, name) for name in _ERROR_FIELDS if getattr(err, name)}


def decode_error(data) -> Any:
    from coredns_py.errors import ManifestError
    if type(data) is not dict or type(data.get("message")) is not str:
        _fail("an error object", data)
    line = data.get("line")
    return ManifestError(data["message"], str(data.get("path", "")),
                         line if type(line) is int else None,
                         str(data.get("obj", "")), str(data.get("field", "")))
