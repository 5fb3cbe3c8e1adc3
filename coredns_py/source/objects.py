"""Trimmed Kubernetes objects: only what DNS and the env helper need.

Every object is a frozen dataclass with the API server's defaults already
applied (a missing namespace is ``default``, a missing port protocol is
``TCP``, a missing ``conditions.ready`` is ready).  They are built from raw
manifest dictionaries by :mod:`coredns_py.source.convert`, which rejects invalid
values with the file, the object and the field named, so code downstream can
trust every field here.
"""

from __future__ import annotations

import hashlib
import operator
import re
from dataclasses import dataclass, field, fields
from typing import Optional

# Service types the API server accepts.
CLUSTER_IP = "ClusterIP"
NODE_PORT = "NodePort"
LOAD_BALANCER = "LoadBalancer"
EXTERNAL_NAME = "ExternalName"
SERVICE_TYPES = (CLUSTER_IP, NODE_PORT, LOAD_BALANCER, EXTERNAL_NAME)

PROTOCOLS = ("TCP", "UDP", "SCTP")

# The value of spec.clusterIP that makes a Service headless.
HEADLESS = "None"


def family(ip: str) -> int:
    """4 or 6 for an address already validated (and made canonical) by convert."""
    return 6 if ":" in ip else 4


# A dotted quad exactly as ipaddress accepts it: four ASCII decimal octets
# 0-255, no leading zeros.  Such text is already canonical, so it needs no
# parsing; anything else (IPv6, zone ids, errors) goes through ipaddress.
# ip_address() costs ~6 us an address, the match ~0.4 us, and a folder of
# 10,000 Services and 1,500 EndpointSlices holds ~12,500 addresses (each
# looked at by convert, the allocator and the snapshot).
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def is_dotted_quad(text: str) -> bool:
    """True for canonical IPv4 text (what ``str(ipaddress.ip_address(text))`` keeps as is)."""
    return _DOTTED_QUAD.fullmatch(text) is not None


def _pickled_as_arguments(cls):
    """``cls`` pickled as its constructor and the values of its fields.

    Objects cross process boundaries in bulk: the parallel parse sends each
    file's objects back to the server, and the parse cache keeps them for
    the next start.  A slotted dataclass otherwise pickles through
    ``dataclasses``' generic ``__setstate__``, which looks up the fields
    again for every object: reading back 100,000 Services took 0.81 s that
    way, 0.48 s as constructor calls (bench/README.md, "Start-up")."""
    names = tuple(f.name for f in fields(cls))
    get = operator.attrgetter(*names)
    if len(names) == 1:
        def __reduce__(self):
            return cls, (get(self),)
    else:
        def __reduce__(self):
            return cls, get(self)
    cls.__reduce__ = __reduce__
    return cls


@_pickled_as_arguments
@dataclass(frozen=True, slots=True)
class Origin:
    """Where an object was read: used in every error and warning."""

    path: str
    line: Optional[int] = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path


@_pickled_as_arguments
@dataclass(frozen=True, slots=True)
class ServicePort:
    name: str  # "" when unnamed
    port: int
    protocol: str = "TCP"
    # int (a number) or str (a container port's name); None means "same as port".
    target_port: int | str | None = None
    node_port: int = 0  # shown by `get services`; DNS never uses it


@_pickled_as_arguments
@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    type: str = CLUSTER_IP
    # The addresses as the manifest (or the allocator) gives them, primary first.
    # () means "not set yet" (the allocator fills it in); ("None",) is headless.
    cluster_ips: tuple[str, ...] = ()
    ports: tuple[ServicePort, ...] = ()
    external_name: str = ""
    selector: Optional[tuple[tuple[str, str], ...]] = None  # None: no selector
    publish_not_ready: bool = False
    # ipFamilies as requested ("IPv4", "IPv6"), and the policy
    # (SingleStack / PreferDualStack / RequireDualStack).
    ip_families: tuple[str, ...] = ()
    ip_family_policy: str = ""
    # spec.allocateLoadBalancerNodePorts: false gives a LoadBalancer no nodePorts.
    allocate_node_ports: bool = True
    origin: Optional[Origin] = field(default=None, compare=False)
    labels: tuple[tuple[str, str], ...] = ()  # metadata.labels (CoreDNS `labels` filter)
    # spec.externalIPs, then status.loadBalancer.ingress (each entry's ip, or
    # its hostname): what k8s_external serves and `get services` shows, in
    # the order CoreDNS keeps them (object/service.go ExternalIPs).
    external_ips: tuple[str, ...] = ()
    ingress: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return "Service"

    @property
    def wants_node_ports(self) -> bool:
        """NodePort Services have a node port per port; LoadBalancers too,
        unless allocateLoadBalancerNodePorts is false."""
        return self.type == NODE_PORT or self.type == LOAD_BALANCER and self.allocate_node_ports

    @property
    def headless(self) -> bool:
        return self.cluster_ips[:1] == (HEADLESS,)

    @property
    def cluster_ip(self) -> str:
        """The primary ClusterIP ('' when none, 'None' when headless)."""
        return self.cluster_ips[0] if self.cluster_ips else ""

    @property
    def has_cluster_ip(self) -> bool:
        """True when the Service has a real (allocated or given) virtual IP."""
        return self.type != EXTERNAL_NAME and bool(self.cluster_ips) and not self.headless


@_pickled_as_arguments
@dataclass(frozen=True, slots=True)
class EndpointPort:
    name: str
    port: int
    protocol: str = "TCP"


@_pickled_as_arguments
@dataclass(frozen=True, slots=True)
class Endpoint:
    addresses: tuple[str, ...]
    ready: bool = True
    hostname: str = ""
    target_pod: str = ""  # targetRef.name when targetRef.kind is Pod
    node_name: str = ""


@_pickled_as_arguments
@dataclass(frozen=True, slots=True)
class EndpointSlice:
    """A discovery.k8s.io/v1 EndpointSlice, or the slice that the mirroring
    controller would make from a v1 Endpoints subset."""

    namespace: str
    name: str
    service: str  # the kubernetes.io/service-name label; "" ties it to nothing
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[EndpointPort, ...] = ()
    mirrored: bool = False  # True when made from a v1 Endpoints object
    origin: Optional[Origin] = field(default=None, compare=False)

    @property
    def kind(self) -> str:
        return "Endpoints" if self.mirrored else "EndpointSlice"


@_pickled_as_arguments
@dataclass(frozen=True, slots=True)
class ContainerPort:
    name: str
    container_port: int
    protocol: str = "TCP"


@_pickled_as_arguments
@dataclass(frozen=True, slots=True)
class Pod:
    namespace: str
    name: str
    labels: tuple[tuple[str, str], ...] = ()
    ips: tuple[str, ...] = ()  # status.podIPs, primary first; () means "to allocate"
    phase: str = "Running"
    terminating: bool = False  # metadata.deletionTimestamp is set
    ready: bool = True
    hostname: str = ""
    subdomain: str = ""
    ports: tuple[ContainerPort, ...] = ()
    owner: str = ""  # "Deployment/web" when a workload made it
    origin: Optional[Origin] = field(default=None, compare=False)

    @property
    def kind(self) -> str:
        return "Pod"

    @property
    def running(self) -> bool:
        """Counted by DNS: not finished, not being deleted (CoreDNS object/pod.go)."""
        return self.phase in ("Running", "Pending") and not self.terminating

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)  # labels are few; a dict per call is cheap enough


@_pickled_as_arguments
@dataclass(frozen=True, slots=True)
class LabelRequirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: tuple[str, ...] = ()


@_pickled_as_arguments
@dataclass(frozen=True, slots=True)
class Workload:
    """A Deployment, ReplicaSet, StatefulSet or DaemonSet: a pod factory."""

    kind: str
    namespace: str
    name: str
    replicas: int
    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[LabelRequirement, ...] = ()
    template_labels: tuple[tuple[str, str], ...] = ()
    template_hostname: str = ""
    template_subdomain: str = ""
    ports: tuple[ContainerPort, ...] = ()
    service_name: str = ""  # StatefulSet spec.serviceName
    template_hash: str = ""  # stands in for pod-template-hash
    origin: Optional[Origin] = field(default=None, compare=False)


@_pickled_as_arguments
@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    origin: Optional[Origin] = field(default=None, compare=False)
    # metadata.labels, with kubernetes.io/metadata.name, which the API
    # server sets on every namespace (CoreDNS `namespace_labels` filter).
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def kind(self) -> str:
        return "Namespace"

    @property
    def namespace(self) -> str:
        return ""


# The alphabet Kubernetes uses for generated names (k8s.io/apimachinery rand.SafeEncodeString).
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def safe_hash(text: str, length: int) -> str:
    """A stable stand-in for the random suffixes Kubernetes gives generated
    names (pods of a Deployment, slices of a Service): the same input, the
    same name, so a restart keeps names and their addresses."""
    digest = hashlib.sha256(text.encode()).digest()
    return "".join(SAFE_ALPHABET[b % len(SAFE_ALPHABET)] for b in digest[:length])
