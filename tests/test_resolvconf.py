"""A ClusterFirst pod's resolv.conf (coredns_py.resolvconf).

Expected text: kubelet pkg/kubelet/network/dns/dns.go (searches
``<ns>.svc.<zone> svc.<zone> <zone>``, option ``ndots:5``) as written by
containerd's CRI parseDNSOptions (search, nameserver, options lines).
"""

from __future__ import annotations

import pytest

from coredns_py.pod.resolvconf import check_namespace, resolv_conf


def test_default_namespace():
    assert resolv_conf("default", "10.96.0.10") == (
        "search default.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 10.96.0.10\n"
        "options ndots:5\n"
    )


def test_other_namespace_zone_and_ndots():
    assert resolv_conf("shop", "10.0.0.10", zone="example.internal", ndots=2) == (
        "search shop.svc.example.internal svc.example.internal example.internal\n"
        "nameserver 10.0.0.10\n"
        "options ndots:2\n"
    )


def test_zone_trailing_dot_and_case():
    assert resolv_conf("shop", "10.96.0.10", zone="Cluster.Local.") == (
        "search shop.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 10.96.0.10\n"
        "options ndots:5\n"
    )


def test_ipv6_nameserver():
    assert resolv_conf("kube-system", "fd00:10:96::a") == (
        "search kube-system.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver fd00:10:96::a\n"
        "options ndots:5\n"
    )


@pytest.mark.parametrize("bad", ["10.96.0.300", "dns.cluster.local", "", "10.96.0.10:53",
                                 " 10.96.0.10", "[fd00::a]"])
def test_nameserver_must_be_an_ip(bad):
    with pytest.raises(ValueError, match="nameserver"):
        resolv_conf("default", bad)


@pytest.mark.parametrize("bad", ["", "Shop", "shop_1", "-shop", "shop-", "a.b", "a" * 64])
def test_namespace_must_be_a_dns1123_label(bad):
    with pytest.raises(ValueError, match="namespace"):
        resolv_conf(bad, "10.96.0.10")
    with pytest.raises(ValueError, match="namespace"):
        check_namespace(bad)


def test_longest_valid_namespace():
    ns = "a" * 63
    assert check_namespace(ns) == ns
    assert resolv_conf(ns, "10.96.0.10").startswith(f"search {ns}.svc.cluster.local ")


@pytest.mark.parametrize("bad", ["", ".", "cluster..local", "clus ter.local", "-x.local"])
def test_zone_must_be_a_domain(bad):
    with pytest.raises(ValueError, match="zone"):
        resolv_conf("default", "10.96.0.10", zone=bad)


@pytest.mark.parametrize("bad", [-1, True, "5", 1.5])
def test_ndots_must_be_a_non_negative_int(bad):
    with pytest.raises(ValueError, match="ndots"):
        resolv_conf("default", "10.96.0.10", ndots=bad)
