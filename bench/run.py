#!/usr/bin/env python3
"""Benchmark coredns-py against knotd serving the same records.

One run, for each cluster size N:

1. generates N Services as manifests (one file per namespace, N/50
   namespaces; 80% ClusterIP with 1-2 named ports, 15% headless with 3
   endpoints in an EndpointSlice, 5% ExternalName), once with explicit
   clusterIPs and once without (the server allocates), plus a zone file for
   knotd holding the same records (A, SRV with CoreDNS's weights, CNAME, SOA);
2. generates a query mix: 70% A on existing Services, 10% SRV, 10% AAAA on
   IPv4-only names (NODATA), 10% search-path misses
   (<svc>.<ns>.svc.cluster.local.svc.cluster.local, NXDOMAIN), shuffled with a
   fixed seed, a share of them in random letter case;
3. starts coredns-py (pinned to CPU 0; forwarding off, so nothing leaves
   127.0.0.1) and measures the time to its first answer; starts knotd (also
   CPU 0) and checks that a sample of the mix gets the same answers from both;
4. runs dnsperf (pinned to CPU 1): one warm-up pass through the queries per
   server and transport, then against each server in turn, ROUNDS rounds
   alternating which goes first, over UDP and TCP: saturation throughput
   (queries/s and loss), then latency percentiles at half of that rate;
5. reads coredns-py's resident memory after the load, and times one-file
   changes (a Service's clusterIP) until the new address is answered;
6. repeats start-up and reload on the manifests without clusterIPs.

It prints everything as it goes and a summary against the targets of the
issue at the end; ``--out FILE`` also writes the figures as JSON.

Only the standard library and dnspython; it installs nothing.  Every server
it starts listens on 127.0.0.1 and is killed in a ``finally``.  Every load
loop is bounded in count and time.  This is not a test: nothing fails
because the machine is slow.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

try:
    import dns.exception
    import dns.flags
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype
except ImportError:  # pragma: no cover - dnspython is a dependency of the package
    print("bench: dnspython is missing: pip install dnspython", file=sys.stderr)
    sys.exit(2)

REPO = Path(__file__).resolve().parent.parent
ZONE = "cluster.local"
TTL = 5
SERVICE_CIDR_BASE = (10 << 24) | (96 << 16)  # 10.96.0.0/12, the default service_cidr
POD_BASE = (10 << 24) | (244 << 16)  # 10.244.0.0/16, the default pod_cidr
RELOAD_BASE = (10 << 24) | (110 << 16)  # new clusterIPs for the reload test, still in /12
INSTALL_HINT = "apt-get install dnsperf knot"

TARGETS = {
    "udp_ratio_10k": 0.5,
    "p99_ms": 1.0,
    "tcp_over_udp": 0.3,
    "startup_s": {10_000: 2.0, 100_000: 15.0},
    "rss_mb": {10_000: 100.0, 100_000: 800.0},
    "reload_ms_10k": 300.0,
}


def log(msg: str = "") -> None:
    print(msg, flush=True)


def ip4(n: int) -> str:
    return f"{n >> 24 & 255}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def dashed(ip: str) -> str:
    return ip.replace(".", "-")


# --- the cluster -------------------------------------------------------------------

PREFIXES = ("web", "api", "db", "cache", "auth", "payments", "search", "queue", "users",
            "cart", "metrics", "frontend", "backend", "orders", "mail", "gateway")
PORT_NAMES = (("http", 80), ("https", 443), ("grpc", 9090), ("metrics", 9100),
              ("admin", 8081), ("redis", 6379), ("pg", 5432))


@dataclass
class Svc:
    namespace: str
    name: str
    kind: str  # "ClusterIP", "Headless", "ExternalName"
    ip: str = ""  # ClusterIP
    ports: list = field(default_factory=list)  # [(name, port)]
    endpoints: list = field(default_factory=list)  # headless: [ip, ip, ip]
    external: str = ""

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.namespace}.svc.{ZONE}"


@dataclass
class Cluster:
    namespaces: list
    services: list
    by_ns: dict


def make_cluster(n: int, seed: int) -> Cluster:
    """N Services in max(1, N/50) namespaces, the kinds shuffled with the seed."""
    rng = random.Random(seed)
    n_ns = max(1, n // 50)
    namespaces = [f"ns-{i:04d}" for i in range(n_ns)]
    n_headless = round(n * 0.15)
    n_external = round(n * 0.05)
    kinds = (["ClusterIP"] * (n - n_headless - n_external) + ["Headless"] * n_headless
             + ["ExternalName"] * n_external)
    rng.shuffle(kinds)
    services = []
    by_ns: dict = {ns: [] for ns in namespaces}
    next_ip = SERVICE_CIDR_BASE + 256  # 10.96.1.0 on: clear of the kept .1 and .10
    next_pod = POD_BASE + 2
    for i, kind in enumerate(kinds):
        ns = namespaces[i % n_ns]
        svc = Svc(ns, f"{rng.choice(PREFIXES)}-{i}", kind)
        if kind == "ExternalName":
            svc.external = f"ext-{i}.example.com"
        else:
            k = 1 if kind == "Headless" else rng.choice((1, 2))
            svc.ports = rng.sample(PORT_NAMES, k)
            if kind == "ClusterIP":
                svc.ip = ip4(next_ip)
                next_ip += 1
            else:
                svc.endpoints = [ip4(next_pod + j) for j in range(3)]
                next_pod += 3
        services.append(svc)
        by_ns[ns].append(svc)
    return Cluster(namespaces, services, by_ns)


def namespace_yaml(ns: str, services: list, explicit_ips: bool) -> str:
    out = [f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"]
    for svc in services:
        doc = [f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {svc.name}\n"
               f"  namespace: {ns}\nspec:\n"]
        if svc.kind == "ExternalName":
            doc.append(f"  type: ExternalName\n  externalName: {svc.external}\n")
        else:
            if svc.kind == "Headless":
                doc.append("  clusterIP: None\n")
            elif explicit_ips:
                doc.append(f"  clusterIP: {svc.ip}\n")
            doc.append(f"  selector:\n    app: {svc.name}\n  ports:\n")
            for pname, port in svc.ports:
                doc.append(f"  - name: {pname}\n    port: {port}\n    protocol: TCP\n")
        out.append("".join(doc))
        if svc.kind == "Headless":
            sl = [f"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
                  f"  name: {svc.name}-x7k2p\n  namespace: {ns}\n  labels:\n"
                  f"    kubernetes.io/service-name: {svc.name}\naddressType: IPv4\nports:\n"]
            for pname, port in svc.ports:
                sl.append(f"- name: {pname}\n  port: {port}\n  protocol: TCP\n")
            sl.append("endpoints:\n")
            for j, ip in enumerate(svc.endpoints):
                sl.append(f"- addresses: [\"{ip}\"]\n  conditions:\n    ready: true\n"
                          f"  targetRef:\n    kind: Pod\n    name: {svc.name}-{j}\n")
            out.append("".join(sl))
    return "---\n".join(out)


def write_manifests(cluster: Cluster, folder: Path, explicit_ips: bool) -> None:
    folder.mkdir(parents=True)
    for ns in cluster.namespaces:
        (folder / f"{ns}.yaml").write_text(namespace_yaml(ns, cluster.by_ns[ns], explicit_ips))


def write_one_namespace(cluster: Cluster, folder: Path, ns: str, explicit_ips: bool,
                        extra: Optional[list] = None) -> None:
    """Rewrite one namespace file as an editor would: a temp file, then a rename."""
    text = namespace_yaml(ns, cluster.by_ns[ns] + (extra or []), explicit_ips)
    tmp = folder / f".{ns}.yaml.tmp"
    tmp.write_text(text)
    os.replace(tmp, folder / f"{ns}.yaml")


def zone_text(cluster: Cluster) -> str:
    """The same records as the kubernetes plugin answers for the queried names."""
    lines = [f"$ORIGIN {ZONE}.", f"$TTL {TTL}",
             f"@ {TTL} IN SOA ns.dns.{ZONE}. hostmaster.{ZONE}. 1 7200 1800 86400 {TTL}",
             f"@ IN NS ns.dns.{ZONE}.", "ns.dns IN A 127.0.0.1"]
    for svc in cluster.services:
        rel = f"{svc.name}.{svc.namespace}.svc"
        if svc.kind == "ExternalName":
            lines.append(f"{rel} IN CNAME {svc.external}.")
        elif svc.kind == "ClusterIP":
            lines.append(f"{rel} IN A {svc.ip}")
            # One SRV per port, weight 100 / number of (ip, port) candidates.
            weight = 100 // len(svc.ports)
            for _pname, port in svc.ports:
                lines.append(f"{rel} IN SRV 0 {weight} {port} {svc.fqdn}.")
        else:
            weight = max(1, 100 // (len(svc.endpoints) * len(svc.ports)))
            for ip in svc.endpoints:
                lines.append(f"{rel} IN A {ip}")
                lines.append(f"{dashed(ip)}.{rel} IN A {ip}")
                for _pname, port in svc.ports:
                    lines.append(f"{rel} IN SRV 0 {weight} {port} {dashed(ip)}.{svc.fqdn}.")
    return "\n".join(lines) + "\n"


# --- the query mix -------------------------------------------------------------------

def random_case(name: str, rng: random.Random) -> str:
    return "".join(c.upper() if c.isalpha() and rng.random() < 0.5 else c for c in name)


def make_queries(cluster: Cluster, count: int, seed: int, case_share: float) -> list:
    """(name, type) pairs: 70% A, 10% SRV, 10% AAAA (NODATA), 10% search misses."""
    rng = random.Random(seed + 1)
    services = cluster.services
    # SRV and AAAA only on names that have no CNAME: the answer is then the
    # kubernetes plugin's (SRV, NODATA) in both servers.
    plain = [s for s in services if s.kind != "ExternalName"]
    n_srv = n_aaaa = n_miss = count // 10
    n_a = count - n_srv - n_aaaa - n_miss
    queries = [(rng.choice(services).fqdn, "A") for _ in range(n_a)]
    queries += [(rng.choice(plain).fqdn, "SRV") for _ in range(n_srv)]
    queries += [(rng.choice(plain).fqdn, "AAAA") for _ in range(n_aaaa)]
    queries += [(f"{rng.choice(services).fqdn}.svc.{ZONE}", "A") for _ in range(n_miss)]
    rng.shuffle(queries)
    return [(random_case(name, rng) if rng.random() < case_share else name, qtype)
            for name, qtype in queries]


# --- processes -----------------------------------------------------------------------

def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (checked, then released)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free port on 127.0.0.1")


class Tools:
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


class Proc:
    """A server process we started; ``stop()`` kills it (and only it)."""

    def __init__(self, name: str, cmd: list, logfile: Path, env: Optional[dict] = None,
                 cwd: Optional[Path] = None):
        self.name = name
        self.cmd = cmd
        self.logfile = logfile
        self._log = open(logfile, "wb")
        self.started = time.monotonic()
        self.popen = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                      start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def status(self, key: str) -> Optional[float]:
        """A /proc/PID/status field in MB (VmRSS, VmHWM)."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
        except OSError:
            pass
        return None

    def cpu_seconds(self) -> float:
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, wait: float = 10.0) -> None:
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(sig)
                self.popen.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
            except ProcessLookupError:
                pass
        self._log.close()


# --- DNS probes ------------------------------------------------------------------------

def ask(port: int, name: str, rdtype: str = "A", timeout: float = 0.2,
        tcp: bool = False) -> Optional[dns.message.Message]:
    """One query to 127.0.0.1:port; None on timeout or refusal."""
    q = dns.message.make_query(name, rdtype)
    try:
        if tcp:
            return dns.query.tcp(q, "127.0.0.1", port=port, timeout=timeout)
        return dns.query.udp(q, "127.0.0.1", port=port, timeout=timeout)
    except (dns.exception.Timeout, OSError, EOFError, dns.exception.DNSException):
        return None


def addresses(msg: Optional[dns.message.Message]) -> list:
    if msg is None:
        return []
    return sorted(rd.address for rrset in msg.answer if rrset.rdtype == dns.rdatatype.A
                  for rd in rrset)


def wait_first_answer(proc: Proc, port: int, name: str, expect: Optional[str],
                      limit: float) -> dict:
    """Poll with one UDP query at a time until a NOERROR answer with an address
    (``expect`` when given).  Times are from the process start."""
    out: dict = {"listening_s": None, "first_answer_s": None, "gave_up_s": None}
    deadline = proc.started + limit
    while time.monotonic() < deadline:
        if not proc.alive():
            out["exited"] = proc.popen.returncode
            return out
        resp = ask(port, name, "A", timeout=0.05)
        now = time.monotonic() - proc.started
        if resp is not None:
            if out["listening_s"] is None:
                out["listening_s"] = now
            got = addresses(resp)
            if resp.rcode() == dns.rcode.NOERROR and got and (expect is None or expect in got):
                out["first_answer_s"] = now
                return out
            time.sleep(0.005)
        else:
            time.sleep(0.01)
    out["gave_up_s"] = limit
    return out


def normalise(msg: Optional[dns.message.Message]) -> tuple:
    """What must match between the two servers: rcode, flags AA, the answer and
    additional RRs (lower-cased), and the authority's types (SOA serials differ)."""
    if msg is None:
        return ("timeout",)

    def rrs(section):
        return tuple(sorted(str(rr).lower() for rrset in section
                            for rr in rrset.to_text().splitlines()))
    return (dns.rcode.to_text(msg.rcode()), bool(msg.flags & dns.flags.AA), rrs(msg.answer),
            rrs(msg.additional),
            tuple(sorted(dns.rdatatype.to_text(r.rdtype) for r in msg.authority)))


def compare_servers(ports: dict, queries: list, sample: int, seed: int) -> dict:
    rng = random.Random(seed + 2)
    picked = rng.sample(queries, min(sample, len(queries)))
    names = list(ports)
    mismatches = []
    for name, qtype in picked:
        got = [normalise(ask(ports[s], name, qtype, timeout=2.0)) for s in names]
        if got[0] != got[1]:
            mismatches.append({"query": f"{name} {qtype}", names[0]: repr(got[0]),
                               names[1]: repr(got[1])})
    return {"checked": len(picked), "mismatches": len(mismatches), "examples": mismatches[:3]}


# --- dnsperf -------------------------------------------------------------------------------

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


def wait_quiet(tools: "Tools", max_wait: float, threshold: float = 0.10) -> dict:
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


def quiet(args, tools: "Tools", what: str) -> None:
    if args.quiet_wait > 0:
        q = wait_quiet(tools, args.quiet_wait)
        if not q["quiet"]:
            log(f"  warning: CPUs still busy ({q['busy']}) after {q['waited_s']} s; "
                f"measuring {what} anyway")


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
        perf.server_cpu = (server.cpu_seconds() - cpu0) / wall
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
    summary_lines = []
    latencies = []
    with open(out_path, "r", errors="replace") as fh:
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
    out_path.unlink()
    summary = "".join(summary_lines)
    parse_summary(summary, perf)
    if child.returncode != 0 or not perf.sent:
        perf.error = (stderr.decode(errors="replace").strip() or summary.strip())[-400:]
    if latencies:
        latencies.sort()
        perf.p50_ms = percentile(latencies, 50) * 1000
        perf.p90_ms = percentile(latencies, 90) * 1000
        perf.p99_ms = percentile(latencies, 99) * 1000
        perf.max_ms = latencies[-1] * 1000
    return perf


# --- servers ---------------------------------------------------------------------------------

def start_coredns(args, name: str, manifests: Path, config: Path, state_dir: Path,
                  port: int, tools: Tools, workdir: Path, profile_out: Optional[Path] = None) -> Proc:
    env = dict(os.environ)
    env["XDG_STATE_HOME"] = str(state_dir)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    py = [args.python]
    if profile_out is not None:
        py += ["-m", "cProfile", "-o", str(profile_out)]
    cmd = py + ["-m", "coredns_py", "serve", "--manifests", str(manifests),
                "--listen", f"127.0.0.1:{port}", "--config", str(config)] + args.serve_extra
    return Proc(name, tools.pin(cmd, tools.server_cpu), workdir / f"{name}.log", env=env,
                cwd=REPO)


def start_knot(zone_dir: Path, port: int, tools: Tools, workdir: Path) -> Proc:
    kdir = zone_dir
    (kdir / "run").mkdir(exist_ok=True)
    (kdir / "storage").mkdir(exist_ok=True)
    conf = kdir / "knot.conf"
    conf.write_text(f"""\
server:
    rundir: "{kdir / 'run'}"
    listen: 127.0.0.1@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{kdir / 'storage'}"
log:
  - target: stderr
    any: info
template:
  - id: default
    storage: "{kdir}"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
zone:
  - domain: {ZONE}
""")
    return Proc("knotd", tools.pin([tools.knotd, "-c", str(conf)], tools.server_cpu),
                workdir / "knotd.log")


CONFIG_CHECK = """
import json, sys
from coredns_py import config
try:
    c = config.load(sys.argv[1])
except Exception as exc:
    print(json.dumps({"error": str(exc)}))
else:
    print(json.dumps({"upstream": list(getattr(c, "upstream", ()) or ()),
                      "zone": c.zone, "ttl": c.ttl}))
"""


def serve_extra(python: str) -> list:
    """Options of ``serve`` to turn off what is not DNS, when this version has them:
    the HTTP status listener (a fixed port, which two servers would fight over)
    and the lame-duck delay at shutdown."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        text = subprocess.run([python, "-m", "coredns_py", "serve", "--help"],
                              capture_output=True, text=True, timeout=60, env=env,
                              cwd=REPO).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    extra = []
    if "--http" in text:
        extra += ["--http", ""]
    if "--lameduck" in text:
        extra += ["--lameduck", "0"]
    return extra


def write_config(path: Path, python: str) -> Optional[str]:
    """The server's config for the benchmark; an error text when it is unsafe.

    The knot zone is written for this zone and TTL, so both are pinned.
    Forwarding is turned off (``upstream: []``): the ExternalName targets are
    outside the zone, and a server that forwards them would send queries to
    the machine's resolver, off 127.0.0.1.  A server too old to know the key
    has no forwarding; the loaded config is checked either way.
    """
    keys = [f"zone: {ZONE}", f"ttl: {TTL}", "upstream: []", "allow_recursion: []"]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for _ in range(3):
        path.write_text("\n".join(keys) + "\n")
        try:
            out = subprocess.run([python, "-c", CONFIG_CHECK, str(path)], capture_output=True,
                                 text=True, timeout=60, env=env, cwd=REPO)
            got = json.loads(out.stdout.strip().splitlines()[-1])
        except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
            return f"cannot load the benchmark config with {python}"
        err = got.get("error")
        if err:
            # An older server without forwarding rejects the keys it does not know.
            unknown = [k for k in keys if k.startswith(("upstream", "allow_recursion"))
                       and k.split(":")[0] in err]
            if not unknown:
                return f"the server rejects the benchmark config: {err}"
            keys = [k for k in keys if k not in unknown]
            continue
        if got["upstream"]:
            return (f"the server would forward to {got['upstream']}: refusing to run, "
                    "as that sends queries off 127.0.0.1")
        if got["zone"] != ZONE or got["ttl"] != TTL:
            return f"the server config has zone {got['zone']} ttl {got['ttl']}"
        return None
    return "cannot write a config the server accepts"


# --- the phases ------------------------------------------------------------------------------

def phase_load(args, tools: Tools, servers: dict, ports: dict, qfile: Path,
               workdir: Path) -> dict:
    """A warm-up pass through the query file per server and protocol (its rate is reported as
    the cold figure: a server with an answer cache is slower until it has seen
    each name once), then ROUNDS rounds: for each protocol, each server in turn
    (order alternating by round): saturation, then latency at half that rate."""
    warmup: dict = {}
    for proto in args.protos:  # an answer cache may keep UDP and TCP answers apart
        warmup[proto] = {}
        for name, proc in servers.items():
            w = run_dnsperf(tools, proc, ports[name], qfile, args.warmup_limit, proto,
                            args.clients, args.outstanding, None, workdir, args.query_timeout,
                            args.quiet_wait, passes=1)
            warmup[proto][name] = w.__dict__
            log(f"  warm-up {proto:3} {name:10} one pass of {w.sent} queries: {w.qps:8.0f} q/s "
                f"loss {w.loss * 100:.2f}%" + (f"  [{w.error}]" if w.error else ""))
    rounds = []
    for r in range(args.rounds):
        order = list(servers) if r % 2 == 0 else list(reversed(servers))
        rnd: dict = {}
        for proto in args.protos:
            rnd[proto] = {}
            for name in order:
                proc = servers[name]
                if not proc.alive():
                    raise RuntimeError(f"{name} exited:\n{proc.tail()}")
                sat = run_dnsperf(tools, proc, ports[name], qfile, args.duration, proto,
                                  args.clients, args.outstanding, None, workdir,
                                  args.query_timeout, args.quiet_wait)
                half = max(1, int(sat.qps / 2))
                lat = run_dnsperf(tools, proc, ports[name], qfile, args.latency_duration,
                                  proto, args.clients, args.outstanding, half, workdir,
                                  args.query_timeout, args.quiet_wait)
                rnd[proto][name] = {"saturation": sat.__dict__, "half_rate": half,
                                    "latency": lat.__dict__}
                log(f"  round {r + 1} {proto:3} {name:10} {sat.qps:8.0f} q/s "
                    f"loss {sat.loss * 100:5.2f}% cpu: server {fmt(sat.server_cpu, '.0%')} "
                    f"dnsperf {fmt(sat.client_cpu, '.0%')}, waited {fmt(sat.server_waited, '.0%')}"
                    f"/{fmt(sat.client_waited, '.0%')}"
                    f" | at {half} q/s: p50 {fmt(lat.p50_ms, '.3f')} ms "
                    f"p99 {fmt(lat.p99_ms, '.3f')} ms loss {lat.loss * 100:.2f}%, waited "
                    f"{fmt(lat.server_waited, '.0%')}/{fmt(lat.client_waited, '.0%')}, stolen "
                    f"{fmt(lat.server_cpu_stolen, '.0%')}/{fmt(lat.client_cpu_stolen, '.0%')}"
                    + (f"  [{sat.error or lat.error}]" if sat.error or lat.error else ""))
            if len(servers) == 2:
                c, k = (rnd[proto][n]["saturation"]["qps"] for n in ("coredns-py", "knotd"))
                rnd[proto]["ratio"] = c / k if k else None
                log(f"  round {r + 1} {proto:3} coredns-py/knotd = {fmt(rnd[proto]['ratio'], '.4f')}")
        rounds.append(rnd)
    summary: dict = {}
    for proto in args.protos:
        s: dict = {}
        for name in servers:
            runs = [rnd[proto][name] for rnd in rounds]
            s[name] = {
                "qps_median": statistics.median(x["saturation"]["qps"] for x in runs),
                "loss_median": statistics.median(
                    (x["saturation"]["lost"] / x["saturation"]["sent"])
                    if x["saturation"]["sent"] else 0.0 for x in runs),
                "p50_ms_median": median_of(x["latency"]["p50_ms"] for x in runs),
                "p99_ms_median": median_of(x["latency"]["p99_ms"] for x in runs),
                "server_cpu_median": median_of(x["saturation"]["server_cpu"] for x in runs),
                "client_cpu_median": median_of(x["saturation"]["client_cpu"] for x in runs),
                "waited_max": max((v for x in runs for k in ("saturation", "latency")
                                   for v in (x[k]["server_waited"], x[k]["client_waited"])
                                   if v is not None), default=None),
                "stolen_max": max((v for x in runs for k in ("saturation", "latency")
                                   for v in (x[k]["server_cpu_stolen"], x[k]["client_cpu_stolen"])
                                   if v is not None), default=None),
            }
        if len(servers) == 2:
            s["ratio_per_round"] = [rnd[proto]["ratio"] for rnd in rounds]
            s["ratio_median"] = median_of(s["ratio_per_round"])
        summary[proto] = s
    return {"warmup": warmup, "rounds": rounds, "summary": summary}


def median_of(values) -> Optional[float]:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def phase_reload_ip(args, cluster: Cluster, folder: Path, port: int, proc: Proc,
                    limit: float) -> dict:
    """Change one Service's clusterIP in one namespace file; time until the new
    address is answered (polling with one UDP query every ~2 ms)."""
    rng = random.Random(args.seed + 3)
    candidates = [s for s in cluster.services if s.kind == "ClusterIP"]
    times = []
    failures = 0
    started = time.monotonic()
    used_ns: set = set()
    for i in range(args.reload_repeats):
        if time.monotonic() - started > args.reload_budget:
            break
        svc = rng.choice(candidates)
        while svc.namespace in used_ns and len(used_ns) < len(cluster.namespaces):
            svc = rng.choice(candidates)
        used_ns.add(svc.namespace)
        new_ip = ip4(RELOAD_BASE + i + 1 + (int(time.time()) % 1000) * 16)
        old_ip = svc.ip
        svc.ip = new_ip
        t0 = time.monotonic()
        write_one_namespace(cluster, folder, svc.namespace, explicit_ips=True)
        seen = None
        while time.monotonic() - t0 < limit and proc.alive():
            if new_ip in addresses(ask(port, svc.fqdn, "A", timeout=0.1)):
                seen = time.monotonic() - t0
                break
            time.sleep(0.002)
        if seen is None:
            failures += 1
            log(f"  reload {i + 1}: {svc.fqdn} {old_ip} -> {new_ip} not answered after "
                f"{limit:.0f} s")
            break
        times.append(seen)
        log(f"  reload {i + 1}: {svc.namespace}.yaml ({svc.name} {old_ip} -> {new_ip}) "
            f"answered after {seen * 1000:.0f} ms")
        time.sleep(args.reload_pause)
    return {"times_ms": [t * 1000 for t in times], "failures": failures,
            "median_ms": statistics.median(times) * 1000 if times else None}


def phase_reload_add(args, cluster: Cluster, folder: Path, port: int, proc: Proc,
                     limit: float) -> dict:
    """Add one Service (no clusterIP: the server allocates) to one namespace file;
    time until its name answers an address."""
    rng = random.Random(args.seed + 4)
    times = []
    started = time.monotonic()
    for i in range(args.reload_repeats):
        if time.monotonic() - started > args.reload_budget:
            break
        ns = rng.choice(cluster.namespaces)
        new = Svc(ns, f"added-{i}-{int(time.time()) % 100000}", "ClusterIP", ports=[("http", 80)])
        t0 = time.monotonic()
        write_one_namespace(cluster, folder, ns, explicit_ips=False, extra=[new])
        seen = None
        while time.monotonic() - t0 < limit and proc.alive():
            if addresses(ask(port, new.fqdn, "A", timeout=0.1)):
                seen = time.monotonic() - t0
                break
            time.sleep(0.002)
        cluster.by_ns[ns].append(new)
        if seen is None:
            log(f"  add {i + 1}: {new.fqdn} not answered after {limit:.0f} s")
            break
        times.append(seen)
        log(f"  add {i + 1}: {ns}.yaml (+{new.name}) answered after {seen * 1000:.0f} ms")
        time.sleep(args.reload_pause)
    return {"times_ms": [t * 1000 for t in times],
            "median_ms": statistics.median(times) * 1000 if times else None}


def run_size(args, tools: Tools, n: int, workdir: Path, config: Path, load: bool) -> dict:
    log(f"\n=== N = {n} Services ===")
    result: dict = {"n": n}
    sdir = workdir / f"n{n}"
    sdir.mkdir()
    t0 = time.monotonic()
    cluster = make_cluster(n, args.seed)
    explicit = sdir / "manifests-explicit"
    allocated = sdir / "manifests-allocated"
    write_manifests(cluster, explicit, explicit_ips=True)
    write_manifests(cluster, allocated, explicit_ips=False)
    kdir = sdir / "knot"
    kdir.mkdir()
    (kdir / f"{ZONE}.zone").write_text(zone_text(cluster))
    queries = make_queries(cluster, args.queries, args.seed, args.case_share)
    qfile = sdir / "queries.txt"
    qfile.write_text("".join(f"{name} {qtype}\n" for name, qtype in queries))
    result["data"] = {"namespaces": len(cluster.namespaces), "services": n,
                      "clusterip": sum(s.kind == "ClusterIP" for s in cluster.services),
                      "headless": sum(s.kind == "Headless" for s in cluster.services),
                      "externalname": sum(s.kind == "ExternalName" for s in cluster.services),
                      "queries": len(queries),
                      "manifest_bytes": sum(p.stat().st_size for p in explicit.iterdir()),
                      "generate_s": time.monotonic() - t0}
    d = result["data"]
    log(f"generated {d['namespaces']} namespace files ({d['manifest_bytes'] / 1e6:.1f} MB), "
        f"{d['clusterip']} ClusterIP, {d['headless']} headless, {d['externalname']} "
        f"ExternalName; zone file; {d['queries']} queries  ({d['generate_s']:.1f} s)")
    probe = next(s for s in cluster.services if s.kind == "ClusterIP")

    servers: dict = {}
    ports: dict = {}
    try:
        # coredns-py on the manifests with explicit clusterIPs (cold: no state file)
        quiet(args, tools, "start-up")
        ports["coredns-py"] = free_port()
        proc = start_coredns(args, "coredns-py", explicit, config, sdir / "state-explicit",
                             ports["coredns-py"], tools, sdir)
        servers["coredns-py"] = proc
        st = wait_first_answer(proc, ports["coredns-py"], probe.fqdn, probe.ip, args.startup_timeout)
        st["rss_mb_after_start"] = proc.status("VmRSS")
        result["startup"] = st
        if st["first_answer_s"] is None:
            why = (f"exited with {st['exited']}" if "exited" in st
                   else f"gave up after {args.startup_timeout:.0f} s")
            log(f"coredns-py start-up: no answer ({why}); RSS then "
                f"{fmt(st['rss_mb_after_start'], '.0f')} MB\n{proc.tail()}")
            return result
        log(f"coredns-py start-up (explicit IPs, cold): listening after "
            f"{fmt(st['listening_s'], '.2f')} s, first answer after {st['first_answer_s']:.2f} s, "
            f"RSS {fmt(st['rss_mb_after_start'], '.1f')} MB")

        if load and not args.skip_knot:
            ports["knotd"] = free_port()
            kproc = start_knot(kdir, ports["knotd"], tools, sdir)
            servers["knotd"] = kproc
            kst = wait_first_answer(kproc, ports["knotd"], probe.fqdn, probe.ip,
                                    args.startup_timeout)
            kst["rss_mb"] = kproc.status("VmRSS")
            result["knotd_startup"] = kst
            if kst["first_answer_s"] is None:
                log(f"knotd did not answer; skipping it\n{kproc.tail()}")
                kproc.stop()
                del servers["knotd"], ports["knotd"]
            else:
                log(f"knotd start-up: first answer after {kst['first_answer_s']:.2f} s, "
                    f"RSS {fmt(kst['rss_mb'], '.1f')} MB")
                cmp = compare_servers(ports, queries, args.compare_sample, args.seed)
                result["equivalence"] = cmp
                log(f"same answers from both servers: {cmp['checked'] - cmp['mismatches']}"
                    f"/{cmp['checked']} sampled queries")
                for ex in cmp["examples"]:
                    log(f"  differs: {ex}")

        if load:
            log(f"load: a warm-up pass, then {args.rounds} round(s), {args.duration:g} s saturation + "
                f"{args.latency_duration:g} s at half rate each, dnsperf -c {args.clients} "
                f"-q {args.outstanding}")
            result["load"] = phase_load(args, tools, servers, ports, qfile, sdir)
        result["memory"] = {"rss_mb": proc.status("VmRSS"), "hwm_mb": proc.status("VmHWM"),
                            "after_load": load}
        if "knotd" in servers:
            result["memory"]["knotd_rss_mb"] = servers["knotd"].status("VmRSS")
            servers.pop("knotd").stop()
        m = result["memory"]
        log(f"coredns-py memory {'after load' if load else 'after start-up'}: VmRSS "
            f"{fmt(m['rss_mb'], '.1f')} MB (peak {fmt(m['hwm_mb'], '.1f')} MB)"
            + (f"; knotd {m['knotd_rss_mb']:.1f} MB" if m.get("knotd_rss_mb") else ""))

        reload_limit = max(30.0, 3 * st["first_answer_s"])
        quiet(args, tools, "reload")
        log(f"reload: change one Service's clusterIP in one namespace file, "
            f"{args.reload_repeats}x")
        result["reload"] = phase_reload_ip(args, cluster, explicit, ports["coredns-py"],
                                           proc, reload_limit)
        log(f"reload median {fmt(result['reload']['median_ms'], '.0f')} ms")
        proc.stop()
        servers.pop("coredns-py")

        if not args.skip_allocated:
            # The same Services without clusterIPs: the server allocates them.
            # Cold (no state file), then warm (a restart finds the state file).
            state = sdir / "state-allocated"
            alloc: dict = {}
            for label in ("cold", "warm"):
                quiet(args, tools, f"start-up ({label})")
                port = free_port()
                p = start_coredns(args, f"coredns-py-alloc-{label}", allocated, config, state,
                                  port, tools, sdir)
                servers["alloc"] = p
                a = wait_first_answer(p, port, probe.fqdn, None, args.startup_timeout)
                a["rss_mb"] = p.status("VmRSS")
                alloc[label] = a
                log(f"coredns-py start-up (allocated IPs, {label}): first answer after "
                    f"{fmt(a['first_answer_s'], '.2f')} s, RSS {fmt(a['rss_mb'], '.1f')} MB"
                    + ("" if a["first_answer_s"] is not None else f"\n{p.tail()}"))
                if label == "warm" and a["first_answer_s"] is not None:
                    log(f"reload: add one Service (allocated IP) to one namespace file, "
                        f"{args.reload_repeats}x")
                    alloc["reload_add"] = phase_reload_add(
                        args, cluster, allocated, port, p, max(30.0, 3 * a["first_answer_s"]))
                    log(f"add-a-Service reload median "
                        f"{fmt(alloc['reload_add']['median_ms'], '.0f')} ms")
                p.stop()
                servers.pop("alloc")
                if a["first_answer_s"] is None:
                    break
            result["allocated"] = alloc
    finally:
        for p in servers.values():
            p.stop()
        for logfile in sorted(sdir.glob("coredns-py*.log")):
            text = logfile.read_text(errors="replace")
            lines = [line for line in text.splitlines()
                     if re.search(r"upstream|forward", line, re.I)
                     and "forwarding is off" not in line]
            if lines:
                log(f"  warning: {logfile.name} mentions forwarding:\n"
                    + "\n".join(lines)[:1000])
    return result


# --- profile ---------------------------------------------------------------------------------

def run_profile(args, tools: Tools, n: int, workdir: Path, config: Path) -> Optional[str]:
    """coredns-py under cProfile during one UDP saturation run; the top functions."""
    import pstats
    import io
    sdir = workdir / f"profile-n{n}"
    sdir.mkdir()
    cluster = make_cluster(n, args.seed)
    write_manifests(cluster, sdir / "m", explicit_ips=True)
    qfile = sdir / "queries.txt"
    qfile.write_text("".join(f"{a} {b}\n" for a, b in make_queries(
        cluster, args.queries, args.seed, args.case_share)))
    probe = next(s for s in cluster.services if s.kind == "ClusterIP")
    port = free_port()
    prof = sdir / "server.prof"
    p = start_coredns(args, "coredns-py-profile", sdir / "m", config, sdir / "state", port,
                      tools, sdir, profile_out=prof)
    try:
        st = wait_first_answer(p, port, probe.fqdn, probe.ip, args.startup_timeout)
        if st["first_answer_s"] is None:
            return None
        perf = run_dnsperf(tools, p, port, qfile, args.duration, "udp", args.clients,
                           args.outstanding, None, sdir, args.query_timeout)
        log(f"profiled UDP saturation: {perf.qps:.0f} q/s (cProfile slows it down)")
    finally:
        p.stop(wait=30)
    if not prof.exists():
        return None
    buf = io.StringIO()
    stats = pstats.Stats(str(prof), stream=buf)
    stats.strip_dirs().sort_stats("tottime").print_stats(15)
    stats.sort_stats("cumulative").print_stats(20)
    return buf.getvalue()


# --- the report ------------------------------------------------------------------------------

def check_targets(results: list) -> list:
    """(target, measured, met?) lines; not asserted, only reported."""
    lines = []
    by_n = {r["n"]: r for r in results}

    def add(text, value, ok):
        lines.append({"target": text, "measured": value, "met": ok})

    r10 = by_n.get(10_000)
    if r10 and "load" in r10:
        ratio = r10["load"]["summary"].get("udp", {}).get("ratio_median")
        if ratio is not None:
            add("UDP throughput at N=10k >= 0.5x knotd", f"{ratio:.4f}x "
                f"({ratio / TARGETS['udp_ratio_10k'] * 100:.1f}% of the target)",
                ratio >= TARGETS["udp_ratio_10k"])
    for r in results:
        s = r.get("load", {}).get("summary", {})
        for proto in ("udp", "tcp"):
            p99 = s.get(proto, {}).get("coredns-py", {}).get("p99_ms_median")
            if p99 is not None:
                add(f"{proto.upper()} p99 < 1 ms at half our max rate, N={r['n']}",
                    f"{p99:.2f} ms", p99 < TARGETS["p99_ms"])
        if "udp" in s and "tcp" in s:
            u = s["udp"]["coredns-py"]["qps_median"]
            t = s["tcp"]["coredns-py"]["qps_median"]
            if u:
                add(f"TCP pipelined >= 0.3x our UDP rate, N={r['n']}", f"{t / u:.2f}x",
                    t / u >= TARGETS["tcp_over_udp"])
        limit = TARGETS["startup_s"].get(r["n"])
        if limit is not None and "startup" in r:
            st = r["startup"]
            v = st.get("first_answer_s")
            add(f"start-up N={r['n']} within {limit:g} s",
                f"{v:.2f} s" if v is not None else f"no answer after {st.get('gave_up_s')} s",
                v is not None and v <= limit)
        limit = TARGETS["rss_mb"].get(r["n"])
        if limit is not None and r.get("memory", {}).get("rss_mb") is not None:
            v = r["memory"]["rss_mb"]
            add(f"memory N={r['n']} under {limit:g} MB", f"{v:.0f} MB", v < limit)
    if r10 and r10.get("reload", {}).get("median_ms") is not None:
        v = r10["reload"]["median_ms"]
        add("reload of a one-file change, N=10k, median within 300 ms", f"{v:.0f} ms",
            v <= TARGETS["reload_ms_10k"])
    return lines


def print_summary(results: list, targets: list) -> None:
    log("\n=== summary ===")
    for r in results:
        n = r["n"]
        log(f"\nN = {n}")
        st = r.get("startup", {})
        if st.get("first_answer_s") is not None:
            log(f"  start-up to first answer (explicit IPs, cold): {st['first_answer_s']:.2f} s")
        elif st:
            log(f"  start-up: no answer (gave up after {st.get('gave_up_s')} s)")
        a = r.get("allocated", {})
        for label in ("cold", "warm"):
            if label in a:
                log(f"  start-up to first answer (allocated IPs, {label}): "
                    f"{fmt(a[label]['first_answer_s'], '.2f')} s")
        m = r.get("memory")
        if m:
            log(f"  VmRSS {'after load' if m['after_load'] else 'after start-up'}: "
                f"{fmt(m['rss_mb'], '.1f')} MB (peak {fmt(m['hwm_mb'], '.1f')} MB)"
                + (f"; knotd {m['knotd_rss_mb']:.1f} MB" if m.get("knotd_rss_mb") else ""))
        rl = r.get("reload")
        if rl and rl["times_ms"]:
            log(f"  reload, one-file change: median {rl['median_ms']:.0f} ms over "
                f"{len(rl['times_ms'])} (min {min(rl['times_ms']):.0f}, "
                f"max {max(rl['times_ms']):.0f})")
        ra = a.get("reload_add")
        if ra and ra["times_ms"]:
            log(f"  reload, one Service added (allocated IP): median {ra['median_ms']:.0f} ms")
        load = r.get("load")
        if load:
            log(f"  {'proto':5} {'server':10} {'q/s (median)':>12} {'loss':>6} "
                f"{'p50 ms':>7} {'p99 ms':>7} {'srv cpu':>7} {'dnsperf':>7} {'waited':>7} "
                f"{'stolen':>7}"
                "   (p50/p99 at half the rate; waited: the most either process spent "
                "runnable but kept off its CPU by other processes; stolen: the most of "
                "either CPU the hypervisor took)")
            for proto, ws in load.get("warmup", {}).items():
                for name, w in ws.items():
                    log(f"  {proto:5} {name:10} {w['qps']:12.0f}  (first pass through the "
                        "query file)")
            for proto, s in load["summary"].items():
                for name in ("coredns-py", "knotd"):
                    if name in s:
                        x = s[name]
                        log(f"  {proto:5} {name:10} {x['qps_median']:12.0f} "
                            f"{x['loss_median'] * 100:5.2f}% {fmt(x['p50_ms_median'], '7.3f')} "
                            f"{fmt(x['p99_ms_median'], '7.3f')} "
                            f"{fmt(x['server_cpu_median'], '7.0%')} "
                            f"{fmt(x['client_cpu_median'], '7.0%')} "
                            f"{fmt(x['waited_max'], '7.0%')} "
                            f"{fmt(x.get('stolen_max'), '7.0%')}")
                if s.get("ratio_per_round"):
                    log(f"  {proto:5} coredns-py/knotd per round: "
                        + ", ".join(fmt(v, ".4f") for v in s["ratio_per_round"])
                        + f"; median {fmt(s['ratio_median'], '.4f')}")
    if targets:
        log("\n=== targets (reported, not asserted) ===")
        for t in targets:
            log(f"  [{'met' if t['met'] else 'MISSED'}] {t['target']}: {t['measured']}")


# --- main ------------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Benchmark coredns-py against knotd with dnsperf: throughput and "
                    "latency over UDP and TCP, start-up time, memory and reload time, "
                    "for clusters of several sizes. Needs dnsperf and knotd "
                    f"({INSTALL_HINT}).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--sizes", default="1000,10000,100000",
                   help="cluster sizes (number of Services), comma-separated")
    p.add_argument("--load-sizes", default=None,
                   help="sizes at which to run dnsperf; none: all of --sizes")
    p.add_argument("--rounds", type=int, default=3, help="alternating dnsperf rounds")
    p.add_argument("--duration", type=float, default=10.0,
                   help="seconds of each saturation run")
    p.add_argument("--latency-duration", type=float, default=None,
                   help="seconds of each half-rate latency run; none: --duration")
    p.add_argument("--protos", default="udp,tcp", help="dnsperf transports")
    p.add_argument("--warmup-limit", type=float, default=120.0,
                   help="at most this many seconds for the warm-up pass through the queries")
    p.add_argument("--clients", type=int, default=8, help="dnsperf -c (sockets/connections)")
    p.add_argument("--outstanding", type=int, default=100,
                   help="dnsperf -q: queries in flight at saturation")
    p.add_argument("--query-timeout", type=float, default=2.0,
                   help="dnsperf -t: a query unanswered this long is lost")
    p.add_argument("--queries", type=int, default=100_000,
                   help="lines in the query file (dnsperf loops over it)")
    p.add_argument("--case-share", type=float, default=0.25,
                   help="share of queries in random letter case")
    p.add_argument("--seed", type=int, default=20240601,
                   help="seed of the generated cluster and query mix")
    p.add_argument("--skip-knot", action="store_true", help="benchmark coredns-py alone")
    p.add_argument("--skip-allocated", action="store_true",
                   help="skip start-up/reload on the manifests without clusterIPs")
    p.add_argument("--startup-timeout", type=float, default=120.0,
                   help="give up waiting for the first answer after this many seconds")
    p.add_argument("--reload-repeats", type=int, default=7,
                   help="one-file changes timed per size (and Services added)")
    p.add_argument("--reload-pause", type=float, default=0.5,
                   help="seconds between two reload measurements")
    p.add_argument("--reload-budget", type=float, default=180.0,
                   help="stop starting new reload measurements after this many seconds")
    p.add_argument("--compare-sample", type=int, default=300,
                   help="queries checked for identical answers from both servers")
    p.add_argument("--quiet-wait", type=float, default=15.0,
                   help="before each measurement, wait up to this many seconds for the two "
                        "CPUs to be idle (other processes on a shared machine); 0: don't")
    p.add_argument("--nice", type=int, default=0,
                   help="run the servers and dnsperf under nice -n N (e.g. -10 as root "
                        "on a shared machine, so other processes disturb less)")
    p.add_argument("--server-cpu", type=int, default=0, help="CPU the servers are pinned to")
    p.add_argument("--client-cpu", type=int, default=1, help="CPU dnsperf is pinned to")
    p.add_argument("--python", default=sys.executable, help="interpreter that runs coredns-py")
    p.add_argument("--profile", action="store_true",
                   help="also run coredns-py under cProfile for one UDP saturation run at "
                        "the first load size and print the top functions")
    p.add_argument("--quick", action="store_true",
                   help="a ~1 minute smoke run: N=1000, 1 round of 3 s, 3 reloads")
    p.add_argument("--workdir", type=Path, default=None,
                   help="where to generate data; none: a new temporary folder, removed "
                        "at the end unless --keep")
    p.add_argument("--keep", action="store_true", help="keep the generated data")
    p.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes = "1000"
        args.rounds = 1
        args.duration = 3.0
        args.reload_repeats = 3
        args.queries = min(args.queries, 20_000)
        args.compare_sample = min(args.compare_sample, 100)
    if args.latency_duration is None:
        args.latency_duration = args.duration
    args.size_list = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.load_list = ([int(s) for s in args.load_sizes.split(",") if s.strip()]
                      if args.load_sizes else list(args.size_list))
    args.protos = [s.strip() for s in args.protos.split(",") if s.strip()]
    for s in args.size_list:
        if s < 50:
            p.error("--sizes: at least 50 Services each")
    if args.rounds < 1 or args.duration <= 0:
        p.error("--rounds and --duration must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    tools = Tools(args.server_cpu, args.client_cpu)
    tools.nice = args.nice
    missing = []
    if not tools.dnsperf:
        missing.append("dnsperf")
    if not tools.knotd and not args.skip_knot:
        missing.append("knotd (package knot)")
    if missing:
        print(f"bench: {' and '.join(missing)} not found. Install with:\n"
              f"    {INSTALL_HINT}\n(or pass --skip-knot to benchmark coredns-py alone)",
              file=sys.stderr)
        return 2

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="coredns-py-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "coredns_py.yaml"
    args.serve_extra = serve_extra(args.python)
    problem = write_config(config, args.python)
    if problem:
        print(f"bench: {problem}", file=sys.stderr)
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
        return 2
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [sys.argv[0]] + (argv or sys.argv[1:])),
        "machine": machine(),
        "python": platform.python_version(),
        "dnsperf": "dnsperf " + tools.version([tools.dnsperf, "-h"]).replace("Version ", ""),
        "knotd": tools.version([tools.knotd, "-V"]) if tools.knotd else None,
        "pinned": {"server_cpu": tools.server_cpu, "dnsperf_cpu": tools.client_cpu},
        "nice": args.nice,
        "serve_options": args.serve_extra,
        "config": config.read_text(),
        "coredns_py_commit": head_commit(),
        "workdir": str(workdir),
    }
    log(f"coredns-py benchmark, {meta['date']}")
    log(f"machine: {meta['machine']}; Python {meta['python']}; {meta['dnsperf']}; "
        f"{meta['knotd'] or 'knotd skipped'}")
    log(f"coredns-py from {REPO} (commit {meta['coredns_py_commit']}, plus any uncommitted "
        "changes)")
    log(f"coredns-py config: {config.read_text().strip().replace(chr(10), '; ')}; "
        f"serve options {' '.join(repr(a) if not a else a for a in args.serve_extra)}")
    log(f"servers on CPU {tools.server_cpu}, dnsperf on CPU {tools.client_cpu}"
        + (f", nice {args.nice}" if args.nice else "") + f"; data in {workdir}")
    log("latency percentiles: from dnsperf -v (one line per answered query; this dnsperf "
        "has no latency histogram option)")
    results = []
    profile = None
    try:
        for n in args.size_list:
            results.append(run_size(args, tools, n, workdir, config, n in args.load_list))
            if args.out:
                dump(args.out, meta, results, check_targets(results), profile)
        if args.profile and args.load_list:
            log(f"\n=== cProfile of coredns-py under UDP load, N={args.load_list[0]} ===")
            profile = run_profile(args, tools, args.load_list[0], workdir, config)
            log(profile or "no profile written")
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    targets = check_targets(results)
    print_summary(results, targets)
    log(f"\ncommand: {meta['command']}")
    if args.out:
        dump(args.out, meta, results, targets, profile)
        log(f"figures written to {args.out}")
    return 0


def dump(path: Path, meta: dict, results: list, targets: list, profile) -> None:
    path.write_text(json.dumps({"meta": meta, "results": results, "targets": targets,
                                "profile": profile}, indent=1, default=str) + "\n")


def head_commit() -> str:
    """The checked-out commit, read from .git without running git."""
    try:
        git = REPO / ".git"
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:12]
        ref = head[5:]
        if (git / ref).exists():
            return (git / ref).read_text().strip()[:12]
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0][:12]
    except OSError:
        pass
    return "?"


def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return (f"{os.cpu_count()} cores ({model}), {mem} RAM, {platform.system()} "
            f"{platform.release()}")


if __name__ == "__main__":
    sys.exit(main())
