"""Real etcd for the tests: members on free loopback ports, data in a
temporary folder (on tmpfs when there is one: etcd fsyncs every write).

- :class:`EtcdCluster` - ``EtcdCluster(tmp, members=1|3).start()``;
  ``urls`` (the comma-separated client URLs, as ``--etcd`` takes them),
  ``member(i)``, ``stop()`` (every member), ``start()`` again (same ports and
  data: a restart), ``client()`` (a :class:`coredns_py.etcd.client.Etcd`).
- :class:`EtcdMember` - one process: ``stop()`` (SIGTERM), ``kill()``,
  ``start()`` again, ``alive()``, ``url``.
- :func:`etcd_available` - whether ``etcd`` is installed (tests/run
  installs it from Debian's etcd-server); ``needs_etcd``, the mark that
  skips a module's tests when it is not.
- :func:`running_etcd` - the body of a module fixture: a started one-member
  cluster, destroyed when the module is done.

Every wait is bounded; a member that cannot bind its ports (somebody took
them) is started again on new ones.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator, Optional

import pytest
import requests

from helpers import process
from helpers.ports import free_port

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


def etcd_available() -> bool:
    return os.access(ETCD, os.X_OK)


needs_etcd = pytest.mark.skipif(not etcd_available(), reason="etcd is not installed "
                                "(tests/run installs Debian's etcd-server)")


def _scratch(prefix: str) -> Path:
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


class EtcdMember:
    def __init__(self, name: str, data_dir: Path, logdir: Path, extra: tuple = ()):
        self.name = name
        self.data_dir = data_dir
        self.logdir = logdir
        self.extra = list(extra)
        self.client_port = free_port()
        self.peer_port = free_port()
        self.proc: Optional[subprocess.Popen] = None
        self.initial_cluster = ""
        self.scheme = "http"
        self._runs = 0

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def command(self) -> list[str]:
        return [ETCD, "--name", self.name, "--data-dir", str(self.data_dir),
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", self.peer_url,
                "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", self.initial_cluster,
                "--initial-cluster-state", "new", "--initial-cluster-token", "coredns-py-tests",
                "--log-level", "warn", *self.extra]

    def spawn(self) -> None:
        self._runs += 1
        log = self.logdir / f"{self.name}-{self._runs}.log"
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)

    @property
    def log(self) -> str:
        path = self.logdir / f"{self.name}-{self._runs}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self, **tls) -> bool:
        try:
            r = requests.get(self.url + "/health", timeout=0.5, **tls)
            return r.status_code == 200 and r.json().get("health") == "true"
        except (requests.RequestException, ValueError):
            return False

    def stop(self) -> None:
        process.stop(self.proc, STOP_TIMEOUT)

    def kill(self) -> None:
        process.kill(self.proc, STOP_TIMEOUT)

    def start(self) -> None:
        """Start again (same ports, same data)."""
        self.spawn()


class EtcdCluster:
    def __init__(self, logdir: Optional[Path] = None, members: int = 1, extra: tuple = ()):
        self.root = _scratch("coredns-py-etcd-")
        self.logdir = Path(logdir) if logdir else self.root
        self.extra = extra
        self.members = [EtcdMember(f"m{i}", self.root / f"m{i}", self.logdir, extra)
                        for i in range(members)]
        self.tls: dict = {}

    @property
    def urls(self) -> str:
        return ",".join(m.url for m in self.members)

    def member(self, i: int) -> EtcdMember:
        return self.members[i]

    def start(self, timeout: float = START_TIMEOUT) -> "EtcdCluster":
        """Start every member (the first time: new ports when one cannot bind)."""
        for attempt in range(5):
            initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
            for m in self.members:
                m.initial_cluster = initial
                if not m.alive():
                    m.spawn()
            if self.wait_healthy(timeout):
                return self
            logs = "\n".join(m.log for m in self.members)
            self.stop()
            if "address already in use" not in logs or attempt == 4:
                raise AssertionError(f"etcd did not start:\n{logs}")
            for m in self.members:  # somebody took a port: new ones, new data
                shutil.rmtree(m.data_dir, ignore_errors=True)
                m.client_port, m.peer_port = free_port(), free_port()
        raise AssertionError("unreachable")

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            up = [m for m in self.members if m.alive()]
            if not up:
                return False
            if all(m.healthy(**self.tls) for m in up):
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        for m in self.members:
            m.stop()

    def destroy(self) -> None:
        for m in self.members:
            m.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def etcdctl(self, *args: str, user: str = "") -> str:
        """Run etcdctl against the members (as ``user``, "name:password")."""
        cmd = [shutil.which("etcdctl") or "/usr/bin/etcdctl", "--endpoints", self.urls,
               *(["--user", user] if user else []), *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                             env={**os.environ, "ETCDCTL_API": "3"}, stdin=subprocess.DEVNULL)
        if res.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)}: {res.stdout}{res.stderr}")
        return res.stdout

    def client(self, **security):
        from coredns_py.etcd.client import Etcd, Security
        return Etcd([m.url for m in self.members], Security(**security))


def running_etcd(tmp_path_factory) -> Iterator[EtcdCluster]:
    """The body of a module fixture (``yield from running_etcd(...)``): a
    started one-member :class:`EtcdCluster`, destroyed (members killed, data
    removed) when the module is done."""
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd-log")).start()
    try:
        yield cluster
    finally:
        cluster.destroy()
