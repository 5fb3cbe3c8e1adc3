"""The ``forward`` config key: per-domain upstreams and their options.

Each entry is one domain (CoreDNS ``forward FROM TO... { ... }`` in its own
server block, or kube-dns's ``stubDomains``)::

    forward:
      - domain: corp.example          # or a reverse zone, or a CIDR: 10.0.0.0/8
        to: [10.8.0.1, "tls://9.9.9.9"]
        policy: sequential             # round_robin, random
        health_check: 0.5              # seconds between checks of a failed upstream
        max_fails: 2                   # failed checks before it is down (0: never)
        force_tcp: false
        expire: 10                     # seconds an idle TLS connection is kept
        tls_servername: dns.quad9.net  # the certificate's name (tls:// upstreams)
        tls_ca: ""                     # CA file (default: the system's trust store)
        tls_cert: ""                   # client certificate and key, when asked for
        tls_key: ""
        except: [internal.corp.example]   # names not forwarded (REFUSED)
        cache: true                    # answers for this domain are cached

The top-level ``upstream`` list is the ``.`` domain with the default
options; a ``forward`` entry for ``.`` replaces it (then ``upstream`` must
not be given too).  An entry with ``to: []`` is a domain that is not
forwarded at all.
"""

from __future__ import annotations

import ipaddress
import math
import ssl
from dataclasses import dataclass, field
from typing import Any

from coredns_py.errors import ConfigError
from coredns_py.resolver import health, transport, upstreams
from coredns_py.resolver.pool import POLICIES

# A CIDR domain expands to one reverse zone per octet (IPv4) or nibble
# (IPv6) step: 10.0.0.0/12 is 16 zones.  More than this is a typo.
MAX_REVERSE_ZONES = 256

# Health checks more often than this would be a flood of their own; CoreDNS
# allows any duration, but a check every 10 ms is a mistake.
MIN_HEALTH_CHECK = 0.01


@dataclass(frozen=True)
class ForwardDomain:
    domain: str  # "." or a name in lower case without the final dot
    to: tuple[str, ...] = ()  # normalized upstream entries; (): not forwarded
    policy: str = "sequential"
    health_check: float = health.DEFAULT_INTERVAL
    max_fails: int = health.DEFAULT_MAX_FAILS
    force_tcp: bool = False
    expire: float = transport.DEFAULT_EXPIRE
    tls_servername: str = ""
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    except_domains: tuple[str, ...] = ()
    cache: bool = True
    where: str = field(default="", compare=False)  # "file:line" of its definition

    @property
    def uses_tls(self) -> bool:
        return any(e.startswith(upstreams.TLS_SCHEME) for e in self.to)

    def tls_context(self) -> ssl.SSLContext:
        return transport.tls_context(self.tls_ca, self.tls_cert, self.tls_key)


_KEYS = {"domain", "to", "policy", "health_check", "max_fails", "force_tcp", "expire",
         "tls_servername", "tls_ca", "tls_cert", "tls_key", "except", "cache"}


def domain_name(text: str) -> str:
    """A domain as the table keeps it: lower case, no final dot, "." for the
    root; ValueError when it is not a name."""
    name = text.strip().lower()
    if name in (".", ""):
        if name == "":
            raise ValueError("empty domain name")
        return "."
    name = name.rstrip(".")
    if not name or any(not label or len(label) > 63 for label in name.split(".")) \
            or len(name) > 253:
        raise ValueError(f"{text!r} is not a domain name")
    return name


def reverse_zones(cidr: str) -> list[str]:
    """The reverse zones of a network: 10.0.0.0/8 -> 10.in-addr.arpa; a prefix
    between octet (nibble) boundaries expands to several zones."""
    net = ipaddress.ip_network(cidr, strict=True)
    step = 8 if net.version == 4 else 4
    prefix = math.ceil(net.prefixlen / step) * step
    count = 2 ** (prefix - net.prefixlen)
    if count > MAX_REVERSE_ZONES:
        raise ValueError(f"{cidr} expands to {count} reverse zones (at most "
                         f"{MAX_REVERSE_ZONES})")
    out = []
    for sub in net.subnets(new_prefix=prefix):
        labels = sub.network_address.reverse_pointer.split(".")
        keep = prefix // step  # labels of the address that name the zone
        host_labels = (32 if net.version == 4 else 128) // step
        out.append(".".join(labels[host_labels - keep:]))
    return out


def domains_of(text: str) -> list[str]:
    """A ``domain`` value: a name, or a CIDR for its reverse zones."""
    if "/" in text:
        return reverse_zones(text.strip())
    return [domain_name(text)]


def _seconds(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 \
            or value != value:
        raise ConfigError(f"{where}: {key}: expected seconds (a number >= 0), got {value!r}")
    return float(value)


def _check_files(where: str, spec: ForwardDomain) -> None:
    """The TLS files must be usable now: a reload must not swap in a
    forwarder that cannot connect."""
    if (spec.tls_cert == "") != (spec.tls_key == ""):
        raise ConfigError(f"{where}: tls_cert and tls_key go together")
    try:
        spec.tls_context()
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"{where}: TLS files: {getattr(exc, 'strerror', None) or exc}") \
            from None


def parse_entry(source: str, index: int, data: Any) -> list[ForwardDomain]:
    """One ``forward`` entry (one per domain it names)."""
    from coredns_py.config import check_mapping
    where = f"{source}: config key forward[{index}]"
    check_mapping(where, data, _KEYS, "domain, to, ...")
    if "domain" not in data:
        raise ConfigError(f"{where}: needs a domain")
    domain = data["domain"]
    if not isinstance(domain, str):
        raise ConfigError(f"{where}: domain: expected a name or a CIDR, got {domain!r}")
    try:
        names = domains_of(domain)
    except ValueError as exc:
        raise ConfigError(f"{where}: domain: {exc}") from None
    to = data.get("to", [])
    values: dict[str, Any] = {"to": normalize_to(f"{where}: to", to)}
    for key in ("policy", "tls_servername", "tls_ca", "tls_cert", "tls_key"):
        if key in data:
            if not isinstance(data[key], str):
                raise ConfigError(f"{where}: {key}: expected a string, got {data[key]!r}")
            values[key] = data[key].strip()
    for key in ("health_check", "expire"):
        if key in data:
            values[key] = _seconds(where, key, data[key])
    for key in ("force_tcp", "cache"):
        if key in data:
            if not isinstance(data[key], bool):
                raise ConfigError(f"{where}: {key}: expected true or false, got {data[key]!r}")
            values[key] = data[key]
    if "max_fails" in data:
        if type(data["max_fails"]) is not int or data["max_fails"] < 0:
            raise ConfigError(f"{where}: max_fails: expected an integer >= 0, "
                              f"got {data['max_fails']!r}")
        values["max_fails"] = data["max_fails"]
    if "except" in data:
        items = data["except"] if isinstance(data["except"], list) else [data["except"]]
        try:
            values["except_domains"] = tuple(domain_name(str(i)) for i in items)
        except ValueError as exc:
            raise ConfigError(f"{where}: except: {exc}") from None
    out = []
    for name in names:
        spec = ForwardDomain(domain=name, where=where, **values)
        validate(where, spec)
        out.append(spec)
    return out


def normalize_to(where: str, value: Any) -> tuple[str, ...]:
    """Upstream entries checked and written one way (addresses with their
    port); duplicates dropped; at most MAX_UPSTREAMS."""
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{where}: expected a list of strings, got {item!r}")
        item = item.strip()
        if upstreams.is_file_entry(item):
            entry = item  # a resolv.conf file, read when the server starts
        else:
            try:
                entry = str(upstreams.parse_address(item))
            except ValueError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        if entry not in out:
            out.append(entry)
    if len(out) > upstreams.MAX_UPSTREAMS:
        raise ConfigError(f"{where}: at most {upstreams.MAX_UPSTREAMS} entries, got {len(out)}")
    return tuple(out)


def validate(where: str, spec: ForwardDomain) -> None:
    """What a ForwardDomain must hold, whichever file format gave it."""
    if spec.policy not in POLICIES:
        raise ConfigError(f"{where}: policy: one of {', '.join(POLICIES)}, got {spec.policy!r}")
    if 0 < spec.health_check < MIN_HEALTH_CHECK:
        raise ConfigError(f"{where}: health_check: at least {MIN_HEALTH_CHECK} s")
    tls_keys = [k for k in ("tls_servername", "tls_ca", "tls_cert", "tls_key")
                if getattr(spec, k)]
    if tls_keys and not spec.uses_tls:
        raise ConfigError(f"{where}: {tls_keys[0]} is set but no upstream is tls:// "
                          "(it would do nothing)")
    if spec.uses_tls:
        _check_files(where, spec)
    for ex in spec.except_domains:
        if not is_under(ex, spec.domain):
            raise ConfigError(f"{where}: except {ex}: not under {spec.domain} "
                              "(it would do nothing)")


def is_under(name: str, domain: str) -> bool:
    return domain == "." or name == domain or name.endswith("." + domain)


def parse(source: str, value: Any) -> tuple[ForwardDomain, ...]:
    """The ``forward`` key: a list of entries, each domain at most once."""
    if not isinstance(value, list):
        raise ConfigError(f"{source}: config key forward: expected a list of domains, "
                          f"got {value!r}")
    out: list[ForwardDomain] = []
    for index, data in enumerate(value):
        out.extend(parse_entry(source, index, data))
    check_unique(source, out)
    return tuple(out)


def check_unique(source: str, specs) -> None:
    seen: dict[str, ForwardDomain] = {}
    for spec in specs:
        if spec.domain in seen:
            raise ConfigError(f"{spec.where or source}: domain {spec.domain} is forwarded "
                              f"twice (first at {seen[spec.domain].where or source})")
        seen[spec.domain] = spec


def effective(config) -> tuple[ForwardDomain, ...]:
    """Every forwarded domain of a config: its ``forward`` entries, and the
    root from ``upstream`` unless an entry names the root itself."""
    specs = tuple(config.forward)
    if any(s.domain == "." for s in specs):
        return specs
    return specs + (ForwardDomain(".", tuple(config.upstream)),)
