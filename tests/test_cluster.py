"""What the controllers fill in: workload pods, selector endpoints, named
target ports, StatefulSet pod names, mirrored Endpoints."""

from pathlib import Path
from textwrap import dedent

from coredns_py.cluster import fill as cluster
from coredns_py.config import Config
from coredns_py.source.folder import ManifestSource
from coredns_py.source.selectors import matches
from coredns_py.source.objects import LabelRequirement


def load(tmp_path: Path, text: str, **cfg):
    root = tmp_path / "m"
    root.mkdir(exist_ok=True)
    (root / "all.yaml").write_text(dedent(text))
    loaded = ManifestSource(root).load()
    assert not loaded.errors, [str(e) for e in loaded.errors]
    return cluster.build(loaded.objects, Config(**cfg), None)


def endpoints(cl, ns, name):
    """{(address, hostname, ready)} and the set of slice ports for a Service."""
    out, ports = set(), set()
    for sl in cl.service_slices(ns, name):
        ports |= {(p.name, p.port, p.protocol) for p in sl.ports}
        for ep in sl.endpoints:
            for a in ep.addresses:
                out.add((a, ep.hostname, ep.ready))
    return out, ports


def pods_of(cl, owner):
    return [p for p in cl.pods if p.owner == owner]


def test_match_expressions():
    labels = {"app": "web", "tier": "front"}
    assert matches((("app", "web"),), (), labels)
    assert not matches((("app", "db"),), (), labels)
    req = LabelRequirement
    assert matches((), (req("tier", "In", ("front", "back")),), labels)
    assert not matches((), (req("tier", "NotIn", ("front",)),), labels)
    assert matches((), (req("missing", "NotIn", ("x",)),), labels)  # absent key satisfies NotIn
    assert matches((), (req("app", "Exists"),), labels)
    assert matches((), (req("zone", "DoesNotExist"),), labels)
    assert not matches((), (req("zone", "Exists"),), labels)
    assert matches((), (), labels)  # empty selector matches everything


DEPLOYMENT_AND_SERVICE = """\
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web}
    spec:
      replicas: 3
      selector:
        matchLabels: {app: web}
        matchExpressions:
        - {key: track, operator: In, values: [stable, canary]}
      template:
        metadata: {labels: {app: web, track: stable}}
        spec:
          containers:
          - name: c
            image: x
            ports:
            - {name: http, containerPort: 8080}
            - {name: metrics, containerPort: 9100}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: web}
    spec:
      selector: {app: web}
      ports:
      - {name: http, port: 80, targetPort: http}
      - {name: metrics, port: 9100, targetPort: 9100}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: other-track}
    spec:
      selector: {app: web, track: canary}
      ports: [{port: 80}]
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: elsewhere}
    spec:
      selector: {app: web}
      ports: [{port: 80}]
"""


def test_deployment_pods_and_selector_endpoints(tmp_path):
    cl = load(tmp_path, DEPLOYMENT_AND_SERVICE)
    pods = pods_of(cl, "Deployment/web")
    assert len(pods) == 3
    for p in pods:
        # <deployment>-<pod-template-hash>-<suffix>, as a cluster names them
        deploy, template_hash, suffix = p.name.rsplit("-", 2)
        assert deploy == "web" and len(template_hash) == 10 and len(suffix) == 5
        assert dict(p.labels) == {"app": "web", "track": "stable"}
        assert p.ready and len(p.ips) == 1
    eps, ports = endpoints(cl, "default", "web")
    assert {a for a, _, _ in eps} == {p.ips[0] for p in pods}
    # targetPort "http" resolved through the container port's name
    assert ports == {("http", 8080, "TCP"), ("metrics", 9100, "TCP")}
    assert endpoints(cl, "default", "other-track")[0] == set()  # no canary pods
    assert endpoints(cl, "elsewhere", "web")[0] == set()  # selectors stay in their namespace


def test_named_target_port_missing_on_pod_leaves_port_out(tmp_path):
    cl = load(tmp_path, """\
        apiVersion: v1
        kind: Pod
        metadata: {name: p1, labels: {app: a}}
        spec: {containers: [{name: c, image: x, ports: [{name: web, containerPort: 81}]}]}
        status: {podIP: 10.244.9.9}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: a}
        spec:
          selector: {app: a}
          ports:
          - {name: web, port: 80, targetPort: web}
          - {name: admin, port: 90, targetPort: admin}
    """)
    eps, ports = endpoints(cl, "default", "a")
    assert eps == {("10.244.9.9", "", True)}
    assert ports == {("web", 81, "TCP")}


def test_statefulset_pods_have_stable_names_and_hostnames(tmp_path):
    cl = load(tmp_path, """\
        apiVersion: v1
        kind: Service
        metadata: {name: nginx}
        spec:
          clusterIP: None
          selector: {app: nginx}
          ports: [{name: web, port: 80}]
        ---
        apiVersion: apps/v1
        kind: StatefulSet
        metadata: {name: web}
        spec:
          serviceName: nginx
          replicas: 3
          selector: {matchLabels: {app: nginx}}
          template:
            metadata: {labels: {app: nginx}}
            spec: {containers: [{name: n, image: x, ports: [{name: web, containerPort: 80}]}]}
    """)
    pods = sorted(pods_of(cl, "StatefulSet/web"), key=lambda p: p.name)
    assert [p.name for p in pods] == ["web-0", "web-1", "web-2"]
    assert all(p.hostname == p.name and p.subdomain == "nginx" for p in pods)
    eps, _ = endpoints(cl, "default", "nginx")
    assert {(h, r) for _, h, r in eps} == {("web-0", True), ("web-1", True), ("web-2", True)}


def test_hostname_only_when_subdomain_names_the_service(tmp_path):
    cl = load(tmp_path, """\
        apiVersion: v1
        kind: Pod
        metadata: {name: busybox1, labels: {name: busybox}}
        spec: {hostname: busybox-1, subdomain: other, containers: [{name: c, image: x}]}
        status: {podIP: 10.244.1.1}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: busybox2, labels: {name: busybox}}
        spec: {hostname: busybox-2, subdomain: busybox-subdomain, containers: [{name: c, image: x}]}
        status: {podIP: 10.244.1.2}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: busybox-subdomain}
        spec: {clusterIP: None, selector: {name: busybox}, ports: [{name: foo, port: 1234}]}
    """)
    eps, _ = endpoints(cl, "default", "busybox-subdomain")
    assert eps == {("10.244.1.1", "", True), ("10.244.1.2", "busybox-2", True)}


def test_readiness_and_publish_not_ready(tmp_path):
    pods = """\
        apiVersion: v1
        kind: Pod
        metadata: {name: ok, labels: {app: a}}
        status: {podIP: 10.244.0.5, phase: Running}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: starting, labels: {app: a}}
        status:
          podIP: 10.244.0.6
          phase: Running
          conditions: [{type: Ready, status: "False"}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: leaving, labels: {app: a}, deletionTimestamp: "2026-01-01T00:00:00Z"}
        status: {podIP: 10.244.0.7, phase: Running}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: done, labels: {app: a}}
        status: {podIP: 10.244.0.8, phase: Succeeded}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: a}
        spec: {clusterIP: None, selector: {app: a}, publishNotReadyAddresses: %s}
    """
    eps, _ = endpoints(load(tmp_path, pods % "false"), "default", "a")
    assert eps == {("10.244.0.5", "", True), ("10.244.0.6", "", False),
                   ("10.244.0.7", "", False)}
    eps, _ = endpoints(load(tmp_path, pods % "true"), "default", "a")
    assert eps == {("10.244.0.5", "", True), ("10.244.0.6", "", True),
                   ("10.244.0.7", "", True)}


def test_explicit_slices_win_over_selector_and_endpoints(tmp_path):
    cl = load(tmp_path, """\
        apiVersion: v1
        kind: Pod
        metadata: {name: p, labels: {app: a}}
        status: {podIP: 10.244.0.5}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: a}
        spec: {clusterIP: 10.96.1.1, selector: {app: a}, ports: [{port: 80}]}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: a-abc, labels: {kubernetes.io/service-name: a}}
        addressType: IPv4
        endpoints: [{addresses: [10.1.1.1]}]
        ports: [{port: 80}]
        ---
        apiVersion: v1
        kind: Endpoints
        metadata: {name: a}
        subsets: [{addresses: [{ip: 10.2.2.2}], ports: [{port: 80}]}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: legacy}
        spec: {clusterIP: 10.96.1.2, ports: [{port: 80}]}
        ---
        apiVersion: v1
        kind: Endpoints
        metadata: {name: legacy}
        subsets:
        - addresses: [{ip: 10.3.3.3, hostname: db}]
          notReadyAddresses: [{ip: 10.3.3.4}]
          ports: [{name: pg, port: 5432}]
    """)
    # A dump of a real cluster: its slices are used as they are, and the
    # Endpoints (which the mirroring controller would skip) add nothing.
    assert endpoints(cl, "default", "a")[0] == {("10.1.1.1", "", True)}
    eps, ports = endpoints(cl, "default", "legacy")
    assert eps == {("10.3.3.3", "db", True), ("10.3.3.4", "", False)}
    assert ports == {("pg", 5432, "TCP")}


def test_namespaces_exist_by_object_or_by_content(tmp_path):
    cl = load(tmp_path, """\
        apiVersion: v1
        kind: Namespace
        metadata: {name: empty}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: s, namespace: busy}
        spec: {type: ExternalName, externalName: example.com}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: t}
        spec: {clusterIP: 10.96.3.3, ports: [{port: 80}]}
    """)
    # kube-system holds the built-in kube-dns.
    assert cl.namespaces == {"empty", "busy", "default", "kube-system"}


def test_daemonset_and_replicaset_pods(tmp_path):
    cl = load(tmp_path, """\
        apiVersion: apps/v1
        kind: DaemonSet
        metadata: {name: agent, namespace: kube-system}
        spec:
          selector: {matchLabels: {app: agent}}
          template: {metadata: {labels: {app: agent}}, spec: {containers: [{name: c, image: x}]}}
        ---
        apiVersion: apps/v1
        kind: ReplicaSet
        metadata: {name: front}
        spec:
          replicas: 2
          selector: {matchLabels: {app: front}}
          template: {metadata: {labels: {app: front}}, spec: {containers: [{name: c, image: x}]}}
    """)
    assert len(pods_of(cl, "DaemonSet/agent")) == 1  # one node: one pod
    front = pods_of(cl, "ReplicaSet/front")
    assert len(front) == 2 and all(p.name.startswith("front-") for p in front)
