"""The kubernetes options that serve part of a cluster (config keys
namespaces, labels, namespace_labels; CoreDNS's options of the same names):
what is not exposed is NXDOMAIN as in CoreDNS (a namespace not exposed does
not exist), PTR included; label selectors in Kubernetes' text form; in
process, and a real server from a Corefile asked with dig."""

from __future__ import annotations

from pathlib import Path

import dns.message
import dns.rcode
import pytest

from coredns_py.cluster import fill
from coredns_py.config import parse
from coredns_py.errors import ConfigError
from coredns_py.source.folder import ManifestSource
from coredns_py.source.selectors import parse as parse_selector
from coredns_py.source.objects import LabelRequirement
from coredns_py.zone import answer, snapshot
from coredns_py.zone.lookup import resolve

from conftest import corefile_server
from helpers.manifests import deployment, namespace, service, write

NX, OK = dns.rcode.NXDOMAIN, dns.rcode.NOERROR


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("filters")
    write(root, "team-a.yaml", namespace("team-a", {"team": "a", "tier": "prod"}),
          service("web", "team-a", cluster_ip="10.96.1.1", labels={"app": "web"},
                  selector={"app": "web"}),
          service("db", "team-a", cluster_ip="None", labels={"app": "db"},
                  selector={"app": "db"}),
          deployment("web", "team-a"), deployment("db", "team-a"))
    write(root, "team-b.yaml", namespace("team-b", {"team": "b"}),
          service("web", "team-b", cluster_ip="10.96.2.1", labels={"app": "web"}))
    # No Namespace object: only the name label the API server would set.
    write(root, "loose.yaml", service("web", "loose", cluster_ip="10.96.3.1",
                                      labels={"app": "web", "canary": "yes"}))
    return root


def snap_of(folder: Path, **keys):
    config = parse({"pods": "verified", **keys})
    loaded = ManifestSource(folder).load()
    return snapshot.build(fill.build(loaded.objects, config, None), config, 1, ("127.0.0.1",))


def rcode(snap, name: str, rdtype: str = "A") -> int:
    wire = dns.message.make_query(name, rdtype).to_wire()
    return dns.message.from_wire(answer.answer(snap, wire, "udp")).rcode()


def pod_name(snap, namespace: str) -> str:
    ip = sorted(snap.pod_ips[namespace])[0]
    return f"{ip.replace('.', '-')}.{namespace}.pod.cluster.local."


def test_everything_is_exposed_without_filters(folder):
    snap = snap_of(folder)
    for name in ("web.team-a", "db.team-a", "web.team-b", "web.loose"):
        assert rcode(snap, f"{name}.svc.cluster.local.") == OK, name
    assert rcode(snap, pod_name(snap, "team-a")) == OK


def test_namespaces_only_the_listed_ones(folder):
    snap = snap_of(folder, namespaces=["team-a", "loose"])
    assert rcode(snap, "web.team-a.svc.cluster.local.") == OK
    assert rcode(snap, "web.loose.svc.cluster.local.") == OK
    for name in ("web.team-b.svc.cluster.local.", "team-b.svc.cluster.local.",
                 "1-2-3-4.team-b.pod.cluster.local."):
        assert rcode(snap, name) == NX, name
    assert rcode(snap, "2.1.96.10.in-addr.arpa.", "PTR") == NX  # team-b's web
    assert rcode(snap, "1.1.96.10.in-addr.arpa.", "PTR") == OK
    why = resolve(snap, (b"web", b"team-b", b"svc", b"cluster", b"local"), 1).why
    assert "not exposed" in why
    assert resolve(snap, (b"web", b"nope", b"svc", b"cluster", b"local"), 1).why == \
        "no such namespace"


def test_labels_select_services_their_endpoints_and_pods(folder):
    snap = snap_of(folder, labels="app=web")
    assert rcode(snap, "web.team-a.svc.cluster.local.") == OK
    assert rcode(snap, "web.loose.svc.cluster.local.") == OK
    assert rcode(snap, "db.team-a.svc.cluster.local.") == NX
    assert rcode(snap, "team-a.svc.cluster.local.") == OK  # the namespace still exists
    # pods verified: only pods with the labels count
    web_pods = snap_of(folder).pod_ips["team-a"]
    assert snap.pod_ips["team-a"] < web_pods
    snap = snap_of(folder, labels="app in (web, db), !canary")
    assert rcode(snap, "db.team-a.svc.cluster.local.") == OK
    assert rcode(snap, "web.loose.svc.cluster.local.") == NX
    assert rcode(snap, "3.1.96.10.in-addr.arpa.", "PTR") == NX


def test_namespace_labels_select_namespaces(folder):
    snap = snap_of(folder, namespace_labels="team=a")
    assert rcode(snap, "web.team-a.svc.cluster.local.") == OK
    assert rcode(snap, "web.team-b.svc.cluster.local.") == NX
    assert rcode(snap, "web.loose.svc.cluster.local.") == NX  # no labels but its name
    snap = snap_of(folder, namespace_labels="kubernetes.io/metadata.name in (loose, team-b)")
    assert [rcode(snap, f"web.{ns}.svc.cluster.local.") for ns in ("team-a", "team-b", "loose")
            ] == [NX, OK, OK]
    # both filters: the namespace must pass each
    snap = snap_of(folder, namespace_labels="team", namespaces=["team-b", "loose"])
    assert [rcode(snap, f"web.{ns}.svc.cluster.local.") for ns in ("team-a", "team-b", "loose")
            ] == [NX, OK, NX]


def test_selector_text():
    assert parse_selector("app=web, tier in (a, b),!canary, env!=dev, team") == (
        (("app", "web"),),
        (LabelRequirement("tier", "In", ("a", "b")), LabelRequirement("canary", "DoesNotExist"),
         LabelRequirement("env", "NotIn", ("dev",)), LabelRequirement("team", "Exists")))
    assert parse_selector("k8s.io/name==x") == ((("k8s.io/name", "x"),), ())
    for bad in ("app in (", "a b", "a,", "!a=b", "a in ()", "=x", "a=b c"):
        with pytest.raises(ValueError):
            parse_selector(bad)


@pytest.mark.parametrize("keys, needle", [
    ({"labels": "app in ("}, "config key labels: app in (...: ')' is missing"),
    ({"namespace_labels": 3}, "expected a label selector"),
    ({"namespaces": ["Team_A"]}, "'Team_A' is not a namespace name"),
])
def test_bad_filters_are_config_errors(keys, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        parse(keys)


def test_process_corefile_filters_with_dig(folder, tmp_path, state_home):
    srv = corefile_server(folder, """.:53 {
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        namespaces team-a team-b
        labels app = web
        namespace_labels team
    }
}
""", tmp_path, state_home)
    try:
        assert srv.dig_short("web.team-a.svc.cluster.local") == ["10.96.1.1"]
        assert srv.dig_short("web.team-b.svc.cluster.local") == ["10.96.2.1"]
        for name in ("db.team-a.svc.cluster.local", "web.loose.svc.cluster.local",
                     "loose.svc.cluster.local"):
            out = srv.dig(name)
            assert "status: NXDOMAIN" in out, (name, out)
        assert srv.dig_short("-x", "10.96.1.1") == ["web.team-a.svc.cluster.local."]
        assert "status: NXDOMAIN" in srv.dig("-x", "10.96.3.1")
    finally:
        srv.stop()
