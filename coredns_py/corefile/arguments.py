"""Reading a directive's arguments: durations as Go writes them, whole
numbers, zones and CIDRs, HTTP listen addresses; every error names the
Corefile's file and line."""

from __future__ import annotations

import ipaddress
import re
from typing import Optional

from coredns_py import hostport
from coredns_py.corefile.blocks import Line
from coredns_py.errors import ConfigError
from coredns_py.resolver import forward_config


def fail(line_or_token, message: str) -> ConfigError:
    return ConfigError(f"{line_or_token.where}: {message}")


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration(tok, bare_seconds: bool = True) -> float:
    """A Go duration ("5s", "1.5h", "2h45m", "300ms"); a bare number is seconds."""
    text = tok.text.strip()
    if bare_seconds and re.fullmatch(r"\d+", text):
        return float(text)
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise fail(tok, f"{text!r} is not a duration (e.g. 5s, 300ms, 1h)")
    return total


def integer(tok, low: int = 0, high: Optional[int] = None) -> int:
    if not re.fullmatch(r"\d+", tok.text):
        raise fail(tok, f"{tok.text!r} is not a whole number")
    value = int(tok.text)
    if value < low or (high is not None and value > high):
        raise fail(tok, f"{value} is not within {low}..{high}")
    return value


def zone_of(tok) -> str:
    """A zone in the table's form ("." or "corp.example"); a CIDR is its first
    reverse zone's parent list (see zones_of)."""
    try:
        return forward_config.domain_name(tok.text)
    except ValueError as exc:
        raise fail(tok, str(exc)) from None


def zones_of(tok) -> list[str]:
    try:
        return forward_config.domains_of(tok.text)
    except ValueError as exc:
        raise fail(tok, str(exc)) from None


def is_under(name: str, zone: str) -> bool:
    return forward_config.is_under(name, zone)


def http_address(line: Line, default: str) -> str:
    """CoreDNS's [HOST]:PORT for health, ready, prometheus, as HOST:PORT
    (":8080" is every IPv4 address, as CoreDNS listens on all)."""
    if len(line.args) > 1:
        raise fail(line, f"{line.name.text} takes at most one address")
    text = line.args[0].text if line.args else default
    host, _, port = text.rpartition(":")
    if host.startswith("["):
        host = host[1:-1]
    host = {"": "0.0.0.0", "localhost": "127.0.0.1"}.get(host, host)
    try:
        ipaddress.ip_address(host)
        if not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError
    except ValueError:
        raise fail(line, f"{line.name.text} {text}: expected [HOST]:PORT with an IP address")
    return hostport.join(host, int(port))


def looks_like_address(text: str) -> bool:
    try:
        from coredns_py.resolver import upstreams
        upstreams.parse_address(text)
        return True
    except ValueError:
        return False
