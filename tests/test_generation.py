"""One generation: readers (the status page, /metrics, /ready) see one build.

Two generations that differ in every figure are swapped back and forth as
fast as the interpreter allows while real HTTP clients read the status
document and /metrics; every document and every scrape must be all of one
generation, never part of each.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from coredns_py import config as config_mod
from coredns_py.cluster import local
from coredns_py.generation import Builder
from coredns_py.ops import http as http_mod
from coredns_py.server import Server

SERVICE = """\
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  clusterIP: {ip}
  ports: [{{name: http, port: 80}}]
"""
BROKEN = """\
apiVersion: v1
kind: Service
metadata: {name: broken, namespace: default}
spec: {clusterIP: not-an-ip}
"""


def make_generation(folder: Path, tmp: Path, services: int, broken: bool):
    folder.mkdir()
    for i in range(services):
        (folder / f"svc-{i}.yaml").write_text(
            SERVICE.format(name=f"s{i}", ns="default", ip=f"10.96.1.{i + 20}"))
    if broken:
        (folder / "broken.yaml").write_text(BROKEN)
    cfg = config_mod.parse({"upstream": [], "state_file": str(tmp / f"{folder.name}.json")})
    source = local.from_folder(folder, cfg, log_errors=False)
    gen = Builder(source, cfg).build()
    assert gen is not None
    return cfg, source, gen


def fingerprint_doc(doc: dict) -> tuple:
    names = sorted(s["name"] for ns in doc["namespaces"] for s in ns["services"])
    return (doc["build"], doc["counts"]["services"], len(doc["errors"]), doc["last_reload"],
            tuple(names), doc["ready"])


def fingerprint_metrics(text: str) -> tuple:
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    services = samples[("coredns_py_snapshot_objects", (("kind", "services"),))]
    files = samples[("coredns_py_manifest_files", ())]
    errors = sum(v for (n, _), v in samples.items() if n == "coredns_py_manifest_errors")
    stamp = samples[("coredns_py_last_reload_timestamp_seconds", ())]
    return (services, files, errors, stamp)


def get(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        res = conn.getresponse()
        assert res.status == 200
        return res.read().decode()
    finally:
        conn.close()


def test_readers_never_see_two_generations_mixed(tmp_path):
    cfg, source, gen_a = make_generation(tmp_path / "a", tmp_path, services=3, broken=True)
    _, _, gen_b = make_generation(tmp_path / "b", tmp_path, services=5, broken=False)
    # Every figure differs between the two, so any mix would show.
    assert gen_a.built_at != gen_b.built_at or gen_a.number != gen_b.number
    expected_docs, expected_metrics = set(), set()
    server = Server(source, cfg, [("127.0.0.1", 53)])
    listener = http_mod.StatusServer(server, "127.0.0.1", 0).start()
    port = listener.address[1]
    try:
        for gen in (gen_a, gen_b):
            server.generation = gen
            expected_docs.add(fingerprint_doc(json.loads(get(port, "/api/status"))))
            expected_metrics.add(fingerprint_metrics(get(port, "/metrics")))
        assert len(expected_docs) == 2 and len(expected_metrics) == 2

        stop = threading.Event()

        def flip():
            while not stop.is_set():
                for gen in (gen_a, gen_b):
                    server.generation = gen
                    time.sleep(0)  # let the readers run on this one

        # Switch threads as often as the interpreter can, so that a reader
        # that took the generation twice would land on both.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        flipper = threading.Thread(target=flip, daemon=True)
        flipper.start()
        seen_docs, seen_metrics = set(), set()
        deadline = time.monotonic() + 30
        try:
            for _ in range(60):
                if time.monotonic() > deadline:
                    break
                seen_docs.add(fingerprint_doc(json.loads(get(port, "/api/status"))))
                seen_docs.add(fingerprint_doc(json.loads(get(port, "/api/status?q=s"))))
                seen_metrics.add(fingerprint_metrics(get(port, "/metrics")))
        finally:
            stop.set()
            flipper.join(5)
            sys.setswitchinterval(interval)
    finally:
        listener.close()
    # Every document and scrape is exactly one of the two generations.
    assert seen_docs <= expected_docs, seen_docs - expected_docs
    assert seen_metrics <= expected_metrics, seen_metrics - expected_metrics


@pytest.mark.parametrize("ready_source", [True, False])
def test_ready_follows_the_served_generation_and_its_source(tmp_path, ready_source):
    cfg, source, gen = make_generation(tmp_path / "a", tmp_path, services=1, broken=False)
    server = Server(source, cfg, [("127.0.0.1", 53)])
    listener = http_mod.StatusServer(server, "127.0.0.1", 0)
    assert listener.ready() == (503, "not ready: the first load is not complete")
    server.generation = gen
    if not ready_source:
        (tmp_path / "a").rename(tmp_path / "gone")
        code, reason = listener.ready()
        assert code == 503 and "cannot read the manifests folder" in reason
    else:
        assert listener.ready() == (200, "OK")
