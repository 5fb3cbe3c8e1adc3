"""External zones (CoreDNS *k8s_external*): Services' external addresses
answered under a zone of their own, for clients outside the cluster.

The config key ``k8s_external`` lists them; each::

    k8s_external:
      - zones: [example.com]
        apex: dns            # the label of the zone's own names (ns1.dns.example.com)
        ttl: 5
        headless: false      # true: headless Services answer their endpoints
        fallthrough: []      # zones whose NXDOMAIN goes on upstream ("." all)

Under each zone, ``<svc>.<ns>.<zone>`` holds a Service's external
addresses: ``spec.externalIPs`` and its load balancer's
``status.loadBalancer.ingress`` IPs (A, AAAA, and SRV per port); an ingress
hostname is a CNAME.  What a name holds is decided in
:mod:`coredns_py.zone.lookup`; this module holds the settings, and what the
snapshot keeps of them (:class:`ExternalZone`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coredns_py.errors import ConfigError

# CoreDNS's defaults: records live 5 s; the zone's own names are under dns.
DEFAULT_TTL = 5
DEFAULT_APEX = "dns"
MAX_TTL = 3600  # as the kubernetes zone's ttl (CoreDNS accepts 0..3600)


@dataclass(frozen=True)
class ExternalSpec:
    zones: tuple[str, ...]  # lower case, no trailing dot
    apex: str = DEFAULT_APEX
    ttl: int = DEFAULT_TTL
    headless: bool = False
    fallthrough: tuple[str, ...] = ()  # zones ("." every name)
    where: str = field(default="", compare=False)


_KEYS = {"zones", "apex", "ttl", "headless", "fallthrough"}


def _zones(where: str, key: str, value: Any) -> tuple[str, ...]:
    from coredns_py.config import zone_name
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{where}: {key}: expected a list of zones, got {value!r}")
        if item.strip() == "." and key == "fallthrough":
            out.append(".")
            continue
        try:
            zone = zone_name(item)
        except ValueError as exc:
            raise ConfigError(f"{where}: {key}: {exc}") from None
        if key == "zones" and zone.split(".")[-2:] in (["in-addr", "arpa"], ["ip6", "arpa"]):
            raise ConfigError(f"{where}: zones: {zone}: reverse zones (PTR of external "
                              "addresses) are not implemented")
        out.append(zone)
    return tuple(dict.fromkeys(out))


def parse_entry(where: str, data: Any) -> ExternalSpec:
    from coredns_py.config import check_mapping, entry_flag, entry_ttl
    check_mapping(where, data, _KEYS, "zones, apex, ttl, headless, fallthrough")
    if "zones" not in data:
        raise ConfigError(f"{where}: needs zones (the external zones to answer)")
    values: dict[str, Any] = {"zones": _zones(where, "zones", data["zones"])}
    if not values["zones"]:
        raise ConfigError(f"{where}: zones: needs at least one zone")
    if "apex" in data:
        apex = data["apex"]
        if not isinstance(apex, str) or "." in apex.strip(".") or not apex.strip(".") \
                or len(apex) > 63:
            raise ConfigError(f"{where}: apex: expected one DNS label, got {apex!r}")
        values["apex"] = apex.strip(".").lower()
    if "ttl" in data:
        values["ttl"] = entry_ttl(where, data["ttl"], MAX_TTL)
    if "headless" in data:
        values["headless"] = entry_flag(where, "headless", data["headless"])
    if "fallthrough" in data:
        ft = data["fallthrough"]
        if isinstance(ft, bool):
            values["fallthrough"] = (".",) if ft else ()
        else:
            values["fallthrough"] = _zones(where, "fallthrough", ft)
    return ExternalSpec(where=where, **values)


def parse(source: str, value: Any) -> tuple[ExternalSpec, ...]:
    """The ``k8s_external`` key: a list of tables."""
    if not isinstance(value, list):
        raise ConfigError(f"{source}: config key k8s_external: expected a list of tables, "
                          f"got {value!r}")
    return tuple(parse_entry(f"{source}: config key k8s_external[{i}]", d)
                 for i, d in enumerate(value))


def check(source: str, specs, cluster_zones) -> None:
    """No external zone is, holds or lies in a cluster zone or another
    external zone (one name would be answered two ways)."""
    seen = [(z, "the cluster zone") for z in cluster_zones]
    for spec in specs:
        for zone in spec.zones:
            for other, what in seen:
                if zone == other or zone.endswith("." + other) or other.endswith("." + zone):
                    raise ConfigError(f"{spec.where or source}: zones: {zone} is, or is "
                                      f"nested with, {what} {other}")
            seen.append((zone, "the external zone"))


# --- what the snapshot keeps ------------------------------------------------------------


def _labels(zone: str) -> tuple:
    return () if zone == "." else tuple(label.encode() for label in zone.split("."))


@dataclass(frozen=True)
class ExternalZone:
    """One external zone as lookups read it."""

    zone: tuple  # its labels, lower case
    apex: bytes
    ttl: int
    headless: bool
    fallthrough: tuple  # zones as labels; () every name is answered here
    nameservers: tuple[str, ...]  # the addresses of ns1.<apex>.<zone>


def zones_of(specs, nameservers) -> tuple[ExternalZone, ...]:
    """Every zone of every spec; ``nameservers(headless)`` gives the
    addresses of the zone's name server."""
    return tuple(ExternalZone(_labels(zone), spec.apex.encode(), spec.ttl, spec.headless,
                              tuple(_labels(z) for z in spec.fallthrough),
                              nameservers(spec.headless))
                 for spec in specs for zone in spec.zones)
