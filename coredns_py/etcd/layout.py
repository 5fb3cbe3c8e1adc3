"""Where the cluster lives under the prefix (default ``/coredns-py/``).

::

    <prefix>leader                          the publisher that writes (on its lease)
    <prefix>state/<table>/<ns>/<name>       allocation state: who holds which addresses
    <prefix>state/version                   the state's format; absent until the first publish
    <prefix>cluster/generation              the last complete publish (a JSON record)
    <prefix>cluster/pending                 a publish being written (absent between publishes)
    <prefix>cluster/namespaces/<ns>         a namespace exists
    <prefix>cluster/objects/<ns>/<kind>/<name>  one object of the filled-in cluster

Replicas read ``cluster/`` only (list, then watch), which is all a
replica's etcd role needs to be allowed to read.  A publish that does
not fit in one transaction puts ``cluster/pending`` in its first one and
removes it in its last, together with the new ``cluster/generation``;
a replica applies what it saw only when no publish is pending, so it
never serves half a change (see :mod:`coredns_py.publish.writer`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

from coredns_py.errors import ConfigError

DEFAULT_PREFIX = "/coredns-py/"

# The path segment of each kind of object in its key.
KIND_SEGMENTS = {"Service": "services", "EndpointSlice": "endpointslices", "Pod": "pods"}


def normalize_prefix(text: str) -> str:
    """``--prefix`` as keys start: with a slash at each end."""
    text = text.strip()
    if not text or any(c.isspace() for c in text):
        raise ConfigError(f"--prefix: not a key prefix: {text!r}")
    if not text.startswith("/"):
        text = "/" + text
    return text if text.endswith("/") else text + "/"


class Layout:
    def __init__(self, prefix: str = DEFAULT_PREFIX):
        self.prefix = normalize_prefix(prefix)
        p = self.prefix.encode()
        self.leader = p + b"leader"
        self.state = p + b"state/"
        self.state_version = p + b"state/version"
        self.cluster = p + b"cluster/"
        self.generation = self.cluster + b"generation"
        self.pending = self.cluster + b"pending"
        self.namespaces = self.cluster + b"namespaces/"
        self.objects = self.cluster + b"objects/"

    def namespace_key(self, namespace: str) -> bytes:
        return self.namespaces + namespace.encode()

    def object_key(self, obj, suffix: str = "") -> bytes:
        """The key of an object: kind, namespace and name, unique in a
        cluster (``suffix`` tells apart two objects a folder gives the same
        name, which the fill-in keeps both of)."""
        kind = KIND_SEGMENTS[type(obj).__name__]
        return self.objects + f"{obj.namespace}/{kind}/{obj.name}{suffix}".encode()

    def namespace_of(self, key: bytes) -> Optional[str]:
        """The namespace a namespace or object key belongs to; None for
        ``generation``, ``pending`` and keys we do not know."""
        if key.startswith(self.objects):
            rest = key[len(self.objects):]
            ns, sep, _ = rest.partition(b"/")
            return ns.decode("utf-8", "replace") if sep else None
        if key.startswith(self.namespaces):
            return key[len(self.namespaces):].decode("utf-8", "replace")
        return None

    def state_key(self, table: str, key: str) -> bytes:
        return self.state + f"{table}/{key}".encode()

    def state_entry(self, key: bytes) -> Optional[tuple[str, str]]:
        """(table, object key) of a state key; None for others (``version``)."""
        rest = key[len(self.state):].decode("utf-8", "replace")
        table, sep, name = rest.partition("/")
        return (table, name) if sep else None


@dataclass(frozen=True)
class Record:
    """What ``cluster/generation`` says of the publish it completed."""

    generation: int
    publisher: str = ""
    published_at: float = 0.0
    files: int = 0  # manifest files the publisher read
    kinds: dict = field(default_factory=dict)  # objects read, by kind
    errors: tuple = ()  # the publisher's problems (encoded ManifestErrors)
    errors_total: int = 0  # how many there were (errors may be cut short)

    def encode(self) -> bytes:
        return json.dumps({"generation": self.generation, "publisher": self.publisher,
                           "published_at": self.published_at, "files": self.files,
                           "kinds": self.kinds, "errors": list(self.errors),
                           "errors_total": self.errors_total},
                          separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> "Record":
        data = json.loads(raw)
        if type(data) is not dict or type(data.get("generation")) is not int:
            raise ValueError("not a generation record")
        kinds = data.get("kinds") or {}
        return cls(data["generation"], str(data.get("publisher", "")),
                   float(data.get("published_at", 0) or 0), int(data.get("files", 0) or 0),
                   {str(k): int(v) for k, v in kinds.items()} if type(kinds) is dict else {},
                   tuple(data.get("errors") or ()), int(data.get("errors_total", 0) or 0))
