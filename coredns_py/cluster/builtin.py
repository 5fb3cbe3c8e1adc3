"""The Services every cluster has before anything is applied.

The API server creates ``default/kubernetes`` on the first address of the
service range (port 443 named ``https``; in-cluster client libraries read
its ``KUBERNETES_SERVICE_HOST``/``_PORT`` first), and kubeadm creates the
cluster DNS, ``kube-system/kube-dns``, on the tenth (53/UDP ``dns``, 53/TCP
``dns-tcp``, 9153/TCP ``metrics``).  Unless the manifests define them (or
claim their address), they are added here exactly so.  Their endpoints come
from the configuration (``apiserver_endpoint``, ``kube_dns_endpoints``),
never from where this process listens, so every command on every host sees
the same objects.
"""

from __future__ import annotations

import functools
import ipaddress

from coredns_py import hostport
from coredns_py.config import Config
from coredns_py.source import objects as o

KUBERNETES = ("default", "kubernetes")
KUBE_DNS = ("kube-system", "kube-dns")
KUBE_DNS_LABELS = (("k8s-app", "kube-dns"),)

# Offsets in the ranges: the API server's Service is the first address of
# the service range, kubeadm's DNS the tenth; CoreDNS's two pods are the
# first two a fresh node's pod network hands out (.1 is its bridge).
KUBERNETES_OFFSET = 1
KUBE_DNS_OFFSET = 10
KUBE_DNS_POD_OFFSETS = (2, 3)


def _address(cidr: str, offset: int) -> str:
    net = ipaddress.ip_network(cidr)
    return str(net.network_address + offset)


def kube_dns_endpoints(config: Config) -> tuple[str, ...]:
    """The cluster DNS pods' addresses: configured, or derived from pod_cidr."""
    return config.kube_dns_endpoints or tuple(
        _address(config.pod_cidr[0], n) for n in KUBE_DNS_POD_OFFSETS)


def reserved_pod_addresses(config: Config) -> tuple[str, ...]:
    """Pod addresses the allocator must not give to pods: the cluster DNS's."""
    return kube_dns_endpoints(config) if config.builtin_services else ()


def _slices(service: o.Service, addresses, ports: tuple[o.EndpointPort, ...]) -> list:
    """One EndpointSlice per address family, as the API server or the
    endpoint controller writes them."""
    out = []
    for family in (4, 6):
        eps = tuple(o.Endpoint((a,)) for a in addresses if o.family(a) == family)
        if eps:
            name = f"{service.name}-{o.safe_hash(repr((family, addresses)), 5)}"
            out.append(o.EndpointSlice(service.namespace, name, service.name, eps, ports))
    return out


@functools.lru_cache(maxsize=16)
def objects(config: Config) -> tuple:
    """Both Services and their slices, the same Python objects for the same
    configuration (a reload that changed nothing else reuses their results)."""
    primary = config.service_cidr[0]
    api_ip, api_port = hostport.split(config.apiserver_endpoint)
    kubernetes = o.Service(
        *KUBERNETES, o.CLUSTER_IP, (_address(primary, KUBERNETES_OFFSET),),
        (o.ServicePort("https", 443, "TCP", api_port),))
    dns_ports = (o.ServicePort("dns", 53, "UDP", 53), o.ServicePort("dns-tcp", 53, "TCP", 53),
                 o.ServicePort("metrics", 9153, "TCP", 9153))
    kube_dns = o.Service(*KUBE_DNS, o.CLUSTER_IP, (_address(primary, KUBE_DNS_OFFSET),),
                         dns_ports, selector=KUBE_DNS_LABELS)
    return (
        kubernetes,
        *_slices(kubernetes, (api_ip,), (o.EndpointPort("https", api_port, "TCP"),)),
        kube_dns,
        *_slices(kube_dns, kube_dns_endpoints(config),
                 tuple(o.EndpointPort(p.name, p.port, p.protocol) for p in dns_ports)),
    )


def claims(found, config: Config) -> frozenset:
    """The built-in Services that ``found`` (some of the objects: one
    namespace's) replaces, as (namespace, name): a Service of the same
    namespace and name, or one that claims the address (a dump of a
    cluster brings its own, maybe on another range)."""
    if not config.builtin_services:
        return frozenset()
    wanted = _addresses(config)
    out = set()
    for obj in found:
        if type(obj) is o.Service:
            for key, ips in wanted:
                if (obj.namespace, obj.name) == key or not ips.isdisjoint(obj.cluster_ips):
                    out.add(key)
    return frozenset(out)


@functools.lru_cache(maxsize=16)
def _addresses(config: Config) -> tuple:
    return tuple(((s.namespace, s.name), frozenset(s.cluster_ips))
                 for s in objects(config) if type(s) is o.Service)


def missing(claimed, config: Config) -> tuple:
    """The built-in objects the manifests do not define, given what each
    part of them replaces (:func:`claims`, asked per namespace so that a
    reload asks again only the namespaces it touched)."""
    if not config.builtin_services:
        return ()
    taken = frozenset().union(*claimed)
    keep = {key for key, _ips in _addresses(config)} - taken
    return tuple(obj for obj in objects(config)
                 if (obj.namespace, obj.name if type(obj) is o.Service else obj.service) in keep)
