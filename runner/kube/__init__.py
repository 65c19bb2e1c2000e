"""The only package of runplan that imports `kubernetes`.

Everything it returns is plain JSON dicts (as the API sends them) or its own
frozen dataclasses; every failure is a runner.errors class.

The names below load on first use (PEP 562): `runner.kube.resources` and
`runner.kube.pods` are plain Python that offline commands (validate, graph,
--dry-run --offline) need, and importing this package must not cost them the
kubernetes client (about 0.3 s of start-up).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.kube import lean
from runner.lazy import attributes

if TYPE_CHECKING:
    from runner.kube.client import Kube
    from runner.kube.connection import connect
    from runner.kube.errors import retry_conflicts
    from runner.kube.events import last_events
    from runner.kube.history import (
        Revision,
        Undo,
        deployment_revisions,
        statefulset_revisions,
        undo_deployment,
        undo_statefulset,
    )
    from runner.kube.kubeconfig import Identity
    from runner.kube.resources import Resource, resource_for, selector_string
    from runner.kube.rollout import (
        RolloutState,
        ordinal,
        pod_ready,
        pod_revision,
        rollout_state,
    )
    from runner.kube.waits import wait_rollout
    from runner.kube.watch import Cache, Source, Watcher, of_kind, wait_for

_HOMES = {
    "client": ("Kube",), "connection": ("connect",), "errors": ("retry_conflicts",),
    "events": ("last_events",),
    "history": ("Revision", "Undo", "deployment_revisions", "statefulset_revisions",
                "undo_deployment", "undo_statefulset"),
    "kubeconfig": ("Identity",), "resources": ("Resource", "resource_for", "selector_string"),
    "rollout": ("RolloutState", "ordinal", "pod_ready", "pod_revision", "rollout_state"),
    "waits": ("wait_rollout",), "watch": ("Cache", "Source", "Watcher", "of_kind", "wait_for"),
}
lean.install()  # before any module of this package imports kubernetes: see lean.py
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


__getattr__ = attributes(__name__, _MODULE_OF)


__all__ = [
    "Cache", "Identity", "Kube", "Resource", "Revision", "RolloutState", "Source", "Undo",
    "Watcher", "connect", "deployment_revisions", "last_events", "of_kind", "ordinal",
    "pod_ready", "pod_revision", "resource_for", "retry_conflicts", "rollout_state",
    "selector_string", "statefulset_revisions", "undo_deployment", "undo_statefulset",
    "wait_for", "wait_rollout",
]
