"""Manifests shaped like the ones users have (tests/fixtures/installs/,
written for these tests): a namespace-less install applied with a default
namespace, `helm template` output, a `kubectl get -o yaml` List, an operator
bundle mixing CRDs, custom resources, ConfigMaps and Secrets with Services,
a kustomize folder; served by a real process and asked with real clients."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import run_cli

INSTALLS = Path(__file__).resolve().parent / "fixtures" / "installs"
ZONE = "svc.cluster.local"


def get_services(folder: Path, state_home: Path, *args: str) -> dict[tuple[str, str], list[str]]:
    """`get services -A` as {(namespace, name): [type, cluster-ip, external-ip, ports]}."""
    res = run_cli("get", "services", "-A", "--manifests", folder, *args, state_home=state_home)
    assert res.returncode == 0, res.stderr
    return {(r[0], r[1]): r[2:6] for r in (line.split() for line in res.stdout.splitlines()[1:])}


def test_a_namespace_less_install_applied_with_a_default_namespace(start_server, state_home):
    folder = INSTALLS / "gitops"
    docs = [d for d in yaml.safe_load_all((folder / "install.yaml").read_text()) if d]
    services = [d for d in docs if d["kind"] == "Service"]
    assert services and all("namespace" not in d["metadata"] for d in docs)
    srv = start_server(folder, state_home=state_home, args=["--default-namespace", "argocd"])
    table = get_services(folder, state_home, "--default-namespace", "argocd")
    for svc in services:
        name = svc["metadata"]["name"]
        fqdn = f"{name}.argocd.{ZONE}"
        ip = table[("argocd", name)][1]
        # Every name of the install answers as in the cluster: the ClusterIP,
        # an SRV record per named port, the reverse name ...
        assert srv.dig_short(fqdn) == [ip], name
        for port in svc["spec"]["ports"]:
            assert srv.dig_short(f"_{port['name']}._tcp.{fqdn}", "SRV") == [
                f"0 100 {port['port']} {fqdn}."], (name, port)
        assert srv.dig_short("-x", ip) == [f"{fqdn}."]
        # ... and nothing of it is left in default.
        assert "NXDOMAIN" in srv.dig(f"{name}.default.{ZONE}", "+noall", "+comments")
    # The selectors found the install's pods, in argocd.
    eps = run_cli("get", "endpoints", "-n", "argocd", "--manifests", folder,
                  "--default-namespace", "argocd", state_home=state_home).stdout
    rows = {line.split()[0]: line.split()[1] for line in eps.splitlines()[1:]}
    assert sorted(rows) == sorted(s["metadata"]["name"] for s in services)
    assert all(value != "<none>" for value in rows.values()), eps
    assert rows["argocd-applicationset-controller"].count(":7000") == 1  # a named targetPort


def test_helm_template_output(start_server, state_home):
    folder = INSTALLS / "helm"
    srv = start_server(folder, state_home=state_home, args=["--default-namespace", "cache"])
    headless = sorted(srv.dig_short(f"release-cache-headless.cache.{ZONE}"))
    assert len(headless) == 2  # the StatefulSet's two pods
    for i in range(2):
        pod = srv.dig_short(f"release-cache-master-{i}.release-cache-headless.cache.{ZONE}")
        assert len(pod) == 1 and pod[0] in headless
    assert srv.dig_short(f"_tcp-cache._tcp.release-cache-master.cache.{ZONE}", "SRV") == [
        f"0 100 6379 release-cache-master.cache.{ZONE}."]
    # The template that forgot its namespace lands where helm's would: -n cache.
    assert len(srv.dig_short(f"release-cache-metrics.cache.{ZONE}")) == 1
    res = run_cli("check", "--manifests", folder, "--default-namespace", "cache",
                  state_home=state_home)
    assert res.returncode == 0, res.stdout
    assert res.stdout.splitlines()[-1] == ("ignored 4 objects of kinds we do not serve: "
                                           "ConfigMap 1, NetworkPolicy 1, Secret 1, "
                                           "ServiceAccount 1")


def test_a_kubectl_dump_with_managed_fields_and_status(start_server, state_home):
    folder = INSTALLS / "dump"
    srv = start_server(folder, state_home=state_home)
    assert srv.dig_short(f"frontend.shop.{ZONE}") == ["10.96.201.17"]
    assert srv.dig_short(f"checkout.shop.{ZONE}") == ["10.96.44.9"]
    table = get_services(folder, state_home)
    assert table[("shop", "frontend")] == ["NodePort", "10.96.201.17", "<none>", "80:31645/TCP"]
    # its status.loadBalancer.ingress, as kubectl shows it
    assert table[("shop", "checkout")] == ["LoadBalancer", "10.96.44.9", "172.18.255.200",
                                           "5050:30417/TCP"]
    eps = run_cli("get", "endpoints", "-n", "shop", "--manifests", folder,
                  state_home=state_home).stdout
    assert "frontend   10.244.1.14:8080" in eps  # the ready endpoint only


def test_an_operator_bundle_mixing_crds_custom_resources_configmaps_and_secrets(
        start_server, state_home):
    folder = INSTALLS / "mixed"
    res = run_cli("check", "--manifests", folder, state_home=state_home)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.splitlines()[-1] == (
        "ignored 10 objects of kinds we do not serve: CustomResourceDefinition 3, ConfigMap 2, "
        "ServiceMonitor 2, Alertmanager 1, Prometheus 1, Secret 1")
    verbose = run_cli("check", "--verbose", "--manifests", folder, state_home=state_home)
    named = [line for line in verbose.stdout.splitlines() if line.startswith("not served: ")]
    assert len(named) == 10
    path = folder / "operator.yaml"
    assert f"not served: {path}:18: CustomResourceDefinition " \
           "servicemonitors.monitoring.coreos.com" in named
    assert f"not served: {path}:79: Secret monitoring/alertmanager-main" in named
    srv = start_server(folder, state_home=state_home)
    assert len(srv.dig_short(f"prometheus-k8s.monitoring.{ZONE}")) == 1
    assert srv.dig_short(f"_web._tcp.alertmanager-main.monitoring.{ZONE}", "SRV") == [
        f"0 100 9093 alertmanager-main.monitoring.{ZONE}."]


def test_a_kustomize_folder(start_server, state_home):
    folder = INSTALLS / "kustomize"
    srv = start_server(folder, state_home=state_home)
    for ns in ("guestbook-prod", "guestbook-staging"):
        assert len(srv.dig_short(f"frontend.{ns}.{ZONE}")) == 1, ns
    assert len(srv.dig_short(f"redis-leader.guestbook-prod.{ZONE}")) == 1
    # base/service.yaml says default; the overlays' namespace overrides it.
    assert "NXDOMAIN" in srv.dig(f"frontend.default.{ZONE}", "+noall", "+comments")
    assert "NXDOMAIN" in srv.dig(f"redis-leader.guestbook-staging.{ZONE}", "+noall",
                                 "+comments")
    res = run_cli("check", "--manifests", folder, state_home=state_home)
    assert res.returncode == 0, res.stdout
    warnings = [line for line in res.stdout.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        f"warning: {folder / 'base' / 'kustomization.yaml'}: labels is not applied here (only "
        f"namespace and resources are); to serve what kustomize builds, render it: kubectl "
        f"kustomize {folder / 'base'} > rendered.yaml",
        f"warning: {folder / 'overlays' / 'prod' / 'kustomization.yaml'}: patches is not "
        f"applied here (only namespace and resources are); to serve what kustomize builds, "
        f"render it: kubectl kustomize {folder / 'overlays' / 'prod'} > rendered.yaml",
    ]
    # The JSON patch next to it is no Kubernetes object.
    assert res.stdout.splitlines()[-1] == (
        "ignored 1 document that is no Kubernetes object (neither apiVersion nor kind)")


REFUSED = """\
apiVersion: v1
metadata: {name: nokind, namespace: shop}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: shop}
spec: {type: ExternalName, externalName: 'not a host name!'}
---
apiVersion: v1
kind: Service
metadata: {name: twice, namespace: shop}
spec:
  ports:
  - {name: http, port: 80}
  - {name: http, port: 8080}
---
apiVersion: v1
kind: Servce
metadata: {name: typo, namespace: shop}
---
apiVersion: v1
kind: Service
metadata: {name: fine, namespace: shop}
spec: {ports: [{port: 80}]}
"""


@pytest.mark.parametrize("default_namespace", [None, "argocd"])
def test_check_exits_1_naming_file_object_and_field_for_each_refusal(tmp_path, state_home,
                                                                     default_namespace):
    folder = tmp_path / "m"
    folder.mkdir()
    path = folder / "refused.yaml"
    path.write_text(REFUSED)
    args = ["--default-namespace", default_namespace] if default_namespace else []
    res = run_cli("check", "--manifests", folder, *args, state_home=state_home)
    assert res.returncode == 1
    assert "Traceback" not in res.stderr and "4 problems" in res.stderr
    lines = res.stdout.splitlines()
    assert lines == [
        f"{path}:1: field kind: Object 'Kind' is missing",
        f'{path}:5: Service shop/ext: field spec.externalName: Invalid value: "not a host '
        f"name!\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
        f"characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
        f"'example.com', regex used for validation is "
        f"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        f'{path}:10: Service shop/twice: field spec.ports[1].name: Duplicate value: "http"',
        f'{path}:18: Servce shop/typo: field kind: no matches for kind "Servce" in version '
        f'"v1": did you mean "Service"?',
    ]
