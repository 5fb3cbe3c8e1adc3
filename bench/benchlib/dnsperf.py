"""One dnsperf run against one server: its figures (Perf), CPU use and latency percentiles."""

from __future__ import annotations

import re
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from benchlib.console import log
from benchlib.cpu import busy_share, cpu_busy, sched_wait, steal_share, wait_quiet
from benchlib.proc import Proc
from benchlib.tools import Tools


@dataclass
class Perf:
    sent: int = 0
    completed: int = 0
    lost: int = 0
    qps: float = 0.0
    avg_ms: Optional[float] = None
    p50_ms: Optional[float] = None
    p90_ms: Optional[float] = None
    p99_ms: Optional[float] = None
    max_ms: Optional[float] = None
    server_cpu: Optional[float] = None  # share of one core the server used
    # Server CPU time (user + system, /proc/PID/stat) per answered query, in
    # microseconds: what the server spends, whatever the load generator does.
    server_us_per_query: Optional[float] = None
    client_cpu: Optional[float] = None  # share of one core dnsperf used
    # Share of the server's / dnsperf's CPU used by other processes meanwhile
    # (a shared machine): the figures are only fair when these are near 0.
    others_server_cpu: Optional[float] = None
    others_client_cpu: Optional[float] = None
    quiet_wait: Optional[dict] = None
    # Share of the run the server's / dnsperf's threads were runnable but
    # waiting for their CPU (schedstat): the direct cost of other processes.
    server_waited: Optional[float] = None
    client_waited: Optional[float] = None
    # Share of the server's / dnsperf's CPU the hypervisor gave to other
    # machines (steal time in /proc/stat): on a virtual machine a stolen
    # vCPU stalls whatever runs on it for milliseconds, which no process
    # here can see as waiting, and which shows up in the latency tail.
    server_cpu_stolen: Optional[float] = None
    client_cpu_stolen: Optional[float] = None
    rcodes: str = ""
    error: str = ""

    @property
    def loss(self) -> float:
        return self.lost / self.sent if self.sent else 0.0


def percentile(sorted_values: list, p: float) -> Optional[float]:
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def parse_summary(text: str, perf: Perf) -> None:
    def grab(pattern, conv=float):
        m = re.search(pattern, text)
        return conv(m.group(1)) if m else None
    perf.sent = grab(r"Queries sent:\s+(\d+)", int) or 0
    perf.completed = grab(r"Queries completed:\s+(\d+)", int) or 0
    perf.lost = grab(r"Queries lost:\s+(\d+)", int) or 0
    perf.qps = grab(r"Queries per second:\s+([\d.]+)") or 0.0
    avg = grab(r"Average Latency \(s\):\s+([\d.]+)")  # the first: per query, not connect
    perf.avg_ms = avg * 1000 if avg is not None else None
    m = re.search(r"Response codes:\s+(.*)", text)
    perf.rcodes = m.group(1).strip() if m else ""


def read_output(path: Path) -> tuple:
    """dnsperf's output split into its summary text and, with ``-v``, the latency in
    seconds of each answered query (one ``> ...`` line each)."""
    summary_lines = []
    latencies = []
    with open(path, "r", errors="replace") as fh:
        for line in fh:
            if line.startswith("> "):
                parts = line.split()
                if len(parts) >= 5 and parts[1] != "T" and parts[1] != "I":
                    try:
                        latencies.append(float(parts[-1]))
                    except ValueError:
                        pass
            else:
                summary_lines.append(line)
    return "".join(summary_lines), latencies


def run_dnsperf(tools: Tools, server: Proc, port: int, qfile: Path, duration: float,
                proto: str, clients: int, outstanding: int, rate: Optional[int],
                workdir: Path, query_timeout: float, quiet_wait: float = 0.0,
                passes: Optional[int] = None) -> Perf:
    cmd = [tools.dnsperf, "-s", "127.0.0.1", "-p", str(port), "-d", str(qfile),
           "-l", str(duration), "-c", str(clients), "-T", "1", "-q", str(outstanding),
           "-t", str(query_timeout), "-m", proto]
    if passes:
        cmd += ["-n", str(passes)]
    verbose = rate is not None
    if verbose:
        cmd += ["-Q", str(rate), "-v"]
    cmd = tools.pin(cmd, tools.client_cpu)
    out_path = workdir / "dnsperf.out"
    perf = Perf()
    if quiet_wait:
        perf.quiet_wait = wait_quiet(tools, quiet_wait)
        if not perf.quiet_wait["quiet"]:
            log(f"  warning: CPUs still busy ({perf.quiet_wait['busy']}) after "
                f"{perf.quiet_wait['waited_s']} s; running dnsperf anyway")
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    stat0 = cpu_busy()
    wait0 = sched_wait(server.pid)
    cpu0, t0 = server.cpu_seconds(), time.monotonic()
    client_wait = None
    with open(out_path, "wb") as out:
        child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE,
                                 stdin=subprocess.DEVNULL)
        try:
            deadline = t0 + duration + query_timeout + 60
            while True:
                w = sched_wait(child.pid)  # the last reading before it exits
                if w is not None:
                    client_wait = w
                try:
                    child.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() > deadline:
                        raise
            stderr = child.stderr.read()
        except subprocess.TimeoutExpired:
            perf.error = "dnsperf did not finish in time"
            return perf
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=10)
            child.stderr.close()
    wall = time.monotonic() - t0
    stat1 = cpu_busy()
    wait1 = sched_wait(server.pid)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if wall > 0:
        cpu_used = server.cpu_seconds() - cpu0
        perf.server_cpu = cpu_used / wall
        perf.client_cpu = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / wall
        b = busy_share(stat0, stat1, tools.server_cpu)
        if b is not None:
            perf.others_server_cpu = max(0.0, b - perf.server_cpu)
        b = busy_share(stat0, stat1, tools.client_cpu)
        if b is not None:
            perf.others_client_cpu = max(0.0, b - perf.client_cpu)
        perf.server_cpu_stolen = steal_share(stat0, stat1, tools.server_cpu)
        perf.client_cpu_stolen = steal_share(stat0, stat1, tools.client_cpu)
        if wait0 is not None and wait1 is not None:
            perf.server_waited = (wait1 - wait0) / wall
        if client_wait is not None:
            perf.client_waited = client_wait / wall
    summary, latencies = read_output(out_path)
    out_path.unlink()
    parse_summary(summary, perf)
    if wall > 0 and perf.completed:
        perf.server_us_per_query = cpu_used / perf.completed * 1e6
    if child.returncode != 0 or not perf.sent:
        perf.error = (stderr.decode(errors="replace").strip() or summary.strip())[-400:]
    if latencies:
        latencies.sort()
        perf.p50_ms = percentile(latencies, 50) * 1000
        perf.p90_ms = percentile(latencies, 90) * 1000
        perf.p99_ms = percentile(latencies, 99) * 1000
        perf.max_ms = latencies[-1] * 1000
    return perf
