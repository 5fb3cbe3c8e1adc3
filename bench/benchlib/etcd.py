"""etcd for the several-hosts phase: one member on free loopback ports,
its data on tmpfs when there is one (etcd fsyncs every write)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Optional

from benchlib.proc import Proc, free_port

INSTALL_HINT = "apt-get install etcd-server"


def etcd_binary() -> Optional[str]:
    return shutil.which("etcd") or ("/usr/bin/etcd" if os.access("/usr/bin/etcd", os.X_OK)
                                    else None)


class Etcd:
    """One member; ``url`` for ``--etcd``; ``stop()`` kills it and removes its data."""

    def __init__(self, workdir: Path):
        base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.data = Path(tempfile.mkdtemp(prefix="coredns-py-bench-etcd-", dir=base))
        client, peer = free_port(), free_port()
        self.url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        self.proc = Proc("etcd", [etcd_binary(), "--data-dir", str(self.data),
                                  "--listen-client-urls", self.url,
                                  "--advertise-client-urls", self.url,
                                  "--listen-peer-urls", peer_url,
                                  "--initial-advertise-peer-urls", peer_url,
                                  "--initial-cluster", f"default={peer_url}",
                                  "--log-level", "warn"], workdir / "etcd.log")

    def wait_healthy(self, limit: float = 20.0) -> bool:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and self.proc.alive():
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=0.5) as r:
                    if json.loads(r.read()).get("health") == "true":
                        return True
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        self.proc.stop()
        shutil.rmtree(self.data, ignore_errors=True)
