"""The commands of issue 18 beside the core ones in cli.py: `runs show`, `init`
(their arguments and handlers; cli.py dispatches to them)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from runner.errors import UsageError
from runner.plan import compile_plan


def _cluster_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", metavar="FILE")
    parser.add_argument("--context", metavar="NAME")


def runs_show_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN_ID")
    parser.add_argument("--format", choices=("text", "json", "mermaid"), default="text",
                        help="mermaid: a Gantt chart of the steps")
    parser.add_argument("-n", "--namespace", help="the namespace of the run's journal")
    _cluster_args(parser)
    parser.add_argument("--local", action="store_true",
                        help="only the local copy under .runplan/runs (no cluster)")


def init_args(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("workload", metavar="KIND/NAME", help="statefulset/web, deployment/api, cloneset/x")
    add("-n", "--namespace", help="the workload's namespace (default: the kube context's)")
    add("-o", "--output", metavar="FILE", help="write the plan here (default: stdout)")
    add("--container", metavar="NAME", help="the container to roll (default: the first)")
    add("--image", metavar="IMAGE", help="the default of new_image (default: the current one)")
    _cluster_args(parser)


def cmd_runs_show(args: argparse.Namespace) -> int:
    from runner.report import timeline

    kube = None if args.local else connect_or_none(args, args.namespace)
    print(timeline.render(timeline.load(args.run_id, kube, args.namespace), args.format))
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


def cmd_init(args: argparse.Namespace) -> int:
    from runner import scaffold
    from runner.kube import connect

    target = Path(args.output) if args.output else None
    if target is not None and target.exists():
        raise UsageError(f"init -o {target}: the file exists; remove it or choose another")
    kube = connect(args.kubeconfig, args.context, args.namespace)
    try:
        work = scaffold.read(kube, args.workload, args.namespace or kube.namespace,
                             args.container)
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
