"""The end of a run: the targets of the issue (reported, never asserted) and the summary."""

from __future__ import annotations

from benchlib.console import fmt, log

TARGETS = {
    "udp_ratio_10k": 0.8,  # warm: our UDP rate over knotd's, same run
    "cpu_ratio_10k": 1.5,  # warm: our server CPU per answered query over knotd's
    "cold_edit_ratio_10k": 0.6,  # cold and edit rows: rate over knotd's
    "cold_edit_p99_10k": 2.0,  # cold and edit rows: p99 at half load over knotd's
    "tcp_over_udp": 0.3,
    "startup_s": {10_000: 1.0, 100_000: 5.0},  # first start, no cache of any kind
    "restart_s": {100_000: 2.0},  # a restart that finds the parse cache and state
    "rss_mb": {10_000: 80.0, 100_000: 600.0},
    "reload_ms": {10_000: 300.0, 100_000: 300.0},
}


def _ratio(a, b):
    return a / b if a is not None and b else None


def check_targets(results: list) -> list:
    """(target, measured, met?) lines; not asserted, only reported."""
    lines = []
    by_n = {r["n"]: r for r in results}

    def add(text, value, ok):
        lines.append({"target": text, "measured": value, "met": ok})

    r10 = by_n.get(10_000)
    udp = (r10 or {}).get("load", {}).get("summary", {}).get("udp", {})
    if udp.get("ratio_median") is not None:
        ratio = udp["ratio_median"]
        add("warm UDP throughput at N=10k >= 0.8x knotd", f"{ratio:.2f}x",
            ratio >= TARGETS["udp_ratio_10k"])
    ours = udp.get("coredns-py", {}).get("server_us_per_query_median")
    theirs = udp.get("knotd", {}).get("server_us_per_query_median")
    cpu = _ratio(ours, theirs)
    if cpu is not None:
        add("warm server CPU per query at N=10k <= 1.5x knotd's",
            f"{cpu:.2f}x ({ours:.1f} vs {theirs:.1f} us)", cpu <= TARGETS["cpu_ratio_10k"])
    knot_qps = udp.get("knotd", {}).get("qps_median")
    knot_p99 = udp.get("knotd", {}).get("p99_ms_median")
    cold = (r10 or {}).get("cold", {})
    if cold.get("coredns-py", {}).get("saturation"):
        c = cold["coredns-py"]
        k = cold.get("knotd", {})
        ratio = _ratio(c["saturation"]["qps"], k.get("saturation", {}).get("qps"))
        if ratio is not None:
            add("cold UDP throughput at N=10k >= 0.6x knotd", f"{ratio:.2f}x",
                ratio >= TARGETS["cold_edit_ratio_10k"])
        p99 = _ratio(c.get("latency", {}).get("p99_ms"), k.get("latency", {}).get("p99_ms"))
        if p99 is not None:
            add("cold p99 at half load at N=10k <= 2x knotd's", f"{p99:.2f}x "
                f"({c['latency']['p99_ms']:.2f} vs {k['latency']['p99_ms']:.2f} ms)",
                p99 <= TARGETS["cold_edit_p99_10k"])
    edit = (r10 or {}).get("edit", {})
    if edit.get("saturation"):
        ratio = _ratio(edit["saturation"]["qps"], knot_qps)
        if ratio is not None:
            add("edit-every-second UDP throughput at N=10k >= 0.6x knotd (warm)",
                f"{ratio:.2f}x", ratio >= TARGETS["cold_edit_ratio_10k"])
        p99 = _ratio(edit.get("latency", {}).get("p99_ms"), knot_p99)
        if p99 is not None:
            add("edit-every-second p99 at half load at N=10k <= 2x knotd's (warm)",
                f"{p99:.2f}x ({edit['latency']['p99_ms']:.2f} vs {knot_p99:.2f} ms)",
                p99 <= TARGETS["cold_edit_p99_10k"])
    for r in results:
        s = r.get("load", {}).get("summary", {})
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
            add(f"first start (no cache) N={r['n']} within {limit:g} s",
                f"{v:.2f} s" if v is not None else f"no answer after {st.get('gave_up_s')} s",
                v is not None and v <= limit)
        limit = TARGETS["restart_s"].get(r["n"])
        warm = r.get("allocated", {}).get("warm", {}).get("first_answer_s")
        if limit is not None and warm is not None:
            add(f"restart (parse cache, state) N={r['n']} within {limit:g} s", f"{warm:.2f} s",
                warm <= limit)
        limit = TARGETS["rss_mb"].get(r["n"])
        if limit is not None and r.get("memory", {}).get("rss_mb") is not None:
            v = r["memory"]["rss_mb"]
            after = "after UDP and TCP load" if r["memory"].get("after_load") else "after start-up"
            add(f"memory N={r['n']} under {limit:g} MB ({after})", f"{v:.0f} MB", v < limit)
        limit = TARGETS["reload_ms"].get(r["n"])
        if limit is not None and r.get("reload", {}).get("median_ms") is not None:
            v = r["reload"]["median_ms"]
            add(f"reload of a one-file change, N={r['n']}, median within {limit:g} ms",
                f"{v:.0f} ms", v <= limit)
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
                f"{'stolen':>7} {'us/q':>7}"
                "   (p50/p99 at half the rate; us/q: server CPU per answered query; waited: the most either process spent "
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
                            f"{fmt(x.get('stolen_max'), '7.0%')} "
                            f"{fmt(x.get('server_us_per_query_median'), '7.1f')}")
                if s.get("ratio_per_round"):
                    log(f"  {proto:5} coredns-py/knotd per round: "
                        + ", ".join(fmt(v, ".4f") for v in s["ratio_per_round"])
                        + f"; median {fmt(s['ratio_median'], '.4f')}")
        for row, figures in (("cold", r.get("cold", {})), ("edit", r.get("edit", {}))):
            entries = figures.items() if row == "cold" else [("coredns-py", figures)]
            for name, f in entries:
                if not f or "saturation" not in f:
                    continue
                sat, lat = f["saturation"], f.get("latency", {})
                loss = sat["lost"] / max(1, sat["sent"]) * 100
                log(f"  {row:5} {name:10} {sat['qps']:12.0f} {loss:5.2f}% "
                    f"{fmt(lat.get('p50_ms'), '7.3f')} {fmt(lat.get('p99_ms'), '7.3f')} "
                    f"{fmt(sat.get('server_cpu'), '7.0%')} {fmt(sat.get('client_cpu'), '7.0%')} "
                    f"{fmt(sat.get('server_waited'), '7.0%')} "
                    f"{fmt(sat.get('server_cpu_stolen'), '7.0%')} "
                    f"{fmt(sat.get('server_us_per_query'), '7.1f')}  (UDP, "
                    + ("right after a fresh start)" if row == "cold" else
                       f"{sat.get('edits')} edits in {sat.get('seconds', 0):.0f} s)"))
    if targets:
        log("\n=== targets (reported, not asserted) ===")
        for t in targets:
            log(f"  [{'met' if t['met'] else 'MISSED'}] {t['target']}: {t['measured']}")
