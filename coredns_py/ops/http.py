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

Every request reads the server's current generation once and answers from
that one (:mod:`coredns_py.generation`); what the page shows is
:mod:`.page`'s, the query box :mod:`.query_box`'s, readiness :mod:`.health`'s.
"""

from __future__ import annotations

import http.server
import importlib.resources
import io
import ipaddress
import json
import logging
import socket
import socketserver
import threading
import time
import urllib.parse
from typing import Optional

from prometheus_client.exposition import choose_encoder

from coredns_py import __version__, hostport
from coredns_py.errors import ListenError, os_reason
from coredns_py.ops import health, page, query_box

log = logging.getLogger("coredns_py.status")

# CoreDNS's prometheus plugin listens on localhost:9153; so do we, and the
# other endpoints share it.  Loopback by default: the page shows the whole
# cluster, so exposing it is the user's decision (--http 0.0.0.0:9153).
DEFAULT_HTTP = "127.0.0.1:9153"

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

# How often serve_forever checks for shutdown: close() waits at most this.
POLL_INTERVAL = 0.1

def parse_http(text: str) -> Optional[tuple[str, int]]:
    """``--http HOST:PORT``; ``''`` turns the listener off (None)."""
    from coredns_py.net.listen import parse_listen
    if not text.strip():
        return None
    return parse_listen(text)


def _resource(name: str) -> bytes:
    return importlib.resources.files("coredns_py.ops").joinpath(name).read_bytes()


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
        if status.paths is not None and path not in status.paths:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")
            return
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
                result = query_box.run_query(status.server.generation, status.forwarding,
                                             params.get("name", [""])[0],
                                             params.get("type", ["A"])[0])
            except query_box.QueryError as exc:
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
    """The HTTP listener of one :class:`~coredns_py.server.Server`.

    ``paths``: the only paths it serves (CoreDNS's health, ready and
    prometheus plugins each listen on their own address for their own
    path); None: all of them.
    """

    def __init__(self, server, host: str, port: int, paths: Optional[frozenset] = None):
        self.server = server
        self.paths = paths
        self.host, self.port = host, port
        self.address: Optional[tuple[str, int]] = None
        self.shutting_down = False  # lame duck: /health and /ready say 503
        self.watched = False  # something polled /health or /ready
        self.page = _resource("status_page.html")
        self.script = _resource("status_page.js")
        self._httpd: Optional[_HTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._cache_key = None  # the generation the cached document shows
        self._cache_info: Optional[dict] = None
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
        ok, reason = health.readiness(self.server.generation, self.server.source)
        return (200 if ok else 503), reason

    @property
    def forwarding(self) -> bool:
        return self.server.forwarder is not None

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
        gen = srv.generation  # one generation for the whole document
        info = {"zone": srv.config.zone, "source": srv.source.description,
                "listen": [hostport.join(h, p) for h, p in srv.addresses()],
                "forwarding": self.forwarding}
        if query:
            body = json.dumps(page.document(gen, query=query, **info)).encode()
        else:
            # The unfiltered document is built once per generation.
            with self._cache_lock:
                if self._cache_key is not gen or self._cache_info != info:
                    self._cache_body = json.dumps(page.document(gen, **info)).encode()
                    self._cache_key, self._cache_info = gen, info
                body = self._cache_body
        # Readiness changes without a reload (the folder can vanish): patched
        # in per request, from the same generation.
        ok, reason = health.readiness(gen, srv.source)
        return body[:-1] + (f', "ready": {json.dumps(ok)}, "ready_reason": '
                            f'{json.dumps(reason)}, "now": {time.time()!r}}}').encode()


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


class HttpListeners:
    """Several HTTP listeners told and closed as one (the lame duck period
    reaches every one of them)."""

    def __init__(self, listeners):
        self.listeners = [lst for lst in listeners if lst is not None]

    @property
    def watched(self) -> bool:
        return any(lst.watched for lst in self.listeners)

    @property
    def shutting_down(self) -> bool:
        return any(lst.shutting_down for lst in self.listeners)

    @shutting_down.setter
    def shutting_down(self, value: bool) -> None:
        for lst in self.listeners:
            lst.shutting_down = value

    def close(self) -> None:
        for lst in self.listeners:
            lst.close()


# The path each of CoreDNS's HTTP plugins serves on its own address.
PLUGIN_PATHS = {"health": frozenset({"/health"}), "ready": frozenset({"/ready"}),
                "prometheus": frozenset({"/metrics"})}


def start_plugin_listeners(server, addresses: dict) -> list:
    """One listener per plugin address (``{"health": (host, port), ...}``);
    plugins on the same address share one.  An address that cannot be bound
    is an error (ListenError), as CoreDNS fails to start then; what was
    opened is closed first."""
    by_address: dict = {}
    for plugin, address in addresses.items():
        by_address.setdefault(address, set()).update(PLUGIN_PATHS[plugin])
    started = []
    try:
        for address, paths in by_address.items():
            started.append(StatusServer(server, *address, paths=frozenset(paths)).start())
    except ListenError:
        for lst in started:
            lst.close()
        raise
    for lst in started:
        log.info("%s on http://%s/", ", ".join(sorted(p.strip("/") for p in lst.paths)),
                 hostport.join(*lst.address))
    return started
