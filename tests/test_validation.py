"""What the API server refuses is refused here, in its words: each refusal
names the file and line, the object and the field; the rest of the folder is
served, and a refused object keeps its last good version. Documents of kinds
we do not serve are skipped and counted; a typo of one of ours is an error
saying which kind was meant."""

from __future__ import annotations

import os
from pathlib import Path
from textwrap import dedent

import pytest

from coredns_py.source import objects as o
from coredns_py.source import validation as v
from coredns_py.source.kinds import meant_kind
from coredns_py.source.folder import ManifestSource

DNS1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
           "with an alphabetic character, and end with an alphanumeric character (e.g. "
           "'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
             "'-' or '.', and must start and end with an alphanumeric character (e.g. "
             "'example.com', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
         "and must start and end with an alphanumeric character (e.g. 'my-name',  or "
         "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text))
    st = path.stat()  # a distinct mtime per write, for the (mtime, size, inode) cache
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    return path


def service_doc(spec: str, name: str = "web", namespace: str = "shop") -> str:
    return (f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
            f"spec:\n{spec}")


# (spec of Service shop/web, field, the API server's message) -- one refusal each.
SERVICE_REFUSALS = [
    ("  type: ExternalName\n  externalName: 'not a host name!'\n", "spec.externalName",
     f'Invalid value: "not a host name!": {SUBDOMAIN}'),
    ("  type: ExternalName\n  externalName: Example.COM\n", "spec.externalName",
     f'Invalid value: "Example.COM": {SUBDOMAIN}'),
    ("  type: ExternalName\n", "spec.externalName", "Required value"),
    ("  type: ExternalName\n  externalName: example.com\n  clusterIP: 10.96.0.5\n",
     "spec.clusterIP", "Forbidden: may not be set for ExternalName services"),
    ("  ports:\n  - {name: http, port: 80}\n  - {name: http, port: 81}\n", "spec.ports[1].name",
     'Duplicate value: "http"'),
    ("  ports:\n  - {name: http, port: 80}\n  - {port: 81}\n", "spec.ports[1].name",
     "Required value"),
    ("  ports:\n  - {name: a, port: 80}\n  - {name: b, port: 80}\n", "spec.ports[1]",
     "Duplicate value: 80/TCP"),
    ("  ports:\n  - {name: HTTP, port: 80}\n", "spec.ports[0].name",
     f'Invalid value: "HTTP": {LABEL}'),
    ("  ports:\n  - {port: 80, targetPort: web_port}\n", "spec.ports[0].targetPort",
     'Invalid value: "web_port": must contain only alpha-numeric characters (a-z, 0-9), and '
     "hyphens (-)"),
    ("  ports:\n  - {port: 80, targetPort: '8080'}\n", "spec.ports[0].targetPort",
     'Invalid value: "8080": must contain at least one letter (a-z)'),
    ("  ports:\n  - {port: 80, targetPort: a-very-long-port-name}\n", "spec.ports[0].targetPort",
     'Invalid value: "a-very-long-port-name": must be no more than 15 characters'),
    ("  ports:\n  - {port: 0}\n", "spec.ports[0].port",
     "Invalid value: 0: must be between 1 and 65535, inclusive"),
    ("  ports:\n  - {port: 80, protocol: HTTP}\n", "spec.ports[0].protocol",
     'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"'),
    ("  type: Balancer\n  ports: [{port: 80}]\n", "spec.type",
     'Unsupported value: "Balancer": supported values: "ClusterIP", "ExternalName", '
     '"LoadBalancer", "NodePort"'),
    ("  clusterIP: 10.96.5.5\n", "spec.ports", "Required value"),
    ("  type: NodePort\n  clusterIP: None\n  ports: [{port: 80}]\n", "spec.clusterIP",
     'Invalid value: "None": may not be set to \'None\' for NodePort services'),
    ("  type: LoadBalancer\n  clusterIP: None\n  ports: [{port: 80}]\n", "spec.clusterIP",
     'Invalid value: "None": may not be set to \'None\' for LoadBalancer services'),
    ("  ports: [{port: 80, nodePort: 30080}]\n", "spec.ports[0].nodePort",
     "Forbidden: may not be used when `type` is 'ClusterIP'"),
    ("  clusterIPs: [10.96.5.5]\n  ports: [{port: 80}]\n", "spec.clusterIPs",
     'Invalid value: ["10.96.5.5"]: must be empty when `clusterIP` is not specified'),
    ("  clusterIP: 10.96.5.5\n  clusterIPs: [10.96.5.6]\n  ports: [{port: 80}]\n",
     "spec.clusterIPs", 'Invalid value: ["10.96.5.6"]: first value must match `clusterIP`'),
    ("  clusterIP: 10.96.5.5\n  clusterIPs: [10.96.5.5, 10.96.5.6]\n"
     "  ipFamilyPolicy: PreferDualStack\n  ports: [{port: 80}]\n", "spec.clusterIPs",
     'Invalid value: ["10.96.5.5", "10.96.5.6"]: may specify no more than one IP for each '
     "IP family"),
    ("  clusterIP: 10.96.5.5\n  ipFamilies: [IPv6]\n  ports: [{port: 80}]\n",
     "spec.clusterIPs[0]", 'Invalid value: "10.96.5.5": expected an IPv6 value as indicated by '
     "`ipFamilies[0]`"),
    ("  ipFamilies: [IPv4, IPv6]\n  ports: [{port: 80}]\n", "spec.ipFamilyPolicy",
     "Required value: must be 'RequireDualStack' or 'PreferDualStack' when multiple IP "
     "families are specified"),
    ("  ipFamilyPolicy: DualStack\n  ports: [{port: 80}]\n", "spec.ipFamilyPolicy",
     'Unsupported value: "DualStack"'),
    ("  selector: {'app/x/y': web}\n  ports: [{port: 80}]\n", "spec.selector",
     'Invalid value: "app/x/y": a valid label key must consist of alphanumeric characters'),
    ("  selector: {app: 'a b'}\n  ports: [{port: 80}]\n", "spec.selector",
     'Invalid value: "a b": a valid label must be an empty string or consist of alphanumeric'),
    ("  allocateLoadBalancerNodePorts: false\n  ports: [{port: 80}]\n",
     "spec.allocateLoadBalancerNodePorts",
     "Forbidden: may only be used when `type` is 'LoadBalancer'"),
]


@pytest.mark.parametrize("spec,field,message", SERVICE_REFUSALS,
                         ids=[f"{f}:{m[:30]}" for _s, f, m in SERVICE_REFUSALS])
def test_service_refused_as_the_api_server_refuses_it(tmp_path, spec, field, message):
    path = write(tmp_path, "bad.yaml", "# a comment first\n" + service_doc(spec))
    write(tmp_path, "good.yaml", service_doc("  ports: [{port: 80}]\n", name="good"))
    loaded = ManifestSource(tmp_path).load()
    [err] = [str(e) for e in loaded.errors]
    assert err.startswith(f"{path}:2: Service shop/web: field {field}: {message}"), err
    # Everything else is served.
    assert [f"{s.namespace}/{s.name}" for s in loaded.objects] == ["shop/good"]


# (document, file line it starts on, object, field, message) for other kinds and names.
OTHER_REFUSALS = [
    ("apiVersion: v1\nkind: Service\nmetadata: {name: 1st-api}\nspec: {ports: [{port: 80}]}\n",
     "Service default/1st-api", "metadata.name", f'Invalid value: "1st-api": {DNS1035}'),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: Web}\nspec: {ports: [{port: 80}]}\n",
     "Service default/Web", "metadata.name", 'Invalid value: "Web": a DNS-1035 label'),
    ("apiVersion: v1\nkind: Service\nmetadata: {namespace: shop}\nspec: {ports: [{port: 80}]}\n",
     "Service shop/?", "metadata.name", "Required value: name or generateName is required"),
    ("apiVersion: v1\nkind: Namespace\nmetadata: {name: my.ns}\n", "Namespace my.ns",
     "metadata.name", 'Invalid value: "my.ns": must not contain dots'),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: Shop}\n", "Pod Shop/p",
     "metadata.namespace", f'Invalid value: "Shop": {LABEL}'),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p_1}\n", "Pod default/p_1", "metadata.name",
     f'Invalid value: "p_1": {SUBDOMAIN}'),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {hostname: Web}\n", "Pod default/p",
     "spec.hostname", 'Invalid value: "Web"'),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n"
     "    ports: [{name: http, containerPort: 80}, {name: http, containerPort: 81}]\n",
     "Pod default/p", "spec.containers[0].ports[1].name", 'Duplicate value: "http"'),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n"
     "    ports: [{name: web--port, containerPort: 80}]\n", "Pod default/p",
     "spec.containers[0].ports[0].name", "must not contain consecutive hyphens"),
    ("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\n"
     "endpoints: [{addresses: [10.1.1.1]}]\n", "EndpointSlice default/s", "addressType",
     "Required value"),
    ("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\n"
     "addressType: IP\n", "EndpointSlice default/s", "addressType",
     'Unsupported value: "IP": supported values: "FQDN", "IPv4", "IPv6"'),
    ("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\n"
     "addressType: IPv4\nendpoints: [{addresses: ['fd00::1']}]\n", "EndpointSlice default/s",
     "endpoints[0].addresses[0]", 'Invalid value: "fd00::1": must be a valid IPv4 address'),
    ("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\n"
     "addressType: IPv6\nendpoints: [{addresses: []}]\n", "EndpointSlice default/s",
     "endpoints[0].addresses", "Required value: must contain at least 1 address"),
    ("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s}\n"
     "addressType: IPv4\nports: [{name: dns, port: 53}, {name: dns, port: 54}]\n",
     "EndpointSlice default/s", "ports[1].name", 'Duplicate value: "dns"'),
    ("apiVersion: v1\nkind: Endpoints\nmetadata: {name: e}\nsubsets:\n"
     "- addresses: [{ip: 10.1.1.1}]\n  ports: [{name: a, port: 80}, {port: 81}]\n",
     "Endpoints default/e",
     "subsets[0].ports[1].name", "Required value"),
    ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"
     "spec: {template: {metadata: {labels: {app: d}}}}\n", "Deployment default/d",
     "spec.selector", "Required value"),
    ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: -1\n"
     "  selector: {matchLabels: {app: d}}\n", "Deployment default/d", "spec.replicas",
     "Invalid value: -1: must be greater than or equal to 0"),
    ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n"
     "  selector: {matchLabels: {app: d}}\n  template: {metadata: {labels: {app: e}}}\n",
     "Deployment default/d", "spec.template.metadata.labels",
     "`selector` does not match template `labels`"),
    ("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: s}\nspec:\n"
     "  selector: {matchExpressions: [{key: app, operator: In}]}\n", "StatefulSet default/s",
     "spec.selector.matchExpressions[0].values",
     "Required value: must be specified when `operator` is 'In' or 'NotIn'"),
    ("apiVersion: v1\nmetadata: {name: nokind}\n", "", "kind", "Object 'Kind' is missing"),
    ("kind: Service\nmetadata: {name: noapi}\n", "", "apiVersion",
     "Object 'apiVersion' is missing"),
    ("apiVersion: apps/v1beta1\nkind: Deployment\nmetadata: {name: old}\n",
     "Deployment default/old", "apiVersion",
     'no matches for kind "Deployment" in version "apps/v1beta1": Deployment is served as '
     "apps/v1"),
    ("apiVersion: v1\nkind: Deployment\nmetadata: {name: wronggroup}\n",
     "Deployment default/wronggroup", "apiVersion",
     'no matches for kind "Deployment" in version "v1"'),
]


@pytest.mark.parametrize("doc,obj,field,message", OTHER_REFUSALS,
                         ids=[f"{o_ or 'doc'}:{f}" for _d, o_, f, _m in OTHER_REFUSALS])
def test_other_refusals(tmp_path, doc, obj, field, message):
    path = write(tmp_path, "bad.yaml", "---\n" + doc)
    loaded = ManifestSource(tmp_path).load()
    [err] = [str(e) for e in loaded.errors]
    where = f"{path}:2: {obj + ': ' if obj else ''}field {field}: "
    assert err.startswith(where) and message in err, err
    assert loaded.objects == ()


@pytest.mark.parametrize("typo,meant", [
    ("Servce", "Service"), ("service", "Service"), ("SERVICE", "Service"),
    ("Services", "Service"), ("Deploymnet", "Deployment"), ("Deployments", "Deployment"),
    ("endpointslice", "EndpointSlice"), ("Endpoint", "Endpoints"), ("Pods", "Pod"),
    ("pod", "Pod"), ("NameSpace", "Namespace"), ("StatefullSet", "StatefulSet"),
    ("Daemonset", "DaemonSet"),
])
def test_a_typo_in_kind_says_which_kind_was_meant(tmp_path, typo, meant):
    api = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1",
           "EndpointSlice": "discovery.k8s.io/v1"}.get(meant, "v1")
    path = write(tmp_path, "x.yaml", f"apiVersion: {api}\nkind: {typo}\nmetadata: {{name: x}}\n")
    [err] = [str(e) for e in ManifestSource(tmp_path).load().errors]
    assert err.startswith(f"{path}:1: {typo} ") and "field kind: " in err, err
    assert f'no matches for kind "{typo}" in version "{api}": did you mean "{meant}"?' in err


# Kinds of a real cluster (built-in APIs), none of which is a typo of ours.
REAL_KINDS = """
Binding ComponentStatus ConfigMap Event LimitRange Node PersistentVolume PersistentVolumeClaim
PodTemplate ReplicationController ResourceQuota Secret ServiceAccount
MutatingWebhookConfiguration ValidatingWebhookConfiguration ValidatingAdmissionPolicy
CustomResourceDefinition APIService ControllerRevision TokenReview LocalSubjectAccessReview
SelfSubjectAccessReview SubjectAccessReview HorizontalPodAutoscaler CronJob Job
CertificateSigningRequest Lease EndpointSliceList IngressClass Ingress NetworkPolicy
RuntimeClass PodDisruptionBudget ClusterRoleBinding ClusterRole RoleBinding Role PriorityClass
CSIDriver CSINode CSIStorageCapacity StorageClass VolumeAttachment FlowSchema
PriorityLevelConfiguration ServiceCIDR IPAddress ResourceClaim DeviceClass PodScheduling
""".split()


def test_real_kinds_are_skipped_and_counted_not_taken_for_typos(tmp_path):
    docs = "---\n".join(f"apiVersion: v1\nkind: {kind}\nmetadata: {{name: x{i}}}\n"
                        for i, kind in enumerate(REAL_KINDS))
    write(tmp_path, "all.yaml", docs)
    loaded = ManifestSource(tmp_path).load()
    assert loaded.errors == ()
    assert sorted(doc.kind for doc in loaded.ignored) == sorted(REAL_KINDS)
    assert all(meant_kind(kind) is None for kind in REAL_KINDS)


def test_custom_resources_and_non_objects_are_skipped_and_counted(tmp_path):
    write(tmp_path, "mixed.yaml", """\
        # Knative's Service is another kind than ours: its own API group.
        apiVersion: serving.knative.dev/v1
        kind: Service
        metadata: {name: hello}
        ---
        apiVersion: example.com/v1
        kind: Servce
        metadata: {name: not-a-typo-of-ours}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: real}
        spec: {ports: [{port: 80}]}
    """)
    write(tmp_path, "values.yaml", "replicaCount: 3\nimage: {repository: nginx}\n")
    write(tmp_path, "compose.yaml", "services:\n  web: {image: nginx}\n")
    write(tmp_path, "list.yaml", "- a\n- b\n")
    loaded = ManifestSource(tmp_path).load()
    assert loaded.errors == ()
    assert [s.name for s in loaded.objects] == ["real"]
    assert sorted(doc.kind for doc in loaded.ignored) == [
        "", "", "", "Servce", "Service.serving.knative.dev"]
    names = sorted(str(doc) for doc in loaded.ignored)
    assert any(n.endswith("mixed.yaml:2: Service hello") for n in names), names
    assert any(n.endswith("values.yaml:1: not a Kubernetes object (no apiVersion or kind)")
               for n in names), names


def test_a_refused_object_keeps_its_last_good_version(tmp_path):
    src = ManifestSource(tmp_path)
    write(tmp_path, "a.yaml", service_doc("  ports:\n  - {name: http, port: 80}\n"
                                          "  - {name: admin, port: 81}\n"))
    write(tmp_path, "b.yaml", service_doc("  ports: [{port: 80}]\n", name="other"))
    first = src.load()
    assert len(first.objects) == 2
    # Both ports named http now: refused; the good version stays served.
    write(tmp_path, "a.yaml", service_doc("  ports:\n  - {name: http, port: 80}\n"
                                          "  - {name: http, port: 81}\n"))
    write(tmp_path, "b.yaml", service_doc("  ports: [{port: 8080}]\n", name="other"))
    second = src.load()
    [err] = [str(e) for e in second.errors]
    assert "Service shop/web: field spec.ports[1].name: Duplicate value" in err
    web = next(s for s in second.objects if s.name == "web")
    assert [p.name for p in web.ports] == ["http", "admin"]
    other = next(s for s in second.objects if s.name == "other")
    assert [p.port for p in other.ports] == [8080]  # the rest moves on
    # A typo in kind is a refusal too: the Service it was stays.
    write(tmp_path, "a.yaml", service_doc("  ports: [{port: 80}]\n").replace("kind: Service",
                                                                             "kind: Servce"))
    third = src.load()
    assert any('did you mean "Service"' in str(e) for e in third.errors)
    assert [p.name for p in next(s for s in third.objects if s.name == "web").ports] == [
        "http", "admin"]


def test_valid_services_of_every_shape_are_accepted(tmp_path):
    write(tmp_path, "ok.yaml", """\
        apiVersion: v1
        kind: Service
        metadata: {name: ext, namespace: shop}
        spec: {type: ExternalName, externalName: db.example.com., clusterIP: ""}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: headless, namespace: shop}
        spec: {clusterIP: None}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: dual, namespace: shop}
        spec:
          clusterIP: 10.96.7.7
          clusterIPs: [10.96.7.7, "fd00::7"]
          ipFamilies: [IPv4, IPv6]
          ipFamilyPolicy: RequireDualStack
          ports: [{name: http, port: 80, targetPort: http}, {name: dns, port: 53, protocol: UDP}]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: lb, namespace: shop}
        spec:
          type: LoadBalancer
          allocateLoadBalancerNodePorts: false
          selector: {app.kubernetes.io/name: lb, tier: ""}
          ports: [{port: 443, targetPort: 8443}]
    """)
    loaded = ManifestSource(tmp_path).load()
    assert loaded.errors == ()
    by_name = {s.name: s for s in loaded.objects}
    assert by_name["ext"].external_name == "db.example.com"
    assert by_name["headless"].headless
    assert by_name["dual"].cluster_ips == ("10.96.7.7", "fd00::7")
    assert by_name["lb"].type == o.LOAD_BALANCER and not by_name["lb"].wants_node_ports


@pytest.mark.parametrize("check,value,ok", [
    (v.dns1035_label, "web", True), (v.dns1035_label, "1web", False),
    (v.dns1035_label, "a" * 63, True), (v.dns1035_label, "a" * 64, False),
    (v.dns1123_label, "1web", True), (v.dns1123_label, "web-", False),
    (v.dns1123_label, "wéb", False), (v.dns1123_subdomain, "a.b-c.d", True),
    (v.dns1123_subdomain, "a..b", False), (v.dns1123_subdomain, ("a" * 63 + ".") * 4, False),
    (v.port_name, "http", True), (v.port_name, "h2c-web", True), (v.port_name, "80", False),
    (v.port_name, "-http", False), (v.port_name, "HTTP", False),
    (v.label_key, "app.kubernetes.io/name", True), (v.label_key, "/name", False),
    (v.label_key, "a/b/c", False), (v.label_key, "Name_1.x", True),
    (v.label_value, "", True), (v.label_value, "v1.2_x", True), (v.label_value, "-x", False),
])
def test_name_checks(check, value, ok):
    assert (check(value) == []) is ok, check(value)
