"""Where objects land: their own namespace, the default namespace (`kubectl
apply -n`), or a kustomization's, as kustomize puts them (the outer
kustomization wins); other kustomize fields are said not to be applied."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from coredns_py.source.folder import ManifestSource
from helpers.manifests import deployment, service, write

from test_validation import write as write_text


def placed(loaded) -> list[str]:
    return sorted(f"{o.kind} {o.namespace}/{o.name}" for o in loaded.objects
                  if o.kind != "Namespace")


def test_objects_that_name_no_namespace_land_in_the_default_namespace(tmp_path):
    write(tmp_path, "install.yaml", service("server"), deployment("server"),
          service("metrics", "monitoring"))
    assert placed(ManifestSource(tmp_path).load()) == [
        "Deployment default/server", "Service default/server", "Service monitoring/metrics"]
    loaded = ManifestSource(tmp_path, default_namespace="argocd").load()
    assert placed(loaded) == [
        "Deployment argocd/server", "Service argocd/server", "Service monitoring/metrics"]


def test_errors_name_the_namespace_the_object_lands_in(tmp_path):
    path = write(tmp_path, "bad.yaml", service("bad", ports=[{"port": 70000}]))
    [err] = ManifestSource(tmp_path, default_namespace="argocd").load().errors
    assert str(err).startswith(f"{path}:1: Service argocd/bad: field spec.ports[0].port:")


def kustomization(folder: Path, text: str, name: str = "kustomization.yaml") -> Path:
    return write_text(folder, name, text)


def test_kustomization_namespace_overrides_what_objects_say(tmp_path):
    write(tmp_path, "app/deploy.yaml", service("web", "elsewhere"), deployment("web"))
    write(tmp_path, "app/extra.yaml", service("extra"))
    write(tmp_path, "app/unlisted.yaml", service("unlisted", "mine"))
    kustomization(tmp_path / "app", """\
        apiVersion: kustomize.config.k8s.io/v1beta1
        kind: Kustomization
        namespace: shop
        resources:
        - deploy.yaml
        - extra.yaml
    """)
    loaded = ManifestSource(tmp_path, default_namespace="argocd").load()
    assert loaded.errors == () and loaded.notices == ()
    assert placed(loaded) == ["Deployment shop/web", "Service mine/unlisted",
                              "Service shop/extra", "Service shop/web"]
    assert loaded.files == 4  # three manifests and the kustomization


def test_nested_kustomizations_the_outer_one_wins(tmp_path):
    write(tmp_path, "base/svc.yaml", service("api"))
    kustomization(tmp_path / "base", "namespace: base-ns\nresources: [svc.yaml]\n")
    write(tmp_path, "mid/own.yaml", service("own"))
    kustomization(tmp_path / "mid", "resources: [../base, own.yaml]\n")  # no namespace
    kustomization(tmp_path / "prod", "namespace: prod\nresources: [../mid]\n",
                  name="kustomization.yml")
    kustomization(tmp_path / "dev", "namespace: dev\nresources:\n- ../base\n",
                  name="Kustomization")
    loaded = ManifestSource(tmp_path).load()
    assert loaded.errors == ()
    # base is under two top-level kustomizations: it lands in both namespaces,
    # as applying both overlays would put it.
    assert placed(loaded) == ["Service dev/api", "Service prod/api", "Service prod/own"]


def test_only_an_inner_namespace_applies_to_its_own_files(tmp_path):
    write(tmp_path, "base/svc.yaml", service("api"))
    kustomization(tmp_path / "base", "namespace: base-ns\nresources: [svc.yaml]\n")
    kustomization(tmp_path / "top", "resources: [../base]\n")
    assert placed(ManifestSource(tmp_path).load()) == ["Service base-ns/api"]


def test_fields_not_applied_are_said_with_the_file(tmp_path):
    write(tmp_path, "app/svc.yaml", service("web"))
    path = kustomization(tmp_path / "app", """\
        namespace: shop
        namePrefix: prod-
        resources: [svc.yaml]
        patches:
        - path: patch.yaml
        images:
        - name: nginx
          newTag: "1.27"
    """)
    loaded = ManifestSource(tmp_path).load()
    assert loaded.errors == ()
    [notice] = [str(n) for n in loaded.notices]
    assert notice == (f"{path}: images, namePrefix, patches are not applied here (only "
                      f"namespace and resources are); to serve what kustomize builds, render "
                      f"it: kubectl kustomize {tmp_path / 'app'} > rendered.yaml")
    assert placed(loaded) == ["Service shop/web"]  # the namespace is applied


@pytest.mark.parametrize("text,field,words", [
    ("namespace: Shop\nresources: [svc.yaml]\n", "namespace", 'Invalid value: "Shop"'),
    ("resources: svc.yaml\n", "resources", "expected a list of paths"),
    ("resources: [missing.yaml]\n", "resources[0]", "no such file or folder"),
    ("resources: [sub]\n", "resources[0]", "no kustomization file"),
    ("resources: [\n", None, "invalid YAML"),
])
def test_broken_kustomizations_are_errors(tmp_path, text, field, words):
    write(tmp_path, "app/svc.yaml", service("web", "own"))
    (tmp_path / "app" / "sub").mkdir()
    path = kustomization(tmp_path / "app", text)
    loaded = ManifestSource(tmp_path).load()
    [err] = [str(e) for e in loaded.errors]
    assert err.startswith(f"{path}") and words in err, err
    if field:
        assert f"field {field}: " in err, err
    assert placed(loaded) == ["Service own/web"]  # read as it is


def test_remote_and_outside_resources_are_warnings(tmp_path):
    root = tmp_path / "m"
    write(tmp_path, "outside/svc.yaml", service("far"))
    write(root, "app/svc.yaml", service("web"))
    kustomization(root / "app", dedent("""\
        namespace: shop
        resources:
        - svc.yaml
        - https://github.com/example/app//config?ref=v1
        - ../../outside
    """))
    loaded = ManifestSource(root).load()
    assert loaded.errors == ()
    notices = [str(n) for n in loaded.notices]
    assert any("field resources[1]: remote resource https://github.com" in n for n in notices)
    assert any("field resources[2]: ../../outside is outside the manifests folder" in n
               for n in notices)
    assert placed(loaded) == ["Service shop/web"]


def test_a_cycle_of_kustomizations_is_an_error(tmp_path):
    write(tmp_path, "a/svc.yaml", service("web"))
    kustomization(tmp_path / "a", "namespace: one\nresources: [svc.yaml, ../b]\n")
    kustomization(tmp_path / "b", "resources: [../a]\n")
    loaded = ManifestSource(tmp_path).load()
    [err] = [str(e) for e in loaded.errors]
    assert "resources form a cycle" in err
    assert placed(loaded) == ["Service one/web"]


def test_editing_the_kustomization_moves_the_objects(tmp_path):
    write(tmp_path, "svc.yaml", service("web"))
    k = kustomization(tmp_path, "namespace: one\nresources: [svc.yaml]\n")
    src = ManifestSource(tmp_path)
    first = src.load()
    assert placed(first) == ["Service one/web"]
    write_text(tmp_path, "kustomization.yaml", "namespace: two\nresources: [svc.yaml]\n")
    second = src.load()
    assert placed(second) == ["Service two/web"] and second.generation > first.generation
    k.unlink()
    assert placed(src.load()) == ["Service default/web"]


def test_cached_and_parallel_parses_put_objects_where_this_load_would(tmp_path):
    from conftest import wait_until
    from coredns_py.source import parallel
    from coredns_py.source.manifest_file import parse_file
    from coredns_py.source.tree import walk
    from coredns_py.source.parse_cache import ParseCache
    root = tmp_path / "m"
    for i in range(4):
        write(root, f"f{i}.yaml", service(f"s{i}"))
    kustomization(root / "k", "namespace: forced\nresources: [svc.yaml]\n")
    write(root, "k/svc.yaml", service("k"))
    cache = tmp_path / "state" / "s.json.parsed"
    first = ManifestSource(root, cache=ParseCache(cache), default_namespace="one").load()
    assert placed(first) == ["Service forced/k"] + [f"Service one/s{i}" for i in range(4)]
    wait_until(cache.exists, timeout=10)  # written by a child, in the background
    # A restart with another default namespace: the cached parses are not
    # taken for files whose objects land elsewhere now.
    second = ManifestSource(root, cache=ParseCache(cache), default_namespace="two").load()
    assert placed(second) == ["Service forced/k"] + [f"Service two/s{i}" for i in range(4)]
    # Parsed in children: the same placements.
    src = ManifestSource(root, default_namespace="three")
    todo = []
    for path in walk(root).files:
        st = path.stat()
        forced = ("forced",) if path.parent.name == "k" else ("",)
        todo.append((path, (st.st_mtime_ns, st.st_size, st.st_ino, src._placements(forced)),
                     None))
    got = parallel.parse_all(todo, parse_file, workers=2, min_bytes=0)
    namespaces = sorted(key[1] for res in got.values() for key in res.objects)
    assert namespaces == ["forced", "three", "three", "three", "three"]
