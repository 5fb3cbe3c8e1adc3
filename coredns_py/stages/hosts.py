"""Static names from hosts files (CoreDNS ``hosts``), answered before the
cluster zone, as CoreDNS's plugin order puts *hosts* before *kubernetes*.

The ``hosts`` config key lists tables; each reads hosts files and inline
lines (:mod:`.hostsfile`) for its zones::

    hosts:
      - files: [/etc/hosts, ./more-hosts]   # read now, and again when changed
        entries: ["192.0.2.7 mock-api.example"]
        zones: ["."]                         # names it answers (default: all)
        ttl: 3600
        reload: 5                            # seconds between checks (0: never)
        fallthrough: true                    # or a list of zones; see below
        no_reverse: false
        fallthrough_unsupported: false

For a question in a table's zones, as CoreDNS answers it:

- A/AAAA of a listed name: its addresses, authoritative (AA); another type,
  or the family it has no address of: NODATA;
- PTR of a listed address (in any zone): its names; an address that is not
  listed goes on, whatever ``fallthrough`` says;
- a name that is not listed goes on to the cluster zone and forwarding
  when ``fallthrough`` covers it, otherwise it is SERVFAIL (CoreDNS's
  choice: a hosts file has no SOA to say NXDOMAIN with);
- ``fallthrough_unsupported``: types other than A, AAAA and PTR go on for
  listed names too (so their TXT or HTTPS records come from upstream).

Files are checked every ``reload`` seconds (their size, time and inode);
a changed one is read again off the event loop and the new table swapped
in whole.  A file that disappears empties its part (as CoreDNS); one that
cannot be read keeps its last good lines, and the problem is logged once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from coredns_py import stages
from coredns_py.errors import ConfigError
from coredns_py.logs import OnceLog
from coredns_py.net.handler import Handler
from coredns_py.stages import hostsfile
from coredns_py.zone import wire as wire_mod

log = logging.getLogger("coredns_py.hosts")

PLUGIN = "hosts"  # the `plugin` label of its answers in coredns_dns_responses_total

# CoreDNS's defaults: records live an hour; files are checked every 5 s.
DEFAULT_TTL = 3600
DEFAULT_RELOAD = 5.0
# A hosts file is a few kilobytes; ad-blocking lists reach a few megabytes.
# Past this it is refused (and its last good lines kept), since it is read
# into memory whole.
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_TTL = 3600 * 24 * 7
# Rendered answers kept per table generation, keyed by the query after its
# ID: a hosts name is asked again and again (a container's every request),
# and building a message costs over 100 us.  A few hundred names are usual.
MAX_RENDERED = 4096

_A, _AAAA, _PTR = dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.PTR


@dataclass(frozen=True)
class HostsSpec:
    files: tuple[str, ...] = ()
    entries: tuple[str, ...] = ()  # inline hosts lines
    zones: tuple[str, ...] = (".",)  # "." or "name." (lower case)
    ttl: int = DEFAULT_TTL
    reload: float = DEFAULT_RELOAD
    fallthrough: tuple[str, ...] = ()  # zones whose unknown names go on ("." all)
    no_reverse: bool = False
    fallthrough_unsupported: bool = False
    where: str = field(default="", compare=False)


_KEYS = {"files", "entries", "zones", "ttl", "reload", "fallthrough", "no_reverse",
         "fallthrough_unsupported"}


def zone_text(text: str) -> str:
    """A zone as hosts tables keep it: "." or "name." in lower case."""
    if text.strip() == ".":
        return "."
    name = hostsfile.normalize_name(text)
    if name is None:
        raise ValueError(f"{text!r} is not a domain name")
    return name


def _strings(where: str, key: str, value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{where}: {key}: expected a list of strings, got {value!r}")
    return tuple(i.strip() for i in items)


def parse_entry(where: str, data: Any) -> HostsSpec:
    from coredns_py.config import check_mapping, entry_flag, entry_ttl
    check_mapping(where, data, _KEYS, "files, entries, ...")
    values: dict[str, Any] = {}
    if "files" in data:
        values["files"] = tuple(os.path.expanduser(f)
                                for f in _strings(where, "files", data["files"]))
    if "entries" in data:
        values["entries"] = _strings(where, "entries", data["entries"])
    try:
        if "zones" in data:
            values["zones"] = tuple(zone_text(z) for z in _strings(where, "zones", data["zones"]))
        if "fallthrough" in data:
            ft = data["fallthrough"]
            if isinstance(ft, bool):
                values["fallthrough"] = (".",) if ft else ()
            else:
                values["fallthrough"] = tuple(zone_text(z)
                                              for z in _strings(where, "fallthrough", ft))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if "ttl" in data:
        values["ttl"] = entry_ttl(where, data["ttl"], MAX_TTL)
    if "reload" in data:
        r = data["reload"]
        if isinstance(r, bool) or not isinstance(r, (int, float)) or r < 0:
            raise ConfigError(f"{where}: reload: expected seconds (0: never), got {r!r}")
        values["reload"] = float(r)
    for key in ("no_reverse", "fallthrough_unsupported"):
        if key in data:
            values[key] = entry_flag(where, key, data[key])
    spec = HostsSpec(where=where, **values)
    validate(where, spec)
    return spec


def validate(where: str, spec: HostsSpec) -> None:
    if not spec.files and not spec.entries:
        raise ConfigError(f"{where}: needs files or entries")
    if spec.fallthrough_unsupported and not spec.fallthrough:
        raise ConfigError(f"{where}: fallthrough_unsupported needs fallthrough")
    _, problems = hostsfile.parse("\n".join(spec.entries), f"{where}: entries", spec.zones)
    if problems:
        raise ConfigError(problems[0])


def parse(source: str, value: Any) -> tuple[HostsSpec, ...]:
    """The ``hosts`` key: a list of tables."""
    if not isinstance(value, list):
        raise ConfigError(f"{source}: config key hosts: expected a list of tables, "
                          f"got {value!r}")
    return tuple(parse_entry(f"{source}: config key hosts[{i}]", d) for i, d in enumerate(value))


# --- the tables at run time ----------------------------------------------------------------


def _signature(path: str):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return ("error", exc.errno)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class HostsTable:
    """One ``hosts`` entry: its files and inline lines, as one table."""

    def __init__(self, spec: HostsSpec):
        self.spec = spec
        self.table = hostsfile.Table()
        self._texts: dict[str, str] = {}  # each file's last good text
        self._signatures: dict[str, object] = {}
        self._problems = OnceLog(log)
        self.reload_now()

    def changed(self) -> bool:
        return any(_signature(p) != self._signatures.get(p) for p in self.spec.files)

    def reload_now(self) -> None:
        """Read the files (any thread) and swap the new table in whole."""
        problems: list[str] = []
        for path in self.spec.files:
            self._signatures[path] = _signature(path)
            try:
                if os.path.getsize(path) > MAX_FILE_BYTES:
                    raise OSError(f"larger than {MAX_FILE_BYTES} bytes")
                with open(path, "rb") as fh:
                    self._texts[path] = fh.read().decode("utf-8", errors="replace")
            except FileNotFoundError:
                self._texts.pop(path, None)
                problems.append(f"hosts file {path}: does not exist (no names from it)")
            except OSError as exc:
                keep = "keeping its last good lines" if path in self._texts else "no names from it"
                problems.append(f"hosts file {path}: cannot read it "
                                f"({getattr(exc, 'strerror', None) or exc}); {keep}")
        spec = self.spec
        reverse = not spec.no_reverse
        # Inline lines first, then the files in order: the first address
        # listed for a name comes first in its answer.
        table, _ = hostsfile.parse("\n".join(spec.entries), "inline", spec.zones,
                                   reverse=reverse)
        for path in spec.files:
            if path in self._texts:
                _, bad = hostsfile.parse(self._texts[path], path, spec.zones, table,
                                         reverse=reverse)
                problems.extend(bad)
        self._problems.report(problems)
        self.table = table  # the swap: one reference assignment

    def wire_names(self) -> set[bytes]:
        """Every name it answers (A, AAAA or PTR), in lower-case wire form."""
        table = self.table
        return {dns.name.from_text(n).to_wire() for n in
                (*table.v4, *table.v6, *table.ptr)}

    # --- answering (event loop thread) ------------------------------------------------

    def through(self, name: str) -> bool:
        return hostsfile.in_zones(name, self.spec.fallthrough)

    def decide(self, name: str, qtype: int):
        """(rcode, records) to answer with, or None to let the question go on."""
        spec, table = self.spec, self.table
        if qtype == _PTR:
            names = table.ptr.get(name)
            # An address that is not listed goes on, fallthrough or not
            # (CoreDNS): the cluster's reverse zones answer the rest.
            return (dns.rcode.NOERROR, [(_PTR, n) for n in names]) if names else None
        if not hostsfile.in_zones(name, spec.zones):
            return None
        if qtype == _A:
            records = [(_A, ip) for ip in table.v4.get(name, ())]
        elif qtype == _AAAA:
            records = [(_AAAA, ip) for ip in table.v6.get(name, ())]
        else:
            records = []
            if spec.fallthrough_unsupported and self.through(name):
                return None
        if not records and not table.has(name):
            if self.through(name):
                return None
            return dns.rcode.SERVFAIL, []
        return dns.rcode.NOERROR, records


class Hosts:
    """Every ``hosts`` table of the config, checked for changes in the background."""

    def __init__(self, specs):
        # The most specific zones first, as CoreDNS picks the server block
        # with the longest zone; otherwise in the order given.
        ordered = sorted(specs, key=lambda s: -max(len(z) for z in s.zones))
        self.tables = [HostsTable(spec) for spec in ordered]
        self._task: Optional[asyncio.Task] = None
        self.index: tuple[bool, frozenset] = (False, frozenset())
        self._reindex()

    def _reindex(self) -> None:
        """The hot path's shortcut: when every table lets unknown names go on
        (``fallthrough`` for all), a question whose name no table lists
        needs no parsing at all -- one set lookup on the raw name."""
        every = all("." in t.spec.fallthrough for t in self.tables)
        names = frozenset().union(*(t.wire_names() for t in self.tables))
        self.index = (every, names)  # one assignment: read whole by the stage
        self.rendered: dict = {}  # (proto, query after its ID) -> response after its ID

    def decide(self, name: str, qtype: int):
        for table in self.tables:
            out = table.decide(name, qtype)
            if out is not None:
                return table, out
        return None

    def start(self) -> None:
        intervals = [t.spec.reload for t in self.tables if t.spec.reload > 0 and t.spec.files]
        if intervals:
            self._task = asyncio.get_running_loop().create_task(self._watch(min(intervals)))

    async def _watch(self, interval: float) -> None:
        loop = asyncio.get_running_loop()
        last: dict[int, float] = {}
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for i, table in enumerate(self.tables):
                reload = table.spec.reload
                if reload <= 0 or now - last.get(i, 0.0) < reload - interval / 2:
                    continue
                last[i] = now
                if table.changed():
                    await loop.run_in_executor(None, table.reload_now)
                    self._reindex()
                    log.info("hosts: reloaded %s (%d names)", ", ".join(table.spec.files),
                             len(table.table))

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None


# --- the stage ----------------------------------------------------------------------------


def respond(wire: bytes, proto: str, name: str, decision, ttl: int) -> Optional[bytes]:
    try:
        query = dns.message.from_wire(wire)
    except Exception:
        return None  # broken: answer() says FORMERR
    if query.edns > 0:
        return None  # answer() says BADVERS
    rcode, records = decision
    response = dns.message.make_response(query, our_payload=wire_mod.EDNS_PAYLOAD)
    response.flags |= query.flags & dns.flags.CD
    if rcode == dns.rcode.SERVFAIL:
        return wire_mod.render(wire_mod.servfail(response, query), wire_mod.limit(query, proto))
    response.flags |= dns.flags.AA
    owner = query.question[0].name
    by_type: dict[int, list[str]] = {}
    for rdtype, text in records:
        by_type.setdefault(rdtype, []).append(text)
    for rdtype, texts in by_type.items():
        response.answer.append(dns.rrset.from_text_list(owner, ttl, dns.rdataclass.IN,
                                                        rdtype, texts))
    return wire_mod.render(response, wire_mod.limit(query, proto))


def stage(hosts: Hosts, observe: Callable) -> Callable[[Handler], Handler]:
    """The hosts stage: answers from the tables, or the inner handler."""
    clock = time.perf_counter

    def wrap(inner: Handler) -> Handler:
        def handler(wire: bytes, proto: str, peer):
            started = clock()
            every_falls_through, names = hosts.index
            if every_falls_through:
                # The question's name, lower-cased (label lengths are below
                # 64, never ASCII letters): not listed anywhere, it goes on.
                end = wire.find(0, 12)
                if end < 0 or wire[12:end + 1].lower() not in names:
                    return inner(wire, proto, peer)
            rendered = hosts.rendered
            key = (proto, wire[2:])
            tail = rendered.get(key)
            if tail is not None:
                out = wire[:2] + tail
                observe(wire, out, proto, peer, clock() - started, PLUGIN)
                return out
            q = stages.question(wire)
            if q is not None and q[2] == dns.rdataclass.IN:
                found = hosts.decide(q[0], q[1])
                if found is not None:
                    table, decision = found
                    out = respond(wire, proto, q[0], decision, table.spec.ttl)
                    if out is not None:
                        if len(rendered) < MAX_RENDERED:
                            rendered[key] = out[2:]
                        observe(wire, out, proto, peer, clock() - started, PLUGIN)
                        return out
            return inner(wire, proto, peer)
        return handler
    return wrap
