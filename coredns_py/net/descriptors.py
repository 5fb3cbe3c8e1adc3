"""File descriptors: the budget every open connection is paid from.

Each TCP connection holds a descriptor, and so does everything else the
server keeps open: listening sockets, sockets to upstream servers, HTTP
connections, the file watcher, the state file being written.  When a flood
of TCP connections takes the last one, ``accept()`` fails, and so does
everything else that opens something (a forwarded query, a reload).  So the
TCP connection cap is derived from the process's limit, leaving
:data:`FD_RESERVE` for the rest; and the soft limit is first raised to the
hard one, as Go programs (CoreDNS) do at start since Go 1.19.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger("coredns_py.transport")

# Descriptors kept for everything but inbound TCP connections: upstream
# exchanges in flight (resolver.forward.MAX_EXCHANGES, 256), HTTP
# connections (ops.http.MAX_HTTP_CONNECTIONS, 32), and about 100 for the
# rest (two listening sockets per address, the HTTP listener, the watcher's
# inotify descriptor, the state file, standard streams, the event loop's
# epoll and self-pipe, executor threads, Python's own files).  A test checks
# that this stays above the first two.
FD_RESERVE = 400

# Never fewer TCP connections than this, however low the limit: a server
# that cannot hold a few TCP clients cannot answer truncated responses.
MIN_TCP_CONNECTIONS = 16


def raise_soft_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.debug("cannot raise the file-descriptor limit from %d to %d: %s", soft, hard, exc)
    return soft, hard


def tcp_connection_cap(wanted: int) -> int:
    """``wanted`` TCP connections, or as many as the descriptor limit leaves
    after :data:`FD_RESERVE` (at least :data:`MIN_TCP_CONNECTIONS`)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(MIN_TCP_CONNECTIONS, min(wanted, soft - FD_RESERVE))
