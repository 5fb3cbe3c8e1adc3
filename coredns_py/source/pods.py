"""Pod manifests, and the workloads that make pods (Deployment, ReplicaSet,
StatefulSet, DaemonSet), to trimmed objects."""

from __future__ import annotations

import json

from coredns_py.source import fields as read
from coredns_py.source import objects as o
from coredns_py.source import validation as v
from coredns_py.source.selectors import matches

WORKLOAD_KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet")


def _container_ports(ctx: read.Ctx, pod_spec: dict, field: str) -> tuple[o.ContainerPort, ...]:
    out = []
    for f, container in read.mappings(ctx, pod_spec, field, "containers"):
        names: set[str] = set()
        for g, item in read.mappings(ctx, container, f, "ports"):
            name = read.get(ctx, item, g, "name", str, "")
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
                container_port=read.port_number(ctx, item.get("containerPort"), f"{g}.containerPort"),
                protocol=read.protocol(ctx, item, g)))
    return tuple(out)


def pod(ctx: read.Ctx, raw: dict) -> o.Pod:
    meta = read.metadata(ctx, raw)
    spec = read.get(ctx, raw, "", "spec", dict, {})
    status = read.get(ctx, raw, "", "status", dict, {})
    ips = [item.get("ip") if isinstance(item, dict) else item
           for item in read.list_of(ctx, status, "status", "podIPs")]
    primary = read.get(ctx, status, "status", "podIP", str, "")
    if primary and not ips:
        ips = [primary]
    ips = tuple(read.ip(ctx, ip, f"status.podIPs[{i}].ip") for i, ip in enumerate(ips))
    # A manifest with no status is a pod about to start: it runs and is ready.
    phase = read.get(ctx, status, "status", "phase", str, "Running") or "Running"
    ready = True
    for i, cond in enumerate(read.list_of(ctx, status, "status", "conditions")):
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            ready = str(cond.get("status")) == "True"
    return o.Pod(
        ctx.namespace, ctx.name,
        labels=read.string_map(ctx, meta.get("labels"), "metadata.labels"),
        ips=ips, phase=phase, terminating=meta.get("deletionTimestamp") is not None,
        ready=ready and phase == "Running",
        hostname=read.dns_label(ctx, spec, "spec", "hostname"),
        subdomain=read.dns_label(ctx, spec, "spec", "subdomain"),
        ports=_container_ports(ctx, spec, "spec"), origin=ctx.origin)


_OPERATORS = ("DoesNotExist", "Exists", "In", "NotIn")


def _label_selector(ctx: read.Ctx, spec: dict) -> tuple[tuple, tuple]:
    """spec.selector of an apps/v1 workload (a LabelSelector): required and
    not empty, as ValidateDeploymentSpec and its siblings say."""
    selector = read.get(ctx, spec, "spec", "selector", dict, None)
    if selector is None:
        raise ctx.error("spec.selector", v.required())
    match_labels = read.string_map(ctx, selector.get("matchLabels"), "spec.selector.matchLabels")
    exprs = []
    for f, item in read.mappings(ctx, selector, "spec.selector", "matchExpressions"):
        key = read.get(ctx, item, f, "key", str, "")
        ctx.check(f"{f}.key", key, v.label_key(key))
        op = read.get(ctx, item, f, "operator", str, "")
        if op not in _OPERATORS:
            raise ctx.error(f"{f}.operator", v.invalid(op, "not a valid selector operator"))
        values = tuple(read.yaml_text(x) for x in read.list_of(ctx, item, f, "values"))
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


def workload(ctx: read.Ctx, raw: dict) -> o.Workload:
    read.metadata(ctx, raw)
    spec = read.get(ctx, raw, "", "spec", dict, {})
    if ctx.kind == "DaemonSet":
        replicas = 1  # one node: one pod
    else:
        replicas = read.get(ctx, spec, "spec", "replicas", int, 1)
        if replicas < 0:
            raise ctx.error("spec.replicas", v.invalid(
                replicas, "must be greater than or equal to 0"))
    match_labels, exprs = _label_selector(ctx, spec)
    template = read.get(ctx, spec, "spec", "template", dict, {})
    tmeta = read.get(ctx, template, "spec.template", "metadata", dict, {})
    tspec = read.get(ctx, template, "spec.template", "spec", dict, {})
    labels = read.string_map(ctx, tmeta.get("labels"), "spec.template.metadata.labels")
    wl = o.Workload(
        kind=ctx.kind, namespace=ctx.namespace, name=ctx.name, replicas=replicas,
        match_labels=match_labels, match_expressions=exprs, template_labels=labels,
        template_hostname=read.dns_label(ctx, tspec, "spec.template.spec", "hostname"),
        template_subdomain=read.dns_label(ctx, tspec, "spec.template.spec", "subdomain"),
        ports=_container_ports(ctx, tspec, "spec.template.spec"),
        service_name=read.get(ctx, spec, "spec", "serviceName", str, ""),
        # pod-template-hash: a stable digest of the template, so that changing
        # only the replica count keeps the pods' names (and so their IPs).
        template_hash=o.safe_hash(json.dumps(template, sort_keys=True, default=str), 10),
        origin=ctx.origin)
    if not matches(wl.match_labels, wl.match_expressions, labels):
        raise ctx.error("spec.template.metadata.labels", v.invalid(
            dict(labels), "`selector` does not match template `labels`"))
    return wl
