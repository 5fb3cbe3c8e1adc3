"""Installed as a wheel (not editable, nothing of the checkout importable),
`coredns-py serve` with no --manifests serves the bundled example cluster,
which the wheel carries inside the package."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

from conftest import ROOT, hermetic_config, wait_until
from helpers.ports import free_port


def pip(*args: str, cwd: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                         capture_output=True, text=True, timeout=300, cwd=cwd,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_wheel_serves_the_bundled_example(tmp_path):
    # The sources as a clone has them (coredns_py/zones is a link to zones/).
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src)
    for name in ("coredns_py", "zones"):
        shutil.copytree(ROOT / name, src / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    # Offline: no index, the build backend of this environment.
    pip("wheel", "--no-deps", "--no-index", "--no-build-isolation", "-w", str(tmp_path / "dist"),
        str(src), cwd=tmp_path)
    [wheel] = (tmp_path / "dist").glob("coredns_py-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n for n in names if n.startswith("coredns_py/zones/"))
    bundled = sorted(f"coredns_py/zones/{p.relative_to(ROOT / 'zones')}"
                     for p in (ROOT / "zones").rglob("*.yaml"))
    assert shipped == bundled
    assert not any(n.startswith("zones/") for n in names)  # nothing loose in site-packages
    target = tmp_path / "site"
    pip("install", "--no-deps", "--no-index", "--target", str(target), str(wheel), cwd=tmp_path)

    # As a user runs it: the console script, from elsewhere, only the wheel importable.
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "PYTHONUNBUFFERED": "1",
           "XDG_STATE_HOME": str(tmp_path / "state"), "HOME": str(tmp_path)}
    where = subprocess.run([sys.executable, "-c", "import coredns_py; print(coredns_py.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert where.stdout.startswith(str(target)), where.stdout + where.stderr
    script = [sys.executable, str(target / "bin" / "coredns-py")]
    check = subprocess.run([*script, "check"], capture_output=True, text=True, env=env,
                           cwd=tmp_path, timeout=60, stdin=subprocess.DEVNULL)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.startswith(f"ok: {len(bundled)} files, 9 namespaces, 15 services")

    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([*script, "serve", "--listen", f"127.0.0.1:{port}", "--http", "",
                                 "--lameduck", "0", "--config", str(hermetic_config(tmp_path))],
                                env=env, cwd=tmp_path, stdout=err, stderr=err,
                                stdin=subprocess.DEVNULL)
    try:
        def answer(name: str):
            reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port,
                                  timeout=0.5)
            if reply.rcode() != dns.rcode.SERVFAIL:  # SERVFAIL: not loaded yet
                return sorted(rd.to_text() for rs in reply.answer for rd in rs)
            return None

        assert wait_until(lambda: answer("webapp.nodeport.svc.cluster.local."), 20,
                          message=f"an answer; log:\n{log.read_text()}") == ["10.102.123.158"]
        assert answer("kubernetes.default.svc.cluster.local.") == ["10.96.0.1"]
        # It says which folder it serves: the one inside the installed package.
        assert f"reading the manifests in {target / 'coredns_py' / 'zones'}" in log.read_text()
    finally:
        proc.terminate()
        proc.wait(10)
