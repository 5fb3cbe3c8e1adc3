"""The Services every cluster has: kubernetes.default on the first address of
the service range and kube-dns.kube-system on the tenth, as kubeadm makes
them, unless the manifests define them; answered, listed by `get`, and in
`env` as the kubelet gives them to every pod."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from coredns_py.cluster import fill
from coredns_py.config import Config
from coredns_py.source import objects as o
from coredns_py.source.folder import ManifestSource
from helpers.kubelet_env import MASTER_KUBEADM_VARS
from helpers.manifests import deployment, service, write


def build(folder, **cfg):
    loaded = ManifestSource(folder).load()
    assert loaded.errors == ()
    return fill.build(loaded.objects, Config(**cfg), None)


def services(cl) -> dict:
    return {f"{s.namespace}/{s.name}": s for s in cl.services}


def endpoints(cl, ns: str, name: str) -> list[str]:
    return sorted(a for s in cl.service_slices(ns, name) for e in s.endpoints
                  for a in e.addresses)


def test_a_folder_without_them_gets_both_as_kubeadm_makes_them(tmp_path):
    write(tmp_path, "app.yaml", service("web", selector={"app": "web"}), deployment("web"))
    cl = build(tmp_path)
    svcs = services(cl)
    k8s, dns = svcs["default/kubernetes"], svcs["kube-system/kube-dns"]
    assert (k8s.type, k8s.cluster_ips) == (o.CLUSTER_IP, ("10.96.0.1",))
    assert [(p.name, p.port, p.protocol, p.target_port) for p in k8s.ports] == [
        ("https", 443, "TCP", 6443)]
    assert dns.cluster_ips == ("10.96.0.10",)
    assert [(p.name, p.port, p.protocol) for p in dns.ports] == [
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")]
    assert "kube-system" in cl.namespaces
    # Endpoints from the configuration's documented defaults.
    assert endpoints(cl, "default", "kubernetes") == ["172.18.0.2"]
    assert endpoints(cl, "kube-system", "kube-dns") == ["10.244.0.2", "10.244.0.3"]
    # ... which no pod is given.
    assert all(not set(p.ips) & {"10.244.0.2", "10.244.0.3"} for p in cl.pods)


def test_their_addresses_follow_the_configured_ranges(tmp_path):
    write(tmp_path, "app.yaml", service("web"))
    cl = build(tmp_path, service_cidr=("172.20.0.0/16",), pod_cidr=("10.42.0.0/16",),
               apiserver_endpoint="[fd00::1]:443",
               kube_dns_endpoints=("10.42.7.7", "fd00:42::7"))
    svcs = services(cl)
    assert svcs["default/kubernetes"].cluster_ips == ("172.20.0.1",)
    assert svcs["kube-system/kube-dns"].cluster_ips == ("172.20.0.10",)
    assert endpoints(cl, "default", "kubernetes") == ["fd00::1"]
    assert svcs["default/kubernetes"].ports[0].target_port == 443
    assert endpoints(cl, "kube-system", "kube-dns") == ["10.42.7.7", "fd00:42::7"]


def test_the_manifests_own_versions_win(tmp_path):
    write(tmp_path, "own.yaml",
          service("kubernetes", "default", cluster_ip="10.96.0.1",
                  ports=[{"name": "https", "port": 443, "targetPort": 8443}]),
          service("coredns", "kube-system", cluster_ip="10.96.0.10", ports=[53]))
    cl = build(tmp_path)
    svcs = services(cl)
    assert sorted(svcs) == ["default/kubernetes", "kube-system/coredns"]  # no kube-dns
    assert svcs["default/kubernetes"].ports[0].target_port == 8443
    assert cl.errors == ()  # nobody claimed an address twice


def test_builtin_services_false_leaves_them_out(tmp_path):
    write(tmp_path, "app.yaml", service("web"))
    assert sorted(services(build(tmp_path, builtin_services=False))) == ["default/web"]


def test_bundled_zones_define_them_and_keep_their_own(state_home):
    res = run_cli("get", "services", "-A", state_home=state_home)
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.splitlines()[1:]]
    by_name = {(r[0], r[1]): r for r in rows}
    assert by_name[("default", "kubernetes")][3] == "10.96.0.1"
    assert by_name[("kube-system", "kube-dns")][3] == "10.96.0.10"
    # zones/00-cluster's CoreDNS pods, not the configured endpoints.
    eps = run_cli("get", "endpoints", "-n", "kube-system", state_home=state_home).stdout
    assert "10.244.0.2" not in eps and ":53" in eps


@pytest.fixture
def no_builtins_folder(tmp_path):
    folder = tmp_path / "m"
    write(folder, "app.yaml", service("web", "shop", selector={"app": "web"}),
          deployment("web", "shop"))
    return folder


def test_answered_listed_and_in_env_on_a_folder_without_them(start_server, no_builtins_folder,
                                                              state_home):
    srv = start_server(no_builtins_folder, state_home=state_home)
    assert srv.dig_short("kubernetes.default.svc.cluster.local") == ["10.96.0.1"]
    assert srv.dig_short("kube-dns.kube-system.svc.cluster.local") == ["10.96.0.10"]
    srv_records = srv.dig_short("_dns._udp.kube-dns.kube-system.svc.cluster.local", "SRV")
    assert srv_records == ["0 100 53 kube-dns.kube-system.svc.cluster.local."]
    assert srv.dig_short("-x", "10.96.0.1") == ["kubernetes.default.svc.cluster.local."]
    got = run_cli("get", "services", "-A", "--manifests", no_builtins_folder,
                  state_home=state_home).stdout
    rows = [line.split() for line in got.splitlines()[1:]]
    assert [r[:3] for r in rows] == [["default", "kubernetes", "ClusterIP"],
                                     ["kube-system", "kube-dns", "ClusterIP"],
                                     ["shop", "web", "ClusterIP"]]
    assert [r[3] for r in rows[:2]] == ["10.96.0.1", "10.96.0.10"]
    assert rows[1][5] == "53/UDP,53/TCP,9153/TCP"
    res = run_cli("env", "--namespace", "shop", "--format", "json", "--manifests",
                  no_builtins_folder, state_home=state_home)
    env = json.loads(res.stdout)
    assert {k: v for k, v in env.items() if k.startswith("KUBERNETES_")} == MASTER_KUBEADM_VARS
    assert "WEB_SERVICE_HOST" in env
