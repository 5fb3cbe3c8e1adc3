"""A watch on a range of keys, read as the JSON gateway streams it.

etcd sends one response per batch of revisions (never half of one
revision: a transaction's events arrive together), each with the events in
order.  Two endings matter to a replica, and this module tells them apart:

- :class:`Compacted`: the revision asked for is gone (``etcdctl compact``,
  auto-compaction); the caller lists again, as client-go's reflector does.
- :class:`StreamBroken`: the member went away, lost its leader, or the
  stream ended; the caller watches again from where it was, on whichever
  member answers.

(etcd3gw's own ``Watcher`` hands over events only, in a thread whose
errors nobody sees, so it can tell neither.)
"""

from __future__ import annotations

import json
import socket
from typing import Iterator, NamedTuple, Optional

import requests

from coredns_py.etcd.client import CONNECT_TIMEOUT, Etcd, EtcdError, b64, reason, unb64


class Compacted(EtcdError):
    """The revision to watch from was compacted away."""

    def __init__(self, revision: int):
        super().__init__(f"revision compacted (etcd keeps history from {revision})")
        self.revision = revision


class StreamBroken(EtcdError):
    """The watch stream ended."""


class Event(NamedTuple):
    key: bytes
    value: Optional[bytes]  # None: deleted
    mod_revision: int


class Batch(NamedTuple):
    revision: int  # the store's revision when etcd sent it
    events: list


# Ask the member to end the stream when it has no leader (clientv3's
# WithRequireLeader): a member cut off from the others would otherwise keep
# the stream open and silently send nothing.  The gateway passes headers
# named Grpc-Metadata-* on as gRPC metadata.
_REQUIRE_LEADER = {"Grpc-Metadata-hasleader": "true"}


class Watch:
    """One watch stream from ``start`` (a revision) on keys [key, end)."""

    def __init__(self, etcd: Etcd, key: bytes, end: bytes, start: int):
        self.etcd = etcd
        self.endpoint = etcd.endpoint
        body = {"create_request": {"key": b64(key), "range_end": b64(end),
                                   "start_revision": start}}
        try:
            self._resp = etcd.session.post(etcd.url("/watch"), json=body, stream=True,
                                           timeout=(CONNECT_TIMEOUT, None),
                                           headers=_REQUIRE_LEADER)
        except requests.RequestException as exc:
            raise StreamBroken(f"cannot watch on {self.endpoint}: {reason(exc)}") from None
        if self._resp.status_code != 200:
            text = self._resp.text[:200]
            self._resp.close()
            raise StreamBroken(f"{self.endpoint} refused the watch: {text}")

    def __iter__(self) -> Iterator[Batch]:
        try:
            for line in self._resp.iter_lines(chunk_size=None):
                if not line.strip():
                    continue
                batch = self._parse(line)
                if batch is not None:
                    yield batch
        except (requests.RequestException, OSError, ValueError) as exc:
            raise StreamBroken(f"watch on {self.endpoint} broke: {reason(exc)}") from None
        raise StreamBroken(f"{self.endpoint} closed the watch")

    def _parse(self, line: bytes) -> Optional[Batch]:
        reply = json.loads(line)
        if "error" in reply:
            raise StreamBroken(f"watch on {self.endpoint}: "
                               f"{reply['error'].get('message', reply['error'])}")
        result = reply.get("result") or {}
        compact = int(result.get("compact_revision", 0) or 0)
        if compact:
            raise Compacted(compact)
        if result.get("canceled"):
            raise StreamBroken(f"{self.endpoint} canceled the watch: "
                               f"{result.get('cancel_reason') or 'no reason given'}")
        revision = int((result.get("header") or {}).get("revision", 0) or 0)
        if result.get("created"):
            return Batch(revision, [])
        events = []
        for ev in result.get("events") or ():
            kv = ev["kv"]
            value = None if ev.get("type") == "DELETE" else unb64(kv.get("value", ""))
            events.append(Event(unb64(kv["key"]), value, int(kv["mod_revision"])))
        return Batch(revision, events)

    def close(self) -> None:
        """End the stream, from any thread (the reader gets StreamBroken)."""
        try:
            sock = self._resp.raw.connection.sock
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except (AttributeError, OSError):
            pass
        self._resp.close()
