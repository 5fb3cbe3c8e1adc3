"""A client that asks one name at a fixed rate while something happens to the
server (reloads, hostile files), and the latency figures of what it saw."""

from __future__ import annotations

import socket
import statistics
import threading
import time

import dns.message
import dns.rdatatype


class Prober(threading.Thread):
    """Asks one name over UDP every ``interval`` s; keeps each query's latency
    (None: no answer within ``timeout``) with the time it was sent."""

    def __init__(self, port: int, name: str, interval: float = 0.005, timeout: float = 2.0):
        super().__init__(daemon=True)
        self.port, self.interval, self.timeout = port, interval, timeout
        self.wire = dns.message.make_query(name, dns.rdatatype.A).to_wire()
        self.samples: list[tuple[float, float | None]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("127.0.0.1", self.port))
            sock.settimeout(self.timeout)
            while not self.stopping.is_set():
                sent = time.monotonic()
                try:
                    sock.send(self.wire)
                    sock.recv(4096)
                    self.samples.append((sent, time.monotonic() - sent))
                except OSError:
                    self.samples.append((sent, None))
                pause = self.interval - (time.monotonic() - sent)
                if pause > 0:
                    time.sleep(pause)

    def window(self, start: float, end: float) -> list:
        return [lat for t, lat in self.samples if start <= t <= end]

    def longest_gap(self, start: float, end: float) -> float:
        """The longest time between two answers (or the window's ends) in [start, end]."""
        marks = [start] + [t + lat for t, lat in self.samples
                           if lat is not None and start <= t <= end] + [end]
        return max(b - a for a, b in zip(marks, marks[1:]))


def latency_figures(samples: list) -> dict:
    answered = sorted(lat for lat in samples if lat is not None)
    if not answered:
        return {"queries": len(samples), "missed": len(samples)}
    q = statistics.quantiles(answered, n=100) if len(answered) > 1 else [answered[0]] * 99
    return {"queries": len(samples), "missed": len(samples) - len(answered),
            "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000, "max_ms": answered[-1] * 1000}
