"""ClusterIP and pod IP allocation: stable across reloads, restarts, file
moves; freed only by deletion; conflicts reported; a corrupt state file is
moved aside and rebuilt, never fatal."""

import ipaddress
import json
import logging
from pathlib import Path

import pytest

from coredns_py.cluster import fill as cluster, state as state_mod
from coredns_py.config import Config
from coredns_py.source.folder import ManifestSource
from helpers.manifests import deployment, service, write


def svc(name: str, ns: str = "default", **spec) -> str:
    """A Service selecting the pods of the Deployment of the same name."""
    return service(name, ns, selector={"app": name}, **spec)


def build(folder: Path, state: Path, **cfg):
    # The built-in Services (tests/test_builtin.py) would add two to every count.
    config = Config(**{"builtin_services": False, **cfg})
    loaded = ManifestSource(folder).load()
    assert not loaded.errors, loaded.errors
    return cluster.build(loaded.objects, config, state)


def ips(cl) -> dict:
    return {f"{s.namespace}/{s.name}": s.cluster_ips for s in cl.services}


def pod_ips(cl) -> dict:
    return {f"{p.namespace}/{p.name}": p.ips for p in cl.pods}


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "manifests"
    for i in range(20):
        write(root, f"svc{i:02d}.yaml", svc(f"s{i}"))
    write(root, "deploy.yaml", deployment("s0", "default", replicas=2))
    return root


def test_allocated_ips_come_from_the_service_cidr_and_skip_reserved(folder, tmp_path):
    cl = build(folder, tmp_path / "state.json")
    net = ipaddress.ip_network("10.96.0.0/12")
    seen = set()
    for key, addrs in ips(cl).items():
        assert len(addrs) == 1, key
        ip = ipaddress.ip_address(addrs[0])
        assert ip in net
        assert str(ip) not in ("10.96.0.0", "10.96.0.1", "10.96.0.10")
        seen.add(ip)
    assert len(seen) == 20  # all distinct
    for addrs in pod_ips(cl).values():
        assert ipaddress.ip_address(addrs[0]) in ipaddress.ip_network("10.244.0.0/16")


def test_same_ips_after_restart_and_file_move(folder, tmp_path):
    state = tmp_path / "state.json"
    first = build(folder, state)
    # A restart: a new source and a new build reading the same state file.
    again = build(folder, state)
    assert ips(again) == ips(first)
    assert pod_ips(again) == pod_ips(first)
    # Move a Service to another file, in a subfolder.
    (folder / "sub").mkdir()
    (folder / "svc05.yaml").rename(folder / "sub" / "moved.yaml")
    moved = build(folder, state)
    assert ips(moved) == ips(first)


def test_state_not_the_hash_keeps_ips(folder, tmp_path):
    """Stability comes from the state file: force a collision by giving the
    remembered address away explicitly, and check only that Service moves."""
    state = tmp_path / "state.json"
    first = ips(build(folder, state))
    taken = first["default/s3"][0]
    write(folder, "zz-explicit.yaml", svc("pinned", "other", cluster_ip=taken))
    second = ips(build(folder, state))
    assert second["other/pinned"] == (taken,)
    assert second["default/s3"] != (taken,)  # the explicit claim wins
    unchanged = {k: v for k, v in first.items() if k != "default/s3"}
    assert {k: second[k] for k in unchanged} == unchanged


def test_delete_frees_and_readd_allocates(folder, tmp_path):
    state = tmp_path / "state.json"
    build(folder, state)
    (folder / "svc07.yaml").unlink()
    build(folder, state)
    table = json.loads(state.read_text())["services"]
    assert "default/s7" not in table  # deleting the Service freed its address
    write(folder, "svc07.yaml", svc("s7"))
    cl = build(folder, state)
    assert len(ips(cl)["default/s7"]) == 1


def test_scaling_keeps_existing_pods(folder, tmp_path):
    state = tmp_path / "state.json"
    before = pod_ips(build(folder, state))
    write(folder, "deploy.yaml", deployment("s0", "default", replicas=3))
    after = pod_ips(build(folder, state))
    assert len(before) == 2 and len(after) == 3
    for name, addrs in before.items():
        assert after[name] == addrs


@pytest.mark.parametrize("content", ["", "{not json", "[]", '{"version": 0}',
                                     '{"version": 1, "services": {"a/b": 7}}', "\x00\xff"])
def test_corrupt_state_file_is_rebuilt(folder, tmp_path, content, caplog):
    state = tmp_path / "state.json"
    state.write_text(content, encoding="latin-1")
    with caplog.at_level(logging.WARNING):
        cl = build(folder, state)
    assert len(ips(cl)) == 20
    if content:
        # Never written over: kept aside, as it was, and said so.
        [aside] = tmp_path.glob("state.json.damaged-*")
        assert aside.read_text(encoding="latin-1") == content
        assert "is damaged" in caplog.text and f"moved aside to {aside.name}" in caplog.text
    data = json.loads(state.read_text())  # rewritten as valid JSON
    assert data["version"] == state_mod.VERSION and len(data["services"]) == 20


def test_state_file_is_written_atomically(folder, tmp_path):
    state = tmp_path / "dir" / "state.json"
    build(folder, state)
    leftovers = [p.name for p in state.parent.iterdir()
                 if p.name not in ("state.json", "state.json.lock", "state.json.bak")]
    assert leftovers == []
    # The backup copy, read when the state file is damaged, says the same.
    assert (state.parent / "state.json.bak").read_text() == state.read_text()


def test_unwritable_state_is_not_fatal(folder, tmp_path, caplog):
    state = tmp_path / "ro" / "state.json"
    state.parent.mkdir()
    state.parent.chmod(0o500)
    try:
        with caplog.at_level(logging.WARNING):
            cl = build(folder, state)
    finally:
        state.parent.chmod(0o700)
    assert len(ips(cl)) == 20


def test_two_services_claiming_one_ip(tmp_path):
    root = tmp_path / "m"
    write(root, "a.yaml", svc("first", cluster_ip="10.96.5.5"))
    write(root, "b.yaml", svc("second", cluster_ip="10.96.5.5"))
    loaded = ManifestSource(root).load()
    cl = cluster.build(loaded.objects, Config(), tmp_path / "state.json")
    got = ips(cl)
    assert got["default/first"] == ("10.96.5.5",)  # first by path order keeps it
    assert got["default/second"] and got["default/second"] != ("10.96.5.5",)
    [err] = cl.errors
    text = str(err)
    assert "b.yaml" in text and "Service default/second" in text
    assert "10.96.5.5" in text and "default/first" in text


def test_dual_stack_allocation(tmp_path):
    root = tmp_path / "m"
    write(root, "a.yaml", svc("dual", ipFamilyPolicy="PreferDualStack",
                              ipFamilies=["IPv6", "IPv4"]))
    write(root, "b.yaml", svc("single"))
    write(root, "c.yaml", svc("need", ipFamilyPolicy="RequireDualStack"))
    cidrs = ("10.96.0.0/12", "fd00:10:96::/112")
    cl = build(root, tmp_path / "s.json", service_cidr=cidrs)
    got = ips(cl)
    v6, v4 = got["default/dual"]
    assert ipaddress.ip_address(v6) in ipaddress.ip_network(cidrs[1])  # primary as asked
    assert ipaddress.ip_address(v4) in ipaddress.ip_network(cidrs[0])
    assert len(got["default/single"]) == 1
    assert len(got["default/need"]) == 2
    # RequireDualStack with only IPv4 configured is an error naming the field.
    loaded = ManifestSource(root).load()
    only4 = cluster.build(loaded.objects, Config(), None)
    assert any("RequireDualStack" in str(e) and "Service default/need" in str(e)
               for e in only4.errors)
