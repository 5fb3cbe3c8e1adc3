"""A Corefile as the configuration: the Caddyfile syntax (quotes, comments,
env vars, snippets, imports), each plugin into the config, errors naming the
line, and the stock Corefiles of kubeadm and k3s read with `check` and
served with `serve --corefile`, asked with dig."""

from __future__ import annotations

import re
import sys
import urllib.request
from pathlib import Path

import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

from coredns_py import corefile
from coredns_py.corefile import blocks, lexer
from coredns_py.errors import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "forward"))
from forward_helpers import running_dnsmasq  # noqa: E402
from conftest import (ZONES, ServerProcess, free_port, run_cli, wait_until,  # noqa: E402
                      write_atomic)

HERE = Path(__file__).resolve().parent / "fixtures" / "corefile"
KUBEADM = HERE / "kubeadm.Corefile"
K3S = HERE / "k3s.Corefile"


def load_text(tmp_path: Path, text: str, name: str = "Corefile") -> corefile.Loaded:
    path = tmp_path / name
    path.write_text(text)
    return corefile.load(path)


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as err:
        load_text(tmp_path, text)
    return str(err.value)


KUBE = "kubernetes cluster.local in-addr.arpa ip6.arpa"


# --- syntax ---------------------------------------------------------------------------------


def test_words_quotes_comments_and_env():
    toks = lexer.tokenize('a "b c" d\\"e # comment\n"multi\nline" {$HOME_X} {$UNSET:dflt}\n'
                          'f{%WIN%}g "esc\\"aped"\n', "F", env={"HOME_X": "hx", "WIN": "w"})
    assert [t.text for t in toks] == ["a", "b c", 'd\\"e', "multi\nline", "hx", "dflt", "fwg",
                                      'esc"aped']
    assert [t.first for t in toks] == [True, False, False, True, False, False, True, False]
    assert [t.line for t in toks] == [1, 1, 1, 2, 3, 3, 4, 4]
    with pytest.raises(ConfigError, match="F:1: a quoted word is not closed"):
        lexer.tokenize('a "b', "F")


def test_blocks_keys_and_one_line_options(tmp_path):
    parsed = blocks.parse_text(".:1053, corp.example:1053 {\n  health { lameduck 3s }\n"
                               "  forward . 10.0.0.1 {\n    policy sequential\n  }\n}\n")
    (block,) = parsed.blocks
    assert [k.text for k in block.keys] == [".:1053", "corp.example:1053"]
    health, fwd = block.lines
    assert [(o.name.text, o.words()) for o in health.block] == [("lameduck", ["3s"])]
    assert fwd.words() == [".", "10.0.0.1"] and fwd.block[0].words() == ["sequential"]
    for text, needle in [(".:53 {\n  errors\n", "never closed"),
                         ("}\n", "unexpected '}'"), (".:53\nerrors\n", "expected '{'"),
                         (".:53 {\n  health {\n    x {\n    }\n  }\n}\n", "take no block")]:
        with pytest.raises(ConfigError, match=needle):
            blocks.parse_text(text)


def test_snippets_and_imports(tmp_path):
    (tmp_path / "custom").mkdir()
    (tmp_path / "custom" / "a.server").write_text(
        "corp.example:53 {\n  forward . 10.8.0.1\n}\n")
    (tmp_path / "custom" / "b.override").write_text("log\n")
    (tmp_path / "empty").mkdir()
    loaded = load_text(tmp_path, f"""(common) {{
    errors
    cache 30
}}
.:53 {{
    import common
    {KUBE}
    forward . 10.0.0.1
    import custom/*.override
    import empty/*.override
}}
import custom/*.server
""")
    cfg = loaded.config
    assert cfg.log_queries and cfg.cache_max_ttl == 30
    assert {f.domain: f.to for f in cfg.forward} == {".": ("10.0.0.1:53",),
                                                      "corp.example": ("10.8.0.1:53",)}
    assert [p.name for p in loaded.files] == ["Corefile", "b.override", "a.server"]
    # the stub block has no cache: its answers are not cached
    assert {f.domain: f.cache for f in cfg.forward} == {".": True, "corp.example": False}
    assert "import missing.conf: no such file or snippet" in error_of(
        tmp_path, ".:53 {\n  import missing.conf\n}\n")
    (tmp_path / "self").write_text("import self\n")
    assert "nest more than" in error_of(tmp_path, "import self\n")


# --- plugins --------------------------------------------------------------------------------


def test_kubeadm_stock_corefile():
    loaded = corefile.load(KUBEADM)
    cfg = loaded.config
    assert (cfg.zone, cfg.ttl, cfg.pods) == ("cluster.local", 30, "insecure")
    assert cfg.listen == ("127.0.0.1:53",)
    (root,) = cfg.forward
    assert (root.domain, root.to, root.policy, root.cache) == (
        ".", ("/etc/resolv.conf",), "random", True)  # CoreDNS's default policy
    assert cfg.upstream == () and cfg.cache_max_ttl == 30
    assert (cfg.health_listen, cfg.ready_listen, cfg.metrics_listen) == (
        "0.0.0.0:8080", "0.0.0.0:8181", "0.0.0.0:9153")
    assert cfg.lameduck == 5.0 and cfg.reload == 30
    ignored = "\n".join(loaded.not_acted_on)
    assert f"{KUBEADM}:14: forward max_concurrent 1000" in ignored
    assert f"{KUBEADM}:17: loop" in ignored
    assert cfg.loadbalance == "round_robin"
    assert cfg.transfer_to == ()  # no transfer directive: nobody, as CoreDNS


def test_k3s_stock_corefile_reads_its_imports(tmp_path):
    node = tmp_path / "etc-coredns"
    (node / "custom").mkdir(parents=True)
    (node / "NodeHosts").write_text("172.16.10.100 k3s-node-1\n")
    (node / "custom" / "stub.server").write_text("corp.example:53 {\n  forward . 10.8.0.1\n}\n")
    text = K3S.read_text().replace("/etc/coredns/", f"{node}/")
    cfg = load_text(tmp_path, text).config
    (hosts,) = cfg.hosts
    assert hosts.files == (str(node / "NodeHosts"),) and hosts.ttl == 60
    assert hosts.reload == 15 and hosts.fallthrough == (".",) and hosts.zones == (".",)
    assert {f.domain for f in cfg.forward} == {".", "corp.example"}
    assert cfg.loadbalance == "round_robin"


def test_options_map_to_config(tmp_path):
    (tmp_path / "ca.pem").write_text("")
    cfg = load_text(tmp_path, f"""
.:5300 {{
    bind 127.0.0.1 ::1
    {KUBE} {{
        pods verified
        endpoint_pod_names
        ignore empty_service
        endpoint https://10.0.0.1:6443
    }}
    forward . 10.0.0.1 tls://9.9.9.9 {{
        policy round_robin
        health_check 2s
        max_fails 0
        force_tcp
        tls_servername dns.quad9.net
        except internal.example
    }}
    cache 60 {{
        success 5000
        denial 1000
        prefetch 5 10m 20%
        serve_stale 2h verify
    }}
    hosts extra.hosts example.internal {{
        192.0.2.7 inline.example.internal
        no_reverse
    }}
    health 127.0.0.1:18080
    reload 5s
}}
""").config
    assert cfg.listen == ("127.0.0.1:5300", "[::1]:5300")
    assert (cfg.pods, cfg.endpoint_pod_names, cfg.ignore_empty_service) == ("verified", True,
                                                                            True)
    (root,) = [f for f in cfg.forward if f.domain == "."]
    assert root.to == ("10.0.0.1:53", "tls://9.9.9.9:853")
    assert (root.policy, root.health_check, root.max_fails, root.force_tcp,
            root.tls_servername, root.except_domains) == (
        "round_robin", 2.0, 0, True, "dns.quad9.net", ("internal.example",))
    assert (cfg.cache_size, cfg.cache_max_ttl, cfg.cache_prefetch, cfg.cache_prefetch_window,
            cfg.cache_prefetch_percentage, cfg.cache_serve_stale,
            cfg.cache_serve_stale_mode) == (6000, 60, 5, 600, 20, 7200, "verify")
    (hosts,) = cfg.hosts
    assert hosts.files == (str(tmp_path / "extra.hosts"),)
    assert hosts.zones == ("example.internal.",) and hosts.no_reverse
    assert hosts.entries == ("192.0.2.7 inline.example.internal",)
    assert cfg.health_listen == "127.0.0.1:18080" and cfg.reload == 5


@pytest.mark.parametrize("body, needle", [
    ("whoami", ":4: unknown or unsupported directive 'whoami'"),
    ("forward . 10.0.0.1 {\n next NXDOMAIN\n }", ":5: forward option 'next'"),
    ("forward . 10.0.0.1 {\n policy fastest\n }", "policy: one of"),
    ("forward . 10.0.0.1 {\n tls_servername x\n }", "no upstream is tls://"),
    ("log . {combined}", ":4: log with names, a format or classes"),
    ("cache 30 example.org", "cache for some zones of a block only"),
    ("cache {\n keepttl\n }", ":5: cache option 'keepttl'"),
    ("cache {\n disable success example.org\n }", "cache disable for example.org"),
    ("hosts {\n not-an-ip x\n }", "'not-an-ip' is not an IP address"),
    ("health {\n lameduck\n }", "only `lameduck DURATION`"),
    ("reload soon", "'soon' is not a duration"),
    ("bind eth0", "interface names are not implemented"),
])
def test_what_is_not_implemented_is_an_error_naming_the_line(tmp_path, body, needle):
    text = f"\n.:53 {{\n    {KUBE}\n    {body}\n}}\n"
    msg = error_of(tmp_path, text)
    assert needle in msg and str(tmp_path / "Corefile") in msg, msg


@pytest.mark.parametrize("text, needle", [
    (".:53 {\n errors\n}\n", "no kubernetes directive"),
    (f".:53 {{\n {KUBE} {{\n  noendpoints\n }}\n}}\n", ":3: kubernetes option 'noendpoints'"),
    (f".:53 {{\n {KUBE} {{\n  fallthrough\n }}\n}}\n", "fallthrough for names of the cluster"),
    (f".:53 {{\n {KUBE}\n}}\n.:5301 {{\n forward . 10.0.0.1\n}}\n", "one port"),
    (f"tls://.:853 {{\n {KUBE}\n}}\n", "tls:// servers are not implemented"),
    (f".:53 {{\n {KUBE}\n}}\n.:53 {{\n errors\n}}\n", "zone . has two server blocks"),
    (f".:53 {{\n {KUBE}\n}}\ncorp.example {{\n forward other.example 10.0.0.1\n}}\n",
     ":5: forward other.example: not under this block's zones"),
    (f".:53 {{\n {KUBE}\n cache 30\n}}\nx.example {{\n cache 60\n}}\n", "cache settings differ"),
])
def test_server_level_errors(tmp_path, text, needle):
    msg = error_of(tmp_path, text)
    assert needle in msg, msg


def test_second_part_plugins_map_to_the_config(tmp_path):
    cfg = load_text(tmp_path, """.:53 {
    rewrite name api.myapp.test api.default.svc.cluster.local
    kubernetes cluster.local example.internal in-addr.arpa ip6.arpa {
        namespaces default kube-system
        labels app=web
    }
    k8s_external example.com
    transfer {
        to *
    }
    loadbalance
}
""").config
    assert (cfg.rewrite[0].source, cfg.rewrite[0].target) == (
        "api.myapp.test.", "api.default.svc.cluster.local.")
    assert cfg.extra_zones == ("example.internal",)
    assert (cfg.namespaces, cfg.labels) == (("default", "kube-system"), "app=web")
    assert cfg.k8s_external[0].zones == ("example.com",)
    assert (cfg.transfer_to, cfg.transfer_zones) == (("0.0.0.0/0", "::/0"), ())
    assert cfg.loadbalance == "round_robin"


# --- the commands -----------------------------------------------------------------------------


def test_check_lists_what_is_not_acted_on(state_home):
    res = run_cli("check", "--corefile", KUBEADM, state_home=state_home)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{KUBEADM}:14: forward max_concurrent 1000 (" in res.stdout
    assert "accepted, not acted on" in res.stdout
    assert "not implemented" not in res.stdout


def test_config_and_corefile_together_is_a_usage_error(state_home, tmp_path):
    res = run_cli("check", "--corefile", KUBEADM, "--config", tmp_path / "x.yaml",
                  state_home=state_home)
    assert res.returncode == 2 and "give one of them" in res.stderr


def test_get_and_env_read_the_corefile(state_home, tmp_path):
    path = tmp_path / "Corefile"
    path.write_text(".:53 {\n    kubernetes example.test in-addr.arpa ip6.arpa\n}\n")
    res = run_cli("resolv-conf", "--corefile", path, "-n", "default", "--nameserver",
                  "10.96.0.10", state_home=state_home)
    assert res.returncode == 0 and "search default.svc.example.test" in res.stdout
    res = run_cli("get", "svc", "--corefile", path, state_home=state_home)
    assert res.returncode == 0 and "kubernetes" in res.stdout
    res = run_cli("env", "-n", "default", "--corefile", path, state_home=state_home)
    assert res.returncode == 0 and "KUBERNETES_SERVICE_HOST=10.96.0.1" in res.stdout


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    yield from running_dnsmasq(tmp_path_factory, local=("example.test", "corp.example"))


def serving(path: Path, state_home: Path, logdir: Path, *args: str) -> ServerProcess:
    return ServerProcess(state_home=state_home, hermetic=False, logdir=logdir,
                         args=["--corefile", str(path), *args]).start()


def zone_questions(reference: ServerProcess) -> list[tuple[str, str]]:
    """Every name the bundled zones/ answer, each with the types worth asking:
    Services (A, AAAA, SRV, TXT, a name below), their named ports, the
    endpoints their SRV answers name, the PTR of every address, the apex,
    the namespaces and names that do not exist.  The Services are read in
    process; the endpoint names and addresses come from ``reference``."""
    from coredns_py.cluster import fill
    from coredns_py.config import Config
    from coredns_py.source.folder import ManifestSource
    from coredns_py.zone import snapshot
    loaded = ManifestSource(ZONES).load()
    snap = snapshot.build(fill.build(loaded.objects, Config(), None), Config(), 1)
    asks = [("cluster.local.", "SOA"), ("cluster.local.", "NS"), ("cluster.local.", "A"),
            ("ns.dns.cluster.local.", "A"), ("dns-version.cluster.local.", "TXT"),
            ("svc.cluster.local.", "A"), ("nope.svc.cluster.local.", "A"),
            ("nope.cluster.local.", "A")]
    for ns in sorted(snap.namespaces):
        asks.append((f"{ns}.svc.cluster.local.", "A"))
    for (ns, name), view in sorted(snap.services.items()):
        base = f"{name}.{ns}.svc.cluster.local."
        asks += [(base, t) for t in ("A", "AAAA", "SRV", "TXT", "CNAME")]
        asks.append((f"nope.{base}", "A"))
        asks += [(f"_{p.name}._{p.protocol}.{base}", "SRV") for p in view.ports if p.name]
    more = []
    for name, rdtype in asks:
        reply = reference.query(name, rdtype, tcp=True)
        for rs in reply.answer:
            for rd in rs:
                if rs.rdtype == dns.rdatatype.SRV:
                    more += [(rd.target.to_text(), "A"), (rd.target.to_text(), "AAAA")]
                elif rs.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA) and \
                        name.endswith(".svc.cluster.local."):  # (not ns.dns: upstream's)
                    more.append((dns.reversename.from_address(rd.address).to_text(), "PTR"))
    return asks + sorted(set(more))


def comparable(msg) -> tuple:
    """What two servers with other ttl settings must agree on: the rcode and
    every record but TTLs (a SOA by its names), each section as a sorted
    list (the order is loadbalance's)."""
    def section(rrsets):
        out = []
        for rs in rrsets:
            for rd in rs:
                text = (f"{rd.mname} {rd.rname}" if rs.rdtype == dns.rdatatype.SOA
                        else rd.to_text())
                out.append((rs.name.to_text().lower(), rs.rdtype, text))
        return sorted(out)
    return msg.rcode(), section(msg.answer), section(msg.authority), section(msg.additional)


def test_kubeadm_corefile_serves_the_bundled_zones_like_the_default_config(
        tmp_path, state_home, upstream, zones_server):
    """kubeadm's Corefile, unchanged but for `bind 127.0.0.1` and its
    upstream, answers every name of the bundled zones/ as the default config
    does, but for ttl 30, pods insecure and the order loadbalance shuffles;
    --listen and --http win over its bind, port and addresses."""
    text = KUBEADM.read_text().replace("/etc/resolv.conf", upstream.address)
    assert "    loadbalance\n" in text
    path = tmp_path / "Corefile"
    path.write_text(text)
    srv = serving(path, state_home, tmp_path / "log")
    try:
        questions = zone_questions(zones_server)
        assert len(questions) > 150
        for name, rdtype in questions:
            ours, theirs = srv.query(name, rdtype, tcp=True), zones_server.query(name, rdtype,
                                                                                 tcp=True)
            assert comparable(ours) == comparable(theirs), (name, rdtype)
            assert all(rs.ttl == (28800 if rs.rdtype == dns.rdatatype.TXT else 30)
                       for rs in ours.answer), (name, rdtype)
        # pods insecure: any IP-shaped name in an existing namespace
        assert srv.rrset_values("10-244-9-9.default.pod.cluster.local.") == ["10.244.9.9"]
        assert srv.dig_short("pypi.example.test") == ["192.0.2.10"]  # forward . to dnsmasq
        # loadbalance shuffles forwarded answers too (150 addresses)
        orders = {tuple(srv.dig_short("big.example.test", "+tcp")) for _ in range(3)}
        assert len(orders) > 1 and all(len(o) == 150 for o in orders)
        assert srv.port != 53 and srv.host == "127.0.0.1"  # --listen won over bind and :53
    finally:
        srv.stop()


def test_k3s_corefile_with_node_hosts_stub_domains_and_its_own_http_listeners(
        tmp_path, state_home, upstream):
    node = tmp_path / "etc-coredns"
    (node / "custom").mkdir(parents=True)
    (node / "NodeHosts").write_text("172.16.10.100 k3s-node-1\n")
    (node / "custom" / "corp.server").write_text(
        f"corp.example:53 {{\n    forward . {upstream.address}\n}}\n")
    (node / "custom" / "http.override").write_text("")
    ports = {p: free_port() for p in ("health", "ready", "prometheus")}
    text = (K3S.read_text()
            .replace("/etc/coredns/", f"{node}/").replace("/etc/resolv.conf", upstream.address)
            .replace("    health\n", f"    health 127.0.0.1:{ports['health']}\n")
            .replace("    ready\n", f"    ready 127.0.0.1:{ports['ready']}\n")
            .replace("prometheus :9153", f"prometheus 127.0.0.1:{ports['prometheus']}"))
    path = tmp_path / "Corefile"
    path.write_text(text)
    srv = ServerProcess(state_home=state_home, hermetic=False, logdir=tmp_path / "log",
                        args=["--corefile", str(path), "--lameduck", "0"])
    srv.args = [a for a in srv.args if a != "--http" and a != ""]  # its own listeners
    srv.start()
    try:
        assert srv.dig_short("k3s-node-1") == ["172.16.10.100"]
        assert srv.dig_short("-x", "172.16.10.100") == ["k3s-node-1."]
        assert srv.dig_short("kubernetes.default.svc.cluster.local") == ["10.96.0.1"]
        # a stub domain from an imported .server file
        assert srv.query("one.corp.example.").rcode() == dns.rcode.NXDOMAIN
        assert upstream.settle("one.corp.example", "A", 1) == 1
        # NodeHosts is reloaded when the node list changes (reload 15s in
        # the stock file: the test does not wait that long, it checks the log)
        # health, ready and prometheus each on its own address, its own path
        for plugin, path_, body in [("health", "/health", "OK"), ("ready", "/ready", "OK"),
                                    ("prometheus", "/metrics", "coredns_dns_requests_total")]:
            url = f"http://127.0.0.1:{ports[plugin]}{path_}"
            got = wait_until(lambda: urllib.request.urlopen(url, timeout=2).read().decode(),
                             timeout=10, message=url)
            assert body in got
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(f"http://127.0.0.1:{ports[plugin]}/", timeout=2)
    finally:
        srv.stop()


def test_a_changed_corefile_is_reloaded(tmp_path, state_home):
    path = tmp_path / "Corefile"
    imported = tmp_path / "ttl.conf"
    imported.write_text("ttl 10\n")
    path.write_text(".:53 {\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n"
                    "        import ttl.conf\n    }\n    reload 1s\n}\n")
    srv = serving(path, state_home, tmp_path / "log", "--http", "")
    try:
        name = "kubernetes.default.svc.cluster.local."
        assert srv.query(name).answer[0].ttl == 10
        write_atomic(imported, "ttl 20\n")  # an imported file counts too
        wait_until(lambda: srv.query(name).answer[0].ttl == 20, timeout=10,
                   message="ttl 20 from the imported file")
        write_atomic(path, path.read_text().replace("reload 1s", "reload 1s\n    whoami"))
        srv.wait_stderr(r"Corefile:6: unknown or unsupported directive 'whoami'.*still "
                        r"running with the previous config", timeout=10)
        assert srv.query(name).answer[0].ttl == 20
        assert re.search(r"reload", srv.stderr)
    finally:
        srv.stop()
