"""Service environment variables (coredns_py.envvars).

Expected values are copied from upstream tests (kubernetes/kubernetes
pkg/kubelet/envvars/envvars_test.go TestFromServices, kubelet_pods_test.go
TestMakeEnvironmentVariables) or written out by hand from the rules in
shared/reference/kubelet-envvars.md; none is computed by the code under test.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest
from dotenv import dotenv_values

from coredns_py.pod.envvars import (
    ENV_SIZE_WARN_BYTES,
    EnvFileError,
    EnvResult,
    format_env,
    service_env,
)
from coredns_py.errors import CorednsPyError
from coredns_py.source.objects import Service, ServicePort
from helpers.kubelet_env import MASTER_KUBEADM_VARS


def svc(name, ip, *ports, ns="ns1", type="ClusterIP", ips=None):
    """A Service; ports are (port, protocol) or (name, port, protocol)."""
    sp = []
    for p in ports:
        if len(p) == 2:
            sp.append(ServicePort(name="", port=p[0], protocol=p[1]))
        else:
            sp.append(ServicePort(name=p[0], port=p[1], protocol=p[2]))
    cluster_ips = ips if ips is not None else ((ip,) if ip else ())
    return Service(namespace=ns, name=name, type=type, cluster_ips=cluster_ips,
                   ports=tuple(sp))


def one_warning(result: EnvResult, *parts: str) -> str:
    """The one warning of ``result``, which must contain every one of ``parts``."""
    assert len(result.warnings) == 1, result.warnings
    warning = result.warnings[0]
    for part in parts:
        assert part in warning, (part, warning)
    return warning


def both_orders(a, b) -> tuple[list, list]:
    """[a, b] and [b, a]: what the result must not depend on."""
    return [a, b], [b, a]


# --- upstream TestFromServices ------------------------------------------------

UPSTREAM_SERVICES = [
    svc("foo-bar", "1.2.3.4", (8080, "TCP")),
    svc("abc-123", "5.6.7.8", ("u-d-p", 8081, "UDP"), ("t-c-p", 8081, "TCP")),
    svc("q-u-u-x", "9.8.7.6", (8082, "TCP"), ("8083", 8083, "TCP")),
    svc("svrc-clusterip-none", "None", (8082, "TCP")),
    svc("svrc-clusterip-empty", "", (8082, "TCP")),
    svc("super-ipv6", "2001:DB8::", ("u-d-p", 8084, "UDP"), ("t-c-p", 8084, "TCP")),
    svc("sctp-1", "1.2.3.4", (777, "SCTP")),
]

UPSTREAM_EXPECTED = {
    "FOO_BAR_SERVICE_HOST": "1.2.3.4",
    "FOO_BAR_SERVICE_PORT": "8080",
    "FOO_BAR_PORT": "tcp://1.2.3.4:8080",
    "FOO_BAR_PORT_8080_TCP": "tcp://1.2.3.4:8080",
    "FOO_BAR_PORT_8080_TCP_PROTO": "tcp",
    "FOO_BAR_PORT_8080_TCP_PORT": "8080",
    "FOO_BAR_PORT_8080_TCP_ADDR": "1.2.3.4",
    "ABC_123_SERVICE_HOST": "5.6.7.8",
    "ABC_123_SERVICE_PORT": "8081",
    "ABC_123_SERVICE_PORT_U_D_P": "8081",
    "ABC_123_SERVICE_PORT_T_C_P": "8081",
    "ABC_123_PORT": "udp://5.6.7.8:8081",
    "ABC_123_PORT_8081_UDP": "udp://5.6.7.8:8081",
    "ABC_123_PORT_8081_UDP_PROTO": "udp",
    "ABC_123_PORT_8081_UDP_PORT": "8081",
    "ABC_123_PORT_8081_UDP_ADDR": "5.6.7.8",
    "ABC_123_PORT_8081_TCP": "tcp://5.6.7.8:8081",
    "ABC_123_PORT_8081_TCP_PROTO": "tcp",
    "ABC_123_PORT_8081_TCP_PORT": "8081",
    "ABC_123_PORT_8081_TCP_ADDR": "5.6.7.8",
    "Q_U_U_X_SERVICE_HOST": "9.8.7.6",
    "Q_U_U_X_SERVICE_PORT": "8082",
    "Q_U_U_X_SERVICE_PORT_8083": "8083",
    "Q_U_U_X_PORT": "tcp://9.8.7.6:8082",
    "Q_U_U_X_PORT_8082_TCP": "tcp://9.8.7.6:8082",
    "Q_U_U_X_PORT_8082_TCP_PROTO": "tcp",
    "Q_U_U_X_PORT_8082_TCP_PORT": "8082",
    "Q_U_U_X_PORT_8082_TCP_ADDR": "9.8.7.6",
    "Q_U_U_X_PORT_8083_TCP": "tcp://9.8.7.6:8083",
    "Q_U_U_X_PORT_8083_TCP_PROTO": "tcp",
    "Q_U_U_X_PORT_8083_TCP_PORT": "8083",
    "Q_U_U_X_PORT_8083_TCP_ADDR": "9.8.7.6",
    "SUPER_IPV6_SERVICE_HOST": "2001:DB8::",
    "SUPER_IPV6_SERVICE_PORT": "8084",
    "SUPER_IPV6_SERVICE_PORT_U_D_P": "8084",
    "SUPER_IPV6_SERVICE_PORT_T_C_P": "8084",
    "SUPER_IPV6_PORT": "udp://[2001:DB8::]:8084",
    "SUPER_IPV6_PORT_8084_UDP": "udp://[2001:DB8::]:8084",
    "SUPER_IPV6_PORT_8084_UDP_PROTO": "udp",
    "SUPER_IPV6_PORT_8084_UDP_PORT": "8084",
    "SUPER_IPV6_PORT_8084_UDP_ADDR": "2001:DB8::",
    "SUPER_IPV6_PORT_8084_TCP": "tcp://[2001:DB8::]:8084",
    "SUPER_IPV6_PORT_8084_TCP_PROTO": "tcp",
    "SUPER_IPV6_PORT_8084_TCP_PORT": "8084",
    "SUPER_IPV6_PORT_8084_TCP_ADDR": "2001:DB8::",
    "SCTP_1_SERVICE_HOST": "1.2.3.4",
    "SCTP_1_SERVICE_PORT": "777",
    "SCTP_1_PORT": "sctp://1.2.3.4:777",
    "SCTP_1_PORT_777_SCTP": "sctp://1.2.3.4:777",
    "SCTP_1_PORT_777_SCTP_PROTO": "sctp",
    "SCTP_1_PORT_777_SCTP_PORT": "777",
    "SCTP_1_PORT_777_SCTP_ADDR": "1.2.3.4",
}


def test_upstream_from_services():
    result = service_env(UPSTREAM_SERVICES, "ns1")
    assert isinstance(result, EnvResult)
    assert result.variables == UPSTREAM_EXPECTED
    assert len(result.variables) == 52
    assert result.warnings == []


def test_variables_are_sorted_by_key():
    result = service_env(UPSTREAM_SERVICES, "ns1")
    assert list(result.variables) == sorted(UPSTREAM_EXPECTED)


def test_result_is_frozen():
    result = service_env([], "ns1")
    with pytest.raises(AttributeError):
        result.variables = {}  # type: ignore[misc]


@pytest.mark.parametrize("order", [0, 1])
def test_upstream_input_order_does_not_matter(order):
    services = UPSTREAM_SERVICES if order == 0 else list(reversed(UPSTREAM_SERVICES))
    assert service_env(services, "ns1").variables == UPSTREAM_EXPECTED


def test_ipv6_udp_and_sctp():
    s = svc("super-ipv6", "2001:DB8::", ("u-d-p", 8084, "UDP"), ("s-c-t-p", 8085, "SCTP"))
    assert service_env([s], "ns1").variables == {
        "SUPER_IPV6_SERVICE_HOST": "2001:DB8::",
        "SUPER_IPV6_SERVICE_PORT": "8084",
        "SUPER_IPV6_SERVICE_PORT_U_D_P": "8084",
        "SUPER_IPV6_SERVICE_PORT_S_C_T_P": "8085",
        "SUPER_IPV6_PORT": "udp://[2001:DB8::]:8084",
        "SUPER_IPV6_PORT_8084_UDP": "udp://[2001:DB8::]:8084",
        "SUPER_IPV6_PORT_8084_UDP_PROTO": "udp",
        "SUPER_IPV6_PORT_8084_UDP_PORT": "8084",
        "SUPER_IPV6_PORT_8084_UDP_ADDR": "2001:DB8::",
        "SUPER_IPV6_PORT_8085_SCTP": "sctp://[2001:DB8::]:8085",
        "SUPER_IPV6_PORT_8085_SCTP_PROTO": "sctp",
        "SUPER_IPV6_PORT_8085_SCTP_PORT": "8085",
        "SUPER_IPV6_PORT_8085_SCTP_ADDR": "2001:DB8::",
    }


# --- which Services -------------------------------------------------------------

def test_headless_and_external_name_give_nothing():
    services = [
        svc("headless", "None", ("http", 80, "TCP")),
        Service(namespace="ns1", name="ext", type="ExternalName", cluster_ips=(),
                ports=(ServicePort("http", 80, "TCP"),), external_name="example.com"),
        svc("unallocated", "", (80, "TCP")),
    ]
    result = service_env(services, "ns1")
    assert result.variables == {}
    assert result.warnings == []


def test_node_port_and_load_balancer_included_without_target_or_node_port():
    np = Service(namespace="ns1", name="web", type="NodePort", cluster_ips=("10.96.1.1",),
                 ports=(ServicePort("http", 80, "TCP", target_port=8080),))
    lb = Service(namespace="ns1", name="lb", type="LoadBalancer", cluster_ips=("10.96.1.2",),
                 ports=(ServicePort("https", 443, "TCP", target_port="web-https"),))
    assert service_env([np, lb], "ns1").variables == {
        "WEB_SERVICE_HOST": "10.96.1.1",
        "WEB_SERVICE_PORT": "80",
        "WEB_SERVICE_PORT_HTTP": "80",
        "WEB_PORT": "tcp://10.96.1.1:80",
        "WEB_PORT_80_TCP": "tcp://10.96.1.1:80",
        "WEB_PORT_80_TCP_PROTO": "tcp",
        "WEB_PORT_80_TCP_PORT": "80",
        "WEB_PORT_80_TCP_ADDR": "10.96.1.1",
        "LB_SERVICE_HOST": "10.96.1.2",
        "LB_SERVICE_PORT": "443",
        "LB_SERVICE_PORT_HTTPS": "443",
        "LB_PORT": "tcp://10.96.1.2:443",
        "LB_PORT_443_TCP": "tcp://10.96.1.2:443",
        "LB_PORT_443_TCP_PROTO": "tcp",
        "LB_PORT_443_TCP_PORT": "443",
        "LB_PORT_443_TCP_ADDR": "10.96.1.2",
    }


def test_kube_dns_udp_and_tcp_on_the_same_port():
    kube_dns = svc("kube-dns", "10.96.0.10", ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"),
                   ns="kube-system")
    assert service_env([kube_dns], "kube-system").variables == {
        "KUBE_DNS_SERVICE_HOST": "10.96.0.10",
        "KUBE_DNS_SERVICE_PORT": "53",
        "KUBE_DNS_SERVICE_PORT_DNS": "53",
        "KUBE_DNS_SERVICE_PORT_DNS_TCP": "53",
        "KUBE_DNS_PORT": "udp://10.96.0.10:53",
        "KUBE_DNS_PORT_53_UDP": "udp://10.96.0.10:53",
        "KUBE_DNS_PORT_53_UDP_PROTO": "udp",
        "KUBE_DNS_PORT_53_UDP_PORT": "53",
        "KUBE_DNS_PORT_53_UDP_ADDR": "10.96.0.10",
        "KUBE_DNS_PORT_53_TCP": "tcp://10.96.0.10:53",
        "KUBE_DNS_PORT_53_TCP_PROTO": "tcp",
        "KUBE_DNS_PORT_53_TCP_PORT": "53",
        "KUBE_DNS_PORT_53_TCP_ADDR": "10.96.0.10",
    }
    # A pod in another namespace does not see it.
    assert service_env([kube_dns], "default").variables == {}


def test_protocol_omitted_is_tcp():
    s = Service(namespace="ns1", name="plain", cluster_ips=("10.0.0.5",),
                ports=(ServicePort(name="", port=6379),))
    assert service_env([s], "ns1").variables == {
        "PLAIN_SERVICE_HOST": "10.0.0.5",
        "PLAIN_SERVICE_PORT": "6379",
        "PLAIN_PORT": "tcp://10.0.0.5:6379",
        "PLAIN_PORT_6379_TCP": "tcp://10.0.0.5:6379",
        "PLAIN_PORT_6379_TCP_PROTO": "tcp",
        "PLAIN_PORT_6379_TCP_PORT": "6379",
        "PLAIN_PORT_6379_TCP_ADDR": "10.0.0.5",
    }


# kubelet_pods_test.go TestMakeEnvironmentVariables: the services and the cases
# about service variables, expected values copied from there.
KUBELET_SERVICES = [
    svc("kubernetes", "1.2.3.1", (8081, "TCP"), ns="default"),
    svc("test", "1.2.3.3", (8083, "TCP"), ns="test1"),
    svc("kubernetes", "1.2.3.4", (8084, "TCP"), ns="test2"),
    svc("test", "1.2.3.5", (8085, "TCP"), ns="test2"),
    svc("test", "None", (8085, "TCP"), ns="test2"),
    svc("test", "", (8085, "TCP"), ns="test2"),
    svc("not-special", "1.2.3.8", (8088, "TCP"), ns="default"),
    svc("not-special", "None", (8088, "TCP"), ns="default"),
    svc("not-special", "", (8088, "TCP"), ns="default"),
]


def _group(prefix, ip, port):
    # The seven variables of a one-port TCP service, written out literally.
    return {
        f"{prefix}_SERVICE_HOST": ip,
        f"{prefix}_SERVICE_PORT": port,
        f"{prefix}_PORT": f"tcp://{ip}:{port}",
        f"{prefix}_PORT_{port}_TCP": f"tcp://{ip}:{port}",
        f"{prefix}_PORT_{port}_TCP_PROTO": "tcp",
        f"{prefix}_PORT_{port}_TCP_PORT": port,
        f"{prefix}_PORT_{port}_TCP_ADDR": ip,
    }


MASTER = _group("KUBERNETES", "1.2.3.1", "8081")


@pytest.mark.parametrize("name, ns, links, expected", [
    ("api server = N; kubelet = Y", "test1", False, MASTER),
    ("api server = N; kubelet = Y; service env vars", "test1", True,
     {**_group("TEST", "1.2.3.3", "8083"), **MASTER}),
    ("master service in pod ns", "test2", False, MASTER),
    ("master service in pod ns, service env vars", "test2", True,
     {**_group("TEST", "1.2.3.5", "8085"), **_group("KUBERNETES", "1.2.3.4", "8084")}),
    ("pod in master service ns", "default", False, MASTER),
    ("pod in master service ns, service env vars", "default", True,
     {**_group("NOT_SPECIAL", "1.2.3.8", "8088"), **MASTER}),
])
def test_kubelet_make_environment_variables(name, ns, links, expected):
    for services in (KUBELET_SERVICES, list(reversed(KUBELET_SERVICES))):
        result = service_env(services, ns, service_links=links)
        assert result.variables == expected, name
        assert result.warnings == []


def test_literal_kubelet_values():
    # Spot-check the helper above against literal upstream lines.
    result = service_env(KUBELET_SERVICES, "test2", service_links=True)
    assert result.variables["KUBERNETES_SERVICE_HOST"] == "1.2.3.4"
    assert result.variables["KUBERNETES_PORT_8084_TCP"] == "tcp://1.2.3.4:8084"
    assert result.variables["TEST_PORT_8085_TCP_ADDR"] == "1.2.3.5"


def test_cross_namespace_filtering():
    services = [
        svc("web", "10.96.0.20", ("http", 80, "TCP"), ns="shop"),
        svc("db", "10.96.0.21", (5432, "TCP"), ns="data"),
        svc("kubernetes", "10.96.0.30", ("https", 443, "TCP"), ns="kube-system"),
    ]
    result = service_env(services, "shop")
    assert set(result.variables) == {
        "WEB_SERVICE_HOST", "WEB_SERVICE_PORT", "WEB_SERVICE_PORT_HTTP", "WEB_PORT",
        "WEB_PORT_80_TCP", "WEB_PORT_80_TCP_PROTO", "WEB_PORT_80_TCP_PORT",
        "WEB_PORT_80_TCP_ADDR",
    }
    # "kubernetes" outside default is an ordinary service of its namespace.
    assert service_env(services, "data").variables["DB_SERVICE_HOST"] == "10.96.0.21"
    assert "KUBERNETES_SERVICE_HOST" not in service_env(services, "data").variables
    assert service_env(services, "kube-system").variables["KUBERNETES_SERVICE_HOST"] \
        == "10.96.0.30"


MASTER_KUBEADM = svc("kubernetes", "10.96.0.1", ("https", 443, "TCP"), ns="default")


def test_service_links_off_keeps_only_default_kubernetes():
    services = [MASTER_KUBEADM,
                svc("web", "10.96.10.10", ("http", 80, "TCP"), ns="default"),
                svc("web", "10.96.10.11", ("http", 80, "TCP"), ns="shop")]
    assert service_env(services, "shop", service_links=False).variables == MASTER_KUBEADM_VARS
    assert service_env(services, "default", service_links=False).variables \
        == MASTER_KUBEADM_VARS
    # Without default/kubernetes in the input nothing is invented.
    assert service_env(services[1:], "shop", service_links=False).variables == {}


def test_reference_example_pod_in_shop():
    services = [MASTER_KUBEADM, svc("web", "10.96.10.10", ("http", 80, "TCP"), ns="shop")]
    assert service_env(services, "shop").variables == {
        **MASTER_KUBEADM_VARS,
        "WEB_SERVICE_HOST": "10.96.10.10",
        "WEB_SERVICE_PORT": "80",
        "WEB_SERVICE_PORT_HTTP": "80",
        "WEB_PORT": "tcp://10.96.10.10:80",
        "WEB_PORT_80_TCP": "tcp://10.96.10.10:80",
        "WEB_PORT_80_TCP_PROTO": "tcp",
        "WEB_PORT_80_TCP_PORT": "80",
        "WEB_PORT_80_TCP_ADDR": "10.96.10.10",
    }


@pytest.mark.parametrize("pod_ns", ["shop", "aaa"])  # sorts after / before "default"
def test_kubernetes_in_pod_namespace_shadows_master_only_with_links(pod_ns):
    local = svc("kubernetes", "10.96.7.7", ("api", 6443, "TCP"), ns=pod_ns)
    for services in both_orders(MASTER_KUBEADM, local):
        on = service_env(services, pod_ns).variables
        assert on == {
            "KUBERNETES_SERVICE_HOST": "10.96.7.7",
            "KUBERNETES_SERVICE_PORT": "6443",
            "KUBERNETES_SERVICE_PORT_API": "6443",
            "KUBERNETES_PORT": "tcp://10.96.7.7:6443",
            "KUBERNETES_PORT_6443_TCP": "tcp://10.96.7.7:6443",
            "KUBERNETES_PORT_6443_TCP_PROTO": "tcp",
            "KUBERNETES_PORT_6443_TCP_PORT": "6443",
            "KUBERNETES_PORT_6443_TCP_ADDR": "10.96.7.7",
        }
        off = service_env(services, pod_ns, service_links=False).variables
        assert off == MASTER_KUBEADM_VARS


def test_headless_kubernetes_in_pod_namespace_never_shadows():
    local = svc("kubernetes", "None", ("api", 6443, "TCP"), ns="shop")
    assert service_env([MASTER_KUBEADM, local], "shop").variables == MASTER_KUBEADM_VARS
    assert service_env([local, MASTER_KUBEADM], "shop").variables == MASTER_KUBEADM_VARS


# --- dual stack --------------------------------------------------------------------

def test_dual_stack_uses_the_primary_address_only():
    s = svc("web", None, ("http", 80, "TCP"), ips=("10.96.5.5", "fd00:10:96::5"))
    result = service_env([s], "ns1").variables
    assert result["WEB_SERVICE_HOST"] == "10.96.5.5"
    assert result["WEB_PORT"] == "tcp://10.96.5.5:80"
    assert result["WEB_PORT_80_TCP_ADDR"] == "10.96.5.5"
    assert not any("fd00" in v for v in result.values())
    assert len(result) == 8


def test_dual_stack_ipv6_primary():
    s = svc("web", None, (80, "TCP"), ips=("fd00:10:96::5", "10.96.5.5"))
    assert service_env([s], "ns1").variables == {
        "WEB_SERVICE_HOST": "fd00:10:96::5",
        "WEB_SERVICE_PORT": "80",
        "WEB_PORT": "tcp://[fd00:10:96::5]:80",
        "WEB_PORT_80_TCP": "tcp://[fd00:10:96::5]:80",
        "WEB_PORT_80_TCP_PROTO": "tcp",
        "WEB_PORT_80_TCP_PORT": "80",
        "WEB_PORT_80_TCP_ADDR": "fd00:10:96::5",
    }


# --- collisions ----------------------------------------------------------------------

FOO = svc("foo", "10.0.0.1", (80, "TCP"), ns="shop")
FOO_SERVICE = svc("foo-service", "10.0.0.2", (8080, "TCP"), ns="shop")
BAR = svc("bar", "10.0.0.9", (9000, "TCP"), ns="shop")

FOO_AND_FOO_SERVICE = {
    "FOO_SERVICE_HOST": "10.0.0.1",
    "FOO_SERVICE_PORT": "80",  # foo's, not foo-service's "tcp://10.0.0.2:8080"
    "FOO_PORT": "tcp://10.0.0.1:80",
    "FOO_PORT_80_TCP": "tcp://10.0.0.1:80",
    "FOO_PORT_80_TCP_PROTO": "tcp",
    "FOO_PORT_80_TCP_PORT": "80",
    "FOO_PORT_80_TCP_ADDR": "10.0.0.1",
    "FOO_SERVICE_SERVICE_HOST": "10.0.0.2",
    "FOO_SERVICE_SERVICE_PORT": "8080",
    "FOO_SERVICE_PORT_8080_TCP": "tcp://10.0.0.2:8080",
    "FOO_SERVICE_PORT_8080_TCP_PROTO": "tcp",
    "FOO_SERVICE_PORT_8080_TCP_PORT": "8080",
    "FOO_SERVICE_PORT_8080_TCP_ADDR": "10.0.0.2",
}


def test_collision_foo_and_foo_service():
    result = service_env([FOO, FOO_SERVICE], "shop")
    assert result.variables == FOO_AND_FOO_SERVICE
    one_warning(result, "FOO_SERVICE_PORT", "Service shop/foo ", "Service shop/foo-service",
                "'80'", "'tcp://10.0.0.2:8080'")


def test_collision_result_is_independent_of_input_order():
    seen = set()
    for perm in itertools.permutations([FOO, FOO_SERVICE, BAR]):
        result = service_env(list(perm), "shop")
        assert result.variables["FOO_SERVICE_PORT"] == "80"
        seen.add((json.dumps(result.variables), tuple(result.warnings)))
    assert len(seen) == 1


@pytest.mark.parametrize("owner, intruder, kept, warned", [
    # foo-port-80-tcp's FOO_PORT_80_TCP_PORT... variables against foo's FOO_PORT_80_TCP_PORT.
    pytest.param(FOO, svc("foo-port-80-tcp", "10.0.0.3", (9000, "TCP"), ns="shop"),
                 {"FOO_PORT_80_TCP_PORT": "80",
                  "FOO_PORT_80_TCP_PORT_9000_TCP": "tcp://10.0.0.3:9000"},
                 ("FOO_PORT_80_TCP_PORT", "Service shop/foo-port-80-tcp"),
                 id="foo-port-80-tcp"),
    # kubernetes-service's KUBERNETES_SERVICE_PORT (a URL) does not break the master.
    pytest.param(MASTER_KUBEADM, svc("kubernetes-service", "10.96.3.3", (8080, "TCP"), ns="shop"),
                 {"KUBERNETES_SERVICE_PORT": "443", "KUBERNETES_SERVICE_HOST": "10.96.0.1",
                  "KUBERNETES_SERVICE_SERVICE_HOST": "10.96.3.3"},
                 ("KUBERNETES_SERVICE_PORT", "Service default/kubernetes",
                  "Service shop/kubernetes-service"),
                 id="kubernetes-service-does-not-break-the-master"),
])
def test_collision_owner_keeps_its_variable(owner, intruder, kept, warned):
    for services in both_orders(owner, intruder):
        result = service_env(services, "shop")
        assert {k: result.variables.get(k) for k in kept} == kept
        one_warning(result, *warned)


def test_same_value_from_two_services_is_no_conflict():
    # web's port named "80-tcp-port" and web-service's link group for 80/TCP both
    # give WEB_SERVICE_PORT_80_TCP_PORT=80: no conflict.  WEB_SERVICE_PORT does
    # conflict (web: "80", web-service: its first-port URL).
    web = svc("web", "10.0.0.4", ("80-tcp-port", 80, "TCP"), ns="shop")
    web_service = svc("web-service", "10.0.0.5", (80, "TCP"), ns="shop")
    result = service_env([web_service, web], "shop")
    assert result.variables["WEB_SERVICE_PORT_80_TCP_PORT"] == "80"
    assert result.variables["WEB_SERVICE_PORT"] == "80"
    one_warning(result, "variable WEB_SERVICE_PORT ")


# --- warnings and skips ---------------------------------------------------------------

def test_service_without_ports_is_skipped_with_a_warning():
    empty = Service(namespace="shop", name="empty", cluster_ips=("10.0.0.7",), ports=())
    other = Service(namespace="elsewhere", name="empty2", cluster_ips=("10.0.0.8",), ports=())
    result = service_env([empty, other, BAR], "shop")
    assert set(result.variables) == {
        "BAR_SERVICE_HOST", "BAR_SERVICE_PORT", "BAR_PORT", "BAR_PORT_9000_TCP",
        "BAR_PORT_9000_TCP_PROTO", "BAR_PORT_9000_TCP_PORT", "BAR_PORT_9000_TCP_ADDR",
    }
    # one warning: nothing about the Service outside the pod's namespace
    one_warning(result, "Service shop/empty", "no ports")


def test_portless_local_kubernetes_does_not_hide_the_master():
    local = Service(namespace="shop", name="kubernetes", cluster_ips=("10.0.0.7",), ports=())
    result = service_env([MASTER_KUBEADM, local], "shop")
    assert result.variables == MASTER_KUBEADM_VARS
    assert "Service shop/kubernetes" in result.warnings[0]


def test_non_posix_service_name_is_skipped_with_a_warning():
    # RFC 1123 labels may start with a digit; the variable name then cannot.
    bad = svc("1st-api", "10.0.0.11", (80, "TCP"), ns="shop")
    result = service_env([bad, BAR], "shop")
    assert not any(k.startswith("1ST") for k in result.variables)
    assert result.variables["BAR_SERVICE_HOST"] == "10.0.0.9"
    one_warning(result, "Service shop/1st-api", "1ST_API_SERVICE_HOST")


def test_non_posix_port_name_skips_only_that_variable():
    s = Service(namespace="shop", name="grpc", cluster_ips=("10.0.0.12",),
                ports=(ServicePort("grpc.web", 8080, "TCP"),))
    result = service_env([s], "shop")
    assert result.variables == {
        "GRPC_SERVICE_HOST": "10.0.0.12",
        "GRPC_SERVICE_PORT": "8080",
        "GRPC_PORT": "tcp://10.0.0.12:8080",
        "GRPC_PORT_8080_TCP": "tcp://10.0.0.12:8080",
        "GRPC_PORT_8080_TCP_PROTO": "tcp",
        "GRPC_PORT_8080_TCP_PORT": "8080",
        "GRPC_PORT_8080_TCP_ADDR": "10.0.0.12",
    }
    one_warning(result, "GRPC_SERVICE_PORT_GRPC.WEB", "Service shop/grpc")


def test_duplicate_service_last_one_wins_with_a_warning():
    first = svc("web", "10.0.0.20", (80, "TCP"), ns="shop")
    second = svc("web", "10.0.0.21", (80, "TCP"), ns="shop")
    result = service_env([first, second], "shop")
    assert result.variables["WEB_SERVICE_HOST"] == "10.0.0.21"
    one_warning(result, "Service shop/web")


def test_large_environment_warning():
    assert ENV_SIZE_WARN_BYTES == 65536
    # Each service: 7 variables of about 30-45 bytes; 300 of them exceed 64 KiB.
    many = [svc(f"service-number-{i:03d}", f"10.1.{i // 256}.{i % 256}", (8080, "TCP"),
                ns="big") for i in range(300)]
    result = service_env(many, "big")
    assert len(result.variables) == 2100
    size = sum(len(f"{k}={v}") + 1 for k, v in result.variables.items())
    assert size > 65536
    one_warning(result, "argument list too long", "enableServiceLinks: false")
    # A few services: no warning.
    assert service_env(many[:10], "big").warnings == []


def test_invalid_pod_namespace_is_rejected():
    for bad in ("", "Shop", "shop_1", "-shop", "a" * 64):
        with pytest.raises(ValueError):
            service_env([], bad)


# --- formats ----------------------------------------------------------------------------

SMALL = {
    "WEB_SERVICE_PORT": "80",
    "WEB_SERVICE_HOST": "10.96.10.10",
    "V6_PORT": "udp://[2001:DB8::]:8084",
}


def test_format_env():
    assert format_env(SMALL, "env") == (
        "V6_PORT=udp://[2001:DB8::]:8084\n"
        "WEB_SERVICE_HOST=10.96.10.10\n"
        "WEB_SERVICE_PORT=80\n"
    )


def test_format_sh():
    assert format_env(SMALL, "sh") == (
        "export V6_PORT='udp://[2001:DB8::]:8084'\n"
        "export WEB_SERVICE_HOST=10.96.10.10\n"
        "export WEB_SERVICE_PORT=80\n"
    )


def test_format_json():
    text = format_env(SMALL, "json")
    assert text == (
        "{\n"
        '  "V6_PORT": "udp://[2001:DB8::]:8084",\n'
        '  "WEB_SERVICE_HOST": "10.96.10.10",\n'
        '  "WEB_SERVICE_PORT": "80"\n'
        "}\n"
    )
    assert json.loads(text) == SMALL


def test_format_empty():
    assert format_env({}, "env") == ""
    assert format_env({}, "sh") == ""
    assert format_env({}, "json") == "{}\n"


def test_format_sorting_is_plain_code_point_order():
    # "_" (0x5F) sorts after upper-case letters and digits.
    text = format_env({"A_B": "1", "AB": "2", "A0": "3"}, "env")
    assert text == "A0=3\nAB=2\nA_B=1\n"


def test_unknown_format():
    with pytest.raises(ValueError, match="unknown format"):
        format_env(SMALL, "yaml")


@pytest.mark.parametrize("value, reason", [
    ("a\nb", "line break"),
    (" 80", "whitespace"),
    ("80 ", "whitespace"),
    ("'80'", "quote"),
    ('"80"', "quote"),
    ("a$b", "'$'"),
    ("a #b", "' #'"),
    ("a b", "' '"),
    ("caf\u00e9", "'\u00e9'"),
    ("a=b", "'='"),
])
def test_env_refuses_unsafe_values(value, reason):
    with pytest.raises(EnvFileError) as info:
        format_env({"GOOD": "1", "BAD_VALUE": value}, "env")
    message = str(info.value)
    assert "BAD_VALUE" in message
    assert reason in message
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, CorednsPyError)


@pytest.mark.parametrize("fmt", ["env", "sh"])
@pytest.mark.parametrize("key", ["1ABC", "A-B", "A.B", "A B", ""])
def test_refuses_invalid_names(fmt, key):
    with pytest.raises(EnvFileError, match="not a valid environment variable name"):
        format_env({key: "1"}, fmt)


def test_sh_refuses_nul():
    with pytest.raises(EnvFileError, match="NUL"):
        format_env({"A": "x\0y"}, "sh")


# --- read back by real parsers -----------------------------------------------------------

def docker_env_file(text: str) -> dict[str, str]:
    """docker/cli pkg/kvfile parseKeyValueFile, as the reference describes it."""
    out = {}
    for i, line in enumerate(text.split("\n")):
        if i == 0 and line.startswith("\ufeff"):
            line = line[1:]
        line = line.lstrip(" \t")
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise AssertionError(f"line {line!r} would be taken from the environment")
        key, value = line.split("=", 1)
        if not key or " " in key or "\t" in key:
            raise AssertionError(f"docker rejects the key in {line!r}")
        out[key] = value  # verbatim: no quote removal, no expansion
    return out


def full_env():
    services = [MASTER_KUBEADM, *UPSTREAM_SERVICES, FOO, FOO_SERVICE,
                svc("web", None, ("http", 80, "TCP"), ns="ns1", ips=("fd00::10", "10.0.0.10"))]
    services = [replace(s, namespace="ns1") if s.namespace == "shop" else s
                for s in services]
    return service_env(services, "ns1").variables


def test_env_output_read_back_by_python_dotenv():
    variables = full_env()
    assert "SUPER_IPV6_PORT" in variables and "KUBERNETES_SERVICE_HOST" in variables
    text = format_env(variables, "env")
    parsed = dotenv_values(stream=io.StringIO(text))  # interpolation on, as in Compose
    assert dict(parsed) == variables


def test_env_output_read_back_by_docker_rules():
    variables = full_env()
    assert docker_env_file(format_env(variables, "env")) == variables


def sourced_back(values: dict, fmt: str, folder, name: str) -> dict:
    """``values`` written in format ``fmt`` to ``folder/name`` and sourced by a
    real sh (``set -a``): what the environment then holds for those keys
    (None where one is missing)."""
    (folder / name).write_text(format_env(values, fmt), encoding="utf-8")
    script = f"set -a; . ./{name}; " \
        f"exec {sys.executable!s} -c 'import os, json; print(json.dumps(dict(os.environ)))'"
    proc = subprocess.run(["sh", "-c", script], cwd=folder, capture_output=True,
                          text=True, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                          check=True)
    env = json.loads(proc.stdout)
    return {k: env.get(k) for k in values}


def test_sh_output_evaluated_by_a_real_shell(tmp_path):
    variables = full_env()
    assert sourced_back(variables, "sh", tmp_path, "services.sh") == variables


def test_sh_output_round_trips_hostile_values(tmp_path):
    hostile = {
        "QUOTE": "it's",
        "DOLLAR": "$HOME and $(echo no) and `echo no`",
        "NEWLINE": "a\nb",
        "SPACES": "  x  ",
        "GLOB": "*?[a]",
        "BACKSLASH": "a\\nb",
        "EMPTY": "",
    }
    assert sourced_back(hostile, "sh", tmp_path, "hostile.sh") == hostile


def test_env_output_is_also_sourceable_by_sh(tmp_path):
    variables = full_env()
    assert sourced_back(variables, "env", tmp_path, "services.env") == variables
