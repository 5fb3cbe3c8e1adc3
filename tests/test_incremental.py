"""A reload reuses what it did not touch; the result must be exactly what a
build from scratch gives, whatever the sequence of edits."""

import random

import pytest

from coredns_py.cluster import fill as cluster
from coredns_py.zone import snapshot
from coredns_py.config import Config
from coredns_py.source.folder import ManifestSource
from coredns_py.memo import Memo
from helpers.manifests import deployment, documents, service

HTTP = {"name": "http", "port": 80, "targetPort": "http"}
HTTP_8080 = {"name": "http", "containerPort": 8080}


def render(state: dict) -> dict[str, str]:
    """Folder content: one file per namespace, plus a file of explicit IPs."""
    files = {}
    for ns, svcs in state["ns"].items():
        docs = []
        for name, (replicas, headless) in svcs.items():
            docs.append(service(name, ns, cluster_ip="None" if headless else None,
                                selector={"app": name}, ports=[HTTP]))
            docs.append(deployment(name, ns, replicas=replicas, ports=[HTTP_8080]))
        files[f"{ns}.yaml"] = documents(*docs)
    files["pinned.yaml"] = documents(*(
        service(f"pin{i}", ns, cluster_ip=ip, selector={"app": "none"}, ports=[HTTP])
        for i, (ns, ip) in enumerate(state["pinned"])))
    # Endpoints at addresses other namespaces' endpoints (or a pinned
    # Service's cluster IP) hold too: the reverse zone merges them.
    files["shared.yaml"] = documents(*(
        doc for i, (ns, ip) in enumerate(state.get("shared", ()))
        for doc in (service(f"sh{i}", ns, cluster_ip="None", ports=[HTTP]),
                    endpoint_slice(f"sh{i}", ns, ip))))
    return files


def endpoint_slice(service_name: str, ns: str, ip: str) -> str:
    return (f"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
            f"  name: {service_name}-x\n  namespace: {ns}\n  labels:\n"
            f"    kubernetes.io/service-name: {service_name}\naddressType: IPv4\n"
            f"endpoints:\n- addresses: [\"{ip}\"]\nports:\n- name: http\n  port: 80\n")


def summary(cl):
    return (
        sorted(cl.namespaces),
        sorted((s.namespace, s.name, s.cluster_ips) for s in cl.services),
        sorted((p.namespace, p.name, p.ips, p.hostname) for p in cl.pods),
        sorted((s.namespace, s.service, tuple(sorted((e.addresses, e.hostname, e.ready)
                                                     for e in s.endpoints)), s.ports)
               for s in cl.slices),
        sorted(str(e).split(": ", 1)[1] for e in cl.errors),
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_builds_equal_full_builds(tmp_path, seed):
    rng = random.Random(seed)
    root = tmp_path / "m"
    root.mkdir()
    state = {"ns": {f"ns{i}": {f"s{j}": (rng.randint(0, 3), rng.random() < 0.3)
                               for j in range(rng.randint(1, 4))} for i in range(5)},
             "pinned": [("ns0", "10.96.50.50")], "shared": [("ns1", "10.1.0.1")]}
    config = Config(service_cidr=("10.96.0.0/24",), pod_cidr=("10.244.0.0/24",))
    memo_c, memo_s = Memo(), Memo()
    source = ManifestSource(root)
    for step in range(25):
        for name, text in render(state).items():
            path = root / name
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
                # a distinct mtime even within one clock tick
                st = path.stat()
                import os
                os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + step * 1_000_000 + 1))
        for path in root.iterdir():
            if path.name not in render(state):
                path.unlink()
        objects = source.load().objects
        inc = cluster.build(objects, config, tmp_path / "inc.json", memo_c)
        full = cluster.build(ManifestSource(root).load().objects, config,
                             tmp_path / "full.json")
        assert summary(inc) == summary(full), f"step {step}"
        inc_snap = snapshot.build(inc, config, 1, memo=memo_s)
        full_snap = snapshot.build(full, config, 1)
        assert dict(inc_snap.services) == dict(full_snap.services), f"step {step}"
        assert dict(inc_snap.ptr) == dict(full_snap.ptr), f"step {step}"
        assert inc_snap.namespaces == full_snap.namespaces
        assert dict(inc_snap.pod_ips) == dict(full_snap.pod_ips)

        # the next edit: scale, add, remove, toggle headless, move a pinned IP
        ns = rng.choice(sorted(state["ns"]))
        action = rng.random()
        svcs = state["ns"][ns]
        if action < 0.3 and svcs:
            name = rng.choice(sorted(svcs))
            svcs[name] = (rng.randint(0, 4), svcs[name][1])
        elif action < 0.5:
            svcs[f"s{rng.randint(0, 9)}"] = (rng.randint(1, 3), rng.random() < 0.3)
        elif action < 0.65 and len(svcs) > 1:
            del svcs[rng.choice(sorted(svcs))]
        elif action < 0.8:
            state["pinned"].append((rng.choice(sorted(state["ns"])),
                                    f"10.96.0.{rng.randint(2, 250)}"))
        elif action < 0.85 and state["pinned"]:
            state["pinned"].pop(rng.randrange(len(state["pinned"])))
        elif action < 0.88:
            ip = rng.choice(["10.1.0.1", "10.1.0.2", "10.96.50.50",
                             f"10.96.0.{rng.randint(2, 250)}"])
            state["shared"].append((rng.choice(sorted(state["ns"])), ip))
        elif action < 0.9 and state["shared"]:
            state["shared"].pop(rng.randrange(len(state["shared"])))
        else:
            state["ns"][f"ns{rng.randint(0, 7)}"] = {"a": (1, False)}


def reverse_zone(parts) -> dict:
    """The reverse zone as the snapshot made it before it was patched:
    namespace by namespace, a cluster IP names the first Service with it,
    any other address every endpoint with it."""
    ptr: dict = {}
    endpoints: dict = {}
    for part in parts:
        for ip, owner in part.cluster_ptr.items():
            ptr.setdefault(ip, owner)
        for ip, owners in part.endpoint_ptr.items():
            endpoints[ip] = endpoints.get(ip, ()) + owners
    for ip, owners in endpoints.items():
        ptr.setdefault(ip, owners)
    return ptr


def test_the_reverse_zone_patched_is_the_reverse_zone_merged_whole():
    """Addresses held by one namespace, by several, as a cluster IP in one
    and an endpoint in another; namespaces edited, added and removed: the
    patched reverse zone is always the one merged from scratch."""
    rng = random.Random(7)
    ips = [f"10.0.0.{i}" for i in range(10)]

    def part():
        def names(kind):
            held = rng.sample(ips, rng.randint(0, 3))
            return {ip: ((kind, f"{rng.random():.6f}"),) for ip in held}
        return snapshot.NamespaceView({}, names("svc"), names("ep"), {})

    parts = {f"ns{i}": part() for i in range(12)}
    memo = Memo()
    for step in range(400):
        assert snapshot._merged_ptr(dict(parts), memo) == reverse_zone(parts.values()), step
        action = rng.random()
        if action < 0.7:
            parts[rng.choice(sorted(parts))] = part()
        elif action < 0.85 and len(parts) > 2:
            del parts[rng.choice(sorted(parts))]
        else:
            parts[f"ns{rng.randint(0, 20)}"] = part()
