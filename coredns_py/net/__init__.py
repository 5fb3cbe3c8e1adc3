"""The network room: UDP and TCP listeners, thin asyncio adapters around the
DNS core.

A transport is an adapter: bytes in, one call of the core, bytes out.  The
core is a plain callable (see :data:`~coredns_py.net.handler.Handler`) that
receives the query wire, the protocol name and the peer address, and returns
the response wire or ``None`` for "send nothing" -- or, when the answer needs
an upstream server, an awaitable of those, which the transport runs as a
task and whose result it sends when done (other queries are answered
meanwhile; over TCP answers may then leave out of order, which RFC 7766
section 7 allows).  The core decides everything about DNS content,
truncation included (it is told the protocol); this room never parses a DNS
message.  Its only jobs are framing, binding sockets with clear errors, and
the resource limits a network server needs so that one client cannot take it
down.  Each limit is a named constant, in the module that enforces it, with
the reason for its value.

- ``listen``    -- listen addresses: parsed from text, bound to sockets
- ``handler``   -- the Handler contract; answers that arrive later
- ``udp``       -- DNS over UDP: the batched socket and its protocol
- ``framing``   -- DNS-over-TCP framing, sans-IO (no sockets, no asyncio)
- ``tcp``       -- DNS over TCP: the connection protocol
- ``connections`` -- the live TCP connections: caps in all and per client, room made at a cap
- ``accept``    -- accepting TCP connections, out of descriptors included
- ``descriptors`` -- the file-descriptor budget, and the TCP cap it allows
- ``listeners`` -- ``start()`` every address; ``Listeners`` to stop them

Every module logs as ``coredns_py.transport`` (the name JSON logs and tests
know).
"""
