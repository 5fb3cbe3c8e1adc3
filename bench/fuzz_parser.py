"""The million-packet fuzz run of the packet parser; prints what it found.
Not a test: it reports, it does not fail (exit 0 either way).

    python bench/fuzz_parser.py                     # 1,000,000 in-process, 200,000 UDP, 200,000 TCP
    python bench/fuzz_parser.py --in-process 100000 --udp 0 --tcp 0 --seed 7

The packets are tests/helpers/fuzz.py's (bit flips, truncations, pointer
loops, bad counts, broken OPT records, cookies of every length, QR=1
packets, random bytes), through the whole chain with cookies and rate
limiting on: first in-process (Server.entry, as the listeners call it),
then to a real server over UDP and, framed, over TCP.  Every answer must
parse with dnspython and dnslib, carry the query's ID, and no response
(QR=1) or runt may be answered; the server's log must hold no traceback.
"""

from __future__ import annotations

import argparse
import collections
import random
import socket
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))

from benchlib.hostile import Server, tracebacks  # noqa: E402
from helpers.fuzz import (check_answer, numbered, packet, pipelined,  # noqa: E402
                          reply_problem, seed_queries)
from helpers.tcp import frame  # noqa: E402

FUZZ_CONFIG = {"rate_limit": True, "cookies": True, "rate_limit_responses_per_second": 1_000_000}
MAX_SECONDS = 1800  # every phase stops by then, whatever its count


def report(name: str, sent: int, answered: int, problems: collections.Counter,
           examples: dict, seconds: float) -> None:
    print(f"== {name}: {sent} packets, {answered} answered, {seconds:.0f} s "
          f"({sent / max(seconds, 1e-9):.0f}/s)")
    if not problems:
        print("  no problem found")
    for problem, n in problems.most_common():
        query, answer = examples[problem]
        print(f"  {n} x {problem}\n    query  {query.hex()}\n    answer {answer.hex()}")


def in_process(n: int, seed: int) -> None:
    import logging

    from coredns_py import config
    from coredns_py.cluster import local
    from coredns_py.server import Server as CoreServer

    logged = []

    class Catch(logging.Handler):
        def emit(self, record):
            if record.exc_info or record.levelno >= logging.ERROR:
                logged.append(record)

    logging.getLogger().addHandler(Catch())
    cfg = config.parse({"upstream": [], **FUZZ_CONFIG})
    zones = HERE.parent / "zones"
    server = CoreServer(local.from_folder(zones, cfg, state=False), cfg, [("192.0.2.1", 53)])
    server.rebuild()
    server._start_stages()
    entry = server.entry
    rng = random.Random(seed)
    seeds = seed_queries(rng)
    problems, examples = collections.Counter(), {}
    answered = 0
    started = time.monotonic()
    sent = 0
    for sent in range(1, n + 1):
        wire = packet(rng, seeds)
        try:
            out = entry(wire, "tcp" if sent % 3 == 0 else "udp", ("192.0.2.9", 5353))
        except Exception as exc:
            problem, out = f"handler raised {type(exc).__name__}: {exc}", b""
        else:
            answered += out is not None
            problem = check_answer(wire, out)
        if problem:
            problems[problem] += 1
            examples.setdefault(problem, (wire, out or b""))
        if time.monotonic() - started > MAX_SECONDS:
            break
    report("in-process", sent, answered, problems, examples, time.monotonic() - started)
    print(f"  error log lines and tracebacks: {len(logged)}")


def over_udp(port: int, n: int, rng: random.Random, seeds: list) -> None:
    problems, examples = collections.Counter(), {}
    answered = 0
    started = time.monotonic()
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.connect(("127.0.0.1", port))
        s.settimeout(0.5)  # the window's answers are in by then
        while sent < n and time.monotonic() - started < MAX_SECONDS:
            window = {}
            for i in range(min(1000, n - sent)):  # 1,000 in flight, IDs 0..999
                wire = numbered(packet(rng, seeds), i)
                window[i] = wire
                s.send(wire)
            sent += len(window)
            try:
                while True:
                    answer = s.recv(65535)
                    answered += 1
                    query, problem = reply_problem(window, answer)
                    if problem:
                        problems[problem] += 1
                        examples.setdefault(problem, (query or b"", answer))
            except socket.timeout:
                pass
    report("UDP", sent, answered, problems, examples, time.monotonic() - started)


def over_tcp(port: int, n: int, rng: random.Random, seeds: list) -> None:
    problems, examples = collections.Counter(), {}
    answered = 0
    started = time.monotonic()
    sent = 0
    while sent < n and time.monotonic() - started < MAX_SECONDS:
        queries, frames = {}, []
        for i in range(min(1000, n - sent)):
            wire = numbered(packet(rng, seeds), i)
            if not wire:
                continue
            queries[i] = wire
            frames.append(frame(wire))
        sent += len(frames)
        answers, rest = pipelined(port, frames, timeout=10)
        for answer in answers:
            answered += 1
            query, problem = reply_problem(queries, answer)
            if problem:
                problems[problem] += 1
                examples.setdefault(problem, (query or b"", answer))
        if rest:
            problems["a partial frame from the server"] += 1
            examples.setdefault("a partial frame from the server", (b"", rest))
    report("TCP", sent, answered, problems, examples, time.monotonic() - started)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--in-process", type=int, default=1_000_000)
    p.add_argument("--udp", type=int, default=200_000)
    p.add_argument("--tcp", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=20261128)
    args = p.parse_args()
    if args.in_process:
        in_process(args.in_process, args.seed)
    if args.udp or args.tcp:
        rng = random.Random(args.seed + 1)
        seeds = seed_queries(rng)
        with Server(config=FUZZ_CONFIG) as server:
            if args.udp:
                over_udp(server.port, args.udp, rng, seeds)
            if args.tcp:
                over_tcp(server.port, args.tcp, rng, seeds)
            log = server.log
            print(f"== server log: {tracebacks(log)} tracebacks, "
                  f"{log.count('ERROR')} ERROR lines; still running: {server.proc.alive()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
