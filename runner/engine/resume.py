"""`runplan resume RUN_ID`: the same plan, the same variables, after the last success.

A resumed run refuses to continue on a different plan (its digest changed) or
on a cluster where what its finished steps did no longer holds (someone moved
the image or the partition since): continuing then would build on a state the
plan never produced. It keeps the run id, the journal and the before-images,
so a rollback after a resume restores what was there before the first run.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from runner.engine.changes import MISSING, ChangeLog, changed_paths, lookup, prune, show
from runner.engine.clusters import Fleet, connect_fleet
from runner.engine.journal_doc import JournalDoc
from runner.engine.redact import REDACTED
from runner.engine.runs import load_run
from runner.engine.session import run_plan
from runner.errors import NotFound, RunplanError, UsageError
from runner.plan import compile_plan
from runner.status import RunStatus

if TYPE_CHECKING:
    from runner.engine import RunOptions
    from runner.kube import Kube
    from runner.plan.model import Plan, Step



def resume_run(run_id: str, options: RunOptions, kube: Kube) -> int:
    doc = load_run(run_id, kube, namespace=options.namespace)
    if doc.get("status") == RunStatus.SUCCEEDED:
        print(f"run {run_id} succeeded already: nothing to resume")
        return 0
    plan = recompile(doc, options)
    compiled = doc["compile"]
    options = replace(options, namespace=compiled.get("namespace"),
                      cli_vars=tuple(_cli_vars(doc, options).items()),
                      vars_files=tuple(compiled.get("vars_files") or ()))
    # Waves: every cluster of the run, whichever one the journal was read from.
    fleet = connect_fleet(plan, options, _steps(plan, doc), kube) if plan.clusters else None
    try:
        held = drift(kube, ChangeLog.from_json(doc.get("changes") or {}), fleet)
        if held:
            lines = "\n  ".join(held)
            raise RunplanError(f"cannot resume run {run_id}: what its finished steps did no "
                               f"longer holds:\n  {lines}\nstart a new run instead")
        return run_plan(plan, options, kube if fleet is None else fleet.primary,
                        resumed=cast("dict[str, Any]", doc), fleet=fleet)  # the live copy
    finally:
        if fleet is not None:
            fleet.close(keep=kube)


def _steps(plan: Plan, doc: JournalDoc) -> list[Step]:
    chosen = set(doc.get("selected") or [s.id for s in plan.steps])
    return [step for step in plan.steps if step.id in chosen]


def recompile(doc: JournalDoc, options: RunOptions) -> Plan:
    """The run's plan rendered as it was: same file, variables and namespace."""
    compiled = doc["compile"]
    plan = compile_plan(doc["file"], _cli_vars(doc, options),
                        list(compiled.get("vars_files") or ()), compiled.get("namespace"))
    if plan.digest != doc["digest"]:
        raise UsageError(
            f"{doc['file']}: the plan (or its variables) changed since run {doc['run_id']} "
            f"started (digest {doc['digest'][:12]}… is now {plan.digest[:12]}…): resuming "
            "would run a different plan; start a new run")
    return plan


def _cli_vars(doc: JournalDoc, options: RunOptions) -> dict[str, Any]:
    """The run's -e variables; values the journal redacted must be given again."""
    given = dict(options.cli_vars)
    merged = {key: value for key, value in doc["compile"].get("cli_vars") or ()}
    merged.update(given)
    missing = sorted(k for k, v in merged.items() if v == REDACTED)
    if missing:
        flags = " ".join(f"-e {k}=..." for k in missing)
        raise UsageError(f"run {doc['run_id']}: the journal does not keep secret-looking "
                         f"variables; give them again: runplan resume {doc['run_id']} {flags}")
    return merged


def drift(kube: Kube, log: ChangeLog, fleet: Fleet | None = None) -> list[str]:
    """Fields the run set that no longer hold their value (each `object path: ...`)."""
    problems = []
    for record in log.records():
        if record.after is None:
            continue  # its write never answered: the step that made it runs again
        if fleet is not None:
            kube = fleet.kube(record.cluster)
        res = kube.resource_of({"apiVersion": record.api_version, "kind": record.kind})
        try:
            live = prune(kube.get(res, record.name, record.namespace))
        except NotFound:
            problems.append(f"{_in(record.cluster)}{record.ref}: deleted since the run changed it")
            continue
        for path in changed_paths(record.before or {}, record.after):
            ours, now = lookup(record.after, path), lookup(live, path)
            if ours != now:
                problems.append(f"{_in(record.cluster)}{record.ref} {show(path)}: the run set "
                                f"{_text(ours)}, it is now {_text(now)}")
    return problems


def _in(cluster: str | None) -> str:
    return f"cluster {cluster}: " if cluster else ""


def _text(value: Any) -> str:
    return "nothing" if value is MISSING else repr(value)
