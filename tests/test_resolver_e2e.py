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
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ZONES = REPO / "zones"
FORWARD = Path(__file__).resolve().parent / "fixtures" / "forward"
DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"

UNSHARE = ["unshare", "--net", "--mount", "--propagation", "private",
           "--pid", "--fork", "--kill-child", "--mount-proc"]
STEP_TIMEOUT = 10      # seconds for one command inside the namespace
READY_TIMEOUT = 15     # seconds for dnsmasq / the server to answer
TOTAL_TIMEOUT = 100    # the whole run, under pytest-timeout's 120 s
FAST_MS = 2000         # a name through the search path, failover included

PYPI = "203.0.113.10"
BIG = sorted(f"198.51.100.{i}" for i in range(1, 151))

GETADDRINFO = ("import json, socket, sys; "
               "r = socket.getaddrinfo(sys.argv[1], 80, socket.AF_INET, socket.SOCK_STREAM, 0, "
               "socket.AI_CANONNAME); "
               "print(json.dumps({'addrs': sorted({a[4][0] for a in r}), 'canonname': r[0][3]}))")

SCRIPT = r"""
set -u
SRV=; DQ=
fail() { echo "$*" > "$OUT/setup-error"; exit 1; }
stop() {  # stop PID NAME: TERM, wait up to 5 s, KILL; keep the exit status
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null
  i=0
  while kill -0 "$1" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  kill -KILL "$1" 2>/dev/null
  wait "$1"; echo $? > "$OUT/$2.rc"
}
trap 'stop "$SRV" server; stop "$DQ" dnsmasq' EXIT
step() {  # step NAME COMMAND...: time-limited; stdout, stderr, status and milliseconds kept
  name=$1; shift
  start=$(date +%s%N)
  timeout -k 2 "$STEP_TIMEOUT" "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"
  echo $? > "$OUT/$name.rc"
  echo $(( ($(date +%s%N) - start) / 1000000 )) > "$OUT/$name.ms"
}
wait_dns() {  # wait_dns SERVER NAME TYPE: until it answers anything
  deadline=$(( $(date +%s) + READY_TIMEOUT ))
  until timeout 5 dig +time=1 +tries=1 @"$1" "$2" "$3" 2>/dev/null | grep -q "status: $4"; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "$1 did not answer $2 within $READY_TIMEOUT s"
    sleep 0.2
  done
}

cd "$REPO" || fail "cannot cd to $REPO"
ip link set lo up || fail "ip link set lo up failed"
# A pod has an address on eth0; glibc's AI_ADDRCONFIG wants some non-loopback IPv4.
ip addr add 192.0.2.2/32 dev lo || fail "ip addr add failed"
ip -o addr show > "$OUT/addresses"

# The host's resolver configuration, as the server finds it at start.
mount --bind "$HOST_RESOLV" /etc/resolv.conf || fail "cannot bind-mount the host resolv.conf"

"$DNSMASQ" --no-daemon --conf-file=/dev/null --pid-file= --user=root --port=53 \
  --listen-address=127.0.0.2 --bind-interfaces --no-resolv --no-hosts \
  --addn-hosts="$UPSTREAM_HOSTS" --local=/example.test/ --local=/org/ --local-ttl=300 \
  --log-queries --log-facility=- > "$OUT/dnsmasq.log" 2>&1 &
DQ=$!
wait_dns 127.0.0.2 ready.example.test A NXDOMAIN

"$PY" -m coredns_py serve --manifests "$MANIFESTS" --listen 127.0.0.1:53 > "$OUT/server.log" 2>&1 &
SRV=$!
wait_dns 127.0.0.1 cluster.local SOA NOERROR
kill -0 "$SRV" 2>/dev/null || fail "the server exited"

step resolv-conf "$PY" -m coredns_py resolv-conf --namespace default --nameserver 127.0.0.1
[ "$(cat "$OUT/resolv-conf.rc")" = 0 ] || fail "coredns-py resolv-conf failed"
mount --bind "$OUT/resolv-conf.out" /etc/resolv.conf || fail "cannot bind-mount /etc/resolv.conf"
mount --bind "$HOSTS_FILE" /etc/hosts || fail "cannot bind-mount /etc/hosts"
mount --bind "$NSSWITCH_FILE" /etc/nsswitch.conf || fail "cannot bind-mount /etc/nsswitch.conf"
# A running nscd would answer getent from the host's namespace: hide its socket.
for d in /run/nscd /var/run/nscd; do
  if [ -d "$d" ]; then mount -t tmpfs none "$d" || fail "cannot hide $d"; fi
done
step seen-resolv.conf cat /etc/resolv.conf
"""


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


def can_create_namespaces() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network, mount and PID namespaces"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    if not (shutil.which("dnsmasq") or os.access(DNSMASQ, os.X_OK)):
        return "dnsmasq is not installed (tests/run installs dnsmasq-base)"
    try:
        probe = subprocess.run(UNSHARE + ["true"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "unshare did not finish within 20 s"
    if probe.returncode != 0:
        first = (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[0]
        return f"cannot create namespaces: {first}"
    return None


class Run:
    def __init__(self, out: Path, proc: subprocess.CompletedProcess):
        self.out, self.proc = out, proc

    def read(self, name: str) -> str:
        path = self.out / name
        return path.read_text(errors="replace") if path.exists() else ""

    def step(self, name: str) -> tuple[int, str, int]:
        rc = self.read(f"{name}.rc").strip()
        assert rc, f"step {name} did not run\n{self.debug()}"
        return int(rc), self.read(f"{name}.out"), int(self.read(f"{name}.ms").strip() or 0)

    def ok_step(self, name: str) -> str:
        rc, out, _ = self.step(name)
        assert rc == 0, f"{name}: exit {rc}\n{out}{self.read(name + '.err')}\n{self.debug()}"
        return out

    def debug(self) -> str:
        return (f"unshare exit {self.proc.returncode}\nsetup-error: {self.read('setup-error')}"
                f"\nscript stderr:\n{self.proc.stderr}\nserver log:\n{self.read('server.log')}"
                f"\ndnsmasq log (tail):\n{self.read('dnsmasq.log')[-3000:]}")

    def upstream_queries(self) -> list[tuple[str, str]]:
        return [(m.group(1), m.group(2).lower()) for m in
                re.finditer(r"query\[(\w+)\] (\S+) from ", self.read("dnsmasq.log"))]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    reason = can_create_namespaces()
    if reason:
        pytest.skip(reason)
    for tool in ("ip", "getent", "dig", "timeout", "mount"):
        assert shutil.which(tool), f"{tool} is needed inside the namespace"
    base = tmp_path_factory.mktemp("resolver-e2e")
    out = base / "out"
    out.mkdir()
    state = base / "state"
    state.mkdir()
    manifests = base / "manifests"
    shutil.copytree(ZONES, manifests)
    shutil.copy(FORWARD / "e2e-externalname.yaml", manifests / "pypi-mirror.yaml")
    host_resolv = base / "host-resolv.conf"
    host_resolv.write_text("# the host's resolver, as the server reads it at start\n"
                           "nameserver 127.0.0.1\nnameserver 127.0.0.3\nnameserver 127.0.0.2\n")
    hosts = base / "hosts"
    hosts.write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    nsswitch = base / "nsswitch.conf"
    try:
        current = Path("/etc/nsswitch.conf").read_text()
    except FileNotFoundError:
        current = None
    nsswitch.write_text(nsswitch_with_dns(current))
    env = dict(os.environ, OUT=str(out), REPO=str(REPO), MANIFESTS=str(manifests),
               PY=sys.executable, XDG_STATE_HOME=str(state), HOSTS_FILE=str(hosts),
               NSSWITCH_FILE=str(nsswitch), HOST_RESOLV=str(host_resolv), DNSMASQ=DNSMASQ,
               UPSTREAM_HOSTS=str(FORWARD / "upstream-hosts"),
               STEP_TIMEOUT=str(STEP_TIMEOUT), READY_TIMEOUT=str(READY_TIMEOUT),
               PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    script = SCRIPT + "".join(f"step {name} {shlex.join(argv)}\n" for name, argv in STEPS.items())
    try:
        proc = subprocess.run(UNSHARE + ["sh", "-c", script], env=env, capture_output=True,
                              text=True, timeout=TOTAL_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        proc = subprocess.CompletedProcess(exc.cmd, -9, str(exc.stdout or ""),
                                           f"timed out after {TOTAL_TIMEOUT} s\n{exc.stderr or ''}")
    result = Run(out, proc)
    assert proc.returncode == 0 and not result.read("setup-error"), result.debug()
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
    _, _, ms = run.step("getent-hosts--pypi.org")
    assert ms < FAST_MS, ms
    out = run.ok_step("dig-full--pypi.org")
    flags = re.search(r";; flags: ([a-z ]*);", out).group(1).split()
    assert "status: NOERROR" in out and {"qr", "rd", "ra"} <= set(flags), out  # dnsmasq's RA


def test_search_path_expansions_never_reach_the_upstream(run):
    seen = run.upstream_queries()
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
    rc, out, ms = run.step("getent-hosts--nosuch.example.test")
    assert rc == 2 and out == ""  # not found (124 would be the time limit)
    assert ms < FAST_MS, ms


def test_server_and_upstream_stopped_cleanly(run):
    assert run.read("server.rc").strip() == "0", run.read("server.log")
