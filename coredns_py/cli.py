"""The ``coredns-py`` command: serve, check, get, env, resolv-conf.

Every failure a user can cause (a port in use, an unreadable folder, a bad
config key) is one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Optional

from coredns_py import __version__
from coredns_py import config as config_mod
from coredns_py.errors import ConfigError, CorednsPyError, ListenError

log = logging.getLogger("coredns_py")

DEFAULT_LISTEN = "127.0.0.1:5353"

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def _common(p: argparse.ArgumentParser, manifests: bool = True) -> None:
    if manifests:
        p.add_argument("--manifests", type=Path, default=config_mod.DEFAULT_MANIFESTS,
                       metavar="DIR", help="folder of Kubernetes manifests "
                       "(default: the bundled examples in zones/)")
        p.add_argument("--default-namespace", metavar="NS", default=None,
                       help="namespace of objects that name none, as kubectl apply -n NS "
                       "(default: config key default_namespace, 'default')")
    p.add_argument("--config", type=Path, default=None, metavar="FILE",
                   help="YAML configuration (default: config/coredns_py.yaml)")
    p.add_argument("--corefile", type=Path, default=None, metavar="FILE",
                   help="a CoreDNS Corefile instead of --config (README: Coming from CoreDNS)")


def _etcd_options(p: argparse.ArgumentParser, required: bool = False) -> None:
    from coredns_py.etcd.layout import DEFAULT_PREFIX
    what = ("where to publish" if required else
            "read the cluster a publisher keeps in etcd instead of a folder")
    p.add_argument("--etcd", required=required, default=None, metavar="URLS",
                   help=f"{what}: client URLs of the etcd members, comma-separated "
                   "(TLS and user from the config keys etcd_*)")
    p.add_argument("--prefix", default=DEFAULT_PREFIX, metavar="P",
                   help=f"key prefix in etcd (default {DEFAULT_PREFIX})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coredns-py",
        description="Kubernetes cluster DNS from a folder of manifests, without a cluster.")
    parser.add_argument("--version", action="version", version=f"coredns-py {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="answer DNS over UDP and TCP")
    _common(p)
    p.add_argument("--listen", action="append", metavar="HOST:PORT",
                   help=f"address to serve UDP and TCP on; repeatable (default {DEFAULT_LISTEN})")
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"])
    p.add_argument("--http", default=None, metavar="HOST:PORT",
                   help="HTTP listener for /health, /ready, /metrics and the status page "
                   "(default 127.0.0.1:9153, CoreDNS's metrics port; '' turns it off)")
    p.add_argument("--lameduck", type=float, default=None, metavar="SECONDS",
                   help="on SIGTERM/SIGINT, report unhealthy and keep answering this long "
                   "before closing (default 5, as CoreDNS's health lameduck in Kubernetes)")
    p.add_argument("--log-queries", action="store_true",
                   help="log one line per query (client, name, type, rcode, size, duration)")
    p.add_argument("--log-format", default="text", choices=["text", "json"],
                   help="log lines as plain text or JSON lines")
    _etcd_options(p)

    p = sub.add_parser("publish", help="publish the folder's cluster to etcd for replicas "
                       "(serve --etcd) on other hosts")
    _common(p)
    _etcd_options(p, required=True)
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-format", default="text", choices=["text", "json"],
                   help="log lines as plain text or JSON lines")

    p = sub.add_parser("check", help="load the folder as the server would and report problems")
    _common(p)
    p.add_argument("--verbose", "-v", action="store_true",
                   help="also name every document that is not served (other kinds)")

    p = sub.add_parser("get", help="show what the server sees, like kubectl get")
    p.add_argument("resource", choices=["services", "svc", "endpoints", "ep", "pods", "po"])
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", default="default")
    scope.add_argument("-A", "--all-namespaces", action="store_true")
    _common(p)
    _etcd_options(p)

    p = sub.add_parser("env", help="print the service environment variables a pod sees")
    p.add_argument("--namespace", "-n", required=True, metavar="NS")
    p.add_argument("--no-service-links", action="store_true",
                   help="as enableServiceLinks: false (only default/kubernetes)")
    p.add_argument("--format", choices=["env", "sh", "json"], default="env")
    _common(p)
    _etcd_options(p)

    p = sub.add_parser("resolv-conf", help="print the resolv.conf a pod in NS gets")
    p.add_argument("--namespace", "-n", required=True, metavar="NS")
    p.add_argument("--nameserver", required=True, metavar="IP")
    _common(p, manifests=False)
    return parser


def _setup_logging(level: str = "info", fmt: str = "text") -> None:
    from coredns_py.logs import formatter
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler])


def load_cluster(args, config, state: bool = True, log_errors: bool = True):
    """Load the folder and fill it in, exactly as ``serve`` does (or, with
    ``--etcd``, read what a publisher keeps there)."""
    from coredns_py.cluster import local
    if getattr(args, "etcd", None):
        return etcd_source(args, config, log_errors=log_errors).load()
    return local.from_folder(args.manifests, config, state=state, incremental=False,
                             log_errors=log_errors).load()


def etcd_source(args, config, log_errors: bool = True):
    """The replica's cluster source of ``--etcd URLS --prefix P``."""
    from coredns_py.cluster.replica import EtcdCluster
    from coredns_py.etcd import client
    from coredns_py.etcd.layout import Layout
    if args.manifests != config_mod.DEFAULT_MANIFESTS:
        raise ConfigError("--etcd reads the cluster from etcd: give it --manifests on the "
                          "publisher (coredns-py publish), not here")
    return EtcdCluster(client.connect(args.etcd, config), Layout(args.prefix),
                       log_errors=log_errors)


def cmd_serve(args, config, config_file) -> int:
    from coredns_py.cluster import local
    from coredns_py.net.listen import parse_listen
    from coredns_py.ops import health, http
    from coredns_py.server import Server
    from coredns_py.source.tree import list_files

    # Command-line flags win over the config (a Corefile's port and bind,
    # its health, ready and prometheus addresses).
    try:
        listens = [parse_listen(text)
                   for text in (args.listen or config.listen or [DEFAULT_LISTEN])]
    except ValueError as exc:
        print(f"coredns-py: --listen: {exc}", file=sys.stderr)
        return EXIT_USAGE
    plugin_addresses = {plugin: parse_listen(text) for plugin, text in (
        ("health", config.health_listen), ("ready", config.ready_listen),
        ("prometheus", config.metrics_listen)) if text and args.http is None}
    try:
        http_address = None if plugin_addresses and args.http is None else http.parse_http(
            http.DEFAULT_HTTP if args.http is None else args.http)
    except ValueError as exc:
        print(f"coredns-py: --http: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.etcd:
        source = etcd_source(args, config)
    else:
        list_files(args.manifests)  # an unreadable folder fails now, with one line
        source = local.from_folder(args.manifests, config)
    server = Server(source, config, listens, config_file=config_file)
    if args.log_queries:
        server.force_query_log()

    async def run() -> None:
        # HTTP first: /ready says 503 while the first load runs.  What it
        # has to say waits until DNS is bound: a failure there is one line.
        listener, http_news = http.start_http(server, http_address,
                                              required=args.http is not None)
        try:
            extra = http.start_plugin_listeners(server, plugin_addresses)
        except ListenError:
            if listener is not None:
                listener.close()
            raise
        listener = http.HttpListeners([listener, *extra]) if extra else listener
        try:
            await serve(listener, http_news)
        finally:
            if listener is not None:
                listener.close()

    async def serve(listener, http_news) -> None:
        await server.start()
        http_news()
        for host, port in server.listeners.addresses:
            log.info("serving %s on %s port %d (udp, tcp)", config.zone, host, port)
        log.info("reading the manifests in %s", args.manifests)
        _log_recursion(server)
        stop, hurry = asyncio.Event(), asyncio.Event()

        def on_stop() -> None:  # a second SIGTERM/SIGINT cuts the lame duck short
            (hurry if stop.is_set() else stop).set()

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, on_stop)
        loop.add_signal_handler(signal.SIGINT, on_stop)
        loop.add_signal_handler(signal.SIGHUP, server.request_reload)
        await stop.wait()
        lameduck = server.config.lameduck if args.lameduck is None else args.lameduck
        await health.lame_duck(listener, max(0.0, lameduck), hurry)
        log.info("shutting down")
        await server.stop()

    try:
        asyncio.run(run())
    except ListenError as exc:
        print(f"coredns-py: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    return EXIT_OK


def _log_recursion(server) -> None:
    """On an address others can reach, say who may have names forwarded."""
    import ipaddress
    acl = server.forwarder.acl if server.forwarder is not None else None
    exposed = [h for h, _ in server.listeners.addresses
               if not ipaddress.ip_address(h).is_loopback]
    if acl is None or not exposed:
        return
    log.info("listening on %s: clients in %s may recurse (names outside our zones are "
             "forwarded); others get REFUSED for them (config key allow_recursion)",
             ", ".join(exposed), acl.describe())
    if acl.open:
        log.warning("allow_recursion lets every address recurse: this is an open resolver")


def cmd_check(args, config, config_file) -> int:
    # The config was read and validated before we got here (a broken one
    # is its one error line); what it accepts without acting on is listed.
    for item in config_file.not_acted_on:
        print(f"{item}: accepted, not acted on")
    # check prints each problem itself, once: the source must not log them too.
    load = load_cluster(args, config, state=False, log_errors=False)
    built = load.cluster
    problems = list(load.errors)
    for err in problems:
        print(err)
    for notice in load.notices:
        print(f"warning: {notice}")
    if args.verbose:
        for doc in load.ignored:
            print(f"not served: {doc}")
    if problems:
        print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in {args.manifests}",
              file=sys.stderr)
    else:
        print(f"ok: {load.files} files, {len(built.namespaces)} namespaces, "
              f"{len(built.services)} services, {len(built.slices)} endpoint slices, "
              f"{len(built.pods)} pods")
    summary = ignored_summary(load.ignored)
    if summary:
        print(summary)
    return EXIT_PROBLEMS if problems else EXIT_OK


def ignored_summary(ignored) -> str:
    """One line: how many documents were not served, by kind, most first
    (``ignored 14 objects of kinds we do not serve: ConfigMap 3, Secret 2 ...``)."""
    from collections import Counter
    kinds = Counter(doc.kind for doc in ignored if doc.kind)
    others = sum(1 for doc in ignored if not doc.kind)
    parts = []
    if kinds:
        total = sum(kinds.values())
        listed = ", ".join(f"{kind} {n}" for kind, n in
                           sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
        parts.append(f"{total} object{'s' if total != 1 else ''} of kinds we do not serve: "
                     f"{listed}")
    if others:
        parts.append(f"{others} document{'s' if others != 1 else ''} that "
                     f"{'are' if others != 1 else 'is'} no Kubernetes object (neither "
                     "apiVersion nor kind)")
    return f"ignored {'; and '.join(parts)}" if parts else ""


def cmd_get(args, config, config_file) -> int:
    from coredns_py.ops import table
    built = load_cluster(args, config).cluster
    namespace: Optional[str] = None if args.all_namespaces else args.namespace
    kind = {"svc": "services", "ep": "endpoints", "po": "pods"}.get(args.resource, args.resource)
    print(table.render(kind, built, namespace, config), end="")
    return EXIT_OK


def cmd_env(args, config, config_file) -> int:
    from coredns_py.pod import envvars
    built = load_cluster(args, config).cluster
    try:
        result = envvars.service_env(built.services, args.namespace,
                                     service_links=not args.no_service_links)
    except ValueError as exc:
        print(f"coredns-py: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for warning in result.warnings:
        print(f"coredns-py: warning: {warning}", file=sys.stderr)
    try:
        sys.stdout.write(envvars.format_env(result.variables, args.format))
    except envvars.EnvFileError as exc:
        print(f"coredns-py: {exc}", file=sys.stderr)
        return EXIT_PROBLEMS
    return EXIT_OK


def cmd_resolv_conf(args, config, config_file) -> int:
    from coredns_py.pod import resolvconf
    try:
        sys.stdout.write(resolvconf.resolv_conf(args.namespace, args.nameserver, config.zone))
    except ValueError as exc:
        print(f"coredns-py: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def cmd_publish(args, config, config_file) -> int:
    from coredns_py.etcd import client
    from coredns_py.etcd.layout import Layout
    from coredns_py.publish.publisher import Publisher
    from coredns_py.source.tree import list_files

    list_files(args.manifests)  # an unreadable folder fails now, with one line
    publisher = Publisher(args.manifests, config, client.connect(args.etcd, config),
                          Layout(args.prefix))
    log.info("publishing %s to etcd %s under %s as %s", args.manifests,
             publisher.etcd.describe(), publisher.layout.prefix, publisher.identity)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, publisher.stop)
        loop.add_signal_handler(signal.SIGINT, publisher.stop)
        loop.add_signal_handler(signal.SIGHUP, publisher.republish)
        await publisher.run()

    asyncio.run(run())
    return EXIT_OK


COMMANDS = {"serve": cmd_serve, "publish": cmd_publish, "check": cmd_check, "get": cmd_get, "env": cmd_env,
            "resolv-conf": cmd_resolv_conf}


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(getattr(args, "log_level", "warning"), getattr(args, "log_format", "text"))
    from coredns_py.configfile import ConfigFile
    if args.config is not None and args.corefile is not None:
        print("coredns-py: --config and --corefile: give one of them", file=sys.stderr)
        return EXIT_USAGE
    try:
        config_file = ConfigFile(args.corefile if args.corefile is not None else args.config,
                                 corefile=args.corefile is not None)
        if getattr(args, "default_namespace", None) is not None:
            config_mod.check_namespace("--default-namespace", args.default_namespace)
            config_file.overrides["default_namespace"] = args.default_namespace
        config = config_file.load()
        return COMMANDS[args.command](args, config, config_file)
    except CorednsPyError as exc:
        print(f"coredns-py: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
