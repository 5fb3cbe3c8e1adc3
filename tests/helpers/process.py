"""The child processes the tests start (dnsmasq, unbound, etcd members, a
publisher, a server): stopping one, and waiting until a DNS server answers.

* :func:`stop` - SIGTERM, then SIGKILL when it has not exited in time (what
  a supervisor does); returns the exit code.
* :func:`kill` - SIGKILL at once (a crash), and reap it.
* :func:`answers_dns` - poll a DNS server over UDP until it answers at all.

Every wait is bounded.
"""

from __future__ import annotations

import signal
import subprocess
import time
from typing import Optional

import dns.exception
import dns.message
import dns.query


def stop(proc: Optional[subprocess.Popen], timeout: float) -> Optional[int]:
    """SIGTERM ``proc`` and wait up to ``timeout`` s; SIGKILL it if it is
    still running then.  Returns its exit code (None if never started)."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    return proc.returncode


def kill(proc: Optional[subprocess.Popen], timeout: float) -> None:
    """SIGKILL ``proc`` if it is running (no chance to clean up), and reap it."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(timeout)


def answers_dns(proc: subprocess.Popen, host: str, port: int, timeout: float,
                probe: str = "ready.probe.invalid.") -> bool:
    """Whether the DNS server ``proc`` answers a UDP query for ``probe`` (any
    rcode) on ``host``:``port`` within ``timeout`` s; False at once if it exits."""
    deadline = time.monotonic() + timeout
    query = dns.message.make_query(probe, "A")
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            dns.query.udp(query, host, port=port, timeout=0.2)
            return True
        except (dns.exception.Timeout, OSError):
            time.sleep(0.05)
    return False
