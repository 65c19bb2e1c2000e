"""verify_dns: resolve a Service's name (and its pods' names) and check the answer."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.errors import StepFailure
from runner.kube.pods import name, pod_ready, terminating
from runner.steps.base import Need, StepKind, needs_on, truthy
from runner.targets import target_text

if TYPE_CHECKING:
    import dns.resolver

    from runner.kube import Kube
    from runner.plan.model import Step, Target
    from runner.review.project import Projection
    from runner.steps.context import StepContext

SERVICES = frozenset({"service"})
Obj = dict[str, Any]
QUERY_TIMEOUT = 1.0  # per UDP attempt; the local CoreDNS answers in milliseconds
QUERY_LIFETIME = 2.0  # per name, all attempts
NO_ANSWER_LIMIT = 5.0  # no reply at all for this long: the nameserver is not there
FIRST_DELAY, MAX_DELAY = 0.2, 2.0  # backoff between rounds (DNS has no watch)


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

    def needs(self, params: dict[str, Any], target: Target | None) -> list[Need]:
        """The Service; a headless one's EndpointSlices and pods too (whether it is
        headless shows only at run time, so both are asked for)."""
        return (needs_on("service", "get") + needs_on("endpointslice", "list")
                + needs_on("pod", "list"))

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

    def expect(self, step: Step, projection: Projection, namespace: str) -> tuple[str, ...]:
        """What the projected Service resolves to: its ClusterIP, or the ready pods of
        the workloads it selects (a headless one)."""
        from runner.review.expect import (
            entry,
            ordinals_text,
            selected_workloads,
            spec_of,
            view_of,
        )
        from runner.steps.wait_ready import selector_text

        if step.deferred:
            return ()
        service = entry(step, projection, "service", "service")
        spec = spec_of(service)
        if step.params.get("expect", "auto") != "auto":
            return ()
        if spec.get("clusterIP") != "None":
            ip = spec.get("clusterIP") if service.live else "(allocated when it is created)"
            return (f"{service.name} resolves to its ClusterIP {ip}",)
        owners = selected_workloads(projection, service)
        count = sum(view_of(w).replicas for w in owners)
        whose = ", ".join(w.title for w in owners)
        out = [f"{service.name} resolves to {count} ready pods ({whose})" if owners else
               f"{service.name} resolves to the ready pods "
               f"{selector_text(spec.get('selector') or {})}"]
        if step.params.get("pods"):
            out += [f"{ordinals_text(w.name, list(view_of(w).ordinals))}"
                    f".{service.name}.{service.namespace}.svc each resolve to their pod"
                    for w in owners if w.res.kind == "StatefulSet"]
        return tuple(out)

    def apply(self, ctx: StepContext, params: dict[str, Any]) -> dict[str, Any]:
        """Resolve until every name answers as expected; the cluster side (Service,
        EndpointSlices, pods) is read again each round, so both may settle."""
        service = ctx.target(params, "service", default_kind="service")
        resolver, server = _resolver(params, ctx.step.id)
        deadline = time.monotonic() + ctx.timeout(params)
        delay, silent_since = FIRST_DELAY, None
        while True:
            started = time.monotonic()
            result = _round(ctx, service, params, resolver)
            if result.ok:
                return {"addresses": sorted(result.addresses)}
            silent_since = (silent_since or started) if result.silent else None
            now = time.monotonic()
            silent_for = now - silent_since if silent_since is not None else 0.0
            if result.silent and (silent_for >= NO_ANSWER_LIMIT or now + delay >= deadline):
                raise StepFailure(ctx.step.id, f"no answer from the nameserver {server} "
                                  f"for {silent_for:.1f}s", result.lines)
            if now + delay >= deadline:
                raise StepFailure(ctx.step.id, f"DNS answers for {service} did not match "
                                  f"(nameserver {server})", result.lines)
            ctx.progress(result.lines[0])
            ctx.sleep(delay)  # DNS has no watch: a short, capped backoff between rounds
            delay = min(delay * 2, MAX_DELAY)


# --- apply ------------------------------------------------------------------------


def _resolver(params: dict[str, Any], step_id: str) -> tuple[dns.resolver.Resolver, str]:
    """The `nameserver` param, else $RUNPLAN_DNS_SERVER, else the system's."""
    import dns.exception  # dnspython loads only for runs that resolve (start-up time)
    import dns.resolver

    server = params.get("nameserver") or os.environ.get("RUNPLAN_DNS_SERVER")
    if not server:
        try:
            resolver = dns.resolver.Resolver()
        except dns.exception.DNSException as exc:
            raise StepFailure(step_id, f"no nameserver: give `nameserver` or set "
                              f"RUNPLAN_DNS_SERVER ({exc})") from None
        server = "system resolver " + ", ".join(str(n) for n in resolver.nameservers)
    else:
        resolver = dns.resolver.Resolver(configure=False)
        host, port = _host_port(str(server), step_id)
        resolver.nameservers, resolver.port = [host], port
    resolver.timeout, resolver.lifetime = QUERY_TIMEOUT, QUERY_LIFETIME
    return resolver, str(server)


def _host_port(server: str, step_id: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise StepFailure(step_id, f"nameserver {server!r}: expected host:port, like 10.96.0.10:53")
    import socket  # here: loading it costs validate more than its one use

    try:  # the resolver takes addresses; a host name is looked up once, here
        address = socket.getaddrinfo(host, int(port), type=socket.SOCK_DGRAM)[0][4][0]
    except (OSError, UnicodeError) as exc:
        raise StepFailure(step_id, f"nameserver {server!r}: cannot resolve {host}: {exc}") from None
    return str(address), int(port)


@dataclass(frozen=True)
class _Want:
    """What one name must answer: exactly `addresses`, and/or `count` of them."""

    addresses: frozenset[str] | None
    count: int | None = None

    def text(self) -> str:
        parts = [] if self.addresses is None else [f"exactly [{', '.join(sorted(self.addresses))}]"]
        parts += [] if self.count is None else [f"{self.count} address(es)"]
        return " and ".join(parts)

    def met(self, found: frozenset[str]) -> bool:
        return ((self.addresses is None or found == self.addresses)
                and (self.count is None or len(found) == self.count))


@dataclass(frozen=True)
class _Answer:
    addresses: frozenset[str]
    note: str = ""  # NXDOMAIN, SERVFAIL...: shown beside the (empty) addresses
    silent: bool = False  # no reply at all
    failed: bool = False  # a reply, but not an answer (SERVFAIL, REFUSED...)

    def text(self) -> str:
        listed = f"[{', '.join(sorted(self.addresses))}]"
        return f"{listed} ({self.note})" if self.note else listed


def _ask(resolver: dns.resolver.Resolver, fqdn: str) -> _Answer:
    import dns.exception
    import dns.message
    import dns.resolver

    try:
        answer = resolver.resolve(fqdn, "A", search=False, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return _Answer(frozenset(), "NXDOMAIN")
    except dns.resolver.NoNameservers as exc:
        # Each error is (server, tcp, port, exception, reply): a reply means it answered.
        replied = any(isinstance(e[-1], dns.message.Message) for e in exc.kwargs.get("errors", []))
        return _Answer(frozenset(), str(exc), silent=not replied, failed=True)
    except dns.exception.Timeout:
        return _Answer(frozenset(), "no reply", silent=True, failed=True)
    except dns.exception.DNSException as exc:
        return _Answer(frozenset(), str(exc), failed=True)
    return _Answer(frozenset(str(r.address) for r in (answer.rrset or [])))


@dataclass(frozen=True)
class _Round:
    ok: bool
    addresses: frozenset[str]
    lines: list[str]
    silent: bool = False


def _round(ctx: StepContext, service: Target, params: dict[str, Any],
           resolver: dns.resolver.Resolver) -> _Round:
    """One look at the cluster and one query per name."""
    names, stale = _expected(ctx, service, params)
    answers: dict[str, _Answer] = {}
    for fqdn in names:
        answers[fqdn] = _ask(resolver, fqdn)
        if answers[fqdn].silent:  # do not wait on every name for a server that is not there
            return _Round(False, frozenset(), [f"{fqdn}: {answers[fqdn].text()}"], silent=True)
    lines = [f"{fqdn}: answered {answers[fqdn].text()}, want {want.text()}"
             for fqdn, want in names.items()
             if answers[fqdn].failed or not want.met(answers[fqdn].addresses)]
    first = next(iter(names))
    return _Round(not lines and not stale, answers[first].addresses, lines + stale)


def _expected(ctx: StepContext, service: Target, params: dict[str, Any]
              ) -> tuple[dict[str, _Want], list[str]]:
    """Each name to resolve (the Service's first) and what it must answer; plus what
    the cluster side still lacks (EndpointSlices behind the pods)."""
    namespace = service.namespace or ctx.kube.namespace
    svc = ctx.kube.get("service", service.name, namespace)
    domain = str(params.get("cluster_domain") or "cluster.local").strip(".")
    fqdn = f"{service.name}.{namespace}.svc.{domain}."
    headless = (svc.get("spec") or {}).get("clusterIP") == "None"
    pods_too = truthy(params.get("pods", False))
    if pods_too and not headless:
        raise StepFailure(ctx.step.id, f"pods: true needs a headless Service (clusterIP: None); "
                          f"{service} has clusterIP {(svc.get('spec') or {}).get('clusterIP')}")
    ready, pods, stale = _endpoints(ctx.kube, svc) if headless else (frozenset(), [], [])
    names = {fqdn: _service_want(ctx.step.id, svc, params.get("expect", "auto"), ready)}
    if pods_too:
        names.update(_pod_names(svc, pods, domain))
    return names, stale


def _service_want(step_id: str, svc: Obj, expect: Any, ready: frozenset[str]) -> _Want:
    if isinstance(expect, dict):
        addresses = expect.get("addresses")
        count = expect.get("count")
        return _Want(frozenset(str(a) for a in addresses) if addresses is not None else None,
                     int(count) if count is not None else None)
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        raise StepFailure(step_id, f"service/{name(svc)} is an ExternalName Service (a CNAME): "
                          "expect: auto cannot tell its addresses; give expect.addresses")
    if spec.get("clusterIP") == "None":
        return _Want(ready)
    ips = spec.get("clusterIPs") or [spec.get("clusterIP")]
    return _Want(frozenset(str(ip) for ip in ips if ip and ":" not in str(ip)))  # A records


def _endpoints(kube: Kube, svc: Obj) -> tuple[frozenset[str], list[Obj], list[str]]:
    """A headless Service's ready endpoint IPs (EndpointSlices, as CoreDNS serves
    them), the pods they should be, and a line when the two disagree."""
    meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    everyone = bool(spec.get("publishNotReadyAddresses"))
    slices, _ = kube.list("endpointslice", meta.get("namespace"),
                          f"kubernetes.io/service-name={meta.get('name')}")
    ready = frozenset(address for s in slices if s.get("addressType") == "IPv4"
                      for e in s.get("endpoints") or []
                      if everyone or (e.get("conditions") or {}).get("ready") is not False
                      for address in e.get("addresses") or [])
    pods = _ready_pods(kube, svc, everyone)
    if not spec.get("selector"):  # EndpointSlices managed by hand: they are the truth
        return ready, pods, []
    ips = frozenset(str((p.get("status") or {}).get("podIP")) for p in pods)
    if ips == ready:
        return ready, pods, []
    return ready, pods, [f"the EndpointSlices of service/{meta.get('name')} list "
                         f"[{', '.join(sorted(ready))}], the ready pods have "
                         f"[{', '.join(sorted(ips))}] (waiting for them to agree)"]


def _ready_pods(kube: Kube, svc: Obj, everyone: bool) -> list[Obj]:
    """The pods the Service selects that should be endpoints: live, with an IP, Ready."""
    meta, selector = svc.get("metadata") or {}, (svc.get("spec") or {}).get("selector")
    if not selector:
        return []
    text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    pods, _ = kube.list("pod", meta.get("namespace"), text)
    return [p for p in pods if not terminating(p) and (p.get("status") or {}).get("podIP")
            and (everyone or pod_ready(p))]


def _pod_names(svc: Obj, pods: list[Obj], domain: str) -> dict[str, _Want]:
    """`<hostname>.<svc>.<ns>.svc.<domain>` -> the pod's IP, for pods whose
    spec.subdomain names the Service (StatefulSet pods: hostname = pod name)."""
    meta = svc.get("metadata") or {}
    found = {}
    for pod in sorted(pods, key=name):
        spec = pod.get("spec") or {}
        if spec.get("hostname") and spec.get("subdomain") == meta.get("name"):
            fqdn = f"{spec['hostname']}.{meta.get('name')}.{meta.get('namespace')}.svc.{domain}."
            found[fqdn] = _Want(frozenset({str((pod.get("status") or {}).get("podIP"))}))
    return found


