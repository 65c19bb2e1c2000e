"""The only package of runplan that imports `kubernetes`.

Everything it returns is plain JSON dicts (as the API sends them) or its own
frozen dataclasses; every failure is a runner.errors class.
"""

from __future__ import annotations

from runner.kube.client import Kube, connect
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
from runner.kube.rollout import RolloutState, ordinal, pod_ready, pod_revision, rollout_state
from runner.kube.waits import wait_rollout
from runner.kube.watch import Cache, Source, Watcher, of_kind, wait_for

__all__ = [
    "Cache", "Identity", "Kube", "Resource", "Revision", "RolloutState", "Source", "Undo",
    "Watcher", "connect", "deployment_revisions", "last_events", "of_kind", "ordinal",
    "pod_ready", "pod_revision", "resource_for", "retry_conflicts", "rollout_state",
    "selector_string", "statefulset_revisions", "undo_deployment", "undo_statefulset",
    "wait_for", "wait_rollout",
]
