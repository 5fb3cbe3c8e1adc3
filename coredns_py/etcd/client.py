"""One etcd cluster as the program talks to it: every member's client URL,
failover between them, TLS and user/password, and the few calls we make.

The requests go through ``etcd3gw`` (the etcd v3 HTTP/JSON gateway client
OpenStack maintains), one ``Etcd3Client`` per member sharing one HTTP
session: TLS (CA, client certificate and key) is the session's, the auth
token its header.  What etcd3gw leaves to its caller is done here: trying
the next member when one does not answer (as etcd's own clientv3 balancer
does), authenticating again when a token expires, and a watch stream that
reports compaction and disconnection (:mod:`.watch`).

Keys and values are bytes; etcd's JSON gateway carries them in base64.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection

from etcd3gw.client import Etcd3Client
from etcd3gw import exceptions as gw

from coredns_py import hostport
from coredns_py.errors import ConfigError, CorednsPyError

log = logging.getLogger("coredns_py.etcd")

DEFAULT_PORT = 2379

# One request (not a watch): a healthy member answers in milliseconds; a
# member cut off from its quorum hangs until its election times out (1 s
# by default), then fails.  Past this we try the next member.
REQUEST_TIMEOUT = 5.0
# Opening a TCP (and TLS) connection to a member on another host.
CONNECT_TIMEOUT = 2.0

# A watch stream is idle for as long as nothing changes, so it has no read
# timeout; TCP keepalive finds a member that vanished without closing the
# connection (a host that lost power) in KEEPALIVE_IDLE + KEEPALIVE_COUNT *
# KEEPALIVE_INTERVAL = 11 s, as gRPC keepalive does for etcd's own clients.
KEEPALIVE_IDLE = 5
KEEPALIVE_INTERVAL = 2
KEEPALIVE_COUNT = 3

# etcd 3.4's own limits (--max-txn-ops, --max-request-bytes): a transaction
# holds at most 128 operations of each kind (compares, success, failure),
# a request at most 1.5 MiB.
MAX_TXN_OPS = 128
MAX_REQUEST_BYTES = 1536 * 1024


class EtcdError(CorednsPyError):
    """etcd refused a request."""


class EtcdUnavailable(EtcdError):
    """No etcd member answers."""


class LeaseExpired(EtcdError):
    """The lease is gone: its keys went with it."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def prefix_end(prefix: bytes) -> bytes:
    """The end of the range of keys that start with ``prefix`` (etcd's
    clientv3.GetPrefixRangeEnd): the prefix with its last byte below 0xff
    increased."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"  # every key


@dataclass(frozen=True)
class Security:
    """TLS and authentication, from the config keys (never the command line)."""

    ca_file: str = ""  # verify the members' certificates with this CA
    cert_file: str = ""  # client certificate, with its key in key_file
    key_file: str = ""
    username: str = ""
    password: str = ""  # read from etcd_password_file

    @property
    def tls(self) -> bool:
        return bool(self.ca_file or self.cert_file)


def parse_endpoints(text: str, security: Security = Security()) -> list[str]:
    """``URLS`` as given to ``--etcd``: comma-separated client URLs of the
    members (``http://host:port``, ``https://...``; a bare ``host:port``
    is https when TLS is configured, http otherwise)."""
    urls = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if "://" not in item:
            item = ("https://" if security.tls else "http://") + item
        parts = urlsplit(item)
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError:
            raise ConfigError(f"--etcd: bad port in {item!r}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or \
                parts.path not in ("", "/"):
            raise ConfigError(f"--etcd: not a client URL: {item!r} "
                              "(expected http://HOST:PORT or https://HOST:PORT)")
        url = f"{parts.scheme}://{hostport.join(parts.hostname, port)}"
        if url not in urls:
            urls.append(url)
    if not urls:
        raise ConfigError("--etcd: no endpoint given")
    return urls


class _KeepaliveAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        kwargs["socket_options"] = HTTPConnection.default_socket_options + [
            (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
            (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE),
            (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL),
            (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_COUNT),
        ]
        super().init_poolmanager(*args, **kwargs)


def reason(exc: BaseException) -> str:
    """Why a request failed, in a few words (what etcd said, or what the
    network did), for the log and /ready."""
    detail = getattr(exc, "detail_text", None) or ""
    if detail.startswith("{"):
        try:
            said = json.loads(detail)
            return str(said.get("message") or said.get("error") or detail)[:200]
        except ValueError:
            pass
    text = str(detail or exc)
    for marker, words in (("Connection refused", "connection refused"),
                          ("timed out", "timed out"), ("Read timeout", "timed out"),
                          ("Name or service not known", "unknown host"),
                          ("CERTIFICATE_VERIFY_FAILED", "TLS: certificate verify failed"),
                          ("SSLError", "TLS handshake failed"),
                          ("RemoteDisconnected", "connection closed"),
                          ("Connection reset", "connection reset")):
        if marker in text:
            return words
    text = text.strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


class Etcd:
    """The members of one etcd cluster; every call goes to the member that
    last answered, and to the next ones when it does not."""

    def __init__(self, endpoints: Sequence[str], security: Security = Security(),
                 timeout: float = REQUEST_TIMEOUT):
        self.endpoints = list(endpoints)
        self.security = security
        self.timeout = timeout
        self.session = self._session()
        self._clients = []
        for url in self.endpoints:
            parts = urlsplit(url)
            self._clients.append(Etcd3Client(
                parts.hostname, parts.port or DEFAULT_PORT, parts.scheme,
                timeout=(CONNECT_TIMEOUT, timeout), api_path="/v3/", session=self.session))
        self._current = 0

    def _session(self) -> requests.Session:
        session = requests.Session()
        adapter = _KeepaliveAdapter(pool_maxsize=4)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        sec = self.security
        if sec.ca_file:
            session.verify = sec.ca_file
            # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a
            # session's CA; the CA the config names must win.
            session.trust_env = False
        if sec.cert_file:
            session.cert = (sec.cert_file, sec.key_file) if sec.key_file else sec.cert_file
        return session

    @property
    def endpoint(self) -> str:
        """The member in use now."""
        return self.endpoints[self._current]

    def describe(self) -> str:
        return ",".join(self.endpoints)

    def close(self) -> None:
        self.session.close()

    # --- requests -------------------------------------------------------------

    def _authenticate(self, client: Etcd3Client) -> None:
        sec = self.security
        self.session.headers.pop("Authorization", None)
        reply = client.post(client.get_url("/auth/authenticate"),
                            json={"name": sec.username, "password": sec.password})
        self.session.headers["Authorization"] = reply["token"]

    def call(self, path: str, body: dict) -> dict:
        """POST ``body`` to the gateway's ``path`` (``/kv/range``, ...) on the
        member in use, failing over to the others; EtcdUnavailable when none
        answers, EtcdError when etcd refuses."""
        last: Optional[BaseException] = None
        n = len(self._clients)
        for attempt in range(n):
            index = (self._current + attempt) % n
            client = self._clients[index]
            try:
                if self.security.username and "Authorization" not in self.session.headers:
                    self._authenticate(client)
                try:
                    reply = client.post(client.get_url(path), json=body)
                except gw.Etcd3Exception as exc:
                    if self.security.username and "auth token" in (exc.detail_text or ""):
                        self._authenticate(client)  # the token expired: once more
                        reply = client.post(client.get_url(path), json=body)
                    else:
                        raise
            except (gw.ConnectionFailedError, gw.ConnectionTimeoutError,
                    gw.InternalServerError, requests.RequestException) as exc:
                last = exc
                continue
            except gw.Etcd3Exception as exc:
                raise EtcdError(f"etcd {self.endpoints[index]}: {reason(exc)}") from None
            if index != self._current:
                log.info("etcd: now using %s", self.endpoints[index])
                self._current = index
            return reply
        raise EtcdUnavailable(f"no etcd member answers ({self.describe()}): "
                              f"{reason(last) if last else 'no endpoint'}")

    def next_endpoint(self) -> None:
        """Move on to the next member (its stream broke, say)."""
        self._current = (self._current + 1) % len(self._clients)

    def url(self, path: str) -> str:
        client = self._clients[self._current]
        return client.get_url(path)

    # --- the calls we make ---------------------------------------------------------

    def range(self, key: bytes, end: Optional[bytes] = None, *, revision: int = 0,
              limit: int = 0, keys_only: bool = False) -> dict:
        body: dict = {"key": b64(key)}
        if end is not None:
            body["range_end"] = b64(end)
        if revision:
            body["revision"] = revision
        if limit:
            body["limit"] = limit
        if keys_only:
            body["keys_only"] = True
        return self.call("/kv/range", body)

    def get(self, key: bytes) -> tuple[Optional[bytes], int, dict]:
        """(value or None, the store's revision, the kv's metadata)."""
        reply = self.range(key)
        kvs = reply.get("kvs") or []
        revision = int(reply["header"]["revision"])
        if not kvs:
            return None, revision, {}
        return unb64(kvs[0].get("value", "")), revision, kvs[0]

    def list_prefix(self, prefix: bytes, *, page: int = 1000,
                    revision: int = 0) -> Iterator[tuple[int, list]]:
        """Every key under ``prefix`` as of one revision, a page at a time:
        yields (revision, kvs) where kvs are (key, value, mod_revision).  The
        first page fixes the revision (the newest unless given), every
        next page is read at that revision, so the whole list is one
        consistent view however long it takes (client-go's paged list)."""
        start, end = prefix, prefix_end(prefix)
        while True:
            reply = self.range(start, end, revision=revision, limit=page)
            if not revision:
                revision = int(reply["header"]["revision"])
            kvs = [(unb64(kv["key"]), unb64(kv.get("value", "")), int(kv["mod_revision"]))
                   for kv in reply.get("kvs") or []]
            yield revision, kvs
            if not reply.get("more") or not kvs:
                return
            start = kvs[-1][0] + b"\x00"

    def txn(self, compare: list, success: list, failure: Sequence = ()) -> tuple[bool, dict]:
        """One transaction: (succeeded, the reply)."""
        reply = self.call("/kv/txn", {"compare": compare, "success": success,
                                      "failure": list(failure)})
        return bool(reply.get("succeeded")), reply

    def grant(self, ttl: int) -> int:
        reply = self.call("/lease/grant", {"TTL": ttl})
        return int(reply["ID"])

    def keepalive(self, lease: int) -> int:
        """Refresh a lease; its TTL, LeaseExpired when it is gone."""
        reply = self.call("/lease/keepalive", {"ID": lease})
        ttl = int((reply.get("result") or {}).get("TTL", 0))
        if ttl <= 0:
            raise LeaseExpired(f"lease {lease:x} expired")
        return ttl

    def revoke(self, lease: int) -> None:
        self.call("/kv/lease/revoke", {"ID": lease})

    def compact(self, revision: int) -> None:
        self.call("/kv/compaction", {"revision": revision, "physical": True})


# --- the operations of a transaction, as the gateway spells them ---------------------

def put(key: bytes, value: bytes, lease: int = 0) -> dict:
    req = {"key": b64(key), "value": b64(value)}
    if lease:
        req["lease"] = lease
    return {"request_put": req}


def delete(key: bytes) -> dict:
    return {"request_delete_range": {"key": b64(key)}}


def get_op(key: bytes) -> dict:
    return {"request_range": {"key": b64(key)}}


def created_at(key: bytes, revision: int) -> dict:
    """Compare: the key was created at ``revision`` (0: it does not exist)."""
    return {"key": b64(key), "target": "CREATE", "result": "EQUAL",
            "create_revision": revision}


def op_size(op: dict) -> int:
    """About what an operation adds to a request (base64 text and JSON)."""
    body = next(iter(op.values()))
    return len(body.get("key", "")) + len(body.get("value", "")) + 64


def connect(urls: str, config) -> Etcd:
    """The etcd cluster of ``--etcd URLS``, secured as the config says
    (``etcd_ca_file``, ``etcd_cert_file``, ``etcd_key_file``,
    ``etcd_username``, ``etcd_password_file``)."""
    files = {}
    for key in ("etcd_ca_file", "etcd_cert_file", "etcd_key_file", "etcd_password_file"):
        path = os.path.expanduser(getattr(config, key))
        if path and not os.path.isfile(path):
            raise ConfigError(f"config key {key}: no such file: {path}")
        files[key] = path
    if files["etcd_key_file"] and not files["etcd_cert_file"]:
        raise ConfigError("config key etcd_key_file needs etcd_cert_file (the certificate)")
    password = ""
    if files["etcd_password_file"]:
        try:
            with open(files["etcd_password_file"], encoding="utf-8") as fh:
                password = fh.read().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"config key etcd_password_file: cannot read "
                              f"{files['etcd_password_file']}: {exc.strerror}") from None
    if config.etcd_username and not password:
        raise ConfigError("config key etcd_username needs etcd_password_file (a file "
                          "holding the password)")
    security = Security(files["etcd_ca_file"], files["etcd_cert_file"], files["etcd_key_file"],
                        config.etcd_username, password)
    return Etcd(parse_endpoints(urls, security), security)
