"""What the user gives for etcd (``--etcd URLS``, ``--prefix``, the etcd_*
config keys): read as meant, or refused with the reason."""

import pytest

from coredns_py.config import Config
from coredns_py.errors import ConfigError
from coredns_py.etcd.client import Security, connect, parse_endpoints, prefix_end
from coredns_py.etcd.layout import Layout, normalize_prefix
from conftest import ZONES, run_cli


@pytest.mark.parametrize("text, tls, want", [
    ("http://127.0.0.1:2379", False, ["http://127.0.0.1:2379"]),
    ("127.0.0.1:2379,127.0.0.2:2379", False, ["http://127.0.0.1:2379", "http://127.0.0.2:2379"]),
    ("etcd-1.lan", False, ["http://etcd-1.lan:2379"]),
    ("etcd-1.lan:2379", True, ["https://etcd-1.lan:2379"]),
    ("https://[::1]:2379/", False, ["https://[::1]:2379"]),
    (" http://a:1 , http://a:1 ,", False, ["http://a:1"]),
])
def test_endpoints_as_given(text, tls, want):
    assert parse_endpoints(text, Security(ca_file="ca.pem" if tls else "")) == want


@pytest.mark.parametrize("text, message", [
    ("", "no endpoint"),
    ("ftp://a:1", "not a client URL"),
    ("http://a:1/v3", "not a client URL"),
    ("http://a:99999", "bad port"),
])
def test_bad_endpoints_are_refused(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_endpoints(text)


def test_prefixes_and_their_ranges():
    assert normalize_prefix("coredns-py") == "/coredns-py/"
    assert normalize_prefix("/a/b/") == "/a/b/"
    with pytest.raises(ConfigError):
        normalize_prefix("with space")
    assert prefix_end(b"/a/") == b"/a0"
    assert prefix_end(b"a\xff") == b"b"
    layout = Layout("/p")
    assert layout.namespace_of(layout.namespaces + b"ns1") == "ns1"
    assert layout.namespace_of(layout.objects + b"ns1/services/web") == "ns1"
    assert layout.namespace_of(layout.generation) is None


def test_secrets_come_from_files_named_by_the_config(tmp_path):
    with pytest.raises(ConfigError, match="etcd_username needs etcd_password_file"):
        connect("http://127.0.0.1:1", Config(etcd_username="replica"))
    with pytest.raises(ConfigError, match="etcd_ca_file: no such file"):
        connect("https://127.0.0.1:1", Config(etcd_ca_file=str(tmp_path / "nope.pem")))
    with pytest.raises(ConfigError, match="etcd_key_file needs etcd_cert_file"):
        key = tmp_path / "k.pem"
        key.write_text("x")
        connect("https://127.0.0.1:1", Config(etcd_key_file=str(key)))
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    etcd = connect("127.0.0.1:1", Config(etcd_username="replica", etcd_password_file=str(pw)))
    assert etcd.security.password == "s3cret"  # the newline is not part of it


def test_the_command_line_says_what_is_wrong(tmp_path):
    res = run_cli("get", "services", "--etcd", "ftp://x", state_home=tmp_path)
    assert res.returncode == 2 and "not a client URL" in res.stderr
    res = run_cli("serve", "--etcd", "http://127.0.0.1:1", "--manifests", ZONES / "00-cluster",
                  state_home=tmp_path)
    assert res.returncode == 2 and "give it --manifests on the publisher" in res.stderr
    res = run_cli("get", "services", "--etcd", "http://127.0.0.1:1", state_home=tmp_path)
    assert res.returncode != 0 and "no etcd member answers" in res.stderr
    assert "connection refused" in res.stderr
    res = run_cli("publish", "--manifests", tmp_path / "missing", "--etcd", "http://127.0.0.1:1",
                  state_home=tmp_path)
    assert res.returncode != 0 and "does not exist" in res.stderr
