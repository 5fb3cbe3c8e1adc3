"""The HTTP listener as a client sees it: /health, /ready, /metrics, the
status page's JSON API, and that a slow or hostile HTTP client cannot stall
DNS.  Real processes, loopback only, every wait bounded.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from conftest import ServerProcess, free_port, wait_until
from coredns_py.config import Config
from coredns_py.errors import ListenError
from coredns_py.ops import http as status_mod
from helpers.manifests import documents, service, write
from status_client import http_server, scrape, total  # noqa: F401


def svc(name: str, ip: str, ns: str = "default") -> str:
    return service(name, ns, cluster_ip=ip, ports=[{"name": "http", "port": 80}])


# A good Service, then one with a bad clusterIP: the error names the line
# where that second document starts.
BROKEN = documents(svc("good", "10.96.7.9"), service("bad", cluster_ip="not-an-ip", ports=()))
BROKEN_LINE = svc("good", "10.96.7.9").count("\n") + 2


@pytest.fixture
def folder(tmp_path):
    return write(tmp_path / "manifests", "web.yaml", svc("web", "10.96.7.7")).parent


# --- /ready and /health ---------------------------------------------------------------


def test_ready_is_503_until_the_first_load_then_200(http_server, folder, state_home,
                                                   monkeypatch):
    # The test holds the lock of the allocation state file, which the first
    # load waits for, so "before the first load" is a state, not a race.
    # (A FIFO used to hold it; the server no longer opens FIFOs.)
    monkeypatch.setenv("XDG_STATE_HOME", str(state_home))
    lock = Path(f"{Config().state_path(folder)}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    srv = http_server(folder, state_home=state_home, start=False).spawn()
    q = dns.message.make_query("web.default.svc.cluster.local.", "A")

    def dns_rcode():
        return dns.query.udp(q, srv.host, port=srv.port, timeout=0.5).rcode()

    try:
        assert srv.wait_status("/health", 200, timeout=20) == "OK\n"
        # DNS is up but not loaded: SERVFAIL (never a wrong NXDOMAIN) ...
        wait_until(lambda: dns_rcode() == dns.rcode.SERVFAIL, 20, message="SERVFAIL")
        # ... and not ready.
        code, body, _ = srv.get("/ready")
        assert code == 503 and "first load" in body, (code, body)
        assert total(scrape(srv), "coredns_py_reloads_total") == 0
    finally:
        os.close(fd)  # the lock goes with it: the first load goes on
    assert srv.wait_status("/ready", 200, timeout=20) == "OK\n"
    assert srv.rrset_values("web.default.svc.cluster.local.") == ["10.96.7.7"]


def test_ready_is_503_while_the_folder_cannot_be_read(http_server, folder, tmp_path):
    srv = http_server(folder)
    assert srv.wait_status("/ready", 200) == "OK\n"
    away = tmp_path / "away"
    folder.rename(away)
    body = srv.wait_status("/ready", 503)
    assert "cannot read the manifests folder" in body
    assert srv.get("/health")[0] == 200  # alive, serving the last good data
    assert srv.rrset_values("web.default.svc.cluster.local.") == ["10.96.7.7"]
    away.rename(folder)
    srv.wait_status("/ready", 200)


# --- /metrics ------------------------------------------------------------------------------


def test_metrics_parse_with_prometheus_client(http_server, folder):
    srv = http_server(folder)
    srv.query("web.default.svc.cluster.local.", "A")
    s = scrape(srv)  # parsed with prometheus_client.parser
    names = {n for n, _ in s}
    for name in ("coredns_dns_requests_total", "coredns_dns_responses_total",
                 "coredns_dns_request_duration_seconds_bucket",
                 "coredns_dns_request_size_bytes_bucket", "coredns_dns_response_size_bytes_bucket",
                 "coredns_reload_failed_total", "coredns_build_info", "coredns_plugin_enabled",
                 "process_resident_memory_bytes", "coredns_py_manifest_objects"):
        assert name in names, name
    # OpenMetrics when the scraper asks for it, as prometheus_client negotiates.
    code, body, headers = srv.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert code == 200 and headers["content-type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")


# --- the status page's API ------------------------------------------------------------------


def test_status_api_lists_services_names_and_errors(http_server, folder):
    (folder / "zz-broken.yaml").write_text(BROKEN)
    srv = http_server(folder)
    code, body, headers = srv.get("/api/status")
    assert code == 200 and headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert doc["ready"] is True and doc["zone"] == "cluster.local"
    assert doc["last_reload"] > 0 and doc["last_reload_seconds"] >= 0
    ns = {n["name"]: n for n in doc["namespaces"]}
    good, kubernetes, web = ns["default"]["services"]
    assert good["name"] == "good"
    assert (kubernetes["name"], kubernetes["cluster_ips"]) == ("kubernetes", ["10.96.0.1"])
    assert (web["name"], web["type"], web["cluster_ips"]) == ("web", "ClusterIP", ["10.96.7.7"])
    names = {(r["name"], r["type"]): r["values"] for r in web["names"]}
    assert names[("web.default.svc.cluster.local.", "A")] == ["10.96.7.7"]
    assert ("_http._tcp.web.default.svc.cluster.local.", "SRV") in names
    assert names[("7.7.96.10.in-addr.arpa.", "PTR")] == ["web.default.svc.cluster.local."]
    [err] = doc["errors"]
    assert err["file"] == str(folder / "zz-broken.yaml") and err["line"] == BROKEN_LINE
    assert (err["object"], err["field"]) == ("Service default/bad", "spec.clusterIP")
    assert "must be a valid IP address" in err["message"]

    code, body, _ = srv.get("/api/status?q=nomatch")
    assert code == 200 and json.loads(body)["services_shown"] == 0


def test_query_api_runs_the_real_answer(http_server, folder):
    srv = http_server(folder)
    code, body, _ = srv.get("/api/query?name=WEB.default.svc.cluster.local&type=A")
    assert code == 200, body
    res = json.loads(body)
    assert res["rcode"] == "NOERROR"
    assert res["answer"] == ["WEB.default.svc.cluster.local. 5 IN A 10.96.7.7"]
    assert "status: NOERROR" in res["text"] and "flags: qr aa rd" in res["text"]
    code, body, _ = srv.get("/api/query?name=nope.default.svc.cluster.local&type=AAAA")
    res = json.loads(body)
    assert res["rcode"] == "NXDOMAIN" and res["authority"][0].startswith("cluster.local.")
    # The query box does not count as DNS traffic.
    assert total(scrape(srv), "coredns_dns_requests_total", type="AAAA") == 0
    for bad in ("/api/query?name=&type=A", "/api/query?name=a..b&type=A",
                "/api/query?name=web&type=BOGUS"):
        code, body, _ = srv.get(bad)
        assert code == 400 and "error" in json.loads(body), bad


def test_page_and_script_are_served_from_the_package(http_server, folder):
    srv = http_server(folder)
    code, page, headers = srv.get("/")
    assert code == 200 and headers["content-type"].startswith("text/html")
    assert '<script src="/status.js">' in page and "http://" not in page.replace(
        "http://www.w3.org", "")
    assert "script-src 'self'" in headers["content-security-policy"]
    code, script, headers = srv.get("/status.js")
    assert code == 200 and "javascript" in headers["content-type"] and "/api/query" in script
    assert srv.get("/nope")[0] == 404
    assert srv.get("/", method="POST")[0] == 405
    code, body, _ = srv.get("/health", method="HEAD")
    assert code == 200 and body == ""


def test_page_refuses_foreign_host_names(http_server, folder):
    # Listening on loopback, the page and its API answer only loopback names,
    # so a hostile web page cannot read them through DNS rebinding.
    srv = http_server(folder)
    assert srv.get("/api/status", headers={"Host": "evil.example:9153"})[0] == 403
    assert srv.get("/", headers={"Host": "localhost:9153"})[0] == 200
    assert srv.get("/", headers={"Host": "[::1]:9153"})[0] == 200
    # Health and metrics are for any scraper.
    assert srv.get("/health", headers={"Host": "coredns-py:9153"})[0] == 200


# --- the listener's own life ----------------------------------------------------------------


def test_http_off_and_port_conflicts(start_server, folder):
    # --http '' turns it off.
    srv = start_server(folder, args=["--http", ""])
    assert "status page on" not in srv.stderr
    srv.stop()
    # Taken port: the default one is a warning (DNS serves on), an explicit
    # one is an error with one line.
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    port = blocker.getsockname()[1]
    try:
        explicit = start_server(folder, args=["--http", f"127.0.0.1:{port}"], start=False)
        explicit.addresses = [("127.0.0.1", free_port())]
        explicit._spawn()
        assert explicit.proc.wait(20) == 1
        err = explicit.stderr.strip().splitlines()
        assert err[-1] == f"coredns-py: cannot listen on 127.0.0.1:{port}/http: " \
                          f"address already in use", err
        assert "Traceback" not in explicit.stderr
    finally:
        blocker.close()


def test_default_port_taken_is_only_a_warning():
    # Run the real start_http with the default's semantics (not required).
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    try:
        listener, news = status_mod.start_http(object(), blocker.getsockname(), required=False)
        assert listener is None
        news()  # a warning, logged once DNS is up
        with pytest.raises(ListenError):
            status_mod.start_http(object(), blocker.getsockname(), required=True)
    finally:
        blocker.close()


def _dns_time(srv: ServerProcess, n: int = 20) -> float:
    """The slowest of n UDP answers, in seconds."""
    worst = 0.0
    q = dns.message.make_query("web.default.svc.cluster.local.", "A")
    for _ in range(n):
        t = time.monotonic()
        r = dns.query.udp(q, srv.host, port=srv.port, timeout=2)
        worst = max(worst, time.monotonic() - t)
        assert r.rcode() == dns.rcode.NOERROR
    return worst


def test_slow_and_hostile_http_clients_cannot_stall_dns(http_server, folder):
    srv = http_server(folder)
    port = srv.http_port
    slow, over = [], []
    try:
        # Slow-loris clients filling every HTTP slot, each trickling a request
        # head that never ends.
        for _ in range(status_mod.MAX_HTTP_CONNECTIONS):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            slow.append(s)
        stop = threading.Event()

        def trickle():
            while not stop.is_set():
                for s in slow:
                    try:
                        s.send(b"X")
                    except OSError:
                        pass
                stop.wait(0.2)

        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        try:
            # DNS answers promptly throughout.
            assert _dns_time(srv) < 1.0
            # Past the cap, new connections are turned away at once.
            for _ in range(8):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                over.append(s)
                s.sendall(b"GET /health HTTP/1.0\r\n\r\n")
            for s in over:
                assert s.recv(100).startswith(b"HTTP/1.0 503"), "over the cap"
            # The request-head deadline frees the slots, whatever the pace.
            time.sleep(status_mod.HTTP_REQUEST_TIMEOUT + 0.5)
            assert _dns_time(srv) < 1.0
            assert srv.wait_status("/health", 200, timeout=15) == "OK\n"
        finally:
            stop.set()
            t.join(5)
        for s in slow:
            s.settimeout(2)
            try:
                data = s.recv(200)
            except OSError:
                data = b""
            assert data.startswith(b"HTTP/1.0 408") or data == b"", data
    finally:
        for s in slow + over:
            s.close()
    assert srv.alive()


# Services that are no names in DNS: headless without endpoints, an
# ExternalName that is an IP.
NX_CASES = documents(
    service("lonely", cluster_ip="None", selector={"app": "nobody"},
            ports=[{"name": "http", "port": 80}]),
    service("by-ip", type="ExternalName", ports=(), externalName="192.0.2.7"))


def assert_page_names_are_answers(srv) -> set:
    """Ask the server over DNS for every row of /api/status; return the row types."""
    import dns.rdatatype
    code, body, _ = srv.get("/api/status")
    assert code == 200
    doc = json.loads(body)
    rows = [r for ns in doc["namespaces"] for s in ns["services"] for r in s["names"]]
    for row in rows:
        if row["type"] == "NXDOMAIN":
            r = srv.query(row["name"], "A", tcp=True)
            assert r.rcode() == dns.rcode.NXDOMAIN, row
            assert row["values"] and row["values"][0], row  # the reason, in words
            continue
        r = srv.query(row["name"], row["type"], tcp=True)
        assert r.rcode() == dns.rcode.NOERROR, row
        want = dns.rdatatype.from_text(row["type"])
        got = [rd.to_text() for rs in r.answer
               if rs.rdtype == want and rs.name.to_text() == row["name"] for rd in rs]
        assert got == row["values"], row
    return {r["type"] for r in rows}


def test_every_name_the_page_lists_is_what_dns_answers(http_server, folder):
    """The page's names come from the code that answers queries: every row of
    /api/status, asked of the server over DNS, gets exactly those records
    (or that NXDOMAIN), for every Service of the bundled example cluster and
    for Services that do not exist in DNS."""
    from conftest import ZONES
    assert assert_page_names_are_answers(http_server(ZONES)) >= {
        "A", "AAAA", "SRV", "PTR", "CNAME"}
    write(folder, "nx.yaml", NX_CASES)
    assert "NXDOMAIN" in assert_page_names_are_answers(http_server(folder))
