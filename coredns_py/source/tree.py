"""Which files of a folder are manifests: the walk of the tree.

Every manifest file (``.yaml``, ``.yml``, ``.json``) and kustomization below
the folder, in path order, following symlinked folders (users link shared
manifests in) but reading each folder once and reporting loops; hidden
files and folders and editors' leftovers are not manifests.  The watcher
and the loader ask the same :func:`is_manifest_file`, so they agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from coredns_py.errors import ManifestWarning, SourceError
from coredns_py.source import kustomize

SUFFIXES = (".yaml", ".yml", ".json")


def is_manifest_file(name: str) -> bool:
    """Files the source reads, by name: manifests and kustomizations;
    hidden files and editor leftovers are not.

    Vim swap files end in .swp, Emacs backups in ~ and lock files start with
    .#; all of them are hidden or have the wrong suffix, checked here so the
    watcher and the loader agree.
    """
    base = os.path.basename(name)
    if base.startswith(".") or base.endswith("~"):
        return False
    return base.lower().endswith(SUFFIXES) or kustomize.is_kustomization(base)


@dataclass
class Listing:
    """What a walk of the folder found."""

    files: list[Path]  # manifest files, in path order
    kustomizations: list[Path]
    # Folders reached through a symlink that lie outside the folder's own
    # tree: the watcher watches them too.
    outside: list[Path] = field(default_factory=list)
    loops: list[ManifestWarning] = field(default_factory=list)


def _check_root(root: Path) -> None:
    if not root.is_dir():
        if not root.exists():
            raise SourceError(f"manifests folder {root} does not exist")
        raise SourceError(f"manifests path {root} is not a folder")
    if not os.access(root, os.R_OK | os.X_OK):
        raise SourceError(f"manifests folder {root} is not readable")


def walk(root: Path) -> Listing:
    """Every manifest file and kustomization under root, recursively.

    Symlinked folders are followed, as users link shared manifests into a
    folder.  Each folder is read once: a folder reached both directly and
    through a link (``current -> v2`` beside ``v2/``) is read under its own
    name; a link back to a folder it is inside of (a loop) is not followed
    and is reported.  Hidden folders (.git) are skipped.
    """
    _check_root(root)
    files: list[Path] = []
    kusts: list[Path] = []
    out = Listing(files, kusts)
    real_root = os.path.realpath(root)
    st = os.stat(root)
    visited = {(st.st_dev, st.st_ino)}
    links: list[tuple[str, tuple, tuple]] = []  # (link path, its ancestors' keys, target key)

    def read_tree(top: str, ancestors: tuple) -> None:
        """The folders under top that are no symlinks; links are kept for later,
        so that a folder's own name wins over a link to it."""
        stack = [(top, ancestors)]
        while stack:
            directory, chain = stack.pop()
            try:
                with os.scandir(directory) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError:
                continue  # unreadable or gone: what can be read is served
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    if entry.is_dir():
                        est = entry.stat()
                        key = (est.st_dev, est.st_ino)
                        if entry.is_symlink():
                            links.append((entry.path, chain, key))
                        elif key not in visited:
                            visited.add(key)
                            stack.append((entry.path, chain + (key,)))
                    elif is_manifest_file(entry.name):  # what a file is: the loader's concern
                        (kusts if kustomize.is_kustomization(entry.name) else files).append(
                            Path(entry.path))
                except OSError:
                    continue  # a dangling link, or a file gone meanwhile

    read_tree(str(root), tuple(visited))
    while links:
        links.sort()
        path, chain, key = links.pop(0)
        if key in chain:
            target = os.path.realpath(path)
            out.loops.append(ManifestWarning(
                f"symlink loop: {path} leads back to {target}, a folder it is in; "
                "not followed", path))
            continue
        if key in visited:
            continue  # read already under another name
        visited.add(key)
        real = os.path.realpath(path)
        if real != real_root and not real.startswith(real_root + os.sep):
            out.outside.append(Path(path))
        read_tree(path, chain + (key,))

    # Path order: each file's parts below root (every path found is root's
    # text, a separator, then the rest).  pathlib's relative_to took 15 ms
    # of a 2000-file listing.
    cut = len(os.path.join(str(root), ""))

    def order(p: Path):
        return tuple(str(p)[cut:].split(os.sep))

    files.sort(key=order)
    kusts.sort(key=order)
    return out


def list_files(root: Path) -> list[Path]:
    """Every manifest file under root, recursively, in path order."""
    return walk(root).files


def folder_readable(path) -> bool:
    """True when the folder can be opened now (a cheap live check)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    os.close(fd)
    return True
