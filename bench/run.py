#!/usr/bin/env python3
"""Benchmark coredns-py against knotd serving the same records.

One run, for each cluster size N:

1. generates N Services as manifests (one file per namespace, N/50
   namespaces; 80% ClusterIP with 1-2 named ports, 15% headless with 3
   endpoints in an EndpointSlice, 5% ExternalName), once with explicit
   clusterIPs and once without (the server allocates), plus a zone file for
   knotd holding the same records (A, SRV with CoreDNS's weights, CNAME, SOA);
2. generates a query mix: 70% A on existing Services, 10% SRV, 10% AAAA on
   IPv4-only names (NODATA), 10% search-path misses
   (<svc>.<ns>.svc.cluster.local.svc.cluster.local, NXDOMAIN), shuffled with a
   fixed seed, a share of them in random letter case;
3. starts coredns-py (pinned to CPU 0; forwarding off, so nothing leaves
   127.0.0.1) and measures the time to its first answer; starts knotd (also
   CPU 0) and checks that a sample of the mix gets the same answers from both;
4. runs dnsperf (pinned to CPU 1): one warm-up pass through the queries per
   server and transport, then against each server in turn, ROUNDS rounds
   alternating which goes first, over UDP and TCP: saturation throughput
   (queries/s and loss), then latency percentiles at half of that rate;
5. reads coredns-py's resident memory after the load, and times one-file
   changes (a Service's clusterIP) until the new address is answered;
6. repeats start-up and reload on the manifests without clusterIPs.

It prints everything as it goes and a summary against the targets of the
issue at the end; ``--out FILE`` also writes the figures as JSON.

The code is in ``benchlib/`` next to this file, one module per concern
(bench/README.md, "Layout"); this script only starts it.

Only the standard library and dnspython; it installs nothing.  Every server
it starts listens on 127.0.0.1 and is killed in a ``finally``.  Every load
loop is bounded in count and time.  This is not a test: nothing fails
because the machine is slow.
"""

import os
import sys

try:
    import dns.message  # noqa: F401
except ImportError:  # pragma: no cover - dnspython is a dependency of the package
    print("bench: dnspython is missing: pip install dnspython", file=sys.stderr)
    sys.exit(2)

# Python puts this file's folder first on sys.path when it runs it as a script,
# except under -P / PYTHONSAFEPATH: make sure ``benchlib`` next to it is found.
HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from benchlib.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
