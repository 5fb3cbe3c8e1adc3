"""Hostile files at full size, and the settle time against the reload target.

Prints, for the real server (tests/test_hostile_server.py runs the same cases
scaled down, with loose ceilings):

1. **Settle and reload latency** at N Services (default 10k): one namespace
   file changed, rewritten in place (truncate, write) or replaced by a
   rename; the time from the end of the write to the new address being
   answered (target: 300 ms), and the build time the server logs.
2. **Hostile files**, each added to a served folder of 1k Services while a
   client asks a good name every 5 ms: when the server logged the file's
   error, the longest gap without an answer, p99 latency, peak RSS; a file
   written beside it and the time until it is served; ``check`` on the same
   folder (exit code, seconds, peak RSS); SIGTERM with ``--lameduck 0``
   (seconds to exit).  The cases: the 400-byte alias bomb where a field's
   value reaches an error message, the bomb beside a bad timestamp, a FIFO,
   a symlink to /dev/zero, 100,000 levels of ``[``, a 5,000-level JSON, a file
   over max_file_bytes (300 MB), and a big valid file (100k Services, added
   then removed: RSS before, with, after).
3. **SIGTERM during a slow reload** (a file that takes seconds to parse).

    python bench/hostile.py                  # everything (~10 min)
    python bench/hostile.py --only settle --services 10000 --repeats 30
    python bench/hostile.py --only files --big-mb 0    # skip writing 300 MB

Everything on 127.0.0.1, every loop bounded in count and time, every server
killed in a ``finally``.  Nothing is asserted: figures only.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib.cluster import Svc, make_cluster
from benchlib.coredns import REPO, repo_env, write_config
from benchlib.console import fmt, log
from benchlib.manifests import namespace_yaml, write_manifests
from benchlib.probe import addresses, ask
from benchlib.prober import Prober, latency_figures
from benchlib.proc import Proc, free_port

LOADED = re.compile(r"loaded \d+ files: .*\((\d+) ms\)")
# `check`, with its peak RSS printed to stderr at exit.
CHECK = """
import resource, runpy, sys
sys.argv = ["coredns_py"] + sys.argv[1:]
code = 0
try:
    runpy.run_module("coredns_py", run_name="__main__")
except SystemExit as exc:
    code = exc.code
print("maxrss=%d" % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def alias_bomb() -> str:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * 9) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


def bomb_service() -> str:
    bomb = "\n".join("  " + line for line in alias_bomb().splitlines())
    return f"apiVersion: v1\nkind: Service\nmetadata:\n  name: bomb\n{bomb}\nspec:\n  type: *a8\n"


def write_big(path: Path, megabytes: int) -> None:
    chunk = ("# " + "x" * 1021 + "\n") * 1024  # 1 MiB of comment lines
    with open(path, "w") as fh:
        for _ in range(megabytes):
            fh.write(chunk)


def big_services(n: int, seed: int) -> tuple[str, str]:
    """n Services in namespaces big-*, without clusterIPs; and one of their names."""
    cluster = make_cluster(n, seed)
    text = "---\n".join(
        namespace_yaml(f"big-{ns}", [Svc(f"big-{ns}", s.name, s.kind, s.ip, s.ports,
                                         s.endpoints, s.external)
                                     for s in cluster.by_ns[ns]], False)
        for ns in cluster.namespaces)
    probe = cluster.probe()
    return text, f"{probe.name}.big-{probe.namespace}.svc.cluster.local."


class Server:
    def __init__(self, args, folder: Path, config: Path, work: Path, name: str,
                 lameduck: float = 0):
        self.port = free_port()
        env = repo_env()
        env["XDG_STATE_HOME"] = str(work / f"state-{name}")
        cmd = [args.python, "-m", "coredns_py", "serve", "--manifests", str(folder),
               "--listen", f"127.0.0.1:{self.port}", "--config", str(config), "--http", "",
               "--lameduck", str(lameduck)]
        self.proc = Proc(f"coredns-py-{name}", cmd, work / f"server-{name}.log", env=env,
                         cwd=REPO)

    def text(self) -> str:
        return self.proc.logfile.read_text(errors="replace")

    def loads(self) -> list[int]:
        return [int(m) for m in LOADED.findall(self.text())]

    def wait(self, predicate, limit: float, step: float = 0.002) -> float | None:
        """Seconds until ``predicate()`` holds; None after ``limit`` s or an exit."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit and self.proc.alive():
            if predicate():
                return time.monotonic() - t0
            time.sleep(step)
        return None

    def answers(self, name: str, ip: str | None = None) -> bool:
        got = addresses(ask(self.port, name, timeout=0.2))
        return bool(got) and (ip is None or ip in got)

    def stop_seconds(self, limit: float = 60) -> float | None:
        t0 = time.monotonic()
        self.proc.popen.send_signal(signal.SIGTERM)
        try:
            self.proc.popen.wait(limit)
        except subprocess.TimeoutExpired:
            return None
        return time.monotonic() - t0


# --- 1. settle and reload latency -------------------------------------------------------

def phase_settle(args, work: Path, config: Path) -> None:
    n = args.services
    cluster = make_cluster(n, args.seed)
    folder = work / f"settle-{n}"
    write_manifests(cluster, folder, explicit_ips=True)
    srv = Server(args, folder, config, work, f"settle-{n}")
    try:
        if srv.wait(lambda: srv.loads(), args.startup_timeout, 0.05) is None:
            log(f"settle: the server did not start: {srv.proc.tail()}")
            return
        log(f"settle: N={n} Services, first load {srv.loads()[0]} ms; one namespace file "
            f"changed {args.repeats}x per way of writing; target 300 ms from the last write")
        candidates = [s for s in cluster.services if s.kind == "ClusterIP"]
        for how in ("in place", "rename"):
            times, builds = [], []
            for i in range(args.repeats):
                svc = candidates[(i * 7919) % len(candidates)]
                # A fresh address each time (10.111.x in place, 10.112.x renamed).
                svc.ip = f"10.{111 + (how == 'rename')}.{i // 250}.{i % 250 + 1}"
                text = namespace_yaml(svc.namespace, cluster.by_ns[svc.namespace], True)
                path = folder / f"{svc.namespace}.yaml"
                done = len(srv.loads())
                if how == "in place":
                    with open(path, "w") as fh:  # truncate, then write
                        fh.write(text)
                else:
                    tmp = folder / f".{svc.namespace}.tmp"
                    tmp.write_text(text)
                    os.replace(tmp, path)
                written = time.monotonic()
                seen = srv.wait(lambda: srv.answers(svc.fqdn + ".", svc.ip), 30)
                if seen is None:
                    log(f"  {how} {i + 1}: {svc.fqdn} -> {svc.ip} not served after 30 s")
                    break
                times.append(time.monotonic() - written)
                srv.wait(lambda: len(srv.loads()) > done, 5, 0.01)
                builds.extend(srv.loads()[done:done + 1])
                time.sleep(args.pause)
            if times:
                q = sorted(times)
                log(f"  {how:<8}: served after p50 {statistics.median(q) * 1000:.0f} ms, "
                    f"p90 {q[int(len(q) * 0.9) - 1] * 1000:.0f} ms, max {q[-1] * 1000:.0f} ms "
                    f"from the last write; build p50 "
                    f"{fmt(statistics.median(builds) if builds else None, '.0f')} ms "
                    f"({len(times)} changes)")
    finally:
        srv.proc.stop()


# --- 2. hostile files ------------------------------------------------------------------------

def make_cases(args) -> dict:
    cases = {
        "alias bomb in a field": ("bomb.yaml", lambda p: p.write_text(bomb_service())),
        "alias bomb + bad timestamp": ("bomb2.yaml", lambda p: p.write_text(
            alias_bomb() + "metadata:\n  creationTimestamp: 2024-13-45\n")),
        "FIFO": ("x.yaml", lambda p: os.mkfifo(p)),
        "symlink to /dev/zero": ("zero.yaml", lambda p: os.symlink("/dev/zero", p)),
        "100,000 levels of [": ("deep.yaml", lambda p: p.write_text(
            "a: " + "[" * 100_000 + "]" * 100_000 + "\n")),
        "5,000-level JSON": ("deep.json", lambda p: p.write_text("[" * 5000 + "]" * 5000)),
    }
    if args.big_mb:
        cases[f"{args.big_mb} MB file"] = ("huge.yaml", lambda p: write_big(p, args.big_mb))
    if args.big_services:
        text, name = big_services(args.big_services, args.seed + 5)
        args.big_name = name
        cases[f"{args.big_services} Services ({len(text) / 1e6:.0f} MB)"] = (
            "zz-big.yaml", lambda p: p.write_text(text))
    return cases


def phase_files(args, work: Path, config: Path) -> None:
    cluster = make_cluster(1000, args.seed)
    good = cluster.probe()
    log("hostile files: each added to a folder of 1k Services, a client asking "
        f"{good.fqdn} every 5 ms")
    for i, (label, (name, make)) in enumerate(make_cases(args).items()):
        folder = work / f"files-{i}"
        write_manifests(cluster, folder, explicit_ips=True)
        srv = Server(args, folder, config, work, f"files-{i}")
        prober = None
        try:
            if srv.wait(lambda: srv.loads(), args.startup_timeout, 0.05) is None:
                log(f"  {label}: the server did not start")
                continue
            prober = Prober(srv.port, good.fqdn + ".")
            prober.start()
            time.sleep(0.5)
            rss_before = srv.proc.status("VmRSS")
            t0 = time.monotonic()
            make(folder / name)
            shown = re.escape(str(folder / name))
            logged = srv.wait(lambda: re.search(shown + r"(:\d+)?: ", srv.text())
                              or len(srv.loads()) > 1, args.file_timeout, 0.01)
            beside = Svc(cluster.namespaces[0], "beside", "ClusterIP", "10.111.200.1",
                         [("http", 80)])
            (folder / "beside.yaml").write_text(
                f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {beside.name}\n"
                f"  namespace: {beside.namespace}\nspec:\n  clusterIP: {beside.ip}\n"
                "  ports:\n  - port: 80\n")
            served = srv.wait(lambda: srv.answers(beside.fqdn + ".", beside.ip),
                              args.file_timeout)
            t2 = time.monotonic()
            rss_peak = srv.proc.status("VmHWM")
            gap = prober.longest_gap(t0, t2)
            lat = latency_figures(prober.window(t0, t2))
            extra = ""
            if name == "zz-big.yaml":  # a big valid file: what is left after removal
                rss_with = srv.proc.status("VmRSS")
                (folder / name).unlink()
                srv.wait(lambda: not srv.answers(args.big_name), args.file_timeout, 0.05)
                time.sleep(2)
                extra = (f"; RSS {fmt(rss_before, '.0f')} -> {fmt(rss_with, '.0f')} -> "
                         f"{fmt(srv.proc.status('VmRSS'), '.0f')} MB after removal")
            stop = srv.stop_seconds()
            c0 = time.monotonic()
            try:
                res = subprocess.run([args.python, "-c", CHECK, "check", "--manifests",
                                      str(folder), "--config", str(config)],
                                     capture_output=True, text=True, env=repo_env(), cwd=REPO,
                                     timeout=args.file_timeout)
                peak = re.search(r"maxrss=(\d+)", res.stderr)
                named = name == "zz-big.yaml" or str(folder / name) in res.stdout
                check = (f"check exit {res.returncode} in {time.monotonic() - c0:.1f} s, "
                         f"peak RSS {int(peak.group(1)) / 1024 if peak else 0:.0f} MB"
                         f"{' (traceback!)' if 'Traceback' in res.stdout + res.stderr else ''}"
                         f"{'' if named else ' (file not named!)'}")
            except subprocess.TimeoutExpired:
                check = f"check still running after {args.file_timeout} s"
            traceback = " TRACEBACK in the log!" if "Traceback" in srv.text() else ""
            log(f"  {label:<28} error logged {fmt(logged, '.2f')} s | longest gap "
                f"{gap * 1000:.0f} ms, p99 {fmt(lat.get('p99_ms'), '.1f')} ms, missed "
                f"{lat.get('missed')} | beside served {fmt(served, '.2f')} s | peak RSS "
                f"{fmt(rss_peak, '.0f')} MB | SIGTERM {fmt(stop, '.2f')} s | {check}"
                f"{extra}{traceback}")
        finally:
            if prober is not None:
                prober.stopping.set()
                prober.join(5)
            srv.proc.stop()
            shutil.rmtree(folder, ignore_errors=True)


# --- 3. SIGTERM while a slow reload runs ------------------------------------------------------

def phase_sigterm(args, work: Path, config: Path) -> None:
    cluster = make_cluster(1000, args.seed)
    folder = work / "sigterm"
    write_manifests(cluster, folder, explicit_ips=True)
    for lameduck in (0, 2):
        srv = Server(args, folder, config, work, f"sigterm-{lameduck}", lameduck=lameduck)
        try:
            srv.wait(lambda: srv.loads(), args.startup_timeout, 0.05)
            doc = "[" + "1, " * 10_000 + "1]\n"
            (folder / "slow.yaml").write_text("---\n".join([doc] * 300))
            time.sleep(1.0)
            busy = len(srv.loads()) == 1
            took = srv.stop_seconds()
            log(f"SIGTERM with --lameduck {lameduck} while a slow reload runs "
                f"({'still running' if busy else 'already done'}): exited after "
                f"{fmt(took, '.2f')} s (HTTP off: no lame duck to wait for)")
        finally:
            srv.proc.stop()
            (folder / "slow.yaml").unlink(missing_ok=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=["settle", "files", "sigterm"])
    p.add_argument("--services", type=int, default=10000, help="N for the settle phase")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--pause", type=float, default=0.3)
    p.add_argument("--big-mb", type=int, default=300, help="the over-the-limit file (0: skip)")
    p.add_argument("--big-services", type=int, default=100_000,
                   help="the big valid file (0: skip)")
    p.add_argument("--file-timeout", type=float, default=300)
    p.add_argument("--startup-timeout", type=float, default=180)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--python", default=shutil.which("python3") or "python3")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="coredns-py-hostile-"))
    try:
        config = work / "config.yaml"
        err = write_config(config, args.python)
        if err:
            log(f"error: {err}")
            return 2
        if args.only in (None, "settle"):
            phase_settle(args, work, config)
        if args.only in (None, "files"):
            phase_files(args, work, config)
        if args.only in (None, "sigterm"):
            phase_sigterm(args, work, config)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
