"""DNS over TCP as a test client writes it: each message behind its 2-byte
length (RFC 1035 4.2.2), written out here rather than with the server's
own ``coredns_py.net.framing.encode``, so the two check each other."""

from __future__ import annotations

import socket


def frame(message: bytes) -> bytes:
    """``message`` with its length in front."""
    return len(message).to_bytes(2, "big") + message


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """Exactly ``n`` bytes from a blocking socket; ConnectionError when the
    peer closes first."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return bytes(buf)
