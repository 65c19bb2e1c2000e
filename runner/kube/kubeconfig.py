"""Client settings exactly as kubectl finds them.

Order: `--kubeconfig FILE` (that file only), else every file in `KUBECONFIG`
(merged, missing files ignored), else `~/.kube/config`; with none of those and
`KUBERNETES_SERVICE_HOST` set, the pod's service account (in-cluster).
Merging follows kubectl: the first file to define a context/cluster/user name
or `current-context` wins. Namespace: `-n`, else the context's, else the
service account's (in cluster), else "default".

Credentials stay inside the client's Configuration: nothing here prints or
keeps tokens or keys (the client itself may write key data to private temp
files, which it removes at exit).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes.client import Configuration
from kubernetes.config import incluster_config, kube_config
from kubernetes.config.config_exception import ConfigException

from runner.errors import ClusterUnreachable, UsageError

SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


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
    try:
        merger = kube_config.KubeConfigMerger(kube_config.ENV_KUBECONFIG_PATH_SEPARATOR.join(paths))
    except (ConfigException, OSError, ValueError) as exc:
        raise UsageError(f"cannot read kubeconfig {', '.join(paths)}: {exc}") from None
    merged = merger.config
    if merged is None:
        raise ClusterUnreachable(f"kubeconfig {', '.join(paths)} holds no configuration")
    # kubectl: the first file that sets current-context wins (the client takes the last).
    firsts = [c.get("current-context") for c in merger.config_files.values() if c]
    current = next((c for c in firsts if c), None)
    name = context or current
    entry = _context_entry(merged.value, name, paths)
    configuration = Configuration()
    try:
        loader = kube_config.KubeConfigLoader(config_dict=merged, active_context=name,
                                              config_base_path=None)
        loader.load_and_set(configuration)
    except (ConfigException, OSError, ValueError) as exc:
        raise ClusterUnreachable(f"kubeconfig context {name}: {exc}") from None
    identity = Identity(configuration.host, name, entry.get("user"))
    return Settings(configuration, namespace or entry.get("namespace") or "default", identity)


def _context_entry(merged: dict[str, Any], name: str | None, paths: list[str]) -> dict[str, Any]:
    # The merger wraps each entry in a ConfigNode (to remember its file); unwrap.
    entries = [getattr(c, "value", c) for c in merged.get("contexts") or []]
    contexts = {c["name"]: (c.get("context") or {}) for c in entries}
    if not name:
        raise UsageError(f"kubeconfig {', '.join(paths)} sets no current-context; pass "
                         f"--context (contexts: {', '.join(sorted(contexts)) or 'none'})")
    if name not in contexts:
        raise UsageError(f"context {name!r} not found in kubeconfig {', '.join(paths)} "
                         f"(contexts: {', '.join(sorted(contexts)) or 'none'})")
    return dict(contexts[name])


def _in_cluster(namespace: str | None) -> Settings:
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
