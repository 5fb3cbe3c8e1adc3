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
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ZONES = REPO / "zones"

UNSHARE = ["unshare", "--net", "--mount", "--propagation", "private",
           "--pid", "--fork", "--kill-child", "--mount-proc"]
STEP_TIMEOUT = 10      # seconds for one command inside the namespace
READY_TIMEOUT = 10     # seconds for the server to answer its first query
TOTAL_TIMEOUT = 100    # the whole run, under pytest-timeout's 120 s; then unshare is killed

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

# Runs inside the namespaces.  $OUT gets one NAME.out/.err/.rc per step, the
# server's log and status, and setup-error when something before the steps fails.
SCRIPT = r"""
set -u
SRV=
fail() { echo "$*" > "$OUT/setup-error"; exit 1; }
stop_server() {
  [ -n "$SRV" ] || return 0
  kill -TERM "$SRV" 2>/dev/null
  i=0
  while kill -0 "$SRV" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  kill -KILL "$SRV" 2>/dev/null
  wait "$SRV"; echo $? > "$OUT/server.rc"
  SRV=
}
trap stop_server EXIT
step() {  # step NAME COMMAND...: run with a time limit, keep stdout, stderr and status
  name=$1; shift
  timeout -k 2 "$STEP_TIMEOUT" "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"
  echo $? > "$OUT/$name.rc"
}

cd "$REPO" || fail "cannot cd to $REPO"
ip link set lo up || fail "ip link set lo up failed"
ip addr add 192.0.2.2/32 dev lo || fail "ip addr add 192.0.2.2/32 dev lo failed"
ip -o addr show > "$OUT/addresses"

"$PY" -m coredns_py serve --manifests "$ZONES" --listen 127.0.0.1:53 > "$OUT/server.log" 2>&1 &
SRV=$!
deadline=$(( $(date +%s) + READY_TIMEOUT ))
until timeout 5 dig +time=1 +tries=1 @127.0.0.1 -p 53 cluster.local SOA 2>/dev/null \
        | grep -q "status: NOERROR"; do
  kill -0 "$SRV" 2>/dev/null || fail "the server exited before answering"
  [ "$(date +%s)" -lt "$deadline" ] || fail "the server did not answer within $READY_TIMEOUT s"
  sleep 0.2
done

step resolv-conf "$PY" -m coredns_py resolv-conf --namespace default --nameserver 127.0.0.1
[ "$(cat "$OUT/resolv-conf.rc")" = 0 ] || fail "coredns-py resolv-conf failed"
mount --bind "$OUT/resolv-conf.out" /etc/resolv.conf || fail "cannot bind-mount /etc/resolv.conf"
mount --bind "$HOSTS_FILE" /etc/hosts || fail "cannot bind-mount /etc/hosts"
if [ -n "$NSSWITCH_FILE" ]; then
  mount --bind "$NSSWITCH_FILE" /etc/nsswitch.conf || fail "cannot bind-mount /etc/nsswitch.conf"
fi
# A running nscd would answer getent from the host's namespace: hide its socket.
for d in /run/nscd /var/run/nscd; do
  if [ -d "$d" ]; then mount -t tmpfs none "$d" || fail "cannot hide $d"; fi
done
step seen-resolv.conf cat /etc/resolv.conf
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


def script(steps: dict[str, list[str]]) -> str:
    return SCRIPT + "".join(f"step {name} {shlex.join(argv)}\n" for name, argv in steps.items())


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


def can_create_namespaces() -> str | None:
    """None when this machine can run the test, else why not."""
    if os.geteuid() != 0:
        return "needs root to create network, mount and PID namespaces"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    try:
        probe = subprocess.run(UNSHARE + ["true"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "unshare did not finish within 20 s"
    if probe.returncode != 0:
        first = (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[0]
        return f"cannot create namespaces: {' '.join(UNSHARE)} true: {first}"
    return None


class Run:
    """The results of one namespace run."""

    def __init__(self, out: Path, state: Path, proc: subprocess.CompletedProcess,
                 before: dict, after: dict, nsswitch: str | None):
        self.out, self.state, self.proc, self.nsswitch = out, state, proc, nsswitch
        self.before, self.after = before, after

    def read(self, name: str, suffix: str = "out") -> str:
        path = self.out / (f"{name}.{suffix}" if suffix else name)
        return path.read_text(errors="replace") if path.exists() else ""

    def step(self, name: str) -> tuple[int, str, str]:
        rc = self.read(name, "rc").strip()
        assert rc, f"step {name} did not run\n{self.debug()}"
        return int(rc), self.read(name), self.read(name, "err")

    def debug(self) -> str:
        return (f"unshare exit {self.proc.returncode}\nsetup-error: {self.read('setup-error', '')}"
                f"\nscript stderr:\n{self.proc.stderr}\nserver log:\n{self.read('server', 'log')}")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    reason = can_create_namespaces()
    if reason:
        pytest.skip(reason)
    for tool in ("ip", "getent", "dig", "timeout", "mount"):
        assert shutil.which(tool), f"{tool} is needed inside the namespace"

    base = tmp_path_factory.mktemp("container")
    out = base / "out"
    out.mkdir()
    state = base / "state"
    state.mkdir()
    hosts = base / "hosts"
    hosts.write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    try:
        current = Path("/etc/nsswitch.conf").read_text()
    except FileNotFoundError:
        current = None
    replacement = nsswitch_replacement(current)
    nsswitch = ""
    if replacement is not None:
        nsswitch = str(base / "nsswitch.conf")
        Path(nsswitch).write_text(replacement)

    before = host_view()
    env = dict(os.environ, OUT=str(out), REPO=str(REPO), ZONES=str(ZONES), PY=sys.executable,
               XDG_STATE_HOME=str(state), HOSTS_FILE=str(hosts), NSSWITCH_FILE=nsswitch,
               STEP_TIMEOUT=str(STEP_TIMEOUT), READY_TIMEOUT=str(READY_TIMEOUT),
               PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    # The script runs as PID 1 of the new PID namespace: when it ends, or when
    # unshare is killed (--kill-child) on a timeout, the kernel kills the server
    # and everything else in the namespace; the network and mount namespaces
    # go away with their last process.
    try:
        proc = subprocess.run(UNSHARE + ["sh", "-c", script(build_steps())], env=env,
                              capture_output=True, text=True, timeout=TOTAL_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        proc = subprocess.CompletedProcess(exc.cmd, -9, str(exc.stdout or ""),
                                           f"timed out after {TOTAL_TIMEOUT} s\n"
                                           f"{exc.stderr or ''}")
    return Run(out, state, proc, before, host_view(), replacement)


@pytest.fixture(scope="module")
def ok_run(run) -> Run:
    assert run.proc.returncode == 0 and not run.read("setup-error", ""), run.debug()
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
    rc, conf, _ = ok_run.step("seen-resolv.conf")
    assert rc == 0
    assert conf == ("search default.svc.cluster.local svc.cluster.local cluster.local\n"
                    "nameserver 127.0.0.1\n"
                    "options ndots:5\n")
    rc, hosts_line, _ = ok_run.step("seen-nsswitch")
    assert rc == 0 and "dns" in hosts_line.split()
    if ok_run.nsswitch is not None:  # the host's hosts: line was replaced
        assert hosts_line == "hosts: files dns\n"
    # only lo: nothing can leave the namespace
    interfaces = {line.split()[1] for line in ok_run.read("addresses", "").splitlines()}
    assert interfaces == {"lo"}


@pytest.mark.parametrize("tool", TOOLS)
@pytest.mark.parametrize("name", list(NAMES))
def test_system_resolver_resolves(ok_run, expected, name, tool):
    fqdn = NAMES[name][0]
    rc, out, err = ok_run.step(step_name(tool, name))
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
    rc, out, err = ok_run.step(step_name("dig", fqdn))
    assert rc == 0, err
    assert sorted(out.split()) == expected[fqdn]


def test_namespaces_are_kept_apart(ok_run, expected):
    # webapp (default) and webapp.nodeport are different Services
    assert expected["webapp.default.svc.cluster.local"] != \
        expected["webapp.nodeport.svc.cluster.local"]


@pytest.mark.parametrize("name", ["nosuchsvc", "webapp.nosuchns"])
def test_unknown_names_are_not_found(ok_run, name):
    rc, out, _ = ok_run.step(f"getent-hosts--{name}")
    assert rc == 2 and out == ""  # 2: not found (124 would be the time limit)


def test_server_stopped_cleanly(ok_run):
    assert ok_run.read("server", "rc").strip() == "0", ok_run.read("server", "log")
