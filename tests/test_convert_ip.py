"""fields.ip takes a shortcut for dotted quads: it must accept, reject and
write every address exactly as ``str(ipaddress.ip_address(value))`` does."""

from __future__ import annotations

import ipaddress
import json
import random

import pytest

from coredns_py.source import fields
from coredns_py.errors import ManifestError

CTX = fields.Ctx("Service", {"metadata": {"name": "s"}}, "f.yaml", 3)

TRICKY = [
    "10.96.0.1", "0.0.0.0", "255.255.255.255", "1.2.3.4", "192.168.100.200",
    "249.250.251.252", "199.99.9.0",
    # rejected by ipaddress: leading zeros, out of range, wrong shape
    "010.96.0.1", "10.96.0.01", "00.0.0.0", "256.1.1.1", "1.1.1.256", "300.1.1.1",
    "1.2.3", "1.2.3.4.5", "1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4 ", " 1.2.3.4", "1.2.3.4\n",
    "1.2.3.-4", "+1.2.3.4", "1.2.3.0x4", "1.2.3.1_0", "1.2.3.٤", "1.2.3.４", "1.2.3.4/32",
    "1.2.3.4%eth0", "", "None", "localhost", "1000.1.1.1",
    # IPv6, through ipaddress
    "::", "::1", "fd00::1", "FD00::0001", "fd00:0:0:0:0:0:0:1", "2001:db8::1:0:0:1",
    "::ffff:1.2.3.4", "::ffff:010.2.3.4", "fe80::1%eth0", "fe80::1%", "1::2::3", "::1/128",
    "2001:db8:0:0:1:0:0:1", "0:0:0:0:0:0:0:0", "1:2:3:4:5:6:7:8:9", "[::1]",
]


def reference(value):
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return ManifestError(f"Invalid value: {json.dumps(value, ensure_ascii=False)}: must be a valid IP address, "
                             "(e.g. 10.9.8.7 or 2001:db8::ffff)", "f.yaml", 3,
                             "Service default/s", "spec.clusterIP")


def fast(value):
    try:
        return fields.ip(CTX, value, "spec.clusterIP")
    except ManifestError as exc:
        return exc


def same(a, b) -> bool:
    if isinstance(a, ManifestError) or isinstance(b, ManifestError):
        return type(a) is type(b) and str(a) == str(b)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("value", TRICKY)
def test_same_as_ipaddress(value):
    assert same(fast(value), reference(value))


def test_random_dotted_text_same_as_ipaddress():
    rng = random.Random(7)
    pieces = ["0", "00", "01", "1", "9", "10", "99", "100", "199", "200", "249", "250", "255",
              "256", "260", "300", "999", "1000", "", "a", " 1", "-1"]
    for _ in range(20000):
        value = ".".join(rng.choice(pieces) for _ in range(rng.choice([3, 4, 4, 4, 5])))
        assert same(fast(value), reference(value)), value
    for n in range(0, 2**32, 2**32 // 5000 + 1):
        value = str(ipaddress.IPv4Address(n))
        assert fast(value) == value


def test_not_a_string_is_rejected():
    for value in (None, 10, 1.5, ["10.0.0.1"], b"10.0.0.1"):
        with pytest.raises(ManifestError, match="expected an IP address"):
            fields.ip(CTX, value, "spec.clusterIP")
