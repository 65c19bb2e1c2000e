"""WorkloadView: the one reading of replicas, strategy, partition and ordinals."""

from __future__ import annotations

from runner.kube.pods import pods_by_ordinal
from runner.workloads import WorkloadView, spec_partition


def test_a_statefulset_counts_its_partition_from_ordinals_start() -> None:
    view = WorkloadView.of("StatefulSet", {"replicas": 3, "ordinals": {"start": 5},
                                           "updateStrategy": {"rollingUpdate": {"partition": 1}}})
    assert (list(view.ordinals), list(view.kept), list(view.updated)) == ([5, 6, 7], [5], [6, 7])
    assert view.first_updated == 6 and view.moves(6) and not view.moves(5)


def test_ondelete_moves_no_ordinal_and_keeps_all() -> None:
    view = WorkloadView.of("statefulset", {"replicas": 2, "updateStrategy": {"type": "OnDelete"}})
    assert view.on_delete and view.partition is None and view.first_updated is None
    assert (list(view.updated), list(view.kept)) == ([], [0, 1])


def test_strategy_defaults_per_kind_and_replicas_default_to_one() -> None:
    assert WorkloadView.of("deployment", {}).strategy == "RollingUpdate"
    assert WorkloadView.of("deployment", {"strategy": {"type": "Recreate"}}).strategy == "Recreate"
    assert WorkloadView.of("daemonset", {"updateStrategy": {"type": "OnDelete"}}).on_delete
    assert WorkloadView.of("deployment", {"replicas": None, "paused": True}) == WorkloadView(
        "deployment", 1, "RollingUpdate", None, 0, True)


def test_a_cloneset_partition_is_the_pods_kept_rounded_as_kruise_does() -> None:
    spec = {"replicas": 4, "updateStrategy": {"partition": "50%"}}
    assert WorkloadView.of("CloneSet", spec).partition == 2
    assert WorkloadView.of("cloneset", {"replicas": 3}).partition == 0
    assert spec_partition(spec) == "50%"  # as written, for the review's end state


def test_pods_by_ordinal_skips_pods_that_are_not_sts_dash_n() -> None:
    pods = [{"metadata": {"name": n}} for n in ("web-0", "web-2", "web-x", "webby-1", "web-01")]
    assert sorted(pods_by_ordinal("web", pods)) == [0, 2]
