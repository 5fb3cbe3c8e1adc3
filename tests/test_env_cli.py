"""``coredns-py env`` and ``coredns-py resolv-conf`` as a user runs them.

Every test runs the real command line in a subprocess (``python -m
coredns_py ...``) against the bundled ``zones/`` or a small folder written by
the test, with its own ``$XDG_STATE_HOME``.  The ClusterIPs printed by
``env`` are checked against what a running ``serve`` (same folder, same
``$XDG_STATE_HOME``) answers to ``dig``; the three output formats are checked
against each other through the readers that consume them (python-dotenv for
the env file, a POSIX shell for the sh format, ``json`` for json).  The
compose example in ``config/`` is checked against ``resolv-conf``.

Expected values are written out from the kubelet's rules (``P_SERVICE_HOST``,
``P_PORT_<port>_<PROTO>`` ...; see coredns_py/envvars.py) and from the
manifests in zones/, never computed by the code under test.
"""

from __future__ import annotations

import io
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values

from helpers import process
from helpers.kubelet_env import MASTER_KUBEADM_VARS
from helpers.manifests import namespace, service, write
from helpers.ports import free_port

REPO = Path(__file__).resolve().parent.parent
ZONES = REPO / "zones"
COMPOSE = REPO / "config" / "compose.example.yaml"
DIG = shutil.which("dig") or "/usr/bin/dig"

CLI_TIMEOUT = 60       # one CLI run (a cold start on a loaded machine included)
SERVE_READY = 20       # spawn to the first NOERROR answer

# --- helpers ------------------------------------------------------------------------


def cli(*args, state: Path, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
    """``python -m coredns_py ARGS`` from the repository, with its own state dir."""
    env = dict(os.environ, XDG_STATE_HOME=str(state), PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "coredns_py", *map(str, args)],
                          cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def ok(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 0, (f"exit {res.returncode}\nstdout:\n{res.stdout}"
                                 f"\nstderr:\n{res.stderr}")
    return res.stdout


def env_json(state: Path, namespace: str, *extra) -> dict:
    res = cli("env", "--namespace", namespace, "--format", "json", *extra, state=state)
    return json.loads(ok(res))


def dig(port: int, *args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([DIG, "@127.0.0.1", "-p", str(port), "+time=2", "+tries=2", *args],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


class Serve:
    """``python -m coredns_py serve`` on 127.0.0.1 and a free port; always stopped."""

    def __init__(self, manifests: Path, state: Path, logdir: Path, *extra: str):
        self.manifests, self.state, self.logdir, self.extra = manifests, state, logdir, extra
        self.proc = None
        self.port = 0

    def __enter__(self) -> "Serve":
        for attempt in range(5):
            self.port = free_port()
            self.log = self.logdir / f"serve-{self.port}.log"
            env = dict(os.environ, XDG_STATE_HOME=str(self.state), PYTHONUNBUFFERED="1")
            with open(self.log, "wb") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "coredns_py", "serve", "--manifests",
                     str(self.manifests), "--listen", f"127.0.0.1:{self.port}", *self.extra],
                    cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL)
            if self._wait_ready():
                return self
            if self.proc.poll() is not None and "address already in use" in self.output():
                continue  # lost a race for the port: try another one
            self.stop()
            raise AssertionError(f"serve did not become ready:\n{self.output()}")
        raise AssertionError(f"serve could not bind a port:\n{self.output()}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + SERVE_READY
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            res = dig(self.port, "+time=1", "+tries=1", "cluster.local", "SOA", timeout=5)
            if "status: NOERROR" in res.stdout:  # SERVFAIL until the first load is done
                return True
            time.sleep(0.1)
        return False

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def a(self, name: str) -> list[str]:
        """The A records dig prints for ``name`` (+short), sorted."""
        res = dig(self.port, "+short", name, "A")
        assert res.returncode == 0, f"dig {name}: {res.stdout}{res.stderr}\n{self.output()}"
        return sorted(line for line in res.stdout.split() if line and not line.startswith(";"))

    def stop(self) -> None:
        process.stop(self.proc, 10)

    def __exit__(self, *exc) -> None:
        self.stop()


def write_manifests(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        write(folder, name, text)
    return folder


def one_line_error(res: subprocess.CompletedProcess) -> None:
    """A user error: non-zero exit, nothing on stdout, exactly one line on stderr."""
    assert res.returncode != 0
    assert res.stdout == ""
    assert "Traceback" not in res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("coredns-py: "), res.stderr


@pytest.fixture
def state(tmp_path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def zones_state(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("zones-state")


@pytest.fixture(scope="module")
def default_env(zones_state) -> dict:
    return env_json(zones_state, "default", "--manifests", ZONES)


# --- env: the tutorial's services -------------------------------------------------------


def test_default_namespace_gives_webapp_variables(zones_state):
    res = cli("env", "--namespace", "default", "--manifests", ZONES, state=zones_state)
    out = ok(res)
    assert res.stderr == ""
    values = dotenv_values(stream=io.StringIO(out))
    ip = values["WEBAPP_SERVICE_HOST"]
    # zones/01-clusterip/webapp-service.yaml has no clusterIP: one is allocated
    # from service_cidr 10.96.0.0/12, never .1 (kubernetes) or .10 (kube-dns).
    addr = ipaddress.ip_address(ip)
    assert addr in ipaddress.ip_network("10.96.0.0/12")
    assert ip not in ("10.96.0.0", "10.96.0.1", "10.96.0.10")
    webapp = {k: v for k, v in values.items() if k.startswith("WEBAPP_")}
    assert webapp == {
        "WEBAPP_SERVICE_HOST": ip,
        "WEBAPP_SERVICE_PORT": "8080",
        "WEBAPP_PORT": f"tcp://{ip}:8080",
        "WEBAPP_PORT_8080_TCP": f"tcp://{ip}:8080",
        "WEBAPP_PORT_8080_TCP_PROTO": "tcp",
        "WEBAPP_PORT_8080_TCP_PORT": "8080",
        "WEBAPP_PORT_8080_TCP_ADDR": ip,
    }
    assert {k: v for k, v in values.items() if k.startswith("KUBERNETES_")} == MASTER_KUBEADM_VARS


def test_default_namespace_has_only_its_own_services_with_a_cluster_ip(default_env):
    # default: kubernetes, mynginx (LoadBalancer), webapp, and the headless
    # nginx (no variables); kube-dns and the webapps of other namespaces never.
    prefixes = {re.sub(r"_SERVICE_HOST$", "", k) for k in default_env
                if k.endswith("_SERVICE_HOST")}
    assert prefixes == {"KUBERNETES", "MYNGINX", "WEBAPP"}
    assert not any(k.startswith(("NGINX_", "KUBE_DNS_")) for k in default_env)


def test_env_ip_is_what_serve_answers(zones_state, default_env, tmp_path):
    with Serve(ZONES, zones_state, tmp_path) as srv:
        assert srv.a("webapp.default.svc.cluster.local") == [default_env["WEBAPP_SERVICE_HOST"]]
        assert srv.a("mynginx.default.svc.cluster.local") == [default_env["MYNGINX_SERVICE_HOST"]]
        assert srv.a("kubernetes.default.svc.cluster.local") == ["10.96.0.1"]
        # env run while serve is running (both hold the state file's lock in turn)
        assert env_json(zones_state, "default", "--manifests", ZONES) == default_env


@pytest.mark.parametrize("env_first", [True, False], ids=["env-then-serve", "serve-then-env"])
def test_env_and_serve_agree_through_the_state_file(tmp_path, state, env_first):
    """A small service range (/28: 12 usable addresses) so that allocation
    collides and the state file matters; the folder changes between runs."""
    config = tmp_path / "config.yaml"
    config.write_text("service_cidr: [10.97.0.0/28]\n")
    folder = tmp_path / "manifests"
    names = [f"svc-{i}" for i in range(8)]

    def write_folder(names):
        for f in folder.glob("*.yaml"):
            f.unlink()
        write_manifests(folder, {f"{n}.yaml": service(n, "shop") for n in names})
        write_manifests(folder, {"ns.yaml": namespace("shop")})

    write_folder(names)
    first = env_json(state, "shop", "--manifests", folder, "--config", config)
    state_files = list((state / "coredns_py").glob("*.json"))
    assert len(state_files) == 1, "env persists its allocation in $XDG_STATE_HOME/coredns_py/"
    # Remove half, add four new ones: the new ones take the freed addresses.
    names = names[4:] + [f"new-{i}" for i in range(4)]
    write_folder(names)

    def check(env):
        for n in names[:4]:  # kept Services keep their addresses
            key = n.upper().replace("-", "_") + "_SERVICE_HOST"
            assert env[key] == first[key]
        ips = [env[n.upper().replace("-", "_") + "_SERVICE_HOST"] for n in names]
        assert len(set(ips)) == len(ips)
        assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("10.97.0.0/28") for ip in ips)
        return ips

    env_before = None
    if env_first:
        env_before = env_json(state, "shop", "--manifests", folder, "--config", config)
    with Serve(folder, state, tmp_path, "--config", str(config)) as srv:
        served = [srv.a(f"{n}.shop.svc.cluster.local") for n in names]
    env_after = env_json(state, "shop", "--manifests", folder, "--config", config)
    ips = check(env_after)
    assert served == [[ip] for ip in ips]
    if env_before is not None:
        assert env_before == env_after


# --- env: formats ----------------------------------------------------------------------------

V6_AND_UDP = {
    "ns.yaml": namespace("app"),
    "dns.yaml": service("dns-v6", "app", cluster_ip="fd00:10:96::53",
                        ports=[{"name": "dns", "port": 53, "protocol": "UDP"},
                               {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]),
    "web.yaml": service("web-1", "app", ports=[{"name": "http", "port": 80},
                                               {"name": "metrics", "port": 9102}]),
}


def _shell_env(path: Path | None) -> dict:
    script = "set -a; . \"$1\"; env" if path else "set -a; env"
    args = ["sh", "-c", script, "sh"] + ([str(path)] if path else [])
    res = subprocess.run(args, capture_output=True, text=True, timeout=30,
                         env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    assert res.returncode == 0, res.stderr
    return dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)


@pytest.mark.parametrize("case", ["zones:default", "zones:shop", "zones:test01",
                                  "zones:kube-system", "tmp:app"])
def test_env_sh_and_json_formats_agree(case, tmp_path, state):
    where, namespace = case.split(":")
    folder = ZONES if where == "zones" else write_manifests(tmp_path / "m", V6_AND_UDP)
    args = ("env", "--namespace", namespace, "--manifests", folder)
    as_json = json.loads(ok(cli(*args, "--format", "json", state=state)))
    env_out = ok(cli(*args, "--format", "env", state=state))
    sh_out = ok(cli(*args, "--format", "sh", state=state))
    # default format is env
    assert ok(cli(*args, state=state)) == env_out

    assert as_json and all(isinstance(v, str) for v in as_json.values())
    assert dict(dotenv_values(stream=io.StringIO(env_out))) == as_json

    sh_file = tmp_path / "env.sh"
    sh_file.write_text(sh_out)
    baseline, sourced = _shell_env(None), _shell_env(sh_file)
    added = {k: v for k, v in sourced.items() if k not in baseline or baseline[k] != v}
    added.pop("_", None)
    assert added == as_json


def test_ipv6_udp_and_named_ports(tmp_path, state):
    folder = write_manifests(tmp_path / "m", V6_AND_UDP)
    env = env_json(state, "app", "--manifests", folder)
    ip = "fd00:10:96::53"
    assert {k: v for k, v in env.items() if k.startswith("DNS_V6_")} == {
        "DNS_V6_SERVICE_HOST": ip,
        "DNS_V6_SERVICE_PORT": "53",
        "DNS_V6_SERVICE_PORT_DNS": "53",
        "DNS_V6_SERVICE_PORT_DNS_TCP": "53",
        "DNS_V6_PORT": f"udp://[{ip}]:53",
        "DNS_V6_PORT_53_UDP": f"udp://[{ip}]:53",
        "DNS_V6_PORT_53_UDP_PROTO": "udp",
        "DNS_V6_PORT_53_UDP_PORT": "53",
        "DNS_V6_PORT_53_UDP_ADDR": ip,
        "DNS_V6_PORT_53_TCP": f"tcp://[{ip}]:53",
        "DNS_V6_PORT_53_TCP_PROTO": "tcp",
        "DNS_V6_PORT_53_TCP_PORT": "53",
        "DNS_V6_PORT_53_TCP_ADDR": ip,
    }
    web = env["WEB_1_SERVICE_HOST"]
    assert env["WEB_1_SERVICE_PORT_HTTP"] == "80"
    assert env["WEB_1_SERVICE_PORT_METRICS"] == "9102"
    assert env["WEB_1_PORT_9102_TCP"] == f"tcp://{web}:9102"
    # No kubernetes Service in this folder: the built-in one, as every
    # cluster has it, gives the variables every pod has.
    assert {k: v for k, v in env.items() if k.startswith("KUBERNETES_")} == MASTER_KUBEADM_VARS


# --- env: which Services ----------------------------------------------------------------------


@pytest.mark.parametrize("namespace", ["default", "shop", "kube-system", "nodeport"])
def test_no_service_links_keeps_only_kubernetes(zones_state, namespace):
    assert env_json(zones_state, namespace, "--manifests", ZONES,
                    "--no-service-links") == MASTER_KUBEADM_VARS


@pytest.mark.parametrize("namespace", ["test01", "test02", "no-such-namespace"])
def test_namespace_without_cluster_ips_gives_only_kubernetes(zones_state, namespace):
    # test01/test02: one headless Service and one ExternalName each.
    assert env_json(zones_state, namespace, "--manifests", ZONES) == MASTER_KUBEADM_VARS


@pytest.mark.parametrize("bad", ["Default", "my_ns", "-ns", "ns-", "a.b", "a" * 64, ""])
def test_invalid_namespace_is_one_line_and_nonzero(state, bad):
    # --namespace=VALUE: "-ns" after a separate --namespace would be read as an option
    one_line_error(cli("env", f"--namespace={bad}", "--manifests", ZONES, state=state))


def test_missing_manifests_folder_is_one_line_and_nonzero(state, tmp_path):
    one_line_error(cli("env", "--namespace", "default", "--manifests", tmp_path / "nope",
                       state=state))


@pytest.mark.parametrize("fmt", ["env", "sh", "json"])
def test_warnings_go_to_stderr_not_stdout(tmp_path, state, fmt):
    folder = write_manifests(tmp_path / "m", {
        "ns.yaml": namespace("app"),
        # foo-service's FOO_SERVICE_PORT=tcp://... collides with foo's FOO_SERVICE_PORT=80
        "foo.yaml": service("foo", "app", cluster_ip="10.96.0.100", ports=[80]),
        "foo-service.yaml": service("foo-service", "app", cluster_ip="10.96.0.101",
                                    ports=[8080]),
    })
    res = cli("env", "--namespace", "app", "--manifests", folder, "--format", fmt, state=state)
    out = ok(res)
    warnings = res.stderr.splitlines()
    assert warnings and all(w.startswith("coredns-py: warning: ") for w in warnings), res.stderr
    assert any("FOO_SERVICE_PORT" in w for w in warnings)
    assert "warning" not in out
    if fmt == "json":
        values = json.loads(out)
    elif fmt == "env":
        values = dict(dotenv_values(stream=io.StringIO(out)))
    else:
        sh_file = tmp_path / "env.sh"
        sh_file.write_text(out)
        values = {k: v for k, v in _shell_env(sh_file).items() if k.startswith("FOO_")}
    assert values["FOO_SERVICE_PORT"] == "80"
    assert values["FOO_SERVICE_SERVICE_PORT"] == "8080"


def test_unusable_state_dir_warns_on_stderr_only(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    res = cli("env", "--namespace", "default", "--manifests", ZONES, "--format", "json",
              state=not_a_dir)
    values = json.loads(ok(res))
    assert values["WEBAPP_SERVICE_PORT"] == "8080"
    assert res.stderr and all(line.startswith("coredns-py: ") for line in res.stderr.splitlines())


def test_dual_stack_service_gives_its_primary_address(zones_state):
    # zones/09-kubectl-dump/shop.yaml: cart has clusterIPs [10.96.120.15, fd00:10:96::7b2]
    env = env_json(zones_state, "shop", "--manifests", ZONES)
    assert env["CART_SERVICE_HOST"] == "10.96.120.15"
    assert env["CART_PORT_9090_TCP"] == "tcp://10.96.120.15:9090"
    assert env["CART_SERVICE_PORT_GRPC"] == "9090"
    assert not any(k.startswith("PAYMENTS_") for k in env)  # ExternalName


# --- resolv-conf -----------------------------------------------------------------------


def test_resolv_conf_default(state):
    res = cli("resolv-conf", "--namespace", "default", "--nameserver", "10.96.0.10", state=state)
    assert res.stderr == ""
    assert ok(res).splitlines() == [
        "search default.svc.cluster.local svc.cluster.local cluster.local",
        "nameserver 10.96.0.10",
        "options ndots:5",
    ]


@pytest.mark.parametrize("bad", ["10.96.0.300", "kube-dns", "10.96.0.10:53", "", "[::1]"])
def test_resolv_conf_bad_nameserver(state, bad):
    one_line_error(cli("resolv-conf", "--namespace", "default", f"--nameserver={bad}",
                       state=state))


def test_resolv_conf_bad_namespace(state):
    one_line_error(cli("resolv-conf", "--namespace", "Default", "--nameserver", "10.96.0.10",
                       state=state))


# --- config/compose.example.yaml ------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and {"coredns", "app"} <= set(data["services"])
    return data


def test_compose_app_resolver_matches_resolv_conf(compose, state):
    conf = ok(cli("resolv-conf", "--namespace", "default", "--nameserver", "10.96.0.10",
                  state=state))
    lines = dict(line.split(None, 1) for line in conf.splitlines())
    app = compose["services"]["app"]
    assert app["dns_search"] == lines["search"].split()
    assert app["dns_opt"] == lines["options"].split()


def test_compose_app_uses_the_coredns_service_address(compose):
    coredns, app = compose["services"]["coredns"], compose["services"]["app"]
    (net_name, net), = coredns["networks"].items()
    ip = net["ipv4_address"]
    assert app["dns"] == [ip]
    assert net_name in app["networks"]
    subnets = [ipaddress.ip_network(c["subnet"])
               for c in compose["networks"][net_name]["ipam"]["config"]]
    assert any(ipaddress.ip_address(ip) in s for s in subnets)
    env_files = app["env_file"] if isinstance(app["env_file"], list) else [app["env_file"]]
    assert "app.env" in [e if isinstance(e, str) else e["path"] for e in env_files]


def test_compose_coredns_serves_the_zone_on_port_53(compose):
    coredns = compose["services"]["coredns"]
    command = coredns["command"]
    text = command if isinstance(command, str) else " ".join(command)
    assert re.search(r"coredns-py serve --manifests /zones --listen 0\.0\.0\.0:53\b", text), text
    mounts = [v if isinstance(v, str) else f"{v['source']}:{v['target']}"
              for v in coredns["volumes"]]
    assert any(m.split(":")[1] == "/zones" for m in mounts)
    # relative paths in a compose file are relative to the file's folder (config/)
    for m in mounts:
        source = m.split(":")[0]
        if source.startswith("."):
            assert (COMPOSE.parent / source).resolve().is_dir(), m
