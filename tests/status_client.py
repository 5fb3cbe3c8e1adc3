"""Helpers for the tests of the HTTP listener (health, ready, metrics, status page).

:class:`HttpServer` is a :class:`conftest.ServerProcess` started with
``--http 127.0.0.1:0``: the kernel picks a free port (no race with other
tests) and the server logs it, which :meth:`HttpServer.http_port` reads.
``get()`` is a plain HTTP/1.0 GET with a timeout that returns the status
whatever it is (urllib would raise on 503).

Fixture ``http_server``: factory ``http_server(manifests, args=..., start=True)``,
conftest's :func:`conftest.server_factory` making :class:`HttpServer`; every
server it made is stopped at teardown.
"""

from __future__ import annotations

import http.client
import re
from pathlib import Path
from typing import Iterable, Optional

import pytest

from conftest import ZONES, ServerProcess, free_port, server_factory, wait_until

HTTP_TIMEOUT = 5.0
_PORT_LINE = re.compile(r"status page on http://127\.0\.0\.1:(\d+)/")


class HttpServer(ServerProcess):
    def __init__(self, manifests: Optional[Path] = ZONES, *, args: Iterable[str] = (), **kw):
        super().__init__(manifests, args=["--http", "127.0.0.1:0", *args], **kw)
        self._http_port: Optional[int] = None

    def spawn(self) -> "HttpServer":
        """Start without waiting for the first load (the DNS port is free now)."""
        self.addresses = [(h, free_port(h)) for h in self.hosts]
        self._spawn()
        self._http_port = None
        return self

    def _spawn(self) -> None:
        self._http_port = None
        super()._spawn()

    @property
    def http_port(self) -> int:
        if self._http_port is None:
            m = self.wait_stderr(_PORT_LINE.pattern, timeout=20)
            self._http_port = int(m.group(1))
        return self._http_port

    def get(self, path: str, headers: Optional[dict] = None, method: str = "GET",
            timeout: float = HTTP_TIMEOUT) -> tuple[int, str, dict]:
        """(status, body text, headers) of one request."""
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=timeout)
        try:
            conn.request(method, path, headers=headers or {})
            res = conn.getresponse()
            body = res.read().decode("utf-8", errors="replace")
            return res.status, body, {k.lower(): v for k, v in res.getheaders()}
        finally:
            conn.close()

    def wait_status(self, path: str, status: int, timeout: float = 10.0) -> str:
        """Poll ``path`` until it answers ``status``; return the body."""
        seen = []

        def check():
            code, body, _ = self.get(path)
            seen.append(code)
            return body if code == status else None

        return wait_until(check, timeout, interval=0.02,
                          message=f"{path} to answer {status} (saw {seen[-5:]}); "
                                  f"stderr:\n{self.stderr}")


@pytest.fixture
def http_server(tmp_path_factory, request):
    yield from server_factory(HttpServer, tmp_path_factory, request)


def scrape(srv: HttpServer) -> dict:
    """/metrics parsed with prometheus_client's own parser:
    {(sample name, frozenset(labels)): value}."""
    from prometheus_client.parser import text_string_to_metric_families
    code, body, headers = srv.get("/metrics")
    assert code == 200, body
    assert headers["content-type"].startswith("text/plain"), headers
    out = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def total(samples: dict, metric: str, /, **labels) -> float:
    """Sum of every sample called ``metric`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == metric and want <= ls)


def wait_scrape(srv: HttpServer, predicate, timeout: float = 10.0) -> dict:
    """Scrape until ``predicate(samples)`` holds (a reload is asynchronous)."""
    box = {}

    def check():
        box["s"] = scrape(srv)
        return predicate(box["s"])

    wait_until(check, timeout, message="metrics condition")
    return box["s"]
