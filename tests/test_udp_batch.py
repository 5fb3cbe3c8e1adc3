"""UDP read and answered in batches (recvmmsg/sendmmsg, coredns_py.net.mmsg)
must behave exactly as one system call per datagram: every answer reaches
its own sender, the handler sees the same peer tuples recvfrom gives, a
datagram without an answer (or whose handler failed) costs only itself,
and answers wait in the queue when the kernel's send buffer is full.

Each real-socket test runs on both paths (batched, and one datagram per
call as on platforms without recvmmsg), with real sockets on loopback.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import sys

import pytest

from coredns_py.net import mmsg, udp
from coredns_py.net.listeners import start

LOCAL = "127.0.0.1"
STEP = 5.0  # bound on every single await

PATHS = [pytest.param(True, id="batched",
                      marks=pytest.mark.skipif(not mmsg.available(),
                                               reason="no recvmmsg/sendmmsg here")),
         pytest.param(False, id="per-datagram")]


def run(coro, timeout: float = 20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


class Handler:
    """Echo with a marker; b"silent" gets no answer, b"boom" raises, b"later"
    is answered by an awaitable."""

    def __init__(self):
        self.peers: list[tuple] = []

    def __call__(self, query: bytes, proto: str, peer: tuple):
        self.peers.append(peer)
        if query.startswith(b"boom"):
            raise RuntimeError("handler exploded")
        if query.startswith(b"silent"):
            return None
        if query.startswith(b"later"):
            async def later():
                await asyncio.sleep(0)
                return b"L:" + query
            return later()
        return b"R:" + query


def client(family: int = socket.AF_INET, host: str = LOCAL) -> socket.socket:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.setblocking(False)
    return s


async def receive_all(socks: list, count: int) -> list[tuple[socket.socket, bytes]]:
    """``count`` datagrams from any of ``socks``, each with the socket it came to."""
    loop = asyncio.get_running_loop()
    got = []
    deadline = loop.time() + STEP
    while len(got) < count:
        for s in socks:
            try:
                got.append((s, s.recv(70000)))
            except BlockingIOError:
                pass
        if loop.time() > deadline:
            raise TimeoutError(f"{len(got)} of {count} answers arrived")
        await asyncio.sleep(0.001)
    return got


@pytest.mark.parametrize("batched", PATHS)
def test_every_answer_reaches_its_own_sender(monkeypatch, caplog, batched):
    monkeypatch.setattr(udp, "BATCHED", batched)
    kinds = [b"q", b"silent", b"q", b"boom", b"later", b"q"]

    async def main():
        h = Handler()
        async with await start(h, [(LOCAL, 0)]) as listeners:
            port = listeners.addresses[0][1]
            socks = [client() for _ in range(3)]
            try:
                sent = {}
                # All sent before the server reads once: they come in one batch
                # (and in a second one: more than UDP_BATCH).
                for i in range(udp.UDP_BATCH + 20):
                    s = socks[i % 3]
                    payload = kinds[i % len(kinds)] + b"%d" % i
                    s.sendto(payload, (LOCAL, port))
                    sent[payload] = s
                answered = [p for p in sent if not p.startswith((b"silent", b"boom"))]
                got = await receive_all(socks, len(answered))
                await asyncio.sleep(0.05)  # nothing more comes
                extra = await receive_all(socks, 0)
            finally:
                names = {s: s.getsockname() for s in socks}
                for s in socks:
                    s.close()
        assert extra == []
        want = {(sent[p], (b"L:" if p.startswith(b"later") else b"R:") + p) for p in answered}
        assert set(got) == want and len(got) == len(want)
        # The handler saw each sender's address as recvfrom gives it.
        assert set(h.peers) == set(names.values())
        assert all(type(peer) is tuple for peer in h.peers)

    with caplog.at_level(logging.ERROR, logger="coredns_py.transport"):
        run(main())
    assert caplog.text.count("RuntimeError: handler exploded") == sum(
        1 for i in range(udp.UDP_BATCH + 20) if kinds[i % len(kinds)] == b"boom")


@pytest.mark.parametrize("batched", PATHS)
def test_ipv6_peers_are_recvfrom_tuples(monkeypatch, batched):
    monkeypatch.setattr(udp, "BATCHED", batched)

    async def main():
        h = Handler()
        async with await start(h, [("::1", 0)]) as listeners:
            port = listeners.addresses[0][1]
            s = client(socket.AF_INET6, "::1")
            try:
                for i in range(5):
                    s.sendto(b"q%d" % i, ("::1", port))
                got = await receive_all([s], 5)
                mine = s.getsockname()
            finally:
                s.close()
        assert sorted(data for _, data in got) == [b"R:q%d" % i for i in range(5)]
        assert h.peers == [mine] * 5  # (host, port, flowinfo, scope_id)
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close()
    except OSError:
        pytest.skip("no IPv6 here")
    run(main())


async def one_client(sent: int, answers: int) -> list[bytes]:
    """One client sends ``sent`` queries (q0, q1 ...) to a fresh listener and
    waits for ``answers`` answers: their payloads, in the order they came."""
    async with await start(Handler(), [(LOCAL, 0)]) as listeners:
        port = listeners.addresses[0][1]
        s = client()
        try:
            for i in range(sent):
                s.sendto(b"q%d" % i, (LOCAL, port))
            got = await receive_all([s], answers)
        finally:
            s.close()
    return [data for _, data in got]


@pytest.mark.skipif(not mmsg.available(), reason="no recvmmsg/sendmmsg here")
def test_a_full_send_buffer_queues_the_rest_of_a_batch(monkeypatch):
    """sendmmsg sends part of a batch, then the kernel's buffer is full: the
    rest waits in the queue and goes out, in order, when there is room."""
    monkeypatch.setattr(udp, "BATCHED", True)
    real_send = mmsg.Batch.send
    calls = []

    def send(self, first, count):
        calls.append((first, count))
        if len(calls) == 1:
            return real_send(self, first, first + 3)  # three went, then...
        if len(calls) == 2:
            raise BlockingIOError(errno.EAGAIN, "full")
        return real_send(self, first, count)
    monkeypatch.setattr(mmsg.Batch, "send", send)

    assert run(one_client(sent=10, answers=10)) == [b"R:q%d" % i for i in range(10)]
    assert calls[:2] == [(0, 10), (3, 10)]


@pytest.mark.skipif(not mmsg.available(), reason="no recvmmsg/sendmmsg here")
def test_an_answer_the_kernel_refuses_costs_only_itself(monkeypatch, caplog):
    """An error sending one answer of a batch (as sendto would raise it for
    that datagram) is logged; the answers after it still go."""
    monkeypatch.setattr(udp, "BATCHED", True)
    real_send = mmsg.Batch.send
    failed = []

    def send(self, first, count):
        if first == 2 and not failed:
            failed.append(first)
            raise OSError(errno.EMSGSIZE, "Message too long")
        return real_send(self, first, min(count, first + 2) if first < 2 else count)
    monkeypatch.setattr(mmsg.Batch, "send", send)

    with caplog.at_level(logging.WARNING, logger="coredns_py.transport"):
        got = run(one_client(sent=6, answers=5))
    assert got == [b"R:q%d" % i for i in (0, 1, 3, 4, 5)]
    assert "Message too long" in caplog.text


def test_sockaddr_decoding_matches_python():
    """The raw addresses the kernel writes, turned into tuples, are what
    Python's own socket calls give for them."""
    for family, host in ((socket.AF_INET, LOCAL), (socket.AF_INET6, "::1")):
        try:
            a = socket.socket(family, socket.SOCK_DGRAM)
        except OSError:
            continue
        with a, socket.socket(family, socket.SOCK_DGRAM) as b:
            a.bind((host, 0))
            b.bind((host, 0))
            b.sendto(b"x", a.getsockname())
            _, peer = a.recvfrom(10)
            port = peer[1].to_bytes(2, "big")
            if family == socket.AF_INET:
                raw = socket.AF_INET.to_bytes(2, sys.byteorder) + port + socket.inet_pton(
                    family, host) + bytes(8)
            else:
                raw = (socket.AF_INET6.to_bytes(2, sys.byteorder) + port + bytes(4)
                       + socket.inet_pton(family, host) + bytes(4))
            assert mmsg.decode_sockaddr(raw) == peer
