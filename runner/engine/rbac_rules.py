"""Does a SelfSubjectRulesReview's rule list allow a permission? Pure functions.

The matching is Kubernetes RBAC's own (k8s.io/kubernetes
pkg/apis/rbac/v1/evaluation_helpers.go and RuleAllows in
plugin/pkg/auth/authorizer/rbac/rbac.go), so that the preflight's local
verdict is the one the authorizer would give:

- verbs: "*" or the verb itself;
- apiGroups: "*" or the group itself ("" is the core group);
- resources: "*", "resource" (no subresource), "resource/subresource", or
  "*/subresource" (any resource's subresource; "resource/*" is NOT a
  wildcard in RBAC, it only matches a subresource literally named "*");
- resourceNames: empty = every name, else the request's name must be listed
  (a request without a name, e.g. a create or a list, matches no such rule).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from runner.steps.base import Need

ALL = "*"


@dataclass(frozen=True)
class Rule:
    """One entry of a rules review's status.resourceRules."""

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()


def parse(review: Mapping[str, Any]) -> tuple[Rule, ...]:
    """A SelfSubjectRulesReview answer's status.resourceRules (missing fields are empty).

    What it lists is what the identity may do, but not always all of it: a review
    can be `incomplete` (a webhook authorizer lists no rules), carry an
    `evaluationError` (a binding to a missing Role), and the system:masters
    authorizer lists nothing at all. So a match is an answer; a miss is not.
    """
    status = review.get("status") or {}
    return tuple(Rule(verbs=_strings(r, "verbs"), api_groups=_strings(r, "apiGroups"),
                      resources=_strings(r, "resources"),
                      resource_names=_strings(r, "resourceNames"))
                 for r in status.get("resourceRules") or [])


def _strings(rule: Mapping[str, Any], key: str) -> tuple[str, ...]:
    return tuple(str(x) for x in rule.get(key) or [])


def verb_matches(rule: Rule, verb: str) -> bool:
    return any(v in (ALL, verb) for v in rule.verbs)


def group_matches(rule: Rule, group: str) -> bool:
    return any(g in (ALL, group) for g in rule.api_groups)


def resource_matches(rule: Rule, resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for name in rule.resources:
        if name in (ALL, combined):
            return True
        if subresource and name == f"*/{subresource}":
            return True
    return False


def name_matches(rule: Rule, name: str) -> bool:
    return not rule.resource_names or name in rule.resource_names


def rule_allows(rule: Rule, verb: str, group: str, resource: str, subresource: str = "",
                name: str = "") -> bool:
    """RBAC's RuleAllows for a resource request."""
    return (verb_matches(rule, verb) and group_matches(rule, group)
            and resource_matches(rule, resource, subresource) and name_matches(rule, name))


def allows(rules: Iterable[Rule], need: Need) -> bool:
    """Some rule grants `need` (which names no object: a name-restricted rule does not)."""
    return any(rule_allows(r, need.verb, need.group, need.resource, need.subresource)
               for r in rules)
