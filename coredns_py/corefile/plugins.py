"""The Corefile's plugins, turned into the same Config the YAML file gives.

Each directive we implement sets config keys; options that change nothing
a local server answers are accepted and listed (``check`` prints them); a
directive or option we do not implement is an error naming its line, so
nothing is ever silently ignored.

How CoreDNS's server blocks map onto one coredns-py server:

- every block must use the same port (one set of listen addresses); their
  ``bind`` addresses are listened on together;
- the block holding ``kubernetes`` gives the cluster zone; a block for
  another zone is a stub domain: its ``forward`` goes to the domain table,
  the longest zone wins, as CoreDNS picks the block;
- ``cache`` is one cache: its settings must agree where it appears, and a
  domain whose block has no ``cache`` is not cached.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from coredns_py import config as config_mod
from coredns_py import hostport
from coredns_py.corefile import arguments
from coredns_py.corefile.arguments import duration, fail, integer, is_under, zones_of
from coredns_py.corefile.blocks import Line, ServerBlock
from coredns_py.errors import ConfigError
from coredns_py.resolver import forward_config
from coredns_py.resolver.forward_config import ForwardDomain
from coredns_py.stages import hosts as hosts_mod
from coredns_py.stages import rewrite_rules
from coredns_py.zone import external as external_mod

DNS_PORT = 53
REVERSE = ("in-addr.arpa", "ip6.arpa")

# CoreDNS's defaults for the addresses of its HTTP plugins.
HEALTH_DEFAULT = ":8080"
READY_DEFAULT = ":8181"
PROMETHEUS_DEFAULT = "localhost:9153"
RELOAD_DEFAULT = 30  # seconds (CoreDNS reload)
SERVE_STALE_DEFAULT = 3600  # seconds (CoreDNS cache serve_stale)

IMPLEMENTED = ("bind", "cache", "errors", "forward", "health", "hosts", "k8s_external",
               "kubernetes", "loadbalance", "log", "loop", "prometheus", "ready", "reload",
               "rewrite", "transfer")


@dataclass
class _Block:
    zones: list[str]  # "." or names, lower case
    port: int
    server: ServerBlock
    cache: Optional[dict] = None
    cache_line: Optional[Line] = None
    binds: list[str] = field(default_factory=list)


class Mapper:
    """One Corefile's blocks into config values, with what it did not act on."""

    def __init__(self, path: Path):
        self.base = Path(path).parent
        # No forward: nothing forwarded; no transfer: no zone transfers.
        self.data: dict[str, Any] = {"upstream": [], "transfer_to": []}
        self.transfer_line: Optional[Line] = None
        self.forward: list[ForwardDomain] = []
        self.hosts: list[hosts_mod.HostsSpec] = []
        self.external: list = []  # k8s_external specs
        self.rewrite: list = []  # rewrite rules, in order
        self.not_acted_on: list[str] = []
        self.kubernetes: Optional[Line] = None
        self.singletons: dict[str, Line] = {}
        # cache `disable` lines, judged once the cluster zone is known
        self.disables: list[tuple[Line, list[str]]] = []

    # --- blocks ------------------------------------------------------------------------

    def block(self, server: ServerBlock) -> _Block:
        zones, ports = [], set()
        for key in server.keys:
            text = key.text
            scheme, sep, rest = text.partition("://")
            if not sep:
                scheme, rest = "dns", text
            if scheme != "dns":
                raise fail(key, f"server block {text}: {scheme}:// servers are not implemented "
                                "(coredns-py serves plain DNS over UDP and TCP)")
            zone_text, port = rest, DNS_PORT
            m = re.fullmatch(r"(.*?):(\d+)", rest)
            if m and "/" not in m.group(2):
                zone_text, port = m.group(1), int(m.group(2))
            if not zone_text:
                zone_text = "."
            zones.extend(zones_of(type(key)(zone_text, key.file, key.line)))
            ports.add(port)
        if len(ports) != 1:
            raise fail(server, "one server block with several ports: coredns-py serves every "
                               "zone on one port")
        return _Block(zones, ports.pop(), server)

    def run(self, servers: list[ServerBlock]) -> None:
        blocks = [self.block(s) for s in servers]
        ports = sorted({b.port for b in blocks})
        if len(ports) > 1:
            other = next(b for b in blocks if b.port != blocks[0].port)
            raise fail(other.server, f"server block on port {other.port}: coredns-py serves "
                       f"every zone on one port (this Corefile uses {', '.join(map(str, ports))});"
                       " run one coredns-py per port")
        seen: dict[str, str] = {}
        for b in blocks:
            for z in b.zones:
                if z in seen:
                    raise fail(b.server, f"zone {z} has two server blocks (the first at "
                                         f"{seen[z]})")
                seen[z] = b.server.where
        for b in blocks:
            for line in b.server.lines:
                handler = getattr(self, "d_" + line.name.text, None)
                if handler is None or line.name.text not in IMPLEMENTED:
                    raise fail(line, f"unknown or unsupported directive {line.name.text!r} "
                               f"(coredns-py implements: {', '.join(IMPLEMENTED)})")
                handler(b, line)
        self.finish(blocks)

    def once(self, line: Line) -> None:
        """Plugins that exist once per server here (CoreDNS: once per block)."""
        name = line.name.text
        if name in self.singletons:
            raise fail(line, f"{name} given twice (first at {self.singletons[name].where}); "
                             "coredns-py has one for the whole server")
        self.singletons[name] = line

    def no_block(self, line: Line) -> None:
        if line.has_block:
            raise fail(line, f"{line.name.text} takes no options block")

    def ignored(self, line: Line, what: str, why: str) -> None:
        self.not_acted_on.append(f"{line.where}: {what} ({why})")

    # --- directives -------------------------------------------------------------------

    def d_bind(self, b: _Block, line: Line) -> None:
        self.no_block(line)
        if not line.args:
            raise fail(line, "bind needs an address")
        for tok in line.args:
            try:
                ip = ipaddress.ip_address(tok.text.split("%", 1)[0])
            except ValueError:
                raise fail(tok, f"bind {tok.text}: expected an IP address (interface names are "
                                "not implemented)") from None
            b.binds.append(str(ip))

    def d_errors(self, b: _Block, line: Line) -> None:
        for opt in line.block:
            self.ignored(opt, f"errors {opt.name.text}", "errors are always logged, each once")

    def d_log(self, b: _Block, line: Line) -> None:
        if line.has_block or [w for w in line.words() if w != "."]:
            raise fail(line, "log with names, a format or classes is not implemented (bare "
                             "`log` logs every query in CoreDNS's common format)")
        self.data["log_queries"] = True

    def d_loop(self, b: _Block, line: Line) -> None:
        self.no_block(line)
        self.ignored(line, "loop", "no loop probe is sent; an upstream that is this server's "
                               "own address is left out at start instead")

    def d_reload(self, b: _Block, line: Line) -> None:
        self.once(line)
        self.no_block(line)
        if len(line.args) > 2:
            raise fail(line, "reload takes [INTERVAL [JITTER]]")
        interval = duration(line.args[0], False) if line.args else RELOAD_DEFAULT
        self.data["reload"] = max(1, round(interval))
        if len(line.args) == 2:
            self.ignored(line, f"reload jitter {line.args[1].text}", "one server: no herd to "
                                                                     "spread")

    def d_health(self, b: _Block, line: Line) -> None:
        self.once(line)
        self.data["health_listen"] = arguments.http_address(line, HEALTH_DEFAULT)
        for opt in line.block:
            if opt.name.text != "lameduck" or len(opt.args) != 1:
                raise fail(opt, f"health option {opt.name.text!r}: only `lameduck DURATION`")
            self.data["lameduck"] = duration(opt.args[0], False)

    def d_ready(self, b: _Block, line: Line) -> None:
        self.once(line)
        self.no_block(line)
        self.data["ready_listen"] = arguments.http_address(line, READY_DEFAULT)

    def d_prometheus(self, b: _Block, line: Line) -> None:
        self.once(line)
        self.no_block(line)
        self.data["metrics_listen"] = arguments.http_address(line, PROMETHEUS_DEFAULT)

    def d_kubernetes(self, b: _Block, line: Line) -> None:
        self.once(line)
        self.kubernetes = line
        zones = [z for tok in line.args for z in zones_of(tok)] or list(b.zones)
        cluster = [z for z in zones if not any(is_under(z, r) for r in REVERSE)]
        if not cluster:
            raise fail(line, "kubernetes needs a cluster zone (e.g. cluster.local)")
        self.data["zone"] = cluster[0]
        if cluster[1:]:
            self.data["extra_zones"] = cluster[1:]
        for z in zones:
            if z not in cluster and z not in REVERSE:
                self.ignored(line, f"kubernetes {z}", "PTR records of every Service and "
                                                      "endpoint address are answered")
        for opt in line.block:
            name, words = opt.name.text, opt.words()
            if name == "pods" and len(words) == 1:
                self.data["pods"] = words[0]
            elif name == "ttl" and len(words) == 1:
                self.data["ttl"] = integer(opt.args[0], 0, config_mod.MAX_TTL)
            elif name == "endpoint_pod_names" and not words:
                self.data["endpoint_pod_names"] = True
            elif name == "ignore" and words == ["empty_service"]:
                self.data["ignore_empty_service"] = True
            elif name == "fallthrough":
                if not words or any(w.rstrip(".") not in REVERSE for w in words):
                    raise fail(opt, "fallthrough for names of the cluster zone is not "
                                    "implemented: only `fallthrough in-addr.arpa ip6.arpa` "
                                    "(reverse names we do not know go upstream)")
            elif name in ("namespaces", "labels", "namespace_labels") and words:
                value = words if name == "namespaces" else " ".join(words)
                try:  # checked here, to name the line
                    config_mod.parse({name: value})
                    self.data[name] = value
                except ConfigError as exc:
                    raise fail(opt, str(exc).split(": ", 1)[1]) from None
            elif name in ("endpoint", "tls", "kubeconfig", "apiserver", "startup_timeout",
                          "upstream"):
                self.ignored(opt, f"kubernetes {name}", "the cluster comes from the manifests "
                                                        "folder, not an API server")
            else:
                raise fail(opt, f"kubernetes option {name!r} "
                                f"{'with these arguments ' if words else ''}is not implemented")

    def d_forward(self, b: _Block, line: Line) -> None:
        if len(line.args) < 2:
            raise fail(line, "forward needs FROM and at least one TO")
        from_tok, to_toks = line.args[0], line.args[1:]
        origins = []
        for zone in b.zones:
            for f in zones_of(from_tok):
                if f == ".":
                    origins.append(zone)
                elif is_under(f, zone):
                    origins.append(f)
        if not origins:
            raise fail(from_tok, f"forward {from_tok.text}: not under this block's zones "
                                 f"({', '.join(b.zones)}); it would never be used")
        to = []
        for tok in to_toks:
            text = tok.text
            if not re.match(r"^[a-z]+://", text) and not text.startswith("/") \
                    and not arguments.looks_like_address(text):
                text = str(self.base / text)  # a resolv.conf next to the Corefile
            to.append(text)
        values: dict[str, Any] = {"policy": "random"}  # CoreDNS's default
        tls_args: Optional[list[str]] = None
        for opt in line.block:
            name, words = opt.name.text, opt.words()
            if name == "except" and words:
                values["except_domains"] = tuple(z for tok in opt.args for z in zones_of(tok))
            elif name == "force_tcp" and not words:
                values["force_tcp"] = True
            elif name == "prefer_udp" and not words:
                self.ignored(opt, "forward prefer_udp", "questions go over UDP first anyway")
            elif name == "expire" and len(words) == 1:
                values["expire"] = duration(opt.args[0], False)
            elif name == "max_fails" and len(words) == 1:
                values["max_fails"] = integer(opt.args[0])
            elif name == "tls" and len(words) <= 3:
                tls_args = [str(self.base / w) if not w.startswith("/") else w for w in words]
            elif name == "tls_servername" and len(words) == 1:
                values["tls_servername"] = words[0]
            elif name == "policy" and len(words) == 1:
                values["policy"] = words[0]
            elif name == "health_check" and len(words) == 1:
                values["health_check"] = duration(opt.args[0], False)
            elif name in ("max_concurrent", "max_idle_conns") and len(words) == 1:
                integer(opt.args[0])
                self.ignored(opt, f"forward {name} {words[0]}",
                             "a local server's load needs no such cap; upstream exchanges "
                             "are bounded at 256 at once")
            else:
                raise fail(opt, f"forward option {name!r} "
                                f"{'with these arguments ' if words else ''}is not implemented")
        if tls_args is not None:
            if len(tls_args) == 1:
                values["tls_ca"] = tls_args[0]
            elif len(tls_args) >= 2:
                values["tls_cert"], values["tls_key"] = tls_args[0], tls_args[1]
                if len(tls_args) == 3:
                    values["tls_ca"] = tls_args[2]
        normalized = forward_config.normalize_to(f"{line.where}: forward", to)
        for origin in origins:
            spec = ForwardDomain(domain=origin, to=normalized, where=line.where, **values)
            forward_config.validate(f"{line.where}: forward", spec)
            self.forward.append(spec)

    def d_cache(self, b: _Block, line: Line) -> None:
        if b.cache is not None:
            raise fail(line, f"cache given twice in this block (first at {b.cache_line.where})")
        settings: dict[str, Any] = {}
        args = list(line.args)
        if args and re.fullmatch(r"\d+", args[0].text):
            settings["cache_max_ttl"] = integer(args.pop(0), 0, config_mod.MAX_CACHE_TTL)
        if args:
            raise fail(args[0], "cache for some zones of a block only is not implemented "
                                "(the block's zones are cached)")
        size = {}
        for opt in line.block:
            name, words = opt.name.text, opt.words()
            if name in ("success", "denial") and 1 <= len(words) <= 2:
                size[name] = integer(opt.args[0], 0, config_mod.MAX_CACHE_SIZE)
                if len(words) == 2:
                    ttl = integer(opt.args[1], 0, config_mod.MAX_CACHE_TTL)
                    if settings.setdefault("cache_max_ttl", ttl) != ttl:
                        raise fail(opt, "different TTLs for success and denial are not "
                                        "implemented (one cache, one longest TTL)")
            elif name == "prefetch" and 1 <= len(words) <= 3:
                settings["cache_prefetch"] = integer(opt.args[0], 1)
                for tok in opt.args[1:]:
                    if tok.text.endswith("%"):
                        settings["cache_prefetch_percentage"] = integer(
                            type(tok)(tok.text[:-1], tok.file, tok.line), 10, 90)
                    else:
                        settings["cache_prefetch_window"] = max(1, round(duration(tok, False)))
            elif name == "serve_stale" and len(words) <= 2:
                settings["cache_serve_stale"] = round(duration(opt.args[0], False)) \
                    if words else SERVE_STALE_DEFAULT
                if len(words) == 2:
                    if words[1] not in config_mod.STALE_MODES:
                        raise fail(opt, f"serve_stale mode {words[1]!r}: immediate or verify")
                    settings["cache_serve_stale_mode"] = words[1]
            elif name == "disable" and len(words) >= 2 and words[0] in ("success", "denial"):
                self.disables.append((opt, words[1:]))
            elif name == "servfail" and words == ["0"]:
                self.ignored(opt, "cache servfail 0", "SERVFAIL is never cached")
            else:
                raise fail(opt, f"cache option {name!r} "
                                f"{'with these arguments ' if words else ''}is not implemented")
        if size:
            settings["cache_size"] = sum(size.values())
        b.cache, b.cache_line = settings, line

    def d_hosts(self, b: _Block, line: Line) -> None:
        args = line.words()
        path = args[0] if args else "/etc/hosts"
        if not path.startswith("/"):
            path = str(self.base / path)
        zones = [hosts_mod.zone_text(z) for tok in line.args[1:] for z in zones_of(tok)] or \
            [hosts_mod.zone_text(z) for z in b.zones]
        values: dict[str, Any] = {"files": (path,), "zones": tuple(zones)}
        entries = []
        for opt in line.block:
            name, words = opt.name.text, opt.words()
            if name == "ttl" and len(words) == 1:
                values["ttl"] = integer(opt.args[0], 0, hosts_mod.MAX_TTL)
            elif name == "reload" and len(words) == 1:
                values["reload"] = duration(opt.args[0], False)
            elif name == "no_reverse" and not words:
                values["no_reverse"] = True
            elif name == "fallthrough":
                values["fallthrough"] = tuple(hosts_mod.zone_text(z) for tok in opt.args
                                              for z in zones_of(tok)) or tuple(zones)
            elif name == "fallthrough_unsupported" and not words:
                values["fallthrough_unsupported"] = True
            else:
                entries.append(" ".join([name] + words))  # an inline hosts line
        values["entries"] = tuple(entries)
        spec = hosts_mod.HostsSpec(where=line.where, **values)
        hosts_mod.validate(line.where, spec)
        self.hosts.append(spec)

    def d_rewrite(self, b: _Block, line: Line) -> None:
        # The block form's lines are the rule's words, one after the other
        # (`rewrite stop {` / `name regex ...` / `answer name ...` / `}`).
        words = line.words() + [w for o in line.block for w in [o.name.text] + o.words()]
        self.rewrite.append(rewrite_rules.parse_rule(line.where, words))

    def d_k8s_external(self, b: _Block, line: Line) -> None:
        zones = [z for tok in line.args for z in zones_of(tok)] or list(b.zones)
        if "." in zones:
            raise fail(line, "k8s_external needs its zones (e.g. `k8s_external example.com`)")
        data: dict[str, Any] = {"zones": zones}
        for opt in line.block:
            name, words = opt.name.text, opt.words()
            if name == "apex" and len(words) == 1:
                data["apex"] = words[0]
            elif name == "ttl" and len(words) == 1:
                data["ttl"] = integer(opt.args[0], 0, external_mod.MAX_TTL)
            elif name == "headless" and not words:
                data["headless"] = True
            elif name == "fallthrough":
                data["fallthrough"] = [z for tok in opt.args for z in zones_of(tok)] or ["."]
            else:
                raise fail(opt, f"k8s_external option {name!r} "
                                f"{'with these arguments ' if words else ''}is not implemented")
        self.external.append(external_mod.parse_entry(line.where, data))

    def d_loadbalance(self, b: _Block, line: Line) -> None:
        self.once(line)
        words = line.words() or ["round_robin"]
        if words != ["round_robin"]:
            raise fail(line, f"loadbalance {' '.join(words)}: only round_robin is implemented "
                             "(the `weighted` policy is not)")
        self.data["loadbalance"] = "round_robin"
        for opt in line.block:
            if opt.name.text != "prefer" or not opt.args:
                raise fail(opt, f"loadbalance option {opt.name.text!r}: only `prefer CIDR...`")
            try:
                self.data["loadbalance_prefer"] = list(config_mod.parse(
                    {"loadbalance_prefer": opt.words()}).loadbalance_prefer)
            except ConfigError as exc:
                raise fail(opt, str(exc).split(": ", 1)[1]) from None

    def d_transfer(self, b: _Block, line: Line) -> None:
        self.once(line)
        zones = [z for tok in line.args for z in zones_of(tok)] or list(b.zones)
        to: list[str] = []
        for opt in line.block:
            if opt.name.text == "to" and opt.args:
                for tok in opt.args:
                    text = tok.text
                    if text != "*":  # an address, maybe with a port (used for NOTIFY)
                        from coredns_py.resolver import upstreams
                        try:
                            text = upstreams.parse_address(text).host
                        except ValueError:
                            raise fail(tok, f"transfer to {tok.text}: expected *, an IP address "
                                            "or IP:PORT") from None
                    to.append(text)
            elif opt.name.text == "source" and len(opt.args) == 1:
                self.ignored(opt, "transfer source", "no NOTIFY is sent")
            else:
                raise fail(opt, f"transfer option {opt.name.text!r}: only `to ADDRESS...`")
        self.data["transfer_to"] = to  # no `to`: nobody, as CoreDNS
        if "." not in zones:
            self.data["transfer_zones"] = zones
        self.transfer_line = line

    # --- the whole server ---------------------------------------------------------------

    def finish(self, blocks: list[_Block]) -> None:
        if self.kubernetes is None:
            where = blocks[0].server.where if blocks else "Corefile"
            raise ConfigError(f"{where}: no kubernetes directive: coredns-py serves a cluster "
                              "zone (add `kubernetes cluster.local in-addr.arpa ip6.arpa`)")
        port = blocks[0].port
        binds: list[str] = []
        for b in blocks:
            binds.extend(h for h in b.binds if h not in binds)
        self.data["listen"] = [hostport.join(h, port) for h in (binds or ["0.0.0.0"])]
        # One cache: the settings must agree wherever it is given.
        caches = [b for b in blocks if b.cache is not None]
        for b in caches[1:]:
            if b.cache != caches[0].cache:
                raise fail(b.cache_line, f"cache settings differ from those at "
                                         f"{caches[0].cache_line.where}: coredns-py has one "
                                         "cache for the server")
        if caches:
            self.data.update(caches[0].cache)
        else:
            self.data["cache_size"] = 0
        cached_zones = [z for b in caches for z in b.zones]
        zone = self.data.get("zone", "cluster.local")
        for opt, zones in self.disables:
            outside = [z for z in zones if not is_under(z.lower().rstrip(".") or ".", zone)]
            if outside:
                raise fail(opt, f"cache disable for {', '.join(outside)} is not implemented "
                                "(only for the cluster zone, whose answers are never cached)")
            self.ignored(opt, f"cache disable {' '.join(opt.words())}",
                         "the cluster zone's answers are never cached")
        specs = []
        for spec in self.forward:
            block_zone = max((z for z in cached_zones if is_under(spec.domain, z)),
                             key=len, default=None)
            owner = max((z for b in blocks for z in b.zones if is_under(spec.domain, z)),
                        key=len, default=None)
            cached = block_zone is not None and block_zone == owner
            specs.append(dataclasses.replace(spec, cache=cached))
        # Zones of blocks without forward are not forwarded at all (CoreDNS
        # would not reach another block's forward for them).
        forwarded = {s.domain for s in specs}
        for b in blocks:
            for z in b.zones:
                if z not in forwarded and z != zone and z not in REVERSE and \
                        not any(is_under(z, r) for r in REVERSE):
                    specs.append(ForwardDomain(domain=z, to=(), where=b.server.where))
        forward_config.check_unique("Corefile", specs)
        self.forward = specs


def build(path: Path, servers: list[ServerBlock]) -> tuple[config_mod.Config, list[str]]:
    """The Config of a Corefile's blocks, and what it accepted without acting on."""
    mapper = Mapper(path)
    mapper.run(servers)
    transfer_zones = mapper.data.pop("transfer_zones", ())  # checked below, with the line
    cfg = config_mod.parse(mapper.data, str(path))
    external_mod.check(str(path), mapper.external, (cfg.zone,) + cfg.extra_zones)
    cfg = dataclasses.replace(
        cfg, forward=tuple(mapper.forward), hosts=tuple(mapper.hosts),
        k8s_external=tuple(mapper.external), rewrite=tuple(mapper.rewrite))
    ours = config_mod.served_zones(cfg)
    for z in transfer_zones:
        if z not in ours:
            raise fail(mapper.transfer_line, f"transfer {z}: not a zone served here "
                                             f"({', '.join(ours)})")
    return dataclasses.replace(cfg, transfer_zones=tuple(transfer_zones)), mapper.not_acted_on
