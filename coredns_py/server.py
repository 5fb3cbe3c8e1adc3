"""The running server: a cluster source, the current generation, the answers.

A rebuild runs in a worker thread (:mod:`coredns_py.reloads` decides when);
the new :class:`~coredns_py.generation.Generation` replaces the old one in
one assignment.  Until the first build completes, every query gets SERVFAIL.

The configuration is reloaded too (:meth:`Server.reload_config`, on SIGHUP
and when its file changes): a config that does not validate is refused
with its error and the running one kept; what cannot change without a
restart (``config.RESTART_ONLY``) is reported and left as it was; the rest
takes effect at once: a new generation built with the new config, a new
forwarder, new stages.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import threading
import time
from typing import Optional

from coredns_py.cluster import ClusterSource
from coredns_py.config import RESTART_ONLY, Config
from coredns_py.errors import ConfigError, SourceError
from coredns_py.generation import Builder, Generation
from coredns_py import heap
from coredns_py.ops import metrics as metrics_mod
from coredns_py import stages
from coredns_py.reloads import Reloads
from coredns_py.zone import answer as answer_mod
from coredns_py.zone.prepared import PreparedAnswers

log = logging.getLogger("coredns_py.server")

_clock = time.perf_counter

# The most stopping waits for the source to save what it keeps (the state
# file, behind a lock another process may hold).
CLOSE_SECONDS = 2.0


def _show(value) -> str:
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(map(str, value)) + "]"
    return repr(value) if value == "" else str(value)


def _own_addresses(listens) -> tuple[str, ...]:
    """The addresses this server answers on, for the apex NS (0.0.0.0 is none)."""
    out = []
    for host, _port in listens:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            continue
        if not ip.is_unspecified:
            out.append(str(ip))
    return tuple(out)


class Server:
    def __init__(self, source: ClusterSource, config: Config, listens: list[tuple[str, int]],
                 config_file=None):
        self.source = source
        self.config = config
        # Where the config comes from (coredns_py.configfile), read again on
        # reload; None: the config is fixed for the server's life.
        self.config_file = config_file
        self._config_watch: Optional[asyncio.Task] = None
        self.listens = listens
        # What queries are answered from; None until the first build.  Replaced
        # whole, never changed in place: read it once and use only that one.
        self.generation: Optional[Generation] = None
        self._builder = Builder(source, config, _own_addresses(listens))
        self.reloads: Optional[Reloads] = None
        self.entry = self.handle  # what the listeners call: handle() inside its stages
        # Abuse stages (stages/cookies.py, stages/ratelimit.py), None when off.
        self.cookies = None
        self._cookie_secret = ""
        self.rate_limit = None
        self.listeners = None
        self.watcher = None
        self.answers = PreparedAnswers()
        # Completes answers that need upstream data (names outside our zones,
        # ExternalNames pointing outside); None: such queries are REFUSED.
        self.forwarder = None
        # Static names answered before the cluster zone (stages/hosts.py).
        self.hosts = None
        self._retiring: list = []  # forwarders a reload replaced, still finishing
        # Counts every query (hot path: plain dict updates) and reload;
        # ``observe`` is what handle() reports each query to (the query log
        # wraps it when on).
        self.metrics = metrics_mod.Metrics(current=lambda: self.generation,
                                           addresses=listens, answers=self.answers)
        self.observe = self.metrics.record
        self.metrics.source_gauges = getattr(source, "gauges", None)

    # --- the core call: bytes in, bytes out ---------------------------------------

    def _stages(self) -> list:
        """The stages around handle(), outermost first, in CoreDNS's plugin
        order (plugin.cfg): what limits clients first, then what answers from
        other data (hosts), then what reorders records.  The one place the
        chain's order is written; a stage that is off is None.

        - cookies: every packet first (Knot configures its cookies module
          before RRL): the COOKIE option is checked, answered and taken out
          of the query, so everything inside sees a plain query and the
          prepared answers serve it;
        - rate limiting: every answer made inside (hosts' too), knowing the
          clients a valid cookie vouches for (never limited);
        - loadbalance: shuffles every answer made inside, forwarded ones too
          (CoreDNS puts it before cache and the plugins that answer);
        - rewrite: the question's name rewritten for everything inside (hosts
          too), the answer written back;
        - transfer: zone transfers, from the current generation (CoreDNS:
          after rewrite, before hosts and the zones).
        """
        from coredns_py.stages import hosts, loadbalance, rewrite, transfer
        cfg = self.config
        return [
            self.cookies,
            self.rate_limit,
            loadbalance.stage(cfg.loadbalance_prefer) if cfg.loadbalance else None,
            rewrite.Rewrite(cfg.rewrite).stage if cfg.rewrite else None,
            transfer.stage(cfg.transfer_to, cfg.transfer_zones, self._snapshot, self._observe),
            hosts.stage(self.hosts, self._observe) if self.hosts is not None else None,
        ]

    def _snapshot(self):
        """The current generation's snapshot (None before the first load)."""
        gen = self.generation
        return gen.snapshot if gen is not None else None

    def _observe(self, *args) -> None:
        """What a stage reports a query it answered to (the query log too)."""
        self.observe(*args)

    def handle(self, wire: bytes, proto: str, peer):
        started = _clock()
        gen = self.generation  # read once: the whole answer comes from this one
        snap = gen.snapshot if gen is not None else None
        try:
            out = self.answers.answer(snap, wire, proto, self.forwarder is not None)
        except Exception:
            self.metrics.panics += 1
            raise
        if type(out) is answer_mod.Forward:
            return self._forward(out, wire, proto, peer, started)
        self.observe(wire, out, proto, peer, _clock() - started)
        return out

    def _kept_first(self, chained):
        """The listeners' handler when every stage on lets prepared answers
        be given before it (stages.passes_prepared; by default the transfer
        stage alone): a kept answer straight from the prepared answers,
        counted as handle() counts it; any other query through the chain."""
        kept = self.answers.kept

        def entry(wire: bytes, proto: str, peer):
            started = _clock()
            gen = self.generation  # read once, as in handle()
            out = kept(gen.snapshot, wire, proto) if gen is not None else None
            if out is None:
                return chained(wire, proto, peer)
            self.observe(wire, out, proto, peer, _clock() - started)
            return out
        return entry

    def _forward(self, fwd, wire: bytes, proto: str, peer, started: float):
        """The forwarder's bytes (a refused client, a cache hit), or a task the
        transport waits for; either way the query is counted when answered."""
        out = self.forwarder.complete(fwd, peer)
        if out is None or isinstance(out, (bytes, bytearray)):
            self.observe(wire, out, proto, peer, _clock() - started, metrics_mod.PLUGIN_FORWARD)
            return out
        # A task, not a wrapping coroutine: the transport cancels it cleanly
        # when it is over its cap of pending answers.
        task = asyncio.ensure_future(out)
        task.add_done_callback(lambda t: self.observe(
            wire, None if t.cancelled() or t.exception() is not None else t.result(),
            proto, peer, _clock() - started, metrics_mod.PLUGIN_FORWARD))
        return task

    # --- generations -----------------------------------------------------------------

    def rebuild(self, full: bool = False) -> bool:
        """Build the next generation and swap it in; True when it was.

        Runs in a worker thread, one at a time (Reloads sees to it).  A
        source that cannot be read keeps the current generation (and logs
        why): serving the last good data beats serving nothing.
        """
        with heap.build_paused():
            try:
                gen = self._builder.build(full)
            except SourceError as exc:
                log.error("%s; still serving the last good data", exc)
                self.metrics.reload_failed.inc()
                return False
            if gen is None:
                return False
            self.generation = gen  # the swap: one reference assignment
            heap.after_swap()
        self.metrics.reloads.inc()
        self.metrics.build_seconds.observe(gen.build_seconds)
        log.info("loaded %d files: %s (%.0f ms)", gen.files,
                 ", ".join(f"{v} {k}" for k, v in gen.snapshot.counts.items()),
                 gen.build_seconds * 1000)
        return True

    def addresses(self) -> list[tuple[str, int]]:
        """Where DNS is served: the bound addresses once started (port 0 resolved)."""
        return list(self.listeners.addresses) if self.listeners is not None else list(self.listens)

    def request_reload(self) -> None:
        """A full reload (SIGHUP): the config read again, every cache
        forgotten, a rebuild."""
        if self.config_file is not None:
            self.reload_config()
        if self.reloads is not None:
            self.reloads.request(full=True)

    # --- configuration ------------------------------------------------------------------

    def reload_config(self) -> bool:
        """Read the config file again and apply it; False when it was
        refused or changed nothing (event loop thread)."""
        try:
            new = self.config_file.load()
        except ConfigError as exc:
            log.error("%s; still running with the previous config", exc)
            self.metrics.reload_failed.inc()
            return False
        return self.reconfigure(new)

    def reconfigure(self, new: Config) -> bool:
        """Run with ``new`` from now on, but for what needs a restart."""
        old = self.config
        kept = {k: getattr(old, k) for k in RESTART_ONLY if getattr(new, k) != getattr(old, k)}
        for key in kept:
            log.warning("config %s: %s cannot change without a restart (running with %s, "
                        "the file says %s); keeping %s", self._config_name(), key,
                        _show(getattr(old, key)), _show(getattr(new, key)),
                        _show(getattr(old, key)))
        new = dataclasses.replace(new, **kept)
        if new == old:
            log.info("config %s: nothing to apply", self._config_name())
            return False
        self.config = new
        changed = [f.name for f in dataclasses.fields(Config)
                   if getattr(new, f.name) != getattr(old, f.name)]
        log.info("config %s reloaded: %s changed", self._config_name(), ", ".join(changed))
        self._builder.reconfigure(new)
        if self.listeners is not None:
            self._start_forwarder(old)
            self._start_stages()
            self._start_config_watch()
        self._set_query_log(new.log_queries)
        if self.reloads is not None:
            self.reloads.request(full=True)  # a new generation with the new config
        return True

    def _config_name(self) -> str:
        return self.config_file.description if self.config_file is not None else "config"

    def _start_forwarder(self, old_config: Optional[Config] = None) -> None:
        from coredns_py.resolver import forward
        previous = self.forwarder
        cache = None
        if previous is not None and previous.cache is not None and old_config is not None:
            wanted = forward.new_cache(self.config)
            if previous.cache.same_settings(wanted):
                cache = previous.cache  # the same cache: its answers survive the reload
        # Built on the bound addresses, so no upstream is one of our own.
        self.forwarder = forward.from_config(self.config, self.listeners.addresses,
                                             self.metrics, cache=cache)
        self.metrics.forward_enabled = self.forwarder is not None
        self.answers.forwarding(self.forwarder is not None)
        if previous is not None:
            # Questions in flight finish with their answer within the
            # deadline; then the old upstreams' checks and connections stop.
            self._retiring.append(previous)
            loop = asyncio.get_running_loop()
            loop.call_later(forward.FORWARD_DEADLINE,
                            lambda: loop.create_task(self._retire(previous)))

    async def _retire(self, forwarder) -> None:
        if forwarder in self._retiring:
            self._retiring.remove(forwarder)
            await forwarder.retire()

    def _start_stages(self) -> None:
        """Make the stages the config asks for and the chain of them (at start,
        and on a config reload: open connections get the new chain too)."""
        from coredns_py.stages import hosts
        self._start_abuse()
        if self.hosts is not None:
            self.hosts.stop()
        self.hosts = hosts.Hosts(self.config.hosts) if self.config.hosts else None
        if self.hosts is not None:
            self.hosts.start()
        self.entry = stages.chain(self.handle, self._stages(), kept_first=self._kept_first)
        if self.listeners is not None:
            self.listeners.replace_handler(self.entry)

    def _start_abuse(self) -> None:
        """Cookies and rate limiting as the config says: on, off, or on when
        a listen address is beyond loopback.  A stage whose settings did not
        change is kept as it is, so a reload forgets neither the cookie
        secret (clients' cookies stay valid) nor the rate accounts."""
        from coredns_py.stages.cookies import Cookies, parse_secret
        from coredns_py.stages.ratelimit import RateLimit
        cfg = self.config
        exposed = stages.exposed(self.listens)
        if not stages.wanted(cfg.cookies, exposed):
            self.cookies = None
        elif self.cookies is None or self._cookie_secret != cfg.cookie_secret:
            secret = parse_secret(cfg.cookie_secret) if cfg.cookie_secret else None
            self.cookies = Cookies(secret)
            self._cookie_secret = cfg.cookie_secret
            log.info("DNS cookies on (config key cookies)")
        limits = (cfg.rate_limit_responses_per_second, cfg.rate_limit_slip)
        if not stages.wanted(cfg.rate_limit, exposed):
            self.rate_limit = None
        elif self.rate_limit is None or (self.rate_limit.rate, self.rate_limit.slip) != limits:
            self.rate_limit = RateLimit(*limits)
            log.info("response rate limiting on: %d answers a second per client network "
                     "and kind of answer, slip %d (config keys rate_limit...)", *limits)
        self.metrics.cookies = self.cookies
        self.metrics.rate_limit = self.rate_limit

    def _set_query_log(self, on: bool) -> None:
        from coredns_py.ops import querylog
        if on and self.observe == self.metrics.record:
            self.observe = querylog.observer(self.metrics, querylog.QueryLog())
        elif not on and self.observe != self.metrics.record and not self._log_forced:
            self.observe = self.metrics.record
            self.metrics.log_queries = False

    _log_forced = False  # --log-queries: on whatever the config says

    def force_query_log(self) -> None:
        self._log_forced = True
        self._set_query_log(True)

    def _start_config_watch(self) -> None:
        if self._config_watch is not None:
            self._config_watch.cancel()
            self._config_watch = None
        if self.config_file is not None and self.config.reload > 0:
            self._config_watch = asyncio.get_running_loop().create_task(
                self._watch_config(self.config.reload))

    async def _watch_config(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            if self.config_file.changed():
                log.info("config %s changed; reloading it", self._config_name())
                self.reload_config()

    def _reload_failed(self, exc: BaseException) -> None:
        log.error("reload failed: %r; still serving the last good data", exc)
        self.metrics.reload_failed.inc()

    # --- life cycle ------------------------------------------------------------------

    def _close_source(self) -> None:
        """Let the source write what it keeps (the state file), in a thread of
        its own and for at most CLOSE_SECONDS: stopping never hangs on a lock."""
        close = getattr(self.source, "close", None)
        if close is None:
            return

        def run() -> None:
            try:
                close()
            except Exception as exc:  # noqa: BLE001 - stopping goes on
                log.warning("could not save the allocation state on the way out: %s", exc)
        worker = threading.Thread(target=run, name="coredns-py-close", daemon=True)
        worker.start()
        worker.join(CLOSE_SECONDS)

    async def start(self) -> None:
        from coredns_py.net import descriptors, listeners
        loop = asyncio.get_running_loop()
        descriptors.raise_soft_limit()  # the TCP cap is derived from it
        self._start_stages()  # the stateful stages around handle() (coredns_py.stages)
        self._set_query_log(self.config.log_queries)
        self.listeners = await listeners.start(
            self.entry, self.listens, udp_receive_buffer=self.config.udp_receive_buffer)
        self.metrics.addresses = self.addresses()
        self.metrics.listener_stats = self.listeners.stats
        self._start_forwarder()
        self._start_config_watch()
        self.reloads = Reloads(loop, self.rebuild, failed=self._reload_failed,
                               served=self.metrics.propagation_seconds.observe)
        self.watcher = self.source.watch(self.reloads.changed)
        # The first load runs in the background: queries meanwhile get SERVFAIL.
        self.reloads.request()

    async def stop(self) -> None:
        if self._config_watch is not None:
            self._config_watch.cancel()
        if self.hosts is not None:
            self.hosts.stop()
        if self.reloads is not None:
            self.reloads.cancel()
        if self.watcher is not None:
            self.watcher.stop()
        self._close_source()
        if self.listeners is not None:
            await self.listeners.close()
        if self.forwarder is not None:
            await self.forwarder.close()
        for old in list(self._retiring):
            await self._retire(old)
