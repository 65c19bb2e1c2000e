"""Secrets out of journals: what `scrub` removes before any copy is written.

Split from runner/engine/journal.py; resume reads REDACTED to ask for the
values a journal did not keep.
"""

from __future__ import annotations

import functools
import re
from typing import Any

REDACTED = "<redacted>"

# Key names (lowercased, separators dropped) that hold secrets.
_SECRET_PARTS = ("password", "passwd", "passphrase", "token", "secret", "apikey",
                 "credential", "privatekey", "bearer")
_AUTH_WORDS = {"auth", "authorization", "authn", "authz", "oauth", "basicauth"}
# Only these sections hold user-given values; before-images elsewhere must stay
# exact (a rollback from a resumed journal writes them back), so key names like
# `automountServiceAccountToken` there are left alone.
_SCRUBBED_SECTIONS = {"vars", "cli_vars", "outputs", "params", "env", "inputs"}
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_JWT = re.compile(r"\beyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]+")
_KUBECONFIG = re.compile(r"client-key-data|client-certificate-data|"
                         r"kind:\s*Config\b[\s\S]*\b(clusters|users):")
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


# Every save scrubs the whole document again, and the same keys and strings (the
# before-images above all) come back each time: remember the verdicts.
@functools.lru_cache(maxsize=1 << 16)
def secret_key(key: str) -> bool:
    """Whether a key name (`db_password`, `apiKey`, `Private Key`, `auth`) holds a secret."""
    words = [w.lower() for w in _WORDS.findall(key)]
    flat = "".join(words)
    return any(part in flat for part in _SECRET_PARTS) or bool(_AUTH_WORDS & set(words))


@functools.lru_cache(maxsize=1 << 16)
def secret_value(value: str) -> bool:
    """Strings that are secrets wherever they appear: private keys, JWTs, kubeconfigs."""
    return bool(_PRIVATE_KEY.search(value) or _JWT.search(value)
                or _KUBECONFIG.search(value))


class Scrubbed(dict[str, Any]):
    """A mapping scrub() has already cleaned at the top of a document's non-value
    sections, never changed afterwards (a change record's journal form): scrub()
    keeps it as it is, and its JSON, once made, is kept too. Every save scrubs and
    dumps the whole document again; the records are most of it and do not change."""

    json_text: str | None = None


def scrub(doc: Any, _in_values: bool = False) -> Any:
    """A copy of `doc` without secrets (see `_scrub_dict`); `doc` is not changed."""
    if isinstance(doc, Scrubbed) and not _in_values:
        return doc
    if isinstance(doc, dict):
        return _scrub_dict(doc, _in_values)
    if isinstance(doc, (list, tuple)):
        return [scrub(v, _in_values) for v in doc]
    if isinstance(doc, str) and secret_value(doc):
        return REDACTED
    return doc


def _scrub_dict(doc: dict[Any, Any], in_values: bool) -> Any:
    """Everywhere: Secret objects lose their data, kubeconfigs go whole. In the
    user-value sections (vars, outputs, params...) keys that name secrets and
    env-style `{name: DB_PASSWORD, value: ...}` entries lose their values."""
    if doc.get("kind") == "Secret":
        return _scrub_secret_object(doc)
    if doc.get("kind") == "Config" and ("users" in doc or "clusters" in doc):
        return REDACTED  # a kubeconfig as a mapping
    out = {k: _scrub_item(str(k), v, in_values) for k, v in doc.items()}
    if in_values and "value" in doc and secret_key(str(doc.get("name", ""))):
        out["value"] = REDACTED
    return out


def _scrub_item(key: str, value: Any, in_values: bool) -> Any:
    if in_values and secret_key(key) and value not in (None, ""):
        return REDACTED
    return scrub(value, in_values or key in _SCRUBBED_SECTIONS)


def _scrub_secret_object(obj: dict[str, Any]) -> dict[str, Any]:
    """A Secret (e.g. a before-image): keep its shape, drop every value."""
    out = {k: scrub(v) for k, v in obj.items() if k not in ("data", "stringData")}
    for field in ("data", "stringData"):
        if isinstance(obj.get(field), dict):
            out[field] = dict.fromkeys(obj[field], REDACTED)
    meta = dict(out.get("metadata") or {})
    annotations = dict(meta.get("annotations") or {})
    if "kubectl.kubernetes.io/last-applied-configuration" in annotations:
        annotations["kubectl.kubernetes.io/last-applied-configuration"] = REDACTED
        meta["annotations"] = annotations
        out["metadata"] = meta
    return out
