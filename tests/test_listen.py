"""Listen addresses as a user writes them (``--listen``, ``--http``).

Binding them (ports in use, port 0, IPv6 beside IPv4) is tested with real
sockets in test_transport.py.
"""

from __future__ import annotations

import pytest

from coredns_py.net.listen import parse_listen


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:5353", ("127.0.0.1", 5353)),
    (":53", ("0.0.0.0", 53)),
    ("[::1]:53", ("::1", 53)),
    ("[::]:5353", ("::", 5353)),
    ("[2001:DB8::1]:53", ("2001:db8::1", 53)),
    ("0.0.0.0:0", ("0.0.0.0", 0)),
    ("10.0.0.1:65535", ("10.0.0.1", 65535)),
    (" 127.0.0.1:53 ", ("127.0.0.1", 53)),
])
def test_parse_listen_ok(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("127.0.0.1", "missing port"),
    ("127.0.0.1:", "missing port"),
    ("[::1]", "missing port"),
    ("[::1]:", "missing port"),
    ("[::1", "missing ']'"),
    ("[::1]53", "expected ':'"),
    ("::1:53", "brackets"),
    ("127.0.0.1:65536", "out of range"),
    ("127.0.0.1:-1", "not a number"),
    ("127.0.0.1:dns", "not a number"),
    ("127.0.0.1:５３", "not a number"),
    ("example.com:53", "not an IP address"),
    ("256.0.0.1:53", "not an IP address"),
    ("[127.0.0.1]:53", "not an IPv6 address"),
])
def test_parse_listen_errors(text, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_listen(text)
