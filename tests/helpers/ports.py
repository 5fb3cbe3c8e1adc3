"""Free loopback ports for servers the tests start.

:func:`free_port` is also importable from conftest (``from conftest import
free_port``), where it has always been.
"""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1", attempts: int = 50) -> int:
    """A port that is free for both UDP and TCP on ``host`` right now.

    Binds port 0 for TCP, then the same port for UDP; closes both and returns
    the port.  Someone else can still take it before the server binds, so
    callers retry with a new port when the server fails to bind
    (:class:`conftest.ServerProcess` does).
    """
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(attempts):
        tcp = socket.socket(fam, socket.SOCK_STREAM)
        try:
            tcp.bind((host, 0))
            port = tcp.getsockname()[1]
            udp = socket.socket(fam, socket.SOCK_DGRAM)
            try:
                udp.bind((host, port))
            except OSError:
                continue
            finally:
                udp.close()
            return port
        finally:
            tcp.close()
    raise RuntimeError(f"no free UDP+TCP port on {host}")
