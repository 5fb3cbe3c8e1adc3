"""Tests for the transports in coredns_py.net (udp, tcp, listeners): the
protocols on a fake transport, then real sockets on loopback.  The handler is
an echo with a marker: the transport never looks at DNS content, so it does
not need real DNS messages (except in the one dnspython test showing real
clients work)."""

from __future__ import annotations

import asyncio
import os
import errno
import logging
import socket
import time

import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import dns.rrset
import pytest

from coredns_py.errors import ListenError
from coredns_py.net import descriptors, listen
from coredns_py.net.accept import ACCEPT_RETRY_DELAY, Acceptor
from coredns_py.net.framing import MAX_TCP_BUFFER
from coredns_py.net.connections import ConnectionRegistry
from coredns_py.net.tcp import TcpProtocol
from coredns_py.net.listeners import start
from coredns_py.net.udp import UDP_BATCH, UDP_MAX_WRITE_BUFFER, UdpProtocol, UdpSocket
from helpers.fake_transport import PEER, connect
from helpers.ports import free_port
from helpers.tcp import frame

LOCAL = "127.0.0.1"
STEP = 5.0  # bound on every single await in these tests


def run(coro, timeout: float = 20.0):
    """Run a coroutine in a fresh loop with an overall time bound."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


class Recorder:
    """Echo handler: answers b"R:" + query and records every call."""

    def __init__(self):
        self.calls: list[tuple[bytes, str, tuple]] = []

    def __call__(self, query: bytes, proto: str, peer: tuple):
        self.calls.append((query, proto, peer))
        if query == b"boom":
            raise RuntimeError("handler exploded")
        if query == b"silent":
            return None
        return b"R:" + query

    @property
    def queries(self) -> list[bytes]:
        return [q for q, _, _ in self.calls]


# --- Protocols on a fake transport -------------------------------------------


def make_tcp(handler=None, peer=PEER, **kwargs):
    handler = handler or Recorder()
    kwargs.setdefault("idle_timeout", None)  # no event loop needed
    proto = TcpProtocol(handler, **kwargs)
    return proto, connect(proto, peer), handler


Q1, Q2, Q3 = b"first-query", b"q2", b"x" * 300  # 300 > 255: both length bytes matter
STREAM = frame(Q1) + frame(Q2) + frame(Q3)
EXPECTED = [frame(b"R:" + q) for q in (Q1, Q2, Q3)]


def test_tcp_whole_stream_in_one_read():
    proto, fake, h = make_tcp()
    proto.data_received(STREAM)
    assert h.calls == [(q, "tcp", fake.peer) for q in (Q1, Q2, Q3)]
    assert fake.writes == EXPECTED
    assert not fake.closed


def test_tcp_one_byte_at_a_time():
    proto, fake, h = make_tcp()
    for i in range(len(STREAM)):
        proto.data_received(STREAM[i:i + 1])
    assert h.queries == [Q1, Q2, Q3]
    assert fake.writes == EXPECTED
    assert not fake.closed


def test_tcp_split_at_every_position():
    for cut in range(len(STREAM) + 1):
        proto, fake, h = make_tcp()
        proto.data_received(STREAM[:cut])
        proto.data_received(STREAM[cut:])
        assert h.queries == [Q1, Q2, Q3], cut
        assert fake.writes == EXPECTED, cut


def test_tcp_answer_is_written_as_soon_as_its_frame_completes():
    proto, fake, h = make_tcp()
    proto.data_received(frame(Q1) + frame(Q2)[:1])
    assert fake.writes == EXPECTED[:1]
    proto.data_received(frame(Q2)[1:])
    assert fake.writes == EXPECTED[:2]


def test_tcp_trailing_partial_frame_waits_for_the_rest():
    proto, fake, h = make_tcp()
    proto.data_received(frame(Q1) + b"\x00\x05ab")  # 2 of 5 bytes of the next one
    assert h.queries == [Q1]
    assert fake.writes == EXPECTED[:1]
    assert not fake.closed
    proto.data_received(b"cde")
    assert h.queries == [Q1, b"abcde"]
    assert fake.writes[1] == frame(b"R:abcde")


def test_tcp_eof_with_partial_frame_closes_without_calling_handler():
    proto, fake, h = make_tcp()
    proto.data_received(frame(Q1) + b"\x00\x09junk")
    assert proto.eof_received() is True  # we close ourselves
    assert h.queries == [Q1]
    assert fake.closed and not fake.aborted  # close() flushes the answer


def test_tcp_zero_length_frame_closes(caplog):
    proto, fake, h = make_tcp()
    with caplog.at_level(logging.INFO, logger="coredns_py.transport"):
        proto.data_received(frame(Q1) + b"\x00\x00" + frame(Q2))
    assert h.queries == [Q1]  # answered before the bad frame, nothing after
    assert fake.writes == EXPECTED[:1]
    assert fake.closed and not fake.aborted
    assert caplog.messages == [
        "closing TCP connection from ('192.0.2.7', 40000): zero-length message"]
    proto.data_received(frame(Q3))  # late data is ignored
    assert h.queries == [Q1]


def test_tcp_handler_exception_and_none_answer_keep_connection(caplog):
    proto, fake, h = make_tcp()
    with caplog.at_level(logging.ERROR, logger="coredns_py.transport"):
        proto.data_received(frame(b"boom") + frame(b"silent") + frame(Q1))
    assert h.queries == [b"boom", b"silent", Q1]
    assert fake.writes == EXPECTED[:1]
    assert not fake.closed
    assert "handler failed" in caplog.text and "handler exploded" in caplog.text


def test_tcp_oversized_answer_is_dropped(caplog):
    proto, fake, _ = make_tcp(lambda q, p, a: b"y" * 70000 if q == b"big" else b"ok")
    with caplog.at_level(logging.ERROR, logger="coredns_py.transport"):
        proto.data_received(frame(b"big") + frame(b"small"))
    assert fake.writes == [frame(b"ok")]
    assert "larger than a TCP frame" in caplog.text


def test_tcp_max_length_frame():
    proto, fake, h = make_tcp()
    big = bytes(i % 251 for i in range(65535))
    proto.data_received(b"\xff\xff" + big[:1000])
    proto.data_received(big[1000:])
    assert h.queries == [big]


def test_tcp_pause_writing_stops_answering_until_resumed():
    proto, fake, h = make_tcp()
    proto.data_received(frame(Q1))
    proto.pause_writing()  # client is not reading its answers
    assert not fake.reading
    proto.data_received(frame(Q2) + frame(Q3))  # already in flight
    assert h.queries == [Q1]
    proto.resume_writing()
    assert fake.reading
    assert h.queries == [Q1, Q2, Q3]
    assert fake.writes == EXPECTED


def test_tcp_unanswered_bytes_are_capped(caplog):
    proto, fake, h = make_tcp(max_buffer=100)
    proto.pause_writing()
    proto.data_received(frame(b"a" * 50))
    assert not fake.closed
    with caplog.at_level(logging.WARNING, logger="coredns_py.transport"):
        proto.data_received(frame(b"b" * 50))
    assert fake.aborted
    assert h.queries == []
    assert caplog.messages == [
        "closing TCP connection from ('192.0.2.7', 40000): over 100 unanswered bytes"]


def test_tcp_complete_queries_are_answered_before_the_cap_is_checked():
    # The cap counts what is left unanswered, not what one read brought.
    proto, fake, h = make_tcp(max_buffer=100)
    proto.data_received(frame(b"a" * 60) + frame(b"b" * 60) + b"\x00\x05ab")
    assert h.queries == [b"a" * 60, b"b" * 60]
    assert not fake.closed


def test_tcp_default_cap_allows_a_partial_max_frame():
    proto, fake, h = make_tcp()
    proto.data_received(b"\xff\xff" + b"z" * 65000)
    assert not fake.closed


def test_tcp_eof_while_paused_answers_pending_then_closes():
    proto, fake, h = make_tcp()
    proto.pause_writing()
    proto.data_received(frame(Q1) + frame(Q2))
    proto.eof_received()
    assert not fake.closed
    proto.resume_writing()
    assert fake.writes == EXPECTED[:2]
    assert fake.closed and not fake.aborted


def test_connection_registry_makes_room_by_closing_the_oldest_idle():
    async def main():
        reg = ConnectionRegistry(limit=2)
        (first, fake1, _), (second, fake2, _) = make_tcp(registry=reg), make_tcp(registry=reg)
        first.data_received(frame(b"q"))  # first was active last: second is idle the longest
        third, fake3, _ = make_tcp(registry=reg)
        assert (fake1.closed, fake2.closed, fake3.closed) == (False, True, False)
        assert not fake2.aborted  # nothing unsent: an orderly close
        assert list(reg.live) == [first, third] and second not in reg.live
        assert reg.closed["cap"] == 1
        # Busy connections (answers not yet delivered) are never closed for
        # room: with every slot busy the newcomer is refused.
        fake1.buffered = fake3.buffered = 100
        fourth, fake4, _ = make_tcp(registry=reg)
        assert fake4.aborted and not fake1.closed and not fake3.closed
        assert reg.refused["cap"] == 1 and len(reg.live) == 2
        first.connection_lost(None)
        fifth, fake5, _ = make_tcp(registry=reg)
        assert not fake5.closed and len(reg.live) == 2
    run(main())


def test_connection_registry_caps_each_client_address():
    async def main():
        reg = ConnectionRegistry(limit=10, per_source=2)
        a1, fa1, _ = make_tcp(registry=reg, peer=("192.0.2.1", 1))
        a2, fa2, _ = make_tcp(registry=reg, peer=("192.0.2.1", 2))
        b1, fb1, _ = make_tcp(registry=reg, peer=("192.0.2.2", 1))
        fb1.buffered = 1  # busy, and another client's: never closed for a's room
        a3, fa3, _ = make_tcp(registry=reg, peer=("192.0.2.1", 3))
        assert (fa1.closed, fa2.closed, fb1.closed, fa3.closed) == (True, False, False, False)
        assert reg.closed["per_source"] == 1
        fa2.buffered = fa3.buffered = 1
        a4, fa4, _ = make_tcp(registry=reg, peer=("192.0.2.1", 4))
        assert fa4.aborted and reg.refused["per_source"] == 1
        b2, fb2, _ = make_tcp(registry=reg, peer=("192.0.2.2", 2))  # others still get in
        assert not fb2.closed
    run(main())


def test_tcp_answers_a_bounded_batch_per_turn_of_the_loop():
    """Thousands of pipelined queries are answered TCP_BATCH at a time, one
    batch per turn of the event loop, with reading paused meanwhile; a
    callback scheduled in between (another client's turn) runs between
    batches, not after the whole pipeline."""
    async def main():
        order = []

        def handler(q, proto, peer):
            order.append("q")
            return b"R:" + q
        proto = TcpProtocol(handler, idle_timeout=None, batch=4)
        fake = connect(proto)
        proto.data_received(b"".join(frame(b"%d" % i) for i in range(10)))
        assert len(fake.writes) == 4 and not fake.reading
        asyncio.get_running_loop().call_soon(order.append, "other")
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(fake.writes) == 10 and fake.reading
        assert order.index("other") < 10 - 1  # ran before the pipeline was done
        assert fake.writes == [frame(b"R:%d" % i) for i in range(10)]
    run(main())


def test_udp_protocol_survives_handler_errors(caplog):
    h = Recorder()
    proto = UdpProtocol(h)
    fake = connect(proto)
    with caplog.at_level(logging.ERROR, logger="coredns_py.transport"):
        proto.datagram_received(b"boom", ("192.0.2.1", 1))
        proto.datagram_received(b"silent", ("192.0.2.1", 2))
        proto.datagram_received(b"hi", ("192.0.2.1", 3))
    assert fake.sent == [(b"R:hi", ("192.0.2.1", 3))]
    assert "handler exploded" in caplog.text
    proto.error_received(ConnectionRefusedError())  # ignored, no exception
    fake.buffered = UDP_MAX_WRITE_BUFFER + 1  # kernel buffer full
    proto.datagram_received(b"dropped", ("192.0.2.1", 4))
    assert len(fake.sent) == 1


# --- Real sockets --------------------------------------------------------------


async def udp_ask(port: int, payload: bytes, host: str = LOCAL, timeout: float = STEP) -> bytes:
    """Send one datagram and wait (bounded) for one answer, off the loop.

    Raises TimeoutError when no answer comes within ``timeout``."""
    def blocking():
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(payload, (host, port))
            return s.recv(70000)
    return await asyncio.wait_for(asyncio.to_thread(blocking), timeout + 1)


async def tcp_connect(port: int, host: str = LOCAL):
    return await asyncio.wait_for(asyncio.open_connection(host, port), STEP)


async def read_frame(reader) -> bytes:
    header = await asyncio.wait_for(reader.readexactly(2), STEP)
    return await asyncio.wait_for(reader.readexactly(int.from_bytes(header, "big")), STEP)


async def close_writer(writer):
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), STEP)
    except (ConnectionError, OSError):
        pass


def test_udp_round_trip_and_same_port_for_tcp():
    async def main():
        h = Recorder()
        async with await start(h, [(LOCAL, 0)]) as listeners:
            [(host, port)] = listeners.addresses
            assert host == LOCAL and port != 0
            assert await udp_ask(port, b"hello") == b"R:hello"
            assert h.calls[0][1] == "udp" and h.calls[0][2][0] == LOCAL
            reader, writer = await tcp_connect(port)  # TCP on the same port
            writer.write(frame(b"hello"))
            assert await read_frame(reader) == b"R:hello"
            assert h.calls[1][1] == "tcp"
            await close_writer(writer)
    run(main())


def test_udp_large_datagram():
    async def main():
        async with await start(Recorder(), [(LOCAL, 0)]) as listeners:
            port = listeners.addresses[0][1]
            payload = bytes(range(256)) * 235  # 60160 bytes, beyond any "usual" buffer
            assert await udp_ask(port, payload) == b"R:" + payload
    run(main())


def test_udp_burst_beyond_one_batch_is_all_answered():
    # The listener reads at most UDP_BATCH datagrams per wake-up; the rest
    # must wait for the next one, not be lost.
    count = UDP_BATCH * 4 + 3

    async def main():
        h = Recorder()
        async with await start(h, [(LOCAL, 0)]) as listeners:
            port = listeners.addresses[0][1]
            client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            client.setblocking(False)
            try:
                for i in range(count):  # all sent before the server runs once
                    client.sendto(b"q%d" % i, (LOCAL, port))
                loop = asyncio.get_running_loop()
                got = [await asyncio.wait_for(loop.sock_recv(client, 100), STEP)
                       for _ in range(count)]
            finally:
                client.close()
            assert sorted(got) == sorted(b"R:q%d" % i for i in range(count))
            assert len(h.calls) == count
    run(main())


def test_udp_answers_wait_in_a_queue_while_the_kernel_buffer_is_full():
    class Busy(socket.socket):
        """A UDP socket whose send buffer is 'full' for the first few sends."""
        refusals = 3

        def sendto(self, data, addr):
            if self.refusals:
                self.refusals -= 1
                raise BlockingIOError(errno.EAGAIN, "full")
            return super().sendto(data, addr)

    async def main():
        loop = asyncio.get_running_loop()
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.bind((LOCAL, 0))
        receiver.setblocking(False)
        sock = Busy(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((LOCAL, 0))
        proto = UdpProtocol(Recorder())
        udp = UdpSocket(loop, sock, proto)
        try:
            where = receiver.getsockname()
            for i in range(3):
                udp.sendto(b"a%d" % i, where)  # refused: queued, in order
            assert udp.get_write_buffer_size() == 6
            got = [await asyncio.wait_for(loop.sock_recv(receiver, 100), STEP) for _ in range(3)]
            assert got == [b"a0", b"a1", b"a2"]
            assert udp.get_write_buffer_size() == 0
        finally:
            udp.close()
            await asyncio.wait_for(proto.wait_closed(), STEP)
            receiver.close()
        assert sock.fileno() == -1  # closed with the transport
    run(main())


def test_tcp_pipelined_queries_answered_in_order():
    async def main():
        h = Recorder()
        async with await start(h, [(LOCAL, 0)]) as listeners:
            reader, writer = await tcp_connect(listeners.addresses[0][1])
            writer.write(frame(b"one") + frame(b"two") + frame(b"three"))
            assert [await read_frame(reader) for _ in range(3)] == [b"R:one", b"R:two", b"R:three"]
            writer.write(frame(b"four"))  # connection stays open for more
            assert await read_frame(reader) == b"R:four"
            await close_writer(writer)
    run(main())


def test_tcp_idle_timeout_closes_connection():
    async def main():
        async with await start(Recorder(), [(LOCAL, 0)], tcp_idle_timeout=0.2) as listeners:
            reader, writer = await tcp_connect(listeners.addresses[0][1])
            t0 = time.monotonic()
            writer.write(frame(b"q"))
            assert await read_frame(reader) == b"R:q"
            assert await asyncio.wait_for(reader.read(100), STEP) == b""  # EOF from server
            assert 0.15 <= time.monotonic() - t0 < STEP
            await close_writer(writer)
    run(main())


def test_tcp_idle_timer_restarts_with_each_query():
    async def main():
        async with await start(Recorder(), [(LOCAL, 0)], tcp_idle_timeout=0.5) as listeners:
            reader, writer = await tcp_connect(listeners.addresses[0][1])
            for i in range(4):  # 4 x 0.2 s > 0.5 s, but never idle for 0.5 s
                await asyncio.sleep(0.2)
                writer.write(frame(b"q%d" % i))
                assert await read_frame(reader) == b"R:q%d" % i
            await close_writer(writer)
    run(main())


def test_tcp_client_that_never_reads_is_bounded_then_reset():
    """Pipelining queries without reading the answers: we stop reading
    (bounded buffers, kernel ones included) and the idle timeout finally
    resets the connection, so the kernel does not keep the undelivered
    answers after we gave up."""
    async def main():
        answer = b"y" * 60000
        async with await start(lambda q, p, a: answer, [(LOCAL, 0)],
                               tcp_idle_timeout=0.5) as listeners:
            client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.setblocking(False)
            try:
                await asyncio.wait_for(
                    asyncio.get_running_loop().sock_connect(client, (LOCAL, listeners.addresses[0][1])),
                    STEP)
                queries = frame(b"q" * 20) * 1000
                deadline = time.monotonic() + STEP
                while not any(p._write_paused for p in listeners._registry.live):
                    assert time.monotonic() < deadline, "server never paused writing"
                    try:
                        client.send(queries)
                    except BlockingIOError:
                        pass
                    await asyncio.sleep(0.005)
                [proto] = listeners._registry.live
                assert not proto.transport.is_reading()
                assert len(proto._frames) <= MAX_TCP_BUFFER
                server_side = proto.transport.get_extra_info("socket")
                # Linux doubles what was asked for its bookkeeping.
                assert server_side.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) \
                    <= 2 * listen.TCP_SEND_BUFFER
                assert server_side.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) \
                    <= 2 * listen.TCP_RECEIVE_BUFFER
                while listeners._registry.live:  # idle timeout resets it
                    assert time.monotonic() < deadline, "stuck connection never dropped"
                    await asyncio.sleep(0.02)
                assert listeners.stats()["tcp_closed"]["idle"] == 1
                with pytest.raises(ConnectionResetError):
                    while time.monotonic() < deadline:
                        try:
                            if client.recv(65536) == b"":
                                break
                        except BlockingIOError:
                            await asyncio.sleep(0.01)
            finally:
                client.close()
    run(main())


def test_accept_out_of_descriptors_is_one_line_and_a_pause(caplog):
    """accept() failing with EMFILE: one log line per interval (not a
    traceback per call), accepting pauses, then the waiting clients are
    served."""
    failures = []

    class Exhausted(socket.socket):
        def accept(self):
            if len(failures) < 3:
                failures.append(time.monotonic())
                raise OSError(errno.EMFILE, "Too many open files")
            return super().accept()

    async def main():
        loop = asyncio.get_running_loop()
        sock = Exhausted(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((LOCAL, 0))
        sock.listen(16)
        acceptor = Acceptor(loop, sock, lambda: TcpProtocol(Recorder(), idle_timeout=None))
        try:
            answers = []
            for i in range(3):
                reader, writer = await tcp_connect(sock.getsockname()[1])
                writer.write(frame(b"%d" % i))
                answers.append(await read_frame(reader))
                await close_writer(writer)
            assert answers == [b"R:0", b"R:1", b"R:2"]
            assert acceptor.errors == 3
            # Each failure paused accepting before the next try.
            assert all(b - a >= ACCEPT_RETRY_DELAY * 0.9 for a, b in zip(failures, failures[1:]))
        finally:
            acceptor.close()
    with caplog.at_level(logging.DEBUG, logger="coredns_py.transport"):
        run(main())
    lines = [r for r in caplog.records if "cannot accept" in r.getMessage()]
    assert len(lines) == 1 and "Too many open files" in lines[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)


def test_tcp_cap_follows_the_descriptor_limit(monkeypatch):
    monkeypatch.setattr(descriptors.resource, "getrlimit", lambda what: (1024, 1024))
    assert descriptors.tcp_connection_cap(1000) == 1024 - descriptors.FD_RESERVE
    monkeypatch.setattr(descriptors.resource, "getrlimit", lambda what: (65536, 65536))
    assert descriptors.tcp_connection_cap(1000) == 1000
    monkeypatch.setattr(descriptors.resource, "getrlimit", lambda what: (256, 256))
    assert descriptors.tcp_connection_cap(1000) == descriptors.MIN_TCP_CONNECTIONS


def test_descriptor_reserve_covers_what_else_the_server_opens():
    from coredns_py.ops.http import MAX_HTTP_CONNECTIONS
    from coredns_py.resolver.forward import MAX_EXCHANGES
    assert descriptors.FD_RESERVE >= MAX_EXCHANGES + MAX_HTTP_CONNECTIONS + 64


def test_handler_exception_does_not_kill_server():
    async def main():
        async with await start(Recorder(), [(LOCAL, 0)]) as listeners:
            port = listeners.addresses[0][1]
            # UDP: the bad query gets no answer, the next one does.
            with pytest.raises(TimeoutError):
                await udp_ask(port, b"boom", timeout=0.3)
            assert await udp_ask(port, b"after") == b"R:after"
            # TCP: same, and on the same connection.
            reader, writer = await tcp_connect(port)
            writer.write(frame(b"boom") + frame(b"next"))
            assert await read_frame(reader) == b"R:next"
            await close_writer(writer)
    logging.getLogger("coredns_py.transport").disabled = True  # expected tracebacks
    try:
        run(main())
    finally:
        logging.getLogger("coredns_py.transport").disabled = False


def test_tcp_zero_length_frame_closes_real_connection():
    async def main():
        async with await start(Recorder(), [(LOCAL, 0)]) as listeners:
            port = listeners.addresses[0][1]
            reader, writer = await tcp_connect(port)
            writer.write(frame(b"ok") + b"\x00\x00")
            assert await read_frame(reader) == b"R:ok"
            assert await asyncio.wait_for(reader.read(100), STEP) == b""
            await close_writer(writer)
            assert await udp_ask(port, b"alive") == b"R:alive"
    run(main())


def test_tcp_connection_cap_closes_the_oldest_idle_connection():
    """RFC 7766 section 6.2.3: at the cap the server reclaims the connection
    idle the longest, instead of refusing the newcomer."""
    async def main():
        async with await start(Recorder(), [(LOCAL, 0)], max_tcp_connections=2) as listeners:
            port = listeners.addresses[0][1]
            first = await tcp_connect(port)
            second = await tcp_connect(port)
            for reader, writer in (first, second):  # both accepted; second active last
                writer.write(frame(b"hi"))
                assert await read_frame(reader) == b"R:hi"
            r3, w3 = await tcp_connect(port)
            w3.write(frame(b"third"))
            assert await read_frame(r3) == b"R:third"
            assert await asyncio.wait_for(first[0].read(100), STEP) == b""  # closed for room
            second[1].write(frame(b"still"))
            assert await read_frame(second[0]) == b"R:still"
            assert listeners.stats()["tcp_closed"]["cap"] == 1
            for w in (first[1], second[1], w3):
                await close_writer(w)
    run(main())


def test_close_closes_open_tcp_connections():
    async def main():
        listeners = await start(Recorder(), [(LOCAL, 0)])
        port = listeners.addresses[0][1]
        reader, writer = await tcp_connect(port)
        writer.write(frame(b"hi"))
        assert await read_frame(reader) == b"R:hi"
        await asyncio.wait_for(listeners.close(), STEP)
        assert await asyncio.wait_for(reader.read(100), STEP) == b""
        await close_writer(writer)
        # Both ports are free again.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((LOCAL, port))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((LOCAL, port))
    run(main())


def test_close_nowait_then_wait_closed_frees_the_port():
    async def main():
        listeners = await start(Recorder(), [(LOCAL, 0)])
        port = listeners.addresses[0][1]
        listeners.close_nowait()
        await asyncio.wait_for(listeners.wait_closed(), STEP)
        again = await start(Recorder(), [(LOCAL, port)])  # same port, no "in use"
        await asyncio.wait_for(again.close(), STEP)
    run(main())


def test_port_in_use_raises_listen_error():
    async def main():
        async with await start(Recorder(), [(LOCAL, 0)]) as listeners:
            port = listeners.addresses[0][1]
            with pytest.raises(ListenError) as info:
                await start(Recorder(), [(LOCAL, port)])
            message = str(info.value)
            assert "in use" in message
            assert message == f"cannot listen on 127.0.0.1:{port}/udp: address already in use"
            assert "\n" not in message
            assert info.value.errno == errno.EADDRINUSE
    run(main())


def test_tcp_port_in_use_closes_udp_socket_it_opened():
    async def main():
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
            busy.bind((LOCAL, 0))
            busy.listen()
            port = busy.getsockname()[1]
            try:
                with pytest.raises(ListenError, match=r"/tcp: address already in use"):
                    await start(Recorder(), [(LOCAL, port)])
            except AssertionError:
                pytest.skip("UDP side of the port was taken by someone else")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((LOCAL, port))  # our UDP socket was released
    run(main())


def test_failure_on_second_address_closes_the_first():
    async def main():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
            busy.bind((LOCAL, 0))
            busy_port = busy.getsockname()[1]
            # Free for TCP too: a UDP-only probe could pick the port of some
            # other program's TCP connection, which the check below would
            # then take for a listener left open.
            free = free_port(LOCAL)
            try:
                with pytest.raises(ListenError, match="in use"):
                    await start(Recorder(), [(LOCAL, free), (LOCAL, busy_port)])
            except AssertionError:
                pytest.skip("free port was taken by someone else meanwhile")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((LOCAL, free))
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((LOCAL, free))
                s.listen()
    run(main())


def test_address_not_available():
    async def main():
        with pytest.raises(ListenError, match="not available"):
            await start(Recorder(), [("192.0.2.1", 0)])  # TEST-NET-1, never local
    run(main())


def test_port_zero_retries_when_tcp_side_is_taken(monkeypatch):
    real_bind = listen.bind
    failures = []

    def flaky_bind(host, port, kind, receive_buffer=None):
        if kind == socket.SOCK_STREAM and not failures:
            failures.append(port)
            raise ListenError("cannot listen: address already in use", errno.EADDRINUSE)
        return real_bind(host, port, kind, receive_buffer)

    monkeypatch.setattr(listen, "bind", flaky_bind)

    async def main():
        async with await start(Recorder(), [(LOCAL, 0)]) as listeners:
            port = listeners.addresses[0][1]
            assert len(failures) == 1
            assert await udp_ask(port, b"u") == b"R:u"
            reader, writer = await tcp_connect(port)
            writer.write(frame(b"t"))
            assert await read_frame(reader) == b"R:t"
            await close_writer(writer)
    run(main())


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_and_ipv4_on_the_same_port():
    async def both(h, v6):
        port = v6.addresses[0][1]
        for acceptor in v6._acceptors:
            assert acceptor._sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        async with await start(h, [(LOCAL, port)]) as v4:
            assert v4.addresses == [(LOCAL, port)]
            assert await udp_ask(port, b"six", host="::1") == b"R:six"
            assert await udp_ask(port, b"four") == b"R:four"
            reader, writer = await tcp_connect(port, host="::1")
            writer.write(frame(b"t6"))
            assert await read_frame(reader) == b"R:t6"
            await close_writer(writer)

    async def main():
        h = Recorder()
        # The port free on ::1 may be held on 127.0.0.1 by another program
        # (other tests run beside this one): then try another port.
        for attempt in range(5):
            async with await start(h, [("::1", 0)]) as v6:
                try:
                    await both(h, v6)
                    return
                except ListenError as exc:
                    if exc.errno != errno.EADDRINUSE or attempt == 4:
                        raise
    run(main())


def test_real_dns_clients():
    """dnspython's own UDP and TCP clients talk to the transports."""
    def handler(wire, proto, peer):
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        response.answer.append(dns.rrset.from_text(
            query.question[0].name, 30, "IN", "A", "10.0.0.1" if proto == "udp" else "10.0.0.2"))
        return response.to_wire()

    async def main():
        async with await start(handler, [(LOCAL, 0)]) as listeners:
            port = listeners.addresses[0][1]
            q = dns.message.make_query("web.default.svc.cluster.local.", dns.rdatatype.A)
            udp = await asyncio.wait_for(asyncio.to_thread(
                dns.query.udp, q, LOCAL, timeout=STEP, port=port), STEP + 1)
            tcp = await asyncio.wait_for(asyncio.to_thread(
                dns.query.tcp, q, LOCAL, timeout=STEP, port=port), STEP + 1)
            assert udp.id == q.id and tcp.id == q.id
            assert udp.answer[0][0].address == "10.0.0.1"
            assert tcp.answer[0][0].address == "10.0.0.2"
    run(main())


def test_udp_receive_buffer_is_asked_for_and_what_was_granted_is_known(caplog):
    def system_default() -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            return s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)

    async def main():
        async with await start(Recorder(), [(LOCAL, 0)], udp_receive_buffer=0) as plain:
            assert plain.udp_receive_buffer == system_default()
        async with await start(Recorder(), [(LOCAL, 0)], udp_receive_buffer=1 << 22) as big:
            granted = big.udp_receive_buffer
            assert big.stats()["udp_receive_buffer"] == granted
            [(transport, _)] = big._udp
            assert transport.get_extra_info("socket").getsockopt(
                socket.SOL_SOCKET, socket.SO_RCVBUF) == granted
            return granted

    with caplog.at_level(logging.DEBUG, logger="coredns_py.transport"):
        granted = run(main())
    if os.geteuid() == 0:  # CAP_NET_ADMIN: past net.core.rmem_max (Linux doubles it)
        assert granted == 2 * (1 << 22)
    else:
        assert granted >= system_default()
    assert any(f"the kernel granted {granted}" in m for m in caplog.messages)
