"""Where objects come from: manifest files to trimmed Kubernetes objects.

The first seam of the data flow.  An :class:`ObjectSource` gives, on every
``load()``, every object it holds now (:class:`Loaded`); today the only one
is a folder of manifests (:mod:`.folder`), which reads YAML and JSON
(:mod:`.documents`, :mod:`.yaml_load`) and trims each document into a frozen
object with Kubernetes' defaults applied (:mod:`.convert`, :mod:`.objects`;
label selectors as the API server evaluates them: :mod:`.selectors`).
Nothing downstream knows which source fed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Protocol


@dataclass(frozen=True)
class Loaded:
    """One load of a whole source."""

    objects: tuple  # every trimmed object, in source order, duplicates removed
    errors: tuple  # ManifestError: every current problem, each naming file, object, field
    files: int  # how many files (or documents of another source) were read
    generation: int  # increases whenever the objects change, never goes back
    # Documents read but not served (Ignored): objects of kinds we do not
    # serve, and documents that are no Kubernetes object at all.
    ignored: tuple = ()
    # ManifestWarning: read, but not quite as a cluster would (kustomize
    # fields that are not applied, a symlink loop): said, never fatal.
    notices: tuple = ()


@dataclass(frozen=True)
class Ignored:
    """A document that is read but not served."""

    kind: str  # "ConfigMap", "Service.serving.knative.dev"; "" when no Kubernetes object
    name: str  # "ConfigMap shop/settings"; "" when it has none
    path: str
    line: Optional[int]

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.name or 'not a Kubernetes object (no apiVersion or kind)'}"


class Stoppable(Protocol):
    def stop(self) -> None: ...


class ObjectSource(Protocol):
    """What the cluster fill-in reads objects from."""

    description: str  # for logs and the status page: "folder zones"

    def load(self) -> Loaded:
        """Every object now; raises SourceError when the source cannot be read."""

    def reset(self) -> None:
        """Forget what was cached: the next load reads everything again (SIGHUP)."""

    def ready(self) -> tuple[bool, str]:
        """Can the source be read now? ``(ok, reason)``, a cheap live check."""

    def watch(self, changed: Callable[[], None]) -> Stoppable:
        """Call ``changed()`` (from any thread) whenever something may have changed."""
