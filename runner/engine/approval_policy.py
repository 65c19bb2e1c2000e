"""`runplan policy approvals`: a ValidatingAdmissionPolicy under which the API
server itself refuses an approval record not written by the identity it names.

Without it, anyone who may patch ConfigMaps in the namespace can write a
record in anyone's name. With it, a record (a data key `approval.*` of a
`runplan-run-*` ConfigMap, see approvals.py) must start with the writer's own
user name and only groups the writer is in, as the API server authenticated
the request; and a record once written cannot be changed or removed by a
later update. What it does not stop: deleting the whole ConfigMap (a run then
loses its journal, it does not gain an approval), cluster admins who can
remove the policy, and anyone who can act as the named user.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from runner.errors import ClusterError

if TYPE_CHECKING:
    from runner.kube import Kube

NAME = "runplan-approvals"
MESSAGE = "runplan approvals"
_RECORD = "object.data[k]"
# Each new or changed approval record names its writer, and only the writer's groups.
_NAMES_WRITER = f"""\
!has(object.data) || object.data.all(k, !k.startsWith('approval.') ||
  (oldObject != null && has(oldObject.data) && k in oldObject.data &&
   oldObject.data[k] == {_RECORD}) ||
  ({_RECORD}.split('\\n').size() >= 3 &&
   {_RECORD}.split('\\n')[0] == request.userInfo.username &&
   ({_RECORD}.split('\\n')[1] == '' ||
    (has(request.userInfo.groups) &&
     {_RECORD}.split('\\n')[1].split(',').all(g, g in request.userInfo.groups)))))"""
# A record once written stays as it is.
_IMMUTABLE = """\
oldObject == null || !has(oldObject.data) || oldObject.data.all(k, !k.startsWith('approval.') ||
  (has(object.data) && k in object.data && object.data[k] == oldObject.data[k]))"""


def objects() -> list[dict[str, Any]]:
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": NAME},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                "resources": ["configmaps"]}]},
            # By name, not label: a journal re-created without its labels stays covered.
            "matchConditions": [{"name": "runplan-journal",
                                 "expression": "object.metadata.name.startsWith('runplan-run-')"}],
            "validations": [
                {"expression": _NAMES_WRITER, "reason": "Forbidden",
                 "messageExpression": f"'{MESSAGE}: a record must name the identity that "
                                      "writes it, ' + request.userInfo.username + ', and only "
                                      "its groups'"},
                {"expression": _IMMUTABLE, "reason": "Forbidden",
                 "message": f"{MESSAGE}: a recorded decision cannot be changed or removed"},
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": NAME},
        "spec": {"policyName": NAME, "validationActions": ["Deny"]},
    }
    return [policy, binding]


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the CEL expressions) as literal blocks, readable in review."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def render() -> str:
    return "---\n".join(yaml.dump(o, Dumper=_Dumper, sort_keys=False, width=100)
                        for o in objects())


def in_force(kube: Kube, namespace: str, configmap: str) -> bool | None:
    """Would the API server refuse a forged record now? A dry-run write of one, as
    this identity in the name of nobody, says (nothing is stored)."""
    probe = {"data": {"approval.policy-probe.BY.nobody": "runplan:policy-probe\n\n{}"}}
    try:
        kube.patch("configmap", configmap, namespace, probe, dry_run=True)
    except ClusterError as exc:
        return True if MESSAGE in str(exc) else None
    return False
