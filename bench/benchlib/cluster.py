"""The synthetic cluster: N Services of three kinds in N/50 namespaces, from a seed."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

ZONE = "cluster.local"
TTL = 5
SERVICE_CIDR_BASE = (10 << 24) | (96 << 16)  # 10.96.0.0/12, the default service_cidr
POD_BASE = (10 << 24) | (244 << 16)  # 10.244.0.0/16, the default pod_cidr


def ip4(n: int) -> str:
    return f"{n >> 24 & 255}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def dashed(ip: str) -> str:
    return ip.replace(".", "-")


PREFIXES = ("web", "api", "db", "cache", "auth", "payments", "search", "queue", "users",
            "cart", "metrics", "frontend", "backend", "orders", "mail", "gateway")
PORT_NAMES = (("http", 80), ("https", 443), ("grpc", 9090), ("metrics", 9100),
              ("admin", 8081), ("redis", 6379), ("pg", 5432))


@dataclass
class Svc:
    namespace: str
    name: str
    kind: str  # "ClusterIP", "Headless", "ExternalName"
    ip: str = ""  # ClusterIP
    ports: list = field(default_factory=list)  # [(name, port)]
    endpoints: list = field(default_factory=list)  # headless: [ip, ip, ip]
    external: str = ""

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.namespace}.svc.{ZONE}"


@dataclass
class Cluster:
    namespaces: list
    services: list
    by_ns: dict

    def probe(self) -> Svc:
        """The Service a starting server is asked for: the first ClusterIP one."""
        return next(s for s in self.services if s.kind == "ClusterIP")


def make_cluster(n: int, seed: int) -> Cluster:
    """N Services in max(1, N/50) namespaces, the kinds shuffled with the seed."""
    rng = random.Random(seed)
    n_ns = max(1, n // 50)
    namespaces = [f"ns-{i:04d}" for i in range(n_ns)]
    n_headless = round(n * 0.15)
    n_external = round(n * 0.05)
    kinds = (["ClusterIP"] * (n - n_headless - n_external) + ["Headless"] * n_headless
             + ["ExternalName"] * n_external)
    rng.shuffle(kinds)
    services = []
    by_ns: dict = {ns: [] for ns in namespaces}
    next_ip = SERVICE_CIDR_BASE + 256  # 10.96.1.0 on: clear of the kept .1 and .10
    next_pod = POD_BASE + 2
    for i, kind in enumerate(kinds):
        ns = namespaces[i % n_ns]
        svc = Svc(ns, f"{rng.choice(PREFIXES)}-{i}", kind)
        if kind == "ExternalName":
            svc.external = f"ext-{i}.example.com"
        else:
            k = 1 if kind == "Headless" else rng.choice((1, 2))
            svc.ports = rng.sample(PORT_NAMES, k)
            if kind == "ClusterIP":
                svc.ip = ip4(next_ip)
                next_ip += 1
            else:
                svc.endpoints = [ip4(next_pod + j) for j in range(3)]
                next_pod += 3
        services.append(svc)
        by_ns[ns].append(svc)
    return Cluster(namespaces, services, by_ns)
