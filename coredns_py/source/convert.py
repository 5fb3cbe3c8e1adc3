"""Raw manifest mappings to trimmed objects, with Kubernetes defaults applied.

One function per kind.  Each checks the fields DNS relies on and raises
:class:`ManifestError` naming the object and the field, so the rest of the
code can trust what it gets.  Everything else in a manifest (``status`` of a
dumped Service, ``managedFields``, annotations ...) is ignored.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from typing import Any, Callable, Iterator, Optional

from coredns_py.source import objects as o
from coredns_py.source.selectors import matches
from coredns_py.errors import ManifestError, shown

SERVICE_NAME_LABEL = "kubernetes.io/service-name"

# RFC 1123 label, as the API server validates namespace and Service names.
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Object names for other kinds may be DNS subdomains (dots allowed).
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

WORKLOAD_KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet")


class _Ctx:
    """Names the object being converted in every error."""

    def __init__(self, kind: str, raw: dict, path: str, line: Optional[int]):
        meta = raw.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        self.kind = kind
        self.path = path
        self.line = line
        name = meta.get("name")
        ns = meta.get("namespace")
        self.name = name if isinstance(name, str) else ""
        self.namespace = ns if isinstance(ns, str) and ns else "default"
        if kind == "Namespace":
            self.label = f"Namespace {self.name or '?'}"
        else:
            self.label = f"{kind} {self.namespace}/{self.name or '?'}"

    def error(self, field: str, message: str) -> ManifestError:
        return ManifestError(message, self.path, self.line, self.label, field)

    @property
    def origin(self) -> o.Origin:
        return o.Origin(self.path, self.line)


def _get(ctx: _Ctx, data: Any, field: str, key: str, kind: type | tuple, default: Any = None):
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


def _metadata(ctx: _Ctx, raw: dict, namespaced: bool = True) -> dict:
    meta = _get(ctx, raw, "", "metadata", dict, None)
    if meta is None:
        raise ctx.error("metadata", "missing")
    name = _get(ctx, meta, "metadata", "name", str, "")
    if not name:
        raise ctx.error("metadata.name", "missing")
    pattern = _LABEL if ctx.kind in ("Service", "Namespace") else _SUBDOMAIN
    if len(name) > (63 if pattern is _LABEL else 253) or not pattern.match(name):
        raise ctx.error("metadata.name", f"{shown(name)} is not a valid DNS "
                        f"{'label' if pattern is _LABEL else 'subdomain'} name")
    if namespaced:
        ns = _get(ctx, meta, "metadata", "namespace", str, "default") or "default"
        if len(ns) > 63 or not _LABEL.match(ns):
            raise ctx.error("metadata.namespace", f"{shown(ns)} is not a valid namespace name")
    return meta


def _string_map(ctx: _Ctx, data: Any, field: str) -> tuple[tuple[str, str], ...]:
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
        out.append((key, value if isinstance(value, str) else _yaml_text(value)))
    return tuple(sorted(out))


def _yaml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _ip(ctx: _Ctx, value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ctx.error(field, f"expected an IP address, got {shown(value)}")
    if o.is_dotted_quad(value):
        return value  # canonical already
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ctx.error(field, f"{shown(value)} is not an IP address") from None


def _port_number(ctx: _Ctx, value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ctx.error(field, f"expected a port number, got {shown(value)}")
    if not 1 <= value <= 65535:
        raise ctx.error(field, f"port {value} is out of range 1-65535")
    return value


def _protocol(ctx: _Ctx, data: dict, field: str) -> str:
    proto = _get(ctx, data, field, "protocol", str, "TCP") or "TCP"
    if proto not in o.PROTOCOLS:
        raise ctx.error(f"{field}.protocol", f"{shown(proto)} is not one of TCP, UDP, SCTP")
    return proto


def _list(ctx: _Ctx, data: Any, field: str, key: str) -> list:
    return _get(ctx, data, field, key, list, []) if data is not None else []


def _mappings(ctx: _Ctx, data: Any, field: str, key: str) -> Iterator[tuple[str, dict]]:
    """``(field path, item)`` for each item of the list ``data[key]``, every
    item a mapping (``spec.ports[0]`` ...)."""
    prefix = f"{field}.{key}" if field else key
    for i, item in enumerate(_list(ctx, data, field, key)):
        path = f"{prefix}[{i}]"
        if not isinstance(item, dict):
            raise ctx.error(path, "expected a mapping")
        yield path, item


# --- Service ---------------------------------------------------------------

def service(ctx: _Ctx, raw: dict) -> o.Service:
    _metadata(ctx, raw)
    spec = _get(ctx, raw, "", "spec", dict, {})
    stype = _get(ctx, spec, "spec", "type", str, o.CLUSTER_IP) or o.CLUSTER_IP
    if stype not in o.SERVICE_TYPES:
        raise ctx.error("spec.type", f"{shown(stype)} is not one of {', '.join(o.SERVICE_TYPES)}")

    ports = []
    seen = set()
    for field, item in _mappings(ctx, spec, "spec", "ports"):
        port = _port_number(ctx, item.get("port"), f"{field}.port")
        name = _get(ctx, item, field, "name", str, "")
        proto = _protocol(ctx, item, field)
        target = item.get("targetPort")
        if target is not None:
            if isinstance(target, bool) or not isinstance(target, (int, str)):
                raise ctx.error(f"{field}.targetPort", f"expected a number or a port name, "
                                f"got {shown(target)}")
            if isinstance(target, str) and target.isdigit():
                target = int(target)
            if isinstance(target, int):
                _port_number(ctx, target, f"{field}.targetPort")
        node_port = item.get("nodePort")
        if node_port is not None:
            node_port = _port_number(ctx, node_port, f"{field}.nodePort")
        if (port, proto) in seen:
            raise ctx.error(f"{field}.port", f"duplicate port {port}/{proto}")
        seen.add((port, proto))
        ports.append(o.ServicePort(name=name, port=port, protocol=proto, target_port=target,
                                   node_port=node_port or 0))

    if stype == o.EXTERNAL_NAME:
        ext = _get(ctx, spec, "spec", "externalName", str, "")
        if not ext:
            raise ctx.error("spec.externalName", "missing (required for type ExternalName)")
        return o.Service(ctx.namespace, ctx.name, stype, (), tuple(ports),
                         external_name=ext.rstrip(".").lower(), origin=ctx.origin)

    cluster_ip = _get(ctx, spec, "spec", "clusterIP", str, "")
    cluster_ips = [v for v in _list(ctx, spec, "spec", "clusterIPs")]
    if cluster_ip and not cluster_ips:
        cluster_ips = [cluster_ip]
    parsed = []
    for i, value in enumerate(cluster_ips):
        field = f"spec.clusterIPs[{i}]" if spec.get("clusterIPs") else "spec.clusterIP"
        if value == o.HEADLESS:
            if i:
                raise ctx.error(field, "'None' may only be the only clusterIP")
            parsed.append(o.HEADLESS)
        elif value == "" and i == 0:
            break
        else:
            parsed.append(_ip(ctx, value, field))
    if cluster_ip and parsed and cluster_ip != parsed[0] and (
            cluster_ip == o.HEADLESS or _ip(ctx, cluster_ip, "spec.clusterIP") != parsed[0]):
        raise ctx.error("spec.clusterIP", f"{cluster_ip} differs from clusterIPs[0] {parsed[0]}")
    # parsed holds canonical text, whose family o.family() tells without parsing again.
    if len({o.family(a) for a in parsed if a != o.HEADLESS}) < len(
            [a for a in parsed if a != o.HEADLESS]):
        raise ctx.error("spec.clusterIPs", "at most one address per IP family")

    selector = _string_map(ctx, spec.get("selector"), "spec.selector") or None
    families = _list(ctx, spec, "spec", "ipFamilies")
    for i, fam in enumerate(families):
        if fam not in ("IPv4", "IPv6"):
            raise ctx.error(f"spec.ipFamilies[{i}]", f"{shown(fam)} is not IPv4 or IPv6")
    policy = _get(ctx, spec, "spec", "ipFamilyPolicy", str, "")
    if policy not in ("", "SingleStack", "PreferDualStack", "RequireDualStack"):
        raise ctx.error("spec.ipFamilyPolicy", f"{shown(policy)} is not SingleStack, "
                        "PreferDualStack or RequireDualStack")
    return o.Service(
        ctx.namespace, ctx.name, stype, tuple(parsed), tuple(ports),
        selector=selector,
        publish_not_ready=bool(_get(ctx, spec, "spec", "publishNotReadyAddresses", bool, False)),
        ip_families=tuple(families), ip_family_policy=policy, origin=ctx.origin)


# --- EndpointSlice and Endpoints --------------------------------------------

def _endpoint_ports(ctx: _Ctx, data: dict, field: str) -> tuple[o.EndpointPort, ...]:
    """The ``ports`` of an EndpointSlice or of an Endpoints subset."""
    return tuple(o.EndpointPort(name=_get(ctx, item, f, "name", str, ""),
                                port=_port_number(ctx, item.get("port"), f"{f}.port"),
                                protocol=_protocol(ctx, item, f))
                 for f, item in _mappings(ctx, data, field, "ports"))


def _target_pod(ctx: _Ctx, item: dict, field: str) -> str:
    ref = _get(ctx, item, field, "targetRef", dict, {})
    kind = _get(ctx, ref, f"{field}.targetRef", "kind", str, "")
    name = _get(ctx, ref, f"{field}.targetRef", "name", str, "")
    return name if kind in ("Pod", "") else ""


def endpoint_slice(ctx: _Ctx, raw: dict) -> Optional[o.EndpointSlice]:
    meta = _metadata(ctx, raw)
    labels = dict(_string_map(ctx, meta.get("labels"), "metadata.labels"))
    addr_type = _get(ctx, raw, "", "addressType", str, "IPv4")
    if addr_type == "FQDN":
        return None  # deprecated; CoreDNS cannot serve them either
    if addr_type not in ("IPv4", "IPv6"):
        raise ctx.error("addressType", f"{shown(addr_type)} is not IPv4, IPv6 or FQDN")
    endpoints = []
    for f, item in _mappings(ctx, raw, "", "endpoints"):
        addrs = tuple(_ip(ctx, a, f"{f}.addresses[{j}]")
                      for j, a in enumerate(_list(ctx, item, f, "addresses")))
        conditions = _get(ctx, item, f, "conditions", dict, {})
        # A missing ready condition means "unknown", which consumers treat as ready.
        ready = _get(ctx, conditions, f"{f}.conditions", "ready", bool, True)
        endpoints.append(o.Endpoint(
            addresses=addrs, ready=ready,
            hostname=_get(ctx, item, f, "hostname", str, ""),
            target_pod=_target_pod(ctx, item, f),
            node_name=_get(ctx, item, f, "nodeName", str, "")))
    return o.EndpointSlice(ctx.namespace, ctx.name, labels.get(SERVICE_NAME_LABEL, ""),
                           tuple(endpoints), _endpoint_ports(ctx, raw, ""), origin=ctx.origin)


def endpoints(ctx: _Ctx, raw: dict) -> list[o.EndpointSlice]:
    """v1 Endpoints become the slices the mirroring controller would write:
    ``addresses`` ready, ``notReadyAddresses`` not ready, one slice per subset."""
    _metadata(ctx, raw)
    out = []
    for s, (f, subset) in enumerate(_mappings(ctx, raw, "", "subsets")):
        eps = []
        for key, ready in (("addresses", True), ("notReadyAddresses", False)):
            for g, item in _mappings(ctx, subset, f, key):
                eps.append(o.Endpoint(
                    addresses=(_ip(ctx, item.get("ip"), f"{g}.ip"),), ready=ready,
                    hostname=_get(ctx, item, g, "hostname", str, ""),
                    target_pod=_target_pod(ctx, item, g),
                    node_name=_get(ctx, item, g, "nodeName", str, "")))
        out.append(o.EndpointSlice(ctx.namespace, f"{ctx.name}-mirror-{s}", ctx.name,
                                   tuple(eps), _endpoint_ports(ctx, subset, f),
                                   mirrored=True, origin=ctx.origin))
    return out


# --- Pods and the workloads that make them -----------------------------------

def _container_ports(ctx: _Ctx, pod_spec: dict, field: str) -> tuple[o.ContainerPort, ...]:
    out = []
    for f, container in _mappings(ctx, pod_spec, field, "containers"):
        for g, item in _mappings(ctx, container, f, "ports"):
            out.append(o.ContainerPort(
                name=_get(ctx, item, g, "name", str, ""),
                container_port=_port_number(ctx, item.get("containerPort"), f"{g}.containerPort"),
                protocol=_protocol(ctx, item, g)))
    return tuple(out)


def pod(ctx: _Ctx, raw: dict) -> o.Pod:
    meta = _metadata(ctx, raw)
    spec = _get(ctx, raw, "", "spec", dict, {})
    status = _get(ctx, raw, "", "status", dict, {})
    ips = [item.get("ip") if isinstance(item, dict) else item
           for item in _list(ctx, status, "status", "podIPs")]
    primary = _get(ctx, status, "status", "podIP", str, "")
    if primary and not ips:
        ips = [primary]
    ips = tuple(_ip(ctx, ip, f"status.podIPs[{i}].ip") for i, ip in enumerate(ips))
    # A manifest with no status is a pod about to start: it runs and is ready.
    phase = _get(ctx, status, "status", "phase", str, "Running") or "Running"
    ready = True
    for i, cond in enumerate(_list(ctx, status, "status", "conditions")):
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            ready = str(cond.get("status")) == "True"
    return o.Pod(
        ctx.namespace, ctx.name,
        labels=_string_map(ctx, meta.get("labels"), "metadata.labels"),
        ips=ips, phase=phase, terminating=meta.get("deletionTimestamp") is not None,
        ready=ready and phase == "Running",
        hostname=_get(ctx, spec, "spec", "hostname", str, ""),
        subdomain=_get(ctx, spec, "spec", "subdomain", str, ""),
        ports=_container_ports(ctx, spec, "spec"), origin=ctx.origin)


# The alphabet Kubernetes uses for generated names (k8s.io/apimachinery rand.SafeEncodeString).
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def safe_hash(text: str, length: int) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in digest[:length])


def workload(ctx: _Ctx, raw: dict) -> o.Workload:
    _metadata(ctx, raw)
    spec = _get(ctx, raw, "", "spec", dict, {})
    if ctx.kind == "DaemonSet":
        replicas = 1  # one node: one pod
    else:
        replicas = _get(ctx, spec, "spec", "replicas", int, 1)
        if replicas < 0:
            raise ctx.error("spec.replicas", f"must not be negative, got {replicas}")
    selector = _get(ctx, spec, "spec", "selector", dict, {})
    match_labels = _string_map(ctx, selector.get("matchLabels"), "spec.selector.matchLabels")
    exprs = []
    for f, item in _mappings(ctx, selector, "spec.selector", "matchExpressions"):
        key = _get(ctx, item, f, "key", str, "")
        op = _get(ctx, item, f, "operator", str, "")
        if not key:
            raise ctx.error(f"{f}.key", "missing")
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ctx.error(f"{f}.operator", f"{shown(op)} is not In, NotIn, Exists or DoesNotExist")
        values = tuple(_yaml_text(v) for v in _list(ctx, item, f, "values"))
        exprs.append(o.LabelRequirement(key, op, values))
    template = _get(ctx, spec, "spec", "template", dict, {})
    tmeta = _get(ctx, template, "spec.template", "metadata", dict, {})
    tspec = _get(ctx, template, "spec.template", "spec", dict, {})
    labels = _string_map(ctx, tmeta.get("labels"), "spec.template.metadata.labels")
    wl = o.Workload(
        kind=ctx.kind, namespace=ctx.namespace, name=ctx.name, replicas=replicas,
        match_labels=match_labels, match_expressions=tuple(exprs), template_labels=labels,
        template_hostname=_get(ctx, tspec, "spec.template.spec", "hostname", str, ""),
        template_subdomain=_get(ctx, tspec, "spec.template.spec", "subdomain", str, ""),
        ports=_container_ports(ctx, tspec, "spec.template.spec"),
        service_name=_get(ctx, spec, "spec", "serviceName", str, ""),
        # pod-template-hash: a stable digest of the template, so that changing
        # only the replica count keeps the pods' names (and so their IPs).
        template_hash=safe_hash(json.dumps(template, sort_keys=True, default=str), 10),
        origin=ctx.origin)
    if (match_labels or exprs) and not matches(wl.match_labels, wl.match_expressions, labels):
        raise ctx.error("spec.selector", "does not match spec.template.metadata.labels")
    return wl


def namespace(ctx: _Ctx, raw: dict) -> o.Namespace:
    _metadata(ctx, raw, namespaced=False)
    return o.Namespace(ctx.name, origin=ctx.origin)


_CONVERTERS: dict[str, Callable] = {
    "Service": service,
    "EndpointSlice": endpoint_slice,
    "Endpoints": endpoints,
    "Pod": pod,
    "Namespace": namespace,
    **{kind: workload for kind in WORKLOAD_KINDS},
}

# apiVersions we understand per kind; other versions of these kinds are errors
# rather than silently misread.
_API_VERSIONS = {
    "Service": ("v1",), "Endpoints": ("v1",), "Pod": ("v1",), "Namespace": ("v1",),
    "EndpointSlice": ("discovery.k8s.io/v1",),
    **{kind: ("apps/v1",) for kind in WORKLOAD_KINDS},
}


def convert(raw: Any, path: str, line: Optional[int]) -> list:
    """One manifest document to zero or more trimmed objects.

    Kinds we do not serve (ConfigMap, Ingress ...) give nothing: they are
    normal in a real folder.
    """
    if not isinstance(raw, dict):
        raise ManifestError(f"expected a Kubernetes object (a mapping), got "
                            f"{type(raw).__name__}", path, line)
    kind = raw.get("kind")
    if kind is None:
        if "apiVersion" in raw or "metadata" in raw:
            raise ManifestError("missing kind", path, line, field="kind")
        return []  # some other YAML file (a values.yaml, a config): not a manifest
    if not isinstance(kind, str):
        raise ManifestError(f"expected a string, got {shown(kind)}", path, line, field="kind")
    converter = _CONVERTERS.get(kind)
    if converter is None:
        return []
    ctx = _Ctx(kind, raw, path, line)
    api = raw.get("apiVersion")
    if api not in _API_VERSIONS[kind]:
        raise ctx.error("apiVersion", f"{shown(api)} is not supported for {kind} "
                        f"(expected {' or '.join(_API_VERSIONS[kind])})")
    result = converter(ctx, raw)
    if result is None:
        return []
    return result if isinstance(result, list) else [result]
