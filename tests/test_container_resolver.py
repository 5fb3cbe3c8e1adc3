"""The system resolver of a "container" whose DNS server is coredns-py.

The test builds what a container runtime builds for a pod with
``dnsPolicy: ClusterFirst``, with nothing but the kernel and util-linux:

* ``unshare --net --mount --propagation private --pid --fork --kill-child
  --mount-proc``: a new network namespace (only ``lo``), a private mount
  namespace (no mount made inside reaches the host) and a PID namespace, so
  that every process of the test dies with it, whatever happens;
* ``coredns-py serve --manifests zones --listen 127.0.0.1:53`` in the
  background inside it;
* ``coredns-py resolv-conf --namespace default --nameserver 127.0.0.1``
  bind-mounted over ``/etc/resolv.conf`` (a minimal ``/etc/hosts`` too, and
  ``/etc/nsswitch.conf`` when the host's ``hosts:`` line would not go to DNS
  directly);

and then asks glibc, as any program does: ``getent hosts``, ``getent
ahostsv4`` and Python's ``socket.getaddrinfo``, for short names that only
the search list completes (``webapp``, ``myapp-svc01.test01``,
``webapp.nodeport``).  The addresses must be those ``coredns-py get``
prints for the Services (or, for the headless one, its endpoints) and those
``dig`` gets from the server directly.

Only loopback traffic: the namespace has no interface but ``lo``.  A pod has
an address on eth0; glibc's getaddrinfo with AI_ADDRCONFIG (which ``getent
ahostsv4`` uses) returns nothing for IPv4 unless some IPv4 address other than
127.0.0.1 is configured, so 192.0.2.2/32 (TEST-NET-1) is added to ``lo`` to
stand in for it.

Skipped only when namespaces cannot be created (not root, or unshare fails).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest

from helpers import netns

REPO = Path(__file__).resolve().parent.parent
ZONES = REPO / "zones"

READY_TIMEOUT = 10     # seconds for the server to answer its first query

# name asked -> (FQDN the search list must complete it to, how to find the expected IPs)
SERVICE = "service"     # the Service's ClusterIP (coredns-py get services)
ENDPOINTS = "endpoints"  # a headless Service: its endpoints (coredns-py get endpoints)
NAMES = {
    "webapp": ("webapp.default.svc.cluster.local", SERVICE),
    "myapp-svc01.test01": ("myapp-svc01.test01.svc.cluster.local", ENDPOINTS),
    "webapp.nodeport": ("webapp.nodeport.svc.cluster.local", SERVICE),
    "webapp.default.svc.cluster.local": ("webapp.default.svc.cluster.local", SERVICE),
}
TOOLS = ("getent-hosts", "getent-ahostsv4", "getaddrinfo")

GETADDRINFO = ("import json, socket, sys; "
               "r = socket.getaddrinfo(sys.argv[1], 80, socket.AF_INET, 0, 0, "
               "socket.AI_CANONNAME); "
               "print(json.dumps({'addrs': sorted({a[4][0] for a in r}), 'canonname': r[0][3]}))")

# Runs inside the namespaces (see helpers/netns.py): $OUT gets one
# NAME.out/.err/.rc per step, the server's log and status, and setup-error
# when something before the steps fails.
SCRIPT = netns.PRELUDE + r"""
background server "$PY" -m coredns_py serve --manifests "$ZONES" --listen 127.0.0.1:53
wait_dns 127.0.0.1 cluster.local SOA NOERROR "$LAST"
""" + netns.BECOME_POD + r"""
step seen-nsswitch grep -E '^[[:space:]]*hosts:' /etc/nsswitch.conf
"""


# --- what the namespace sees -----------------------------------------------------------------


def nsswitch_replacement(text: str | None) -> str | None:
    """A nsswitch.conf whose ``hosts:`` line is ``files dns``, or None when the
    given one already asks only files and dns (any order, dns included).

    Other sources (``resolve``, ``mdns4_minimal [NOTFOUND=return]``, which
    claims every *.local name, ``myhostname``) would answer before DNS or
    instead of it; a missing file means glibc's default, which is fine but is
    made explicit too."""
    if text is None:
        return "hosts: files dns\n"
    lines = text.splitlines()
    hosts = [i for i, line in enumerate(lines) if re.match(r"\s*hosts\s*:", line)]
    if hosts:
        sources = re.sub(r"\[[^]]*\]", " ", lines[hosts[-1]].split(":", 1)[1].split("#")[0]).split()
        if "dns" in sources and set(sources) <= {"files", "dns"}:
            return None
        for i in hosts:
            lines[i] = "hosts: files dns"
    else:
        lines.append("hosts: files dns")
    return "\n".join(lines) + "\n"


def step_name(tool: str, name: str) -> str:
    return f"{tool}--{name}"


def build_steps() -> dict[str, list[str]]:
    steps: dict[str, list[str]] = {}
    for name in NAMES:
        steps[step_name("getent-hosts", name)] = ["getent", "hosts", name]
        steps[step_name("getent-ahostsv4", name)] = ["getent", "ahostsv4", name]
        steps[step_name("getaddrinfo", name)] = [sys.executable, "-c", GETADDRINFO, name]
    for fqdn in {f for f, _ in NAMES.values()}:
        steps[step_name("dig", fqdn)] = ["dig", "+short", "+time=2", "+tries=2",
                                         "@127.0.0.1", fqdn, "A"]
    # Names the cluster does not have fail, and fail quickly (NXDOMAIN, not a timeout).
    steps["getent-hosts--nosuchsvc"] = ["getent", "hosts", "nosuchsvc"]
    steps["getent-hosts--webapp.nosuchns"] = ["getent", "hosts", "webapp.nosuchns"]
    return steps


WATCHED = ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf")


def host_view() -> dict:
    """The host's view of the files the namespace replaces: content, inode,
    mtime, and the mounts on them (mount point is field 5 of mountinfo)."""
    view = {}
    for path in WATCHED:
        p = Path(path)
        try:
            st = p.stat()
            view[path] = (hashlib.sha256(p.read_bytes()).hexdigest(), st.st_ino, st.st_dev,
                          st.st_mtime_ns)
        except FileNotFoundError:
            view[path] = ("missing",)
    mounts = [line.split() for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    view["mounts"] = sorted(" ".join(m) for m in mounts if len(m) > 4 and m[4] in WATCHED)
    return view


@dataclass
class Run(netns.Run):
    """One namespace run, with the host's view of the files it replaces
    before and after it, and the nsswitch.conf it was given (None: the host's)."""
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    nsswitch: Optional[str] = None


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    reason = netns.unavailable()
    if reason:
        pytest.skip(reason)
    replacement = nsswitch_replacement(netns.host_nsswitch())
    before = host_view()
    result = netns.run(tmp_path_factory.mktemp("container"), SCRIPT, build_steps(),
                       ready_timeout=READY_TIMEOUT, nsswitch=replacement, ZONES=ZONES)
    return Run(**vars(result), before=before, after=host_view(), nsswitch=replacement)


@pytest.fixture(scope="module")
def ok_run(run) -> Run:
    assert run.proc.returncode == 0 and not run.read("setup-error"), run.debug()
    return run


# --- what coredns-py says the names are ---------------------------------------------------------


def cli(state: Path, *args: str) -> str:
    res = subprocess.run([sys.executable, "-m", "coredns_py", *args], cwd=REPO,
                         env=dict(os.environ, XDG_STATE_HOME=str(state)),
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    return res.stdout


def table(text: str) -> list[dict]:
    """Rows of a ``get`` table; columns are separated by two or more spaces."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    header = re.split(r"\s{2,}", lines[0])
    rows = [re.split(r"\s{2,}", line) for line in lines[1:]]
    assert all(len(row) == len(header) for row in rows), text
    return [dict(zip(header, row)) for row in rows]


@pytest.fixture(scope="module")
def expected(ok_run) -> dict[str, list[str]]:
    """FQDN -> IPv4 addresses, from ``coredns-py get`` with the server's state."""
    services = table(cli(ok_run.state, "get", "services", "-A", "--manifests", str(ZONES)))
    endpoints = table(cli(ok_run.state, "get", "endpoints", "-A", "--manifests", str(ZONES)))
    result = {}
    for fqdn, how in NAMES.values():
        name, namespace = fqdn.split(".")[:2]
        rows = services if how == SERVICE else endpoints
        row, = [r for r in rows if r["NAMESPACE"] == namespace and r["NAME"] == name]
        if how == SERVICE:
            ips = [ip for ip in row["CLUSTER-IP"].split(",") if ":" not in ip]
        else:
            ips = sorted({ep.rsplit(":", 1)[0] for ep in row["ENDPOINTS"].split(",")
                          if not ep.startswith("[")})
        assert ips and all(re.fullmatch(r"\d+\.\d+\.\d+\.\d+", ip) for ip in ips), row
        result[fqdn] = sorted(ips)
    return result


# --- the tests ----------------------------------------------------------------------------------


def test_nsswitch_replacement():
    assert nsswitch_replacement("passwd: files\nhosts:          files dns\n") is None
    assert nsswitch_replacement("hosts: dns files\n") is None
    assert nsswitch_replacement("hosts: files dns [!UNAVAIL=return]\n") is None
    fixed = "hosts: files dns\n"
    assert nsswitch_replacement("passwd: files\nhosts: files\n") == "passwd: files\n" + fixed
    assert nsswitch_replacement("hosts: files mdns4_minimal [NOTFOUND=return] dns\n") == fixed
    assert nsswitch_replacement("hosts: resolve [!UNAVAIL=return] files dns\n") == fixed
    assert nsswitch_replacement("passwd: files\n") == "passwd: files\nhosts: files dns\n"
    assert nsswitch_replacement(None) == "hosts: files dns\n"


def test_host_files_untouched(run):
    # same content and inode, and no mount made inside the namespace shows outside it
    assert run.after == run.before


def test_namespace_setup(ok_run):
    rc, conf, _, _ = ok_run.step("seen-resolv.conf")
    assert rc == 0
    assert conf == ("search default.svc.cluster.local svc.cluster.local cluster.local\n"
                    "nameserver 127.0.0.1\n"
                    "options ndots:5\n")
    rc, hosts_line, _, _ = ok_run.step("seen-nsswitch")
    assert rc == 0 and "dns" in hosts_line.split()
    if ok_run.nsswitch is not None:  # the host's hosts: line was replaced
        assert hosts_line == "hosts: files dns\n"
    # only lo: nothing can leave the namespace
    interfaces = {line.split()[1] for line in ok_run.read("addresses").splitlines()}
    assert interfaces == {"lo"}


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("name", list(NAMES))
def test_system_resolver_resolves(ok_run, expected, name, tool):
    fqdn = NAMES[name][0]
    rc, out, err, _ = ok_run.step(step_name(tool, name))
    assert rc == 0, f"{tool} {name}: exit {rc}\n{out}{err}\n{ok_run.debug()}"
    if tool == "getent-hosts":
        # "IP  canonical-name" per address
        rows = [line.split() for line in out.splitlines() if line.strip()]
        assert sorted(r[0] for r in rows) == expected[fqdn]
        assert {r[1] for r in rows} == {fqdn}
    elif tool == "getent-ahostsv4":
        # "IP  STREAM canonical-name", then DGRAM and RAW lines for the same IP
        rows = [line.split() for line in out.splitlines() if line.strip()]
        assert sorted({r[0] for r in rows}) == expected[fqdn]
        assert rows[0][2] == fqdn
    else:
        got = json.loads(out)
        assert got == {"addrs": expected[fqdn], "canonname": fqdn}


@pytest.mark.parametrize("fqdn", sorted({f for f, _ in NAMES.values()}))
def test_dig_agrees(ok_run, expected, fqdn):
    rc, out, err, _ = ok_run.step(step_name("dig", fqdn))
    assert rc == 0, err
    assert sorted(out.split()) == expected[fqdn]


def test_namespaces_are_kept_apart(ok_run, expected):
    # webapp (default) and webapp.nodeport are different Services
    assert expected["webapp.default.svc.cluster.local"] != \
        expected["webapp.nodeport.svc.cluster.local"]


@pytest.mark.parametrize("name", ["nosuchsvc", "webapp.nosuchns"])
def test_unknown_names_are_not_found(ok_run, name):
    rc, out, _, _ = ok_run.step(f"getent-hosts--{name}")
    assert rc == 2 and out == ""  # 2: not found (124 would be the time limit)


def test_server_stopped_cleanly(ok_run):
    assert ok_run.read("server.rc").strip() == "0", ok_run.read("server.log")
