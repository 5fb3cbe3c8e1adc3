"""The names of the cluster zone: how an owner name is built from a Service,
an endpoint or a port, and read back from a query.

Schema (Kubernetes DNS specification 1.1.0, as CoreDNS parse.go reads it):

    <svc>.<ns>.svc.<zone>                     a Service
    <ep>.<svc>.<ns>.svc.<zone>                one endpoint (hostname, pod name or dashed IP)
    _<port>._<proto>.<svc>.<ns>.svc.<zone>    a named port (SRV)
    <dashed-ip>.<ns>.pod.<zone>               a pod, following the ``pods`` mode

Labels are stored lower-case; queries are matched case-insensitively.
"""

from __future__ import annotations

import ipaddress
from typing import Optional

import dns.name
import dns.reversename

from coredns_py.source.objects import is_dotted_quad


def service_labels(namespace: str, name: str, zone: tuple, endpoint: str = "") -> tuple:
    """``<svc>.<ns>.svc.<zone>`` (or with ``<endpoint>.`` in front) as labels,
    without the root label: the form records are written from
    (:mod:`coredns_py.zone.records`).  ``zone``: its labels, likewise."""
    labels = (name.encode(), namespace.encode(), b"svc") + zone
    return ((endpoint.encode(),) + labels) if endpoint else labels


def zone_labels(zone: dns.name.Name) -> tuple:
    """A zone's labels without the root label."""
    return zone.labels[:-1]


def service(namespace: str, name: str, zone: dns.name.Name,
            endpoint: str = "") -> dns.name.Name:
    """``<svc>.<ns>.svc.<zone>``, or ``<endpoint>.<svc>.<ns>.svc.<zone>``."""
    return dns.name.Name(service_labels(namespace, name, zone_labels(zone), endpoint) + (b"",))


def port(namespace: str, name: str, port_name: str, protocol: str,
         zone: dns.name.Name) -> dns.name.Name:
    """``_<port>._<proto>.<svc>.<ns>.svc.<zone>``: where a named port's SRV lives."""
    return dns.name.Name((f"_{port_name}".encode(), f"_{protocol}".encode())
                         + service(namespace, name, zone).labels)


def nameserver_labels(zone: tuple) -> tuple:
    """``ns.dns.<zone>`` as labels: the SOA's mname, on the zone as asked,
    and the name server when no Service holds our address (CoreDNS ns.go)."""
    return (b"ns", b"dns") + zone


def hostmaster_labels(zone: tuple) -> tuple:
    """``hostmaster.<zone>`` as labels (the SOA's rname)."""
    return (b"hostmaster",) + zone


def reverse(ip: str) -> dns.name.Name:
    """The PTR owner of an address (``7.7.96.10.in-addr.arpa.``)."""
    return dns.reversename.from_address(ip)


def dashed(ip: str) -> str:
    """The endpoint name of an address without a hostname.

    IPv4 dots become dashes (``172-0-0-2``); IPv6 uses the compressed text
    form with colons as dashes, and a trailing dash padded to ``-0`` so the
    label does not end in a dash (CoreDNS ``endpointHostname``).
    """
    if is_dotted_quad(ip):
        return ip.replace(".", "-")
    addr = ipaddress.ip_address(ip)
    if addr.version == 4:
        return str(addr).replace(".", "-")
    text = addr.compressed.replace(":", "-")
    if text.startswith("-"):
        text = "0" + text
    if text.endswith("-"):
        text += "0"
    return text


def pod_ip(label: str):
    """``10-244-0-5`` or ``fd00-10-244--5`` back to an address (CoreDNS findPods); None
    when the label is not one."""
    if "%" in label:
        return None  # a zoned IPv6 address: Go's net.ParseIP, which CoreDNS uses, rejects it
    if label.count("-") == 3 and "--" not in label:
        text = label.replace("-", ".")
    else:
        text = label.replace("-", ":")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def below(qname: tuple, zone: tuple) -> Optional[list[str]]:
    """The labels of ``qname`` below ``zone`` (both label tuples, ``zone``
    in lower case), lower-case text, leftmost first; None when ``qname`` is
    not in ``zone``.  Names match case-insensitively."""
    n = len(zone)
    if len(qname) < n or tuple(label.lower() for label in qname[len(qname) - n:]) != zone:
        return None
    # latin-1 maps every byte to one character, so odd bytes never raise.
    return [label.lower().decode("latin-1") for label in qname[:len(qname) - n]]
