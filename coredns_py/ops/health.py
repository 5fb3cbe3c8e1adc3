"""Health and readiness, as CoreDNS's *health* (with ``lameduck``) and
*ready* plugins report them."""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("coredns_py.status")

# How long /health reports unhealthy before the DNS listeners close on
# SIGTERM/SIGINT, while DNS is still answered.  CoreDNS's Kubernetes manifest
# uses `health { lameduck 5s }` so that whatever routes traffic (kube-proxy,
# a load balancer polling the health check) has time to stop sending before
# the sockets go.  The wait only happens when something has polled /health
# or /ready since start: with nobody watching there is nobody to tell, and an
# interactive Ctrl-C should not hang.  A second signal cuts it short.
LAMEDUCK = 5.0


def readiness(gen, source) -> tuple[bool, str]:
    """(ready, reason), as CoreDNS's *ready* plugin asks the kubernetes plugin:
    ready once a generation is served and while its source can be read."""
    if gen is None:
        return False, "not ready: the first load is not complete"
    ok, reason = source.ready()
    return (True, "OK") if ok else (False, f"not ready: {reason}")


async def lame_duck(status, seconds: float, hurry: asyncio.Event) -> None:
    """Report unhealthy on ``status`` (the HTTP listener, or None), keep
    answering DNS for ``seconds`` (or until ``hurry``)."""
    if status is None:
        return
    status.shutting_down = True
    if seconds <= 0 or not status.watched:
        return
    log.info("lame duck: /health reports unhealthy, still answering DNS for %g s "
             "(signal again to stop now)", seconds)
    try:
        await asyncio.wait_for(hurry.wait(), seconds)
    except asyncio.TimeoutError:
        pass
