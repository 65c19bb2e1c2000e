"""`up` survives a crashed earlier run, `up` twice reuses, `down` leaves nothing."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from localcluster import cluster, processes
from localcluster.processes import State


def _our_processes(state_dir: Path) -> list[int]:
    """PIDs whose command line mentions this state dir (every component's does)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(state_dir).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_crash_leftovers_are_cleaned_and_down_stops_everything(tmp_path: Path) -> None:
    state_dir = tmp_path / "lc"
    first = cluster.up(state_dir, log=lambda _: None, extras=("prometheus",))
    again = cluster.up(state_dir, log=lambda _: None, extras=("prometheus",))
    assert again == first  # healthy cluster reused, not restarted
    assert first.prometheus and f"RUNPLAN_PROMETHEUS_URL={first.prometheus}" in first.exports()
    state = State.load(state_dir)
    assert state is not None and all(cluster.status(state_dir).values())
    assert "prometheus" in cluster.status(state_dir)

    # A crash: the API server dies hard, the rest keeps running.
    os.kill(state.pids["kube-apiserver"], signal.SIGKILL)
    processes.stop({"kube-apiserver": state.pids["kube-apiserver"]}, state.bin_dir, grace=0)
    recovered = cluster.up(state_dir, log=lambda _: None, extras=("prometheus",))
    assert recovered.kubeconfig.is_file() and recovered.prometheus
    new_state = State.load(state_dir)
    assert new_state is not None
    assert set(new_state.pids.values()).isdisjoint(state.pids.values())
    assert all(not processes.alive(pid, state.bin_dir) for pid in state.pids.values())

    cluster.down(state_dir, log=lambda _: None)
    assert _our_processes(state_dir) == []
    assert not any(cluster.status(state_dir).values())
