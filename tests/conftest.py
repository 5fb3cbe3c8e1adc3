"""Shared helpers for tests that run coredns-py as a real process.

Everything here talks to the server the way a user does: ``python -m
coredns_py`` in a subprocess, real UDP/TCP sockets on loopback, and real
clients (``dig`` and dnspython).  Every wait is bounded and polls for a
condition instead of sleeping a fixed time.

Helpers (import them with ``from conftest import ...``):

- :func:`free_port` - a port free for both UDP and TCP on a loopback address
  (it lives in helpers/ports.py).
- :func:`wait_until` - poll a function until it returns something truthy.
- :func:`write_atomic` - replace a file's content in one rename.
- :class:`ServerProcess` - one ``serve`` process: ``start()`` (free ports,
  retried on a bind race, waits for a non-SERVFAIL answer), ``query(name,
  type, tcp=False, addr=None, payload=None) -> dns.message.Message``,
  ``rrset_values(name, type)``, ``dig(*args)``, ``dig_short(*args)``,
  ``stderr``, ``wait_stderr(regex)``, ``signal(sig)``, ``restart()`` (same
  ports and state), ``stop() -> exit code``, ``alive()``, ``addresses``.
- :func:`run_cli` - run any other ``coredns-py`` command to completion.
- :func:`hermetic_config` - the bundled config with forwarding off.
- :func:`corefile_server` - a started server configured by a Corefile's text.

Fixtures:

- ``state_home`` - a fresh directory to use as ``$XDG_STATE_HOME``.
- ``start_server`` - factory: ``start_server(manifests, state_home=..., hosts=...,
  args=..., env=..., hermetic=True, http=False, lameduck=0)`` returns a started, ready :class:`ServerProcess`; every
  server it started is stopped when the test ends.
- ``zones_server`` - one server on the bundled ``zones/`` (no ``--manifests``:
  the default) for the whole module.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from helpers import process
from helpers.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
ZONES = ROOT / "zones"
DEFAULT_CONFIG = ROOT / "config" / "coredns_py.yaml"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "process"
# The tutorial's manifests, copied unchanged from the project's shared
# seed/manifests (zones/ holds them edited into one cluster): the suite needs
# nothing outside the repository.
SEED = Path(__file__).resolve().parent / "fixtures" / "seed"
DIG = "/usr/bin/dig"

# Bounds.  Generous on purpose: a loaded 2-core machine can take a while to
# start Python, import dnspython/watchdog and do the first load.
START_TIMEOUT = 20.0   # from spawn to the first non-SERVFAIL answer
STOP_TIMEOUT = 10.0    # SIGTERM to exit, then SIGKILL
QUERY_TIMEOUT = 3.0    # one dnspython query
QUERY_TRIES = 3        # UDP/TCP attempts per query before giving up
BIND_ATTEMPTS = 5      # restarts with new ports when the server could not bind


def ipv6_loopback_available() -> bool:
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    except OSError:
        return False
    try:
        s.bind(("::1", 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.05,
               message: str = "condition") -> object:
    """Call ``predicate`` until it returns something truthy; return that value.

    Exceptions from ``predicate`` count as "not yet".  Raises AssertionError
    (with the last exception, if any) when ``timeout`` seconds pass.
    """
    deadline = time.monotonic() + timeout
    last_exc: Optional[BaseException] = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # not yet
            last_exc = exc
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {message}{extra}")
        time.sleep(interval)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a hidden temp file and one rename,
    so the server can never read a half-written file (the temp file's name
    starts with a dot, which the server ignores)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def child_env(state_home: Optional[Path], extra: Optional[dict] = None) -> dict:
    """The environment for a coredns-py child: own state dir, unbuffered, the
    project importable (as when run from a checkout)."""
    env = dict(os.environ)
    if state_home is not None:
        env["XDG_STATE_HOME"] = str(state_home)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    if extra:
        env.update(extra)
    return env


def run_cli(*args: str, state_home: Optional[Path] = None, env: Optional[dict] = None,
            timeout: float = 60.0, cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    """``python -m coredns_py ARGS`` to completion; text stdout/stderr captured."""
    return subprocess.run([sys.executable, "-m", "coredns_py", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          cwd=str(cwd or ROOT), env=child_env(state_home, env),
                          stdin=subprocess.DEVNULL)


def hermetic_config(directory: Path) -> Path:
    """The bundled config/coredns_py.yaml with forwarding turned off.

    The bundled config forwards names outside the cluster zones to the
    host's resolver (/etc/resolv.conf).  Tests must only talk to 127.0.0.1,
    so by default every :class:`ServerProcess` runs with this copy, where
    such names are REFUSED.  Everything else is the bundled config.
    """
    import yaml  # PyYAML: a dependency of the project
    data = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8")) or {}
    if "upstream" in data:
        data["upstream"] = []
    path = Path(directory) / "coredns_py.hermetic.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


_SERVE_OPTIONS: Optional[str] = None


def serve_supports(option: str) -> bool:
    """Whether ``coredns-py serve`` has ``option`` (from its --help, read once)."""
    global _SERVE_OPTIONS
    if _SERVE_OPTIONS is None:
        res = run_cli("serve", "--help", timeout=60)
        _SERVE_OPTIONS = res.stdout
    return re.search(rf"(^|\s){re.escape(option)}\b", _SERVE_OPTIONS) is not None


def _has_option(args: Sequence[str], option: str) -> bool:
    return any(a == option or a.startswith(option + "=") for a in args)


def format_listen(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ServerFailed(AssertionError):
    """The server process exited or never became ready."""


class ServerProcess:
    """One ``coredns-py serve`` process on free loopback ports.

    ``manifests=None`` omits ``--manifests`` (the default, zones/).
    ``hosts`` are the addresses to listen on (each gets its own free port,
    UDP and TCP); ``args`` are extra command-line arguments (``--config``,
    ``--log-level`` ...).  Unless ``args`` has a ``--config`` or
    ``hermetic=False`` is given, the server runs with :func:`hermetic_config`
    (the bundled config without forwarding), so no query leaves loopback.
    The HTTP status listener is off (its default port 9153 is fixed, so two
    servers would fight over it) unless ``http=True``, which gives it a free
    port (:attr:`http_address`).  ``lameduck`` (default 0) is passed as
    ``--lameduck`` so that stopping does not keep answering for 5 s.
    stdout and stderr go to files, so a chatty server can never block on a
    full pipe; read them with :attr:`stderr`.
    """

    def __init__(self, manifests: Optional[Path] = ZONES, *, state_home: Path,
                 hosts: Sequence[str] = ("127.0.0.1",), args: Iterable[str] = (),
                 env: Optional[dict] = None, logdir: Optional[Path] = None,
                 hermetic: bool = True, http: bool = False, lameduck: float = 0.0):
        self.manifests = Path(manifests) if manifests is not None else None
        self.state_home = Path(state_home)
        self.hosts = list(hosts)
        self.args = [str(a) for a in args]
        self.extra_env = env or {}
        self.logdir = Path(logdir or tempfile.mkdtemp(prefix="coredns-py-log-"))
        self.logdir.mkdir(parents=True, exist_ok=True)
        if hermetic and not _has_option(self.args, "--config"):
            self.args += ["--config", str(hermetic_config(self.logdir))]
        self.http = http
        self.lameduck = lameduck
        self.http_address: Optional[tuple[str, int]] = None
        if not http and not _has_option(self.args, "--http") and serve_supports("--http"):
            self.args += ["--http", ""]
        if not _has_option(self.args, "--lameduck") and serve_supports("--lameduck"):
            self.args += ["--lameduck", str(lameduck)]
        self.proc: Optional[subprocess.Popen] = None
        self.addresses: list[tuple[str, int]] = []
        self.returncode: Optional[int] = None
        self._runs = 0
        self._stderr_path: Optional[Path] = None
        self._stdout_path: Optional[Path] = None
        self.started_in: Optional[float] = None

    # --- life cycle -----------------------------------------------------------

    @property
    def host(self) -> str:
        return self.addresses[0][0]

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "coredns_py", "serve"]
        if self.manifests is not None:
            cmd += ["--manifests", str(self.manifests)]
        for host, port in self.addresses:
            cmd += ["--listen", format_listen(host, port)]
        if self.http_address is not None:
            cmd += ["--http", format_listen(*self.http_address)]
        return cmd + self.args

    def _spawn(self) -> None:
        self._runs += 1
        self._stderr_path = self.logdir / f"stderr-{self._runs}.log"
        self._stdout_path = self.logdir / f"stdout-{self._runs}.log"
        with open(self._stderr_path, "wb") as err, open(self._stdout_path, "wb") as out:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, cwd=str(ROOT),
                                         env=child_env(self.state_home, self.extra_env))
        self.returncode = None

    def start(self, timeout: float = START_TIMEOUT) -> "ServerProcess":
        """Spawn on free ports and wait until it answers; retry on a port race."""
        started = time.monotonic()
        for attempt in range(BIND_ATTEMPTS):
            self.addresses = [(h, free_port(h)) for h in self.hosts]
            if self.http:
                self.http_address = ("127.0.0.1", free_port())
            self._spawn()
            try:
                self.wait_ready(timeout)
                self.started_in = time.monotonic() - started
                return self
            except ServerFailed:
                rc = self.proc.poll()
                if rc is not None and "address already in use" in self.stderr \
                        and attempt < BIND_ATTEMPTS - 1:
                    continue  # somebody took the port between free_port() and bind
                self.stop()
                raise
        raise AssertionError("unreachable")

    def restart(self, timeout: float = START_TIMEOUT) -> "ServerProcess":
        """Stop (if running) and start a new process on the same addresses,
        with the same state directory.  A server that frees its ports on exit
        must be able to bind them again at once."""
        self.stop()
        self._spawn()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Poll until a query gets an rcode other than SERVFAIL (the server
        answers SERVFAIL until its first load completes)."""
        deadline = time.monotonic() + timeout
        probe = dns.message.make_query("dns-version.cluster.local.", "TXT")
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                raise ServerFailed(f"server exited with {rc} before it was ready; "
                                   f"stderr:\n{self.stderr}")
            try:
                r = dns.query.udp(probe, self.host, port=self.port, timeout=0.25)
                if r.rcode() != dns.rcode.SERVFAIL:
                    return
            except (dns.exception.Timeout, OSError):
                pass
            if time.monotonic() >= deadline:
                raise ServerFailed(f"server not ready after {timeout} s; stderr:\n{self.stderr}")
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: Optional[float] = None) -> Optional[int]:
        """SIGTERM, wait, SIGKILL if needed; return the exit code.  Idempotent."""
        if timeout is None:
            timeout = STOP_TIMEOUT + self.lameduck
        if self.proc is None:
            return self.returncode
        self.returncode = process.stop(self.proc, timeout)
        return self.returncode

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    @property
    def stderr(self) -> str:
        """Everything the current (or last) process wrote to stderr so far."""
        if self._stderr_path is None or not self._stderr_path.exists():
            return ""
        return self._stderr_path.read_text(encoding="utf-8", errors="replace")

    @property
    def stdout(self) -> str:
        if self._stdout_path is None or not self._stdout_path.exists():
            return ""
        return self._stdout_path.read_text(encoding="utf-8", errors="replace")

    def wait_stderr(self, pattern: str, timeout: float = 5.0) -> re.Match:
        """Wait until stderr matches the regular expression ``pattern``."""
        rx = re.compile(pattern)
        return wait_until(lambda: rx.search(self.stderr), timeout,
                          message=f"stderr to match {pattern!r}; stderr:\n{self.stderr}")

    # --- clients ------------------------------------------------------------------

    def _address(self, addr: Optional[tuple[str, int]]) -> tuple[str, int]:
        return addr if addr is not None else self.addresses[0]

    def query(self, name: str, rdtype: str | int = "A", tcp: bool = False, *,
              addr: Optional[tuple[str, int]] = None, use_edns: object = None,
              payload: Optional[int] = None, timeout: float = QUERY_TIMEOUT,
              tries: int = QUERY_TRIES) -> dns.message.Message:
        """One query with dnspython; retried on timeout (UDP can drop on a busy host).

        Without ``use_edns``/``payload`` the query has no EDNS (dnspython's
        default), so UDP answers are limited to 512 bytes.
        """
        host, port = self._address(addr)
        kwargs = {}
        if payload is not None:
            kwargs.update(use_edns=0, payload=payload)
        elif use_edns is not None:
            kwargs["use_edns"] = use_edns
        last: Optional[BaseException] = None
        for _ in range(tries):
            q = dns.message.make_query(name, rdtype, **kwargs)
            try:
                if tcp:
                    return dns.query.tcp(q, host, port=port, timeout=timeout)
                return dns.query.udp(q, host, port=port, timeout=timeout)
            except (dns.exception.Timeout, ConnectionError) as exc:
                last = exc
                if not self.alive():
                    break
        raise AssertionError(f"no answer to {name} {rdtype} ({'tcp' if tcp else 'udp'}) from "
                             f"{format_listen(host, port)}: {last!r}; alive={self.alive()}; "
                             f"stderr:\n{self.stderr}")

    def rrset_values(self, name: str, rdtype: str = "A", tcp: bool = False, **kw) -> list[str]:
        """The answer's records of ``rdtype`` as text (sorted); [] for none."""
        r = self.query(name, rdtype, tcp, **kw)
        want = dns.rdatatype.from_text(rdtype)
        return sorted(rd.to_text() for rs in r.answer if rs.rdtype == want for rd in rs)

    def dig(self, *args: str, addr: Optional[tuple[str, int]] = None,
            timeout: float = 30.0, check: bool = True) -> str:
        """Run ``dig @host -p port +time=3 +tries=3 ARGS``; return its stdout."""
        host, port = self._address(addr)
        cmd = [DIG, f"@{host}", "-p", str(port), "+time=3", "+tries=3", *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {res.returncode}:\n{res.stdout}"
                                 f"{res.stderr}\nserver stderr:\n{self.stderr}")
        return res.stdout

    def dig_short(self, *args: str, **kw) -> list[str]:
        """``dig +short ARGS`` as a list of non-empty lines."""
        out = self.dig("+short", *args, **kw)
        return [line for line in out.splitlines() if line.strip() and not line.startswith(";")]


def corefile_server(manifests: Optional[Path], corefile: str, tmp_path: Path, state_home: Path,
                    log: str = "log") -> ServerProcess:
    """A started :class:`ServerProcess` on ``manifests`` configured by a
    Corefile of text ``corefile`` alone (written to ``tmp_path``/Corefile; no
    bundled config), its logs in ``tmp_path``/``log``."""
    path = Path(tmp_path) / "Corefile"
    path.write_text(corefile)
    return ServerProcess(manifests, state_home=state_home, hermetic=False,
                         args=["--corefile", str(path)], logdir=Path(tmp_path) / log).start()


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture
def state_home(tmp_path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


def server_factory(cls: type, tmp_path_factory, request) -> Iterator[Callable[..., ServerProcess]]:
    """The body of a server factory fixture (``yield from server_factory(...)``).

    Yields ``factory(manifests=ZONES, *, state_home=None, start=True, **options)``,
    which makes a ``cls`` (:class:`ServerProcess` or a subclass; ``options``
    are its keyword arguments) with a fresh state directory unless one is
    given and its own log directory, and starts it unless ``start=False``.
    At teardown every server it made is stopped (:func:`stop_servers`)."""
    made: list[ServerProcess] = []

    def factory(manifests: Optional[Path] = ZONES, *, state_home: Optional[Path] = None,
                start: bool = True, **options) -> ServerProcess:
        if state_home is None:
            state_home = tmp_path_factory.mktemp("state")
        srv = cls(manifests, state_home=state_home, logdir=tmp_path_factory.mktemp("serverlog"),
                  **options)
        made.append(srv)
        if start:
            srv.start()
        return srv

    yield factory
    stop_servers(made, request)


def stop_servers(made: list, request) -> None:
    """Teardown of a server factory: stop every server the test made, and
    show their stderr when the test failed."""
    for srv in made:
        srv.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for srv in made:
            print(f"--- stderr of {' '.join(srv.command())}\n{srv.stderr}")


def module_server(tmp_path_factory, name: str, manifests: Optional[Path],
                  **options) -> Iterator[ServerProcess]:
    """The body of a module-scoped server fixture (``yield from module_server(...)``):
    one started :class:`ServerProcess` (state and logs in folders named after
    ``name``), stopped when the module is done."""
    srv = ServerProcess(manifests, state_home=tmp_path_factory.mktemp(f"{name}-state"),
                        logdir=tmp_path_factory.mktemp(f"{name}-log"), **options)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def start_server(tmp_path_factory, request):
    """Factory fixture: ``start_server(manifests, state_home=None, start=True,
    hosts=..., args=..., env=..., hermetic=..., http=..., lameduck=...)``.
    Every server it made is stopped at teardown; if a test failed, the
    servers' stderr is printed to help debugging."""
    yield from server_factory(ServerProcess, tmp_path_factory, request)


@pytest.fixture(scope="module")
def zones_server(tmp_path_factory):
    """One server on the bundled zones/ folder (the default --manifests), shared by a module."""
    yield from module_server(tmp_path_factory, "zones", None)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
