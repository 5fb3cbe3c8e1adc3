"""What the machine did meanwhile: CPU busy and stolen time, scheduler waits, quiet waits."""

from __future__ import annotations

import os
import time
from typing import Optional

from benchlib.console import log
from benchlib.tools import Tools


def cpu_busy() -> dict:
    """Per-CPU (busy, total, steal) jiffies from /proc/stat."""
    out = {}
    try:
        with open("/proc/stat") as fh:
            for line in fh:
                if line.startswith("cpu") and line[3].isdigit():
                    f = line.split()
                    vals = [int(v) for v in f[1:9]]
                    idle = vals[3] + vals[4]
                    out[int(f[0][3:])] = (sum(vals) - idle, sum(vals), vals[7])
    except (OSError, ValueError, IndexError):
        pass
    return out


def busy_share(before: dict, after: dict, cpu: Optional[int]) -> Optional[float]:
    if cpu is None or cpu not in before or cpu not in after:
        return None
    total = after[cpu][1] - before[cpu][1]
    return (after[cpu][0] - before[cpu][0]) / total if total > 0 else None


def steal_share(before: dict, after: dict, cpu: Optional[int]) -> Optional[float]:
    """Share of ``cpu``'s time stolen by the hypervisor between two cpu_busy()."""
    if cpu is None or cpu not in before or cpu not in after:
        return None
    total = after[cpu][1] - before[cpu][1]
    return (after[cpu][2] - before[cpu][2]) / total if total > 0 else None


def wait_quiet(tools: Tools, max_wait: float, threshold: float = 0.10) -> dict:
    """Wait (at most max_wait s) until the two benchmark CPUs are nearly idle:
    other people's processes on a shared machine distort every figure."""
    t0 = time.monotonic()
    cpus = [c for c in (tools.server_cpu, tools.client_cpu) if c is not None] or \
        sorted(cpu_busy())
    shares: list = []
    while True:
        before = cpu_busy()
        time.sleep(0.5)
        after = cpu_busy()
        shares = [busy_share(before, after, c) or 0.0 for c in cpus]
        if max(shares, default=0.0) < threshold or time.monotonic() - t0 >= max_wait:
            break
    return {"waited_s": round(time.monotonic() - t0, 1), "busy": [round(x, 2) for x in shares],
            "quiet": max(shares, default=0.0) < threshold}


def quiet(args, tools: Tools, what: str) -> None:
    if args.quiet_wait > 0:
        q = wait_quiet(tools, args.quiet_wait)
        if not q["quiet"]:
            log(f"  warning: CPUs still busy ({q['busy']}) after {q['waited_s']} s; "
                f"measuring {what} anyway")


def sched_wait(pid: int) -> Optional[float]:
    """Seconds the process's threads spent runnable but waiting for a CPU
    (/proc/PID/task/*/schedstat, second field): time other processes took."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat") as fh:
                    total += int(fh.read().split()[1])
            except (OSError, IndexError, ValueError):
                continue
    except OSError:
        return None
    return total / 1e9
