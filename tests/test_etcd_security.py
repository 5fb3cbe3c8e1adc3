"""etcd secured as the README says: members that ask for TLS client
certificates, and users whose roles allow a publisher to write the prefix
and a replica only to read its ``cluster/`` part.  Secrets come from config
keys (files), never from the command line."""

import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from conftest import DEFAULT_CONFIG, run_cli
from helpers.etcd import EtcdCluster, needs_etcd
from helpers.publisher import PublisherProcess

pytestmark = needs_etcd

ZONE = "cluster.local"


def config_file(directory: Path, name: str, **keys) -> Path:
    """The bundled config, forwarding off, with these keys."""
    data = yaml.safe_load(DEFAULT_CONFIG.read_text()) or {}
    data["upstream"] = []
    data.update(keys)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def secret(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


# The README's commands ("Securing etcd"), prefix /coredns-py/; the passwords
# given with --new-user-password where the README lets etcdctl ask for them.
def set_up_users(etcd: EtcdCluster) -> None:
    ctl = etcd.etcdctl
    ctl("user", "add", "root", "--new-user-password", "root-pw")
    ctl("role", "add", "coredns-py-publisher")
    ctl("role", "grant-permission", "coredns-py-publisher", "readwrite", "/coredns-py/",
        "--prefix=true")
    ctl("role", "add", "coredns-py-replica")
    ctl("role", "grant-permission", "coredns-py-replica", "read", "/coredns-py/cluster/",
        "--prefix=true")
    ctl("user", "add", "publisher", "--new-user-password", "publisher-pw")
    ctl("user", "grant-role", "publisher", "coredns-py-publisher")
    ctl("user", "add", "replica", "--new-user-password", "replica-pw")
    ctl("user", "grant-role", "replica", "coredns-py-replica")
    ctl("auth", "enable")


@pytest.fixture
def etcd(tmp_path):
    (tmp_path / "etcd").mkdir()
    cluster = EtcdCluster(tmp_path / "etcd")
    yield cluster
    cluster.destroy()


def test_a_replica_user_reads_and_cannot_publish(etcd, tmp_path, start_server):
    etcd.start()
    set_up_users(etcd)
    folder = Path(__file__).resolve().parent.parent / "zones"
    publisher_cfg = config_file(tmp_path, "publisher", etcd_username="publisher",
                                etcd_password_file=str(secret(tmp_path, "p", "publisher-pw")))
    replica_cfg = config_file(tmp_path, "replica", etcd_username="replica",
                              etcd_password_file=str(secret(tmp_path, "r", "replica-pw")))
    pub = PublisherProcess(folder, etcd.urls, "/coredns-py/", state_home=tmp_path / "s1",
                           logdir=tmp_path, config=publisher_cfg).start()
    try:
        pub.wait_generation(1)
        rep = start_server(None, args=["--etcd", etcd.urls, "--config", replica_cfg])
        assert rep.rrset_values(f"kubernetes.default.svc.{ZONE}") == ["10.96.0.1"]
        assert "replica-pw" not in " ".join(rep.command())

        # The replica's user cannot take the lead, let alone write.
        (tmp_path / "other").mkdir()
        intruder = PublisherProcess(folder, etcd.urls, "/coredns-py/",
                                    state_home=tmp_path / "s2", logdir=tmp_path / "other",
                                    config=replica_cfg).start()
        try:
            intruder.wait_stderr(r"cannot campaign for the lead: .*permission denied")
            assert not intruder.leading()
        finally:
            intruder.stop()

        # No user, or a wrong password: a clear error, no data.
        res = run_cli("get", "services", "--etcd", etcd.urls,
                      "--config", config_file(tmp_path, "nobody"))
        assert res.returncode != 0 and "user name is empty" in res.stderr, res.stderr
        wrong = config_file(tmp_path, "wrong", etcd_username="replica",
                            etcd_password_file=str(secret(tmp_path, "w", "nope")))
        res = run_cli("get", "services", "--etcd", etcd.urls, "--config", wrong)
        assert res.returncode != 0 and "authentication failed" in res.stderr, res.stderr
    finally:
        pub.stop()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(d: Path) -> None:
    """A CA, a server certificate for 127.0.0.1, a client certificate."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=coredns-py test CA", cwd=d)
    # The members' certificate is a client one too: etcd 3.4's JSON gateway
    # talks to the member's own gRPC server with it (the README says so).
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\n"
                                 "extendedKeyUsage=serverAuth,clientAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "2",
                 "-extfile", f"{name}.ext", cwd=d)


def test_tls_with_client_certificates(etcd, tmp_path, start_server):
    certs = tmp_path / "certs"
    certs.mkdir()
    make_certificates(certs)
    for m in etcd.members:
        m.scheme = "https"
        m.extra = ["--cert-file", str(certs / "server.crt"), "--key-file",
                   str(certs / "server.key"), "--trusted-ca-file", str(certs / "ca.crt"),
                   "--client-cert-auth"]
    etcd.tls = {"verify": str(certs / "ca.crt"),
                "cert": (str(certs / "client.crt"), str(certs / "client.key"))}
    etcd.start()
    tls = config_file(tmp_path, "tls", etcd_ca_file=str(certs / "ca.crt"),
                      etcd_cert_file=str(certs / "client.crt"),
                      etcd_key_file=str(certs / "client.key"))
    prefix = f"/tls-{uuid.uuid4().hex[:6]}/"
    folder = Path(__file__).resolve().parent.parent / "zones"
    pub = PublisherProcess(folder, etcd.urls, prefix, state_home=tmp_path / "s",
                           logdir=tmp_path, config=tls).start()
    try:
        pub.wait_generation(1)
        # Endpoints without a scheme are https when TLS is configured.
        bare = etcd.urls.replace("https://", "")
        rep = start_server(None, args=["--etcd", bare, "--prefix", prefix, "--config", tls])
        assert rep.rrset_values(f"kubernetes.default.svc.{ZONE}") == ["10.96.0.1"]
        # Without a client certificate the members refuse the connection.
        ca_only = config_file(tmp_path, "ca-only", etcd_ca_file=str(certs / "ca.crt"))
        res = run_cli("get", "services", "--etcd", etcd.urls, "--prefix", prefix,
                      "--config", ca_only)
        assert res.returncode != 0 and "TLS" in res.stderr, res.stderr
        # Without the CA, the members' certificate is not trusted.
        res = run_cli("get", "services", "--etcd", etcd.urls, "--prefix", prefix,
                      "--config", config_file(tmp_path, "no-ca"))
        assert res.returncode != 0 and "certificate verify failed" in res.stderr, res.stderr
    finally:
        pub.stop()
