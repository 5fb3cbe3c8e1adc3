"""Datagrams in batches: recvmmsg(2) and sendmmsg(2), called through libc.

Python's socket module reads and writes one datagram per system call
(``recvfrom``, ``sendto``), and each call also parses its arguments, builds
the peer's address tuple and, on an empty socket, raises an exception.  At
saturation that costs as much as answering from the prepared answers.
Knot (udp-handler: RECVMMSG_BATCHLEN, 10) and gdnsd read and answer a batch
of datagrams per call, with recvmmsg and sendmmsg.  Python has no binding
for them, so this module calls libc's through ctypes with buffers
allocated once per socket:

- one slot of :data:`SLOT` bytes per datagram, in an anonymous mapping, so
  only the pages datagrams actually touch become resident (a query uses
  the first page of its slot);
- the answer to datagram ``i`` is written over its query, in the same
  slot, and goes back through the same message header: the peer address
  the kernel wrote there is where it goes, with no copy and no parsing;
- peer addresses are turned into Python's ``(host, port)`` tuples, those of
  the last batch's senders reused (keyed by the raw ``sockaddr``), since
  the same clients ask again and again.

Linux only (glibc and musl have both calls since 2.6.33/3.0); elsewhere,
or when libc lacks them, :func:`available` is False and the UDP socket
reads one datagram at a time (net/udp.py).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import socket
import sys
from typing import Optional

# Bytes per datagram slot: the largest UDP payload (65,507 over IPv4) fits,
# so a datagram is never cut short (the mapping is virtual until touched).
SLOT = 65536
# Bytes per peer address slot: a sockaddr_in6 is 28.
NAME = 32


class _IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.c_void_p), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", _MsgHdr), ("len", ctypes.c_uint)]


def _libc_calls():
    if not sys.platform.startswith("linux"):
        return None
    try:
        # PyDLL: the calls keep the GIL.  They never block (the socket is
        # non-blocking), and CDLL's release and retake of the GIL around
        # each call let any other thread in for its switch interval:
        # measured 27 us per one-datagram batch against 10 us.
        libc = ctypes.PyDLL(None, use_errno=True)
        recv, send = libc.recvmmsg, libc.sendmmsg
    except (OSError, AttributeError):
        return None
    # No argtypes: converting each argument through them costs more than
    # the call (measured 800 ns against 450 ns); the pointers are passed
    # as c_void_p objects made once, the rest are C ints.
    recv.restype = send.restype = ctypes.c_int
    return recv, send


_CALLS = _libc_calls()


def available() -> bool:
    """Whether this platform's libc has recvmmsg and sendmmsg."""
    return _CALLS is not None


def _error() -> OSError:
    """The failed call's errno as the OSError subclass socket calls raise
    (OSError picks it: EAGAIN gives BlockingIOError, and so on)."""
    err = ctypes.get_errno()
    return OSError(err, os.strerror(err))


class Batch:
    """The buffers of one socket's batches: up to ``size`` datagrams read by
    one call (:meth:`receive`), and their answers written by one call
    (:meth:`write`, then :meth:`send`)."""

    def __init__(self, fd: int, size: int):
        if _CALLS is None:
            raise OSError("recvmmsg/sendmmsg are not available here")
        self._recv, self._send = _CALLS
        self.fd = fd
        self.size = size
        self._data = mmap.mmap(-1, size * SLOT)
        self._names = mmap.mmap(-1, size * NAME)
        data = ctypes.addressof(ctypes.c_char.from_buffer(self._data))
        names = ctypes.addressof(ctypes.c_char.from_buffer(self._names))
        self._iovs = (_IoVec * size)()
        self._hdrs = (_MMsgHdr * size)()
        for i in range(size):
            self._iovs[i].base = data + i * SLOT
            self._iovs[i].len = SLOT
            h = self._hdrs[i].hdr
            h.name = names + i * NAME
            h.namelen = NAME
            h.iov = ctypes.addressof(self._iovs[i])
            h.iovlen = 1
        self._hdrs_at = ctypes.addressof(self._hdrs)
        self._hdrs_ptr = ctypes.c_void_p(self._hdrs_at)
        self._hdr_size = ctypes.sizeof(_MMsgHdr)
        # The headers and iovecs as set up, put back before each read: the
        # kernel writes each address's length there, and answers their own
        # lengths in the iovecs.
        self._hdr_bytes = memoryview(self._hdrs).cast("B")
        self._iov_bytes = memoryview(self._iovs).cast("B")
        self._hdr_template = bytes(self._hdr_bytes)
        self._iov_template = bytes(self._iov_bytes)
        # What the kernel wrote in the headers, as 32-bit words: every
        # datagram's length (msg_len) and its peer's (msg_namelen).
        words = self._hdr_bytes.cast("I")
        step = self._hdr_size // 4
        self._lengths = words[_MMsgHdr.len.offset // 4::step]
        self._namelens = words[_MsgHdr.namelen.offset // 4::step]
        # The iovecs' lengths (size_t), one per datagram.
        size_t = ctypes.sizeof(ctypes.c_size_t)
        self._iov_lens = self._iov_bytes.cast("N")[_IoVec.len.offset // size_t::
                                                   ctypes.sizeof(_IoVec) // size_t]
        self._data_at = [i * SLOT for i in range(size)]
        self._name_at = [i * NAME for i in range(size)]
        self._peers: dict[bytes, tuple] = {}
        self._written = False

    def receive(self) -> int:
        """Read up to ``size`` datagrams; their number (OSError as recvfrom
        raises it: BlockingIOError when there is none)."""
        self._hdr_bytes[:] = self._hdr_template
        if self._written:
            self._iov_bytes[:] = self._iov_template
            self._written = False
        n = self._recv(self.fd, self._hdrs_ptr, self.size, 0, None)
        if n < 0:
            raise _error()
        return n

    def datagrams(self, n: int) -> list[bytes]:
        """The ``n`` datagrams read, in order."""
        data = self._data
        return [data[at:at + length] for at, length in zip(self._data_at, self._lengths[:n])]

    def peers(self, n: int) -> list[tuple]:
        """Their senders, as Python's address tuples.  The tuples of the
        last batch's senders are reused (the same clients ask again and
        again), and only those: a cache that kept every client would keep
        small objects made at any time, each pinning a memory arena the
        heap could otherwise give back after a big build is dropped."""
        names, known = self._names, self._peers
        raws = [names[at:at + length] for at, length in zip(self._name_at, self._namelens[:n])]
        out = [known.get(raw) or decode_sockaddr(raw) for raw in raws]
        self._peers = dict(zip(raws, out))
        return out

    def write(self, answers: list[tuple[int, bytes]]) -> None:
        """Write each (i, bytes) as the answer to datagram ``i``, in the
        order given, for :meth:`send`.  Each goes over its query, in the
        same slot, and through the same header (the peer's address as the
        kernel wrote it); a datagram without an answer leaves a gap that
        the next header moved forward closes."""
        data, lens, hdrs, size = self._data, self._iov_lens, self._hdr_bytes, self._hdr_size
        for j, (i, out) in enumerate(answers):
            n = len(out)
            at = i * SLOT
            data[at:at + n] = out
            lens[i] = n
            if i != j:
                hdrs[j * size:(j + 1) * size] = hdrs[i * size:(i + 1) * size]
        self._written = True

    def send(self, first: int, count: int) -> int:
        """Send the answers written, from the ``first`` on, ``count`` in all;
        how many went (at least one; OSError as sendto raises it, for the
        answer ``first``)."""
        at = self._hdrs_ptr if not first else ctypes.c_void_p(
            self._hdrs_at + first * self._hdr_size)
        n = self._send(self.fd, at, count - first, 0)
        if n < 0:
            raise _error()
        return n


def decode_sockaddr(raw: bytes) -> tuple:
    """Python's address tuple for a raw ``sockaddr_in`` or ``sockaddr_in6``,
    as ``recvfrom`` gives it: (host, port) or (host, port, flowinfo, scope_id)."""
    family = int.from_bytes(raw[:2], sys.byteorder)
    port = int.from_bytes(raw[2:4], "big")
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), port
    if family == socket.AF_INET6:
        flowinfo = int.from_bytes(raw[4:8], "big")
        scope = int.from_bytes(raw[24:28], sys.byteorder)
        host = socket.inet_ntop(socket.AF_INET6, raw[8:24])
        if scope:
            try:
                host += "%" + socket.if_indextoname(scope)
            except OSError:
                host += "%" + str(scope)
        return host, port, flowinfo, scope
    raise OSError(f"datagram from an address of family {family}")


def make(sock: socket.socket, size: int) -> Optional[Batch]:
    """A Batch for ``sock``, or None where batched calls are not available."""
    if _CALLS is None:
        return None
    return Batch(sock.fileno(), size)
