"""verify_dns: resolve a Service's name (and its pods' names) and check the answer."""

from __future__ import annotations

from typing import Any

from runner.steps.base import StepKind
from runner.targets import target_text

SERVICES = frozenset({"service"})


class VerifyDns(StepKind):
    kind = "verify_dns"
    target_kinds = SERVICES
    target_param = "service"
    outputs = {"addresses": "the A records of the Service name"}
    example = """\
- id: dns-headless
  verify_dns:
    service: web
    expect: auto
    pods: true
"""

    def describe(self, params: dict[str, Any]) -> str:
        service = target_text(params["service"], default_kind="service")
        expect = params.get("expect", "auto")
        if expect == "auto":
            answer = "headless: exactly the ready pods' IPs; ClusterIP: the cluster IP"
        elif isinstance(expect, dict) and "addresses" in expect:
            answer = ", ".join(expect["addresses"]) or "no address"
        else:
            answer = f"{expect.get('count') if isinstance(expect, dict) else expect} addresses"
        pods = "; also each pod's own name" if params.get("pods") else ""
        return f"resolve {service} until it answers {answer}{pods}"
