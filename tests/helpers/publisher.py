"""``coredns-py publish`` as a real process, for the tests of several hosts.

:class:`PublisherProcess` - ``PublisherProcess(manifests, urls, prefix,
state_home=..., logdir=..., config=...).start()``; ``wait_generation(n)``
(its log says it published generation ``n`` or later), ``leading()``,
``stderr``, ``wait_stderr(regex)``, ``stop()`` (SIGTERM), ``kill()`` (SIGKILL,
as a crash), ``alive()``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Optional

from conftest import ROOT, child_env, wait_until
from helpers import process

STOP_TIMEOUT = 10.0


class PublisherProcess:
    def __init__(self, manifests: Path, urls: str, prefix: str, *, state_home: Path,
                 logdir: Path, config: Optional[Path] = None, args=()):
        self.manifests = Path(manifests)
        self.urls = urls
        self.prefix = prefix
        self.state_home = Path(state_home)
        self.logdir = Path(logdir)
        self.config = config
        self.args = list(args)
        self.proc: Optional[subprocess.Popen] = None
        self._log = self.logdir / "publish.log"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "coredns_py", "publish", "--manifests", str(self.manifests),
               "--etcd", self.urls, "--prefix", self.prefix, *self.args]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        return cmd

    def start(self) -> "PublisherProcess":
        with open(self._log, "ab") as err:
            self.proc = subprocess.Popen(self.command(), stdout=err, stderr=err,
                                         stdin=subprocess.DEVNULL, cwd=str(ROOT),
                                         env=child_env(self.state_home))
        return self

    @property
    def stderr(self) -> str:
        return self._log.read_text(errors="replace") if self._log.exists() else ""

    def generations(self) -> list[int]:
        return [int(n) for n in re.findall(r"publish: generation (\d+):", self.stderr)]

    def wait_generation(self, n: int = 1, timeout: float = 30.0) -> int:
        """Wait until this publisher has published generation ``n`` or later."""
        def published():
            if not self.alive():
                raise AssertionError(f"publisher exited:\n{self.stderr}")
            done = self.generations()
            return done and max(done) >= n and max(done)
        return wait_until(published, timeout, 0.05,
                          message=f"generation {n} to be published; log:\n{self.stderr}")

    def leading(self) -> bool:
        return "publish: leading as" in self.stderr

    def wait_stderr(self, pattern: str, timeout: float = 10.0) -> re.Match:
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.stderr), timeout,
                          message=f"publisher log to match {pattern!r}:\n{self.stderr}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> Optional[int]:
        return process.stop(self.proc, STOP_TIMEOUT)

    def kill(self) -> None:
        process.kill(self.proc, STOP_TIMEOUT)
