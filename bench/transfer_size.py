"""What a zone transfer (AXFR) of a big cluster zone costs, in process.

For N Services (default 10,000; one namespace per 100, two named ports
each, every fifth one headless with three endpoints) it builds the snapshot
as ``serve`` does, then makes every message of the zone's transfer
(zone/transfer.py records, zone/wire.py xfr_messages) and prints the
records, messages and bytes, the time it took and the longest time between
two messages (what the event loop spends on one before it can serve
another client: messages are made one at a time, as the connection takes
them).

It is a script, not a test: nothing fails because the machine is slow.

    python bench/transfer_size.py [--services 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from coredns_py.cluster import fill  # noqa: E402
from coredns_py.config import Config  # noqa: E402
from coredns_py.source.folder import ManifestSource  # noqa: E402
from coredns_py.zone import snapshot, transfer, wire  # noqa: E402


def write_cluster(folder: Path, services: int) -> None:
    for first in range(0, services, 100):
        ns = f"ns{first // 100}"
        docs = [f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"]
        for i in range(first, min(first + 100, services)):
            headless = i % 5 == 0
            ip = "None" if headless else f"10.{96 + i // 60000}.{i // 250 % 240}.{i % 250 + 1}"
            docs.append(
                f"apiVersion: v1\nkind: Service\nmetadata: {{name: svc{i}, namespace: {ns}}}\n"
                f"spec:\n  clusterIP: {ip}\n"
                "  ports: [{name: http, port: 80}, {name: grpc, port: 9090}]\n")
            if headless:
                eps = "".join(f"- {{addresses: [10.244.{i // 250 % 250}.{i % 250}], "
                              f"hostname: p{k}}}\n" for k in range(3))
                docs.append(
                    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                    f"metadata: {{name: svc{i}-x, namespace: {ns}, labels: "
                    f"{{kubernetes.io/service-name: svc{i}}}}}\naddressType: IPv4\n"
                    "ports: [{name: http, port: 80}, {name: grpc, port: 9090}]\n"
                    f"endpoints:\n{eps}")
        (folder / f"{ns}.yaml").write_text("---\n".join(docs))


def main(services: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="transfer-size-"))
    write_cluster(folder, services)
    config = Config()
    loaded = ManifestSource(folder).load()
    snap = snapshot.build(fill.build(loaded.objects, config, None), config, 1)
    zone = snap.zone_labels
    started = time.perf_counter()
    last, longest = started, 0.0
    count = size = rrs = 0
    records = transfer.records(snap, zone)

    def counted():
        nonlocal rrs
        for rs in records:
            rrs += len(rs.rdatas)
            yield rs
    question = ((zone, 252, 1),)
    for message in wire.xfr_messages(1, 0x8400, question, counted(), None):
        now = time.perf_counter()
        longest = max(longest, now - last)
        last = now
        count += 1
        size += len(message)
    took = time.perf_counter() - started
    print(f"{services} Services: {rrs} records, {count} messages, {size / 1e6:.1f} MB "
          f"in {took:.2f} s ({rrs / took:,.0f} records/s); "
          f"longest between two messages {longest * 1000:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=10_000)
    main(parser.parse_args().services)
