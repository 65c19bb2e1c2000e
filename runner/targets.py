"""Kubernetes kinds as plans name them (kubectl style) and pod ordinals.

Kept free of runner.plan imports: both the plan compiler and the step kinds use it.
"""

from __future__ import annotations

import re
from typing import Any

from runner.errors import did_you_mean

KIND_ALIASES = {
    "deployment": "deployment",
    "deploy": "deployment",
    "statefulset": "statefulset",
    "sts": "statefulset",
    "daemonset": "daemonset",
    "ds": "daemonset",
    "cloneset": "cloneset",
    "service": "service",
    "svc": "service",
    "pod": "pod",
    "po": "pod",
}
KIND_TITLES = {
    "deployment": "Deployment",
    "statefulset": "StatefulSet",
    "daemonset": "DaemonSet",
    "cloneset": "CloneSet",
    "service": "Service",
    "pod": "Pod",
}
WORKLOADS = frozenset({"deployment", "statefulset", "daemonset", "cloneset"})
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


def normalize_kind(kind: str) -> str:
    """`sts`, `StatefulSet`, `statefulsets` -> `statefulset`; ValueError otherwise."""
    key = kind.lower()
    if key not in KIND_ALIASES and key.endswith("s") and key[:-1] in KIND_ALIASES:
        key = key[:-1]
    if key not in KIND_ALIASES:
        known = ", ".join(KIND_TITLES)
        raise ValueError(f"unknown kind '{kind}'{did_you_mean(key, KIND_ALIASES)} (kinds: {known})")
    return KIND_ALIASES[key]


def split_target(value: Any, default_kind: str = "") -> tuple[str, str, str | None]:
    """(kind, name, namespace) from `kind/name` or `{kind, name, namespace}`.

    `default_kind` lets a bare name stand for itself (verify_dns: `service: web`).
    Raises ValueError with a message fit for the user.
    """
    namespace = None
    if isinstance(value, dict):
        kind, name = str(value.get("kind", "")), str(value.get("name", ""))
        namespace = value.get("namespace")
    elif isinstance(value, str) and "/" in value:
        kind, _, name = value.partition("/")
    elif isinstance(value, str) and default_kind:
        kind, name = default_kind, value
    else:
        raise ValueError(f"bad target {value!r}: expected kind/name, like statefulset/web")
    if not _NAME.fullmatch(name):
        raise ValueError(f"bad target {value!r}: '{name}' is not a valid object name")
    return normalize_kind(kind), name, namespace


_ANY_KIND = re.compile(r"[A-Za-z][A-Za-z0-9]*(\.[a-z0-9]([-a-z0-9.]*[a-z0-9])?)?")
_API_VERSION = re.compile(r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?v[0-9]+[a-z0-9]*")


def split_object_target(value: Any) -> tuple[str, str, str | None, str | None]:
    """(kind, name, namespace, apiVersion) of a target of any kind.

    Built-in kinds normalize (`svc` -> `service`); any other kind is kept as
    written, lowercased (`httproute`, `httproutes.gateway.networking.k8s.io`),
    for discovery to resolve. A mapping may carry `apiVersion` (CRDs need it
    to be told apart offline). Raises ValueError with a message for the user.
    """
    api_version = None
    if isinstance(value, dict):
        kind, name = str(value.get("kind", "")), str(value.get("name", ""))
        namespace, api_version = value.get("namespace"), value.get("apiVersion")
    elif isinstance(value, str) and "/" in value:
        kind, _, name = value.partition("/")
        namespace = None
    else:
        raise ValueError(f"bad target {value!r}: expected kind/name, like service/web, "
                         "or {apiVersion, kind, name}")
    if not _ANY_KIND.fullmatch(kind):
        raise ValueError(f"bad target {value!r}: '{kind}' is not a kind")
    if not _NAME.fullmatch(name):
        raise ValueError(f"bad target {value!r}: '{name}' is not a valid object name")
    if api_version is not None and not _API_VERSION.fullmatch(str(api_version)):
        raise ValueError(f"bad target {value!r}: '{api_version}' is not an apiVersion "
                         "like v1 or gateway.networking.k8s.io/v1")
    try:
        kind = normalize_kind(kind)
    except ValueError:
        kind = kind.lower()
    return kind, name, namespace, api_version


def target_text(value: Any, default_kind: str = "") -> str:
    """`statefulset/web` for describe() lines; the raw text when it does not parse."""
    try:
        kind, name, _ = split_target(value, default_kind)
    except ValueError:
        try:
            kind, name, _, _ = split_object_target(value)
        except ValueError:
            return str(value)
    return f"{kind}/{name}"


INT32_MAX = 2**31 - 1
MAX_ORDINAL_RANGE = 10_000  # pods checked one by one; no StatefulSet verified so is bigger


def parse_ordinals(key: str) -> range:
    """`"2-4"` -> range(2, 5); `"3"` -> range(3, 4); ValueError when reversed or too wide."""
    low, _, high = key.partition("-")
    first, last = int(low), int(high or low)
    if last < first:
        raise ValueError(f"ordinal range '{key}' is reversed: write '{last}-{first}'")
    if last > INT32_MAX:
        raise ValueError(f"ordinal {last:,} is past {INT32_MAX:,}, the int32 limit of ordinals")
    if last - first >= MAX_ORDINAL_RANGE:
        raise ValueError(f"ordinal range '{key}' spans over {MAX_ORDINAL_RANGE:,} ordinals, "
                         "the limit per range")
    return range(first, last + 1)
