"""The tests' own DNS lookups against the local CoreDNS (independent of runplan)."""

from __future__ import annotations

import os
import time

import dns.resolver


def resolve(name: str, server: str | None = None) -> set[str]:
    """A records of `name` from `server` (host:port, default RUNPLAN_DNS_SERVER);
    NXDOMAIN is the empty set."""
    host, _, port = (server or os.environ["RUNPLAN_DNS_SERVER"]).rpartition(":")
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = [host], int(port)
    try:
        return {r.address for r in resolver.resolve(name, "A", search=False)}
    except dns.resolver.NXDOMAIN:
        return set()


def resolve_settled(name: str, expected: set[str], timeout: float = 10.0) -> set[str]:
    """`resolve(name)` once it answers `expected`, or its last answer after `timeout`.

    CoreDNS learns EndpointSlices from its own watch, a moment after the API server
    reports them ready; DNS has no watch, so the test re-asks, briefly and bounded.
    """
    deadline = time.monotonic() + timeout
    while (found := resolve(name)) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return found
