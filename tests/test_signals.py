"""Signals: SIGTERM and SIGINT stop cleanly after a lame duck period in which
/health says 503 while DNS is still answered; SIGHUP forces a full reload.
"""

from __future__ import annotations

import signal
import subprocess
import time

import dns.rcode
import pytest

from conftest import wait_until
from helpers.manifests import service, write
from status_client import http_server, scrape, total  # noqa: F401

LAMEDUCK = 2.0  # seconds; the default (5) is CoreDNS's, shortened for the tests


@pytest.fixture
def folder(tmp_path):
    return write(tmp_path / "manifests", "web.yaml", service("web", cluster_ip="10.96.8.8")).parent


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_health_goes_unhealthy_before_the_process_exits(http_server, folder, sig):
    srv = http_server(folder, args=["--lameduck", str(LAMEDUCK)])
    assert srv.wait_status("/health", 200) == "OK\n"  # a health checker is watching
    srv.signal(sig)
    signalled = time.monotonic()
    body = srv.wait_status("/health", 503, timeout=LAMEDUCK)
    assert "lame duck" in body
    assert srv.alive(), "exited before reporting unhealthy"
    assert srv.get("/ready")[0] == 503
    # Still answering DNS during the lame duck period, over UDP and TCP.
    assert srv.rrset_values("web.default.svc.cluster.local.") == ["10.96.8.8"]
    assert srv.rrset_values("web.default.svc.cluster.local.", tcp=True) == ["10.96.8.8"]
    rc = srv.proc.wait(LAMEDUCK + 10)
    took = time.monotonic() - signalled
    assert rc == 0, srv.stderr
    assert took >= LAMEDUCK - 0.3, f"exited after {took:.2f} s, before the lame duck ended"
    assert "Traceback" not in srv.stderr
    assert "lame duck" in srv.stderr and "shutting down" in srv.stderr


def test_second_signal_cuts_the_lame_duck_short(http_server, folder):
    srv = http_server(folder, args=["--lameduck", "30"])
    srv.wait_status("/health", 200)
    srv.signal(signal.SIGTERM)
    srv.wait_status("/health", 503, timeout=5)
    srv.signal(signal.SIGINT)
    try:
        assert srv.proc.wait(10) == 0, srv.stderr
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running 10 s after the second signal:\n{srv.stderr}")


def test_no_lame_duck_wait_when_nobody_watches_health(http_server, folder):
    # Nothing polled /health or /ready: there is nobody to tell, stop at once.
    srv = http_server(folder, args=["--lameduck", "30"])
    srv.signal(signal.SIGTERM)
    assert srv.proc.wait(10) == 0, srv.stderr


def test_sighup_forces_a_full_reload(http_server, folder):
    srv = http_server(folder)
    soa = srv.query("cluster.local.", "SOA").answer[0][0].serial
    before = total(scrape(srv), "coredns_py_reloads_total")
    srv.signal(signal.SIGHUP)
    s = wait_until(lambda: (lambda s: s if total(s, "coredns_py_reloads_total") == before + 1
                            else None)(scrape(srv)), 10, message="a reload after SIGHUP")
    assert total(s, "coredns_py_reload_propagation_seconds_count") == before + 1
    # A full reload builds a new snapshot even though nothing changed: new serial.
    assert srv.query("cluster.local.", "SOA").answer[0][0].serial > soa
    assert srv.rrset_values("web.default.svc.cluster.local.") == ["10.96.8.8"]
    assert srv.alive()
    assert srv.query("web.default.svc.cluster.local.", "A").rcode() == dns.rcode.NOERROR
