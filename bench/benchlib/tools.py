"""The programs the benchmark runs besides Python: dnsperf, knotd, taskset (and nice)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Optional

from benchlib.console import log

INSTALL_HINT = "apt-get install dnsperf knot"


class Tools:
    """Where dnsperf, knotd and taskset are, and the CPUs to pin to (None: not pinned)."""

    def __init__(self, server_cpu: int, client_cpu: int):
        self.dnsperf = shutil.which("dnsperf")
        self.knotd = shutil.which("knotd") or (
            "/usr/sbin/knotd" if os.access("/usr/sbin/knotd", os.X_OK) else None)
        self.taskset = shutil.which("taskset")
        cpus = sorted(os.sched_getaffinity(0))
        self.server_cpu: Optional[int] = server_cpu
        self.client_cpu: Optional[int] = client_cpu
        if not self.taskset:
            log("bench: warning: taskset (util-linux) not found: processes are not pinned")
            self.server_cpu = self.client_cpu = None
        elif server_cpu not in cpus or client_cpu not in cpus:
            log(f"bench: warning: CPUs {server_cpu}/{client_cpu} not available (have {cpus}); "
                "processes are not pinned")
            self.server_cpu = self.client_cpu = None

    nice = 0

    def pin(self, cmd: list, cpu: Optional[int]) -> list:
        if cpu is not None:
            cmd = [self.taskset, "-c", str(cpu)] + cmd
        if self.nice:
            cmd = ["nice", "-n", str(self.nice)] + cmd
        return cmd

    def pin_running(self, pid: int, cpu: Optional[int]) -> None:
        """Pin every thread of a running process to ``cpu`` (``taskset -a -p``)."""
        if cpu is None or not self.taskset:
            return
        subprocess.run([self.taskset, "-a", "-p", "-c", str(cpu), str(pid)],
                       capture_output=True, timeout=10, check=False)

    def version(self, cmd: list) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        text = (out.stdout + out.stderr).strip().splitlines()
        for line in text:
            if re.search(r"\d+\.\d+", line):
                return line.strip()
        return text[0] if text else "?"
