"""DNS-over-TCP framing, sans-IO: each message is sent with a two-byte,
big-endian length prefix (RFC 1035 section 4.2.2, RFC 7766 section 8).

:class:`FrameDecoder` is a receive buffer in the style of h11's: the
protocol feeds it whatever bytes arrived (a message may come split across
any number of reads, or several in one read when a client pipelines) and
takes complete messages out one at a time.  It knows the framing's limits
-- a zero-length frame is an error, and a connection may leave only so many
bytes unanswered -- and nothing about sockets, asyncio or DNS content, so
it is tested by feeding it bytes.  :func:`encode` is the other direction.
"""

from __future__ import annotations

from typing import Optional

from coredns_py.errors import FramingError
from coredns_py.zone.wire import MAX_MESSAGE

# Unanswered bytes we keep per TCP connection.  Complete queries are answered
# as soon as they arrive, so normally only one partial frame is buffered (at
# most 2 + 65535 bytes).  More accumulates only while we have stopped
# answering because the client does not read its answers (write buffer full,
# reading paused); allowing one more maximum-size frame on top is generous,
# and a client past that is flooding us, so it is disconnected.
MAX_TCP_BUFFER = 2 * (2 + MAX_MESSAGE)

PREFIX = 2  # bytes of the length prefix: a message is at most MAX_MESSAGE bytes


def encode(message: bytes) -> bytes:
    """``message`` framed for TCP (raises OverflowError past MAX_MESSAGE bytes)."""
    return len(message).to_bytes(PREFIX, "big") + message


class FrameDecoder:
    """The bytes a TCP client sent that are not yet taken as messages.

    ``feed(data)`` adds what arrived; ``next_message()`` removes and returns
    the next complete message, or None while its frame is incomplete.
    ``len()`` is the number of bytes held.  The decoder never refuses input:
    when to apply ``over_limit()`` (after answering what can be answered) is
    the protocol's decision.
    """

    def __init__(self, limit: int = MAX_TCP_BUFFER):
        self.limit = limit
        self._data = bytearray()

    def __len__(self) -> int:
        return len(self._data)

    def feed(self, data: bytes) -> None:
        self._data += data

    def next_message(self) -> Optional[bytes]:
        """The next complete message, taken out of the buffer, or None.

        Raises FramingError at a zero-length frame (and keeps it: the
        connection is finished).
        """
        data = self._data
        if len(data) < PREFIX:
            return None
        length = int.from_bytes(data[:PREFIX], "big")
        if length == 0:
            # No DNS message is empty: broken or hostile client.
            raise FramingError("zero-length message")
        end = PREFIX + length
        if len(data) < end:
            return None  # partial frame: wait for more data
        message = bytes(data[PREFIX:end])
        del data[:end]  # cheap: bytearray deletes from the front in O(1)
        return message

    def has_complete_frame(self) -> bool:
        """Whether a whole frame is held, the zero-length one included: at
        end of input, anything less is a partial frame that never completes."""
        data = self._data
        return len(data) >= PREFIX and len(data) >= PREFIX + int.from_bytes(data[:PREFIX], "big")

    def over_limit(self) -> bool:
        """More bytes held than ``limit``: the client is flooding us."""
        return len(self._data) > self.limit

    def clear(self) -> None:
        self._data.clear()
