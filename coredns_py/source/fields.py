"""Reading a manifest's fields: each reader checks a type or a format and
raises ManifestError naming the file, the object (``Kind namespace/name``)
and the field, in the API server's words where it has them (:mod:`.validation`)."""

from __future__ import annotations

import ipaddress
from typing import Any, Iterator, Optional

from coredns_py.errors import ManifestError, shown
from coredns_py.source import objects as o
from coredns_py.source import validation as v
from coredns_py.source.namespaces import DEFAULT_PLACEMENT, Placement


class Ctx:
    """Names the object being converted in every error."""

    def __init__(self, kind: str, raw: dict, path: str, line: Optional[int],
                 placement: Placement = DEFAULT_PLACEMENT):
        meta = raw.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        self.kind = kind
        self.path = path
        self.line = line
        name = meta.get("name")
        self.name = name if isinstance(name, str) else ""
        self.named_namespace = meta.get("namespace")
        self.namespace = placement.namespace(self.named_namespace)
        if kind == "Namespace":
            self.label = f"Namespace {self.name or '?'}"
        else:
            self.label = f"{kind} {self.namespace}/{self.name or '?'}"

    def error(self, field: str, message: str) -> ManifestError:
        return ManifestError(message, self.path, self.line, self.label, field)

    def check(self, field: str, value: Any, problems: list[str]) -> None:
        """Raise the API server's ``Invalid value`` for ``value`` if a check found problems."""
        if problems:
            raise self.error(field, v.invalid(value, "; ".join(problems)))

    @property
    def origin(self) -> o.Origin:
        return o.Origin(self.path, self.line)


def get(ctx: Ctx, data: Any, field: str, key: str, kind: type | tuple, default: Any = None):
    """data[key] checked against a type; missing or null gives the default."""
    if not isinstance(data, dict):
        raise ctx.error(field, "expected a mapping")
    value = data.get(key)
    if value is None:
        return default
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        words = {"dict": "mapping", "list": "list", "str": "string", "int": "integer",
                 "bool": "boolean"}
        expected = "/".join(words.get(n, n) for n in names.split("/"))
        raise ctx.error(f"{field}.{key}" if field else key,
                        f"expected {expected}, got {shown(value)}")
    return value


def metadata(ctx: Ctx, raw: dict, namespaced: bool = True) -> dict:
    """metadata.name (and namespace), as ValidateObjectMeta checks them."""
    meta = get(ctx, raw, "", "metadata", dict, None)
    if meta is None:
        raise ctx.error("metadata", v.required())
    name = get(ctx, meta, "metadata", "name", str, "")
    if not name:
        if get(ctx, meta, "metadata", "generateName", str, ""):
            # The API server makes the name up when it creates the object:
            # nobody can know the DNS name in advance.
            raise ctx.error("metadata.name", v.required(
                "generateName is not supported here: the name is only known once a cluster "
                "creates the object"))
        raise ctx.error("metadata.name", v.required("name or generateName is required"))
    # Service names become DNS labels and env variable prefixes (DNS-1035:
    # they start with a letter); namespaces are DNS labels; other names are
    # DNS subdomains.
    check = {"Service": v.dns1035_label, "Namespace": v.dns1123_label}.get(
        ctx.kind, v.dns1123_subdomain)
    ctx.check("metadata.name", name, check(name))
    if namespaced:
        ns = ctx.namespace
        if ctx.named_namespace is not None and not isinstance(ctx.named_namespace, str):
            raise ctx.error("metadata.namespace",
                            f"expected string, got {shown(ctx.named_namespace)}")
        ctx.check("metadata.namespace", ns, v.dns1123_label(ns))
    return meta


def string_map(ctx: Ctx, data: Any, field: str, labels: bool = True
                ) -> tuple[tuple[str, str], ...]:
    """A map of strings (labels, a selector); ``labels``: keys and values
    checked as the API server checks labels (ValidateLabels)."""
    if data is None:
        return ()
    if not isinstance(data, dict):
        raise ctx.error(field, f"expected a mapping of strings, got {shown(data)}")
    out = []
    for key, value in data.items():
        if not isinstance(key, str) or isinstance(value, (dict, list)) or value is None:
            raise ctx.error(f"{field}.{key}", f"expected a string, got {shown(value)}")
        # YAML turns `tier: 1` or `enabled: true` into non-strings; the API
        # server would reject them, but users mean the text.
        text = value if isinstance(value, str) else yaml_text(value)
        if labels:
            ctx.check(field, key, v.label_key(key))
            ctx.check(field, text, v.label_value(text))
        out.append((key, text))
    return tuple(sorted(out))


def yaml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


IP_EXAMPLE = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"


def ip(ctx: Ctx, value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ctx.error(field, f"expected an IP address, got {shown(value)}")
    if o.is_dotted_quad(value):
        return value  # canonical already
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ctx.error(field, v.invalid(value, IP_EXAMPLE)) from None


def port_number(ctx: Ctx, value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ctx.error(field, f"expected a port number, got {shown(value)}")
    ctx.check(field, value, v.port_number(value))
    return value


def protocol(ctx: Ctx, data: dict, field: str) -> str:
    proto = get(ctx, data, field, "protocol", str, "TCP") or "TCP"
    if proto not in o.PROTOCOLS:
        raise ctx.error(f"{field}.protocol", v.not_supported(proto, sorted(o.PROTOCOLS)))
    return proto


def dns_label(ctx: Ctx, data: dict, field: str, key: str) -> str:
    """An optional DNS-1123 label (a hostname, a subdomain, a port name)."""
    value = get(ctx, data, field, key, str, "")
    if value:
        ctx.check(f"{field}.{key}" if field else key, value, v.dns1123_label(value))
    return value


def list_of(ctx: Ctx, data: Any, field: str, key: str) -> list:
    return get(ctx, data, field, key, list, []) if data is not None else []


def mappings(ctx: Ctx, data: Any, field: str, key: str) -> Iterator[tuple[str, dict]]:
    """``(field path, item)`` for each item of the list ``data[key]``, every
    item a mapping (``spec.ports[0]`` ...)."""
    prefix = f"{field}.{key}" if field else key
    for i, item in enumerate(list_of(ctx, data, field, key)):
        path = f"{prefix}[{i}]"
        if not isinstance(item, dict):
            raise ctx.error(path, "expected a mapping")
        yield path, item
