"""The DNS-over-TCP frame decoder, fed bytes the way h11's tests/test_io.py
feeds its readers: the whole input at once, one byte at a time, split at
every position, in random chunks, and with trailing junk.  Every way of
cutting the same bytes must give the same messages.  No socket, no loop."""

from __future__ import annotations

import random

import pytest

from coredns_py.errors import FramingError
from coredns_py.net.framing import MAX_TCP_BUFFER, FrameDecoder, encode
from coredns_py.zone.wire import MAX_MESSAGE
from helpers.tcp import frame


# Lengths whose prefixes exercise both bytes: 1, 255 (0x00ff), 256 (0x0100), 300.
MESSAGES = [b"q", b"a" * 255, b"b" * 256, bytes(range(256)) + b"x" * 44, b"\x00\x00\x00"]
STREAM = b"".join(frame(m) for m in MESSAGES)


def decode(chunks, decoder=None) -> tuple[list[bytes], FrameDecoder]:
    """Feed ``chunks`` one after another, taking every message as soon as it
    is complete (as the TCP protocol does)."""
    if decoder is None:  # not `or`: an empty decoder has len() 0
        decoder = FrameDecoder()
    out = []
    for chunk in chunks:
        decoder.feed(chunk)
        while (message := decoder.next_message()) is not None:
            out.append(message)
    return out, decoder


def one_byte_at_a_time(data: bytes) -> list[bytes]:
    return [data[i:i + 1] for i in range(len(data))]


def random_chunks(data: bytes, rng: random.Random) -> list[bytes]:
    chunks, i = [], 0
    while i < len(data):
        n = rng.randint(1, 40)
        chunks.append(data[i:i + n])
        i += n
    return chunks


def test_whole_input_at_once():
    messages, decoder = decode([STREAM])
    assert messages == MESSAGES
    assert len(decoder) == 0 and not decoder.has_complete_frame()
    assert all(type(m) is bytes for m in messages)


def test_one_byte_at_a_time():
    messages, decoder = decode(one_byte_at_a_time(STREAM))
    assert messages == MESSAGES
    assert len(decoder) == 0


def test_split_at_every_position():
    for cut in range(len(STREAM) + 1):
        messages, decoder = decode([STREAM[:cut], STREAM[cut:]])
        assert messages == MESSAGES, cut
        assert len(decoder) == 0, cut


@pytest.mark.parametrize("seed", range(20))
def test_random_chunks(seed):
    messages, decoder = decode(random_chunks(STREAM, random.Random(seed)))
    assert messages == MESSAGES
    assert len(decoder) == 0


def test_empty_feeds_change_nothing():
    messages, _ = decode([b"", STREAM[:3], b"", STREAM[3:], b""])
    assert messages == MESSAGES


@pytest.mark.parametrize("partial", [b"\x00", b"\x00\x09", b"\x00\x09junk", b"\xff\xff" + b"z" * 1000])
def test_trailing_partial_frame_is_kept_whatever_the_cut(partial):
    data = STREAM + partial
    for chunks in ([data], one_byte_at_a_time(data),
                   random_chunks(data, random.Random(len(partial)))):
        messages, decoder = decode(chunks)
        assert messages == MESSAGES
        assert len(decoder) == len(partial)  # held, never handed out
        assert not decoder.has_complete_frame()  # at EOF: it will never complete


def test_partial_frame_completes_when_the_rest_arrives():
    messages, decoder = decode([frame(b"first") + b"\x00\x05ab"])
    assert messages == [b"first"]
    messages, _ = decode([b"cde"], decoder)
    assert messages == [b"abcde"]


@pytest.mark.parametrize("junk", [b"", b"\x00", frame(b"after"), b"\x00\x00", b"garbage\xff"])
def test_zero_length_frame_is_an_error_whatever_follows(junk):
    data = STREAM + b"\x00\x00" + junk
    for chunks in ([data], one_byte_at_a_time(data)):
        decoder = FrameDecoder()
        with pytest.raises(FramingError, match="^zero-length message$"):
            decode(chunks, decoder)
        # The messages before it were all handed out; the bad frame stays and
        # keeps failing: nothing after it is ever taken as a message.
        assert len(decoder) >= 2 and decoder.has_complete_frame()
        with pytest.raises(FramingError):
            decoder.next_message()


def test_zero_length_frame_first():
    decoder = FrameDecoder()
    decoder.feed(b"\x00")
    assert decoder.next_message() is None  # half a prefix: not yet an error
    decoder.feed(b"\x00" + frame(b"q"))
    with pytest.raises(FramingError):
        decoder.next_message()


def test_messages_stay_until_taken():
    decoder = FrameDecoder()
    decoder.feed(STREAM)
    assert len(decoder) == len(STREAM) and decoder.has_complete_frame()
    assert decoder.next_message() == MESSAGES[0]
    assert len(decoder) == len(STREAM) - len(frame(MESSAGES[0]))


@pytest.mark.parametrize("held, complete", [
    (b"", False), (b"\x00", False), (b"\x00\x03", False), (b"\x00\x03ab", False),
    (b"\x00\x03abc", True), (b"\x00\x03abcd", True), (b"\x00\x00", True),
])
def test_has_complete_frame(held, complete):
    decoder = FrameDecoder()
    decoder.feed(held)
    assert decoder.has_complete_frame() is complete


def test_maximum_length_frame():
    big = bytes(i % 251 for i in range(MAX_MESSAGE))
    messages, decoder = decode([b"\xff\xff" + big[:1000], big[1000:]])
    assert messages == [big] and len(decoder) == 0


def test_over_limit_counts_unanswered_bytes():
    decoder = FrameDecoder(limit=10)
    decoder.feed(b"\x00\x20" + b"x" * 8)  # 10 bytes of a 34-byte frame
    assert not decoder.over_limit()
    decoder.feed(b"x")
    assert decoder.over_limit()
    decoder.feed(b"x" * 23 + frame(b"y"))  # frame complete: taking it frees the room
    assert decoder.next_message() == b"x" * 32
    assert len(decoder) == 3 and not decoder.over_limit()


def test_default_limit_is_two_maximum_frames():
    assert MAX_TCP_BUFFER == 2 * (2 + 65535)
    decoder = FrameDecoder()
    decoder.feed(frame(b"m" * MAX_MESSAGE) * 2)  # e.g. while the client reads nothing
    assert not decoder.over_limit()
    decoder.feed(b"\x00")
    assert decoder.over_limit()


def test_clear():
    decoder = FrameDecoder()
    decoder.feed(STREAM[:5])
    decoder.clear()
    assert len(decoder) == 0 and decoder.next_message() is None


@pytest.mark.parametrize("message", [b"q", b"x" * 300, b"m" * MAX_MESSAGE])
def test_encode_round_trip(message):
    assert encode(message) == frame(message)
    assert decode([encode(message)])[0] == [message]


def test_encode_refuses_what_a_frame_cannot_carry():
    with pytest.raises(OverflowError):
        encode(b"x" * (MAX_MESSAGE + 1))
