"""Raw manifest mappings to trimmed objects, with Kubernetes defaults applied.

One function per kind.  Each checks the fields we read as the API server
validates them (:mod:`.validation`, with its wording) and raises
:class:`ManifestError` naming the object and the field, so the rest of the
code can trust what it gets; the first problem of an object is reported.
Everything else in a manifest (a dumped Service's ``status`` but its load
balancer's ingress, ``managedFields``, annotations ...) is ignored.

:func:`ignored` says first what a document is: an object of a kind we serve,
another kind (counted, not served), no Kubernetes object at all (a
``values.yaml``: counted), or something the API server would refuse outright
(no ``kind``, a ``kind`` that is a typo of ours).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from typing import Any, Callable, Iterator, Optional

from coredns_py.source import Ignored, objects as o
from coredns_py.source import validation as v
from coredns_py.source.namespaces import DEFAULT_PLACEMENT, Placement
from coredns_py.source.selectors import matches
from coredns_py.errors import ManifestError, shown

SERVICE_NAME_LABEL = "kubernetes.io/service-name"

WORKLOAD_KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet")


class _Ctx:
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
    """metadata.name (and namespace), as ValidateObjectMeta checks them."""
    meta = _get(ctx, raw, "", "metadata", dict, None)
    if meta is None:
        raise ctx.error("metadata", v.required())
    name = _get(ctx, meta, "metadata", "name", str, "")
    if not name:
        if _get(ctx, meta, "metadata", "generateName", str, ""):
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


def _string_map(ctx: _Ctx, data: Any, field: str, labels: bool = True
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
        text = value if isinstance(value, str) else _yaml_text(value)
        if labels:
            ctx.check(field, key, v.label_key(key))
            ctx.check(field, text, v.label_value(text))
        out.append((key, text))
    return tuple(sorted(out))


def _yaml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_IP_EXAMPLE = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"


def _ip(ctx: _Ctx, value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise ctx.error(field, f"expected an IP address, got {shown(value)}")
    if o.is_dotted_quad(value):
        return value  # canonical already
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ctx.error(field, v.invalid(value, _IP_EXAMPLE)) from None


def _port_number(ctx: _Ctx, value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ctx.error(field, f"expected a port number, got {shown(value)}")
    ctx.check(field, value, v.port_number(value))
    return value


def _protocol(ctx: _Ctx, data: dict, field: str) -> str:
    proto = _get(ctx, data, field, "protocol", str, "TCP") or "TCP"
    if proto not in o.PROTOCOLS:
        raise ctx.error(f"{field}.protocol", v.not_supported(proto, sorted(o.PROTOCOLS)))
    return proto


def _label(ctx: _Ctx, data: dict, field: str, key: str) -> str:
    """An optional DNS-1123 label (a hostname, a subdomain, a port name)."""
    value = _get(ctx, data, field, key, str, "")
    if value:
        ctx.check(f"{field}.{key}" if field else key, value, v.dns1123_label(value))
    return value


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

def _target_port(ctx: _Ctx, item: dict, field: str) -> int | str | None:
    """targetPort: a number, or the name of a container port (an IANA
    service name). A quoted number is a name to the API server, and an invalid one."""
    target = item.get("targetPort")
    if target is None or target == 0:  # 0 is defaulted to the port
        return None
    if isinstance(target, bool) or not isinstance(target, (int, str)):
        raise ctx.error(f"{field}.targetPort", f"expected a number or a port name, "
                        f"got {shown(target)}")
    if isinstance(target, int):
        return _port_number(ctx, target, f"{field}.targetPort")
    ctx.check(f"{field}.targetPort", target, v.port_name(target))
    return target


def _service_ports(ctx: _Ctx, spec: dict, stype: str) -> list[o.ServicePort]:
    """spec.ports as validateServicePort and ValidateService check them."""
    items = list(_mappings(ctx, spec, "spec", "ports"))
    ports = []
    names: set[str] = set()
    seen: set[tuple[int, str]] = set()
    node_ports: set[tuple[int, str]] = set()
    for field, item in items:
        name = _get(ctx, item, field, "name", str, "")
        if not name and len(items) > 1:
            # With several ports, SRV records and endpoints need to tell them apart.
            raise ctx.error(f"{field}.name", v.required())
        if name:
            ctx.check(f"{field}.name", name, v.dns1123_label(name))
            if name in names:
                raise ctx.error(f"{field}.name", v.duplicate(name))
            names.add(name)
        port = _port_number(ctx, item.get("port"), f"{field}.port")
        proto = _protocol(ctx, item, field)
        target = _target_port(ctx, item, field)
        node_port = item.get("nodePort")
        if node_port is not None and node_port != 0:
            node_port = _port_number(ctx, node_port, f"{field}.nodePort")
            if stype == o.CLUSTER_IP:
                raise ctx.error(f"{field}.nodePort",
                                v.forbidden("may not be used when `type` is 'ClusterIP'"))
            if (node_port, proto) in node_ports:
                raise ctx.error(f"{field}.nodePort", v.duplicate(node_port))
            node_ports.add((node_port, proto))
        if (port, proto) in seen:
            raise ctx.error(field, f"Duplicate value: {port}/{proto}")
        seen.add((port, proto))
        ports.append(o.ServicePort(name=name, port=port, protocol=proto, target_port=target,
                                   node_port=node_port or 0))
    return ports


def _cluster_ips(ctx: _Ctx, spec: dict, stype: str) -> list[str]:
    """spec.clusterIP and spec.clusterIPs as ValidateServiceClusterIPsRelatedFields
    checks them; canonical text, primary first ('None' when headless)."""
    cluster_ip = _get(ctx, spec, "spec", "clusterIP", str, "")
    given = _list(ctx, spec, "spec", "clusterIPs")
    if stype == o.EXTERNAL_NAME:
        for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if spec.get(key) not in (None, "", []):
                raise ctx.error(f"spec.{key}",
                                v.forbidden("may not be set for ExternalName services"))
        return []
    if cluster_ip:
        if given and given[0] != cluster_ip:
            raise ctx.error("spec.clusterIPs", v.invalid(
                given, "first value must match `clusterIP`"))
        given = given or [cluster_ip]
    elif given:
        raise ctx.error("spec.clusterIPs", v.invalid(
            given, "must be empty when `clusterIP` is not specified"))
    if len(given) > 2:
        raise ctx.error("spec.clusterIPs", v.invalid(given,
                                                     "may only hold up to 2 values"))
    parsed = []
    for i, value in enumerate(given):
        field = f"spec.clusterIPs[{i}]" if spec.get("clusterIPs") else "spec.clusterIP"
        if value == o.HEADLESS:
            if i or len(given) > 1:
                raise ctx.error("spec.clusterIPs", v.invalid(
                    given, "'None' must be the first and only value"))
            if stype in (o.NODE_PORT, o.LOAD_BALANCER):
                raise ctx.error(field, v.invalid(
                    value, f"may not be set to 'None' for {stype} services"))
            parsed.append(o.HEADLESS)
        else:
            parsed.append(_ip(ctx, value, field))
    # parsed holds canonical text, whose family o.family() tells without parsing again.
    if len(parsed) == 2 and o.family(parsed[0]) == o.family(parsed[1]):
        raise ctx.error("spec.clusterIPs", v.invalid(
            given, "may specify no more than one IP for each IP family"))
    return parsed


def _ip_families(ctx: _Ctx, spec: dict, parsed: list[str]) -> tuple[list[str], str]:
    families = _list(ctx, spec, "spec", "ipFamilies")
    for i, fam in enumerate(families):
        if fam not in ("IPv4", "IPv6"):
            raise ctx.error(f"spec.ipFamilies[{i}]", v.not_supported(fam, ("IPv4", "IPv6")))
        if fam in families[:i]:
            raise ctx.error(f"spec.ipFamilies[{i}]", v.duplicate(fam))
    policies = ("PreferDualStack", "RequireDualStack", "SingleStack")
    policy = _get(ctx, spec, "spec", "ipFamilyPolicy", str, "")
    if policy and policy not in policies:
        raise ctx.error("spec.ipFamilyPolicy", v.not_supported(policy, policies))
    if policy == "SingleStack" or not policy and families:
        for what, count in (("IP families", len(families)), ("cluster IPs", len(parsed))):
            if count > 1:
                why = (f"must be 'RequireDualStack' or 'PreferDualStack' when multiple {what} "
                       "are specified")
                raise ctx.error("spec.ipFamilyPolicy",
                                v.invalid(policy, why) if policy else v.required(why))
    if parsed[:1] != [o.HEADLESS]:
        for i, (ip, fam) in enumerate(zip(parsed, families)):
            if o.family(ip) != (4 if fam == "IPv4" else 6):
                raise ctx.error(f"spec.clusterIPs[{i}]", v.invalid(
                    ip, f"expected an {fam} value as indicated by `ipFamilies[{i}]`"))
    return families, policy


def _load_balancer(ctx: _Ctx, raw: dict) -> tuple[str, ...]:
    """status.loadBalancer.ingress: each entry's ip, or its hostname (what
    k8s_external answers and `get services` shows)."""
    status = _get(ctx, raw, "", "status", dict, {})
    lb = _get(ctx, status, "status", "loadBalancer", dict, {})
    out = []
    for f, item in _mappings(ctx, lb, "status.loadBalancer", "ingress"):
        if item.get("ip"):
            out.append(_ip(ctx, item["ip"], f"{f}.ip"))
            continue
        host = _get(ctx, item, f, "hostname", str, "")
        host = host[:-1] if host.endswith(".") else host
        if not host:
            raise ctx.error(f"{f}.hostname", v.required("an entry needs an ip or a hostname"))
        ctx.check(f"{f}.hostname", host, v.dns1123_subdomain(host))
        out.append(host)
    return tuple(out)


def service(ctx: _Ctx, raw: dict) -> o.Service:
    """A Service, checked as ValidateService does."""
    labels = _string_map(ctx, _metadata(ctx, raw).get("labels"), "metadata.labels")
    spec = _get(ctx, raw, "", "spec", dict, {})
    external_ips = tuple(_ip(ctx, value, f"spec.externalIPs[{i}]")
                         for i, value in enumerate(_list(ctx, spec, "spec", "externalIPs")))
    ingress = _load_balancer(ctx, raw)
    stype = _get(ctx, spec, "spec", "type", str, o.CLUSTER_IP) or o.CLUSTER_IP
    if stype not in o.SERVICE_TYPES:
        raise ctx.error("spec.type", v.not_supported(stype, sorted(o.SERVICE_TYPES)))
    parsed = _cluster_ips(ctx, spec, stype)
    ports = _service_ports(ctx, spec, stype)
    if not ports and stype != o.EXTERNAL_NAME and parsed[:1] != [o.HEADLESS]:
        raise ctx.error("spec.ports", v.required())
    selector = _string_map(ctx, spec.get("selector"), "spec.selector") or None

    if stype == o.EXTERNAL_NAME:
        ext = _get(ctx, spec, "spec", "externalName", str, "")
        # A trailing dot only marks the name fully qualified.
        clean = ext[:-1] if ext.endswith(".") else ext
        if not clean:
            raise ctx.error("spec.externalName", v.required())
        ctx.check("spec.externalName", clean, v.dns1123_subdomain(clean))
        return o.Service(ctx.namespace, ctx.name, stype, (), tuple(ports),
                         external_name=clean, origin=ctx.origin, labels=labels,
                         external_ips=external_ips, ingress=ingress)

    families, policy = _ip_families(ctx, spec, parsed)
    allocate_node_ports = _get(ctx, spec, "spec", "allocateLoadBalancerNodePorts", bool, None)
    if allocate_node_ports is not None and stype != o.LOAD_BALANCER:
        raise ctx.error("spec.allocateLoadBalancerNodePorts",
                        v.forbidden("may only be used when `type` is 'LoadBalancer'"))
    return o.Service(
        ctx.namespace, ctx.name, stype, tuple(parsed), tuple(ports),
        selector=selector,
        publish_not_ready=bool(_get(ctx, spec, "spec", "publishNotReadyAddresses", bool, False)),
        ip_families=tuple(families), ip_family_policy=policy,
        allocate_node_ports=allocate_node_ports is not False, origin=ctx.origin,
        labels=labels, external_ips=external_ips, ingress=ingress)


# --- EndpointSlice and Endpoints --------------------------------------------

def _endpoint_ports(ctx: _Ctx, data: dict, field: str, require_names: bool = False
                    ) -> tuple[o.EndpointPort, ...]:
    """The ``ports`` of an EndpointSlice or of an Endpoints subset."""
    items = list(_mappings(ctx, data, field, "ports"))
    names: set[str] = set()
    out = []
    for f, item in items:
        name = _label(ctx, item, f, "name")
        if not name and require_names and len(items) > 1:
            raise ctx.error(f"{f}.name", v.required())
        if name in names:
            raise ctx.error(f"{f}.name", v.duplicate(name))
        names.add(name)
        out.append(o.EndpointPort(name=name, port=_port_number(ctx, item.get("port"), f"{f}.port"),
                                  protocol=_protocol(ctx, item, f)))
    return tuple(out)


def _target_pod(ctx: _Ctx, item: dict, field: str) -> str:
    ref = _get(ctx, item, field, "targetRef", dict, {})
    kind = _get(ctx, ref, f"{field}.targetRef", "kind", str, "")
    name = _get(ctx, ref, f"{field}.targetRef", "name", str, "")
    return name if kind in ("Pod", "") else ""


def _node_name(ctx: _Ctx, item: dict, field: str) -> str:
    name = _get(ctx, item, field, "nodeName", str, "")
    if name:
        ctx.check(f"{field}.nodeName", name, v.dns1123_subdomain(name))
    return name


# EndpointSlice address types (discovery validation's supportedAddressTypes).
ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")


def endpoint_slice(ctx: _Ctx, raw: dict) -> Optional[o.EndpointSlice]:
    meta = _metadata(ctx, raw)
    labels = dict(_string_map(ctx, meta.get("labels"), "metadata.labels"))
    addr_type = _get(ctx, raw, "", "addressType", str, "")
    if not addr_type:
        raise ctx.error("addressType", v.required())
    if addr_type not in ADDRESS_TYPES:
        raise ctx.error("addressType", v.not_supported(addr_type, ADDRESS_TYPES))
    if addr_type == "FQDN":
        return None  # deprecated; CoreDNS cannot serve them either
    family = 4 if addr_type == "IPv4" else 6
    endpoints = []
    for f, item in _mappings(ctx, raw, "", "endpoints"):
        addresses = _list(ctx, item, f, "addresses")
        if not addresses:
            raise ctx.error(f"{f}.addresses", v.required("must contain at least 1 address"))
        addrs = []
        for j, a in enumerate(addresses):
            ip = _ip(ctx, a, f"{f}.addresses[{j}]")
            if o.family(ip) != family:
                raise ctx.error(f"{f}.addresses[{j}]",
                                v.invalid(a, f"must be a valid {addr_type} address"))
            addrs.append(ip)
        conditions = _get(ctx, item, f, "conditions", dict, {})
        # A missing ready condition means "unknown", which consumers treat as ready.
        ready = _get(ctx, conditions, f"{f}.conditions", "ready", bool, True)
        endpoints.append(o.Endpoint(
            addresses=tuple(addrs), ready=ready,
            hostname=_label(ctx, item, f, "hostname"),
            target_pod=_target_pod(ctx, item, f),
            node_name=_node_name(ctx, item, f)))
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
                    hostname=_label(ctx, item, g, "hostname"),
                    target_pod=_target_pod(ctx, item, g),
                    node_name=_node_name(ctx, item, g)))
        out.append(o.EndpointSlice(ctx.namespace, f"{ctx.name}-mirror-{s}", ctx.name,
                                   tuple(eps), _endpoint_ports(ctx, subset, f, True),
                                   mirrored=True, origin=ctx.origin))
    return out


# --- Pods and the workloads that make them -----------------------------------

def _container_ports(ctx: _Ctx, pod_spec: dict, field: str) -> tuple[o.ContainerPort, ...]:
    out = []
    for f, container in _mappings(ctx, pod_spec, field, "containers"):
        names: set[str] = set()
        for g, item in _mappings(ctx, container, f, "ports"):
            name = _get(ctx, item, g, "name", str, "")
            if name:
                # A named targetPort refers to it: an IANA service name.
                ctx.check(f"{g}.name", name, v.port_name(name))
                if name in names:
                    raise ctx.error(f"{g}.name", v.duplicate(name))
                names.add(name)
            if item.get("containerPort") in (None, 0):
                raise ctx.error(f"{g}.containerPort", v.required())
            out.append(o.ContainerPort(
                name=name,
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
        hostname=_label(ctx, spec, "spec", "hostname"),
        subdomain=_label(ctx, spec, "spec", "subdomain"),
        ports=_container_ports(ctx, spec, "spec"), origin=ctx.origin)


# The alphabet Kubernetes uses for generated names (k8s.io/apimachinery rand.SafeEncodeString).
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def safe_hash(text: str, length: int) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in digest[:length])


_OPERATORS = ("DoesNotExist", "Exists", "In", "NotIn")


def _label_selector(ctx: _Ctx, spec: dict) -> tuple[tuple, tuple]:
    """spec.selector of an apps/v1 workload (a LabelSelector): required and
    not empty, as ValidateDeploymentSpec and its siblings say."""
    selector = _get(ctx, spec, "spec", "selector", dict, None)
    if selector is None:
        raise ctx.error("spec.selector", v.required())
    match_labels = _string_map(ctx, selector.get("matchLabels"), "spec.selector.matchLabels")
    exprs = []
    for f, item in _mappings(ctx, selector, "spec.selector", "matchExpressions"):
        key = _get(ctx, item, f, "key", str, "")
        ctx.check(f"{f}.key", key, v.label_key(key))
        op = _get(ctx, item, f, "operator", str, "")
        if op not in _OPERATORS:
            raise ctx.error(f"{f}.operator", v.invalid(op, "not a valid selector operator"))
        values = tuple(_yaml_text(x) for x in _list(ctx, item, f, "values"))
        if op in ("In", "NotIn") and not values:
            raise ctx.error(f"{f}.values", v.required(
                "must be specified when `operator` is 'In' or 'NotIn'"))
        if op in ("Exists", "DoesNotExist") and values:
            raise ctx.error(f"{f}.values", v.forbidden(
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        exprs.append(o.LabelRequirement(key, op, values))
    if not match_labels and not exprs:
        raise ctx.error("spec.selector", v.invalid(
            {}, f"empty selector is invalid for {ctx.kind.lower()}"))
    return match_labels, tuple(exprs)


def workload(ctx: _Ctx, raw: dict) -> o.Workload:
    _metadata(ctx, raw)
    spec = _get(ctx, raw, "", "spec", dict, {})
    if ctx.kind == "DaemonSet":
        replicas = 1  # one node: one pod
    else:
        replicas = _get(ctx, spec, "spec", "replicas", int, 1)
        if replicas < 0:
            raise ctx.error("spec.replicas", v.invalid(
                replicas, "must be greater than or equal to 0"))
    match_labels, exprs = _label_selector(ctx, spec)
    template = _get(ctx, spec, "spec", "template", dict, {})
    tmeta = _get(ctx, template, "spec.template", "metadata", dict, {})
    tspec = _get(ctx, template, "spec.template", "spec", dict, {})
    labels = _string_map(ctx, tmeta.get("labels"), "spec.template.metadata.labels")
    wl = o.Workload(
        kind=ctx.kind, namespace=ctx.namespace, name=ctx.name, replicas=replicas,
        match_labels=match_labels, match_expressions=exprs, template_labels=labels,
        template_hostname=_label(ctx, tspec, "spec.template.spec", "hostname"),
        template_subdomain=_label(ctx, tspec, "spec.template.spec", "subdomain"),
        ports=_container_ports(ctx, tspec, "spec.template.spec"),
        service_name=_get(ctx, spec, "spec", "serviceName", str, ""),
        # pod-template-hash: a stable digest of the template, so that changing
        # only the replica count keeps the pods' names (and so their IPs).
        template_hash=safe_hash(json.dumps(template, sort_keys=True, default=str), 10),
        origin=ctx.origin)
    if not matches(wl.match_labels, wl.match_expressions, labels):
        raise ctx.error("spec.template.metadata.labels", v.invalid(
            dict(labels), "`selector` does not match template `labels`"))
    return wl


NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server


def namespace(ctx: _Ctx, raw: dict) -> o.Namespace:
    meta = _metadata(ctx, raw, namespaced=False)
    labels = dict(_string_map(ctx, meta.get("labels"), "metadata.labels"))
    labels[NAMESPACE_NAME_LABEL] = ctx.name
    return o.Namespace(ctx.name, origin=ctx.origin, labels=tuple(sorted(labels.items())))


_CONVERTERS: dict[str, Callable] = {
    "Service": service,
    "EndpointSlice": endpoint_slice,
    "Endpoints": endpoints,
    "Pod": pod,
    "Namespace": namespace,
    **{kind: workload for kind in WORKLOAD_KINDS},
}

# The API group of each kind we serve, and its versions we understand.
# Other versions of these kinds are errors rather than silently misread.
_GROUPS = {
    "Service": "", "Endpoints": "", "Pod": "", "Namespace": "",
    "EndpointSlice": "discovery.k8s.io",
    **{kind: "apps" for kind in WORKLOAD_KINDS},
}
_API_VERSIONS = {
    "Service": ("v1",), "Endpoints": ("v1",), "Pod": ("v1",), "Namespace": ("v1",),
    "EndpointSlice": ("discovery.k8s.io/v1",),
    **{kind: ("apps/v1",) for kind in WORKLOAD_KINDS},
}

# Kinds of the API server that look like one of ours (a typo's distance
# away): never taken for a typo.
_BUILTIN_KINDS = frozenset((
    "Binding", "ConfigMap", "Event", "Job", "Lease", "LimitRange", "Node", "Role", "Secret",
    "ServiceAccount", "CronJob", "Ingress", "PodTemplate", "EndpointSliceList",
))


def _builtin_group(group: str) -> bool:
    """Groups of the API server itself ("", apps, batch, *.k8s.io); other
    groups (with a dot) belong to custom resources."""
    return "." not in group or group.endswith(".k8s.io")


def _distance(a: str, b: str) -> int:
    """Edit distance with adjacent transpositions (optimal string alignment)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def meant_kind(kind: str) -> Optional[str]:
    """The kind we serve that ``kind`` is a typo of (``Servce``, ``service``,
    ``Deployments``), or None."""
    if kind in _CONVERTERS or kind in _BUILTIN_KINDS:
        return None
    low = kind.lower()
    for ours in _CONVERTERS:
        # One slip in a short name, two in a long one: far enough that no
        # real kind (Node, Job, Role ... are listed above anyway) comes close.
        if _distance(low, ours.lower()) <= (1 if len(ours) <= 5 else 2):
            return ours
    return None


def ignored(raw: Any, path: str, line: Optional[int],
            placement: Placement = DEFAULT_PLACEMENT) -> Optional[Ignored]:
    """What a document is, before converting it: None for an object of a
    kind we serve; an :class:`Ignored` for another kind, or for a document
    that is no Kubernetes object at all (neither ``apiVersion`` nor
    ``kind``: a ``values.yaml``, a compose file).  Raises ManifestError for
    what the API server refuses outright: ``kind`` without ``apiVersion`` or
    the other way round, a ``kind`` that is a typo of one we serve, a
    version of our kinds that is not served any more."""
    if not isinstance(raw, dict) or "kind" not in raw and "apiVersion" not in raw:
        return Ignored("", "", path, line)
    kind, api = raw.get("kind"), raw.get("apiVersion")
    if type(kind) is str and kind in _API_VERSIONS and api in _API_VERSIONS[kind]:
        return None  # the common case, first
    for key, value in (("kind", kind), ("apiVersion", api)):
        if value is None or value == "":
            # The decoder's words (k8s.io/apimachinery runtime.missingKindErr).
            missing = "Kind" if key == "kind" else "apiVersion"
            raise ManifestError(f"Object '{missing}' is missing", path, line, field=key)
        if not isinstance(value, str):
            raise ManifestError(f"expected a string, got {shown(value)}", path, line, field=key)
    group = api.rpartition("/")[0]
    meta = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    name = meta.get("name") if isinstance(meta.get("name"), str) else "?"
    named = meta.get("namespace") if isinstance(meta.get("namespace"), str) else ""
    # Others' kinds as written (cluster-scoped ones have no namespace);
    # ours, and typos of ours, where they would land.
    label = f"{kind} {named + '/' if named else ''}{name}"
    ours = None
    if _builtin_group(group):
        ours = kind if kind in _CONVERTERS else meant_kind(kind)
    if ours is not None:
        ctx = _Ctx(ours, raw, path, line, placement)
        label = ctx.label.replace(ours, kind, 1)
    if kind in _CONVERTERS:
        if api in _API_VERSIONS[kind]:
            return None
        if not _builtin_group(group):
            # A custom resource that shares a name with ours (Knative's Service).
            return Ignored(f"{kind}.{group}", label, path, line)
        raise ManifestError(f'no matches for kind "{kind}" in version "{api}": {kind} is '
                            f"served as {' or '.join(_API_VERSIONS[kind])}", path, line,
                            label, "apiVersion")
    if ours is not None:
        raise ManifestError(f'no matches for kind "{kind}" in version "{api}": did you mean '
                            f'"{ours}"?', path, line, label, "kind")
    return Ignored(kind, label, path, line)


def convert(raw: Any, path: str, line: Optional[int],
            placement: Placement = DEFAULT_PLACEMENT) -> list:
    """One manifest document to zero or more trimmed objects, in the
    namespace ``placement`` gives it.

    Documents :func:`ignored` skips (ConfigMap, Ingress, a values file ...)
    give nothing: they are normal in a real folder.
    """
    if ignored(raw, path, line, placement) is not None:
        return []
    kind = raw["kind"]
    result = _CONVERTERS[kind](_Ctx(kind, raw, path, line, placement), raw)
    if result is None:
        return []
    return result if isinstance(result, list) else [result]
