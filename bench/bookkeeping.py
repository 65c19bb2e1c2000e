"""Journal and lock: ConfigMap writes per finished step and Lease requests per minute.

One run of a soak canary on one Deployment (set_image, wait_ready, a 120 s
`wait`, set_image back, wait_ready), long enough for the lock's renewals (every
15 s at the default 30 s lease: 4 a minute) to outweigh taking and releasing
it (2 a run: a 1-minute run makes 6): every request of the run is counted
from the audit log. Journal writes are runplan's creates and patches of
ConfigMaps (its journal is the only ConfigMap it writes); lock requests are
all of its Lease requests: taking, renewing, releasing. The fan-out stage
reports the same journal figure for its 100 steps.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

from bench.audit import AuditLog, journal_writes, lock_requests
from bench.common import (
    NEW_IMAGE,
    OLD_IMAGE,
    RUNPLAN,
    Bench,
    create_namespace,
    delete_namespace,
    log,
    run_duration,
    run_events,
    run_timed,
)
from bench.fanout import deployment

NAMESPACE = "bookkeeping"
SOAK = "120s"


def plan() -> dict[str, Any]:
    target = {"target": "deployment/app-0"}
    return {"apiVersion": "runplan/v1", "kind": "Plan", "metadata": {"name": "soak"},
            "namespace": NAMESPACE, "defaults": {"timeout": "3m"}, "steps": [
                {"id": "canary", "set_image": {**target, "container": "c", "image": NEW_IMAGE}},
                {"id": "ready", "wait_ready": target},
                {"id": "soak", "wait": {"duration": SOAK}},
                {"id": "back", "set_image": {**target, "container": "c", "image": OLD_IMAGE}},
                {"id": "settled", "wait_ready": target},
            ]}


def run(bench: Bench) -> dict[str, Any]:
    api = bench.api()
    audit = AuditLog(bench.audit_log)
    create_namespace(api, NAMESPACE, [deployment(0)])
    try:
        with tempfile.TemporaryDirectory(prefix="runplan-soak-") as tmp:
            plan_file = Path(tmp) / "soak.yaml"
            plan_file.write_text(yaml.safe_dump(plan(), sort_keys=False))
            done = run_timed([str(RUNPLAN), str(plan_file), "--output", "json"], bench.env())
    finally:
        delete_namespace(api, NAMESPACE)
    requests = audit.select("runplan", done.start, done.end)
    finished = sum(e.get("event") == "step_finished" for e in run_events(done.output))
    duration = run_duration(done.output)
    result = {"steps": finished, "journal_writes": journal_writes(requests),
              "lock_requests": lock_requests(requests), "minutes": duration / 60,
              "ok": done.returncode == 0}
    log(f"soak run: rc={done.returncode} {duration:.1f}s {result}")
    return result
