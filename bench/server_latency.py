"""Run coredns-py and measure its latency from the server's side.

Each UDP query's time from the kernel's receive timestamp (SO_TIMESTAMPNS:
when the datagram reached the socket) to just after the answer was handed to
``sendto``: the time a query spent queued in the socket plus the time we
took, without the client's own delays.  A diagnostic, not part of the
server: it swaps in a copy of ``udp.UdpSocket._read_ready`` that
reads with ``recvmsg``, so the server reads one datagram per system call
(``udp.BATCHED`` off) while it runs here: per-answer figures are those of
that path.

    python bench/server_latency.py serve --manifests DIR --listen 127.0.0.1:PORT ...
    kill -USR2 PID    # forget what was measured so far (e.g. after a warm-up)
    kill -USR1 PID    # print p50/p99/p99.9/max to stderr

Linux only.
"""

import array
import runpy
import signal
import socket
import struct
import sys
import time

from coredns_py.net import udp
from coredns_py.zone import wire

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # 35 on Linux
MAX_SAMPLES = 10_000_000  # bounded: about 80 MB of doubles

latencies = array.array("d")
_init = udp.UdpSocket.__init__


def _init_with_timestamps(self, loop, sock, protocol):
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    _init(self, loop, sock, protocol)


def _read_ready(self):
    recvmsg = self._sock.recvmsg
    received = self._protocol.datagram_received
    for _ in range(udp.UDP_BATCH):
        try:
            data, ancillary, _flags, addr = recvmsg(wire.MAX_MESSAGE, 64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._protocol.error_received(exc)
            return
        received(data, addr)
        done = time.time()
        for _level, kind, cdata in ancillary:
            if kind == SO_TIMESTAMPNS and len(latencies) < MAX_SAMPLES:
                seconds, nanoseconds = struct.unpack("qq", cdata[:16])
                latencies.append(done - (seconds + nanoseconds / 1e9))
        if self._closing:
            return


def _report(*_):
    v = sorted(latencies)
    n = len(v)
    if not n:
        print("server-side latency: no samples", file=sys.stderr, flush=True)
        return
    pick = lambda q: v[min(n - 1, int(n * q))] * 1000  # noqa: E731
    print(f"server-side latency: n={n} p50={pick(0.5):.3f} ms p99={pick(0.99):.3f} ms "
          f"p99.9={pick(0.999):.3f} ms max={v[-1] * 1000:.3f} ms", file=sys.stderr, flush=True)


def _reset(*_):
    del latencies[:]


if __name__ == "__main__":
    # One datagram per system call: recvmsg gives each its receive
    # timestamp.  With batched calls (net/mmsg.py, on by default where libc
    # has them) the copy of _read_ready below would never be called and
    # nothing would be measured.
    udp.BATCHED = False
    udp.UdpSocket.__init__ = _init_with_timestamps
    udp.UdpSocket._read_ready = _read_ready
    signal.signal(signal.SIGUSR1, _report)
    signal.signal(signal.SIGUSR2, _reset)
    sys.argv = ["coredns_py"] + sys.argv[1:]
    runpy.run_module("coredns_py", run_name="__main__")
