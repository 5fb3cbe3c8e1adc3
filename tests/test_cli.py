"""The ``coredns-py`` command line as a user meets it: exit codes, one-line
errors (never a traceback), ``check`` reports, ``get`` tables that agree
with what ``serve`` answers, and the installed console script."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, ZONES, free_port, run_cli, serve_supports
from helpers.manifests import service, write

PROBLEMS = FIXTURES / "check-problems"


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{text}"
    return lines[0]


def assert_clean_failure(res: subprocess.CompletedProcess) -> str:
    """Non-zero exit, nothing on stdout, one line on stderr, no traceback."""
    assert res.returncode != 0, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    assert res.stdout.strip() == "", res.stdout
    return one_line(res.stderr)


def serve(*args: str, state_home: Path) -> subprocess.CompletedProcess:
    """Run ``serve`` expecting it to fail fast; a server that starts instead is
    killed by the timeout, which fails the test."""
    try:
        return run_cli("serve", *args, state_home=state_home, timeout=30)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"serve {' '.join(args)} kept running instead of failing; "
                             f"stderr:\n{exc.stderr}") from None


# --- check ------------------------------------------------------------------------------


def test_check_bundled_zones_ok(state_home):
    res = run_cli("check", state_home=state_home)
    assert res.returncode == 0, res.stdout + res.stderr
    ok, ignored = res.stdout.splitlines()
    assert re.fullmatch(r"ok: \d+ files, \d+ namespaces, \d+ services, \d+ endpoint slices, "
                        r"\d+ pods", ok), ok
    # The kubectl dump in 09-kubectl-dump holds a ConfigMap.
    assert ignored == "ignored 1 object of kinds we do not serve: ConfigMap 1"
    assert res.stderr == ""
    # check does not allocate for real: no state is written.
    assert not (state_home / "coredns_py").exists()


# (file, line, object, field, words of the message) for every problem in PROBLEMS.
EXPECTED_PROBLEMS = [
    ("02-bad-yaml.yaml", 8, None, None, "invalid YAML"),
    ("03-port.yaml", 6, "Service shop/bigport", "spec.ports[0].port", "70000"),
    ("04-type.yaml", 1, "Service default/oddtype", "spec.type", "Balancer"),
    ("05-slice.yaml", 12, "EndpointSlice default/manual-abc", "endpoints[1].addresses[0]",
     "10.244.3.300"),
    ("07-dup-second.yaml", 2, "Service default/twice", None, "06-dup-first.yaml"),
]


def _problem_lines(text: str, fname: str) -> list[str]:
    return [line for line in text.splitlines() if f"{PROBLEMS / fname}:" in line]


def test_check_reports_every_problem_with_file_line_object_field(state_home):
    res = run_cli("check", "--manifests", PROBLEMS, state_home=state_home)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    out = res.stdout + res.stderr
    for fname, line, obj, field, words in EXPECTED_PROBLEMS:
        found = _problem_lines(out, fname)
        assert found, f"no problem reported for {fname}:\n{out}"
        text = found[0]
        assert f"{PROBLEMS / fname}:{line}:" in text, text
        if obj:
            assert obj in text, text
        if field:
            assert f"field {field}" in text, text
        assert words in text, text
    # A kind the server does not serve (ConfigMap) and a valid Service are fine.
    assert "08-configmap.yaml" not in out and "01-good.yaml" not in out
    assert re.search(rf"\b{len(EXPECTED_PROBLEMS)} problems\b", out), out


def test_check_reports_each_problem_once(state_home):
    res = run_cli("check", "--manifests", PROBLEMS, state_home=state_home)
    out = res.stdout + res.stderr
    for fname, *_ in EXPECTED_PROBLEMS:
        assert len(_problem_lines(out, fname)) == 1, out


def test_check_valid_unknown_kind_alone_is_ok(tmp_path, state_home):
    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copy(PROBLEMS / "08-configmap.yaml", folder)
    shutil.copy(PROBLEMS / "01-good.yaml", folder)
    res = run_cli("check", "--manifests", folder, state_home=state_home)
    assert res.returncode == 0, res.stdout + res.stderr
    ok, ignored = res.stdout.splitlines()
    assert ok.startswith("ok: 2 files,")
    assert ignored == "ignored 1 object of kinds we do not serve: ConfigMap 1"


# --- serve: failures a user can cause ---------------------------------------------------------


def _occupy(kind: str) -> tuple[socket.socket, int]:
    """Hold 127.0.0.1:PORT for UDP or TCP (listening), as another program would."""
    port = free_port()
    if kind == "udp":
        blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        blocker.bind(("127.0.0.1", port))
    else:
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
    return blocker, port


def _http_off() -> list[str]:
    return ["--http", ""] if serve_supports("--http") else []


@pytest.mark.parametrize("kind", ["udp", "tcp"])
def test_serve_port_in_use(state_home, kind):
    blocker, port = _occupy(kind)
    with blocker:
        res = serve("--listen", f"127.0.0.1:{port}", *_http_off(), state_home=state_home)
    line = assert_clean_failure(res)
    assert "address already in use" in line and str(port) in line and kind in line, line


def test_serve_port_in_use_with_http_listener_is_one_line(state_home):
    if not serve_supports("--http"):
        pytest.skip("serve has no --http")
    blocker, port = _occupy("udp")
    with blocker:
        res = serve("--listen", f"127.0.0.1:{port}", "--http", f"127.0.0.1:{free_port()}",
                    state_home=state_home)
    line = assert_clean_failure(res)
    assert "address already in use" in line and str(port) in line, line


def test_serve_missing_manifests_folder(state_home):
    line = assert_clean_failure(serve("--manifests", "/nonexistent",
                                      "--listen", f"127.0.0.1:{free_port()}",
                                      state_home=state_home))
    assert "/nonexistent" in line


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


UNKNOWN_KEY = ("zone: cluster.local\nbogus_key: 1\n", "bogus_key")
WRONG_TYPE = ("ttl: '5'\n", "ttl")


@pytest.mark.parametrize("command,text,key", [
    ("serve", *UNKNOWN_KEY),
    ("serve", *WRONG_TYPE),
    ("check", *UNKNOWN_KEY),
    ("check", *WRONG_TYPE),
    ("check", "ttl: true\n", "ttl"),  # a bool is not an int here
    ("check", "pods: maybe\n", "pods"),
    ("check", "zone: 5\n", "zone"),
    ("check", "default_namespace: Shop\n", "default_namespace"),
    ("check", "builtin_services: yes please\n", "builtin_services"),
    ("check", "apiserver_endpoint: 172.18.0.2\n", "apiserver_endpoint"),
    ("check", "apiserver_endpoint: '[fd00::1:6443'\n", "apiserver_endpoint"),
    ("check", "kube_dns_endpoints: [10.244.0.300]\n", "kube_dns_endpoints"),
    ("check", "node_port_range: 30000\n", "node_port_range"),
    ("check", "node_port_range: 32767-30000\n", "node_port_range"),
])
def test_bad_config(tmp_path, state_home, text, key, command):
    cfg = _config(tmp_path, text)
    if command == "serve":
        res = serve("--config", cfg, "--listen", f"127.0.0.1:{free_port()}",
                    state_home=state_home)
    else:
        res = run_cli("check", "--config", cfg, state_home=state_home)
    line = assert_clean_failure(res)
    assert key in line and str(cfg) in line, line


@pytest.mark.parametrize("text,key", [
    ("service_cidr: 5\n", "service_cidr"),
    ("pod_cidr: [10.244.0.0/33]\n", "pod_cidr"),
])
def test_bad_cidr_config_names_the_file(tmp_path, state_home, text, key):
    cfg = _config(tmp_path, text)
    line = assert_clean_failure(run_cli("check", "--config", cfg, state_home=state_home))
    assert key in line and str(cfg) in line, line


@pytest.mark.parametrize("command", ["check", "get", "env"])
def test_bad_default_namespace_is_one_line(state_home, command):
    extra = {"get": ["services"], "env": ["--namespace", "default"]}.get(command, [])
    res = run_cli(command, *extra, "--default-namespace", "Bad_NS", state_home=state_home)
    line = assert_clean_failure(res)
    assert line.startswith("coredns-py: --default-namespace: 'Bad_NS': a lowercase RFC 1123 "
                           "label"), line
    assert res.returncode == 2


def test_default_namespace_for_get_and_env(tmp_path, state_home):
    folder = tmp_path / "m"
    write(folder, "install.yaml", service("api", ports=[{"name": "http", "port": 8080}]))
    got = run_cli("get", "services", "-n", "argocd", "--default-namespace", "argocd",
                  "--manifests", folder, state_home=state_home)
    [row] = [line.split() for line in got.stdout.splitlines()[1:]]
    assert row[0] == "api" and row[-1] == "api.argocd.svc.cluster.local"
    env = run_cli("env", "--namespace", "argocd", "--default-namespace", "argocd",
                  "--manifests", folder, state_home=state_home)
    assert f"API_SERVICE_HOST={row[2]}\n" in env.stdout
    assert "API_SERVICE_PORT_HTTP=8080\n" in env.stdout
    # Without it the install lands in default.
    plain = run_cli("env", "--namespace", "argocd", "--manifests", folder, state_home=state_home)
    assert "API_SERVICE_HOST" not in plain.stdout


@pytest.mark.parametrize("value", ["127.0.0.1", "localhost:53", "127.0.0.1:99999", "[::1]53",
                                   "::1:53", "127.0.0.1:http", "300.1.1.1:53", ""])
def test_bad_listen_value(state_home, value):
    line = assert_clean_failure(serve("--listen", value, state_home=state_home))
    assert "--listen" in line and "listen address" in line, line
    if value:
        assert repr(value) in line or value in line, line


# --- get agrees with serve ------------------------------------------------------------------


def _services_table(text: str) -> dict[tuple[str, str], tuple[str, str]]:
    lines = text.splitlines()
    header = lines[0].split()
    assert header[:4] == ["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP"], lines[0]
    out = {}
    for line in lines[1:]:
        cols = line.split()
        out[(cols[0], cols[1])] = (cols[2], cols[3])
    return out


def test_get_services_shows_the_ips_serve_answers(state_home, start_server):
    res = run_cli("get", "services", "-A", state_home=state_home)
    assert res.returncode == 0, res.stderr
    table = _services_table(res.stdout)
    assert ("kube-system", "kube-dns") in table and ("default", "webapp") in table
    assert table[("kube-system", "kube-dns")][1] == "10.96.0.10"

    srv = start_server(ZONES, state_home=state_home)
    checked = 0
    for (ns, name), (stype, cip) in table.items():
        fqdn = f"{name}.{ns}.svc.cluster.local"
        if stype == "ExternalName" or cip in ("None", "<none>"):
            continue
        v4 = [ip for ip in cip.split(",") if ":" not in ip]
        v6 = [ip for ip in cip.split(",") if ":" in ip]
        assert srv.dig_short(fqdn, "A") == v4, fqdn
        if v6:
            assert srv.dig_short(fqdn, "AAAA") == v6, fqdn
        checked += 1
    assert checked >= 5
    # And the other way round: get after serve shows the same table.
    again = run_cli("get", "services", "-A", state_home=state_home)
    assert _services_table(again.stdout) == table


def test_get_pods_shows_the_ips_serve_answers(state_home, start_server):
    res = run_cli("get", "pods", "-n", "default", state_home=state_home)
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.splitlines()[1:]]
    ips = {row[0]: row[3] for row in rows}
    srv = start_server(ZONES, state_home=state_home)
    assert srv.dig_short("web-0.nginx.default.svc.cluster.local") == [ips["web-0"]]
    assert sorted(srv.dig_short("nginx.default.svc.cluster.local")) == sorted(
        [ips["web-0"], ips["web-1"]])


# --- help and the installed command -------------------------------------------------------------


def test_module_help():
    res = run_cli("--help")
    assert res.returncode == 0, res.stderr
    for word in ("serve", "check", "get"):
        assert word in res.stdout
    res = run_cli("serve", "--help")
    assert res.returncode == 0 and "--listen" in res.stdout and "--manifests" in res.stdout


def test_unknown_command_is_a_usage_error():
    res = run_cli("frobnicate")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and "invalid choice" in res.stderr


def test_console_script_installed(tmp_path):
    # Where pip put it for this Python (a virtual environment's bin/), or on PATH.
    beside = Path(sys.executable).parent / "coredns-py"
    exe = str(beside) if beside.exists() else shutil.which("coredns-py")
    assert exe, "coredns-py is not on PATH (pip install -e .)"
    # As a user runs it: from anywhere, without PYTHONPATH help.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    for args in (["--help"], ["--version"], ["check", "--manifests", str(ZONES)]):
        res = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60,
                             cwd=str(tmp_path), env=env, stdin=subprocess.DEVNULL)
        assert res.returncode == 0, f"coredns-py {' '.join(args)}:\n{res.stdout}{res.stderr}"
        assert "Traceback" not in res.stderr
