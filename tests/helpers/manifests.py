"""Kubernetes manifests as YAML text, for tests that write a manifests folder.

Each builder returns one YAML document in block style, its fields in the
order a person writes them, and only the fields a test asks for: no
``namespace`` line unless ``namespace`` is given (the server then puts the
object in ``default``), no ``clusterIP`` unless ``cluster_ip`` is given (one
is allocated).  Values are written as given, so an invalid one (a bad IP, a
port out of range) makes a manifest the server rejects; YAML that does not
even parse is better written out literally in the test.

- :func:`service` - a Service; ``ports`` items are a port number or a dict
  of port fields (``{"name": "http", "port": 80, "targetPort": "http"}``).
- :func:`deployment` - a Deployment whose pods carry ``labels``.
- :func:`namespace` - a Namespace.
- :func:`documents` - several documents as one multi-document text.
- :func:`write` - documents into a file of a folder (folders made as needed).

Import them with ``from helpers.manifests import service, write``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Optional, Union

import yaml

Port = Union[int, Mapping[str, object]]


def _dump(obj: dict) -> str:
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)


def _metadata(name: str, namespace: Optional[str],
              labels: Optional[Mapping[str, str]] = None) -> dict:
    meta: dict = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    return meta


def _ports(ports: Iterable[Port], key: str) -> list[dict]:
    return [{key: p} if isinstance(p, int) else dict(p) for p in ports]


def service(name: str, namespace: Optional[str] = None, *, cluster_ip: Optional[str] = None,
            type: Optional[str] = None, selector: Optional[Mapping[str, str]] = None,
            ports: Iterable[Port] = (80,), labels: Optional[Mapping[str, str]] = None,
            status: Optional[Mapping[str, object]] = None, **spec: object) -> str:
    """A Service.  ``cluster_ip="None"`` makes it headless; other ``spec``
    fields are given as the manifest spells them (``ipFamilyPolicy=...``)
    and written after the selector; ``ports=()`` writes no ports;
    ``labels`` are its metadata.labels, ``status`` its status."""
    body: dict = {}
    if type is not None:
        body["type"] = type
    if cluster_ip is not None:
        body["clusterIP"] = cluster_ip
    if selector:
        body["selector"] = dict(selector)
    body.update(spec)
    ports = _ports(ports, "port")
    if ports:
        body["ports"] = ports
    doc = {"apiVersion": "v1", "kind": "Service",
           "metadata": _metadata(name, namespace, labels), "spec": body}
    if status is not None:
        doc["status"] = dict(status)
    return _dump(doc)


def deployment(name: str, namespace: Optional[str] = None, *, replicas: int = 1,
               labels: Optional[Mapping[str, str]] = None,
               ports: Iterable[Port] = (80,)) -> str:
    """A Deployment of ``replicas`` pods labelled ``labels`` (default
    ``{"app": name}``), one container with these ``ports`` (a number is a
    ``containerPort``)."""
    labels = dict(labels or {"app": name})
    container = {"name": "c", "image": "x", "ports": _ports(ports, "containerPort")}
    return _dump({"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": _metadata(name, namespace),
                  "spec": {"replicas": replicas,
                           "selector": {"matchLabels": labels},
                           "template": {"metadata": {"labels": labels},
                                        "spec": {"containers": [container]}}}})


def namespace(name: str, labels: Optional[Mapping[str, str]] = None) -> str:
    """A Namespace (with these metadata.labels)."""
    return _dump({"apiVersion": "v1", "kind": "Namespace",
                  "metadata": _metadata(name, None, labels)})


def documents(*docs: str) -> str:
    """One multi-document YAML text: the documents separated by ``---``."""
    return "---\n".join(docs)


def write(folder: Path, name: str, *docs: str) -> Path:
    """Write the documents to ``folder/name`` (``name`` may have folders in
    it; they and ``folder`` are made when missing); return the file's path."""
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(documents(*docs), encoding="utf-8")
    return path
