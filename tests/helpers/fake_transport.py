"""The one fake transport the protocol tests use: it records what a protocol
writes and how it drives flow control, like the fakes in uvicorn's
``tests/protocols``.  No socket, no event loop: a test feeds bytes to the
protocol and looks at ``writes`` (TCP) or ``sent`` (UDP).
"""

from __future__ import annotations

PEER = ("192.0.2.7", 40000)  # TEST-NET-1: a client that cannot be real


class FakeTransport:
    """Stands in for an asyncio TCP transport (``write``) or datagram
    transport (``sendto``).

    ``writes`` holds each ``write()``, ``sent`` each ``sendto()`` as
    ``(data, addr)``; ``closed``/``aborted`` say how the protocol ended the
    connection, ``reading`` whether it wants more input.  Set ``buffered`` to
    make the kernel's send buffer look full (``get_write_buffer_size``).
    """

    def __init__(self, peer=PEER):
        self.peer = peer
        self.writes: list[bytes] = []
        self.sent: list[tuple[bytes, tuple]] = []
        self.closed = False
        self.aborted = False
        self.reading = True
        self.buffered = 0

    def write(self, data):
        assert not self.closed, "write after close"
        self.writes.append(bytes(data))

    def sendto(self, data, addr=None):
        assert not self.closed, "sendto after close"
        self.sent.append((bytes(data), addr))

    def close(self):
        self.closed = True

    def abort(self):
        self.closed = self.aborted = True

    def is_closing(self):
        return self.closed

    def get_extra_info(self, name, default=None):
        return self.peer if name == "peername" else default

    def pause_reading(self):
        self.reading = False

    def resume_reading(self):
        self.reading = True

    def get_write_buffer_size(self):
        return self.buffered


def connect(protocol, peer=PEER) -> FakeTransport:
    """A fresh fake transport, handed to ``protocol.connection_made``."""
    fake = FakeTransport(peer)
    protocol.connection_made(fake)
    return fake
