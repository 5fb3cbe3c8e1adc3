"""Several hosts, as a user runs them: real etcd, one ``coredns-py publish``,
replicas (``serve --etcd``) answering over real sockets.  Every name the
folder defines is answered by every replica with the same addresses as a
folder-fed server; changes reach all of them; etcd members and publishers
can die without a replica losing its answers."""

import re
import shutil
import time
import urllib.request
import uuid

import dns.rcode
import pytest

from coredns_py.cluster import fill
from coredns_py.cluster.replica import EtcdCluster as Replica
from coredns_py.config import Config
from coredns_py.etcd.layout import Layout
from coredns_py.publish.writer import Writer
from coredns_py.source import objects as o
from conftest import ZONES, hermetic_config, run_cli, wait_until, write_atomic
from helpers.etcd import EtcdCluster, needs_etcd, running_etcd
from helpers.manifests import service
from helpers.publisher import PublisherProcess

pytestmark = needs_etcd

ZONE = "cluster.local"


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    yield from running_etcd(tmp_path_factory)


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "manifests"
    shutil.copytree(ZONES, path)
    return path


@pytest.fixture
def publishers(tmp_path_factory):
    made = []

    def start(manifests, urls, prefix, state_home=None, args=()):
        logdir = tmp_path_factory.mktemp("publisher")
        pub = PublisherProcess(manifests, urls, prefix,
                               state_home=state_home or tmp_path_factory.mktemp("state"),
                               logdir=logdir, config=hermetic_config(logdir),
                               args=args).start()
        made.append(pub)
        return pub
    yield start
    for pub in made:
        pub.kill()


def replica(start_server, etcd_urls, prefix, **kw):
    return start_server(None, args=["--etcd", etcd_urls, "--prefix", prefix], **kw)


def names(etcd, prefix):
    """Every name the published cluster defines: Services, and the
    endpoints of headless ones (hostname or dashed address)."""
    cl = Replica(etcd.client(), Layout(prefix), log_errors=False).load().cluster
    out = []
    for svc in cl.services:
        base = f"{svc.name}.{svc.namespace}.svc.{ZONE}"
        out.append(base)
        if svc.headless:
            for sl in cl.service_slices(svc.namespace, svc.name):
                for ep in sl.endpoints:
                    label = ep.hostname or ep.addresses[0].replace(".", "-").replace(":", "-")
                    out.append(f"{label}.{base}")
    return sorted(set(out))


def answers(server, name):
    """What a server says of a name: rcode and answer records, per type."""
    out = []
    for rdtype in ("A", "AAAA", "SRV"):
        r = server.query(name, rdtype)
        out.append((rdtype, dns.rcode.to_text(r.rcode()),
                    sorted(rr.to_text() for rr in r.answer)))
    return out


def cluster_ips(server, etcd, prefix):
    return {n: server.rrset_values(n, "A") for n in names(etcd, prefix)}


def time_until_all_answer(servers, name, expect, timeout=10.0):
    """Seconds from now until every server answers ``name`` A with ``expect``."""
    started = time.monotonic()
    pending = list(servers)
    while pending and time.monotonic() - started < timeout:
        for srv in list(pending):
            try:
                if srv.rrset_values(name, "A", timeout=0.2, tries=1) == expect:
                    pending.remove(srv)
            except AssertionError:
                pass
        time.sleep(0.005)
    assert not pending, f"{len(pending)} of {len(servers)} servers never answered {name}"
    return time.monotonic() - started


def ready(server):
    url = f"http://{server.http_address[0]}:{server.http_address[1]}"
    try:
        with urllib.request.urlopen(url + "/ready", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(server, name):
    url = f"http://{server.http_address[0]}:{server.http_address[1]}/metrics"
    with urllib.request.urlopen(url, timeout=2) as r:
        text = r.read().decode()
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_three_replicas_answer_every_name_as_the_folder_does(etcd, folder, publishers,
                                                             start_server, state_home):
    # The folder was served on this host before: its state file holds its ClusterIPs.
    local = start_server(folder, state_home=state_home)
    prefix = f"/h-{uuid.uuid4().hex[:8]}/"
    pub = publishers(folder, etcd.urls, prefix, state_home=state_home)
    pub.wait_generation(1)
    replicas = [replica(start_server, etcd.urls, prefix) for _ in range(3)]

    all_names = names(etcd, prefix)
    assert len(all_names) >= 15
    for name in all_names:
        want = answers(local, name)
        assert any(rcode == "NOERROR" and records for _t, rcode, records in want), name
        for rep in replicas:
            assert answers(rep, name) == want, f"{name} from a replica"

    # A file change is answered by all three within a second.
    write_atomic(folder / "new.yaml", service("fresh", "default", cluster_ip="10.96.77.77"))
    took = time_until_all_answer(replicas, f"fresh.default.svc.{ZONE}", ["10.96.77.77"])
    assert took < 1.0, f"took {took:.2f} s"
    # An edit too (a new address for a Service every replica already had).
    write_atomic(folder / "new.yaml", service("fresh", "default", cluster_ip="10.96.77.78"))
    took = time_until_all_answer(replicas, f"fresh.default.svc.{ZONE}", ["10.96.77.78"])
    assert took < 1.0, f"took {took:.2f} s"
    # Deleting it removes it everywhere.
    (folder / "new.yaml").unlink()
    wait_until(lambda: all(r.query(f"fresh.default.svc.{ZONE}").rcode() == dns.rcode.NXDOMAIN
                           for r in replicas), 5, message="the deleted Service to be gone")


def test_get_and_env_read_the_shared_truth(etcd, folder, publishers, state_home):
    prefix = f"/g-{uuid.uuid4().hex[:8]}/"
    publishers(folder, etcd.urls, prefix).wait_generation(1)
    res = run_cli("get", "services", "-A", "--etcd", etcd.urls, "--prefix", prefix)
    assert res.returncode == 0, res.stderr
    local = run_cli("get", "services", "-A", "--manifests", folder, state_home=state_home)
    # The same Services; their ClusterIPs came from the publisher's allocation.
    assert [line.split()[:2] for line in res.stdout.splitlines()] == \
        [line.split()[:2] for line in local.stdout.splitlines()]
    env = run_cli("env", "-n", "default", "--etcd", etcd.urls, "--prefix", prefix)
    assert env.returncode == 0, env.stderr
    ip = re.search(r"^KUBERNETES_SERVICE_HOST=(\S+)$", env.stdout, re.M).group(1)
    assert f" {ip} " in res.stdout.replace("  ", " ")
    missing = run_cli("get", "services", "--etcd", etcd.urls, "--prefix", "/nothing-here/")
    assert missing.returncode != 0
    assert "nothing is published under /nothing-here/" in missing.stderr


def test_two_publishers_one_leads_the_other_takes_over(etcd, folder, publishers,
                                                       start_server):
    prefix = f"/p-{uuid.uuid4().hex[:8]}/"
    first = publishers(folder, etcd.urls, prefix)
    first.wait_generation(1)
    second = publishers(folder, etcd.urls, prefix)
    second.wait_stderr(r"publishes; waiting to take over")
    assert not second.leading()
    rep = replica(start_server, etcd.urls, prefix)
    before = cluster_ips(rep, etcd, prefix)
    table = run_cli("get", "services", "-A", "--etcd", etcd.urls, "--prefix", prefix)
    assert table.returncode == 0, table.stderr

    first.kill()  # a crash: no revoke, its lease has to expire
    second.wait_stderr(r"publish: leading as", timeout=15)
    write_atomic(folder / "new.yaml", service("after", "default"))
    wait_until(lambda: rep.rrset_values(f"after.default.svc.{ZONE}"), 10,
               message="the new leader's publish to be served")
    after = cluster_ips(rep, etcd, prefix)
    after.pop(f"after.default.svc.{ZONE}")
    assert after == before  # no address changed hands
    # Nor did a node port (the PORT(S) column: 80:31234/TCP).
    again = run_cli("get", "services", "-A", "--etcd", etcd.urls, "--prefix", prefix)
    assert [line for line in again.stdout.splitlines() if " after " not in line] == \
        table.stdout.splitlines()


def test_a_three_member_etcd_keeps_working_with_one_member_down(tmp_path, folder, publishers,
                                                                start_server):
    (tmp_path / "etcd").mkdir()
    etcd = EtcdCluster(tmp_path / "etcd", members=3).start()
    try:
        prefix = "/three/"
        pub = publishers(folder, etcd.urls, prefix)
        pub.wait_generation(1)
        replicas = [replica(start_server, etcd.urls, prefix) for _ in range(2)]
        etcd.member(0).stop()  # the member every client tried first
        write_atomic(folder / "new.yaml", service("one-down", "default",
                                                  cluster_ip="10.96.33.33"))
        time_until_all_answer(replicas, f"one-down.default.svc.{ZONE}", ["10.96.33.33"],
                              timeout=15)
        etcd.member(1).stop()  # no quorum left: nothing new, the last answers stay
        assert all(r.rrset_values(f"one-down.default.svc.{ZONE}") == ["10.96.33.33"]
                   for r in replicas)
        etcd.member(0).start()  # quorum again
        assert etcd.wait_healthy()
        write_atomic(folder / "new.yaml", service("one-down", "default",
                                                  cluster_ip="10.96.33.34"))
        time_until_all_answer(replicas, f"one-down.default.svc.{ZONE}", ["10.96.33.34"],
                              timeout=20)
    finally:
        etcd.destroy()


def test_replicas_outlive_an_etcd_outage_and_catch_up(tmp_path, folder, publishers,
                                                      start_server):
    (tmp_path / "etcd").mkdir()
    etcd = EtcdCluster(tmp_path / "etcd").start()
    try:
        prefix = "/outage/"
        pub = publishers(folder, etcd.urls, prefix)
        pub.wait_generation(1)
        rep = replica(start_server, etcd.urls, prefix, http=True)
        name = f"kubernetes.default.svc.{ZONE}"
        known = rep.rrset_values(name)
        assert known and ready(rep)[0] == 200
        assert metric(rep, "coredns_py_etcd_connected") == 1
        revision = metric(rep, "coredns_py_etcd_revision")
        assert revision > 0 and metric(rep, "coredns_py_etcd_seconds_since_update") >= 0

        etcd.stop()
        wait_until(lambda: ready(rep)[0] == 503, 10, message="/ready to say etcd is gone")
        status, reason = ready(rep)
        assert "etcd unreachable" in reason and "last snapshot" in reason
        assert metric(rep, "coredns_py_etcd_connected") == 0
        rep.wait_stderr(r"etcd: .*answering from the last snapshot")
        assert rep.rrset_values(name) == known  # still answering
        # A change while etcd is down waits in the publisher.
        write_atomic(folder / "new.yaml", service("while-down", "default",
                                                  cluster_ip="10.96.44.44"))
        pub.wait_stderr(r"cannot publish")
        # Longer than the lead's lease: the publisher stops leading, and must
        # lead again once etcd is back.
        pub.wait_stderr(r"no longer leading", timeout=15)

        etcd.start()
        wait_until(lambda: rep.rrset_values(f"while-down.default.svc.{ZONE}") ==
                   ["10.96.44.44"], 30, message="the replica to catch up")
        assert rep.alive()
        wait_until(lambda: ready(rep)[0] == 200, 10, message="/ready to be OK again")
        assert metric(rep, "coredns_py_etcd_connected") == 1
        assert metric(rep, "coredns_py_etcd_revision") > revision  # the catch-up
        rep.wait_stderr(r"etcd: reachable again")
    finally:
        etcd.destroy()


def test_a_replica_of_10k_services_becomes_ready(etcd, start_server):
    """Written straight to etcd (no folder to parse): the replica lists and
    decodes 10k Services; the exact time is bench/'s (several_hosts)."""
    prefix = f"/big-{uuid.uuid4().hex[:8]}/"
    services = [o.Service(f"ns{i // 200}", f"svc{i}", cluster_ips=(
        f"10.96.{40 + i // 250}.{i % 250 + 1}",), ports=(o.ServicePort("http", 80),))
        for i in range(10_000)]
    cluster = fill.build(services, Config(), None)
    client = etcd.client()
    Writer(client, Layout(prefix), "test", lambda: []).publish(cluster, (), 50, {})
    started = time.monotonic()
    rep = replica(start_server, etcd.urls, prefix)
    took = time.monotonic() - started
    assert took < 60, f"a replica of 10k Services took {took:.1f} s to answer"
    assert rep.rrset_values(f"svc9999.ns49.svc.{ZONE}") == ["10.96.79.250"]


def test_publish_takes_the_default_namespace(etcd, tmp_path, publishers):
    """``publish -n``-style: objects that name no namespace land where
    --default-namespace says, on every replica."""
    folder = tmp_path / "install"
    folder.mkdir()
    write_atomic(folder / "svc.yaml", service("api-server"))
    prefix = f"/n-{uuid.uuid4().hex[:8]}/"
    publishers(folder, etcd.urls, prefix, args=["--default-namespace", "argocd"]) \
        .wait_generation(1)
    res = run_cli("get", "services", "-A", "--etcd", etcd.urls, "--prefix", prefix)
    assert res.returncode == 0, res.stderr
    assert [line.split()[:2] for line in res.stdout.splitlines() if "api-server" in line] \
        == [["argocd", "api-server"]]
