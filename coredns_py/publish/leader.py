"""Only one publisher writes: the one whose lease holds the leader key.

As etcd's ``concurrency`` package campaigns: a publisher takes a lease,
kept alive while the process lives, and puts ``<prefix>leader`` with that
lease attached only if the key does not exist (a transaction comparing its
create revision with 0).  The winner leads; the others check again every
:data:`POLL` seconds.  When the leader dies its keepalives stop, etcd lets
its lease expire after :data:`LEASE_TTL` seconds and deletes the key with
it, and the next publisher's transaction succeeds.  A leader that stops
cleanly revokes its lease, so the next one takes over at once.

Every write of the leader carries :meth:`Leadership.fence`: the key must
still be the one it created.  A leader that was cut off long enough for
its lease to expire can no longer write anything, even before it notices.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Optional

from coredns_py.etcd import client as c
from coredns_py.etcd.client import Etcd, EtcdError, LeaseExpired
from coredns_py.etcd.layout import Layout

log = logging.getLogger("coredns_py.publish")

# How long a dead publisher keeps the lead: its lease's time to live.  A
# takeover waits this long; shorter leases cost more keepalives and risk
# losing the lead to a short pause (etcd's own minimum is about 2 s).
LEASE_TTL = 5
# Keepalives per TTL: one lost keepalive must not lose the lease.
KEEPALIVES_PER_TTL = 3
# A waiting publisher asks who leads this often.
POLL = 0.5


class Leadership:
    def __init__(self, etcd: Etcd, layout: Layout, identity: str, ttl: int = LEASE_TTL):
        self.etcd = etcd
        self.layout = layout
        self.identity = identity
        self.ttl = ttl
        self.lease = 0
        self.revision = 0  # create revision of our leader key while we lead
        # Set (from the keepalive thread) when the lease is gone or could
        # not be kept alive for a whole TTL: stop writing, campaign again.
        self.lost = threading.Event()
        self.on_lost = lambda: None
        self._closing = threading.Event()
        self._keeper: Optional[threading.Thread] = None

    def fence(self) -> list:
        """The compare every write of the leader carries."""
        return [c.created_at(self.layout.leader, self.revision)]

    def campaign(self, stopping: threading.Event) -> bool:
        """Block until this publisher leads (True) or ``stopping`` is set (False)."""
        seen_leader = None
        failing = False
        while not stopping.is_set():
            try:
                if not self.lease:
                    self.lease = self.etcd.grant(self.ttl)
                    self._keep_alive()
                key = self.layout.leader
                ok, reply = self.etcd.txn([c.created_at(key, 0)],
                                          [c.put(key, self.identity.encode(), self.lease)],
                                          [c.get_op(key)])
                failing = False
                if ok:
                    self.revision = int(reply["header"]["revision"])
                    self.lost.clear()
                    log.info("publish: leading as %s (lease %x, %d s)", self.identity,
                             self.lease, self.ttl)
                    return True
                kvs = (reply["responses"][0].get("response_range") or {}).get("kvs") or []
                holder = c.unb64(kvs[0].get("value", "")).decode("utf-8", "replace") \
                    if kvs else "?"
                if kvs and holder == self.identity and int(kvs[0].get("lease", 0)) == self.lease:
                    # Our own key, still on our live lease: we never stopped leading.
                    self.revision = int(kvs[0]["create_revision"])
                    self.lost.clear()
                    log.info("publish: leading again as %s (lease %x held)", self.identity,
                             self.lease)
                    return True
                if holder != seen_leader:
                    log.info("publish: %s publishes; waiting to take over when it stops",
                             holder)
                    seen_leader = holder
            except EtcdError as exc:
                if not failing:
                    log.warning("publish: cannot campaign for the lead: %s; retrying", exc)
                failing = True
            stopping.wait(POLL)
        return False

    def _keep_alive(self) -> None:
        lease = self.lease
        thread = threading.Thread(target=self._keeper_loop, args=(lease,),
                                  name="etcd-lease", daemon=True)
        self._keeper = thread
        thread.start()

    def _keeper_loop(self, lease: int) -> None:
        last_ok = time.monotonic()
        while not self._closing.wait(self.ttl / KEEPALIVES_PER_TTL):
            if lease != self.lease:
                return  # a newer lease has its own keeper
            try:
                self.etcd.keepalive(lease)
                last_ok = time.monotonic()
                continue
            except LeaseExpired:
                log.warning("publish: lease %x expired: no longer leading", lease)
                self.lease = 0
                self.revision = 0
                self._lose()
                return
            except EtcdError as exc:
                if time.monotonic() - last_ok < self.ttl or self.lost.is_set():
                    continue
                # The lease may have expired meanwhile: stop writing (the
                # fence would refuse it anyway), and keep trying: when etcd
                # answers again and the lease held, campaign() finds our key.
                log.warning("publish: lease %x not kept alive for %d s (%s): no longer "
                            "leading", lease, self.ttl, exc)
                self._lose()

    def _lose(self) -> None:
        self.lost.set()
        self.on_lost()

    def resign(self) -> None:
        """Stop leading now (shutdown): revoking the lease deletes the key."""
        self._closing.set()
        lease, self.lease = self.lease, 0
        if lease:
            try:
                self.etcd.revoke(lease)
            except EtcdError as exc:
                log.warning("publish: cannot revoke lease %x (%s); another publisher "
                            "takes over when it expires", lease, exc)
