"""The tests' own DNS lookups against the local CoreDNS (independent of runplan)."""

from __future__ import annotations

import os

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
