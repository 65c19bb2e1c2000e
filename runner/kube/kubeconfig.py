"""Client settings exactly as kubectl finds them.

Order: `--kubeconfig FILE` (that file only), else every file in `KUBECONFIG`
(merged, missing files ignored), else `~/.kube/config`; with none of those and
`KUBERNETES_SERVICE_HOST` set, the pod's service account (in-cluster).
Merging follows kubectl: the first file to define a context/cluster/user name
or `current-context` wins. Namespace: `-n`, else the context's, else the
service account's (in cluster), else "default".

A context whose user has a token or a client certificate (and a cluster with a
server, CA, tls-server-name, proxy or insecure-skip-tls-verify) is read here, as
the client's `KubeConfigLoader` reads it; anything else (exec plugins, auth
providers, token files, basic auth) goes to that loader. Importing it costs
every run about 0.07 s (oauthlib, requests), hence the split;
tests/unit/test_kubeconfig_loaders.py holds both to the same settings.

Credentials stay inside the client's Configuration: nothing here prints or
keeps tokens or keys (key and certificate data go to private temp files, as
the client's loader writes them, removed at exit).
"""

from __future__ import annotations

import atexit
import base64
import binascii
import contextlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client.configuration import Configuration

from runner.errors import ClusterUnreachable, UsageError

SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# User fields read here; any other field (exec, auth-provider, tokenFile,
# username/password, ...) sends the context to the client's own loader.
SIMPLE_USER = frozenset({"token", "client-certificate", "client-certificate-data",
                         "client-key", "client-key-data"})
SECTIONS = {"contexts": "context", "clusters": "cluster", "users": "user"}


@dataclass(frozen=True)
class Identity:
    """Who talks to which cluster; `authenticated_as` is what the API says we are."""

    server: str
    context: str | None
    user: str | None
    authenticated_as: str | None = None


@dataclass(frozen=True)
class Settings:
    configuration: Configuration
    namespace: str
    identity: Identity


@dataclass(frozen=True)
class Entry:
    """One named context, cluster or user, and the directory of the file defining it
    (relative paths in it are relative to that file, as kubectl reads them)."""

    value: dict[str, Any]
    base: str


def load(kubeconfig: str | None = None, context: str | None = None,
         namespace: str | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    paths = kubeconfig_paths(kubeconfig, env)
    if not paths:
        if not kubeconfig and env.get("KUBERNETES_SERVICE_HOST"):
            return _in_cluster(namespace)
        raise ClusterUnreachable(
            "no kubeconfig found: pass --kubeconfig, set KUBECONFIG or create ~/.kube/config")
    return _from_files(paths, context, namespace)


def kubeconfig_paths(kubeconfig: str | None, env: Mapping[str, str]) -> list[str]:
    """The files kubectl would read, in precedence order."""
    if kubeconfig:
        path = os.path.expanduser(kubeconfig)
        if not os.path.isfile(path):
            raise UsageError(f"kubeconfig {kubeconfig} does not exist")
        return [path]
    if env.get("KUBECONFIG"):
        candidates = [os.path.expanduser(p) for p in env["KUBECONFIG"].split(os.pathsep) if p]
        return list(dict.fromkeys(p for p in candidates if os.path.isfile(p)))
    default = os.path.expanduser("~/.kube/config")
    return [default] if os.path.isfile(default) else []


def _from_files(paths: list[str], context: str | None, namespace: str | None) -> Settings:
    documents = [(path, _read(path)) for path in paths]
    if not any(document for _, document in documents):
        raise ClusterUnreachable(f"kubeconfig {', '.join(paths)} holds no configuration")
    # kubectl: the first file that sets current-context wins (and _merge: the first to
    # define a name).
    current = next((d.get("current-context") for _, d in documents
                    if d.get("current-context")), None)
    name = context or current
    entries = _merge(documents)
    entry = _context_entry(entries["contexts"], name, paths).value
    try:
        configuration = _simple(entries, entry)
        if configuration is None:
            configuration = _official(paths, name)
    except (OSError, ValueError) as exc:
        raise ClusterUnreachable(f"kubeconfig context {name}: {exc}") from None
    identity = Identity(configuration.host, name, entry.get("user"))
    return Settings(configuration, namespace or entry.get("namespace") or "default", identity)


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read kubeconfig {path}: {exc}") from None
    if document is not None and not isinstance(document, dict):
        raise UsageError(f"cannot read kubeconfig {path}: not a mapping")
    return document or {}


def _merge(documents: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Entry]]:
    """Named entries of every file; the first file to define a name wins."""
    merged: dict[str, dict[str, Entry]] = {section: {} for section in SECTIONS}
    for path, document in documents:
        base = os.path.abspath(os.path.dirname(path))
        for section, field in SECTIONS.items():
            for item in document.get(section) or []:
                if isinstance(item, dict) and item.get("name") is not None:
                    merged[section].setdefault(str(item["name"]),
                                               Entry(dict(item.get(field) or {}), base))
    return merged


def _context_entry(contexts: dict[str, Entry], name: str | None, paths: list[str]) -> Entry:
    if not name:
        raise UsageError(f"kubeconfig {', '.join(paths)} sets no current-context; pass "
                         f"--context (contexts: {', '.join(sorted(contexts)) or 'none'})")
    if name not in contexts:
        raise UsageError(f"context {name!r} not found in kubeconfig {', '.join(paths)} "
                         f"(contexts: {', '.join(sorted(contexts)) or 'none'})")
    return contexts[name]


def _simple(entries: dict[str, dict[str, Entry]], context: dict[str, Any]) -> Configuration | None:
    """The settings `KubeConfigLoader.load_and_set` makes of a token or client
    certificate user; None when the user needs that loader."""
    cluster = entries["clusters"].get(str(context.get("cluster")))
    user = entries["users"].get(str(context.get("user")))
    if cluster is None or (user is not None and not set(user.value) <= SIMPLE_USER):
        return None  # a missing cluster: the client's loader words the error
    configuration = Configuration()
    if user is not None and user.value.get("token"):
        configuration.api_key["BearerToken"] = f"Bearer {user.value['token']}"
    _cluster_settings(configuration, cluster, user)
    return configuration


def _cluster_settings(configuration: Configuration, cluster: Entry, user: Entry | None) -> None:
    fields = cluster.value
    if "server" in fields:
        configuration.host = str(fields["server"]).rstrip("/")
        if configuration.host.startswith("https"):
            configuration.ssl_ca_cert = _file(fields, "certificate-authority", cluster.base)
            if user is not None:  # the client takes both from the cluster file's directory
                configuration.cert_file = _file(user.value, "client-certificate", cluster.base)
                configuration.key_file = _file(user.value, "client-key", cluster.base)
    if "insecure-skip-tls-verify" in fields:
        configuration.verify_ssl = not fields["insecure-skip-tls-verify"]
    if "tls-server-name" in fields:
        configuration.tls_server_name = fields["tls-server-name"]
    if "proxy-url" in fields:
        configuration.proxy = fields["proxy-url"]


def _file(fields: dict[str, Any], key: str, base: str) -> str | None:
    """`key`'s path, or `key-data` (base64, preferred) written to a private temp file."""
    if f"{key}-data" in fields:
        data = fields[f"{key}-data"]
        return _temp_file(_decode(data, key)) if data else None
    if key not in fields:
        return None
    path = os.path.normpath(os.path.join(base, str(fields[key])))
    if not os.path.isfile(path):
        raise ValueError(f"File does not exist: {path}")
    return path


def _decode(data: Any, key: str) -> bytes:
    try:
        return base64.standard_b64decode(data.encode() if isinstance(data, str) else data)
    except (binascii.Error, TypeError):
        raise ValueError(f"{key}-data is not base64") from None


_TEMP_FILES: dict[bytes, str] = {}


def _temp_file(content: bytes) -> str:
    """A 0600 file holding `content` (one per content), removed when the process exits."""
    if content in _TEMP_FILES and os.path.isfile(_TEMP_FILES[content]):
        return _TEMP_FILES[content]
    if not _TEMP_FILES:
        atexit.register(_remove_temp_files)
    descriptor, name = tempfile.mkstemp()
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)
    _TEMP_FILES[content] = name
    return name


def _remove_temp_files() -> None:
    for name in _TEMP_FILES.values():
        with contextlib.suppress(OSError):
            os.remove(name)
    _TEMP_FILES.clear()


def _official(paths: list[str], name: str | None) -> Configuration:
    """The client's own loader (exec plugins, auth providers, token files ...)."""
    from kubernetes.config import kube_config
    from kubernetes.config.config_exception import ConfigException

    configuration = Configuration()
    try:
        merger = kube_config.KubeConfigMerger(kube_config.ENV_KUBECONFIG_PATH_SEPARATOR.join(paths))
        loader = kube_config.KubeConfigLoader(config_dict=merger.config, active_context=name,
                                              config_base_path=None)
        loader.load_and_set(configuration)
    except ConfigException as exc:
        raise ValueError(str(exc)) from None
    return configuration


def _in_cluster(namespace: str | None) -> Settings:
    from kubernetes.config import incluster_config
    from kubernetes.config.config_exception import ConfigException

    configuration = Configuration()
    try:
        incluster_config.InClusterConfigLoader(
            token_filename=incluster_config.SERVICE_TOKEN_FILENAME,
            cert_filename=incluster_config.SERVICE_CERT_FILENAME,
        ).load_and_set(configuration)
    except ConfigException as exc:
        raise ClusterUnreachable(f"in-cluster configuration: {exc}") from None
    try:
        pod_namespace = SA_NAMESPACE.read_text().strip()
    except OSError:
        pod_namespace = ""
    identity = Identity(configuration.host, None, "in-cluster service account")
    return Settings(configuration, namespace or pod_namespace or "default", identity)
