"""Config reload: on SIGHUP and when the config file changes, a new
generation with the new config; a config that does not validate is refused
and the running one kept; what needs a restart is reported and kept."""

from __future__ import annotations

import signal

import pytest

from conftest import ServerProcess, wait_until, write_atomic

NAME = "kubernetes.default.svc.cluster.local."


def ttl(srv) -> int:
    return srv.query(NAME, "A").answer[0].ttl


@pytest.fixture
def reloading(tmp_path, state_home):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("upstream: []\nttl: 5\nreload: 1\n")
    srv = ServerProcess(state_home=state_home, args=["--config", str(cfg)],
                        logdir=tmp_path / "log").start()
    yield srv, cfg
    srv.stop()


def test_a_changed_ttl_is_served_without_restart(reloading):
    srv, cfg = reloading
    assert ttl(srv) == 5
    write_atomic(cfg, "upstream: []\nttl: 30\nreload: 1\n")
    wait_until(lambda: ttl(srv) == 30, timeout=8, message="ttl 30 to be served")
    srv.wait_stderr(r"config .*config\.yaml reloaded: ttl changed")
    # SIGHUP reads it again too (no watching needed)
    write_atomic(cfg, "upstream: []\nttl: 7\nreload: 0\n")
    srv.signal(signal.SIGHUP)
    wait_until(lambda: ttl(srv) == 7, timeout=8, message="ttl 7 after SIGHUP")


def test_a_broken_config_is_refused_and_the_running_one_kept(reloading):
    srv, cfg = reloading
    write_atomic(cfg, "upstream: []\nttl: 99999\nreload: 1\n")
    srv.wait_stderr(r"config key ttl: must be 0\.\.3600, got 99999; still running with the "
                    r"previous config", timeout=8)
    assert ttl(srv) == 5
    write_atomic(cfg, "upstream: []\nttl: [\n")
    srv.wait_stderr(r"invalid YAML", timeout=8)
    assert ttl(srv) == 5 and srv.alive()
    write_atomic(cfg, "upstream: []\nttl: 12\nreload: 1\n")
    wait_until(lambda: ttl(srv) == 12, timeout=8, message="the fixed config to be applied")


def test_restart_only_keys_are_reported_and_kept(reloading):
    srv, cfg = reloading
    write_atomic(cfg, "upstream: []\nttl: 20\nreload: 1\nservice_cidr: [10.100.0.0/16]\n"
                 "listen: ['127.0.0.1:1053']\n")
    srv.wait_stderr(r"service_cidr cannot change without a restart \(running with "
                    r"\[10\.96\.0\.0/12\], the file says \[10\.100\.0\.0/16\]\); keeping", timeout=8)
    srv.wait_stderr(r"listen cannot change without a restart")
    wait_until(lambda: ttl(srv) == 20, timeout=8, message="the rest to be applied")
    # the Services kept their addresses
    assert srv.rrset_values(NAME) == ["10.96.0.1"]
    assert srv.alive()


def test_forwarding_and_hosts_follow_the_config(tmp_path, state_home):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("upstream: []\nreload: 1\n")
    srv = ServerProcess(state_home=state_home, args=["--config", str(cfg)],
                        logdir=tmp_path / "log").start()
    try:
        assert srv.query("mock.example.").rcode() == 5  # REFUSED: not ours, no hosts
        write_atomic(cfg, "upstream: []\nreload: 1\nhosts:\n"
                     "  - entries: ['192.0.2.7 mock.example']\n    fallthrough: true\n")
        wait_until(lambda: srv.rrset_values("mock.example.") == ["192.0.2.7"], timeout=8,
                   message="the hosts entry of the new config")
        srv.wait_stderr(r"reloaded: hosts changed")
    finally:
        srv.stop()


def test_an_open_tcp_connection_gets_the_new_stages(tmp_path, state_home):
    """The chain a reload builds reaches connections already open."""
    import socket

    import dns.message

    from helpers.tcp import frame

    def ask(sock, name):
        sock.sendall(frame(dns.message.make_query(name, "A").to_wire()))
        head = sock.recv(2, socket.MSG_WAITALL)
        return dns.message.from_wire(sock.recv(int.from_bytes(head, "big"), socket.MSG_WAITALL))

    cfg = tmp_path / "config.yaml"
    cfg.write_text("upstream: []\nreload: 0\n")
    srv = ServerProcess(state_home=state_home, args=["--config", str(cfg)],
                        logdir=tmp_path / "log").start()
    try:
        with socket.create_connection((srv.host, srv.port), timeout=5) as sock:
            assert ask(sock, "mock.example.").rcode() == 5  # REFUSED
            write_atomic(cfg, "upstream: []\nreload: 0\nhosts:\n"
                         "  - entries: ['192.0.2.7 mock.example']\n")
            srv.signal(signal.SIGHUP)
            srv.wait_stderr(r"reloaded: hosts changed")
            r = wait_until(lambda: (lambda m: m if m.answer else None)(
                ask(sock, "mock.example.")), timeout=5, message="the hosts answer over TCP")
            assert [rd.to_text() for rs in r.answer for rd in rs] == ["192.0.2.7"]
    finally:
        srv.stop()


def test_zones_filters_and_stages_follow_the_config(tmp_path, state_home):
    """The second part's keys take effect on reload too: a zone added, a
    namespace filtered out, a rewrite rule, zone transfers turned off."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text("upstream: []\nreload: 1\n")
    srv = ServerProcess(state_home=state_home, args=["--config", str(cfg)],
                        logdir=tmp_path / "log").start()
    try:
        assert srv.query("kubernetes.default.svc.example.internal.").rcode() == 5  # not ours
        assert "XFR size" in srv.dig("AXFR", "cluster.local")  # this host may, by default
        assert srv.rrset_values("cart.shop.svc.cluster.local.") == ["10.96.120.15"]
        write_atomic(cfg, "upstream: []\nreload: 1\nextra_zones: [example.internal]\n"
                     "namespaces: [default]\ntransfer_to: []\n"
                     "rewrite: ['name exact api.test kubernetes.default.svc.cluster.local']\n")
        wait_until(lambda: srv.rrset_values("kubernetes.default.svc.example.internal.") == [
            "10.96.0.1"], timeout=8, message="the new zone")
        assert srv.rrset_values("api.test.") == ["10.96.0.1"]
        assert srv.query("cart.shop.svc.cluster.local.").rcode() == 3  # filtered: NXDOMAIN
        assert "Transfer failed" in srv.dig("AXFR", "cluster.local")
    finally:
        srv.stop()
