"""One question to one upstream: over UDP (TCP when truncated), over TCP
only (``force_tcp``), or over TLS (RFC 7858, ``tls://`` upstreams).

DNS over TLS costs a TCP and a TLS handshake per connection, so
connections are kept and reused, as CoreDNS's forward plugin does: an idle
connection goes back to its upstream's pool and is closed after ``expire``
seconds unused (CoreDNS ``expire``, default 10 s).  A kept connection the
server has closed meanwhile fails on first use; the question is then asked
once more on a new connection, which is what CoreDNS does too.

The server's certificate is verified: against the system's trust store, or
a CA file given for those upstreams (CoreDNS ``tls CA``), for the name
``tls_servername`` (or ``tls://IP%NAME``), or the IP address itself when
no name is given (its certificate must then list that IP).  A client
certificate is sent when one is configured (``tls CERT KEY``).  TLS 1.2 at
least, as CoreDNS.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from typing import Optional

import dns.asyncbackend
import dns.asyncquery
import dns.exception
import dns.inet
import dns.message

from coredns_py.resolver.upstreams import Upstream

# Kept TLS connections per upstream.  Each is a socket and a TLS session
# (tens of kilobytes); queries beyond this in flight at once open a
# connection of their own, closed after use.
MAX_IDLE_CONNECTIONS = 16

# CoreDNS closes cached upstream connections after 10 s unused (``expire``).
DEFAULT_EXPIRE = 10.0


def tls_context(ca: str = "", cert: str = "", key: str = "") -> ssl.SSLContext:
    """A client context that verifies the server: the system's CAs, or ``ca``
    alone; with ``cert`` and ``key`` it authenticates us too.  Raises
    OSError or ssl.SSLError for files that cannot be read or used."""
    ctx = ssl.create_default_context(cafile=ca or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        ctx.load_cert_chain(cert, key or None)
    return ctx


class Transport:
    """How one domain's upstreams are asked (its forward options)."""

    def __init__(self, *, force_tcp: bool = False, tls: Optional[ssl.SSLContext] = None,
                 server_name: str = "", expire: float = DEFAULT_EXPIRE):
        self.force_tcp = force_tcp
        self.tls = tls
        self.server_name = server_name
        self.expire = expire
        self._idle: dict[Upstream, list[tuple[float, object]]] = {}
        self._backend = dns.asyncbackend.get_backend("asyncio")

    async def exchange(self, up: Upstream, query: dns.message.Message,
                       timeout: float) -> dns.message.Message:
        """The upstream's answer; raises on timeout, refusal, a broken answer."""
        async with asyncio.timeout(timeout):
            if up.tls:
                return await self._tls(up, query)
            if self.force_tcp:
                return await dns.asyncquery.tcp(query, up.host, port=up.port)
            # A connected UDP socket: an ICMP "port unreachable" (nobody
            # listens there) fails the attempt at once instead of after the
            # timeout, and no other address can answer on it.
            async with await self._backend.make_socket(
                    dns.inet.af_for_address(up.host), socket.SOCK_DGRAM, 0, None,
                    (up.host, up.port)) as sock:
                # ignore_errors: a reply with the wrong ID or a garbled one is
                # skipped (it may be spoofed); only the right one ends the
                # wait.  A truncated one is asked again over TCP.
                msg, _tcp = await dns.asyncquery.udp_with_fallback(
                    query, up.host, port=up.port, udp_sock=sock, ignore_errors=True)
                return msg

    # --- DNS over TLS -------------------------------------------------------------

    async def _tls(self, up: Upstream, query: dns.message.Message) -> dns.message.Message:
        kept = self._take(up)
        if kept is not None:
            try:
                msg = await dns.asyncquery.tls(query, up.host, port=up.port, sock=kept)
            except (OSError, EOFError, dns.exception.DNSException):
                await _close(kept)  # the server closed it meanwhile: a new one
            except BaseException:  # timed out or cancelled: never reuse it
                _close_soon(kept)
                raise
            else:
                self._give(up, kept)
                return msg
        sock = await self._backend.make_socket(
            dns.inet.af_for_address(up.host), socket.SOCK_STREAM, 0, None, (up.host, up.port),
            None, self.tls or tls_context(), up.server_name or self.server_name or up.host)
        try:
            msg = await dns.asyncquery.tls(query, up.host, port=up.port, sock=sock)
        except BaseException:
            _close_soon(sock)
            raise
        self._give(up, sock)
        return msg

    def _take(self, up: Upstream):
        idle = self._idle.get(up)
        now = time.monotonic()
        while idle:
            since, sock = idle.pop()
            if now - since < self.expire:
                return sock
            _close_soon(sock)
        return None

    def _give(self, up: Upstream, sock) -> None:
        idle = self._idle.setdefault(up, [])
        if len(idle) >= MAX_IDLE_CONNECTIONS or self.expire <= 0:
            _close_soon(sock)
            return
        idle.append((time.monotonic(), sock))

    async def close(self) -> None:
        """Close every kept connection (server stop, config reload)."""
        idle, self._idle = self._idle, {}
        for socks in idle.values():
            for _since, sock in socks:
                await _close(sock)


async def _close(sock) -> None:
    try:
        await sock.close()
    except Exception:  # closing a broken connection may fail; it is gone either way
        pass


def _close_soon(sock) -> None:
    try:
        asyncio.get_running_loop().create_task(_close(sock))
    except RuntimeError:
        pass
