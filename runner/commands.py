"""Handlers of `runs show`, `init` and `completion` (their flags and their lines in
the command table are in cli.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import __version__
from runner.errors import UsageError
from runner.plan import compile_plan

if TYPE_CHECKING:
    from runner.cli import Command


def runs_show(args: argparse.Namespace, namespace: str | None) -> int:
    from runner.report import timeline

    kube = None if args.local else connect_or_none(args, namespace)
    print(timeline.render(timeline.load(args.run_id, kube, namespace), args.format))
    return 0


def connect_or_none(args: argparse.Namespace, namespace: str | None = None) -> Any:
    """A client when the cluster answers; else say so (the local copies remain)."""
    from runner.errors import ClusterUnreachable
    from runner.kube import connect

    try:
        return connect(args.kubeconfig, args.context, namespace)
    except ClusterUnreachable as exc:
        print(f"runplan: {exc}\nrunplan: reading the local copy only", file=sys.stderr)
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
    plan = compile_plan(str(target))  # what init writes must validate
    print(f"wrote {target}: {len(plan.steps)} steps ({work.target}, container "
          f"{work.container}, {work.image}); next: runplan {target} --dry-run "
          "-e new_image=IMAGE", file=sys.stderr)
    return 0


def completion(shell: str, run: Command, commands: Mapping[str, Command]) -> int:
    from runner import completion as scripts

    print(scripts.script(shell, run, commands, __version__), end="")
    return 0
