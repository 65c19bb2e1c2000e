"""Approval records and the step's rule (pure logic; the cluster side, with real
identities and the admission policy, is in tests/integration/test_safety.py)."""

from __future__ import annotations

import pytest

from runner.engine.approvals import Decision, Rule, decisions, decode, encode, judge, record_key

SRE = Rule(("group:sre",), not_by_runner=True, min_approvals=1, runner="ci")


def test_a_record_starts_with_who_wrote_it() -> None:
    decision = Decision(True, "alice", "2026-12-01T20:00:00Z", "runplan approve", "ok", ("sre",))
    text = encode(decision)
    assert text.splitlines()[:2] == ["alice", "sre"]
    assert decode(text) == decision


def test_a_record_names_its_writer_in_the_first_line_only() -> None:
    """A JSON "by" further down cannot override who the policy checked."""
    text = 'bob\n\n{"approved": true, "by": "alice", "at": "", "via": "kubectl"}'
    decoded = decode(text)
    assert decoded is not None and decoded.by == "bob"


@pytest.mark.parametrize(("by", "groups", "why"), [
    ("ci", ("sre",), "ci runs this plan, and the step says not_by_runner"),
    ("bob", ("dev",), "bob is not among the approvers (group:sre)"),
    ("alice", ("sre",), ""),
])
def test_who_counts(by: str, groups: tuple[str, ...], why: str) -> None:
    assert SRE.refusal(by, groups).startswith(why)
    assert bool(SRE.refusal(by, groups)) == bool(why)


def test_ignored_decisions_do_not_settle_and_valid_ones_do() -> None:
    records = {record_key("go", d.by): d for d in (
        Decision(True, "ci", "t1", "--approve", groups=("sre",)),
        Decision(False, "bob", "t2", "runplan approve", groups=("dev",)),
    )}
    verdict = judge(SRE, dict(records))
    assert not verdict.settled and len(verdict.ignored) == 2
    records[record_key("go", "alice")] = Decision(True, "alice", "t3", "runplan approve",
                                                  groups=("sre",))
    verdict = judge(SRE, dict(records))
    assert verdict.settled and [d.by for d in verdict.approved] == ["alice"]


def test_min_approvals_counts_people_not_records() -> None:
    rule = Rule(("alice", "carol"), min_approvals=2)
    first = {record_key("go", "alice"): Decision(True, "alice", "t1", "x")}
    assert not judge(rule, first).settled
    both = {**first, record_key("go", "carol"): Decision(True, "carol", "t2", "x")}
    assert judge(rule, both).settled


def test_a_valid_rejection_settles() -> None:
    verdict = judge(SRE, {record_key("go", "alice"): Decision(False, "alice", "t", "x",
                                                               groups=("sre",))})
    assert verdict.settled and verdict.rejected is not None


def test_records_of_other_steps_are_not_read() -> None:
    data = {record_key("go", "alice"): encode(Decision(True, "alice", "t", "x")),
            record_key("go-more", "alice"): encode(Decision(True, "alice", "t", "x")),
            "journal": "{}"}
    assert list(decisions(data, "go")) == [record_key("go", "alice")]


def test_the_rule_round_trips_through_the_configmap() -> None:
    assert Rule.from_json(SRE.to_json()) == SRE
