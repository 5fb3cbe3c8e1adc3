"""EndpointSlice and v1 Endpoints manifests to trimmed EndpointSlices (an
Endpoints object becomes the slices the mirroring controller would write)."""

from __future__ import annotations

from typing import Optional

from coredns_py.source import fields as read
from coredns_py.source import objects as o
from coredns_py.source import validation as v

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _endpoint_ports(ctx: read.Ctx, data: dict, field: str, require_names: bool = False
                    ) -> tuple[o.EndpointPort, ...]:
    """The ``ports`` of an EndpointSlice or of an Endpoints subset."""
    items = list(read.mappings(ctx, data, field, "ports"))
    names: set[str] = set()
    out = []
    for f, item in items:
        name = read.dns_label(ctx, item, f, "name")
        if not name and require_names and len(items) > 1:
            raise ctx.error(f"{f}.name", v.required())
        if name in names:
            raise ctx.error(f"{f}.name", v.duplicate(name))
        names.add(name)
        out.append(o.EndpointPort(name=name, port=read.port_number(ctx, item.get("port"), f"{f}.port"),
                                  protocol=read.protocol(ctx, item, f)))
    return tuple(out)


def _target_pod(ctx: read.Ctx, item: dict, field: str) -> str:
    ref = read.get(ctx, item, field, "targetRef", dict, {})
    kind = read.get(ctx, ref, f"{field}.targetRef", "kind", str, "")
    name = read.get(ctx, ref, f"{field}.targetRef", "name", str, "")
    return name if kind in ("Pod", "") else ""


def _node_name(ctx: read.Ctx, item: dict, field: str) -> str:
    name = read.get(ctx, item, field, "nodeName", str, "")
    if name:
        ctx.check(f"{field}.nodeName", name, v.dns1123_subdomain(name))
    return name


# EndpointSlice address types (discovery validation's supportedAddressTypes).
ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")


def endpoint_slice(ctx: read.Ctx, raw: dict) -> Optional[o.EndpointSlice]:
    meta = read.metadata(ctx, raw)
    labels = dict(read.string_map(ctx, meta.get("labels"), "metadata.labels"))
    addr_type = read.get(ctx, raw, "", "addressType", str, "")
    if not addr_type:
        raise ctx.error("addressType", v.required())
    if addr_type not in ADDRESS_TYPES:
        raise ctx.error("addressType", v.not_supported(addr_type, ADDRESS_TYPES))
    if addr_type == "FQDN":
        return None  # deprecated; CoreDNS cannot serve them either
    family = 4 if addr_type == "IPv4" else 6
    endpoints = []
    for f, item in read.mappings(ctx, raw, "", "endpoints"):
        addresses = read.list_of(ctx, item, f, "addresses")
        if not addresses:
            raise ctx.error(f"{f}.addresses", v.required("must contain at least 1 address"))
        addrs = []
        for j, a in enumerate(addresses):
            ip = read.ip(ctx, a, f"{f}.addresses[{j}]")
            if o.family(ip) != family:
                raise ctx.error(f"{f}.addresses[{j}]",
                                v.invalid(a, f"must be a valid {addr_type} address"))
            addrs.append(ip)
        conditions = read.get(ctx, item, f, "conditions", dict, {})
        # A missing ready condition means "unknown", which consumers treat as ready.
        ready = read.get(ctx, conditions, f"{f}.conditions", "ready", bool, True)
        endpoints.append(o.Endpoint(
            addresses=tuple(addrs), ready=ready,
            hostname=read.dns_label(ctx, item, f, "hostname"),
            target_pod=_target_pod(ctx, item, f),
            node_name=_node_name(ctx, item, f)))
    return o.EndpointSlice(ctx.namespace, ctx.name, labels.get(SERVICE_NAME_LABEL, ""),
                           tuple(endpoints), _endpoint_ports(ctx, raw, ""), origin=ctx.origin)


def endpoints(ctx: read.Ctx, raw: dict) -> list[o.EndpointSlice]:
    """v1 Endpoints become the slices the mirroring controller would write:
    ``addresses`` ready, ``notReadyAddresses`` not ready, one slice per subset."""
    read.metadata(ctx, raw)
    out = []
    for s, (f, subset) in enumerate(read.mappings(ctx, raw, "", "subsets")):
        eps = []
        for key, ready in (("addresses", True), ("notReadyAddresses", False)):
            for g, item in read.mappings(ctx, subset, f, key):
                eps.append(o.Endpoint(
                    addresses=(read.ip(ctx, item.get("ip"), f"{g}.ip"),), ready=ready,
                    hostname=read.dns_label(ctx, item, g, "hostname"),
                    target_pod=_target_pod(ctx, item, g),
                    node_name=_node_name(ctx, item, g)))
        out.append(o.EndpointSlice(ctx.namespace, f"{ctx.name}-mirror-{s}", ctx.name,
                                   tuple(eps), _endpoint_ports(ctx, subset, f, True),
                                   mirrored=True, origin=ctx.origin))
    return out
