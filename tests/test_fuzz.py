"""Fuzzing the packet parser: seeded hostile packets (tests/helpers/fuzz.py)
through the whole chain (cookies, rate limiting, the answer cache,
answer()), in-process and then over real UDP and TCP sockets.  No crash, no
traceback, every answer parses with dnspython and dnslib, nothing answers a
response (QR=1).  Bounded in count and time; bench/fuzz_parser.py runs a
million packets."""

from __future__ import annotations

import logging
import random
import socket
import time

import dns.message
import dns.query
import pytest
import yaml

from coredns_py import config
from coredns_py.cluster import local
from coredns_py.server import Server
from helpers.fuzz import check_answer, numbered, packet, pipelined, reply_problem, seed_queries
from conftest import ZONES
from helpers.tcp import frame

SEED = 20261128
IN_PROCESS = 30_000
IN_PROCESS_SECONDS = 8.0
OVER_UDP = 3_000
OVER_TCP = 1_500
NAME = "webapp.default.svc.cluster.local"

# The abuse stages on (as on an exposed address), the rate high enough that
# rate limiting slips nothing a fuzz run sends.
FUZZ_CONFIG = {"upstream": [], "rate_limit": True, "cookies": True,
               "rate_limit_responses_per_second": 1_000_000}


def in_process_entry():
    cfg = config.parse(FUZZ_CONFIG)
    server = Server(local.from_folder(ZONES, cfg, state=False), cfg, [("192.0.2.1", 53)])
    assert server.rebuild()
    server._start_stages()
    assert server.cookies is not None and server.rate_limit is not None
    return server.entry


def test_fuzzed_packets_in_process(caplog):
    entry = in_process_entry()
    rng = random.Random(SEED)
    seeds = seed_queries(rng)
    problems = []
    deadline = time.monotonic() + IN_PROCESS_SECONDS
    sent = 0
    with caplog.at_level(logging.WARNING):
        while sent < IN_PROCESS and time.monotonic() < deadline:
            wire = packet(rng, seeds)
            proto = "tcp" if sent % 3 == 0 else "udp"
            out = entry(wire, proto, ("192.0.2.9", 5353))
            assert out is None or isinstance(out, bytes)  # nothing forwarded: no upstream
            problem = check_answer(wire, out)
            if problem:
                problems.append((problem, wire.hex()))
            sent += 1
    assert sent >= 2_000
    assert not problems, problems[:5]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.fixture
def fuzz_server(start_server, tmp_path):
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(FUZZ_CONFIG), encoding="utf-8")
    return start_server(args=["--config", str(path)])


def test_fuzzed_packets_over_udp_and_tcp(fuzz_server):
    rng = random.Random(SEED + 1)
    seeds = seed_queries(rng)
    problems = []

    # UDP: every packet from one socket, each with its own ID.
    sent = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.settimeout(2)
        for n in range(OVER_UDP):
            wire = numbered(packet(rng, seeds), n)
            sent[n] = wire
            s.sendto(wire, ("127.0.0.1", fuzz_server.port))
            if n % 200 == 199:
                time.sleep(0.01)  # let the server keep up: loss is not what is tested
        answers = []
        try:
            while True:
                answers.append(s.recv(65535))
        except socket.timeout:
            pass
    assert len(answers) > OVER_UDP / 3
    for answer in answers:
        _query, problem = reply_problem(sent, answer)
        if problem:
            problems.append(("udp", problem, answer.hex()))

    # TCP: pipelines of fuzzed messages, each in a well-formed frame.
    for conn in range(OVER_TCP // 300):
        frames, queries = [], {}
        for n in range(300):
            wire = numbered(packet(rng, seeds), n)
            if not wire:
                continue  # a zero-length frame ends the connection: tested apart
            queries[n] = wire
            frames.append(frame(wire))
        answers, rest = pipelined(fuzz_server.port, frames, timeout=5)
        for answer in answers:
            _query, problem = reply_problem(queries, answer)
            if problem:
                problems.append(("tcp", problem, answer.hex()))
        assert rest == b"", "a partial frame from the server"

    # Broken framing: a zero-length frame, a frame longer than what follows.
    for junk in (b"\x00\x00", b"\xff\xff" + b"x" * 100):
        with socket.create_connection(("127.0.0.1", fuzz_server.port), timeout=5) as s:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            assert s.recv(100) == b""

    assert not problems, problems[:5]
    assert fuzz_server.query(NAME, "A").answer  # still serving
    assert dns.query.tcp(dns.message.make_query(NAME, "A"), "127.0.0.1", port=fuzz_server.port,
                         timeout=5).answer
    assert "Traceback" not in fuzz_server.stderr
    assert "ERROR" not in fuzz_server.stderr
