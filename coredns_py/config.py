"""The configuration: a handful of keys, their defaults, and ``parse``.

Keys are named after CoreDNS's kubernetes plugin where one exists
(``ttl``, ``pods``, ``endpoint_pod_names``, ``ignore_empty_service``).
``config/coredns_py.yaml`` documents every key; this module is where the
defaults live.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional

import yaml

from coredns_py.errors import ConfigError
from coredns_py.source.reading import MAX_FILE_BYTES

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
# The bundled example cluster: zones/ of a checkout, or, installed from a
# wheel, the copy shipped inside the package (in a checkout coredns_py/zones
# is a link to zones/, which is how the wheel gets it).
DEFAULT_MANIFESTS = (PACKAGE_ROOT / "zones" if (PACKAGE_ROOT / "pyproject.toml").is_file()
                     else Path(__file__).resolve().parent / "zones")
DEFAULT_CONFIG = PACKAGE_ROOT / "config" / "coredns_py.yaml"

POD_MODES = ("disabled", "insecure", "verified")

# CoreDNS accepts ttl 0..3600 (plugin/kubernetes/setup.go).
MAX_TTL = 3600

# Forwarding (see coredns_py/forward.py). The host's resolver, as CoreDNS's
# default Corefile (`forward . /etc/resolv.conf`).
DEFAULT_UPSTREAM = ("/etc/resolv.conf",)
# Clients that may have names outside our zones forwarded: loopback, the
# RFC 1918 ranges container runtimes hand out, IPv6 unique local addresses.
DEFAULT_ALLOW_RECURSION = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12",
                           "192.168.0.0/16", "fc00::/7")
# CoreDNS's cache holds 9984 answers per kind by default; an answer takes
# about a kilobyte, so 10000 entries is ~10 MB.
DEFAULT_CACHE_SIZE = 10000
# The most an upstream answer is cached (CoreDNS's cache caps at 3600 s).
DEFAULT_CACHE_MAX_TTL = 3600
# Upper bounds of the two cache knobs: a million entries is ~1 GB; RFC 8767
# suggests capping TTLs at 7 days (604800 s).
MAX_CACHE_SIZE = 1_000_000
MAX_CACHE_TTL = 604800
# Cache prefetch and serve_stale (CoreDNS cache plugin): its defaults, a
# window of 1 minute and 10 % of the TTL; percentages in [10, 90].
DEFAULT_PREFETCH_WINDOW = 60
DEFAULT_PREFETCH_PERCENTAGE = 10
STALE_MODES = ("immediate", "verify")
LOADBALANCE_POLICIES = ("round_robin",)  # CoreDNS's `weighted` is not implemented

# Abuse protection (coredns_py/stages): on, off, or on only when some listen
# address is not loopback ("auto").
SWITCHES = ("auto", "on", "off")
# RRL: answers per second per client network and kind of answer.  NSD's
# default is 200; BIND and Knot have none.  A busy program resolving one
# name with glibc (no cache) asks it once per request, so the default must
# not be tight; amplification is cut by the slip anyway.
DEFAULT_RATE_LIMIT = 200
MAX_RATE_LIMIT = 1_000_000
# Every 2nd answer past the rate is sent truncated, the others dropped
# (BIND's and NSD's default); BIND accepts 0..10.
DEFAULT_SLIP = 2
MAX_SLIP = 10
# The UDP receive buffer asked for (net.listen.UDP_RECEIVE_BUFFER); at most 1 GiB.
MAX_UDP_RECEIVE_BUFFER = 1 << 30


@dataclass(frozen=True)
class Config:
    zone: str = "cluster.local"
    # More zones answering the same cluster (CoreDNS `kubernetes cluster.local
    # example.internal`); PTR records name the first, `zone`.
    extra_zones: tuple[str, ...] = ()
    # Only these namespaces, only Services (and pods) with these labels, only
    # namespaces with these labels (CoreDNS kubernetes `namespaces`, `labels`,
    # `namespace_labels`; coredns_py/zone/exposed.py).
    namespaces: tuple[str, ...] = ()
    labels: str = ""
    namespace_labels: str = ""
    # Services' external addresses under zones of their own (CoreDNS
    # k8s_external; coredns_py/zone/external.py).
    k8s_external: tuple = ()
    # Shuffle A, AAAA and MX records ("round_robin"; "": off), addresses in
    # these networks first (CoreDNS loadbalance; stages/loadbalance.py).
    loadbalance: str = ""
    loadbalance_prefer: tuple[str, ...] = ()
    # Query names rewritten before they are answered, the answer written
    # back (CoreDNS rewrite `name` rules; stages/rewrite_rules.py).
    rewrite: tuple = ()
    # Who may transfer our zones (AXFR, IXFR over TCP; "*": everybody, []:
    # nobody), and which ([]: every zone of ours) (CoreDNS transfer;
    # stages/transfer.py).
    transfer_to: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    transfer_zones: tuple[str, ...] = ()
    ttl: int = 5
    pods: str = "disabled"
    endpoint_pod_names: bool = False
    ignore_empty_service: bool = False
    # What the API server and the pod network would allocate from (kubeadm defaults).
    service_cidr: tuple[str, ...] = ("10.96.0.0/12",)
    pod_cidr: tuple[str, ...] = ("10.244.0.0/16",)
    # Where allocated IPs are kept; "" means the default (see state_path()).
    state_file: str = ""
    # Upstream servers for names outside our zones: IP[:PORT] or a resolv.conf
    # path; empty: no forwarding (such names are REFUSED).
    upstream: tuple[str, ...] = DEFAULT_UPSTREAM
    # Client networks whose queries may be forwarded (others: REFUSED).
    allow_recursion: tuple[str, ...] = DEFAULT_ALLOW_RECURSION
    # Upstream answers cached (0: no cache) and their longest life in seconds.
    cache_size: int = DEFAULT_CACHE_SIZE
    cache_max_ttl: int = DEFAULT_CACHE_MAX_TTL
    # Larger manifest files are refused (see coredns_py/source/reading.py).
    max_file_bytes: int = MAX_FILE_BYTES
    # Per-domain forwarding (coredns_py/resolver/forward_config.py).
    forward: tuple = ()
    # Refresh answers asked this often before they expire (0: off), and
    # serve expired answers this many seconds when no upstream answers (0: off).
    cache_prefetch: int = 0
    cache_prefetch_window: int = DEFAULT_PREFETCH_WINDOW
    cache_prefetch_percentage: int = DEFAULT_PREFETCH_PERCENTAGE
    cache_serve_stale: int = 0
    cache_serve_stale_mode: str = "immediate"
    # Static names from hosts files (coredns_py/stages/hosts.py).
    hosts: tuple = ()
    # Seconds between checks of the config file for changes (0: SIGHUP only).
    reload: int = 2
    # Where to serve DNS ([] : --listen or its default); the health, ready
    # and metrics paths each on their own address (CoreDNS health, ready,
    # prometheus; "": on the --http listener); --listen and --http win.
    listen: tuple[str, ...] = ()
    health_listen: str = ""
    ready_listen: str = ""
    metrics_listen: str = ""
    # Seconds /health says 503 before the listeners close (--lameduck wins),
    # and one log line per query (--log-queries turns it on too).
    lameduck: float = 5.0
    log_queries: bool = False
    # Response rate limiting (stages/ratelimit.py) and DNS cookies
    # (stages/cookies.py): "auto", "on" or "off"; see SWITCHES.
    rate_limit: str = "auto"
    rate_limit_responses_per_second: int = DEFAULT_RATE_LIMIT
    rate_limit_slip: int = DEFAULT_SLIP
    cookies: str = "auto"
    # 32 hex digits shared by servers that answer for one another; "" means
    # a random secret at each start.
    cookie_secret: str = ""
    # Bytes of kernel receive buffer per UDP socket; 0: the system's default.
    udp_receive_buffer: int = 4 * 1024 * 1024
    # Where objects that name no namespace land (`kubectl apply -n NS`);
    # --default-namespace overrides it.
    default_namespace: str = "default"
    # Serve kubernetes.default and kube-dns.kube-system, as every cluster
    # has them, unless the manifests define them.
    builtin_services: bool = True
    # The endpoints of those two: the API server's address (a kind cluster's
    # control-plane node), and the cluster DNS pods' addresses (empty: the
    # 2nd and 3rd addresses of the first pod_cidr, where CoreDNS's two pods
    # start on a fresh kubeadm or kind node).
    apiserver_endpoint: str = "172.18.0.2:6443"
    kube_dns_endpoints: tuple[str, ...] = ()
    # Where NodePort and LoadBalancer Services get their node ports from
    # (the API server's --service-node-port-range).
    node_port_range: str = "30000-32767"

    @property
    def node_ports(self) -> tuple[int, int]:
        """node_port_range as (first, last), both included (checked by parse)."""
        low, _, high = self.node_port_range.partition("-")
        return int(low), int(high)

    # etcd (publish, serve/get/env --etcd): TLS files and the user; the
    # password is read from a file, so it is never on a command line.
    etcd_ca_file: str = ""
    etcd_cert_file: str = ""
    etcd_key_file: str = ""
    etcd_username: str = ""
    etcd_password_file: str = ""

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



# What a running server cannot change on reload: the addresses it listens
# on, and what decides the addresses it hands out (a new range would move
# every Service; a new state file would forget them); the UDP receive
# buffer, set when a socket is bound.
RESTART_ONLY = ("listen", "health_listen", "ready_listen", "metrics_listen", "service_cidr",
                "pod_cidr", "state_file", "udp_receive_buffer",
                # and what the cluster source was made with: where objects land,
                # the Services every cluster has, the node ports it hands out.
                "default_namespace", "builtin_services", "apiserver_endpoint",
                "kube_dns_endpoints", "node_port_range",
                # and what the folder source was made with: the largest file read;
                "max_file_bytes",
                # etcd is connected to once, at start (serve --etcd).
                "etcd_ca_file", "etcd_cert_file", "etcd_key_file", "etcd_username",
                "etcd_password_file")


def zone_name(text: str) -> str:
    """A zone as the config keeps it: lower case, no leading or trailing dot;
    ValueError when it is not a domain name."""
    zone = text.strip().strip(".").lower()
    if not zone or any(not label or len(label) > 63 for label in zone.split(".")) \
            or len(zone) > 253:
        raise ValueError(f"not a domain name: {text!r}")
    return zone

def check_mapping(where: str, data: Any, known, expected: str) -> None:
    """``data`` must be a mapping of ``known`` keys (a list entry of a
    config key: a forward domain, a hosts table)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping ({expected}), got {data!r}")
    unknown = set(data) - set(known)
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r} "
                          f"(known: {', '.join(sorted(known))})")

def entry_ttl(where: str, value: Any, high: int) -> int:
    """A list entry's ``ttl`` (a hosts table, an external zone): 0..high seconds."""
    if type(value) is not int or not 0 <= value <= high:
        raise ConfigError(f"{where}: ttl: expected 0..{high} seconds, got {value!r}")
    return value

def entry_flag(where: str, key: str, value: Any) -> bool:
    """A list entry's true-or-false key."""
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {key}: expected true or false, got {value!r}")
    return value


def _readers() -> dict:
    """How each key that is not a plain value (bool, int, str) is read."""
    from coredns_py import config_values as v
    return {
        "service_cidr": v.cidrs, "pod_cidr": v.cidrs, "upstream": v.upstream,
        "allow_recursion": v.networks, "loadbalance_prefer": v.networks,
        "transfer_to": v.transfer_to, "transfer_zones": v.zones, "extra_zones": v.zones,
        "namespaces": v.namespace_names, "labels": v.selector, "namespace_labels": v.selector,
        "rate_limit": v.switch, "cookies": v.switch, "listen": v.listens,
        "health_listen": v.http_listen, "ready_listen": v.http_listen,
        "metrics_listen": v.http_listen, "lameduck": v.seconds, "hosts": v.hosts,
        "k8s_external": v.k8s_external, "rewrite": v.rewrite, "forward": v.forward,
        "kube_dns_endpoints": v.addresses,
    }


def _check_builtins(source: str, cfg: Config) -> None:
    """default_namespace, apiserver_endpoint and node_port_range, checked."""
    from coredns_py import hostport
    check_namespace(f"{source}: config key default_namespace", cfg.default_namespace)
    try:
        hostport.split(cfg.apiserver_endpoint)
    except ValueError as exc:
        raise ConfigError(f"{source}: config key apiserver_endpoint: {exc}") from None
    low, dash, high = cfg.node_port_range.partition("-")
    if not (dash and low.isdigit() and high.isdigit() and 0 < int(low) <= int(high) < 65536):
        raise ConfigError(f"{source}: config key node_port_range: expected FIRST-LAST within "
                          f"1-65535 (the API server's 30000-32767), got {cfg.node_port_range!r}")


def _bounded_int(source: str, cfg: Config, key: str, high: int, low: int = 0) -> None:
    value = getattr(cfg, key)
    if not low <= value <= high:
        raise ConfigError(f"{source}: config key {key}: must be {low}..{high}, got {value}")


def parse(data: Any, source: str = "config") -> Config:
    """Turn the YAML mapping into a Config; unknown keys and wrong types are errors."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of keys, got {type(data).__name__}")
    values: dict[str, Any] = {}
    readers = _readers()
    for key, value in data.items():
        if key not in _TYPES:
            known = ", ".join(sorted(_TYPES))
            raise ConfigError(f"{source}: unknown config key {key!r} (known keys: {known})")
        reader = readers.get(key)
        if reader is not None:
            values[key] = reader(source, key, value)
            continue
        default = getattr(Config, key)
        expected = type(default)
        # bool is a subclass of int: "ttl: true" must not pass as 1.
        if type(value) is not expected:
            raise ConfigError(f"{source}: config key {key}: expected {expected.__name__}, "
                              f"got {value!r}")
        values[key] = value
    if "upstream" in values and any(f.domain == "." for f in values.get("forward", ())):
        raise ConfigError(f"{source}: config keys upstream and forward: both name "
                          "the servers of '.'; keep one")
    cfg = Config(**values)
    if not 0 <= cfg.ttl <= MAX_TTL:
        raise ConfigError(f"{source}: config key ttl: must be 0..{MAX_TTL}, got {cfg.ttl}")
    if cfg.pods not in POD_MODES:
        raise ConfigError(f"{source}: config key pods: must be one of {', '.join(POD_MODES)}, "
                          f"got {cfg.pods!r}")
    _check_builtins(source, cfg)
    _bounded_int(source, cfg, "cache_size", MAX_CACHE_SIZE)
    _bounded_int(source, cfg, "cache_max_ttl", MAX_CACHE_TTL)
    if cfg.max_file_bytes < 1:
        raise ConfigError(f"{source}: config key max_file_bytes: must be at least 1, "
                          f"got {cfg.max_file_bytes}")
    _bounded_int(source, cfg, "reload", MAX_CACHE_TTL)
    if not 0 <= cfg.lameduck <= MAX_TTL:
        raise ConfigError(f"{source}: config key lameduck: must be 0..{MAX_TTL} seconds, "
                          f"got {cfg.lameduck}")
    _bounded_int(source, cfg, "cache_prefetch", MAX_CACHE_SIZE)
    _bounded_int(source, cfg, "cache_prefetch_window", MAX_CACHE_TTL)
    _bounded_int(source, cfg, "cache_serve_stale", MAX_CACHE_TTL)
    if not 10 <= cfg.cache_prefetch_percentage <= 90:
        raise ConfigError(f"{source}: config key cache_prefetch_percentage: must be 10..90, "
                          f"got {cfg.cache_prefetch_percentage}")
    if cfg.cache_serve_stale_mode not in STALE_MODES:
        raise ConfigError(f"{source}: config key cache_serve_stale_mode: must be one of "
                          f"{', '.join(STALE_MODES)}, got {cfg.cache_serve_stale_mode!r}")
    try:
        zone = zone_name(cfg.zone)
    except ValueError as exc:
        raise ConfigError(f"{source}: config key zone: {exc}") from None
    seen = [zone]
    for extra in cfg.extra_zones:
        if extra.split(".")[-2:] in (["in-addr", "arpa"], ["ip6", "arpa"]):
            raise ConfigError(f"{source}: config key extra_zones: {extra} is a reverse zone "
                              "(reverse names are always answered)")
        # Nested zones would answer one name twice, differently.
        for other in seen:
            if extra == other or extra.endswith("." + other) or other.endswith("." + extra):
                raise ConfigError(f"{source}: config key extra_zones: {extra} is, or is "
                                  f"nested with, the zone {other}")
        seen.append(extra)
    if cfg.loadbalance not in ("",) + LOADBALANCE_POLICIES:
        raise ConfigError(f"{source}: config key loadbalance: must be round_robin or \"\" "
                          f"(off), got {cfg.loadbalance!r}")
    _bounded_int(source, cfg, "rate_limit_responses_per_second", MAX_RATE_LIMIT, low=1)
    _bounded_int(source, cfg, "rate_limit_slip", MAX_SLIP)
    _bounded_int(source, cfg, "udp_receive_buffer", MAX_UDP_RECEIVE_BUFFER)
    if cfg.cookie_secret:
        from coredns_py.stages.cookies import parse_secret
        try:
            parse_secret(cfg.cookie_secret)
        except ValueError as exc:
            raise ConfigError(f"{source}: config key cookie_secret: {exc}") from None
    from coredns_py.zone import external
    external.check(source, cfg.k8s_external, seen)
    cfg = Config(**{**values, "zone": zone})
    ours = served_zones(cfg)
    for z in cfg.transfer_zones:
        if z not in ours:
            raise ConfigError(f"{source}: config key transfer_zones: {z} is not a zone served "
                              f"here ({', '.join(ours)})")
    return cfg


def served_zones(cfg: Config) -> tuple[str, ...]:
    """The zones answered from the cluster: the cluster zones, then the
    external ones."""
    return (cfg.zone, *cfg.extra_zones, *(z for spec in cfg.k8s_external for z in spec.zones))


def check_namespace(where: str, namespace: str) -> None:
    """A namespace name as the API server checks it (a DNS-1123 label)."""
    from coredns_py.source import validation
    problems = validation.dns1123_label(namespace)
    if problems:
        raise ConfigError(f"{where}: {namespace!r}: {problems[0]}")


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
