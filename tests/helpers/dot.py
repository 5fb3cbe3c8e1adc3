"""A DNS-over-TLS upstream for the tests: Debian's unbound serving local
records over TLS on a loopback address, with a CA and a certificate the
test makes (``cryptography``).

* :func:`make_ca` - a CA and a server certificate for given names and IPs.
* :class:`Unbound` - unbound on ``host``: plain DNS and DNS over TLS on
  their own ports, answering only its ``records`` (everything else,
  ``. NS`` included, from its static zones: no query leaves the machine).

Only loopback; every wait is bounded.
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence


from helpers import process
from helpers.ports import free_port

UNBOUND = shutil.which("unbound") or "/usr/sbin/unbound"
KDIG = shutil.which("kdig") or "/usr/bin/kdig"

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


def available() -> bool:
    return os.access(UNBOUND, os.X_OK)


@dataclass
class Certs:
    ca: Path  # the CA certificate (PEM): what the client trusts
    cert: Path  # the server's certificate
    key: Path  # its key


def make_ca(directory: Path, names: Sequence[str], ips: Sequence[str] = (),
            ca_name: str = "coredns-py test CA") -> Certs:
    """A fresh CA and a server certificate for ``names`` and ``ips``."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_subject).issuer_name(ca_subject)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                            False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                              critical=False)
               .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i))
                                               for i in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                        (list(names) or list(ips))[0])]))
            .issuer_name(ca_subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    out = Certs(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    out.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return out


class Unbound:
    """unbound on ``host``: ``port`` plain DNS, ``tls_port`` DNS over TLS,
    answering ``records`` (zone-file lines) of the static ``zones``."""

    def __init__(self, directory: Path, certs: Certs, *, host: str = "127.0.0.8",
                 zones: Sequence[str] = ("dot.test",), records: Sequence[str] = ()):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.certs = certs
        self.host = host
        self.zones = list(zones)
        self.records = list(records)
        self.port = 0
        self.tls_port = 0
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = self.dir / "unbound.log"

    def config(self) -> str:
        lines = [
            "server:",
            f"  interface: {self.host}@{self.port}",
            f"  interface: {self.host}@{self.tls_port}",
            f"  tls-port: {self.tls_port}",
            f"  tls-service-key: \"{self.certs.key}\"",
            f"  tls-service-pem: \"{self.certs.cert}\"",
            "  do-daemonize: no", "  username: \"\"", "  chroot: \"\"",
            f"  directory: \"{self.dir}\"", "  pidfile: \"\"", "  use-syslog: no",
            f"  logfile: \"{self.log_path}\"", "  verbosity: 1", "  log-queries: yes",
            "  do-ip6: no", "  access-control: 127.0.0.0/8 allow",
            "  num-threads: 1", "  module-config: \"iterator\"", "  so-reuseport: no", "  incoming-num-tcp: 32",
            # Nothing is ever asked outside: the root is a static zone too,
            # so the forwarder's ". NS" health checks get an answer at once.
            "  local-zone: \".\" static",
        ]
        for zone in self.zones:
            lines.append(f"  local-zone: \"{zone}.\" static")
        for record in self.records:
            lines.append(f"  local-data: \"{record}\"")
        lines += ["remote-control:", "  control-enable: no"]
        return "\n".join(lines) + "\n"

    def start(self) -> "Unbound":
        for _attempt in range(5):
            self.port, self.tls_port = free_port(self.host), free_port(self.host)
            if self.port == self.tls_port:
                continue
            conf = self.dir / "unbound.conf"
            conf.write_text(self.config())
            out = open(self.dir / "stderr.log", "wb")
            self.proc = subprocess.Popen([UNBOUND, "-d", "-c", str(conf)], stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            out.close()
            if self._wait_ready():
                return self
            self.stop()
        raise AssertionError(f"unbound did not start:\n{self.output}")

    def _wait_ready(self) -> bool:
        return process.answers_dns(self.proc, self.host, self.port, START_TIMEOUT,
                                   probe="ready.probe.")

    @property
    def output(self) -> str:
        text = ""
        for name in ("stderr.log", "unbound.log"):
            path = self.dir / name
            if path.exists():
                text += path.read_text(errors="replace")
        return text

    def tls_queries(self, name: str) -> int:
        """Queries for ``name`` unbound logged (it logs every query it gets)."""
        wanted = f" {name.rstrip('.').lower()}. "
        return sum(1 for line in self.output.splitlines()
                   if " info: " in line and wanted in line.lower())

    def kdig(self, name: str, *args: str, server_name: str = "") -> subprocess.CompletedProcess:
        """``kdig +tls`` against the DoT port, trusting our CA: a real DoT client."""
        cmd = [KDIG, f"@{self.host}", "-p", str(self.tls_port), "+tls",
               f"+tls-ca={self.certs.ca}", "+time=3", "+retry=0", name, *args]
        if server_name:
            cmd.append(f"+tls-hostname={server_name}")
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20,
                              stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        process.stop(self.proc, STOP_TIMEOUT)
