"""Node ports as the API server allocates them (30000-32767 by default), kept
beside the ClusterIPs in a versioned state; an older state file is read and
upgraded, never thrown away; a newer one is left alone; another store can
keep the state through the same contract."""

from __future__ import annotations

import json
import logging
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import run_cli
from coredns_py.cluster import fill, state as state_mod
from coredns_py.config import Config
from coredns_py.source.folder import ManifestSource
from helpers.manifests import deployment, service, write


def build(folder, state, **cfg):
    loaded = ManifestSource(folder).load()
    assert loaded.errors == ()
    return fill.build(loaded.objects, Config(**{"builtin_services": False, **cfg}), state)


def node_ports(cl) -> dict:
    return {f"{s.namespace}/{s.name}": [(p.port, p.node_port) for p in s.ports]
            for s in cl.services}


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "m"
    write(root, "np.yaml", service("web", "shop", type="NodePort",
                                   ports=[{"name": "http", "port": 80},
                                          {"name": "https", "port": 443}]))
    write(root, "lb.yaml", service("lb", "shop", type="LoadBalancer", ports=[8080]))
    write(root, "fixed.yaml", service("fixed", "shop", type="NodePort",
                                      ports=[{"port": 80, "nodePort": 30080}]))
    write(root, "plain.yaml", service("plain", "shop", ports=[80]))
    write(root, "nolb.yaml", service("nolb", "shop", type="LoadBalancer", ports=[80],
                                     allocateLoadBalancerNodePorts=False))
    write(root, "deploy.yaml", deployment("web", "shop", replicas=2))
    return root


def test_node_ports_are_allocated_from_the_range_and_kept(folder, tmp_path):
    state = tmp_path / "state.json"
    cl = build(folder, state)
    got = node_ports(cl)
    allocated = [n for key in ("shop/web", "shop/lb") for _p, n in got[key]]
    assert len(allocated) == 3 and len(set(allocated)) == 3
    assert all(30000 <= n <= 32767 for n in allocated)
    assert got["shop/fixed"] == [(80, 30080)]  # explicit: honoured
    assert got["shop/plain"] == [(80, 0)] and got["shop/nolb"] == [(80, 0)]
    saved = json.loads(state.read_text())
    assert saved["version"] == state_mod.VERSION
    assert saved["node_ports"]["shop/web:80/TCP"] == [got["shop/web"][0][1]]
    assert "shop/fixed:80/TCP" not in saved["node_ports"]  # explicit ones are not kept
    # A restart, and the file moved: the same node ports.
    (folder / "np.yaml").rename(folder / "moved.yaml")
    assert node_ports(build(folder, state)) == got


def test_node_ports_come_from_the_configured_range(folder, tmp_path):
    got = node_ports(build(folder, tmp_path / "s.json", node_port_range="40000-40009"))
    assert all(40000 <= n <= 40009 for _p, n in got["shop/web"] + got["shop/lb"])


def test_a_node_port_held_by_another_service_or_outside_the_range(tmp_path):
    root = tmp_path / "m"
    write(root, "a.yaml", service("first", type="NodePort", ports=[{"port": 80, "nodePort": 30008}]))
    write(root, "b.yaml", service("second", type="NodePort",
                                  ports=[{"port": 80, "nodePort": 30008}]))
    write(root, "c.yaml", service("third", type="NodePort", ports=[{"port": 80, "nodePort": 8080}]))
    cl = build(root, tmp_path / "s.json")
    got = node_ports(cl)
    assert got["default/first"] == [(80, 30008)]  # first by path order keeps it
    assert got["default/second"][0][1] not in (0, 30008)  # a free one meanwhile
    assert 30000 <= got["default/third"][0][1] <= 32767
    errors = sorted(str(e) for e in cl.errors)
    assert errors == [
        f"{root / 'b.yaml'}:1: Service default/second: field spec.ports[0].nodePort: Invalid "
        "value: 30008: provided port is already allocated (to default/first:80/TCP)",
        f"{root / 'c.yaml'}:1: Service default/third: field spec.ports[0].nodePort: Invalid "
        "value: 8080: provided port is not in the valid range. The range of valid ports is "
        "30000-32767",
    ]


# A state file written by the code before node ports (format version 1), for
# the folder above: made by that code with another Service holding shop/web's
# first address (10.110.179.210) for a while, so shop/web's address
# (10.110.179.211) is one only the state knows.
VERSION_1 = Path(__file__).parent / "fixtures" / "state" / "version-1.json"


def test_a_version_1_state_file_is_read_and_upgraded(folder, tmp_path, caplog):
    state = tmp_path / "state.json"
    shutil.copy(VERSION_1, state)
    old = json.loads(VERSION_1.read_text())
    assert old["version"] == 1 and "node_ports" not in old
    with caplog.at_level(logging.INFO):
        cl = build(folder, state)
    assert "upgraded from format version 1 to 2" in caplog.text
    ips = {f"{s.namespace}/{s.name}": list(s.cluster_ips) for s in cl.services}
    assert ips == old["services"]
    assert ips["shop/web"] == ["10.110.179.211"]
    assert {f"{p.namespace}/{p.name}": list(p.ips) for p in cl.pods} == old["pods"]
    saved = json.loads(state.read_text())
    assert saved["version"] == 2
    assert saved["services"] == old["services"] and saved["pods"] == old["pods"]
    assert saved["node_ports"]["shop/lb:8080/TCP"] == [node_ports(cl)["shop/lb"][0][1]]


def test_a_newer_state_file_is_left_alone(folder, tmp_path, caplog):
    state = tmp_path / "state.json"
    newer = {"version": 3, "services": {"shop/web": ["10.100.1.2"]}, "future": {"x": 1}}
    state.write_text(json.dumps(newer))
    with caplog.at_level(logging.WARNING):
        cl = build(folder, state)
    assert "newer than this program's 2" in caplog.text and "not overwritten" in caplog.text
    assert len(cl.services) == 5  # served all the same
    assert json.loads(state.read_text()) == newer


class DictStore:
    """Another store with the same contract (a shared store would lock and
    keep the data elsewhere): a dict, and a count of what was done."""

    def __init__(self):
        self.data: dict = {}
        self.locks = 0

    @contextmanager
    def locked(self):
        self.locks += 1
        yield

    def load(self) -> dict:
        return state_mod.upgrade(self.data) if self.data else {}

    def save(self, data: dict) -> None:
        self.data = json.loads(json.dumps({**data, "version": state_mod.VERSION}))


def test_another_store_keeps_the_same_state(folder, tmp_path):
    store = DictStore()
    first = build(folder, store)
    assert store.locks == 3  # pods, ClusterIPs, node ports: each under the lock
    assert set(store.data) == {"version", "services", "pods", "node_ports"}
    assert node_ports(build(folder, store)) == node_ports(first)
    file_built = build(folder, tmp_path / "state.json")
    # The same allocation whichever store keeps it.
    assert node_ports(file_built) == node_ports(first)


def test_get_services_shows_node_ports_as_kubectl(folder, state_home):
    res = run_cli("get", "services", "-n", "shop", "--manifests", folder, state_home=state_home)
    rows = {line.split()[0]: line.split() for line in res.stdout.splitlines()[1:]}
    assert rows["fixed"][4] == "80:30080/TCP"
    assert rows["plain"][4] == "80/TCP" and rows["nolb"][4] == "80/TCP"
    web_ports = rows["web"][4].split(",")
    assert [p.split(":")[0] for p in web_ports] == ["80", "443"]
    assert all(p.endswith("/TCP") and 30000 <= int(p.split(":")[1][:-4]) <= 32767
               for p in web_ports)
    again = run_cli("get", "services", "-n", "shop", "--manifests", folder, state_home=state_home)
    assert again.stdout == res.stdout  # kept in the state file
