"""Which namespace an object lands in.

In a cluster the namespace of an object is decided when it is applied, not
only by the file: ``kubectl apply -n argocd -f install.yaml`` puts every
object that names no namespace into ``argocd`` (off-the-shelf installs and
all ``helm template`` output leave it out on purpose), and a
``kustomization.yaml`` with ``namespace:`` puts every object of its
resources there, whatever they say.  A :class:`Placement` holds both rules
for one file; every source applies it the same way (the folder source per
file, a later ``publish`` through the same loading path).
"""

from __future__ import annotations

from dataclasses import dataclass

# What the API server uses when nothing else says (kubectl's default context).
DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True)
class Placement:
    """``default``: for objects that name no namespace (``kubectl apply -n``);
    ``force``: a kustomization's ``namespace:``, which overrides what the
    objects say ("" when no kustomization sets one)."""

    default: str = DEFAULT_NAMESPACE
    force: str = ""

    def namespace(self, named: object) -> str:
        """The namespace of an object whose ``metadata.namespace`` is ``named``."""
        if self.force:
            return self.force
        return named if isinstance(named, str) and named else self.default


DEFAULT_PLACEMENT = Placement()
