"""The publisher's pieces and a replica's source, in this process, against a
real etcd (one member for the module, one key prefix per test): what a
publish writes, that a replica never serves half of one, keeps unchanged
objects, lists again after a compaction, and that only the leader writes."""

import threading
import time
import uuid

import pytest

from coredns_py.cluster import fill
from coredns_py.cluster.replica import EtcdCluster
from coredns_py.cluster.state import FileStore
from coredns_py.config import Config
from coredns_py.errors import SourceError
from coredns_py.etcd import client as c
from coredns_py.etcd.layout import Layout
from coredns_py.publish import writer as writer_mod
from coredns_py.publish.allocations import EtcdAllocations
from coredns_py.publish.leader import Leadership
from coredns_py.publish.writer import LostLeadership, Writer
from coredns_py.source import objects as o
from conftest import wait_until
from helpers.etcd import needs_etcd, running_etcd

pytestmark = needs_etcd


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    yield from running_etcd(tmp_path_factory)


@pytest.fixture
def layout():
    return Layout(f"/t-{uuid.uuid4().hex[:8]}/")


@pytest.fixture
def client(etcd):
    cl = etcd.client()
    yield cl
    cl.close()


def cluster_of(*services, pods=()):
    """A filled-in cluster (the fill-in run on these objects, no state)."""
    return fill.build([*services, *pods], Config(), None)


def svc(ns, name, ip=None, port=80):
    return o.Service(ns, name, cluster_ips=(ip,) if ip else (),
                     ports=(o.ServicePort("http", port),), selector=(("app", name),))


def pod(ns, name, ip):
    return o.Pod(ns, name, labels=(("app", name),), ips=(ip,))


def publish(client, layout, cluster, **kw):
    w = kw.pop("writer", None) or Writer(client, layout, "test", lambda: [])
    return w, w.publish(cluster, (), 1, {"Service": len(cluster.services)}, **kw)


def named(cluster, namespace, name):
    """A Service of a cluster (the fill-in may add the Services every cluster has)."""
    return next(s for s in cluster.services if (s.namespace, s.name) == (namespace, name))


def summary(cluster):
    return (sorted(cluster.namespaces),
            sorted((s.namespace, s.name, s.cluster_ips, s.ports) for s in cluster.services),
            sorted((s.namespace, s.name, s.endpoints) for s in cluster.slices),
            sorted((p.namespace, p.name, p.ips) for p in cluster.pods))


class Following:
    """A replica source with its sync thread running, and every load it gave."""

    def __init__(self, client, layout):
        self.source = EtcdCluster(client, layout)
        self.loads = []
        self.changes = threading.Event()

    def __enter__(self):
        self.source.watch(self.changes.set)
        return self

    def __exit__(self, *exc):
        self.source.stop()

    def latest(self, timeout=5.0, where=lambda cl: True):
        def fresh():
            load = self.source.load()
            if load is not None:
                self.loads.append(load)
            return self.loads and where(self.loads[-1].cluster) and self.loads[-1]
        return wait_until(fresh, timeout, message="the replica to serve the publish")


def test_a_replica_serves_what_was_published_and_follows_changes(client, layout):
    first = cluster_of(svc("a", "web", "10.96.0.20"), svc("b", "db", "10.96.0.21"),
                       pods=[pod("a", "web-1", "10.244.0.5")])
    publish(client, layout, first)
    with Following(client, layout) as replica:
        load = replica.latest()
        assert summary(load.cluster) == summary(first)
        assert load.files == 1 and load.kinds == {"Service": len(first.services)}
        ok, reason = replica.source.ready()
        assert ok, reason

        second = cluster_of(svc("a", "web", "10.96.0.20"), svc("b", "db", "10.96.0.30"),
                            pods=[pod("a", "web-1", "10.244.0.5")])
        publish(client, layout, second)
        after = replica.latest(where=lambda cl: summary(cl) == summary(second)).cluster
        # Namespace a did not change: the very same objects and result, so
        # the snapshot's memo reuses its work.
        assert after.by_namespace["a"] is load.cluster.by_namespace["a"]
        assert named(after, "a", "web") is named(load.cluster, "a", "web")
        assert after.by_namespace["b"] is not load.cluster.by_namespace["b"]


def test_nothing_changed_writes_nothing(client, layout):
    cl = cluster_of(svc("a", "web", "10.96.0.20"))
    w, written = publish(client, layout, cl)
    assert written.puts > 0 and written.transactions == 1
    _, rev, _ = client.get(layout.generation)
    assert w.publish(cl, (), 1, {"Service": len(cl.services)}) is None
    assert client.get(layout.generation)[1] == rev


def test_a_large_publish_is_written_in_chunks_and_served_once(client, layout, monkeypatch):
    monkeypatch.setattr(writer_mod, "OPS_PER_TXN", 7)
    cl = cluster_of(*(svc(f"ns{i % 4}", f"s{i}", f"10.96.1.{i + 1}") for i in range(60)))
    with Following(client, layout) as replica:
        _, written = publish(client, layout, cl)
        assert written.transactions > 5
        load = replica.latest(where=lambda got: summary(got) == summary(cl))
        assert len(replica.loads) == 1, "a publish in chunks must be served in one piece"
        assert len([s for s in load.cluster.services if s.namespace.startswith("ns")]) == 60


def test_half_a_publish_is_never_served(client, layout):
    """A publisher that died after its first transaction: replicas keep the
    last complete publish; the next leader's publish completes it."""
    first = cluster_of(svc("a", "web", "10.96.0.20"), svc("a", "api", "10.96.0.22"))
    publish(client, layout, first)
    with Following(client, layout) as replica:
        replica.latest(where=lambda got: summary(got) == summary(first))
        # The dead publisher's first transaction: pending, and a change.
        dead = Writer(client, layout, "dead", lambda: [])
        keys, _ = dead.keys(cluster_of(svc("a", "web", "10.96.9.9")))
        ok, reply = client.txn([], [c.put(layout.pending, b"2")] +
                               [c.put(k, v) for k, v in keys.items()])
        assert ok
        half = int(reply["header"]["revision"])
        wait_until(lambda: replica.source.revision >= half, 5, message="the replica to see it")
        assert replica.source.load() is None  # nothing new is served
        assert summary(replica.loads[-1].cluster) == summary(first)
        # Another publisher takes over and publishes its folder.
        second = cluster_of(svc("a", "web", "10.96.0.20"), svc("c", "new", "10.96.0.40"))
        _, written = publish(client, layout, second)
        assert written.generation == 3  # past the dead one's pending generation
        replica.latest(where=lambda got: summary(got) == summary(second))
    assert client.get(layout.pending)[0] is None


def test_a_compacted_revision_is_listed_again(client, layout, caplog):
    first = cluster_of(svc("a", "web", "10.96.0.20"), svc("b", "db", "10.96.0.21"))
    publish(client, layout, first)
    source = EtcdCluster(client, layout)
    before = source.load()  # listed at revision R, not following yet
    second = cluster_of(svc("a", "web", "10.96.0.20"), svc("b", "db", "10.96.0.31"))
    publish(client, layout, second)
    # Compact past the second publish: watching from R + 1 is no longer possible.
    ok, reply = client.txn([], [c.put(layout.prefix.encode() + b"other", b"x")])
    client.compact(int(reply["header"]["revision"]))
    changed = threading.Event()
    source.watch(changed.set)  # follows from R + 1: compacted
    try:
        assert changed.wait(5)
        after = source.load()
        assert summary(after.cluster) == summary(second)
        assert "compacted" in caplog.text and "listing" in caplog.text
        # What the second list found unchanged is still the same object.
        assert after.cluster.by_namespace["a"].services[0] is \
            before.cluster.by_namespace["a"].services[0]
    finally:
        source.stop()


def test_a_key_that_does_not_decode_keeps_the_last_good_object(client, layout, caplog):
    first = cluster_of(svc("a", "web", "10.96.0.20"))
    w, _ = publish(client, layout, first)
    with Following(client, layout) as replica:
        replica.latest()
        key = layout.object_key(first.services[0])
        gen = layout.generation
        client.txn([], [c.put(key, b'{"kind": "Service", "v": 1, "name": 5}'),
                        c.put(gen, client.get(gen)[0])])
        wait_until(lambda: key.decode() in caplog.text, 5, message="the bad key to be logged")
        assert key.decode() in caplog.text and "field name" in caplog.text
        load = replica.source.load() or replica.loads[-1]
        assert summary(load.cluster) == summary(first)


def test_a_one_off_read_says_when_nothing_is_published(client, layout):
    with pytest.raises(SourceError, match="nothing is published under"):
        EtcdCluster(client, layout).load()


def test_only_the_leader_writes(client, layout):
    one = Leadership(client, layout, "one", ttl=2)
    two = Leadership(client, layout, "two", ttl=2)
    never = threading.Event()
    assert one.campaign(never)
    stop_two = threading.Event()
    threading.Timer(1.0, stop_two.set).start()
    started = time.monotonic()
    assert not two.campaign(stop_two)  # waited, did not lead
    assert time.monotonic() - started >= 0.9
    cl = cluster_of(svc("a", "web", "10.96.0.20"))
    Writer(client, layout, "one", one.fence).publish(cl, (), 1, {})
    one.resign()  # the next one leads at once
    assert two.campaign(never)
    with pytest.raises(LostLeadership):
        Writer(client, layout, "one", one.fence).publish(cl, (), 1, {}, force=True)
    Writer(client, layout, "two", two.fence).publish(cl, (), 1, {}, force=True)
    two.resign()


def test_a_dead_leaders_lease_expires_and_the_next_leads(client, layout):
    one = Leadership(client, layout, "one", ttl=2)
    never = threading.Event()
    assert one.campaign(never)
    one._closing.set()  # its keepalives stop, as when the process dies
    two = Leadership(client, layout, "two", ttl=2)
    started = time.monotonic()
    assert two.campaign(never)
    assert time.monotonic() - started < 2 + 2  # the TTL, and etcd's own rounding
    two.resign()


def test_allocations_start_from_the_local_state_file_once(client, layout, tmp_path):
    state_file = tmp_path / "state.json"
    FileStore(state_file).save({"services": {"a/web": ["10.96.7.7"]}, "pods": {}})
    store = EtcdAllocations(client, layout, lambda: [], import_from=state_file)
    data = store.load()
    assert data["services"] == {"a/web": ["10.96.7.7"]}
    # The fill-in keeps the imported address, and etcd has it.
    cl = fill.build([svc("a", "web")], Config(), store)
    assert named(cl, "a", "web").cluster_ips == ("10.96.7.7",)
    # A later publisher reads etcd, not its own (other) state file.
    FileStore(state_file).save({"services": {"a/web": ["10.96.8.8"]}, "pods": {}})
    again = EtcdAllocations(client, layout, lambda: [], import_from=state_file)
    assert again.load()["services"] == {"a/web": ["10.96.7.7"]}
    cl = fill.build([svc("a", "web"), svc("a", "api")], Config(), again)
    api = named(cl, "a", "api").cluster_ips
    third = EtcdAllocations(client, layout, lambda: [])
    assert third.load()["services"] == {"a/web": ["10.96.7.7"], "a/api": list(api)}


def test_allocations_are_refused_to_a_publisher_that_does_not_lead(client, layout):
    leader = EtcdAllocations(client, layout, lambda: [])
    web = named(fill.build([svc("a", "web")], Config(), leader), "a", "web").cluster_ips
    fence = [c.created_at(layout.leader, 12345)]  # a leader key that is not there
    other = EtcdAllocations(client, layout, lambda: fence)
    # It allocates (in memory: a store's save never raises) ...
    cl = fill.build([svc("a", "web"), svc("a", "api")], Config(), other)
    assert named(cl, "a", "api").cluster_ips
    # ... but cannot write it, so it may not publish anything that uses it.
    with pytest.raises(LostLeadership):
        other.flush()
    assert EtcdAllocations(client, layout, lambda: []).load()["services"] == {
        "a/web": list(web)}
    # Nor can it start a prefix nobody published to.
    with pytest.raises(LostLeadership):
        EtcdAllocations(client, Layout(layout.prefix + "x/"), lambda: fence).load()


def test_an_allocation_etcd_holds_that_we_did_not_write_is_allocated_again(client, layout,
                                                                           caplog):
    store = EtcdAllocations(client, layout, lambda: [])
    fill.build([svc("a", "web")], Config(), store)
    for junk in (b"not json", b'{"ip": "10.96.0.5"}', b"[true]"):
        client.txn([], [c.put(layout.state_key("services", "a/junk"), junk)])
        data = EtcdAllocations(client, layout, lambda: []).load()
        assert "a/junk" not in data["services"] and "a/web" in data["services"]
    assert "services/a/junk is not what this program writes" in caplog.text
