"""Folders as users have them: symlinked folders are followed (a change in
one is served), each folder is read once, a symlink loop is reported once and
not followed; hidden files and editor leftovers are skipped."""

from __future__ import annotations

import os

from conftest import wait_until, write_atomic
from coredns_py.source.folder import ManifestSource
from coredns_py.source.tree import walk
from helpers.manifests import service, write


def names(loaded) -> list[str]:
    return sorted(f"{o.namespace}/{o.name}" for o in loaded.objects)


def test_symlinked_folders_are_followed(tmp_path):
    root, shared = tmp_path / "m", tmp_path / "shared"
    write(shared, "team/api.yaml", service("api", "team", cluster_ip="10.96.1.1"))
    write(root, "own.yaml", service("own", cluster_ip="10.96.1.2"))
    (root / "linked").symlink_to(shared)
    loaded = ManifestSource(root).load()
    assert loaded.errors == () and loaded.notices == ()
    assert names(loaded) == ["default/own", "team/api"]
    assert loaded.files == 2
    listing = walk(root)
    assert listing.files == [root / "linked" / "team" / "api.yaml", root / "own.yaml"]
    assert listing.outside == [root / "linked"]  # the watcher watches it too


def test_a_folder_reached_twice_is_read_once_under_its_own_name(tmp_path):
    root = tmp_path / "m"
    write(root, "v2/api.yaml", service("api", cluster_ip="10.96.1.1"))
    (root / "current").symlink_to("v2")  # before v2 in path order
    loaded = ManifestSource(root).load()
    assert loaded.errors == ()  # not "defined twice"
    assert names(loaded) == ["default/api"]
    assert walk(root).files == [root / "v2" / "api.yaml"]
    assert walk(root).outside == []


def test_a_symlink_loop_is_reported_once_and_not_followed(tmp_path):
    root = tmp_path / "m"
    write(root, "a/b/svc.yaml", service("svc", cluster_ip="10.96.1.1"))
    (root / "a" / "b" / "up").symlink_to("../..")  # back to root
    (root / "a" / "self").symlink_to(".")
    src = ManifestSource(root)
    loaded = src.load()
    assert loaded.errors == ()
    assert names(loaded) == ["default/svc"]
    notices = sorted(str(n) for n in loaded.notices)
    assert notices == [
        f"{root / 'a' / 'b' / 'up'}: symlink loop: {root / 'a' / 'b' / 'up'} leads back to "
        f"{os.path.realpath(root)}, a folder it is in; not followed",
        f"{root / 'a' / 'self'}: symlink loop: {root / 'a' / 'self'} leads back to "
        f"{os.path.realpath(root / 'a')}, a folder it is in; not followed",
    ]
    assert [str(n) for n in sorted(src.load().notices, key=str)] == notices  # same, not more


def test_dangling_links_hidden_files_and_editor_leftovers_are_skipped(tmp_path):
    root = tmp_path / "m"
    write(root, "svc.yaml", service("svc", cluster_ip="10.96.1.1"))
    (root / "gone.yaml").symlink_to(tmp_path / "nowhere.yaml")
    (root / "gone-dir").symlink_to(tmp_path / "nowhere")
    for junk in (".svc.yaml.swp", "svc.yaml~", ".#svc.yaml", ".hidden.yaml", "4913"):
        (root / junk).write_text(service("junk", cluster_ip="10.96.1.9"))
    write(root, ".git/objects.yaml", service("git", cluster_ip="10.96.1.8"))
    loaded = ManifestSource(root).load()
    assert loaded.errors == () and names(loaded) == ["default/svc"]


def test_serve_picks_up_a_change_in_a_symlinked_folder(start_server, tmp_path):
    root, shared = tmp_path / "m", tmp_path / "shared"
    write(shared, "api.yaml", service("api", cluster_ip="10.96.1.1"))
    write(root, "own.yaml", service("own", cluster_ip="10.96.1.2"))
    (root / "linked").symlink_to(shared)
    srv = start_server(root)
    assert srv.rrset_values("api.default.svc.cluster.local.") == ["10.96.1.1"]
    # A file changed where the link points, outside the served folder.
    write_atomic(shared / "api.yaml", service("api", cluster_ip="10.96.1.7"))
    wait_until(lambda: srv.rrset_values("api.default.svc.cluster.local.") == ["10.96.1.7"],
               10, message="the change behind the symlink to be served")
