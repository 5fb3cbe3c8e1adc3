"""The reference server: knotd with a minimal config, serving the zone file."""

from __future__ import annotations

from pathlib import Path

from benchlib.cluster import ZONE
from benchlib.proc import Proc
from benchlib.tools import Tools


def start_knot(zone_dir: Path, port: int, tools: Tools, workdir: Path) -> Proc:
    kdir = zone_dir
    (kdir / "run").mkdir(exist_ok=True)
    (kdir / "storage").mkdir(exist_ok=True)
    conf = kdir / "knot.conf"
    conf.write_text(f"""\
server:
    rundir: "{kdir / 'run'}"
    listen: 127.0.0.1@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "{kdir / 'storage'}"
log:
  - target: stderr
    any: info
template:
  - id: default
    storage: "{kdir}"
    file: "%s.zone"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
zone:
  - domain: {ZONE}
""")
    return Proc("knotd", tools.pin([tools.knotd, "-c", str(conf)], tools.server_cpu),
                workdir / "knotd.log")
