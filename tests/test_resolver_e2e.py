"""The system resolver end to end: a "container" whose only nameserver is
coredns-py reaches the cluster names and the rest of the world.

In a network, mount and PID namespace the test creates (``unshare``; only
``lo`` exists, so nothing can leave it):

* the "rest of the world" is dnsmasq on 127.0.0.2:53, answering
  ``pypi.org`` (a stand-in, 203.0.113.10), ``big.example.test`` (150
  addresses: truncated over UDP) and NXDOMAIN for other ``example.test`` and
  ``.org`` names; it logs every query it gets;
* the host's ``/etc/resolv.conf`` (bind-mounted) names 127.0.0.1 (the server
  itself: must be skipped), 127.0.0.3 (nobody listens: failover) and
  127.0.0.2 (dnsmasq);
* ``coredns-py serve --listen 127.0.0.1:53`` with the *default* config, so
  it reads its upstreams from that resolv.conf at start;
* then ``coredns-py resolv-conf --namespace default --nameserver 127.0.0.1``
  is bind-mounted over ``/etc/resolv.conf`` (``ndots:5``, the pod search
  path), and glibc is asked, as any program asks: ``getent hosts``,
  ``getent ahostsv4`` and Python's ``socket.getaddrinfo``.

Checked: a cluster short name, a cross-namespace name, an upstream name
through the search path (and its search-path expansions never reach the
upstream), an ExternalName pointing outside, a truncated upstream answer,
an upstream NXDOMAIN that fails fast, and the loop and failover handling in
the server's log.  Skipped only when namespaces cannot be created.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from helpers import netns

REPO = Path(__file__).resolve().parent.parent
ZONES = REPO / "zones"
FORWARD = Path(__file__).resolve().parent / "fixtures" / "forward"
DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"

READY_TIMEOUT = 15     # seconds for dnsmasq / the server to answer
FAST_MS = 2000         # a name through the search path, failover included

PYPI = "203.0.113.10"
BIG = sorted(f"198.51.100.{i}" for i in range(1, 151))

GETADDRINFO = ("import json, socket, sys; "
               "r = socket.getaddrinfo(sys.argv[1], 80, socket.AF_INET, socket.SOCK_STREAM, 0, "
               "socket.AI_CANONNAME); "
               "print(json.dumps({'addrs': sorted({a[4][0] for a in r}), 'canonname': r[0][3]}))")

# Runs inside the namespaces (see helpers/netns.py).
SCRIPT = netns.PRELUDE + r"""
# The host's resolver configuration, as the server finds it at start.
mount --bind "$HOST_RESOLV" /etc/resolv.conf || fail "cannot bind-mount the host resolv.conf"

background dnsmasq "$DNSMASQ" --no-daemon --conf-file=/dev/null --pid-file= --user=root --port=53 \
  --listen-address=127.0.0.2 --bind-interfaces --no-resolv --no-hosts \
  --addn-hosts="$UPSTREAM_HOSTS" --local=/example.test/ --local=/org/ --local-ttl=300 \
  --log-queries --log-facility=-
wait_dns 127.0.0.2 ready.example.test A NXDOMAIN "$LAST"

background server "$PY" -m coredns_py serve --manifests "$MANIFESTS" --listen 127.0.0.1:53
wait_dns 127.0.0.1 cluster.local SOA NOERROR "$LAST"
kill -0 "$LAST" 2>/dev/null || fail "the server exited"
""" + netns.BECOME_POD


def nsswitch_with_dns(text: str | None) -> str:
    """The host's nsswitch.conf with ``hosts: files dns`` (mdns, resolve and
    myhostname would answer before DNS or instead of it)."""
    lines = (text or "").splitlines()
    lines = [line for line in lines if not re.match(r"\s*hosts\s*:", line)]
    return "\n".join(lines + ["hosts: files dns"]) + "\n"


STEPS: dict[str, list[str]] = {
    "getent-hosts--webapp": ["getent", "hosts", "webapp"],
    "getent-hosts--myapp-svc01.test01": ["getent", "hosts", "myapp-svc01.test01"],
    "getent-hosts--pypi.org": ["getent", "hosts", "pypi.org"],
    "getent-ahostsv4--pypi.org": ["getent", "ahostsv4", "pypi.org"],
    "getent-hosts--pypi-mirror": ["getent", "hosts", "pypi-mirror"],
    "getent-ahostsv4--big.example.test": ["getent", "ahostsv4", "big.example.test"],
    "getent-hosts--nosuch.example.test": ["getent", "hosts", "nosuch.example.test"],
    "getaddrinfo--webapp": [sys.executable, "-c", GETADDRINFO, "webapp"],
    "getaddrinfo--myapp-svc01.test01": [sys.executable, "-c", GETADDRINFO, "myapp-svc01.test01"],
    "getaddrinfo--pypi.org": [sys.executable, "-c", GETADDRINFO, "pypi.org"],
    "dig--webapp": ["dig", "+short", "+time=2", "+tries=1", "@127.0.0.1",
                    "webapp.default.svc.cluster.local", "A"],
    "dig--myapp-svc01.test01": ["dig", "+short", "+time=2", "+tries=1", "@127.0.0.1",
                                "myapp-svc01.test01.svc.cluster.local", "A"],
    "dig-full--pypi.org": ["dig", "+time=2", "+tries=1", "@127.0.0.1", "pypi.org", "A"],
}


def upstream_queries(run: netns.Run) -> list[tuple[str, str]]:
    """(type, name) of every query dnsmasq logged."""
    return [(m.group(1), m.group(2).lower()) for m in
            re.finditer(r"query\[(\w+)\] (\S+) from ", run.read("dnsmasq.log"))]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> netns.Run:
    reason = netns.unavailable()
    if reason:
        pytest.skip(reason)
    if not (shutil.which("dnsmasq") or os.access(DNSMASQ, os.X_OK)):
        pytest.skip("dnsmasq is not installed (tests/run installs dnsmasq-base)")
    base = tmp_path_factory.mktemp("resolver-e2e")
    manifests = base / "manifests"
    shutil.copytree(ZONES, manifests)
    shutil.copy(FORWARD / "e2e-externalname.yaml", manifests / "pypi-mirror.yaml")
    host_resolv = base / "host-resolv.conf"
    host_resolv.write_text("# the host's resolver, as the server reads it at start\n"
                           "nameserver 127.0.0.1\nnameserver 127.0.0.3\nnameserver 127.0.0.2\n")
    result = netns.run(base, SCRIPT, STEPS, ready_timeout=READY_TIMEOUT,
                       nsswitch=nsswitch_with_dns(netns.host_nsswitch()),
                       logs=("server.log", "dnsmasq.log"), MANIFESTS=manifests,
                       HOST_RESOLV=host_resolv, DNSMASQ=DNSMASQ,
                       UPSTREAM_HOSTS=FORWARD / "upstream-hosts")
    assert result.proc.returncode == 0 and not result.read("setup-error"), result.debug()
    return result


def hosts_rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines() if line.strip()]


def test_namespace_is_a_pod(run):
    assert run.read("seen-resolv.conf.out") == (
        "search default.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 127.0.0.1\noptions ndots:5\n")
    assert {line.split()[1] for line in run.read("addresses").splitlines()} == {"lo"}


def test_server_skipped_itself_and_reads_upstreams_from_resolv_conf(run):
    log = run.read("server.log")
    assert re.search(r"upstream 127\.0\.0\.1:53 \(from /etc/resolv\.conf\): not used, "
                     r"it is this server's own listen address", log), log
    assert "forwarding names outside our zones to 127.0.0.3:53, 127.0.0.2:53" in log, log


@pytest.mark.parametrize("short, fqdn", [
    ("webapp", "webapp.default.svc.cluster.local"),
    ("myapp-svc01.test01", "myapp-svc01.test01.svc.cluster.local"),
])
def test_cluster_names_through_the_search_path(run, short, fqdn):
    expected = sorted(run.ok_step(f"dig--{short}").split())
    assert expected and all(re.fullmatch(r"\d+\.\d+\.\d+\.\d+", ip) for ip in expected)
    rows = hosts_rows(run.ok_step(f"getent-hosts--{short}"))
    assert sorted(r[0] for r in rows) == expected and {r[1] for r in rows} == {fqdn}
    got = json.loads(run.ok_step(f"getaddrinfo--{short}"))
    assert got == {"addrs": expected, "canonname": fqdn}


def test_upstream_name_through_the_search_path(run):
    rows = hosts_rows(run.ok_step("getent-hosts--pypi.org"))
    assert rows == [[PYPI, "pypi.org"]]
    assert {r[0] for r in hosts_rows(run.ok_step("getent-ahostsv4--pypi.org"))} == {PYPI}
    assert json.loads(run.ok_step("getaddrinfo--pypi.org")) == {"addrs": [PYPI],
                                                               "canonname": "pypi.org"}
    # a dead first upstream (127.0.0.3) and three search-path NXDOMAINs cost no timeout
    ms = run.step("getent-hosts--pypi.org").ms
    assert ms < FAST_MS, ms
    out = run.ok_step("dig-full--pypi.org")
    flags = re.search(r";; flags: ([a-z ]*);", out).group(1).split()
    assert "status: NOERROR" in out and {"qr", "rd", "ra"} <= set(flags), out  # dnsmasq's RA


def test_search_path_expansions_never_reach_the_upstream(run):
    seen = upstream_queries(run)
    assert ("A", "pypi.org") in seen
    assert not [n for _, n in seen if "cluster.local" in n], seen


def test_externalname_to_the_outside(run):
    rows = hosts_rows(run.ok_step("getent-hosts--pypi-mirror"))
    assert rows and rows[0][:2] == [PYPI, "pypi.org"]
    assert "pypi-mirror.default.svc.cluster.local" in rows[0]


def test_truncated_upstream_answer_reaches_glibc_whole(run):
    rows = hosts_rows(run.ok_step("getent-ahostsv4--big.example.test"))
    assert sorted({r[0] for r in rows}) == BIG


def test_upstream_nxdomain_fails_fast(run):
    rc, out, _, ms = run.step("getent-hosts--nosuch.example.test")
    assert rc == 2 and out == ""  # not found (124 would be the time limit)
    assert ms < FAST_MS, ms


def test_server_and_upstream_stopped_cleanly(run):
    assert run.read("server.rc").strip() == "0", run.read("server.log")
