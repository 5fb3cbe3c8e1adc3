"""UDP system calls per datagram or per batch: server CPU per answered query.

Starts coredns-py twice on the benchmark's data (N Services, the query mix
of bench/run.py), once reading and answering one datagram per system call
(``recvfrom``/``sendto``, the portable path) and once a batch per call
(``recvmmsg``/``sendmmsg`` through libc, net/mmsg.py), and loads each in
turn with dnsperf at saturation, servers pinned to one CPU and dnsperf to
the other, as bench/run.py does.  Prints per variant the median over the
rounds of queries/s and of the server's CPU time (user + system, /proc)
per answered query, with how busy the two CPUs were with other processes
and how much the hypervisor stole: the CPU figure is the one that does not
depend on how hard dnsperf can push.

It is a script, not a test: nothing fails because the machine is slow.

    python bench/udp_batch.py [--size 10000] [--rounds 3] [--duration 10]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.cli import parse_args as bench_args  # noqa: E402
from benchlib.coredns import REPO, repo_env, write_config  # noqa: E402
from benchlib.dataset import generate  # noqa: E402
from benchlib.dnsperf import run_dnsperf  # noqa: E402
from benchlib.probe import wait_first_answer  # noqa: E402
from benchlib.proc import Proc, free_port  # noqa: E402
from benchlib.tools import Tools  # noqa: E402

# The server, with the UDP path chosen before anything starts.
LAUNCH = """
import sys
from coredns_py.net import udp
udp.BATCHED = sys.argv.pop(1) == "batched"
from coredns_py.cli import main
sys.exit(main(sys.argv[1:]))
"""

VARIANTS = ("per-datagram", "batched")


def start(variant: str, data, config: Path, folder: Path, tools: Tools, python: str) -> tuple:
    port = free_port()
    env = repo_env()
    env["XDG_STATE_HOME"] = str(folder / f"state-{variant}")
    cmd = [python, "-c", LAUNCH, variant, "serve", "--manifests", str(data.explicit),
           "--listen", f"127.0.0.1:{port}", "--config", str(config), "--http", "",
           "--lameduck", "0"]
    proc = Proc(variant, tools.pin(cmd, tools.server_cpu), folder / f"{variant}.log",
                env=env, cwd=REPO)
    st = wait_first_answer(proc, port, data.probe.fqdn, data.probe.ip, 120)
    if st["first_answer_s"] is None:
        proc.stop()
        raise SystemExit(f"{variant} did not answer:\n{proc.tail()}")
    return proc, port


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--quiet-wait", type=float, default=15.0)
    opts = p.parse_args()
    args = bench_args(["--sizes", str(opts.size)])
    tools = Tools(args.server_cpu, args.client_cpu)
    if not tools.dnsperf:
        print("bench: dnsperf not found (apt-get install dnsperf)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="coredns-py-udp-batch-"))
    servers = {}
    try:
        config = workdir / "coredns_py.yaml"
        problem = write_config(config, args.python)
        if problem:
            print(f"bench: {problem}", file=sys.stderr)
            return 2
        data = generate(args, opts.size, workdir)
        ports = {}
        for v in VARIANTS:
            servers[v], ports[v] = start(v, data, config, workdir, tools, args.python)
        for v in VARIANTS:  # one pass: every answer prepared
            run_dnsperf(tools, servers[v], ports[v], data.qfile, 120, "udp", args.clients,
                        args.outstanding, None, workdir, args.query_timeout, passes=1)
        runs: dict = {v: [] for v in VARIANTS}
        for r in range(opts.rounds):
            for v in (VARIANTS if r % 2 == 0 else reversed(VARIANTS)):
                perf = run_dnsperf(tools, servers[v], ports[v], data.qfile, opts.duration, "udp",
                                   args.clients, args.outstanding, None, workdir,
                                   args.query_timeout, opts.quiet_wait)
                runs[v].append(perf)
                print(f"round {r + 1} {v:13} {perf.qps:8.0f} q/s  "
                      f"{perf.server_us_per_query or 0:5.2f} us/query  loss {perf.loss:.2%}  "
                      f"others busy {perf.others_server_cpu or 0:.0%}/"
                      f"{perf.others_client_cpu or 0:.0%}  stolen "
                      f"{perf.server_cpu_stolen or 0:.0%}/{perf.client_cpu_stolen or 0:.0%}"
                      + (f"  [{perf.error}]" if perf.error else ""), flush=True)
        print(f"\nN = {opts.size}, UDP, {opts.rounds} rounds of {opts.duration:g} s, "
              f"medians (others busy and stolen: the worst round, server/dnsperf CPU)")
        print(f"{'variant':13} {'q/s':>8} {'us/query':>9} {'others busy':>12} {'stolen':>8}")
        for v in VARIANTS:
            rs = runs[v]
            busy = max(max(x.others_server_cpu or 0, x.others_client_cpu or 0) for x in rs)
            stolen = max(max(x.server_cpu_stolen or 0, x.client_cpu_stolen or 0) for x in rs)
            print(f"{v:13} {statistics.median(x.qps for x in rs):8.0f} "
                  f"{statistics.median(x.server_us_per_query or 0 for x in rs):9.2f} "
                  f"{busy:12.0%} {stolen:8.0%}")
    finally:
        for proc in servers.values():
            proc.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
