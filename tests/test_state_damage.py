"""The allocation state file when it is damaged, in process: what is read
back from it and from its backup, and that addresses being served are never
given away.  (A running server with a damaged file: test_hostile_server.py.)"""

from __future__ import annotations

import json
import os
from pathlib import Path

from coredns_py.cluster import allocator, fill, state
from coredns_py.cluster.allocator import Addresses, Request
from coredns_py.config import Config
from coredns_py.memo import Memo
from coredns_py.source.folder import ManifestSource
from helpers.manifests import documents, service, write

TABLE = {f"ns/s{i}": [f"10.96.0.{i + 20}"] for i in range(50)}


def written(path: Path, services: dict) -> str:
    state.FileStore(path).save({"services": services, "pods": {}, "node_ports": {}})
    return path.read_text()


def test_a_file_cut_short_gives_back_every_complete_entry(tmp_path):
    text = written(tmp_path / "state.json", TABLE)
    for cut in range(0, len(text), 37):
        got = state.salvage(text[:cut].encode()).get("services", {})
        # Every entry read is right, and only the one cut in two is missing.
        assert all(TABLE[k] == v for k, v in got.items()), cut
        complete = text[:cut].count('"],\n') + text[:cut].count('"]\n')
        assert len(got) >= complete - 1, (cut, len(got), complete)


def test_a_damaged_file_is_moved_aside_and_recovered_from_its_backup(tmp_path):
    path = tmp_path / "state.json"
    written(path, TABLE)
    garbage = os.urandom(2000)
    path.write_bytes(garbage)
    data = state.FileStore(path).load()
    assert data["services"] == TABLE
    [aside] = tmp_path.glob("state.json.damaged-*")
    assert aside.read_bytes() == garbage  # kept as it was
    assert json.loads(path.read_text())["services"] == TABLE  # the recovered state


def test_a_deleted_state_file_is_not_restored_from_its_backup(tmp_path):
    path = tmp_path / "state.json"
    written(path, TABLE)
    path.unlink()
    assert state.FileStore(path).load() == {}


def test_served_addresses_win_over_a_lost_table(tmp_path):
    # The state file is gone: a changed object keeps what it is served, and
    # the file is written again from everything served.
    path = tmp_path / "state.json"
    served = {"ns/a": ["10.96.0.77"], "ns/b": ["10.96.0.78"]}
    req = Request("ns/a", [], [4])
    allocator.allocate("services", [req], Addresses("services", ["10.96.0.0/24"]),
                       state.FileStore(path), fixed={"ns/b": ["10.96.0.78"]}, served=served)
    assert req.result == ["10.96.0.77"]
    assert json.loads(path.read_text())["services"] == served


def test_the_server_rewrites_a_damaged_file_from_what_it_serves(tmp_path):
    folder = tmp_path / "m"
    write(folder, "a.yaml", documents(*(service(f"s{i}", "a") for i in range(30))))
    path = tmp_path / "state.json"
    config = Config(service_cidr=("10.96.0.0/24",))
    memo = Memo()
    cluster = fill.build(ManifestSource(folder).load().objects, config, path, memo)
    serving = {f"{s.namespace}/{s.name}": list(s.cluster_ips) for s in cluster.services
               if s.namespace == "a"}  # (not the built-in Services: their addresses are fixed)
    path.write_text(path.read_text()[:100])  # damaged while running
    fill.keep_served(memo, config, path)  # as the server stops
    assert json.loads(path.read_text())["services"] == serving
