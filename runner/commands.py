"""Handlers of `runs`, `runs show`, `init`, `completion`, `rbac`, `policy` and the
offline review (their flags and their lines in the command table are in cli.py).

Like cli.py, this module imports what each command needs inside its handler, so
that loading it costs a command nothing it does not use.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import __version__
from runner.errors import UsageError

if TYPE_CHECKING:
    from runner.cli import Command
    from runner.plan import Plan


def runs(args: argparse.Namespace, namespace_of: Callable[[argparse.Namespace], str | None],
         ) -> int:
    """`runs`: the plan file is compiled (for its name) before -n is checked."""
    from runner.engine.journal import list_runs
    from runner.plan import compile_plan

    plan_name = args.plan
    if plan_name and plan_name.endswith((".yaml", ".yml")):
        plan_name = compile_plan(plan_name).name
    namespace = namespace_of(args)
    kube = None if args.local else connect_or_none(args, None, "listing local copies only")
    found = list_runs(kube, plan_name, namespace=namespace)
    print(f"{'RUN':<24} {'PLAN':<28} {'NAMESPACE':<16} {'STATUS':<12} {'STEPS':<7} STARTED")
    for run in found:
        print(f"{run.run_id:<24} {run.plan:<28} {run.namespace or '-':<16} {run.status:<12} "
              f"{f'{run.steps_done}/{run.steps_total}':<7} {run.started or '-'}")
    return 0


def runs_show(args: argparse.Namespace, namespace: str | None) -> int:
    from runner.report import timeline

    kube = None if args.local else connect_or_none(args, namespace)
    print(timeline.render(timeline.load(args.run_id, kube, namespace), args.format))
    return 0


def connect_or_none(args: argparse.Namespace, namespace: str | None = None,
                    fallback: str = "reading the local copy only") -> Any:
    """A client when the cluster answers; else say so (the local copies remain)."""
    from runner.errors import ClusterUnreachable
    from runner.kube import connect

    try:
        return connect(args.kubeconfig, args.context, namespace)
    except ClusterUnreachable as exc:
        print(f"runplan: {exc}\nrunplan: {fallback}", file=sys.stderr)
        return None


def init(args: argparse.Namespace, namespace: str | None) -> int:
    from runner import scaffold
    from runner.kube import connect

    target = Path(args.output) if args.output else None
    if target is not None and target.exists():
        raise UsageError(f"init -o {target}: the file exists; remove it or choose another")
    kube = connect(args.kubeconfig, args.context, namespace)
    try:
        work = scaffold.read(kube, args.workload, namespace or kube.namespace, args.container)
    finally:
        kube.close()
    text = scaffold.plan_text(work, args.image)
    if target is None:
        print(text, end="")
        return 0
    target.write_text(text, encoding="utf-8")
    from runner.plan import compile_plan

    plan = compile_plan(str(target))  # what init writes must validate
    print(f"wrote {target}: {len(plan.steps)} steps ({work.target}, container "
          f"{work.container}, {work.image}); next: runplan {target} --dry-run "
          "-e new_image=IMAGE", file=sys.stderr)
    return 0


def completion(shell: str, run: Command, commands: Mapping[str, Command]) -> int:
    from runner import completion as scripts

    print(scripts.script(shell, run, commands, __version__), end="")
    return 0


def rbac(plan: Plan, namespace: str | None) -> int:
    from runner.engine import rbac as roles

    print(roles.render(plan, namespace), end="")
    return 0


def policy() -> int:
    from runner.engine import approval_policy

    print(approval_policy.render(), end="")
    return 0


def offline_review(args: argparse.Namespace, plan: Plan, selected: Collection[str]) -> int:
    """`--dry-run --offline`: the review from the plan alone, no cluster contact."""
    from runner.report import review

    if args.approved or args.save_review:
        from runner.review import approved  # and the journal's redaction it pins with

        if args.approved:
            approved.check_plan(plan, args.approved)
        if args.save_review:
            approved.save(plan, args.save_review)
    if args.junit:
        print("runplan: --junit has no effect with --offline (nothing runs)", file=sys.stderr)
    if args.output == "json":
        import json

        print(json.dumps(review.as_json(plan, selected), indent=2, default=str))
    elif args.output == "markdown":
        from runner.report import markdown

        print(markdown.offline(plan, selected), end="")
    else:
        print(review.text(plan, selected))
    return 0
