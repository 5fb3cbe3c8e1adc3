"""Start-up helpers of the manifest source: parsing on every core
(source/parallel.py) and the parse cache in the state folder
(source/parse_cache.py) must give exactly what parsing here gives."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from conftest import SEED, ZONES, wait_until
from coredns_py.source import folder, parallel
from coredns_py.source.folder import ManifestSource
from coredns_py.source.manifest_file import parse_file
from coredns_py.source.tree import list_files
from coredns_py.source.parse_cache import ParseCache, fingerprint

FIXTURE = Path(__file__).resolve().parent / "fixtures"


def roots() -> list[Path]:
    return [r for r in (ZONES, FIXTURE / "answer", FIXTURE / "process" / "check-problems", SEED)
            if r.is_dir()]


def todo_of(root: Path) -> list:
    out = []
    for path in list_files(root):
        st = path.stat()
        out.append((path, (st.st_mtime_ns, st.st_size, st.st_ino), None))
    return out


def same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for path in a:
        assert a[path].objects == b[path].objects, path
        assert [str(e) for e in a[path].errors] == [str(e) for e in b[path].errors], path
        assert a[path].syntax_error == b[path].syntax_error


@pytest.mark.parametrize("root", roots(), ids=lambda r: r.name)
def test_parsing_in_children_gives_what_parsing_here_gives(root):
    todo = todo_of(root)
    here = {path: parse_file(path, stamp, old) for path, stamp, old in todo}
    same(parallel.parse_all(todo, parse_file, workers=3, min_bytes=0), here)


def test_shares_hold_every_file_once_in_order():
    todo = [(Path(f"f{i}"), (0, size, i), None) for i, size in enumerate([5, 900, 3, 3, 400, 7])]
    parts = parallel.shares(todo, 2)
    assert sorted(x for part in parts for x in part) == sorted(todo)
    for part in parts:
        assert part == sorted(part, key=todo.index)
    assert {sum(t[1][1] for t in part) for part in parts} == {900, 418}


def test_a_child_that_dies_costs_only_time(tmp_path):
    todo = todo_of(ZONES)
    parent = os.getpid()

    def parse(path, stamp, old):
        if os.getpid() != parent:
            os._exit(9)  # the child dies before writing anything
        return parse_file(path, stamp, old)

    got = parallel.parse_all(todo, parse, workers=2, min_bytes=0)
    same(got, {path: parse_file(path, stamp, old) for path, stamp, old in todo})


def test_restart_takes_unchanged_files_from_the_cache(tmp_path, monkeypatch):
    root = tmp_path / "m"
    root.mkdir()
    for src in list_files(ZONES):
        dst = root / src.relative_to(ZONES)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
    cache_path = tmp_path / "state" / "s.json.parsed"
    first = ManifestSource(root, cache=ParseCache(cache_path)).load()
    wait_until(cache_path.exists, timeout=10)  # written by a child, in the background

    parsed = []

    def counting(path, stamp, old, **limits):
        parsed.append(path.name)
        return parse_file(path, stamp, old, **limits)

    monkeypatch.setattr(folder, "parse_file", counting)
    edited = list_files(root)[0]
    edited.write_text(edited.read_text() + "\n# edited\n")
    second = ManifestSource(root, cache=ParseCache(cache_path)).load()
    assert parsed == [edited.name]  # only the file changed since
    assert second.objects == first.objects
    assert [str(e) for e in second.errors] == [str(e) for e in first.errors]


def test_a_cache_of_other_code_or_broken_is_not_used(tmp_path, monkeypatch):
    root = ZONES
    cache_path = tmp_path / "c.parsed"
    todo = todo_of(root)
    files = {path: parse_file(path, stamp, None) for path, stamp, _ in todo}
    stale = {str(p): (r.stamp, r) for p, r in files.items()}
    cache_path.write_bytes(pickle.dumps({"code": fingerprint()[::-1], "files": stale}))
    assert ParseCache(cache_path).take(todo) == ({}, todo)
    cache_path.write_bytes(b"\x80\x05not a pickle")
    assert ParseCache(cache_path).take(todo) == ({}, todo)
    cache_path.write_bytes(pickle.dumps({"code": fingerprint(), "files": stale}))
    hits, rest = ParseCache(cache_path).take(todo)
    assert rest == [] and set(hits) == set(files)


def test_a_reload_of_a_few_files_does_not_rewrite_the_cache(tmp_path):
    cache = ParseCache(tmp_path / "c.parsed")
    one = parse_file(*todo_of(ZONES)[0][:2], None)
    files = {Path(f"/m/f{i}.yaml"): one for i in range(50)}
    assert not cache.save(files, parsed=4)  # under a tenth of the folder
    assert cache.save(files, parsed=5)
    wait_until(cache.path.exists, timeout=10)
    assert set(ParseCache(cache.path)._read()) == {str(p) for p in files}
