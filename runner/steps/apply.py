"""apply: create or update objects from manifests (server-side apply)."""

from __future__ import annotations

import glob
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from runner.errors import StepFailure
from runner.kube.resources import lookup
from runner.plan.limits import MAX_FILE_BYTES, MIB, YamlLimit
from runner.plan.loader import FileTooBig, load_manifests
from runner.steps.base import Need, StepKind, is_template

if TYPE_CHECKING:
    from collections.abc import Callable

    from runner.plan.model import Target
    from runner.steps.context import StepContext


class Apply(StepKind):
    kind = "apply"
    mutating = True
    outputs = {"objects": "the objects applied, as kind/namespace/name"}
    example = """\
- id: install
  apply:
    manifests: [manifests/web/, manifests/extra.yaml]
"""

    def check_files(self, params: dict[str, Any], plan_dir: Path) -> list[str]:
        manifests = params.get("manifests")
        items = manifests if isinstance(manifests, list) else [manifests]
        paths = [m for m in items if isinstance(m, str) and not is_template(m)]
        where = f"paths are relative to the plan's folder, {plan_dir}"
        missing = [p for p in paths if not glob.glob(str(plan_dir / p))]
        big = [f for p in paths for f in _files(plan_dir, p) if _too_big(f)]
        return [f"manifests: '{p}' matches no file ({where})" for p in missing] + [
            f"manifests: {f} is over {MAX_FILE_BYTES // MIB} MiB, the limit on manifest files"
            for f in big]

    def needs(self, params: dict[str, Any], target: Target | None) -> list[Need]:
        """The inline objects' (of kinds in runplan's table); needs_at reads the files too."""
        manifests = params.get("manifests")
        items = manifests if isinstance(manifests, list) else [manifests]
        return object_needs([i for i in items if isinstance(i, dict)], known_kind)

    def needs_at(self, params: dict[str, Any], target: Target | None, plan_dir: Path,
                 resolve: Callable[[str, str], Need | None]) -> list[Need]:
        try:
            objects = self.objects(plan_dir, "", params)
        except (StepFailure, TypeError, KeyError):  # a manifest the run itself will report
            return self.needs(params, target)
        return object_needs(objects, resolve)

    def rebase(self, params: dict[str, Any], plan_dir: Path, root_dir: Path) -> dict[str, Any]:
        manifests = params.get("manifests")
        items = manifests if isinstance(manifests, list) else [manifests]
        moved = [_rebased(m, plan_dir, root_dir) if isinstance(m, str) and not is_template(m)
                 else m for m in items]
        return {**params, "manifests": moved if isinstance(manifests, list) else moved[0]}

    def describe(self, params: dict[str, Any]) -> str:
        manifests = params["manifests"]
        items = manifests if isinstance(manifests, list) else [manifests]
        names = ", ".join(_manifest_text(m) for m in items)
        how = "server-side apply" if params.get("server_side", True) else "client-side apply"
        return f"apply {names} ({how}, field manager runplan)"

    def apply(self, ctx: StepContext, params: dict[str, Any]) -> dict[str, Any]:
        namespace = ctx.namespace
        applied = []
        objects = self.objects(ctx.plan_dir, ctx.step.id, params)
        ctx.kube.before_applying(objects, namespace)  # one write-ahead save for them all
        for obj in objects:
            if params.get("server_side", True):
                done = ctx.kube.apply(obj, ns=namespace)
            else:
                done = _create_or_merge(ctx, obj, namespace)
            meta = done.get("metadata") or {}
            where = f"{meta['namespace']}/" if meta.get("namespace") else ""
            applied.append(f"{done.get('kind', '?').lower()}/{where}{meta.get('name')}")
            ctx.progress(f"applied {applied[-1]}")
        return {"objects": applied}

    def objects(self, plan_dir: Path, step_id: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The objects the step applies, in order (the review dry-runs the same list)."""
        return _objects(plan_dir, step_id, params["manifests"])

    def manifests(self, plan_dir: Path, step_id: str,
                  params: dict[str, Any]) -> list[dict[str, Any]] | None:
        return self.objects(plan_dir, step_id, params)


def object_needs(objects: list[dict[str, Any]],
                 resolve: Callable[[str, str], Need | None]) -> list[Need]:
    """get (the before-image), create and patch (apply creates or updates) per kind."""
    needs: list[Need] = []
    for obj in objects:
        found = resolve(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        if found is not None:
            needs += [replace(found, verb=verb) for verb in ("get", "create", "patch")]
    return needs


def known_kind(api_version: str, kind: str) -> Need | None:
    """A Need template for a kind in runplan's own table (no discovery)."""
    res = lookup(api_version, kind)
    return None if res is None else Need("get", res.group, res.plural, cluster=not res.namespaced)


def _manifest_text(item: Any) -> str:
    if isinstance(item, dict):
        name = (item.get("metadata") or {}).get("name", "?")
        return f"inline {item.get('kind', '?')}/{name}"
    return str(item)


def _rebased(path: str, plan_dir: Path, root_dir: Path) -> str:
    moved = os.path.relpath(plan_dir / path, root_dir)
    return moved + "/" if path.endswith("/") else moved


def _objects(plan_dir: Path, step_id: str, manifests: Any) -> list[dict[str, Any]]:
    """Objects from paths, folders, globs and inline objects, in the order given."""
    items = manifests if isinstance(manifests, list) else [manifests]
    objects: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, dict):
            objects.append(item)
            continue
        for path in _files(plan_dir, str(item)):
            try:
                docs = load_manifests(path)
            except (OSError, UnicodeDecodeError, yaml.YAMLError, FileTooBig, YamlLimit) as exc:
                raise StepFailure(step_id, f"cannot read manifest {path}: {exc}") from None
            objects += _flatten([d for d in docs if d])
    return objects


def _files(plan_dir: Path, pattern: str) -> list[Path]:
    """A folder means its *.yaml, *.yml and *.json files, sorted: a stable apply order."""
    found = []
    for match in sorted(glob.glob(str(plan_dir / pattern))):
        path = Path(match)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
        else:
            found.append(path)
    return found


def _too_big(path: Path) -> bool:
    try:
        return path.stat().st_size > MAX_FILE_BYTES
    except OSError:
        return False


def _flatten(docs: list[Any]) -> list[dict[str, Any]]:
    """`kind: List` documents (as `kubectl get -o yaml` writes) hold their objects in items."""
    out: list[dict[str, Any]] = []
    for doc in docs:
        out += doc.get("items") or [] if doc.get("kind") == "List" else [doc]
    return out


def _create_or_merge(ctx: StepContext, obj: dict[str, Any], namespace: str | None) -> Any:
    """Client-side apply, simplified: create, or merge-patch the manifest onto the object."""
    from runner.errors import AlreadyExists

    try:
        return ctx.kube.create(obj, ns=namespace)
    except AlreadyExists:
        meta = obj.get("metadata") or {}
        res = ctx.kube.resource_of(obj)
        return ctx.kube.patch(res, meta["name"], meta.get("namespace") or namespace, obj, "merge")

