"""The HTTP listener: /health, /ready, /metrics, the status page and its API.

CoreDNS serves these from its *health* (:8080), *ready* (:8181) and
*prometheus* (:9153) plugins; here one listener (default ``127.0.0.1:9153``)
serves them all, plus a status page.

It runs in its own threads (the stdlib's threading HTTP server), never on
the event loop that answers DNS: a client that sends its request one byte a
minute, or never reads the answer, holds one HTTP thread until a deadline,
and nothing else.  Threads blocked on a socket do not hold the GIL.  The
limits below are named with their reasons.

Endpoints:

- ``GET /health``: 200 ``OK`` while the process runs; 503 during the lame
  duck period of a shutdown (CoreDNS *health* with ``lameduck``).
- ``GET /ready``: 200 ``OK`` once the first load is complete and while the
  manifests folder can be opened; 503 with the reason otherwise (CoreDNS
  *ready*; also 503 during the lame duck period).
- ``GET /metrics``: Prometheus exposition (see :mod:`coredns_py.ops.metrics`).
- ``GET /``: the status page, ``/status.js`` its script; both are files in
  the package, nothing is fetched from anywhere else.
- ``GET /api/status[?q=TEXT]``: what the page shows, as JSON.
- ``GET /api/query?name=NAME&type=TYPE``: the answer ``answer()`` gives on
  the current snapshot, as JSON with dig-like text.  No DNS packet is sent.
"""

from __future__ import annotations

import asyncio
import http.server
import importlib.resources
import io
import ipaddress
import json
import logging
import os
import socket
import socketserver
import threading
import time
import urllib.parse
from typing import Optional

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename
from prometheus_client.exposition import choose_encoder

from coredns_py import hostport
from coredns_py.errors import ListenError, os_reason
from coredns_py import __version__
from coredns_py.zone import answer as answer_mod
from coredns_py.zone import wire
from coredns_py.ops.metrics import manifest_errors

log = logging.getLogger("coredns_py.status")

# CoreDNS's prometheus plugin listens on localhost:9153; so do we, and the
# other endpoints share it.  Loopback by default: the page shows the whole
# cluster, so exposing it is the user's decision (--http 0.0.0.0:9153).
DEFAULT_HTTP = "127.0.0.1:9153"

# How long /health reports unhealthy before the DNS listeners close on
# SIGTERM/SIGINT, while DNS is still answered.  CoreDNS's Kubernetes manifest
# uses `health { lameduck 5s }` so that whatever routes traffic (kube-proxy,
# a load balancer polling the health check) has time to stop sending before
# the sockets go.  The wait only happens when something has polled /health
# or /ready since start: with nobody watching there is nobody to tell, and an
# interactive Ctrl-C should not hang.  A second signal cuts it short.
LAMEDUCK = 5.0

# HTTP connections served at once.  Each holds a thread until its deadline;
# beyond this new ones get an immediate 503, so a flood of idle connections
# costs at most this many threads and file descriptors.  A scraper, a
# health checker and a few browser tabs need a handful.
MAX_HTTP_CONNECTIONS = 32

# The request line and headers must arrive within this time, whatever the
# pace (a slow-loris client trickling bytes is cut off here), and must fit
# in this many bytes: our GET requests carry a short path and a few headers.
HTTP_REQUEST_TIMEOUT = 5.0
HTTP_MAX_HEAD = 16 * 1024

# Sending a response must finish within this time: a client that does not
# read (a big /metrics page) releases its thread at this point.
HTTP_WRITE_TIMEOUT = 10.0

# Services listed on the status page and in /api/status.  The page is for a
# human: past this, narrow down with the filter (?q=), which searches all.
MAX_STATUS_SERVICES = 2000

# How often serve_forever checks for shutdown: close() waits at most this.
POLL_INTERVAL = 0.1

_PAGE_TYPES = ("A", "AAAA", "SRV", "PTR", "CNAME", "TXT", "SOA", "NS", "ANY")


def parse_http(text: str) -> Optional[tuple[str, int]]:
    """``--http HOST:PORT``; ``''`` turns the listener off (None)."""
    from coredns_py.net.listen import parse_listen
    if not text.strip():
        return None
    return parse_listen(text)


def _resource(name: str) -> bytes:
    return importlib.resources.files("coredns_py.ops").joinpath(name).read_bytes()


# --- what the page shows ---------------------------------------------------------


def _fqdn(*labels: str) -> str:
    return ".".join(labels) + "."


def service_names(view, zone: str, ignore_empty: bool) -> list[dict]:
    """The names a Service answers, with their type and values, as answer.py
    decides them (CoreDNS's kubernetes plugin)."""
    base = _fqdn(view.name, view.namespace, "svc", zone)
    rows: list[dict] = []

    def add(name, rtype, values):
        rows.append({"name": name, "type": rtype, "values": list(values)})

    if view.kind == "ExternalName":
        if view.external_is_ip:
            add(base, "NXDOMAIN", ["an ExternalName that is an IP is not served"])
        else:
            add(base, "CNAME", [view.external.to_text()])
        return rows
    endpoints = view.endpoints
    if view.kind == "Headless":
        if not endpoints:
            add(base, "NXDOMAIN", ["headless, no ready endpoints"])
            return rows
        addrs = list(dict.fromkeys(ep.address for ep in endpoints))
    else:
        if ignore_empty and not endpoints:
            add(base, "NXDOMAIN", ["no ready endpoints (ignore_empty_service)"])
            return rows
        addrs = list(view.ips)
    for family, rtype in ((False, "A"), (True, "AAAA")):
        chosen = [a for a in addrs if (":" in a) == family]
        if chosen:
            add(base, rtype, chosen)
    ports = [p for p in (view.ports if view.kind != "Headless" else
                         {p for ep in endpoints for p in ep.ports}) if p.port >= 0]
    if ports:
        add(base, "SRV", sorted({f"{p.port}/{p.protocol}" for p in ports}))
    for p in sorted({p for p in ports if p.name}, key=lambda p: (p.name, p.protocol)):
        add(_fqdn(f"_{p.name}", f"_{p.protocol}", view.name, view.namespace, "svc", zone),
            "SRV", [str(p.port)])
    seen = set()
    for ep in endpoints:
        if (ep.name, ep.address) in seen:
            continue
        seen.add((ep.name, ep.address))
        add(_fqdn(ep.name, view.name, view.namespace, "svc", zone),
            "AAAA" if ":" in ep.address else "A", [ep.address])
    if view.kind != "Headless":
        for ip in view.ips:
            add(dns.reversename.from_address(ip).to_text(), "PTR", [base])
    return rows


def _service_row(view, zone: str, ignore_empty: bool) -> dict:
    ports = [{"name": p.name, "protocol": p.protocol.upper(), "port": p.port}
             for p in view.ports if p.port >= 0]
    return {
        "namespace": view.namespace, "name": view.name, "type": view.type, "kind": view.kind,
        "cluster_ips": list(view.ips),
        "external_name": view.external.to_text() if view.external is not None else "",
        "ports": ports,
        "endpoints": [{"name": ep.name, "address": ep.address} for ep in view.endpoints],
        "names": service_names(view, zone, ignore_empty),
    }


def _error_row(err) -> dict:
    return {"file": getattr(err, "path", "") or "", "line": getattr(err, "line", None),
            "object": getattr(err, "obj", "") or "", "field": getattr(err, "field", "") or "",
            "message": getattr(err, "message", str(err)), "text": str(err)}


def status_document(server, query: str = "", limit: int = MAX_STATUS_SERVICES) -> dict:
    """Everything the status page shows.  ``query`` filters Services by a
    substring of ``namespace/name``."""
    snap = server.snapshot
    zone = server.config.zone
    doc = {
        "version": __version__,
        "zone": zone,
        "manifests": str(server.manifests),
        "listen": [hostport.join(h, p) for h, p in (
            getattr(server.listeners, "addresses", None) or server.listens)],
        "loaded": snap is not None,
        "last_reload": server.last_reload,
        "last_reload_seconds": server.last_reload_seconds,
        "generation": snap.generation if snap is not None else None,
        "serial": snap.serial if snap is not None else None,
        "counts": dict(snap.counts) if snap is not None else {},
        "forwarding": getattr(server, "forwarder", None) is not None,
        "errors": [_error_row(e) for e in manifest_errors(server)],
        "namespaces": [],
        "services_total": 0,
        "services_shown": 0,
        "types": list(_PAGE_TYPES),
    }
    if snap is None:
        return doc
    needle = query.strip().lower()
    by_ns: dict[str, list] = {ns: [] for ns in sorted(snap.namespaces)}
    shown = 0
    keys = sorted(snap.services)
    for ns, name in keys:
        if needle and needle not in f"{ns}/{name}":
            continue
        if shown >= limit:
            doc["truncated"] = True
            continue
        by_ns.setdefault(ns, []).append(
            _service_row(snap.services[(ns, name)], zone, snap.ignore_empty_service))
        shown += 1
    doc["services_total"] = len(keys)
    doc["services_shown"] = shown
    doc["namespaces"] = [{"name": ns, "services": svcs} for ns, svcs in sorted(by_ns.items())
                         if svcs or not needle]
    return doc


class QueryError(ValueError):
    """A name or type the query box cannot ask."""


def run_query(server, name: str, rdtype: str) -> dict:
    """Ask ``answer()`` on the current snapshot, as a client over TCP would."""
    name = (name or "").strip()
    if not name or len(name) > 1024:
        raise QueryError("type a domain name")
    try:
        qname = dns.name.from_text(name)
    except dns.exception.DNSException as exc:
        raise QueryError(f"not a domain name: {exc}") from None
    try:
        qtype = dns.rdatatype.from_text((rdtype or "A").strip().upper())
    except dns.exception.DNSException:
        raise QueryError(f"unknown type {rdtype!r}") from None
    query = dns.message.make_query(qname, qtype, use_edns=0, payload=wire.EDNS_PAYLOAD)
    query.id = 0
    forwarding = getattr(server, "forwarder", None) is not None
    out = answer_mod.answer(server.snapshot, query.to_wire(), "tcp", forwarding=forwarding)
    note = ""
    if isinstance(out, answer_mod.Forward):
        note = (f"needs upstream data: the server asks upstream for "
                f"{out.qname.to_text()} {dns.rdatatype.to_text(out.qtype)}; "
                f"shown is the part it answers itself")
        out = wire.render(out.response if out.response.answer else out.local, out.limit)
    if out is None:
        raise QueryError("the server sends no answer to this query")
    response = dns.message.from_wire(out)
    if server.snapshot is None:
        note = note or "not loaded yet: every query gets SERVFAIL"
    return {
        "question": f"{qname.to_text()} {dns.rdatatype.to_text(qtype)}",
        "rcode": dns.rcode.to_text(response.rcode()),
        "flags": _flags(response),
        "answer": [rr for rs in response.answer for rr in rs.to_text().splitlines()],
        "authority": [rr for rs in response.authority for rr in rs.to_text().splitlines()],
        "additional": [rr for rs in response.additional for rr in rs.to_text().splitlines()],
        "size": len(out),
        "note": note,
        "text": dig_text(response, len(out)),
    }


def _flags(msg: dns.message.Message) -> str:
    return dns.flags.to_text(msg.flags).lower()


def dig_text(msg: dns.message.Message, size: int) -> str:
    """The response as ``dig`` prints it (header, sections), without timings."""
    lines = [
        f";; ->>HEADER<<- opcode: {dns.opcode.to_text(msg.opcode())}, "
        f"status: {dns.rcode.to_text(msg.rcode())}, id: {msg.id}",
        f";; flags: {_flags(msg)}; QUERY: {len(msg.question)}, ANSWER: "
        f"{sum(len(r) for r in msg.answer)}, AUTHORITY: {sum(len(r) for r in msg.authority)}, "
        f"ADDITIONAL: {sum(len(r) for r in msg.additional) + (1 if msg.edns >= 0 else 0)}",
    ]
    if msg.edns >= 0:
        lines += ["", ";; OPT PSEUDOSECTION:",
                  f"; EDNS: version: {msg.edns}, flags:"
                  f"{' do' if msg.ednsflags & 0x8000 else ''}; udp: {msg.payload}"]
    lines += ["", ";; QUESTION SECTION:"]
    lines += [f";{q.name.to_text()}\t\t{dns.rdataclass.to_text(q.rdclass)}\t"
              f"{dns.rdatatype.to_text(q.rdtype)}" for q in msg.question]
    for title, section in (("ANSWER", msg.answer), ("AUTHORITY", msg.authority),
                           ("ADDITIONAL", msg.additional)):
        if section:
            lines += ["", f";; {title} SECTION:"]
            lines += [rr for rs in section for rr in rs.to_text().splitlines()]
    lines += ["", f";; MSG SIZE  rcvd: {size}"]
    return "\n".join(lines) + "\n"


# --- the HTTP side -----------------------------------------------------------------


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # shutdown never waits for a slow client
    request_queue_size = 64

    def __init__(self, addr, handler, status: "StatusServer"):
        self.status = status
        self._slots = threading.BoundedSemaphore(MAX_HTTP_CONNECTIONS)
        super().__init__(addr, handler)

    def server_bind(self) -> None:
        # Not HTTPServer.server_bind: it looks the host up with getfqdn(),
        # a DNS query at start-up that can hang when DNS is down.
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = host, port

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                b"Connection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address) -> None:
        log.debug("HTTP request from %s failed", client_address, exc_info=True)


class _Writer(io.RawIOBase):
    """What the handler writes goes out at once, whole (sendall), bounded by
    the socket's timeout."""

    def __init__(self, sock: socket.socket):
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._sock.sendall(data)
        return len(data)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.0"  # one request per connection: no idle keep-alive
    server_version = f"coredns-py/{__version__}"
    sys_version = ""

    def setup(self) -> None:
        self.connection = self.request
        self.connection.settimeout(HTTP_REQUEST_TIMEOUT)
        self.wfile = _Writer(self.connection)
        self.rfile = io.BytesIO()

    def handle(self) -> None:
        head = self._read_head()
        if head is None:
            return
        self.rfile = io.BytesIO(head)
        self.connection.settimeout(HTTP_WRITE_TIMEOUT)  # sendall: the whole response
        self.close_connection = True
        self.handle_one_request()

    def _read_head(self) -> Optional[bytes]:
        """The request line and headers, within the deadline and size limit."""
        deadline = time.monotonic() + HTTP_REQUEST_TIMEOUT
        buf = bytearray()
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                end = buf.find(b"\n\n")
            if end >= 0:
                return bytes(buf[:end]) + b"\r\n\r\n"
            if len(buf) > HTTP_MAX_HEAD:
                self._raw_error(431, "Request Header Fields Too Large")
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._raw_error(408, "Request Timeout")
                return None
            try:
                self.connection.settimeout(remaining)
                chunk = self.connection.recv(4096)
            except (TimeoutError, socket.timeout):
                self._raw_error(408, "Request Timeout")
                return None
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk

    def _raw_error(self, code: int, reason: str) -> None:
        try:
            self.connection.settimeout(1.0)
            self.connection.sendall(f"HTTP/1.0 {code} {reason}\r\nContent-Length: 0\r\n"
                                    f"Connection: close\r\n\r\n".encode())
        except OSError:
            pass

    def finish(self) -> None:
        pass  # nothing buffered: the writer sends at once

    def log_message(self, fmt: str, *args) -> None:
        log.debug("%s %s", self.address_string(), fmt % args)

    # --- dispatch -------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def _not_allowed(self) -> None:
        self._send(405, b"method not allowed\n", "text/plain; charset=utf-8",
                   extra={"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def _dispatch(self, head: bool) -> None:
        self._head = head
        status: StatusServer = self.server.status
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        params = urllib.parse.parse_qs(url.query, max_num_fields=8)
        if path in ("/health", "/ready"):
            status.watched = True
            code, text = status.health() if path == "/health" else status.ready()
            self._send(code, (text + "\n").encode(), "text/plain; charset=utf-8")
            return
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._send(200, encoder(status.server.metrics.registry), content_type)
            return
        # The page and its API show the whole cluster: when we listen on
        # loopback only, only loopback names may ask, so a web page cannot
        # read it through DNS rebinding (a hostile name resolving to 127.0.0.1).
        if not status.host_allowed(self.headers.get("Host", "")):
            self._send(403, b"forbidden: unexpected Host header\n", "text/plain; charset=utf-8")
            return
        if path in ("/", "/index.html"):
            self._send(200, status.page, "text/html; charset=utf-8")
        elif path == "/status.js":
            self._send(200, status.script, "text/javascript; charset=utf-8")
        elif path == "/api/status":
            q = params.get("q", [""])[0][:256]
            self._json(200, status.status_json(q))
        elif path == "/api/query":
            try:
                result = run_query(status.server, params.get("name", [""])[0],
                                   params.get("type", ["A"])[0])
            except QueryError as exc:
                self._json(400, json.dumps({"error": str(exc)}).encode())
                return
            self._json(200, json.dumps(result).encode())
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")

    def _json(self, code: int, body: bytes) -> None:
        self._send(code, body, "application/json")

    def _send(self, code: int, body: bytes, content_type: str,
              extra: Optional[dict] = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy",
                         "default-src 'none'; script-src 'self'; connect-src 'self'; "
                         "style-src 'unsafe-inline'; img-src 'self' data:; "
                         "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not getattr(self, "_head", False):
            self.wfile.write(body)


class StatusServer:
    """The HTTP listener of one :class:`~coredns_py.server.Server`."""

    def __init__(self, server, host: str, port: int):
        self.server = server
        self.host, self.port = host, port
        self.address: Optional[tuple[str, int]] = None
        self.shutting_down = False  # lame duck: /health and /ready say 503
        self.watched = False  # something polled /health or /ready
        self.page = _resource("status_page.html")
        self.script = _resource("status_page.js")
        self._httpd: Optional[_HTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._cache_key = None
        self._cache_body = b""
        self._cache_lock = threading.Lock()
        try:
            self._loopback_only = ipaddress.ip_address(host).is_loopback
        except ValueError:
            self._loopback_only = False

    def start(self) -> "StatusServer":
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        cls = type("_HTTPServerV", (_HTTPServer,), {"address_family": family})
        where = f"{hostport.join(self.host, self.port)}/http"
        try:
            self._httpd = cls((self.host, self.port), _Handler, self)
        except OSError as exc:
            raise ListenError(f"cannot listen on {where}: {os_reason(exc)}", exc.errno) from None
        self.address = (self.host, self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": POLL_INTERVAL},
                                        name="coredns-py-http", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    # --- answers ------------------------------------------------------------------

    def health(self) -> tuple[int, str]:
        if self.shutting_down:
            return 503, "lame duck: shutting down"
        return 200, "OK"

    def ready(self) -> tuple[int, str]:
        if self.shutting_down:
            return 503, "not ready: shutting down"
        ok, reason = ready(self.server)
        return (200 if ok else 503), reason

    def host_allowed(self, host_header: str) -> bool:
        if not self._loopback_only:
            return True  # the user chose to expose it
        host = host_header.strip().lower()
        if host.startswith("["):
            host = host[1:host.find("]")] if "]" in host else host
        elif host.count(":") == 1:
            host = host.split(":", 1)[0]
        if host in ("localhost", "") or host.endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def status_json(self, query: str = "") -> bytes:
        srv = self.server
        if query:
            return json.dumps(status_document(srv, query)).encode()
        # The unfiltered document is built once per snapshot and error set.
        key = (id(srv.snapshot), id(srv.loaded), id(getattr(srv, "cluster", None)),
               srv.last_reload)
        with self._cache_lock:
            if key != self._cache_key:
                self._cache_body = json.dumps(status_document(srv)).encode()
                self._cache_key = key
            body = self._cache_body
        # Ready state changes without a reload: patched in per request.
        ok, reason = ready(srv)
        return body[:-1] + (f', "ready": {json.dumps(ok)}, "ready_reason": '
                            f'{json.dumps(reason)}, "now": {time.time()!r}}}').encode()


def folder_readable(path) -> bool:
    """True when the manifests folder can be opened now (a cheap live check)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    os.close(fd)
    return True


def ready(server) -> tuple[bool, str]:
    """(ready, reason), as CoreDNS's *ready* plugin asks the kubernetes plugin."""
    if getattr(server, "snapshot", None) is None:
        return False, "not ready: the first load is not complete"
    if not folder_readable(server.manifests):
        return False, f"not ready: cannot read the manifests folder {server.manifests}"
    return True, "OK"


async def lame_duck(status: Optional[StatusServer], seconds: float,
                    hurry: asyncio.Event) -> None:
    """Report unhealthy, keep answering DNS for ``seconds`` (or until ``hurry``)."""
    if status is None:
        return
    status.shutting_down = True
    if seconds <= 0 or not status.watched:
        return
    log.info("lame duck: /health reports unhealthy, still answering DNS for %g s "
             "(signal again to stop now)", seconds)
    try:
        await asyncio.wait_for(hurry.wait(), seconds)
    except asyncio.TimeoutError:
        pass


def start_http(server, address: Optional[tuple[str, int]], required: bool):
    """Start the listener for ``--http``: ``(listener or None, news)``, where
    ``news()`` logs where it listens, or why it does not.

    A port the user asked for that cannot be bound is an error
    (ListenError).  The default one is only a warning: a second server
    on the same machine, or a CoreDNS holding 9153, must not stop DNS.  The
    caller calls ``news()`` once DNS is bound, so that a DNS port in use is
    still the only line printed.
    """
    if address is None:
        return None, lambda: None
    try:
        http_server = StatusServer(server, *address).start()
    except ListenError as exc:
        if required:
            raise
        problem = exc
        return None, lambda: log.warning(
            "%s: no HTTP listener (health, metrics, status page); "
            "choose another with --http HOST:PORT", problem)
    where = hostport.join(*http_server.address)
    return http_server, lambda: log.info(
        "health, metrics and status page on http://%s/", where)
