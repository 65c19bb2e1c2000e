"""Approvals of `approval` steps: recorded on the run's journal ConfigMap.

The ConfigMap `runplan-run-<id>` is the one place a decision lands, however
it was made: `--approve ID` at start, the terminal prompt, or `runplan approve
RUN STEP` from anywhere with access to the cluster. The waiting step watches
that ConfigMap, so all three paths are the same path. Each decision is also a
Kubernetes Event on the ConfigMap (`kubectl describe cm runplan-run-<id>`).

A decision is one data key per decider, `approval.<step>.BY.<who>`, whose
value starts with the decider's user name and groups, one line each, as the
API server authenticated them (SelfSubjectReview), then the JSON details.
That layout is what the ValidatingAdmissionPolicy of `runplan policy
approvals` checks against `request.userInfo` (approval_policy.py): with it
installed, a record naming anyone but its writer is refused by the API server.

The step's rule (`approvers`, `not_by_runner`, `min_approvals`) is judged by
the waiting run, never by the decider: a decision that does not satisfy it
is ignored, said in the progress line and in an Event, and the step waits on.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from runner.clock import stamp
from runner.engine.journal import configmap_name
from runner.errors import ClusterError, StepFailure, WaitTimedOut
from runner.kube.watch import Source, wait_for

if TYPE_CHECKING:
    from runner.kube import Kube

PREFIX = "approval."
RULE_PREFIX = "approval-rule."
BY = ".BY."  # step ids are lowercase: this cannot occur in a step's key
GROUP = "group:"
SSR_PATH = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


@dataclass(frozen=True)
class Decision:
    approved: bool
    by: str
    at: str
    via: str  # --approve | terminal | runplan approve
    reason: str = ""
    groups: tuple[str, ...] = ()


def data_key(step_id: str) -> str:
    """A ConfigMap data key for the step (`widen[0].go` -> `approval.widen_0_.go`)."""
    return PREFIX + re.sub(r"[^-._a-zA-Z0-9]", "_", step_id)


def record_key(step_id: str, by: str) -> str:
    """One key per decider; the hash keeps two names that clean up alike apart."""
    clean = re.sub(r"[^-_a-zA-Z0-9]", "_", by)[:40]
    return f"{data_key(step_id)}{BY}{clean}-{hashlib.sha256(by.encode()).hexdigest()[:8]}"


def encode(decision: Decision) -> str:
    details = {k: v for k, v in asdict(decision).items() if k not in ("by", "groups")}
    return f"{decision.by}\n{','.join(decision.groups)}\n{json.dumps(details)}"


def decode(text: str) -> Decision | None:
    """A record's decision; the first two lines are who (what the policy checks)."""
    by, _, rest = text.partition("\n")
    groups, _, details = rest.partition("\n")
    try:
        data = json.loads(details)
        return Decision(bool(data["approved"]), by, str(data.get("at", "")),
                        str(data.get("via", "")), str(data.get("reason", "")),
                        tuple(g for g in groups.split(",") if g))
    except (ValueError, KeyError, TypeError):
        return None


def decisions(data: dict[str, str], step_id: str) -> dict[str, Decision | None]:
    """The step's records by key (None: a record that does not parse)."""
    prefix = data_key(step_id) + BY
    return {k: decode(v) for k, v in sorted(data.items()) if k.startswith(prefix)}


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...] = ()


def whoami(kube: Kube) -> Identity:
    """User and groups as the API server authenticates this client (SelfSubjectReview)."""
    from runner.kube.errors import Call

    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    try:
        answer = kube.request("POST", SSR_PATH, Call("create selfsubjectreviews"), body=review)
    except ClusterError:  # before 1.28: the kubeconfig's word for it
        return Identity(who(kube))
    info = (answer.get("status") or {}).get("userInfo") or {}
    return Identity(str(info.get("username") or who(kube)), tuple(info.get("groups") or ()))


def who(kube: Kube) -> str:
    """The Kubernetes identity (SelfSubjectReview), else the kubeconfig user, else the login."""
    import getpass

    ident = kube.identity()
    return ident.authenticated_as or ident.user or getpass.getuser()


@dataclass(frozen=True)
class Rule:
    """Who may decide an approval step; `runner` is the identity running the plan."""

    approvers: tuple[str, ...] = ()  # user names and `group:NAME`; empty: anyone
    not_by_runner: bool = False
    min_approvals: int = 1
    runner: str = ""

    @classmethod
    def of(cls, params: dict[str, Any], runner: str) -> Rule:
        return cls(tuple(str(a) for a in params.get("approvers") or ()),
                   params.get("not_by_runner") is True, int(params.get("min_approvals") or 1),
                   runner)

    def refusal(self, by: str, groups: tuple[str, ...]) -> str:
        """Why a decision by `by` does not count ("" when it counts)."""
        if self.not_by_runner and by == self.runner:
            return f"{by} runs this plan, and the step says not_by_runner (four eyes)"
        users = {a for a in self.approvers if not a.startswith(GROUP)}
        wanted = {a.removeprefix(GROUP) for a in self.approvers if a.startswith(GROUP)}
        if self.approvers and by not in users and not wanted & set(groups):
            return f"{by} is not among the approvers ({', '.join(self.approvers)})"
        return ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Rule:
        data = json.loads(text)
        return cls(tuple(data.get("approvers") or ()), bool(data.get("not_by_runner")),
                   int(data.get("min_approvals") or 1), str(data.get("runner") or ""))


@dataclass(frozen=True)
class Verdict:
    """What the records say under the rule: settled once approved or rejected."""

    approved: tuple[Decision, ...] = ()
    rejected: Decision | None = None
    ignored: tuple[tuple[str, Decision | None, str], ...] = ()  # (key, decision, why)
    wanted: int = 1
    failure: None = None

    @property
    def settled(self) -> bool:
        return self.rejected is not None or len(self.approved) >= self.wanted

    @property
    def reason(self) -> str:
        return f"{len(self.approved)}/{self.wanted} approvals"


def judge(rule: Rule, records: dict[str, Decision | None]) -> Verdict:
    """Valid approvals (one per person), the first valid rejection, and what is ignored."""
    approved: dict[str, Decision] = {}
    ignored, rejected = [], None
    for key, decision in records.items():
        why = "not a readable record" if decision is None else rule.refusal(decision.by,
                                                                             decision.groups)
        if why or decision is None:
            ignored.append((key, decision, why))
        elif not decision.approved:
            rejected = rejected or decision
        else:
            approved.setdefault(decision.by, decision)
    return Verdict(tuple(approved.values()), rejected, tuple(ignored), rule.min_approvals)


def record(kube: Kube, namespace: str, run_id: str, step_id: str, decision: Decision) -> None:
    """Write the decision onto the run's journal ConfigMap, and say so in an Event."""
    name = configmap_name(run_id)
    cm = kube.patch("configmap", name, namespace,
                    {"data": {record_key(step_id, decision.by): encode(decision)}})
    verb = "approved" if decision.approved else "rejected"
    reason = f": {decision.reason}" if decision.reason else ""
    event(kube, namespace, name, cm["metadata"]["uid"],
          "Approved" if decision.approved else "Rejected",
          f"step {step_id} {verb} by {decision.by} via {decision.via}{reason}",
          warning=not decision.approved)


def event(kube: Kube, namespace: str, name: str, uid: str, reason: str, message: str,
          warning: bool = False) -> None:
    when = stamp()
    kube.create({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": f"{name}.", "namespace": namespace},
        "involvedObject": {"apiVersion": "v1", "kind": "ConfigMap", "name": name,
                           "namespace": namespace, "uid": uid},
        "reason": reason, "message": message, "type": "Warning" if warning else "Normal",
        "source": {"component": "runplan"},
        "firstTimestamp": when, "lastTimestamp": when, "count": 1,
    }, ns=namespace)


def read_rule(kube: Kube, namespace: str, run_id: str, step_id: str) -> Rule | None:
    """The rule the waiting run published for `runplan approve`; None before it waits."""
    cm = kube.get("configmap", configmap_name(run_id), namespace)
    text = (cm.get("data") or {}).get(RULE_PREFIX + data_key(step_id).removeprefix(PREFIX))
    return Rule.from_json(text) if text else None


@dataclass(frozen=True)
class Outcome:
    """How an approval step ended: the approvals that counted, or the rejection."""

    approved: tuple[Decision, ...]
    rejected: Decision | None
    policy_in_force: bool | None  # None: could not tell


@dataclass(frozen=True)
class Approvals:
    """What an `approval` step needs from its run: where decisions land, who runs it."""

    kube: Kube
    namespace: str
    run_id: str
    approved_upfront: frozenset[str]
    prompt: bool  # a person at a terminal can answer
    pause_display: Callable[[], AbstractContextManager[None]] = nullcontext

    def decide(self, step_id: str, message: str, timeout: float,
               progress: Callable[[str], None], params: dict[str, Any] | None = None) -> Outcome:
        """Block until the records satisfy the rule, or one rejects (StepFailure on timeout)."""
        me = whoami(self.kube)
        rule = Rule.of(params or {}, me.user)
        self._publish(step_id, rule)
        if step_id in self.approved_upfront:
            record(self.kube, self.namespace, self.run_id, step_id,
                   Decision(True, me.user, stamp(), "--approve", groups=me.groups))
        progress(f"waiting for approval: {message} (runplan approve {self.run_id} {step_id})")
        if self.prompt and not rule.not_by_runner:  # whoever sits here runs the plan
            threading.Thread(target=self._ask, args=(step_id, message, me), daemon=True).start()
        try:
            verdict = self._watch(step_id, rule, timeout, progress)
        except WaitTimedOut:
            raise StepFailure(step_id, f"no approval within {timeout:g}s: {message}") from None
        from runner.engine.approval_policy import in_force

        return Outcome(verdict.approved, verdict.rejected,
                       in_force(self.kube, self.namespace, configmap_name(self.run_id)))

    def _publish(self, step_id: str, rule: Rule) -> None:
        """The rule on the ConfigMap, so `runplan approve` can refuse early (the run judges)."""
        key = RULE_PREFIX + data_key(step_id).removeprefix(PREFIX)
        self.kube.patch("configmap", configmap_name(self.run_id), self.namespace,
                        {"data": {key: rule.to_json()}})

    def _watch(self, step_id: str, rule: Rule, timeout: float,
               progress: Callable[[str], None]) -> Verdict:
        name = configmap_name(self.run_id)
        reported: set[str] = set()

        def seen(cache: dict[Any, Any]) -> Verdict:
            cm = cache.get(("configmap", name)) or {}
            verdict = judge(rule, decisions(cm.get("data") or {}, step_id))
            self._report(step_id, cm, verdict, progress, reported)
            return verdict

        source = Source("configmap", self.namespace, field_selector=f"metadata.name={name}")
        return wait_for(self.kube, [source], seen, timeout)

    def _report(self, step_id: str, cm: dict[str, Any], verdict: Verdict,
                progress: Callable[[str], None], reported: set[str]) -> None:
        """Each ignored record once: in the progress line and as a Warning Event."""
        for key, _, why in verdict.ignored:
            if key in reported:
                continue
            reported.add(key)
            text = f"ignored a decision on {step_id}: {why}; still waiting"
            progress(text)
            try:
                event(self.kube, self.namespace, cm["metadata"]["name"], cm["metadata"]["uid"],
                      "ApprovalIgnored", text, warning=True)
            except (ClusterError, KeyError) as exc:
                progress(f"could not write the Event: {exc}")

    def _ask(self, step_id: str, message: str, me: Identity) -> None:
        """Terminal prompt (its own thread): the answer goes where remote ones go."""
        try:
            with self.pause_display():
                answer = input(f"\n{step_id}: {message}\napprove? [y/N] ")
        except (EOFError, OSError):
            return
        approved = answer.strip().lower() in ("y", "yes")
        decision = Decision(approved, me.user, stamp(), "terminal",
                            "" if approved else "rejected at the prompt", me.groups)
        try:
            record(self.kube, self.namespace, self.run_id, step_id, decision)
        except Exception as exc:  # noqa: BLE001 -- a thread must report, not die silently
            print(f"runplan: could not record the decision: {exc}", file=sys.stderr)
