"""A "container" for the system resolver tests: a shell script run as PID 1
of new network, mount and PID namespaces (``unshare``), where only ``lo``
exists, so nothing the script starts can reach or disturb the host.

When the script ends, or when ``unshare`` is killed (``--kill-child``) on a
time-out, the kernel kills every process left in the PID namespace; the
network and mount namespaces go away with their last process, and no mount
made inside shows outside (private propagation).

- :data:`UNSHARE` - the ``unshare`` command line.
- :func:`unavailable` - None when this machine can create the namespaces,
  else why not (a skip reason).
- :data:`PRELUDE` - what every script starts with: shell functions (``fail``,
  ``step``, ``background``, ``stop``, ``wait_dns``) and the network of a pod:
  ``lo`` up with 192.0.2.2/32 on it (glibc's getaddrinfo with AI_ADDRCONFIG
  returns no IPv4 unless some IPv4 address other than 127.0.0.1 exists;
  a pod has one on eth0), the addresses kept in ``$OUT/addresses``.
- :data:`BECOME_POD` - ``coredns-py resolv-conf --namespace default
  --nameserver 127.0.0.1`` bind-mounted over ``/etc/resolv.conf``, a
  minimal ``/etc/hosts``, ``/etc/nsswitch.conf`` when one is given, nscd's
  socket hidden; the resulting resolv.conf kept as step ``seen-resolv.conf``.
- :func:`run` - run a script and its steps in the namespaces; a :class:`Run`.
- :class:`Run` - what the script left in ``$OUT``: ``read(file)``,
  ``step(name)``, ``ok_step(name)``, ``debug()``.

The script sees ``$OUT``, ``$REPO``, ``$PY`` (this Python),
``$XDG_STATE_HOME``, ``$HOSTS_FILE``, ``$NSSWITCH_FILE`` (empty: the host's
stays), ``$STEP_TIMEOUT``, ``$READY_TIMEOUT`` and what the test adds.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional

REPO = Path(__file__).resolve().parents[2]

UNSHARE = ["unshare", "--net", "--mount", "--propagation", "private",
           "--pid", "--fork", "--kill-child", "--mount-proc"]
STEP_TIMEOUT = 10      # seconds for one command inside the namespace
TOTAL_TIMEOUT = 100    # the whole run, under pytest-timeout's 120 s; then unshare is killed
TOOLS = ("ip", "getent", "dig", "timeout", "mount")  # what the scripts run inside
HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"

PRELUDE = r"""
set -u
fail() { echo "$*" > "$OUT/setup-error"; exit 1; }
step() {  # step NAME COMMAND...: time-limited; stdout, stderr, status and milliseconds kept
  name=$1; shift
  start=$(date +%s%N)
  timeout -k 2 "$STEP_TIMEOUT" "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"
  echo $? > "$OUT/$name.rc"
  echo $(( ($(date +%s%N) - start) / 1000000 )) > "$OUT/$name.ms"
}
BACKGROUND=
background() {  # background NAME COMMAND...: output in $OUT/NAME.log, its PID in $LAST
  name=$1; shift
  "$@" > "$OUT/$name.log" 2>&1 &
  LAST=$!
  BACKGROUND="$LAST $name $BACKGROUND"
}
stop() {  # stop PID NAME: TERM, wait up to 5 s, KILL; the exit status in $OUT/NAME.rc
  kill -TERM "$1" 2>/dev/null
  i=0
  while kill -0 "$1" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  kill -KILL "$1" 2>/dev/null
  wait "$1"; echo $? > "$OUT/$2.rc"
}
stop_background() {  # at exit, the last one started first
  set -- $BACKGROUND
  while [ $# -ge 2 ]; do stop "$1" "$2"; shift 2; done
}
trap stop_background EXIT
wait_dns() {  # wait_dns SERVER NAME TYPE STATUS PID: until SERVER answers with STATUS
  deadline=$(( $(date +%s) + READY_TIMEOUT ))
  until timeout 5 dig +time=1 +tries=1 @"$1" "$2" "$3" 2>/dev/null | grep -q "status: $4"; do
    kill -0 "$5" 2>/dev/null || fail "the process for $1 exited before answering"
    [ "$(date +%s)" -lt "$deadline" ] || fail "$1 did not answer $2 within $READY_TIMEOUT s"
    sleep 0.2
  done
}

cd "$REPO" || fail "cannot cd to $REPO"
ip link set lo up || fail "ip link set lo up failed"
ip addr add 192.0.2.2/32 dev lo || fail "ip addr add 192.0.2.2/32 dev lo failed"
ip -o addr show > "$OUT/addresses"
"""

BECOME_POD = r"""
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
"""


def unavailable() -> Optional[str]:
    """None when this machine can create the namespaces, else why not."""
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


def host_nsswitch() -> Optional[str]:
    """The host's /etc/nsswitch.conf, None when it has none."""
    try:
        return Path("/etc/nsswitch.conf").read_text()
    except FileNotFoundError:
        return None


class Step(NamedTuple):
    rc: int
    out: str
    err: str
    ms: int


@dataclass
class Run:
    """What one script left in ``out`` (``state`` was its $XDG_STATE_HOME)."""
    out: Path
    state: Path
    proc: subprocess.CompletedProcess
    logs: tuple[str, ...] = ("server.log",)

    def read(self, name: str) -> str:
        """The file ``name`` in ``out``; "" when the script did not write it."""
        path = self.out / name
        return path.read_text(errors="replace") if path.exists() else ""

    def step(self, name: str) -> Step:
        rc = self.read(f"{name}.rc").strip()
        assert rc, f"step {name} did not run\n{self.debug()}"
        return Step(int(rc), self.read(f"{name}.out"), self.read(f"{name}.err"),
                    int(self.read(f"{name}.ms").strip() or 0))

    def ok_step(self, name: str) -> str:
        """The stdout of a step that must have exited 0."""
        rc, out, err, _ = self.step(name)
        assert rc == 0, f"{name}: exit {rc}\n{out}{err}\n{self.debug()}"
        return out

    def debug(self) -> str:
        logs = "".join(f"\n{name} (tail):\n{self.read(name)[-3000:]}" for name in self.logs)
        return (f"unshare exit {self.proc.returncode}\nsetup-error: {self.read('setup-error')}"
                f"\nscript stderr:\n{self.proc.stderr}{logs}")


def run(base: Path, script: str, steps: dict[str, list[str]], *, ready_timeout: float,
        nsswitch: Optional[str] = None, logs: tuple[str, ...] = ("server.log",),
        **env: object) -> Run:
    """Run ``script`` (which starts with :data:`PRELUDE`), then ``step NAME
    ARGV`` for each of ``steps``, as PID 1 of new namespaces, with ``$OUT``,
    the state folder and the files it mounts under ``base``.  ``nsswitch``:
    the text for /etc/nsswitch.conf (None: the host's stays); ``env``: more
    variables for the script.  Never raises for the script's failures: they
    are in the :class:`Run` (``proc.returncode``, ``read("setup-error")``)."""
    for tool in TOOLS:
        assert shutil.which(tool), f"{tool} is needed inside the namespace"
    out = base / "out"
    out.mkdir()
    state = base / "state"
    state.mkdir()
    hosts = base / "hosts"
    hosts.write_text(HOSTS)
    nsswitch_file = ""
    if nsswitch is not None:
        nsswitch_file = str(base / "nsswitch.conf")
        Path(nsswitch_file).write_text(nsswitch)
    full_env = dict(os.environ, OUT=str(out), REPO=str(REPO), PY=sys.executable,
                    XDG_STATE_HOME=str(state), HOSTS_FILE=str(hosts),
                    NSSWITCH_FILE=nsswitch_file, STEP_TIMEOUT=str(STEP_TIMEOUT),
                    READY_TIMEOUT=str(ready_timeout),
                    PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1",
                    **{k: str(v) for k, v in env.items()})
    full = script + "".join(f"step {name} {shlex.join(argv)}\n" for name, argv in steps.items())
    try:
        proc = subprocess.run(UNSHARE + ["sh", "-c", full], env=full_env, capture_output=True,
                              text=True, timeout=TOTAL_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        proc = subprocess.CompletedProcess(exc.cmd, -9, str(exc.stdout or ""),
                                           f"timed out after {TOTAL_TIMEOUT} s\n"
                                           f"{exc.stderr or ''}")
    return Run(out, state, proc, logs)
