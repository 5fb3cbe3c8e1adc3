"""Service manifests to trimmed Services, checked as the API server's
ValidateService checks them."""

from __future__ import annotations

from coredns_py.errors import shown
from coredns_py.source import fields as read
from coredns_py.source import objects as o
from coredns_py.source import validation as v


def _target_port(ctx: read.Ctx, item: dict, field: str) -> int | str | None:
    """targetPort: a number, or the name of a container port (an IANA
    service name). A quoted number is a name to the API server, and an invalid one."""
    target = item.get("targetPort")
    if target is None or target == 0:  # 0 is defaulted to the port
        return None
    if isinstance(target, bool) or not isinstance(target, (int, str)):
        raise ctx.error(f"{field}.targetPort", f"expected a number or a port name, "
                        f"got {shown(target)}")
    if isinstance(target, int):
        return read.port_number(ctx, target, f"{field}.targetPort")
    ctx.check(f"{field}.targetPort", target, v.port_name(target))
    return target


def _service_ports(ctx: read.Ctx, spec: dict, stype: str) -> list[o.ServicePort]:
    """spec.ports as validateServicePort and ValidateService check them."""
    items = list(read.mappings(ctx, spec, "spec", "ports"))
    ports = []
    names: set[str] = set()
    seen: set[tuple[int, str]] = set()
    node_ports: set[tuple[int, str]] = set()
    for field, item in items:
        name = read.get(ctx, item, field, "name", str, "")
        if not name and len(items) > 1:
            # With several ports, SRV records and endpoints need to tell them apart.
            raise ctx.error(f"{field}.name", v.required())
        if name:
            ctx.check(f"{field}.name", name, v.dns1123_label(name))
            if name in names:
                raise ctx.error(f"{field}.name", v.duplicate(name))
            names.add(name)
        port = read.port_number(ctx, item.get("port"), f"{field}.port")
        proto = read.protocol(ctx, item, field)
        target = _target_port(ctx, item, field)
        node_port = item.get("nodePort")
        if node_port is not None and node_port != 0:
            node_port = read.port_number(ctx, node_port, f"{field}.nodePort")
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


def _cluster_ips(ctx: read.Ctx, spec: dict, stype: str) -> list[str]:
    """spec.clusterIP and spec.clusterIPs as ValidateServiceClusterIPsRelatedFields
    checks them; canonical text, primary first ('None' when headless)."""
    cluster_ip = read.get(ctx, spec, "spec", "clusterIP", str, "")
    given = read.list_of(ctx, spec, "spec", "clusterIPs")
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
            parsed.append(read.ip(ctx, value, field))
    # parsed holds canonical text, whose family o.family() tells without parsing again.
    if len(parsed) == 2 and o.family(parsed[0]) == o.family(parsed[1]):
        raise ctx.error("spec.clusterIPs", v.invalid(
            given, "may specify no more than one IP for each IP family"))
    return parsed


def _ip_families(ctx: read.Ctx, spec: dict, parsed: list[str]) -> tuple[list[str], str]:
    families = read.list_of(ctx, spec, "spec", "ipFamilies")
    for i, fam in enumerate(families):
        if fam not in ("IPv4", "IPv6"):
            raise ctx.error(f"spec.ipFamilies[{i}]", v.not_supported(fam, ("IPv4", "IPv6")))
        if fam in families[:i]:
            raise ctx.error(f"spec.ipFamilies[{i}]", v.duplicate(fam))
    policies = ("PreferDualStack", "RequireDualStack", "SingleStack")
    policy = read.get(ctx, spec, "spec", "ipFamilyPolicy", str, "")
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


def _load_balancer(ctx: read.Ctx, raw: dict) -> tuple[str, ...]:
    """status.loadBalancer.ingress: each entry's ip, or its hostname (what
    k8s_external answers and `get services` shows)."""
    status = read.get(ctx, raw, "", "status", dict, {})
    lb = read.get(ctx, status, "status", "loadBalancer", dict, {})
    out = []
    for f, item in read.mappings(ctx, lb, "status.loadBalancer", "ingress"):
        if item.get("ip"):
            out.append(read.ip(ctx, item["ip"], f"{f}.ip"))
            continue
        host = read.get(ctx, item, f, "hostname", str, "")
        host = host[:-1] if host.endswith(".") else host
        if not host:
            raise ctx.error(f"{f}.hostname", v.required("an entry needs an ip or a hostname"))
        ctx.check(f"{f}.hostname", host, v.dns1123_subdomain(host))
        out.append(host)
    return tuple(out)


def service(ctx: read.Ctx, raw: dict) -> o.Service:
    """A Service, checked as ValidateService does."""
    labels = read.string_map(ctx, read.metadata(ctx, raw).get("labels"), "metadata.labels")
    spec = read.get(ctx, raw, "", "spec", dict, {})
    external_ips = tuple(read.ip(ctx, value, f"spec.externalIPs[{i}]")
                         for i, value in enumerate(read.list_of(ctx, spec, "spec", "externalIPs")))
    ingress = _load_balancer(ctx, raw)
    stype = read.get(ctx, spec, "spec", "type", str, o.CLUSTER_IP) or o.CLUSTER_IP
    if stype not in o.SERVICE_TYPES:
        raise ctx.error("spec.type", v.not_supported(stype, sorted(o.SERVICE_TYPES)))
    parsed = _cluster_ips(ctx, spec, stype)
    ports = _service_ports(ctx, spec, stype)
    if not ports and stype != o.EXTERNAL_NAME and parsed[:1] != [o.HEADLESS]:
        raise ctx.error("spec.ports", v.required())
    selector = read.string_map(ctx, spec.get("selector"), "spec.selector") or None

    if stype == o.EXTERNAL_NAME:
        ext = read.get(ctx, spec, "spec", "externalName", str, "")
        # A trailing dot only marks the name fully qualified.
        clean = ext[:-1] if ext.endswith(".") else ext
        if not clean:
            raise ctx.error("spec.externalName", v.required())
        ctx.check("spec.externalName", clean, v.dns1123_subdomain(clean))
        return o.Service(ctx.namespace, ctx.name, stype, (), tuple(ports),
                         external_name=clean, origin=ctx.origin, labels=labels,
                         external_ips=external_ips, ingress=ingress)

    families, policy = _ip_families(ctx, spec, parsed)
    allocate_node_ports = read.get(ctx, spec, "spec", "allocateLoadBalancerNodePorts", bool, None)
    if allocate_node_ports is not None and stype != o.LOAD_BALANCER:
        raise ctx.error("spec.allocateLoadBalancerNodePorts",
                        v.forbidden("may only be used when `type` is 'LoadBalancer'"))
    return o.Service(
        ctx.namespace, ctx.name, stype, tuple(parsed), tuple(ports),
        selector=selector,
        publish_not_ready=bool(read.get(ctx, spec, "spec", "publishNotReadyAddresses", bool, False)),
        ip_families=tuple(families), ip_family_policy=policy,
        allocate_node_ports=allocate_node_ports is not False, origin=ctx.origin,
        labels=labels, external_ips=external_ips, ingress=ingress)
