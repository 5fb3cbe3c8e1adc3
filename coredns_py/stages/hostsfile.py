"""The hosts-file format (``/etc/hosts``, hosts(5)) and the table it makes.

Each line: an IP address, then one or more names; ``#`` starts a comment.
As in CoreDNS's hosts plugin: names are matched case-insensitively, an IPv6
address with a zone (``fe80::1%eth0``) loses its zone, a name outside the
zones the table serves is left out, and every address also answers its
reverse name (PTR) unless ``no_reverse``.  A line that does not parse is
reported with its file and line number and skipped; the others are kept.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Iterable, Optional

# A name is at most 253 characters in text (RFC 1035: 255 octets on the
# wire), a label 63.
MAX_NAME = 253
MAX_LABEL = 63


@dataclass
class Table:
    """Names to addresses and back, for the zones it serves.  Names are
    lower case with the final dot ("host.example.")."""

    v4: dict[str, list[str]] = field(default_factory=dict)
    v6: dict[str, list[str]] = field(default_factory=dict)
    ptr: dict[str, list[str]] = field(default_factory=dict)  # reverse name -> names

    def has(self, name: str) -> bool:
        return name in self.v4 or name in self.v6

    def __len__(self) -> int:
        return len(set(self.v4) | set(self.v6))


def normalize_name(text: str) -> Optional[str]:
    """``Host.Example`` -> ``host.example.``; None when it is not a host name."""
    name = text.strip().lower().rstrip(".")
    if not name or len(name) > MAX_NAME:
        return None
    labels = name.split(".")
    if any(not label or len(label) > MAX_LABEL for label in labels):
        return None
    if any(c.isspace() or c in "\\\"()" for c in name):
        return None
    return name + "."


def in_zones(name: str, zones: Iterable[str]) -> bool:
    """Is ``name`` ("a.b.") at or under one of ``zones`` ("." or "b.")?"""
    for zone in zones:
        if zone == "." or name == zone or name.endswith("." + zone):
            return True
    return False


def parse(text: str, path: str, zones: Iterable[str], table: Optional[Table] = None, *,
          reverse: bool = True) -> tuple[Table, list[str]]:
    """Add the lines of ``text`` to ``table`` (a new one by default); return
    it and the problems found, each as ``path:line: what``."""
    zones = tuple(zones)
    table = table if table is not None else Table()
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) < 2:
            problems.append(f"{path}:{number}: an address without a name: {line.strip()!r}")
            continue
        try:
            ip = ipaddress.ip_address(fields[0].split("%", 1)[0])
        except ValueError:
            problems.append(f"{path}:{number}: {fields[0]!r} is not an IP address")
            continue
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        family = table.v4 if ip.version == 4 else table.v6
        for word in fields[1:]:
            name = normalize_name(word)
            if name is None:
                problems.append(f"{path}:{number}: {word!r} is not a host name")
                continue
            if not in_zones(name, zones):
                continue
            addresses = family.setdefault(name, [])
            if str(ip) not in addresses:
                addresses.append(str(ip))
            if reverse:
                names = table.ptr.setdefault(ip.reverse_pointer + ".", [])
                if name not in names:
                    names.append(name)
    return table, problems
