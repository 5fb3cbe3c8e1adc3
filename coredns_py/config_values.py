"""Reading one config key's value: CIDRs, networks and addresses, zones,
listen addresses, label selectors, on/off/auto switches, and the entries of
list keys (a forward domain, a hosts table, an external zone).  Each reader
takes ``(source, key, value)`` and raises ConfigError naming the source and
the key; :func:`coredns_py.config.parse` says which key is read how."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from coredns_py import config, hostport
from coredns_py.errors import ConfigError


def cidrs(source: str, key: str, value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    out = []
    families = set()
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{source}: config key {key}: expected a CIDR string, got {item!r}")
        try:
            net = ipaddress.ip_network(item, strict=True)
        except ValueError as exc:
            raise ConfigError(f"{source}: config key {key}: {exc}") from None
        if net.version in families:
            raise ConfigError(f"{source}: config key {key}: at most one CIDR per IP family")
        families.add(net.version)
        if net.num_addresses < 16:
            raise ConfigError(f"{source}: config key {key}: {item} is too small")
        out.append(str(net))
    if not out:
        raise ConfigError(f"{source}: config key {key}: needs at least one CIDR")
    return tuple(out)


def strings(source: str, key: str, value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{source}: config key {key}: expected a list of strings, "
                              f"got {item!r}")
    return [item.strip() for item in items]


def upstream(source: str, key: str, value: Any) -> tuple[str, ...]:
    from coredns_py.resolver import forward_config
    return forward_config.normalize_to(f"{source}: config key upstream", value)






def zones(source: str, key: str, value: Any) -> tuple[str, ...]:
    out: list[str] = []
    for item in strings(source, key, value):
        try:
            zone = config.zone_name(item)
        except ValueError as exc:
            raise ConfigError(f"{source}: config key {key}: {exc}") from None
        if zone not in out:
            out.append(zone)
    return tuple(out)


def namespace_names(source: str, key: str, value: Any) -> tuple[str, ...]:
    out: list[str] = []
    for item in strings(source, key, value):
        if len(item) > 63 or not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", item):
            raise ConfigError(f"{source}: config key {key}: {item!r} is not a namespace "
                              "name")
        if item not in out:
            out.append(item)
    return tuple(out)


def selector(source: str, key: str, value: Any) -> str:
    from coredns_py.source.selectors import parse as parse_selector
    if not isinstance(value, str):
        raise ConfigError(f"{source}: config key {key}: expected a label selector "
                          f"(\"app=web,tier in (a, b)\"), got {value!r}")
    try:
        parse_selector(value)
    except ValueError as exc:
        raise ConfigError(f"{source}: config key {key}: {exc}") from None
    return value.strip()






def networks(source: str, key: str, value: Any) -> tuple[str, ...]:
    out: list[str] = []
    for item in strings(source, key, value):
        try:
            net = ipaddress.ip_network(item, strict=True)  # a bare IP is a /32 or /128
        except ValueError as exc:
            raise ConfigError(f"{source}: config key {key}: {exc}") from None
        if str(net) not in out:
            out.append(str(net))
    return tuple(out)


def listens(source: str, key: str, value: Any) -> tuple[str, ...]:
    from coredns_py.net.listen import parse_listen
    out: list[str] = []
    for item in strings(source, key, value):
        try:
            text = hostport.join(*parse_listen(item))
        except ValueError as exc:
            raise ConfigError(f"{source}: config key {key}: {exc}") from None
        if text not in out:
            out.append(text)
    return tuple(out)


def http_listen(source: str, key: str, value: Any) -> str:
    from coredns_py.net.listen import parse_listen
    if not isinstance(value, str):
        raise ConfigError(f"{source}: config key {key}: expected HOST:PORT, got {value!r}")
    if not value.strip():
        return ""
    try:
        return hostport.join(*parse_listen(value))
    except ValueError as exc:
        raise ConfigError(f"{source}: config key {key}: {exc}") from None


def addresses(source: str, key: str, value: Any) -> tuple[str, ...]:
    out: list[str] = []
    for item in strings(source, key, value):
        try:
            out.append(str(ipaddress.ip_address(item)))
        except ValueError as exc:
            raise ConfigError(f"{source}: config key {key}: {exc}") from None
    return tuple(out)


def switch(source: str, key: str, value: Any) -> str:
    """true/false (YAML's on/off are booleans too) or "auto"."""
    if value is True or value is False:
        return "on" if value else "off"
    if isinstance(value, str) and value.strip().lower() in config.SWITCHES:
        return value.strip().lower()
    raise ConfigError(f"{source}: config key {key}: expected true, false or auto, got {value!r}")


def transfer_to(source: str, key: str, value: Any) -> tuple[str, ...]:
    """Networks that may transfer our zones; ``*`` is everybody."""
    given = strings(source, key, value)
    everyone = ("0.0.0.0/0", "::/0") if "*" in given else ()
    return tuple(dict.fromkeys(everyone + networks(source, key, [v for v in given if v != "*"])))


def hosts(source: str, key: str, value: Any) -> tuple:
    from coredns_py.stages import hosts as hosts_mod
    return hosts_mod.parse(source, value)


def k8s_external(source: str, key: str, value: Any) -> tuple:
    from coredns_py.zone import external
    return external.parse(source, value)


def rewrite(source: str, key: str, value: Any) -> tuple:
    from coredns_py.stages import rewrite_rules
    return rewrite_rules.parse(source, value)


def forward(source: str, key: str, value: Any) -> tuple:
    from coredns_py.resolver import forward_config
    return forward_config.parse(source, value)


def seconds(source: str, key: str, value: Any) -> float:
    """A number of seconds, whole or not."""
    if type(value) not in (int, float):
        raise ConfigError(f"{source}: config key {key}: expected float, got {value!r}")
    return float(value)
