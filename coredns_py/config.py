"""The configuration: a handful of keys, their defaults, and ``parse``.

Keys are named after CoreDNS's kubernetes plugin where one exists
(``ttl``, ``pods``, ``endpoint_pod_names``, ``ignore_empty_service``).
``config/coredns_py.yaml`` documents every key; this module is where the
defaults live.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

import yaml

from coredns_py.errors import ConfigError

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MANIFESTS = PACKAGE_ROOT / "zones"
DEFAULT_CONFIG = PACKAGE_ROOT / "config" / "coredns_py.yaml"

POD_MODES = ("disabled", "insecure", "verified")

# CoreDNS accepts ttl 0..3600 (plugin/kubernetes/setup.go).
MAX_TTL = 3600


@dataclass(frozen=True)
class Config:
    zone: str = "cluster.local"
    ttl: int = 5
    pods: str = "disabled"
    endpoint_pod_names: bool = False
    ignore_empty_service: bool = False
    # What the API server and the pod network would allocate from (kubeadm defaults).
    service_cidr: tuple[str, ...] = ("10.96.0.0/12",)
    pod_cidr: tuple[str, ...] = ("10.244.0.0/16",)
    # Where allocated IPs are kept; "" means the default (see state_path()).
    state_file: str = ""

    def state_path(self, manifests: Path) -> Path:
        """The allocation state file for a manifests folder.

        Default: ``$XDG_STATE_HOME/coredns_py/<folder name>-<hash>.json``
        (``~/.local/state`` when XDG_STATE_HOME is unset), one file per
        manifests folder, so the folder itself is never written to.
        """
        if self.state_file:
            return Path(os.path.expanduser(self.state_file))
        base = os.environ.get("XDG_STATE_HOME") or os.path.join(
            os.path.expanduser("~"), ".local", "state")
        absolute = str(Path(manifests).resolve())
        digest = hashlib.sha256(absolute.encode()).hexdigest()[:12]
        return Path(base) / "coredns_py" / f"{Path(absolute).name}-{digest}.json"


_TYPES: dict[str, type] = {f.name: f.type for f in fields(Config)}


def _cidrs(key: str, value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    out = []
    families = set()
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"config key {key}: expected a CIDR string, got {item!r}")
        try:
            net = ipaddress.ip_network(item, strict=True)
        except ValueError as exc:
            raise ConfigError(f"config key {key}: {exc}") from None
        if net.version in families:
            raise ConfigError(f"config key {key}: at most one CIDR per IP family")
        families.add(net.version)
        if net.num_addresses < 16:
            raise ConfigError(f"config key {key}: {item} is too small")
        out.append(str(net))
    if not out:
        raise ConfigError(f"config key {key}: needs at least one CIDR")
    return tuple(out)


def parse(data: Any, source: str = "config") -> Config:
    """Turn the YAML mapping into a Config; unknown keys and wrong types are errors."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys, got {type(data).__name__}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _TYPES:
            known = ", ".join(sorted(_TYPES))
            raise ConfigError(f"{source}: unknown config key {key!r} (known keys: {known})")
        if key in ("service_cidr", "pod_cidr"):
            values[key] = _cidrs(key, value)
            continue
        default = getattr(Config, key)
        expected = type(default)
        # bool is a subclass of int: "ttl: true" must not pass as 1.
        if type(value) is not expected:
            raise ConfigError(f"{source}: config key {key}: expected {expected.__name__}, "
                              f"got {value!r}")
        values[key] = value
    cfg = Config(**values)
    if not 0 <= cfg.ttl <= MAX_TTL:
        raise ConfigError(f"{source}: config key ttl: must be 0..{MAX_TTL}, got {cfg.ttl}")
    if cfg.pods not in POD_MODES:
        raise ConfigError(f"{source}: config key pods: must be one of {', '.join(POD_MODES)}, "
                          f"got {cfg.pods!r}")
    zone = cfg.zone.strip(".").lower()
    if not zone or any(not label for label in zone.split(".")):
        raise ConfigError(f"{source}: config key zone: not a domain name: {cfg.zone!r}")
    return Config(**{**values, "zone": zone})


def load(path: Optional[Path]) -> Config:
    """Read and parse a config file; a missing default config means all defaults."""
    if path is None:
        if not DEFAULT_CONFIG.exists():
            return Config()
        path = DEFAULT_CONFIG
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    return parse(data, str(path))
