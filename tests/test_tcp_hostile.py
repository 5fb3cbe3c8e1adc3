"""TCP clients that hog a real server: one that pipelines thousands of
queries, one that holds every connection slot, one alone at its address
opening connection after connection, all with a low file-descriptor limit.
Everybody else keeps getting answers, and nothing is a traceback storm.

Sizes are scaled down and ceilings loose (a slow shared machine must not
fail them); bench/tcp_hostile.py runs the full sizes and prints the
percentiles.
"""

from __future__ import annotations

import socket
import threading
import time

import dns.exception
import dns.message
import dns.query
import pytest

from coredns_py.net.descriptors import FD_RESERVE
from coredns_py.net.connections import MAX_TCP_PER_SOURCE
from status_client import HttpServer, scrape, total
from conftest import server_factory, wait_until
from helpers.tcp import frame, recv_exactly

NAME = "webapp.default.svc.cluster.local"
CAP = 100  # the TCP connection cap the descriptor limit below leaves
NOFILE = FD_RESERVE + CAP
UDP_CEILING = 1.0  # seconds: no UDP answer may wait longer behind a pipeline


class LimitedServer(HttpServer):
    """A server run with ``ulimit -n NOFILE`` (prlimit)."""

    def command(self) -> list[str]:
        return ["prlimit", f"--nofile={NOFILE}:{NOFILE}", "--"] + super().command()


@pytest.fixture
def limited_server(tmp_path_factory, request):
    yield from server_factory(LimitedServer, tmp_path_factory, request)


def tcp_ok(port: int, source: str = "127.0.0.1") -> bool:
    q = dns.message.make_query(NAME, "A")
    try:
        r = dns.query.tcp(q, "127.0.0.1", port=port, timeout=5, source=source)
    except (OSError, EOFError, dns.exception.DNSException):
        return False
    return bool(r.answer)


def hog(port: int, n: int, per_address: int = 50, first_address: int = 2) -> list[socket.socket]:
    """``n`` idle connections from 127.0.0.<first_address>... (``per_address``
    each, under the per-client limit)."""
    socks = []
    for i in range(n):
        source = f"127.0.0.{first_address + i // per_address}"
        socks.append(socket.create_connection(("127.0.0.1", port), timeout=5,
                                              source_address=(source, 0)))
    return socks


def closed_by_server(sock: socket.socket, timeout: float = 5.0) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_a_pipelining_client_leaves_udp_answered(start_server):
    srv = start_server()
    n = 20_000
    batch = b"".join(frame(dns.message.make_query(NAME, "A", id=i % 65536).to_wire())
                     for i in range(n))
    done = threading.Event()
    answered = []

    def pipeline():
        with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
            s.sendall(batch)
            for _ in range(n):
                recv_exactly(s, int.from_bytes(recv_exactly(s, 2), "big"))
                answered.append(1)
        done.set()

    t = threading.Thread(target=pipeline, daemon=True)
    t.start()
    waits = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(5)
        while not done.is_set() and len(waits) < 2000:
            started = time.monotonic()
            u.sendto(dns.message.make_query(NAME, "A", id=len(waits)).to_wire(),
                     ("127.0.0.1", srv.port))
            u.recv(4096)
            waits.append(time.monotonic() - started)
            time.sleep(0.002)
    t.join(60)
    assert len(answered) == n
    assert len(waits) >= 5, "the pipeline ended before UDP was probed"
    assert max(waits) < UDP_CEILING, sorted(waits)[-5:]


def test_a_slot_hog_leaves_other_clients_answered(limited_server):
    srv = limited_server()
    assert f"at most {CAP} TCP connections" in srv.stderr
    socks = hog(srv.port, CAP + 50)
    try:
        # the server holds at most CAP of them: the oldest idle ones went
        wait_until(lambda: sum(closed_by_server(s, 0.05) for s in socks[:50]) == 50, 10,
                   message="the oldest idle connections to be closed for room")
        assert all(tcp_ok(srv.port) for _ in range(10))
        assert not any(closed_by_server(s, 0.01) for s in socks[-10:])  # the newest stay
        samples = scrape(srv)
        assert total(samples, "coredns_py_tcp_connections_limit") == CAP
        assert total(samples, "coredns_py_tcp_connections") <= CAP
        assert total(samples, "coredns_py_tcp_connections_closed_total", reason="cap") >= 50
    finally:
        for s in socks:
            s.close()
    assert "Traceback" not in srv.stderr


def test_one_address_cannot_take_more_than_its_share(limited_server):
    srv = limited_server()
    socks = []
    try:
        for _ in range(MAX_TCP_PER_SOURCE + 30):
            socks.append(socket.create_connection(("127.0.0.1", srv.port), timeout=5,
                                                  source_address=("127.0.0.9", 0)))
        # The kernel completes a handshake before the server accepts it: wait
        # until the server has taken all of them in, closing the extra ones.
        wait_until(lambda: total(scrape(srv), "coredns_py_tcp_connections_closed_total",
                                 reason="per_source") >= 30,
                   10, message="the extra connections to be closed for the per-client limit")
        assert total(scrape(srv), "coredns_py_tcp_connections") <= MAX_TCP_PER_SOURCE
        # its newest connection works; other addresses are unaffected
        assert tcp_ok(srv.port, source="127.0.0.9")
        assert all(tcp_ok(srv.port) for _ in range(5))
    finally:
        for s in socks:
            s.close()


def test_busy_connections_at_the_cap_refuse_newcomers_without_tracebacks(limited_server):
    """Every slot held by a client that pipelines and never reads (busy, so
    none can be closed for room): new connections are refused at once,
    logged once per interval, UDP is served, and when the hog goes TCP
    works again."""
    srv = limited_server()
    big = frame(dns.message.make_query(f"_http._tcp.{NAME}", "SRV").to_wire()) * 3000
    socks = hog(srv.port, CAP)
    try:
        for s in socks:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.setblocking(False)
            try:
                s.send(big)
            except BlockingIOError:
                pass
        time.sleep(0.5)
        refused = sum(not tcp_ok(srv.port) for _ in range(10))
        assert refused >= 8  # a slot may free up meanwhile (the idle timer)
        assert dns.query.udp(dns.message.make_query(NAME, "A"), "127.0.0.1", port=srv.port,
                             timeout=5).answer
        samples = scrape(srv)
        assert total(samples, "coredns_py_tcp_connections_refused_total", reason="cap") >= 8
    finally:
        for s in socks:
            s.close()
    wait_until(lambda: tcp_ok(srv.port), 15, message="TCP to work again")
    # one line per 10 s, not one per refusal
    assert 1 <= srv.stderr.count("none idle: refusing new ones") <= 2 < refused
    assert "Traceback" not in srv.stderr
