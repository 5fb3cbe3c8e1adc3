"""TCP clients that hog the server, at full size; prints what each one costs
the others.  Not a test: nothing fails, it prints figures.

    python bench/tcp_hostile.py                 # every scenario
    python bench/tcp_hostile.py pipeline hog    # some of them

Scenarios (each starts its own server on 127.0.0.1 with the bundled zones/):

- ``pipeline``: one client pipelines 5,000 queries per write over TCP, again
  and again, while a prober sends one UDP query every 10 ms: the prober's
  latency percentiles, quiet and under the pipeline.
- ``hog``: one client opens as many TCP connections as it can (up to 1,100,
  from 22 loopback addresses, 50 each) and keeps them idle; then another
  client makes 20 TCP queries, each on a new connection: how many are
  answered; and one client alone (one address) opening 1,100.
- ``fdlimit``: the same hog against a server started with ``ulimit -n 1024``
  (prlimit): tracebacks in its log over 20 s, and UDP and TCP answers to
  legitimate clients meanwhile.
- ``slowreaders``: 200 connections each pipelining queries with large
  answers and never reading them: kernel TCP memory (``/proc/net/sockstat``
  ``mem``, in pages) while they hold on and after the server gives up.

Run from the repository root; needs ``prlimit`` (util-linux).
"""

from __future__ import annotations

import multiprocessing
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import dns.message  # noqa: E402
import dns.query  # noqa: E402

from benchlib.hostile import (NAME, Server, UdpProber, ms, percentiles, query_wire,  # noqa: E402
                              run_scenarios, tracebacks)
from helpers.tcp import frame, recv_exactly  # noqa: E402

PIPELINE = 5000
PIPELINE_SECONDS = 10.0
HOG_CONNECTIONS = 1100
LEGIT_QUERIES = 20


def pipeline_rounds(port: int, seconds: float, counts) -> None:
    """The pipelining client; runs in a process of its own, so that its
    Python work does not delay the prober (one GIL)."""
    batch = b"".join(frame(query_wire(qid=i & 0xFFFF)) for i in range(PIPELINE))
    deadline = time.monotonic() + seconds
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        while time.monotonic() < deadline:
            s.sendall(batch)
            for _ in range(PIPELINE):
                n = int.from_bytes(recv_exactly(s, 2), "big")
                recv_exactly(s, n)
            counts.value += PIPELINE


def scenario_pipeline() -> None:
    print(f"== pipeline: {PIPELINE} queries per write over TCP, UDP probed every 10 ms")
    with Server() as server:
        quiet = UdpProber(server.port)
        quiet.start()
        time.sleep(3)
        quiet.stop()
        prober = UdpProber(server.port)
        counts = multiprocessing.Value("q", 0)
        prober.start()
        loader = multiprocessing.Process(target=pipeline_rounds,
                                         args=(server.port, PIPELINE_SECONDS, counts))
        loader.start()
        loader.join(PIPELINE_SECONDS + 30)
        if loader.is_alive():
            loader.kill()
        prober.stop()
        print(f"  quiet:          {len(quiet.samples)} answers, {ms(percentiles(quiet.samples))}")
        print(f"  under pipeline: {len(prober.samples)} answers, lost {prober.lost}, "
              f"{ms(percentiles(prober.samples))}")
        print(f"  pipelined answers: {counts.value} in {PIPELINE_SECONDS:.0f} s")
        print(f"  tracebacks in the server log: {tracebacks(server.log)}")


HOG_PER_ADDRESS = 50  # below the server's per-client limit: the hog spreads


def open_hog(port: int, n: int, first: int = 0) -> list[socket.socket]:
    """``n`` connections from 127.0.0.2, 127.0.0.3, ... (HOG_PER_ADDRESS
    each), so the server's per-client limit does not stop them: the hog
    fills the server-wide cap.  The legitimate clients use 127.0.0.1."""
    socks = []
    for i in range(first, first + n):
        source = f"127.0.{2 + i // HOG_PER_ADDRESS // 250}.{2 + i // HOG_PER_ADDRESS % 250}"
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2,
                                         source_address=(source, 0))
        except OSError:
            break
        socks.append(s)
    return socks


def legit(port: int, n: int, proto: str = "tcp") -> int:
    """How many of ``n`` queries of a legitimate client (from 127.0.0.1,
    over ``proto``) were answered."""
    ask, timeout = (dns.query.tcp, 2) if proto == "tcp" else (dns.query.udp, 1)
    answered = 0
    for _ in range(n):
        try:
            ask(dns.message.make_query(NAME, "A"), "127.0.0.1", port=port, timeout=timeout)
            answered += 1
        except Exception:
            pass
    return answered


def alive(socks: list[socket.socket]) -> int:
    """How many of the hog's connections the server still holds open."""
    n = 0
    for s in socks:
        s.setblocking(False)
        try:
            data = s.recv(1)
            n += data != b""
        except BlockingIOError:
            n += 1
        except OSError:
            pass
    return n


def scenario_hog() -> None:
    print(f"== hog: one client opens up to {HOG_CONNECTIONS} idle TCP connections")
    with Server() as server:
        socks = open_hog(server.port, HOG_CONNECTIONS)
        time.sleep(1)
        started = time.monotonic()
        answered = legit(server.port, LEGIT_QUERIES)
        took = time.monotonic() - started
        print(f"  hog opened {len(socks)} connections; {alive(socks)} still open after "
              f"the legitimate client")
        print(f"  legitimate TCP: {answered}/{LEGIT_QUERIES} answered in {took:.1f} s")
        print(f"  tracebacks in the server log: {tracebacks(server.log)}")
        for s in socks:
            s.close()
    with Server() as server:
        socks = []
        for _ in range(HOG_CONNECTIONS):
            try:
                socks.append(socket.create_connection(("127.0.0.1", server.port), timeout=2,
                                                      source_address=("127.0.0.2", 0)))
            except OSError:
                break
        time.sleep(1)
        answered = legit(server.port, LEGIT_QUERIES)
        print(f"  one address opened {len(socks)}; {alive(socks)} still open; "
              f"legitimate TCP: {answered}/{LEGIT_QUERIES}")
        for s in socks:
            s.close()


def scenario_fdlimit() -> None:
    print("== fdlimit: the hog against a server with ulimit -n 1024, for 20 s")
    with Server(nofile=1024) as server:
        socks = []
        deadline = time.monotonic() + 20
        udp_ok = tcp_ok = asked = 0
        while time.monotonic() < deadline:
            socks += open_hog(server.port, max(0, HOG_CONNECTIONS - len(socks)), len(socks))
            udp_ok += legit(server.port, 5, "udp")
            tcp_ok += legit(server.port, 5)
            asked += 5
            # the hog keeps reconnecting what the server closed
            socks = [s for s in socks if alive([s])] if len(socks) >= HOG_CONNECTIONS else socks
            time.sleep(0.2)
        log = server.log
        print(f"  hog holds {len(socks)} connections at the end")
        print(f"  legitimate UDP: {udp_ok}/{asked}, TCP: {tcp_ok}/{asked}")
        print(f"  tracebacks in the server log: {tracebacks(log)}; "
              f"'Too many open files' lines: {log.count('Too many open files')}")
        for s in socks:
            s.close()


def sockstat_mem_pages() -> int:
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            fields = line.split()
            return int(fields[fields.index("mem") + 1])
    return -1


def server_socket_memory(port: int) -> tuple[int, int]:
    """(sockets, bytes) the kernel holds for the server's side of its TCP
    connections: received and unread, plus queued to send (``ss -tm``'s
    skmem r and w), whatever their state (orphans included)."""
    out = subprocess.run(["ss", "-tanm", f"sport = :{port}"], capture_output=True,
                         text=True, timeout=30).stdout
    sockets = total = 0
    for m in re.finditer(r"skmem:\(r(\d+),rb\d+,t\d+,tb\d+,f\d+,w(\d+)", out):
        sockets += 1
        total += int(m.group(1)) + int(m.group(2))
    return sockets, total


def scenario_slowreaders(n: int = 200) -> None:
    print(f"== slowreaders: {n} connections pipelining SRV/ANY-sized answers, never reading")
    with Server(config={}) as server:
        before = sockstat_mem_pages()
        batch = frame(query_wire("_http._tcp.webapp.default.svc.cluster.local", "SRV")) * 2000
        socks = open_hog(server.port, n)  # from several addresses: all are accepted
        for s in socks:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.setblocking(False)
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            for s in socks:
                try:
                    s.send(batch)
                except (BlockingIOError, OSError):
                    pass
            time.sleep(0.05)
        held = sockstat_mem_pages()
        print(f"  kernel TCP memory (both ends, /proc/net/sockstat): {before} pages before, "
              f"{held} while held ({(held - before) * 4 / 1024:.1f} MB)")
        count, size = server_socket_memory(server.port)
        print(f"  the server's side: {count} sockets, {size / 2**20:.1f} MB")
        # The server's idle timeout (10 s) gives up on them; keep the sockets
        # open (never read) and see what stays pinned.
        time.sleep(15)
        after = sockstat_mem_pages()
        print(f"  after the server gave up: {after} pages "
              f"({(after - before) * 4 / 1024:.1f} MB above the start)")
        count, size = server_socket_memory(server.port)
        print(f"  the server's side: {count} sockets, {size / 2**20:.1f} MB")
        for s in socks:
            s.close()


SCENARIOS = {"pipeline": scenario_pipeline, "hog": scenario_hog, "fdlimit": scenario_fdlimit,
             "slowreaders": scenario_slowreaders}


if __name__ == "__main__":
    sys.exit(run_scenarios(SCENARIOS, sys.argv[1:]))
