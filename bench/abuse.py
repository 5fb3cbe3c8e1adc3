"""UDP abuse at full size: prints what gets through.  Not a test.

    python bench/abuse.py                  # both scenarios
    python bench/abuse.py amplification    # or: rcvbuf

- ``amplification``: 20,000 queries from one client in 2 s, for names whose
  answers are much bigger than the question (a headless Service with 60
  endpoints; EDNS, 1232 bytes), against a server with rate
  limiting and cookies off, then on (the defaults on an exposed address:
  200 answers a second, slip 2): answers and bytes that came back, and the
  amplification (bytes back / bytes sent), overall and the worst query.
- ``rcvbuf``: 12,000 queries a second for 5 s, with the kernel's default
  UDP receive buffer (udp_receive_buffer: 0) and with ours (4 MiB): packets
  the kernel dropped (/proc/net/snmp Udp RcvbufErrors; machine-wide, so
  other programs' drops count too) and answers received.

Everything on 127.0.0.1; each phase bounded in count and time.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from benchlib.hostile import Server, headless_folder, query_wire, run_scenarios  # noqa: E402

FLOOD = 20_000
FLOOD_SECONDS = 2.0
# A headless Service with 60 endpoints (benchlib.hostile.headless_folder):
# its A and SRV answers fill the 1232 bytes an EDNS client accepts.
BIG = [("big.default.svc.cluster.local", "A"), ("big.default.svc.cluster.local", "SRV"),
       ("_http._tcp.big.default.svc.cluster.local", "SRV"),
       ("webapp.default.svc.cluster.local", "A")]
RATE = 12_000
RATE_SECONDS = 5.0


class Receiver(threading.Thread):
    """Reads every answer that comes back to ``sock``; counts and sizes them."""

    def __init__(self, sock: socket.socket):
        super().__init__(daemon=True)
        self.sock = sock
        self.count = 0
        self.bytes = 0
        self.by_id: dict[int, int] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        self.sock.settimeout(0.2)
        while not self.halt.is_set():
            try:
                data = self.sock.recv(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            self.count += 1
            self.bytes += len(data)
            qid = int.from_bytes(data[:2], "big")
            self.by_id[qid] = self.by_id.get(qid, 0) + len(data)


def client_socket(port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 64 << 20)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    s.connect(("127.0.0.1", port))
    return s


def paced(sock: socket.socket, wires: list[bytes], total: int, seconds: float) -> int:
    """Send ``total`` packets (cycling through ``wires``) evenly over
    ``seconds``; return bytes sent."""
    sent_bytes = 0
    started = time.monotonic()
    batch = 50
    for i in range(0, total, batch):
        for j in range(i, min(i + batch, total)):
            w = wires[j % len(wires)]
            try:
                sock.send(w)
            except (BlockingIOError, ConnectionRefusedError):
                continue
            sent_bytes += len(w)
        ahead = started + seconds * (i + batch) / total - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    return sent_bytes


def scenario_amplification() -> None:
    print(f"== amplification: {FLOOD} queries in {FLOOD_SECONDS:.0f} s from one client")
    wires = [query_wire(name, rdtype, qid=i, use_edns=0, payload=1232)
             for i, (name, rdtype) in enumerate(BIG)]
    sizes = {i: len(w) for i, w in enumerate(wires)}
    folder = headless_folder()
    for label, cfg in (("off", {"rate_limit": False, "cookies": False}),
                       ("on (200/s, slip 2)", {"rate_limit": True, "cookies": True})):
        with Server(config=cfg, manifests=folder) as server:
            with client_socket(server.port) as s:
                rx = Receiver(s)
                rx.start()
                sent = paced(s, wires, FLOOD, FLOOD_SECONDS)
                time.sleep(1.0)
                rx.halt.set()
                rx.join(5)
            per_query = FLOOD / len(wires)
            worst = max((rx.by_id.get(i, 0) / (sizes[i] * per_query), i) for i in sizes)
            print(f"  {label:20} {rx.count:6} answers, {rx.bytes / 1e6:6.2f} MB back for "
                  f"{sent / 1e6:.2f} MB sent: {rx.bytes / sent:5.2f}x overall, worst "
                  f"{worst[0]:5.2f}x ({BIG[worst[1]][0]} {BIG[worst[1]][1]})")


def rcvbuf_errors() -> int:
    lines = Path("/proc/net/snmp").read_text().splitlines()
    udp = [line.split() for line in lines if line.startswith("Udp:")]
    return int(udp[1][udp[0].index("RcvbufErrors")])


def scenario_rcvbuf() -> None:
    print(f"== rcvbuf: {RATE} queries a second for {RATE_SECONDS:.0f} s")
    wires = [query_wire("webapp.default.svc.cluster.local", "A", qid=i) for i in range(100)]
    for label, size in (("system default", 0), ("4 MiB (default)", 4 * 1024 * 1024)):
        with Server(config={"udp_receive_buffer": size}) as server:
            with client_socket(server.port) as s:
                rx = Receiver(s)
                rx.start()
                before = rcvbuf_errors()
                paced(s, wires, int(RATE * RATE_SECONDS), RATE_SECONDS)
                time.sleep(1.0)
                dropped = rcvbuf_errors() - before
                rx.halt.set()
                rx.join(5)
            total = int(RATE * RATE_SECONDS)
            print(f"  {label:16} kernel drops {dropped:7}, answers {rx.count}/{total}")


SCENARIOS = {"amplification": scenario_amplification, "rcvbuf": scenario_rcvbuf}


if __name__ == "__main__":
    sys.exit(run_scenarios(SCENARIOS, sys.argv[1:]))
