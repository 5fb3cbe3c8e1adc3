"""``coredns-py serve`` as a user runs it: a real process, real sockets on
loopback, real clients (``dig`` and dnspython).

Sections: listening (UDP+TCP, several addresses), the bundled example
cluster (zones/), truncation and TCP, hostile input, live reload, restart
stability, and the tutorial's seed folders.  Helpers are in conftest.py.
"""

from __future__ import annotations

import ipaddress
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import struct
import time
from pathlib import Path
from typing import Optional

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from conftest import (FIXTURES, SEED, ServerProcess, ipv6_loopback_available, module_server,
                      wait_until, write_atomic)
from helpers.manifests import deployment, documents, service

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
POD_CIDR = ipaddress.ip_network("10.244.0.0/16")
RELOAD_DEADLINE = 5.0  # generous bound for a change to be served; the time is printed


def in_net(ip: str, net) -> bool:
    return ipaddress.ip_address(ip) in net


def rr_lines(dig_output: str) -> list[tuple[str, str, str]]:
    """(owner, type, rdata) of every record line in dig output (comments skipped)."""
    out = []
    for line in dig_output.splitlines():
        if not line.strip() or line.startswith(";"):
            continue
        parts = line.split(None, 4)
        if len(parts) == 5 and parts[2] == "IN":
            out.append((parts[0], parts[3], parts[4].strip()))
    return out


def dig_status(dig_output: str) -> str:
    m = re.search(r"status: ([A-Z]+)", dig_output)
    assert m, f"no status in dig output:\n{dig_output}"
    return m.group(1)


def dig_flags(dig_output: str) -> set[str]:
    m = re.search(r";; flags: ([a-z ]*);", dig_output)
    assert m, f"no flags in dig output:\n{dig_output}"
    return set(m.group(1).split())


def a_values(srv: ServerProcess, name: str, **kw) -> list[str]:
    return srv.rrset_values(name, "A", **kw)


def rcode_of(srv: ServerProcess, name: str, rdtype: str = "A") -> int:
    return srv.query(name, rdtype).rcode()


def svc(name: str, ns: str = "default", cluster_ip: Optional[str] = None, *,
        selector: Optional[dict] = None, port: int = 80) -> str:
    """A Service with one TCP port named http (ClusterIP allocated unless
    ``cluster_ip`` is given)."""
    return service(name, ns, cluster_ip=cluster_ip, selector=selector,
                   ports=[{"name": "http", "port": port, "protocol": "TCP"}])


def web_deployment(name: str, replicas: int) -> str:
    """A Deployment of pods labelled app=NAME, serving on a port named http."""
    return deployment(name, "default", replicas=replicas,
                      ports=[{"name": "http", "containerPort": 80}])


def fqdn(name: str, ns: str = "default") -> str:
    return f"{name}.{ns}.svc.cluster.local."


class Marker:
    """Proves a reload has happened: write a new marker Service file and wait
    until it is served.  The server rescans the whole folder on each reload,
    so every change made before the marker has been seen once it answers."""

    def __init__(self, srv: ServerProcess, folder: Path):
        self.srv, self.folder, self.n = srv, folder, 0

    def sync(self, timeout: float = RELOAD_DEADLINE) -> float:
        self.n += 1
        name = f"marker-{self.n}"
        started = time.monotonic()
        write_atomic(self.folder / f"zz-{name}.yaml", svc(name))
        wait_until(lambda: a_values(self.srv, fqdn(name)), timeout,
                   message=f"{name} to be served; stderr:\n{self.srv.stderr}")
        return time.monotonic() - started


# --- listening -----------------------------------------------------------------------


def _answers_everywhere(srv: ServerProcess) -> None:
    for addr in srv.addresses:
        for tcp in (False, True):
            r = srv.query("kube-dns.kube-system.svc.cluster.local.", "A", tcp, addr=addr)
            assert r.rcode() == dns.rcode.NOERROR, (addr, tcp, r)
            assert [rd.to_text() for rs in r.answer for rd in rs] == ["10.96.0.10"], (addr, tcp)
        assert srv.dig_short("kube-dns.kube-system.svc.cluster.local", addr=addr) == ["10.96.0.10"]
        assert srv.dig_short("+tcp", "kube-dns.kube-system.svc.cluster.local",
                             addr=addr) == ["10.96.0.10"]


def test_udp_and_tcp_on_two_ipv4_listen_addresses(start_server):
    srv = start_server(None, hosts=("127.0.0.1", "127.0.0.2"))
    assert [h for h, _ in srv.addresses] == ["127.0.0.1", "127.0.0.2"]
    _answers_everywhere(srv)
    # The server says where it listens, one line per address.
    for host, port in srv.addresses:
        assert f"{host} port {port}" in srv.stderr


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback (::1)")
def test_udp_and_tcp_on_ipv4_and_ipv6_loopback(start_server):
    srv = start_server(None, hosts=("127.0.0.1", "::1"))
    _answers_everywhere(srv)


def test_state_file_lives_under_xdg_state_home(start_server, state_home, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "svc.yaml").write_text(svc("alloc"))
    srv = start_server(folder, state_home=state_home)
    assert a_values(srv, fqdn("alloc"))
    files = list((state_home / "coredns_py").glob("*.json"))
    assert len(files) == 1, files
    assert "default/alloc" in files[0].read_text()
    # The manifests folder itself is never written to.
    assert sorted(p.name for p in folder.iterdir()) == ["svc.yaml"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stops_cleanly_on_signal(start_server, folder, sig):
    srv = start_server(folder)
    srv.signal(sig)
    try:
        rc = srv.proc.wait(10)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running 10 s after {sig!r}; stderr:\n{srv.stderr}")
    assert rc == 0, srv.stderr
    assert "Traceback" not in srv.stderr
    # The ports are free again at once: a new process binds the same addresses.
    srv.restart()
    assert a_values(srv, fqdn("base")) == ["10.96.1.1"]


# --- the bundled example cluster (zones/, the default --manifests) ---------------------


def test_zones_clusterip_service(zones_server):
    ips = zones_server.dig_short("webapp.default.svc.cluster.local")
    assert len(ips) == 1 and in_net(ips[0], SERVICE_CIDR), ips
    # The same answer with every transport variant a user might pick.
    for variant in (["+tcp"], ["+noedns"], ["+bufsize=512"], ["+bufsize=4096"],
                    ["+tcp", "+noedns"]):
        assert zones_server.dig_short(*variant, "webapp.default.svc.cluster.local") == ips, variant


def test_zones_kube_dns_fixed_ip(zones_server):
    out = zones_server.dig("kube-dns.kube-system.svc.cluster.local", "A")
    assert dig_status(out) == "NOERROR"
    assert "aa" in dig_flags(out)
    assert rr_lines(out) == [("kube-dns.kube-system.svc.cluster.local.", "A", "10.96.0.10")]


def test_zones_srv_loadbalancer(zones_server):
    name = "_http._tcp.webapp.loadbalancer.svc.cluster.local"
    out = zones_server.dig("+noall", "+answer", "+additional", name, "SRV")
    records = rr_lines(out)
    srv = [r for r in records if r[1] == "SRV"]
    assert len(srv) == 1, out
    prio, weight, port, target = srv[0][2].split()
    assert (port, target) == ("8080", "webapp.loadbalancer.svc.cluster.local.")
    glue = [r for r in records if r[1] == "A"]
    assert [g[0] for g in glue] == ["webapp.loadbalancer.svc.cluster.local."], out
    # The additional A is the Service's own address.
    assert [g[2] for g in glue] == zones_server.dig_short("webapp.loadbalancer.svc.cluster.local")
    assert in_net(glue[0][2], SERVICE_CIDR)


@pytest.mark.parametrize("port_name,port", [("web", "8080"), ("management", "8005")])
def test_zones_srv_multiport(zones_server, port_name, port):
    lines = zones_server.dig_short(f"_{port_name}._tcp.webapp.multiport.svc.cluster.local", "SRV")
    assert len(lines) == 1, lines
    _prio, _weight, got_port, target = lines[0].split()
    assert (got_port, target) == (port, "webapp.multiport.svc.cluster.local.")


def test_zones_headless_answers_pod_ips(zones_server):
    ips = zones_server.dig_short("myapp-svc01.test01.svc.cluster.local")
    assert len(ips) == 1, ips  # Deployment myapp01 has replicas: 1
    assert all(in_net(ip, POD_CIDR) for ip in ips), ips
    # Same pod IP over TCP and dnspython.
    assert a_values(zones_server, "myapp-svc01.test01.svc.cluster.local.", tcp=True) == ips


def test_zones_externalname_cname_to_other_namespace(zones_server):
    lines = zones_server.dig_short("myapp-svcname02.test01.svc.cluster.local")
    target_ips = zones_server.dig_short("myapp-svc02.test02.svc.cluster.local")
    assert target_ips and all(in_net(ip, POD_CIDR) for ip in target_ips)
    assert lines == ["myapp-svc02.test02.svc.cluster.local."] + target_ips
    r = zones_server.query("myapp-svcname02.test01.svc.cluster.local.", "A")
    types = [dns.rdatatype.to_text(rs.rdtype) for rs in r.answer]
    assert types == ["CNAME", "A"]


def test_zones_statefulset_pod_name(zones_server):
    ips = zones_server.dig_short("web-0.nginx.default.svc.cluster.local")
    assert len(ips) == 1 and in_net(ips[0], POD_CIDR), ips
    # web-0 is one of the headless Service's addresses, and not web-1's.
    all_ips = zones_server.dig_short("nginx.default.svc.cluster.local")
    assert ips[0] in all_ips and len(all_ips) == 2
    assert zones_server.dig_short("web-1.nginx.default.svc.cluster.local") != ips


def test_zones_aaaa_dual_stack(zones_server):
    assert zones_server.dig_short("cart.shop.svc.cluster.local", "AAAA") == ["fd00:10:96::7b2"]
    assert zones_server.dig_short("cart.shop.svc.cluster.local", "A") == ["10.96.120.15"]


def test_zones_reverse_lookup(zones_server):
    assert zones_server.dig_short("-x", "10.96.0.10") == ["kube-dns.kube-system.svc.cluster.local."]


def test_zones_nxdomain_has_soa(zones_server):
    out = zones_server.dig("nosuch.default.svc.cluster.local", "A")
    assert dig_status(out) == "NXDOMAIN"
    r = zones_server.query("nosuch.default.svc.cluster.local.", "A")
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert not r.answer
    assert len(r.authority) == 1
    soa = r.authority[0]
    assert soa.rdtype == dns.rdatatype.SOA and soa.name == dns.name.from_text("cluster.local.")


def test_zones_default_config(start_server):
    """No --manifests and no --config: the bundled zones/ with the bundled config
    (only names in the cluster zone are asked, so nothing is forwarded)."""
    srv = start_server(None, hermetic=False)
    assert "--config" not in srv.command()
    assert srv.dig_short("kube-dns.kube-system.svc.cluster.local") == ["10.96.0.10"]
    assert srv.dig_short("-x", "10.96.0.1") == ["kubernetes.default.svc.cluster.local."]


def test_zones_refuses_other_zones(zones_server):
    """With forwarding off (the test servers' config), a name outside the
    cluster zones is REFUSED."""
    out = zones_server.dig("example.com", "A")
    assert dig_status(out) == "REFUSED"
    assert rr_lines(out) == []


def test_zones_dns_version(zones_server):
    assert zones_server.dig_short("dns-version.cluster.local", "TXT") == ['"1.1.0"']


# --- truncation and TCP ---------------------------------------------------------------

BIG = "big.default.svc.cluster.local."
BIG_IPS = sorted(f"10.244.1.{i}" for i in range(1, 201))


@pytest.fixture(scope="module")
def big_server(tmp_path_factory):
    yield from module_server(tmp_path_factory, "big", FIXTURES / "big-headless")


def test_big_answer_truncated_over_udp_without_edns(big_server):
    r = big_server.query(BIG, "A")  # dnspython: no EDNS, so a 512-byte limit
    assert r.flags & dns.flags.TC
    assert len(r.to_wire()) <= 512
    # With EDNS the limit is larger but still far below 200 records.
    r = big_server.query(BIG, "A", payload=1232)
    assert r.flags & dns.flags.TC
    assert len(r.to_wire()) <= 1232


def test_big_answer_complete_over_tcp(big_server):
    r = big_server.query(BIG, "A", tcp=True)
    assert not r.flags & dns.flags.TC
    assert sorted(rd.to_text() for rs in r.answer for rd in rs) == BIG_IPS


@pytest.mark.parametrize("opts", [["+noedns"], ["+bufsize=1232"], ["+tcp"]])
def test_dig_gets_all_200_addresses(big_server, opts):
    # dig retries over TCP by itself when the UDP answer has TC set.
    assert sorted(big_server.dig_short(*opts, BIG)) == BIG_IPS


def _recv_exact(sock: socket.socket, n: int, timeout: float = 5.0) -> bytes:
    deadline = time.monotonic() + timeout
    buf = b""
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out reading {n} bytes (got {len(buf)})")
        sock.settimeout(left)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise AssertionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def _read_frame(sock: socket.socket) -> dns.message.Message:
    (length,) = struct.unpack("!H", _recv_exact(sock, 2))
    return dns.message.from_wire(_recv_exact(sock, length))


def _frame(msg: dns.message.Message) -> bytes:
    wire = msg.to_wire()
    return struct.pack("!H", len(wire)) + wire


def test_tcp_pipelined_queries_on_one_connection(zones_server):
    names = ["kube-dns.kube-system.svc.cluster.local.", "nosuch.default.svc.cluster.local.",
             "cart.shop.svc.cluster.local."]
    queries = [dns.message.make_query(n, "A") for n in names]
    queries[0].id, queries[1].id, queries[2].id = 0x1111, 0x2222, 0x3333
    with socket.create_connection((zones_server.host, zones_server.port), timeout=5) as sock:
        sock.sendall(b"".join(_frame(q) for q in queries))  # three queries in one send
        answers = {}
        for _ in queries:
            r = _read_frame(sock)
            answers[r.id] = r
        assert set(answers) == {0x1111, 0x2222, 0x3333}
        for q in queries:
            r = answers[q.id]
            assert r.question == q.question
        assert [rd.to_text() for rs in answers[0x1111].answer for rd in rs] == ["10.96.0.10"]
        assert answers[0x2222].rcode() == dns.rcode.NXDOMAIN
        assert [rd.to_text() for rs in answers[0x3333].answer for rd in rs] == ["10.96.120.15"]
        # The connection stays open for a later query.
        later = dns.message.make_query("dns-version.cluster.local.", "TXT")
        later.id = 0x4444
        sock.sendall(_frame(later))
        r = _read_frame(sock)
        assert r.id == 0x4444 and r.rcode() == dns.rcode.NOERROR


# --- hostile input ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory):
    yield from module_server(tmp_path_factory, "hostile", FIXTURES / "big-headless")


def _still_serving(srv: ServerProcess) -> None:
    assert srv.alive(), f"server died; stderr:\n{srv.stderr}"
    for tcp in (False, True):
        r = srv.query(BIG, "A", tcp)
        assert r.rcode() == dns.rcode.NOERROR
    assert "Traceback" not in srv.stderr, srv.stderr


def _udp_send(srv: ServerProcess, payloads, wait_reply: float = 0.0,
              expect: Optional[int] = None) -> list[bytes]:
    """Send datagrams; collect replies for up to ``wait_reply`` seconds (or
    until ``expect`` replies arrived)."""
    replies = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for p in payloads:
            s.sendto(p, (srv.host, srv.port))
        deadline = time.monotonic() + wait_reply
        while wait_reply and (expect is None or len(replies) < expect):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                replies.append(s.recv(65535))
            except (socket.timeout, ConnectionRefusedError):
                break
    return replies


def test_garbage_udp_datagrams(hostile_server):
    rng = random.Random(20240607)
    junk = [bytes(rng.getrandbits(8) for _ in range(rng.randint(2, 600))) for _ in range(60)]
    junk += [b"\x00" * 12, b"\xff" * 12, b"\x00" * 65000, b"GET / HTTP/1.1\r\n\r\n"]
    _udp_send(hostile_server, junk)
    _still_serving(hostile_server)


def test_malformed_query_gets_formerr_with_its_id(hostile_server):
    # A query header announcing one question whose name is cut short.
    wire = b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07exam"
    replies = _udp_send(hostile_server, [wire], wait_reply=5.0, expect=1)
    assert replies, "no answer to a malformed query"
    reply = replies[0]
    assert reply[:2] == b"\xbe\xef"
    assert reply[2] & 0x80  # QR: a response
    assert reply[3] & 0x0F == dns.rcode.FORMERR
    _still_serving(hostile_server)


def test_one_byte_datagram(hostile_server):
    _udp_send(hostile_server, [b"\x00"])
    _still_serving(hostile_server)


def test_datagram_with_qr_bit_is_not_answered(hostile_server):
    q = dns.message.make_query(BIG, "A")
    wire = bytearray(q.to_wire())
    wire[2] |= 0x80  # QR: this is a "response"; answering it could start a loop
    replies = _udp_send(hostile_server, [bytes(wire)], wait_reply=0.5)
    assert replies == []
    _still_serving(hostile_server)


def test_unterminated_tcp_frame_then_close(hostile_server):
    q = dns.message.make_query(BIG, "A").to_wire()
    with socket.create_connection((hostile_server.host, hostile_server.port), timeout=5) as s:
        s.sendall(struct.pack("!H", len(q) + 100) + q)  # announces more than it sends
    with socket.create_connection((hostile_server.host, hostile_server.port), timeout=5) as s:
        s.sendall(b"\x00")  # half a length prefix
    _still_serving(hostile_server)


def test_tcp_junk(hostile_server):
    rng = random.Random(7)
    with socket.create_connection((hostile_server.host, hostile_server.port), timeout=5) as s:
        # Frames whose content is not DNS, then bytes that are not even framed.
        s.sendall(struct.pack("!H", 5) + b"hello" + struct.pack("!H", 3) + b"\xff\xff\xff")
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.sendall(bytes(rng.getrandbits(8) for _ in range(3000)))
    with socket.create_connection((hostile_server.host, hostile_server.port), timeout=5) as s:
        s.sendall(struct.pack("!H", 0))  # a zero-length frame: the server closes
        s.settimeout(5)
        try:
            assert s.recv(10) == b""
        except ConnectionResetError:
            pass
    _still_serving(hostile_server)


# --- live reload ----------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path) -> Path:
    path = tmp_path / "manifests"
    path.mkdir()
    (path / "base.yaml").write_text(svc("base", cluster_ip="10.96.1.1"))
    return path


def test_reload_create_rename_change_delete(start_server, folder):
    srv = start_server(folder)
    mark = Marker(srv, folder)
    assert a_values(srv, fqdn("base")) == ["10.96.1.1"]
    assert rcode_of(srv, fqdn("fresh")) == dns.rcode.NXDOMAIN

    # A new file: its Service is served (the ClusterIP is allocated).
    started = time.monotonic()
    (folder / "fresh.yaml").write_text(svc("fresh"))
    ips = wait_until(lambda: a_values(srv, fqdn("fresh")), RELOAD_DEADLINE,
                     message="the new Service to be served")
    print(f"new file served after {time.monotonic() - started:.3f} s")
    assert len(ips) == 1 and in_net(ips[0], SERVICE_CIDR)

    # Renamed: still served, same address.
    os.rename(folder / "fresh.yaml", folder / "renamed.yaml")
    mark.sync()
    assert a_values(srv, fqdn("fresh")) == ips

    # A new ClusterIP: the new answer.
    (folder / "renamed.yaml").write_text(svc("fresh", cluster_ip="10.96.2.3"))
    wait_until(lambda: a_values(srv, fqdn("fresh")) == ["10.96.2.3"], RELOAD_DEADLINE,
               message="the changed ClusterIP")

    # Deleted: NXDOMAIN; the rest is still served.
    (folder / "renamed.yaml").unlink()
    wait_until(lambda: rcode_of(srv, fqdn("fresh")) == dns.rcode.NXDOMAIN, RELOAD_DEADLINE,
               message="NXDOMAIN after delete")
    assert a_values(srv, fqdn("base")) == ["10.96.1.1"]
    assert srv.alive()


def test_reload_subfolders(start_server, folder):
    srv = start_server(folder)
    deep = folder / "team-a" / "apps"
    deep.mkdir(parents=True)
    (deep / "deep.yaml").write_text(svc("deep"))
    wait_until(lambda: a_values(srv, fqdn("deep")), RELOAD_DEADLINE,
               message="a Service in a new subfolder")
    # A folder moved in from elsewhere, then a file added inside it.
    outside = folder.parent / "outside"
    outside.mkdir()
    (outside / "moved.yaml").write_text(svc("moved-in"))
    os.rename(outside, folder / "moved")
    wait_until(lambda: a_values(srv, fqdn("moved-in")), RELOAD_DEADLINE,
               message="a Service in a moved-in folder")
    (folder / "moved" / "later.yaml").write_text(svc("later"))
    wait_until(lambda: a_values(srv, fqdn("later")), RELOAD_DEADLINE,
               message="a Service added inside the moved-in folder")
    # Removing the subfolder removes its Services.
    shutil.rmtree(folder / "team-a")
    wait_until(lambda: rcode_of(srv, fqdn("deep")) == dns.rcode.NXDOMAIN, RELOAD_DEADLINE,
               message="NXDOMAIN after removing the subfolder")
    assert a_values(srv, fqdn("later"))


GOOD_ALPHA = svc("alpha", cluster_ip="10.96.1.11")
# Line 8 starts with a tab: a YAML syntax error reported at line 8.
BROKEN_ALPHA = GOOD_ALPHA.replace("\n  ports:", "\n\tports:")


def test_reload_broken_yaml_keeps_old_names_then_fix(start_server, folder):
    alpha = folder / "alpha.yaml"
    alpha.write_text(GOOD_ALPHA)
    srv = start_server(folder)
    mark = Marker(srv, folder)
    assert a_values(srv, fqdn("alpha")) == ["10.96.1.11"]
    assert BROKEN_ALPHA.splitlines()[7].startswith("\tports:")

    write_atomic(alpha, BROKEN_ALPHA)
    srv.wait_stderr(re.escape(f"{alpha}:8: invalid YAML"), RELOAD_DEADLINE)
    # The last good data of the file keeps answering ...
    assert a_values(srv, fqdn("alpha")) == ["10.96.1.11"]
    assert a_values(srv, fqdn("base")) == ["10.96.1.1"]
    # ... and later reloads do not repeat the error: one line, naming the file and line.
    mark.sync()
    errors = [line for line in srv.stderr.splitlines() if str(alpha) in line]
    assert len(errors) == 1, errors
    assert re.search(re.escape(str(alpha)) + r":8\b", errors[0])
    assert "Traceback" not in srv.stderr

    # Fixed (with a new address): the new data is served.
    write_atomic(alpha, svc("alpha", cluster_ip="10.96.1.12"))
    wait_until(lambda: a_values(srv, fqdn("alpha")) == ["10.96.1.12"], RELOAD_DEADLINE,
               message="the fixed file's data")

    # Valid YAML but an invalid object: that object keeps its last good version.
    write_atomic(alpha, svc("alpha", cluster_ip="10.96.1.13", port=70000))
    srv.wait_stderr(re.escape(str(alpha)) + r":1: Service default/alpha: "
                    r"field spec\.ports\[0\]\.port: .*70000", RELOAD_DEADLINE)
    assert a_values(srv, fqdn("alpha")) == ["10.96.1.12"]


def test_reload_clusterip_conflict_reported_once(start_server, folder):
    (folder / "a.yaml").write_text(svc("one", cluster_ip="10.96.9.9"))
    (folder / "b.yaml").write_text(svc("two", cluster_ip="10.96.9.9"))
    srv = start_server(folder)
    assert a_values(srv, fqdn("one")) == ["10.96.9.9"]  # first by path order keeps it
    two = a_values(srv, fqdn("two"))
    assert len(two) == 1 and two != ["10.96.9.9"]  # the other one still gets an address
    srv.wait_stderr(r"b\.yaml.*already used by default/one")
    mark = Marker(srv, folder)
    mark.sync()
    mark.sync()
    errors = [line for line in srv.stderr.splitlines() if "already used" in line]
    assert len(errors) == 1, errors


def test_reload_duplicate_service_first_by_path_order_wins(start_server, folder):
    first = folder / "a-first.yaml"
    first.write_text(svc("dup", cluster_ip="10.96.3.3"))
    srv = start_server(folder)
    assert a_values(srv, fqdn("dup")) == ["10.96.3.3"]

    second = folder / "b-second.yaml"
    write_atomic(second, svc("dup", cluster_ip="10.96.4.4"))
    line = srv.wait_stderr(rf".*{re.escape(str(second))}.*", RELOAD_DEADLINE).group(0)
    assert str(first) in line and "Service default/dup" in line, line
    Marker(srv, folder).sync()
    assert a_values(srv, fqdn("dup")) == ["10.96.3.3"]

    # A file earlier in path order now defines it: that one is used.
    earliest = folder / "0-earliest.yaml"
    write_atomic(earliest, svc("dup", cluster_ip="10.96.5.5"))
    wait_until(lambda: a_values(srv, fqdn("dup")) == ["10.96.5.5"], RELOAD_DEADLINE,
               message="the earliest file's Service to win")


def test_reload_ignores_editor_temp_files(start_server, folder):
    srv = start_server(folder)
    # What editors leave next to foo.yaml while (or after) saving it.
    temp_files = {".foo.yaml.swp": "swapped", "foo.yaml~": "backup", ".#foo.yaml": "locked",
                  ".foo.yaml": "hidden"}
    for fname, svc_name in temp_files.items():
        (folder / fname).write_text(svc(svc_name))
    # A half-written manifest in a swap file is not even an error.
    (folder / ".bar.yaml.swp").write_text("apiVersion: v1\nkind: Serv")
    (folder / "bar.yaml~").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: [")
    Marker(srv, folder).sync()
    for svc_name in temp_files.values():
        assert rcode_of(srv, fqdn(svc_name)) == dns.rcode.NXDOMAIN, svc_name
    for fname in list(temp_files) + [".bar.yaml.swp", "bar.yaml~"]:
        assert fname not in srv.stderr, srv.stderr
    assert a_values(srv, fqdn("base")) == ["10.96.1.1"]


def test_scaling_deployment_adds_one_address_and_keeps_others(start_server, folder):
    app = folder / "app.yaml"
    headless = svc("scaler", selector={"app": "scaler"}, cluster_ip="None")
    app.write_text(documents(web_deployment("scaler", 2), headless))
    srv = start_server(folder)
    before = a_values(srv, fqdn("scaler"))
    assert len(before) == 2 and all(in_net(ip, POD_CIDR) for ip in before), before

    write_atomic(app, documents(web_deployment("scaler", 3), headless))
    after = wait_until(lambda: (lambda v: v if len(v) == 3 else None)(
        a_values(srv, fqdn("scaler"))), RELOAD_DEADLINE, message="a third address")
    assert set(before) < set(after), (before, after)
    assert all(in_net(ip, POD_CIDR) for ip in after)


# --- restart stability ------------------------------------------------------------------


def _snapshot_answers(srv: ServerProcess, names: list[str]) -> dict[str, list[str]]:
    return {n: a_values(srv, n) for n in names}


def test_restart_keeps_cluster_ips_and_pod_ips(start_server, folder, state_home):
    (folder / "web.yaml").write_text(
        documents(web_deployment("web", 2), svc("web", selector={"app": "web"}),
                  svc("web-hl", selector={"app": "web"}, cluster_ip="None")))
    names = [fqdn("web"), fqdn("web-hl")]
    first = start_server(folder, state_home=state_home)
    before = _snapshot_answers(first, names)
    assert len(before[fqdn("web")]) == 1 and in_net(before[fqdn("web")][0], SERVICE_CIDR)
    assert len(before[fqdn("web-hl")]) == 2
    first.stop()
    second = start_server(folder, state_home=state_home)
    assert _snapshot_answers(second, names) == before


def test_moving_service_to_another_file_keeps_its_ip(start_server, folder, state_home):
    a, b = folder / "a.yaml", folder / "b.yaml"
    a.write_text(documents(svc("mover"), svc("stay")))
    srv = start_server(folder, state_home=state_home)
    ip = a_values(srv, fqdn("mover"))
    stay = a_values(srv, fqdn("stay"))
    assert len(ip) == 1 and in_net(ip[0], SERVICE_CIDR)

    # Cut from a.yaml, paste into b.yaml: same address, live ...
    write_atomic(b, svc("mover"))
    write_atomic(a, svc("stay"))
    Marker(srv, folder).sync()
    assert a_values(srv, fqdn("mover")) == ip
    srv.stop()
    # ... and after a restart.
    srv2 = start_server(folder, state_home=state_home)
    assert a_values(srv2, fqdn("mover")) == ip
    assert a_values(srv2, fqdn("stay")) == stay


def test_delete_and_readd_service(start_server, folder, state_home):
    """What happens when a Service is deleted and added back.

    Deleting frees its address (as in Kubernetes).  Re-adding allocates
    again; unlike the API server's random pick, the allocator first tries a
    slot derived from the Service's name, so when nothing else took that
    address meanwhile, the Service gets the same ClusterIP back - also
    across a restart in between.
    """
    f = folder / "gone.yaml"
    f.write_text(svc("gone"))
    srv = start_server(folder, state_home=state_home)
    ip = a_values(srv, fqdn("gone"))
    assert len(ip) == 1

    f.unlink()
    wait_until(lambda: rcode_of(srv, fqdn("gone")) == dns.rcode.NXDOMAIN, RELOAD_DEADLINE,
               message="NXDOMAIN after delete")
    state = next((state_home / "coredns_py").glob("*.json")).read_text()
    assert "default/gone" not in state  # the address was freed

    write_atomic(f, svc("gone"))
    wait_until(lambda: a_values(srv, fqdn("gone")), RELOAD_DEADLINE, message="re-added Service")
    assert a_values(srv, fqdn("gone")) == ip

    # Deleted while stopped, re-added after a restart: same again.
    srv.stop()
    f.unlink()
    srv2 = start_server(folder, state_home=state_home)
    assert rcode_of(srv2, fqdn("gone")) == dns.rcode.NXDOMAIN
    write_atomic(f, svc("gone"))
    wait_until(lambda: a_values(srv2, fqdn("gone")), RELOAD_DEADLINE, message="re-added Service")
    assert a_values(srv2, fqdn("gone")) == ip


# --- the tutorial's seed folders ----------------------------------------------------------

D = "default"


def _check_seed(srv: ServerProcess, folder: str) -> dict:
    """Query what the seed README lists for the folder; return the answers."""
    got: dict = {}

    def service_ip(name, ns=D):
        ips = srv.dig_short(fqdn(name, ns))
        assert len(ips) == 1 and in_net(ips[0], SERVICE_CIDR), (name, ips)
        got[fqdn(name, ns)] = ips
        return ips

    def srv_record(name, port):
        lines = srv.dig_short(name, "SRV")
        assert len(lines) == 1, (name, lines)
        assert lines[0].split()[2:] == [str(port), fqdn("webapp")], lines
        got[name] = lines

    if folder in ("01-clusterip", "02-nodeport", "07-case-tomcat-nodeport"):
        service_ip("webapp")
    elif folder == "03-loadbalancer":
        service_ip("webapp")
        srv_record("_http._tcp.webapp.default.svc.cluster.local.", 8080)
    elif folder == "04-externalname":
        pods = srv.dig_short(fqdn("myapp-svc01", "test01"))
        assert len(pods) == 1 and in_net(pods[0], POD_CIDR), pods
        got["svc01"] = pods
        cname = srv.dig_short(fqdn("myapp-svcname02", "test01"), "CNAME")
        assert cname == [fqdn("myapp-svc02", "test02")]
        target = srv.dig_short(fqdn("myapp-svc02", "test02"))
        assert len(target) == 1 and in_net(target[0], POD_CIDR)
        assert srv.dig_short(fqdn("myapp-svcname02", "test01")) == cname + target
        got["svc02"] = target
    elif folder == "05-multiport":
        service_ip("webapp")
        srv_record("_web._tcp.webapp.default.svc.cluster.local.", 8080)
        srv_record("_management._tcp.webapp.default.svc.cluster.local.", 8005)
    elif folder == "06-case-nginx-lb":
        service_ip("mynginx")
    else:
        raise AssertionError(f"no expectations for {folder}")
    return got


SEED_FOLDERS = ["01-clusterip", "02-nodeport", "03-loadbalancer", "04-externalname",
                "05-multiport", "06-case-nginx-lb", "07-case-tomcat-nodeport"]


@pytest.mark.parametrize("name", SEED_FOLDERS)
def test_seed_folder_served_and_stable_across_restart(start_server, state_home, name):
    folder = SEED / name
    first = start_server(folder, state_home=state_home)
    before = _check_seed(first, name)
    assert "ERROR" not in first.stderr, first.stderr
    first.stop()
    second = start_server(folder, state_home=state_home)
    assert _check_seed(second, name) == before
