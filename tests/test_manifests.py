"""The manifest source: what it reads, what it skips, and how bad input is
reported (file, line, Kind namespace/name, field) without losing good data."""

import json
import os
from pathlib import Path
from textwrap import dedent

import pytest

from coredns_py.source import objects as o
from coredns_py.errors import SourceError
from coredns_py.source.folder import ManifestSource
from helpers.manifests import documents, service


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text))
    # A distinct mtime per write, so the (mtime, size, inode) cache sees the change
    # even within one clock tick.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    return path


def services(loaded) -> dict:
    return {f"{x.namespace}/{x.name}": x.cluster_ips for x in loaded.objects
            if isinstance(x, o.Service)}


def messages(loaded) -> list[str]:
    return [str(e) for e in loaded.errors]


def test_reads_yaml_yml_json_recursively_and_skips_the_rest(tmp_path):
    write(tmp_path, "a.yaml", service("a", cluster_ip="10.96.0.2"))
    write(tmp_path, "sub/deeper/b.yml", service("b", cluster_ip="10.96.0.3"))
    write(tmp_path, "c.json", json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "c"},
        "spec": {"clusterIP": "10.96.0.4", "ports": [{"port": 80}]}}))
    # hidden files and folders, editor leftovers, other suffixes: skipped
    write(tmp_path, ".hidden.yaml", service("h1", cluster_ip="10.96.0.5"))
    write(tmp_path, ".git/x.yaml", service("h2", cluster_ip="10.96.0.6"))
    write(tmp_path, "a.yaml~", service("h3", cluster_ip="10.96.0.7"))
    write(tmp_path, ".a.yaml.swp", service("h4", cluster_ip="10.96.0.8"))
    write(tmp_path, ".#a.yaml", service("h5", cluster_ip="10.96.0.9"))
    write(tmp_path, "notes.txt", service("h6", cluster_ip="10.96.0.11"))
    loaded = ManifestSource(tmp_path).load()
    assert loaded.errors == ()
    assert services(loaded) == {"default/a": ("10.96.0.2",), "default/b": ("10.96.0.3",),
                                "default/c": ("10.96.0.4",)}
    assert loaded.files == 3


def test_multi_document_list_and_real_dump_fields(tmp_path):
    write(tmp_path, "dump.yaml", """\
        ---
        apiVersion: v1
        kind: List
        items:
        - apiVersion: v1
          kind: Service
          metadata:
            name: api
            namespace: prod
            managedFields: [{manager: kubectl, operation: Update}]
            annotations: {kubectl.kubernetes.io/last-applied-configuration: "{}"}
          spec:
            clusterIP: 10.96.7.7
            clusterIPs: [10.96.7.7]
            ports: [{port: 443, targetPort: 8443, protocol: TCP, name: https}]
            sessionAffinity: None
          status: {loadBalancer: {}}
        - apiVersion: v1
          kind: ConfigMap
          metadata: {name: settings, namespace: prod}
          data: {a: b}
        ---
        ---
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata: {name: i}
    """)
    loaded = ManifestSource(tmp_path).load()
    assert loaded.errors == ()
    assert services(loaded) == {"prod/api": ("10.96.7.7",)}


def test_errors_name_file_line_object_and_field(tmp_path):
    write(tmp_path, "bad.yaml", """\
        apiVersion: v1
        kind: Service
        metadata: {name: good}
        spec: {clusterIP: 10.96.0.2, ports: [{port: 80}]}
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: toobig, namespace: shop}
        spec:
          ports:
          - port: 70000
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata: {name: s1, labels: {kubernetes.io/service-name: good}}
        addressType: IPv4
        endpoints:
        - addresses: [10.1.1.1, not-an-ip]
        ---
        apiVersion: v1
        kind: Service
        metadata: {name: weird}
        spec: {type: Magic}
    """)
    loaded = ManifestSource(tmp_path).load()
    errs = messages(loaded)
    path = str(tmp_path / "bad.yaml")
    # The API server's words for each refusal.
    assert f"{path}:6: Service shop/toobig: field spec.ports[0].port: Invalid value: 70000: " \
           "must be between 1 and 65535, inclusive" in errs
    assert f"{path}:13: EndpointSlice default/s1: field endpoints[0].addresses[1]: " \
           'Invalid value: "not-an-ip": must be a valid IP address, (e.g. 10.9.8.7 or ' \
           "2001:db8::ffff)" in errs
    assert f'{path}:20: Service default/weird: field spec.type: Unsupported value: "Magic": ' \
           'supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"' in errs
    assert services(loaded) == {"default/good": ("10.96.0.2",)}  # the good one is served


def test_yaml_syntax_error_keeps_last_good_objects(tmp_path):
    src = ManifestSource(tmp_path)
    write(tmp_path, "a.yaml", service("a", cluster_ip="10.96.0.2"))
    write(tmp_path, "b.yaml", service("b", cluster_ip="10.96.0.3"))
    first = src.load()
    write(tmp_path, "a.yaml", "apiVersion: v1\nkind: Service\nmetadata: [unclosed\n")
    broken = src.load()
    assert services(broken) == services(first)  # nothing lost
    [err] = messages(broken)
    assert err.startswith(f"{tmp_path / 'a.yaml'}:") and "invalid YAML" in err
    write(tmp_path, "a.yaml", service("a", cluster_ip="10.96.0.9"))
    fixed = src.load()
    assert fixed.errors == ()
    assert services(fixed)["default/a"] == ("10.96.0.9",)
    assert fixed.generation > first.generation


@pytest.mark.parametrize("value, field, why", [
    ("2024-13-45", "metadata.annotations.when", "month must be in 1..12"),  # a timestamp to YAML
    ("!!bool maybe", "metadata.annotations.when", "as bool"),
    ("!!float twelve", "metadata.annotations.when", "as float"),
])
def test_a_value_yaml_cannot_build_is_reported_not_raised(tmp_path, value, field, why):
    # PyYAML lets these escape as plain ValueError/KeyError; they must be
    # reported like any YAML error (file, line, field) and lose nothing.
    src = ManifestSource(tmp_path)
    write(tmp_path, "a.yaml", service("a", cluster_ip="10.96.0.2"))
    write(tmp_path, "b.yaml", service("b", cluster_ip="10.96.0.3"))
    first = src.load()
    write(tmp_path, "a.yaml", service("a", cluster_ip="10.96.0.2").replace(
        "  name: a\n", f"  name: a\n  annotations:\n    when: {value}\n"))
    broken = src.load()
    assert services(broken) == services(first)
    [err] = messages(broken)
    assert err.startswith(f"{tmp_path / 'a.yaml'}:6: invalid YAML: {field}: cannot read "), err
    assert why in err


def test_invalid_object_keeps_its_last_good_version(tmp_path):
    src = ManifestSource(tmp_path)
    write(tmp_path, "a.yaml", documents(service("a", cluster_ip="10.96.0.2"),
                                        service("b", cluster_ip="10.96.0.3")))
    src.load()
    write(tmp_path, "a.yaml", documents(service("a", cluster_ip="999.1.1.1"),
                                        service("b", cluster_ip="10.96.0.4")))
    loaded = src.load()
    assert services(loaded) == {"default/a": ("10.96.0.2",), "default/b": ("10.96.0.4",)}
    [err] = messages(loaded)
    assert "Service default/a" in err and "spec.clusterIP" in err


def test_first_load_of_broken_file_serves_the_rest(tmp_path):
    write(tmp_path, "a.yaml", "key: [unclosed\n")
    write(tmp_path, "b.yaml", service("b", cluster_ip="10.96.0.3"))
    loaded = ManifestSource(tmp_path).load()
    assert services(loaded) == {"default/b": ("10.96.0.3",)}
    assert len(loaded.errors) == 1


def test_duplicate_across_files_first_by_path_wins(tmp_path):
    write(tmp_path, "b/second.yaml", service("dup", cluster_ip="10.96.0.3"))
    write(tmp_path, "a/first.yaml", service("dup", cluster_ip="10.96.0.2"))
    for _ in range(2):  # the same way on every load
        loaded = ManifestSource(tmp_path).load()
        assert services(loaded) == {"default/dup": ("10.96.0.2",)}
        [err] = messages(loaded)
        assert str(tmp_path / "a/first.yaml") in err and str(tmp_path / "b/second.yaml") in err
        assert "Service default/dup" in err


def test_missing_namespace_is_default_and_unknown_kind_is_silent(tmp_path):
    write(tmp_path, "x.yaml", """\
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: c}
        ---
        apiVersion: example.com/v1
        kind: Widget
        metadata: {name: w}
        ---
        # a values file that is not a manifest at all
        replicaCount: 3
    """)
    write(tmp_path, "y.yaml", service("s", cluster_ip="10.96.0.2"))
    loaded = ManifestSource(tmp_path).load()
    assert loaded.errors == ()
    assert services(loaded) == {"default/s": ("10.96.0.2",)}


def test_missing_kind_and_wrong_api_version_are_errors(tmp_path):
    write(tmp_path, "x.yaml", """\
        apiVersion: v1
        metadata: {name: nokind}
        ---
        apiVersion: discovery.k8s.io/v1beta1
        kind: EndpointSlice
        metadata: {name: old}
    """)
    errs = messages(ManifestSource(tmp_path).load())
    assert any("field kind: Object 'Kind' is missing" in e for e in errs)
    assert any("EndpointSlice default/old: field apiVersion" in e for e in errs)


@pytest.mark.parametrize("content, field", [
    ("metadata: {name: Bad_Name}", "metadata.name"),
    ("metadata: {name: ok, namespace: UPPER}", "metadata.namespace"),
    ("metadata: {name: ok}\nspec: {type: ExternalName}", "spec.externalName"),
    ("metadata: {name: ok}\nspec: {clusterIP: 10.96.0.1, clusterIPs: [10.96.0.2]}",
     "spec.clusterIPs"),
    ("metadata: {name: ok}\nspec: {ports: [{port: 80, protocol: HTTP}]}", "spec.ports[0].protocol"),
    ("metadata: {name: ok}\nspec: {ports: [{port: 80, name: a}, {port: 80, name: b}]}",
     "spec.ports[1]"),
    ("metadata: {name: ok}\nspec: {ports: [{port: '80'}]}", "spec.ports[0].port"),
    ("metadata: {name: ok}\nspec: {selector: [a], ports: [{port: 80}]}", "spec.selector"),
    ("metadata: {name: ok}\nspec: []", "spec"),
])
def test_service_field_errors(tmp_path, content, field):
    write(tmp_path, "s.yaml", "apiVersion: v1\nkind: Service\n" + content + "\n")
    errs = messages(ManifestSource(tmp_path).load())
    assert len(errs) == 1 and f"field {field}:" in errs[0], errs


def test_unreadable_or_missing_folder(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        ManifestSource(tmp_path / "nope").load()
    f = write(tmp_path, "file.yaml", "a: b\n")
    with pytest.raises(SourceError, match="not a folder"):
        ManifestSource(f).load()


def test_only_changed_files_are_parsed_again(tmp_path, monkeypatch):
    from coredns_py.source import folder as manifests
    for i in range(5):
        write(tmp_path, f"s{i}.yaml", service(f"s{i}", cluster_ip=f"10.96.0.{i + 2}"))
    src = ManifestSource(tmp_path)
    src.load()
    parsed = []
    real = manifests.parse_file
    monkeypatch.setattr(manifests, "parse_file",
                        lambda path, *a, **kw: parsed.append(path.name) or real(path, *a, **kw))
    unchanged = src.load()
    assert parsed == []
    write(tmp_path, "s3.yaml", service("s3", cluster_ip="10.96.1.1"))
    changed = src.load()
    assert parsed == ["s3.yaml"]
    assert changed.generation == unchanged.generation + 1


def deep_file_error(folder: Path, depth: int) -> str:
    """Load ``folder`` holding deep.yaml, a bad timestamp nested ``depth``
    lists deep, beside a good Service: the Service is served all the same;
    returns the one error, about deep.yaml."""
    write(folder, "deep.yaml", "a: " + "[" * depth + "2024-13-45" + "]" * depth + "\n")
    write(folder, "b.yaml", service("b", cluster_ip="10.96.0.3"))
    loaded = ManifestSource(folder).load()
    assert services(loaded) == {"default/b": ("10.96.0.3",)}
    [err] = messages(loaded)
    return err


def test_a_bad_value_nested_near_the_limit_is_reported_with_its_field(tmp_path):
    # Deeper than the fast constructor recurses (Python's recursion limit),
    # within the nesting limit: PyYAML builds it, the bad scalar is found.
    err = deep_file_error(tmp_path, 990)
    assert err.startswith(f"{tmp_path / 'deep.yaml'}:1: invalid YAML: a[0][0]"), err
    assert "[...]" in err and "cannot read '2024-13-45' as timestamp" in err, err


def test_a_document_nested_beyond_the_limit_is_refused(tmp_path):
    err = deep_file_error(tmp_path, 3000)
    assert err == f"{tmp_path / 'deep.yaml'}:1: nested more than 1000 levels deep (the limit " \
                  "for a document)"
