"""The end of a run: the targets of the issue (reported, never asserted) and the summary."""

from __future__ import annotations

from benchlib.console import fmt, log

TARGETS = {
    "udp_ratio_10k": 0.5,
    "p99_ms": 1.0,
    "tcp_over_udp": 0.3,
    "startup_s": {10_000: 2.0, 100_000: 15.0},
    "rss_mb": {10_000: 100.0, 100_000: 800.0},
    "reload_ms_10k": 300.0,
}


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
        h = r.get("several_hosts")
        if h and "changes" in h:
            c = h["changes"]
            log(f"  several hosts: first publish {fmt(h.get('first_publish_s'), '.2f')} s; "
                f"a replica answers {fmt(h.get('replica_ready_s'), '.2f')} s after start; "
                f"a change answered by all 3 replicas: median {fmt(c['all_median_ms'], '.0f')}"
                f" ms, p99 {fmt(c['all_p99_ms'], '.0f')} ms over {c['count']}; a replica over "
                f"UDP {fmt(h.get('udp', {}).get('qps'), '.0f')} q/s")
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
