"""What several step kinds read from a workload object (plain JSON dicts)."""

from __future__ import annotations

from typing import Any

from runner.errors import StepFailure

Obj = dict[str, Any]


def spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def containers(obj: Obj) -> list[Obj]:
    """The pod template's containers of a workload (or a pod's own)."""
    template = spec(obj).get("template")
    pod_spec = (template or {}).get("spec") if template is not None else spec(obj)
    return list((pod_spec or {}).get("containers") or [])


def images(obj: Obj) -> dict[str, str]:
    return {c["name"]: c.get("image", "") for c in containers(obj)}


def pick_container(step_id: str, obj: Obj, name: str | None) -> str:
    """The container a step means: the one named, or the only one there is."""
    present = list(images(obj))
    if name is None and len(present) == 1:
        return present[0]
    if name in present:
        return name
    title = f"{obj.get('kind', 'object').lower()}/{(obj.get('metadata') or {}).get('name')}"
    if name is None:
        raise StepFailure(step_id, f"{title} has several containers ({', '.join(present)}): "
                                   "name one with `container`")
    raise StepFailure(step_id, f"{title} has no container {name!r} "
                               f"(it has: {', '.join(present) or 'none'})")
