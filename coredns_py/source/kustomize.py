"""Kustomizations in the manifests folder: the namespace they set.

``kubectl apply -k DIR`` puts every object of the files a
``kustomization.yaml`` lists under ``resources:`` (and of the
kustomizations of the folders it lists) into its ``namespace:``, whatever
the objects say; where kustomizations nest, the outer one wins.  That much
is applied here, so the names answer as in the cluster.  Every other field
(``namePrefix``, ``patches``, generators ...) would need kustomize itself:
it is not applied, and a warning says so and how to render the folder
instead (``kubectl kustomize DIR > rendered.yaml``).

Files that no kustomization lists are read as they are.  A file that two
top-level kustomizations list (a base under two overlays) lands in each
overlay's namespace, as applying both overlays would do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import yaml

from coredns_py.errors import ManifestError, ManifestWarning, RefusedFile, shown as brief
from coredns_py.source import validation as v
from coredns_py.source.documents import documents

# The file names kustomize looks for in a folder (konfig.RecognizedKustomizationFileNames).
NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")

# What is applied; other fields are reported as not applied.  `bases` is the
# old spelling of folder resources; apiVersion, kind and metadata change nothing.
_APPLIED = ("namespace", "resources", "bases")
_HARMLESS = ("apiVersion", "kind", "metadata")


def is_kustomization(name: str) -> bool:
    return os.path.basename(name) in NAMES


@dataclass
class Kustomization:
    path: Path
    namespace: str = ""
    # (field, entry): ("resources[0]", "deployment.yaml"), ("bases[1]", "../base")
    resources: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Plan:
    """What the kustomizations say about the folder's files."""

    # file -> the namespaces kustomizations force on it ("": none forces one).
    forced: dict[Path, tuple[str, ...]] = field(default_factory=dict)
    errors: list[ManifestError] = field(default_factory=list)
    notices: list[ManifestWarning] = field(default_factory=list)


def _parse(path: Path, read: Callable[[Path], str], plan: Plan) -> Optional[Kustomization]:
    shown = str(path)
    try:
        # Read and parsed as manifests are: a regular file, within the size,
        # nesting and alias limits (a kustomization.yaml can be hostile too).
        docs = documents(read(path), shown)
        if len(docs) > 1:
            raise yaml.composer.ComposerError(
                None, None, "expected a single document in the stream", None)
        data = docs[0][1] if docs else None
    except RefusedFile as exc:
        exc.__traceback__ = exc.__context__ = None
        plan.errors.append(exc)
        return None
    except (OSError, UnicodeDecodeError) as exc:
        plan.errors.append(ManifestError(
            f"cannot read: {getattr(exc, 'strerror', None) or exc}", shown))
        return None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        plan.errors.append(ManifestError(
            f"invalid YAML: {getattr(exc, 'problem', None) or exc}", shown,
            mark.line + 1 if mark else None))
        return None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        plan.errors.append(ManifestError("expected a kustomization (a mapping)", shown))
        return None
    k = Kustomization(path)
    ns = data.get("namespace")
    if ns not in (None, ""):
        if not isinstance(ns, str):
            plan.errors.append(ManifestError(f"expected a string, got {brief(ns)}", shown,
                                             field="namespace"))
            return None
        problems = v.dns1123_label(ns)
        if problems:
            plan.errors.append(ManifestError(v.invalid(ns, "; ".join(problems)), shown,
                                             field="namespace"))
            return None
        k.namespace = ns
    for key in ("resources", "bases"):
        entries = data.get(key)
        if entries is None:
            continue
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            plan.errors.append(ManifestError("expected a list of paths", shown, field=key))
            return None
        k.resources.extend((f"{key}[{i}]", e) for i, e in enumerate(entries))
    others = sorted(str(key) for key in data if key not in _APPLIED + _HARMLESS)
    if others:
        plan.notices.append(ManifestWarning(
            f"{', '.join(others)} {'is' if len(others) == 1 else 'are'} not applied here "
            f"(only namespace and resources are); to serve what kustomize builds, render "
            f"it: kubectl kustomize {path.parent} > rendered.yaml", shown))
    return k


def plan(root: Path, kustomizations: Iterable[Path], files: Iterable[Path],
         read: Callable[[Path], str]) -> Plan:
    """Work out which namespace each file's objects are forced into.

    ``kustomizations`` and ``files`` are what the folder walk found (paths
    as walked); ``read`` reads a file's text (the folder source's reader)."""
    out = Plan()
    files = set(files)
    by_dir: dict[Path, Kustomization] = {}
    for path in sorted(kustomizations):
        if path.parent in by_dir:
            out.errors.append(ManifestError(
                f"found multiple kustomization files under {path.parent}", str(path)))
            continue
        k = _parse(path, read, out)
        if k is not None:
            by_dir[path.parent] = k
    if not by_dir:
        return out
    root_text = os.path.normpath(root)
    forced: dict[Path, set[str]] = {}

    def target(k: Kustomization, where: str, entry: str):
        """A resource entry as a file or a kustomization, or None (reported)."""
        if "://" in entry or entry.startswith(("github.com/", "git@")):
            out.notices.append(ManifestWarning(
                f"remote resource {entry} is not read", str(k.path), field=where))
            return None
        full = Path(os.path.normpath(k.path.parent / entry))
        text = str(full)
        if text != root_text and not text.startswith(root_text + os.sep):
            out.notices.append(ManifestWarning(
                f"{entry} is outside the manifests folder {root} and is not read",
                str(k.path), field=where))
            return None
        if full in by_dir:
            return by_dir[full]
        if full in files:
            return full
        if full.is_dir():
            out.errors.append(ManifestError(
                v.invalid(entry, "this folder has no kustomization file, which kustomize "
                          "needs"), str(k.path), field=where))
        elif full.exists():
            out.notices.append(ManifestWarning(
                f"{entry} is not a manifest file this server reads (*.yaml, *.yml, *.json)",
                str(k.path), field=where))
        else:
            out.errors.append(ManifestError(
                v.invalid(entry, "no such file or folder"), str(k.path), field=where))
        return None

    # Each entry resolved (and its problems reported) once, however often it is reached.
    resolved = {k.path: [(where, target(k, where, entry)) for where, entry in k.resources]
                for k in by_dir.values()}
    listed = {t.path for entries in resolved.values() for _i, t in entries
              if isinstance(t, Kustomization)}
    visited: set[Path] = set()
    done: set[tuple[Path, str]] = set()  # (kustomization, forced namespace) walked already

    def visit(k: Kustomization, force: str, chain: tuple[Path, ...]) -> None:
        visited.add(k.path)
        force = force or k.namespace  # the outer kustomization wins
        if (k.path, force) in done:
            return
        done.add((k.path, force))
        for where, found in resolved[k.path]:
            if isinstance(found, Kustomization):
                if found.path in chain:
                    cycle = " -> ".join(map(str, chain + (found.path,)))
                    out.errors.append(ManifestError(f"resources form a cycle: {cycle}",
                                                    str(k.path), field=where))
                    continue
                visit(found, force, chain + (found.path,))
            elif found is not None:
                forced.setdefault(found, set()).add(force)

    # Top-level kustomizations first (nobody lists them), then any left in a cycle.
    for k in sorted(by_dir.values(), key=lambda k: k.path):
        if k.path not in listed:
            visit(k, "", (k.path,))
    for k in sorted(by_dir.values(), key=lambda k: k.path):
        if k.path not in visited:
            visit(k, "", (k.path,))
    out.forced = {path: tuple(sorted(namespaces)) for path, namespaces in forced.items()}
    return out

