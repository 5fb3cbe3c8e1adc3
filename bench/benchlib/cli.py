"""The command line: options, then each size in turn, the summary and the JSON."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from benchlib.console import log
from benchlib.coredns import serve_extra, write_config
from benchlib.meta import collect, print_header
from benchlib.profiling import run_profile
from benchlib.report import check_targets, print_summary
from benchlib.size import run_size
from benchlib.tools import INSTALL_HINT, Tools


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
    p.add_argument("--cold-duration", type=float, default=None,
                   help="seconds of dnsperf right after a fresh start (cold row); none: "
                        "--duration")
    p.add_argument("--skip-cold", action="store_true", help="no cold row")
    p.add_argument("--edit-interval", type=float, default=1.0,
                   help="seconds between two manifest edits during the edit row")
    p.add_argument("--skip-edit", action="store_true", help="no edit row")
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
    p.add_argument("--several-hosts", action="store_true",
                   help="also run etcd, one publisher and three replicas (serve --etcd): "
                        "change-to-answer on every replica, a replica's start-up and UDP "
                        "throughput (needs etcd: apt-get install etcd-server)")
    p.add_argument("--hosts-changes", type=int, default=100,
                   help="one-file changes timed on the replicas (--several-hosts)")
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
    if args.cold_duration is None:
        args.cold_duration = args.duration
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
    meta = collect(args, argv, tools, config, workdir)
    print_header(meta, args, tools, config, workdir)
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
