"""The service environment variables the kubelet injects into a pod's containers.

Pure functions: :func:`service_env` turns Services into the variables a pod in a
given namespace would see, :func:`format_env` writes them as an env file, a
POSIX shell script or JSON.  Nothing here reads files or the environment.

What the kubelet does (``pkg/kubelet/kubelet_pods.go`` ``getServiceEnvVarMap``
and ``pkg/kubelet/envvars/envvars.go`` ``FromServices``; the rules, with
sources, are in ``shared/reference/kubelet-envvars.md``)
====================================================================================

* **Selection.**  A Service without a real ClusterIP (headless ``None``,
  ExternalName, none allocated) is dropped first; the Service type is never
  looked at otherwise, so NodePort and LoadBalancer Services are included.  Of
  the rest, ``default/kubernetes`` is always kept (even with service links off)
  and the Services of the pod's own namespace are kept when service links are
  on.  Services of any other namespace never appear.  The kept Services are
  keyed by name alone; the master entry never overwrites and a same-namespace
  entry always does, so a ``kubernetes`` Service (with a ClusterIP) in the
  pod's own namespace replaces ``default/kubernetes`` when links are on, and is
  ignored when they are off.
* **Names.**  ``-`` becomes ``_``, then upper case; nothing else (the same for
  port names: ``8083`` stays ``8083``).
* **Variables per Service** (``P`` = the transformed name, ``IP`` = the primary
  ClusterIP exactly as written, ports in manifest order)::

      P_SERVICE_HOST=IP
      P_SERVICE_PORT=<first port>
      P_SERVICE_PORT_<NAME>=<port>             for every named port
      P_PORT=<proto>://<IP:port>               first port only
      P_PORT_<port>_<PROTO>=<proto>://<IP:port>
      P_PORT_<port>_<PROTO>_PROTO=<proto>
      P_PORT_<port>_<PROTO>_PORT=<port>
      P_PORT_<port>_<PROTO>_ADDR=IP

  Only ``port`` is used (never targetPort or nodePort).  Host and port are
  joined as Go's ``net.JoinHostPort`` does: an address containing ``:`` (IPv6)
  is bracketed, and only inside the two URL values.  A dual-stack Service
  contributes its primary (first) ClusterIP only.

Decisions the kubelet leaves open (documented here, tested in tests/test_envvars.py)
=====================================================================================

* **Collisions between Services.**  Two Services can produce the same
  variable name with different values: ``foo`` sets ``FOO_SERVICE_PORT=80``
  while ``foo-service`` sets its Docker-link ``FOO_SERVICE_PORT=tcp://...``;
  ``kubernetes-service`` in the pod's namespace can overwrite the master's
  ``KUBERNETES_SERVICE_PORT`` with a URL, which breaks in-cluster clients.  The
  kubelet stores the variables in a map filled while iterating over another
  map, so the winner is random and can change from one container start to the
  next.  Here the winner is decided per variable, and a warning names the
  variable and every Service involved.  **Rule: the Service with the shortest
  transformed name wins; on a tie, the first by (name, namespace) in plain
  code-point order.**  Why: every variable is ``<service prefix><suffix>``
  where the suffix is one of the kubelet's fixed shapes (``_SERVICE_HOST``,
  ``_SERVICE_PORT[_NAME]``, ``_PORT[_n_PROTO[_PROTO|_PORT|_ADDR]]``).  Two
  different prefixes can only reach the same variable when the longer name
  *contains* one of those suffix shapes (``foo-service``, ``foo-port-80-tcp``,
  ``kubernetes-service``): the shorter name is the Service the variable is
  really about, the longer one only looks like one of its variables.  The
  rule keeps ``FOO_SERVICE_PORT=80`` and the master's
  ``KUBERNETES_SERVICE_PORT``, it does not depend on the input order, and it
  can be explained in one line.  (A tie can only happen between two Services
  whose names transform to the same prefix, which valid names never do.)
  Two Services producing the same variable with the *same* value is not a
  conflict and gives no warning.  Inside one Service the kubelet is
  deterministic (the later variable of ``FromServices``' list wins) and so is
  this module.
* **A Service with a ClusterIP but no ports** would crash the kubelet (it reads
  ``ports[0]``); valid input never has one.  It is skipped with a warning
  naming ``Service ns/name``, and is then treated as absent (so a port-less
  ``kubernetes`` Service in the pod's namespace does not hide the master).
  Only Services in the pod's scope are checked.
* **Names that are not POSIX variable names** (``^[A-Za-z_][A-Za-z0-9_]*$``):
  Service names are RFC 1123 labels and may start with a digit (``1st-api``
  gives ``1ST_API_SERVICE_HOST``); a port name could carry a dot.  The kubelet
  would emit such names, but no shell or env file can use them.  A Service
  whose own prefix is not a valid name is skipped entirely with a warning; a
  port name that makes one ``P_SERVICE_PORT_<NAME>`` variable invalid skips
  that variable only, with a warning.
* **Duplicate Services** (the same namespace/name twice, impossible in a
  cluster): among those with a ClusterIP, the last one given is used, as a
  later ``kubectl apply`` would replace the earlier one, and a warning is
  given when it is in the pod's scope.  Only in that case does the input order
  matter.
* **A very large environment.**  ``execve`` fails with E2BIG ("argument list
  too long") when argv plus the environment exceed ARG_MAX (a quarter of the
  stack rlimit: 2 MiB with the usual 8 MiB stack), and any *single* string
  longer than MAX_ARG_STRLEN (32 pages = 128 KiB) is refused as well.  The
  second limit can be reached first: entrypoints that pack every variable
  name into one argument (the nginx image's ``20-envsubst-on-templates.sh``
  runs ``envsubst "${A} ${B} ..."``) fail at a few hundred Services;
  DependencyTrack's nginx-based frontend failed in ``envsubst`` with about 375
  Services in its namespace (DependencyTrack/helm-charts PR 240).  The 2 MiB
  total is reached at about 2000 Services (kubevirt/containerized-data-importer
  issue 4059; kubernetes issues 84539 and 92615).  The warning is given when
  the service variables alone, counted as the kernel counts them
  (``KEY=value`` plus its terminating NUL), exceed
  :data:`ENV_SIZE_WARN_BYTES` = 64 KiB: half of MAX_ARG_STRLEN, which leaves
  the other half for the image's and the pod's own variables and for the
  ``${...}`` decoration such scripts add.  The fix to suggest is
  ``enableServiceLinks: false``.

Output (:func:`format_env`)
===========================

Every format lists the variables sorted by key in plain code-point order
(Python's ``sorted`` on the strings; for these ASCII names the same as
``LC_ALL=C sort``).  The order carries no meaning: the kubelet's own order is
random.

* ``env``: ``KEY=value`` lines, LF, trailing newline, no quotes, no ``export``,
  no comments.  Docker (``--env-file``, value verbatim after the first ``=``)
  and Compose (``env_file``: quotes removed, ``$`` interpolated, `` #``
  starts a comment, whitespace trimmed) only agree on bare values without
  special characters, so a value outside ``^[A-Za-z0-9._:/\\[\\]-]*$`` (or a key
  that is not a POSIX name) raises :class:`EnvFileError` instead of being
  quoted.  Service variables always pass.  The file can also be read by
  ``set -a; . ./file`` in a POSIX shell and by systemd's ``EnvironmentFile=``.
* ``sh``: ``export KEY=<value quoted by shlex.quote>`` lines, for ``eval`` or
  ``.`` in a POSIX shell.  ``shlex.quote`` leaves a value made only of safe
  characters bare (``export FOO_SERVICE_PORT=80``) and single-quotes anything
  else (``export FOO_PORT='udp://[fd00::1]:53'``); any value except one with a
  NUL byte round-trips.
* ``json``: one JSON object, keys sorted, two-space indent, trailing newline.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from coredns_py import hostport
from coredns_py.errors import CorednsPyError
from coredns_py.source.objects import Service
from coredns_py.pod.resolvconf import check_namespace

__all__ = [
    "ENV_SIZE_WARN_BYTES",
    "FORMATS",
    "MASTER_SERVICE",
    "EnvFileError",
    "EnvResult",
    "env_variable_name",
    "format_env",
    "is_env_file_safe",
    "service_variables",
    "service_env",
]

# The namespace and name of the API server's Service, injected into every pod
# (kubelet masterServices; the namespace is hard-wired since 1.27, PR 116015).
MASTER_SERVICE = ("default", "kubernetes")

# Warn when the service variables (KEY=value plus NUL, as execve counts them)
# exceed this many bytes: half of the kernel's MAX_ARG_STRLEN (32 pages =
# 128 KiB per single argv/envp string), which entrypoints that pass all
# variable names as one argument (envsubst) hit first; see the module docstring.
ENV_SIZE_WARN_BYTES = 64 * 1024

FORMATS = ("env", "sh", "json")

_POSIX_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# What a bare env-file value may contain and read the same in Docker and Compose.
_ENV_FILE_VALUE = re.compile(r"[A-Za-z0-9._:/\[\]-]*")


class EnvFileError(CorednsPyError, ValueError):
    """A variable cannot be written in the requested format."""


@dataclass(frozen=True)
class EnvResult:
    """The variables a pod would see (sorted by key) and what to warn about."""

    variables: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


# --- the kubelet's rules -----------------------------------------------------

def env_variable_name(name: str) -> str:
    """kubelet makeEnvVariableName: ``-`` to ``_``, then upper case, nothing else."""
    return name.replace("-", "_").upper()


def _ref(svc: Service) -> str:
    return f"Service {svc.namespace}/{svc.name}"


def service_variables(svc: Service) -> list[tuple[str, str]]:
    """FromServices for one Service: (name, value) pairs in the kubelet's order.

    The Service must have a ClusterIP and at least one port (service_env checks
    both).  No name validation here: this is the kubelet's output as is.
    """
    prefix = env_variable_name(svc.name)
    ip = svc.cluster_ip  # the primary address, as written
    ports = svc.ports
    out = [(f"{prefix}_SERVICE_HOST", ip), (f"{prefix}_SERVICE_PORT", str(ports[0].port))]
    for sp in ports:
        if sp.name:
            out.append((f"{prefix}_SERVICE_PORT_{env_variable_name(sp.name)}", str(sp.port)))
    for i, sp in enumerate(ports):
        proto = sp.protocol or "TCP"
        url = f"{proto.lower()}://{hostport.join(ip, sp.port)}"
        if i == 0:
            out.append((f"{prefix}_PORT", url))
        group = f"{prefix}_PORT_{sp.port}_{proto.upper()}"
        out += [
            (group, url),
            (f"{group}_PROTO", proto.lower()),
            (f"{group}_PORT", str(sp.port)),
            (f"{group}_ADDR", ip),
        ]
    return out


def _real_cluster_ip(svc: Service) -> bool:
    # helper IsServiceIPSet: not "" and not "None" (has_cluster_ip also drops
    # ExternalName and the unallocated ()).
    return svc.has_cluster_ip and svc.cluster_ip != ""


def _select(services: Iterable[Service], namespace: str, service_links: bool,
            warnings: list[str]) -> list[Service]:
    """getServiceEnvVarMap's selection; the result is sorted by name."""
    # Filter on the ClusterIP first, as the kubelet does, then drop duplicates
    # (the last one wins) and port-less Services (treated as absent).
    latest: dict[tuple[str, str], Service] = {}
    for svc in services:
        if not _real_cluster_ip(svc):
            continue
        key = (svc.namespace, svc.name)
        in_scope = key == MASTER_SERVICE or (service_links and svc.namespace == namespace)
        if key in latest and in_scope and latest[key] != svc:
            warnings.append(f"{_ref(svc)} is given more than once; using the last one")
        latest[key] = svc

    chosen: dict[str, Service] = {}
    for key in sorted(latest):
        svc = latest[key]
        is_master = key == MASTER_SERVICE
        same_ns = service_links and svc.namespace == namespace
        if not (is_master or same_ns):
            continue
        if not svc.ports:
            warnings.append(f"{_ref(svc)} has a ClusterIP ({svc.cluster_ip}) but no ports; "
                            "skipped (the kubelet needs at least one port)")
            continue
        if is_master:
            # Stored only when nothing of that name is stored yet ...
            chosen.setdefault(svc.name, svc)
        else:
            # ... while a same-namespace Service always overwrites.
            chosen[svc.name] = svc
    # The two rules together make the result independent of the order: a local
    # "kubernetes" replaces the master whether it comes before or after it.
    return [chosen[name] for name in sorted(chosen)]


def _winner_key(svc: Service) -> tuple[int, str, str]:
    return (len(env_variable_name(svc.name)), svc.name, svc.namespace)


def service_env(services: Iterable[Service], namespace: str,
                service_links: bool = True) -> EnvResult:
    """The service variables a container of a pod in ``namespace`` starts with.

    ``service_links`` is the pod's ``enableServiceLinks`` (default true, as the
    API server defaults it).  ``default/kubernetes`` is included whenever it is
    among ``services``; it is never invented.  Raises ValueError when
    ``namespace`` is not a valid namespace name.
    """
    check_namespace(namespace)
    warnings: list[str] = []
    selected = _select(services, namespace, service_links, warnings)

    # variable -> {Service: value}, in the order the Services were selected.
    produced: dict[str, dict[Service, str]] = {}
    for svc in selected:
        prefix = env_variable_name(svc.name)
        if not _POSIX_NAME.fullmatch(prefix + "_SERVICE_HOST"):
            warnings.append(f"{_ref(svc)}: its name gives variable names such as "
                            f"{prefix}_SERVICE_HOST, which are not valid environment "
                            "variable names; skipped")
            continue
        own: dict[str, str] = {}
        for name, value in service_variables(svc):
            if not _POSIX_NAME.fullmatch(name):
                warnings.append(f"{_ref(svc)}: port name gives {name}, which is not a valid "
                                "environment variable name; that variable is skipped")
                continue
            own[name] = value  # later wins inside one Service, as in the kubelet
        for name, value in own.items():
            produced.setdefault(name, {})[svc] = value

    variables: dict[str, str] = {}
    for name in sorted(produced):
        by_svc = produced[name]
        winner = min(by_svc, key=_winner_key)
        variables[name] = by_svc[winner]
        if len(set(by_svc.values())) > 1:
            parts = ", ".join(f"{_ref(s)} sets {v!r}"
                              for s, v in sorted(by_svc.items(), key=lambda i: _winner_key(i[0])))
            warnings.append(f"variable {name} is produced by more than one Service with "
                            f"different values ({parts}); using {_ref(winner)}'s value "
                            "(the Service with the shortest name wins; the kubelet would "
                            "pick one at random)")

    size = sum(len(k.encode()) + len(v.encode()) + 2 for k, v in variables.items())
    if size > ENV_SIZE_WARN_BYTES:
        warnings.append(
            f"the service environment is {size} bytes ({len(variables)} variables from "
            f"{len(selected)} Services), over {ENV_SIZE_WARN_BYTES // 1024} KiB: containers "
            "may fail to start with 'argument list too long' (the kernel limits one string "
            "to 128 KiB and argv plus environment to ARG_MAX, 2 MiB by default); consider "
            "enableServiceLinks: false")
    return EnvResult(variables, warnings)


# --- output formats ----------------------------------------------------------

def _env_file_problem(value: str) -> str | None:
    """Why a value cannot be a bare env-file value, or None when it can."""
    if "\n" in value or "\r" in value:
        return "it contains a line break"
    if value != value.strip():
        return "it has leading or trailing whitespace"
    if value[:1] in ("'", '"'):
        return "it starts with a quote (Docker keeps quotes, Compose removes them)"
    if "$" in value:
        return "it contains '$' (Compose interpolates it, Docker does not)"
    if " #" in value:
        return "it contains ' #' (Compose starts a comment there, Docker does not)"
    if not _ENV_FILE_VALUE.fullmatch(value):
        bad = next(c for c in value if not _ENV_FILE_VALUE.fullmatch(c))
        return f"it contains {bad!r}"
    return None


def is_env_file_safe(value: str) -> bool:
    """True when ``KEY=value`` reads the same in docker --env-file and compose env_file."""
    return _env_file_problem(value) is None


def _check_name(name: str, fmt: str) -> None:
    if not isinstance(name, str) or not _POSIX_NAME.fullmatch(name):
        raise EnvFileError(f"cannot write variable {name!r} in {fmt} format: "
                           "not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)")


def format_env(variables: Mapping[str, str], fmt: str) -> str:
    """Render ``variables`` as ``env``, ``sh`` or ``json`` (see the module docstring).

    Raises EnvFileError for a name or value the format cannot carry, and
    ValueError for an unknown format.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    keys = sorted(variables)
    if fmt == "json":
        return json.dumps({k: variables[k] for k in keys}, indent=2) + "\n"
    lines = []
    for key in keys:
        value = variables[key]
        _check_name(key, fmt)
        if fmt == "env":
            problem = _env_file_problem(value)
            if problem:
                raise EnvFileError(f"cannot write variable {key}={value!r} to an env file: "
                                   f"{problem}; only bare values made of [A-Za-z0-9._:/[]-] "
                                   "read the same in docker --env-file and compose env_file, "
                                   "and quoting would not (use the sh or json format)")
            lines.append(f"{key}={value}\n")
        else:
            if "\0" in value:
                raise EnvFileError(f"cannot write variable {key} in sh format: "
                                   "its value contains a NUL byte")
            lines.append(f"export {key}={shlex.quote(value)}\n")
    return "".join(lines)
