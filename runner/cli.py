"""The `runplan` command: argument parsing, and the one place that turns a
RunplanError into a message on stderr and its exit code (never a traceback).

Start-up time is part of the interface (pre-commit runs `validate` on every
commit): this module and runner.commands import only the standard library and
runner.errors when loaded, and each handler imports what its command needs
(`--version` loads nothing else, `validate` no kubernetes client).
tests/unit/test_startup.py checks it. About 400 lines on purpose: the one table of
commands and the flags they share stay together (pre-commit style).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner import __version__, commands
from runner.errors import PlanError, RunplanError, UsageError, did_you_mean

if TYPE_CHECKING:
    from runner.options import RunOptions
    from runner.plan import Plan

_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@dataclass(frozen=True)
class Command:
    """One subcommand: its usage line, its flags and what runs it (see COMMANDS)."""

    synopsis: str
    summary: str
    arguments: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace], int]


def entry() -> int:
    """The console scripts: main(), then a quick exit (runner/quickexit.py)."""
    from runner.quickexit import leave

    return leave(main())


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return _dispatch(args)
    except PlanError as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    except RunplanError as exc:
        print(f"runplan: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("runplan: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `runplan ... | head`: the reader left, which is not our error
        # Point stdout at /dev/null so the interpreter's final flush cannot raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a writer cut off by a pipe
    except SystemExit as exc:  # argparse: --help (0) or bad usage (2, message printed)
        return exc.code if isinstance(exc.code, int) else 2


def _dispatch(args: list[str]) -> int:
    if args[:2] == ["runs", "show"]:  # a command of two words
        args = ["runs show", *args[2:]]
    if args and args[0] in COMMANDS:
        command = COMMANDS[args[0]]
        return command.handler(_parser(f"runplan {args[0]}", command).parse_args(args[1:]))
    if not args or args[0] in ("-h", "--help"):
        print(_help())
        return 0 if args else 2
    if args[0] == "--version":
        print(f"runplan {__version__}")
        return 0
    return RUN.handler(_parser("runplan", RUN).parse_args(args))


def _help() -> str:
    lines = [f"usage: runplan {RUN.synopsis}   (runplan PLAN --help)"]
    width = max(len(f"{n} {c.synopsis}") for n, c in COMMANDS.items())
    lines += [f"       runplan {f'{n} {c.synopsis}':<{width}}  {c.summary}"
              for n, c in COMMANDS.items()]
    return "\n".join([*lines, "", "exit codes: 0 ok; 1 a step failed; 2 invalid plan or usage; "
                      "3 cluster unreachable;", f"4 lock held by another run; 130 interrupted."
                      f"   runplan {__version__}"])


def _parser(prog: str, command: Command) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=command.summary)
    command.arguments(parser)
    return parser


# --- flags, each declared once -----------------------------------------------------------


def _plan_args(parser: argparse.ArgumentParser, many: bool = False) -> None:
    parser.add_argument("plans" if many else "plan", nargs="+" if many else None, metavar="PLAN",
                        help="a plan file (YAML, runplan/v1)")
    parser.add_argument("-e", "--var", action="append", default=[], metavar="KEY=VALUE",
                        help="set a variable (value parsed as YAML: -e replicas=3 is an int)")
    parser.add_argument("--vars-file", action="append", default=[], metavar="FILE",
                        help="YAML mapping of variables (overrides plan vars)")
    parser.add_argument("-n", "--namespace", help="namespace of the targets (overrides the plan's)")


def _connection_args(parser: argparse.ArgumentParser, namespace_help: str = "") -> None:
    """How to reach the cluster; `namespace_help` adds -n for commands that read runs."""
    parser.add_argument("--kubeconfig", metavar="FILE")
    parser.add_argument("--context", metavar="NAME")
    if namespace_help:
        parser.add_argument("-n", "--namespace", help=namespace_help)


def _execution_args(parser: argparse.ArgumentParser, outputs: tuple[str, ...] = ("text", "json"),
                    ) -> None:
    """What a run and a resumed run share."""
    add = parser.add_argument
    add("--max-parallel", type=_positive, default=4, metavar="N")
    add("--output", choices=outputs, default="text",
        help="markdown: the review as a pull-request comment (with --dry-run)"
        if "markdown" in outputs else None)
    add("--junit", metavar="FILE", help="write a JUnit XML report")
    add("--force-unlock", action="store_true",
        help="take the plan's lock even if another run holds it (operators only)")
    add("--lock-duration", type=_seconds, default=30.0, metavar="SECONDS",
        help="how long the lock outlives a run killed without cleanup (default 30)")


_RUNS_NS = "only runs recorded in this namespace (default: every namespace you may list)"


def _run_args(parser: argparse.ArgumentParser) -> None:
    _plan_args(parser)
    _connection_args(parser)
    add = parser.add_argument
    add("--dry-run", action="store_true", help="review: show what would change, change nothing")
    add("--offline", action="store_true", help="with --dry-run: no cluster contact")
    add("--only", type=_ids, default=(), metavar="ID,..", help="run only these steps")
    add("--from", dest="start_from", metavar="ID", help="start at this step")
    add("--approve", type=_ids, action="append", default=[], metavar="ID,..",
        help="approve these approval steps in advance")
    add("--approved", metavar="FILE", help="run only if the plan matches this saved review")
    add("--save-review", metavar="FILE", help="write the review (rendered plan and its hash)")
    add("--require-unchanged", action="store_true",
        help="with --approved: refuse if a target changed since the review")
    _execution_args(parser, ("text", "json", "markdown"))


def _runs_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plan", nargs="?", metavar="PLAN",
                        help="only runs of this plan (a plan file or a plan name)")
    _connection_args(parser, _RUNS_NS)
    parser.add_argument("--local", action="store_true",
                        help="only the local copies under .runplan/runs (no cluster)")


def _resume_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN_ID")
    _connection_args(parser, "the namespace the run was recorded in")
    parser.add_argument("-e", "--var", action="append", default=[], metavar="KEY=VALUE",
                        help="give again a variable the journal redacted (secret-looking names)")
    _execution_args(parser)


def _approve_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN_ID")
    parser.add_argument("step_id", metavar="STEP_ID")
    parser.add_argument("--reject", action="store_true", help="reject: the step fails")
    parser.add_argument("--reason", default="", help="why (recorded with the decision)")
    _connection_args(parser, "the namespace the run was recorded in")


def _runs_show_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN_ID")
    parser.add_argument("--format", choices=("text", "json", "mermaid"), default="text",
                        help="mermaid: a Gantt chart of the steps")
    _connection_args(parser, _RUNS_NS)
    parser.add_argument("--local", action="store_true",
                        help="only the local copy under .runplan/runs (no cluster)")


def _init_args(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("workload", metavar="KIND/NAME", help="statefulset/web, deployment/api, cloneset/x")
    _connection_args(parser, "the workload's namespace (default: the kube context's)")
    add("-o", "--output", metavar="FILE", help="write the plan here (default: stdout)")
    add("--container", metavar="NAME", help="the container to roll (default: the first)")
    add("--image", metavar="IMAGE", help="the default of new_image (default: the current one)")


def _completion_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=("bash", "zsh", "fish"))


def _steps_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", nargs="?", metavar="KIND")


def _policy_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=("approvals",))


def _graph_args(parser: argparse.ArgumentParser) -> None:
    _plan_args(parser)
    parser.add_argument("--format", choices=("text", "dot", "mermaid"), default="text")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected seconds >= 2, got {text!r}")
    return value


def _ids(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_var(assignment: str) -> tuple[str, Any]:
    """`-e KEY=VALUE`; VALUE is read as a YAML scalar, so `replicas=3` is an int."""
    key, sep, text = assignment.partition("=")
    if not sep or not _VAR_NAME.fullmatch(key):
        raise UsageError(f"-e {assignment!r}: expected KEY=VALUE with KEY a name like image_tag")
    import yaml  # here: `--version` and `--help` never parse YAML

    try:
        value = yaml.safe_load(text) if text.strip() else text
    except yaml.YAMLError:
        return key, text
    plain = (str, int, float, bool, list, dict, type(None))
    return key, value if isinstance(value, plain) else text


def _namespace(args: argparse.Namespace) -> str | None:
    if args.namespace is not None and not _LABEL.fullmatch(args.namespace):
        raise UsageError(f"-n {args.namespace!r}: not a namespace name (a DNS-1123 label)")
    return str(args.namespace) if args.namespace is not None else None


def _compile(args: argparse.Namespace, path: str) -> Plan:
    from runner.plan import compile_plan

    cli_vars = dict(parse_var(a) for a in args.var)
    plan = compile_plan(path, cli_vars, args.vars_file, _namespace(args))
    for note in plan.notes:  # not errors: what an included plan's author should know
        print(f"runplan: {note}", file=sys.stderr)
    return plan


def _cmd_validate(args: argparse.Namespace) -> int:
    problems = []
    for path in args.plans:
        try:
            plan = _compile(args, path)
        except PlanError as exc:
            problems += exc.problems
            continue
        print(f"{path}: ok ({len(plan.steps)} steps)")
    if problems:
        raise PlanError(problems)
    return 0


def _cmd_graph(args: argparse.Namespace) -> int:
    from runner.report import graphs

    print(graphs.render(_compile(args, args.plan), args.format))
    return 0


def _cmd_steps(args: argparse.Namespace) -> int:
    from runner.report import stepdocs

    print(stepdocs.kind_doc(args.kind) if args.kind else stepdocs.overview())
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from runner.plan.validators import SCHEMA_FILE

    print(SCHEMA_FILE.read_text(encoding="utf-8"), end="")
    return 0


def _cmd_resume(args: argparse.Namespace) -> int:
    from runner import engine

    options = engine.RunOptions(
        kubeconfig=args.kubeconfig, context=args.context, namespace=_namespace(args),
        max_parallel=args.max_parallel, output=args.output, junit=args.junit,
        force_unlock=args.force_unlock, lock_duration=args.lock_duration,
        cli_vars=tuple(parse_var(a) for a in args.var))
    return engine.resume(args.run_id, options)


def _cmd_approve(args: argparse.Namespace) -> int:
    from runner.clock import stamp
    from runner.engine import approvals
    from runner.engine.journal_doc import step_status
    from runner.engine.runs import load_run
    from runner.kube import connect
    from runner.status import RunStatus, StepStatus

    kube = connect(args.kubeconfig, args.context, None)
    doc = load_run(args.run_id, kube, namespace=_namespace(args))
    status = step_status(doc, args.step_id)
    waiting = status in (StepStatus.RUNNING, StepStatus.PENDING) and \
        doc.get("status") == RunStatus.RUNNING
    if args.step_id not in (doc.get("selected") or ()) or not waiting:
        raise UsageError(f"run {args.run_id} ({doc.get('status')}): step {args.step_id} does "
                         f"not wait for a decision (step status: {status})"
                         f"{did_you_mean(args.step_id, doc.get('selected') or ())}")
    me = approvals.whoami(kube)
    rule = approvals.read_rule(kube, doc["namespace"], args.run_id, args.step_id)
    refusal = rule.refusal(me.user, me.groups) if rule else ""
    if refusal:
        raise RunplanError(f"run {args.run_id}: {args.step_id}: not recorded: {refusal}")
    decision = approvals.Decision(not args.reject, me.user, stamp(),
                                  "runplan approve", args.reason, me.groups)
    approvals.record(kube, doc["namespace"], args.run_id, args.step_id, decision)
    verb = "rejected" if args.reject else "approved"
    print(f"run {args.run_id}: {args.step_id} {verb} by {decision.by}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    if args.offline and not args.dry_run:
        raise UsageError("--offline only goes with --dry-run (a run needs a cluster)")
    if args.output == "markdown" and not args.dry_run:
        raise UsageError("--output markdown is a review: it goes with --dry-run")
    from runner.plan.selection import check_approvals, selection

    plan = _compile(args, args.plan)
    selected = selection(plan, args.only, args.start_from)
    approve = tuple(i for group in args.approve for i in group)
    check_approvals(plan, approve)
    if not (args.dry_run and args.offline):
        from runner import engine

        return engine.run(plan, _options(args, approve))
    return commands.offline_review(args, plan, selected)


def _options(args: argparse.Namespace, approve: tuple[str, ...]) -> RunOptions:
    from runner.options import RunOptions

    return RunOptions(
        dry_run=args.dry_run, kubeconfig=args.kubeconfig, context=args.context,
        namespace=args.namespace, max_parallel=args.max_parallel, only=args.only,
        start_from=args.start_from, approve=approve, approved=args.approved,
        save_review=args.save_review, require_unchanged=args.require_unchanged,
        output=args.output, junit=args.junit, force_unlock=args.force_unlock,
        lock_duration=args.lock_duration,
        cli_vars=tuple(parse_var(a) for a in args.var), vars_files=tuple(args.vars_file),
    )


# --- the commands: one explicit table (`runplan PLAN` is RUN) ----------------------------

RUN = Command("PLAN [--dry-run [--offline]] [options]",
              "Run a plan; with --dry-run review it (--offline: without a cluster).",
              _run_args, _cmd_run)
COMMANDS: dict[str, Command] = {
    "validate": Command("PLAN...", "schema + templates + graph (CI, pre-commit); exit 0 or 2",
                        lambda p: _plan_args(p, many=True), _cmd_validate),
    "graph": Command("PLAN [--format text|dot|mermaid]", "the plan's step graph",
                     _graph_args, _cmd_graph),
    "steps": Command("[KIND]", "step kinds, their params and an example",
                     _steps_args, _cmd_steps),
    "schema": Command("", "the plan JSON Schema (for editors)", lambda p: None, _cmd_schema),
    "runs": Command("[PLAN] [-n NS]", "recorded runs, newest first", _runs_args,
                    lambda a: commands.runs(a, _namespace)),
    "runs show": Command("RUN_ID [--format F] [-n NS]",
                         "a run's timeline (text, json, mermaid): steps, approvals, rollback",
                         _runs_show_args, lambda a: commands.runs_show(a, _namespace(a))),
    "resume": Command("RUN_ID [-n NS]", "continue a failed run after its finished steps",
                      _resume_args, _cmd_resume),
    "approve": Command("RUN_ID STEP_ID [--reject]", "decide an approval step of a running plan",
                       _approve_args, _cmd_approve),
    "init": Command("KIND/NAME [-n NS] [-o FILE]", "a canary plan for a live workload",
                    _init_args, lambda a: commands.init(a, _namespace(a))),
    "completion": Command("bash|zsh|fish", "a shell completion script (from this parser)",
                          _completion_args, lambda a: commands.completion(a.shell, RUN, COMMANDS)),
    "rbac": Command("PLAN [-n NS]", "the Role (and ClusterRole) a run of the plan needs",
                    _plan_args, lambda a: commands.rbac(_compile(a, a.plan), _namespace(a))),
    "policy": Command("approvals", "the admission policy that makes approvals unforgeable",
                      _policy_args, lambda a: commands.policy()),
}
