"""What the hostile-input benchmarks share: a coredns-py server started with
a given config (and file-descriptor limit), a UDP prober that times one query
every few milliseconds while something else loads the server, percentiles.

Everything talks to 127.0.0.1 only; every loop is bounded in count and time.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

import dns.message
import yaml

from benchlib.probe import wait_first_answer
from benchlib.proc import Proc, free_port

# The checkout whose server is measured: this one, or another given in
# $BENCH_REPO (to measure before and after a change with the same script).
REPO = Path(os.environ.get("BENCH_REPO") or Path(__file__).resolve().parents[2])
ZONES = REPO / "zones"
NAME = "webapp.default.svc.cluster.local"


def query_wire(name: str = NAME, rdtype: str = "A", qid: int = 0, **kw) -> bytes:
    q = dns.message.make_query(name, rdtype, **kw)
    q.id = qid
    return q.to_wire()


class Server:
    """``coredns-py serve`` on the bundled zones/ on a free 127.0.0.1 port.

    ``config``: keys written to a config file (forwarding is always off);
    ``nofile``: the file-descriptor limit (soft and hard) it runs with,
    through prlimit.
    """

    def __init__(self, config: Optional[dict] = None, nofile: Optional[int] = None,
                 args: tuple = (), manifests: Path = ZONES):
        self.dir = Path(tempfile.mkdtemp(prefix="coredns-py-hostile-"))
        cfg = {"upstream": [], **(config or {})}
        cfg_path = self.dir / "config.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
        self.port = free_port()
        cmd = [sys.executable, "-m", "coredns_py", "serve", "--manifests", str(manifests),
               "--listen", f"127.0.0.1:{self.port}", "--http", "", "--lameduck", "0",
               "--config", str(cfg_path), *args]
        if nofile is not None:
            cmd = ["prlimit", f"--nofile={nofile}:{nofile}", "--"] + cmd
        env = dict(os.environ, XDG_STATE_HOME=str(self.dir / "state"), PYTHONUNBUFFERED="1",
                   PYTHONPATH=str(REPO))
        self.proc = Proc("coredns-py", cmd, self.dir / "server.log", env=env, cwd=REPO)
        got = wait_first_answer(self.proc, self.port, NAME, None, 60)
        if got.get("first_answer_s") is None:
            self.stop()
            raise RuntimeError(f"server did not start: {got}\n{self.proc.tail()}")

    @property
    def log(self) -> str:
        return self.proc.logfile.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.stop()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class UdpProber(threading.Thread):
    """Sends one query every ``interval`` s from its own socket and records
    each answer's round trip (a lost one counts as ``timeout``)."""

    def __init__(self, port: int, interval: float = 0.01, timeout: float = 2.0):
        super().__init__(daemon=True)
        self.port = port
        self.interval = interval
        self.timeout = timeout
        self.samples: list[float] = []
        self.lost = 0
        self._halt = threading.Event()

    def run(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(self.timeout)
            qid = 0
            while not self._halt.is_set():
                qid = (qid + 1) & 0xFFFF
                wire = query_wire(qid=qid)
                started = time.perf_counter()
                s.sendto(wire, ("127.0.0.1", self.port))
                try:
                    while True:
                        data = s.recv(4096)
                        if data[:2] == wire[:2]:
                            break
                    self.samples.append(time.perf_counter() - started)
                except socket.timeout:
                    self.lost += 1
                self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def percentiles(samples: list[float], points=(50, 99, 99.9, 100)) -> dict:
    if not samples:
        return {}
    ordered = sorted(samples)
    out = {}
    for p in points:
        i = min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered))) - 1))
        out[f"p{p:g}" if p < 100 else "max"] = ordered[i]
    return out


def ms(stats: dict) -> str:
    return " ".join(f"{k}={v * 1000:.1f}ms" for k, v in stats.items())


def run_scenarios(scenarios: dict, names: list[str]) -> int:
    """Run the scenarios named (all of them when none is), in the order
    given; 2 when a name is unknown (nothing is run then)."""
    names = names or list(scenarios)
    unknown = [name for name in names if name not in scenarios]
    if unknown:
        print(f"unknown scenario {unknown[0]!r}; known: {', '.join(scenarios)}", file=sys.stderr)
        return 2
    for name in names:
        scenarios[name]()
    return 0


def tracebacks(log: str) -> int:
    return log.count("Traceback (most recent call last)")


def headless_folder(endpoints: int = 60) -> Path:
    """A folder with the bundled zones' webapp and a headless Service ``big``
    in ``default`` with ``endpoints`` ready addresses: ``big`` A is an
    answer many times the size of its question."""
    folder = Path(tempfile.mkdtemp(prefix="coredns-py-big-"))
    addresses = "\n".join(f"  - addresses: [10.244.{i // 250}.{i % 250 + 2}]"
                          for i in range(endpoints))
    (folder / "big.yaml").write_text(f"""apiVersion: v1
kind: Service
metadata: {{name: big, namespace: default}}
spec:
  clusterIP: None
  ports: [{{name: http, port: 80}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: big-1
  namespace: default
  labels: {{kubernetes.io/service-name: big}}
addressType: IPv4
ports: [{{name: http, port: 80, protocol: TCP}}]
endpoints:
{addresses}
""", encoding="utf-8")
    (folder / "webapp.yaml").write_text((ZONES / "01-clusterip" / "webapp-service.yaml")
                                        .read_text(encoding="utf-8"), encoding="utf-8")
    return folder
