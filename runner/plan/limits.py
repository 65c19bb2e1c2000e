"""Bounds that keep a hostile plan from hanging or exhausting the machine that
validates it (`runplan validate` runs in CI on plans from pull requests).

Each bound sits far above what a real plan uses and far below what hurts; a
plan past one is refused with exit 2, its place, and the name of the bound.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import yaml

MIB = 1024 * 1024
# A plan, a vars file or a manifest file (the API server itself takes 3 MiB a request).
MAX_FILE_BYTES = 4 * MIB
# Nodes that YAML aliases (and `<<` merges) may stand for in one file, beyond the
# nodes written out: billion laughs, CVE-2019-11253 in Kubernetes' own YAML decoder.
MAX_ALIAS_NODES = 50_000
# YAML nodes of one file, aliases expanded (the 10,000-step benchmark plan has 97,000).
MAX_NODES = 200_000
# Nesting of mappings and lists, aliases expanded (libyaml alone allows 1,000).
MAX_DEPTH = 100
# Text one template value may render to, and text one evaluation may produce.
MAX_VALUE_CHARS = MIB
# Characters of one template's source: Jinja parses and compiles it in one go.
MAX_TEMPLATE_CHARS = 8 * 1024
# Loop iterations plus calls (macros, methods) in one evaluation of a template.
MAX_ITERATIONS = 10_000
# Steps of a plan once loops are expanded (the biggest benchmark plan has 10,000).
MAX_STEPS = 20_000
# Replicas, partitions, ordinals and counts are int32 in the Kubernetes API.
INT32_MAX = 2**31 - 1
# Integers a template computes: bits of a result of `*` or `**`.
MAX_INT_BITS = 4096


def budget_for(size: int) -> float:
    """CPU seconds a plan of `size` bytes may take to compile: 0.5 s + 10 s per MiB.

    CPU time, not wall time, so a loaded CI machine does not refuse good plans.
    The 10,000-step benchmark plan (878 KiB) compiles in 0.65 s of CPU on a quiet
    2-core machine (about twice that under make bench's load) and gets 8.9 s: room
    for a machine five times slower; a 1 KB hostile plan gets 0.5 s.
    RUNPLAN_COMPILE_BUDGET (seconds) overrides.
    """
    try:
        override = float(os.environ.get("RUNPLAN_COMPILE_BUDGET", "") or 0)
    except ValueError:
        override = 0
    return override if override > 0 else 0.5 + 10.0 * size / MIB


@dataclass(frozen=True)
class Deadline:
    """When a plan's compile must be done; `at` is a time.process_time() value."""

    at: float
    seconds: float
    # When to read the CPU clock next (a system call, asked once per step otherwise):
    # CPU time grows no faster than wall time, so checking every 5 ms misses nothing.
    _next: list[float] = field(default_factory=lambda: [0.0], compare=False, repr=False)

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.process_time() + seconds, seconds)

    def passed(self) -> bool:
        now = time.monotonic()
        if now < self._next[0]:
            return False
        self._next[0] = now + 0.005
        return time.process_time() > self.at

    def message(self) -> str:
        return (f"the plan is still compiling after {self.seconds:.1f} CPU seconds, its compile "
                "time budget (0.5 s + 10 s per MiB of plan; RUNPLAN_COMPILE_BUDGET overrides)")


class YamlLimit(Exception):
    """A YAML node graph past a bound; `node` is where to point."""

    def __init__(self, node: yaml.Node, message: str) -> None:
        self.node = node
        super().__init__(message)


class _Measure:
    """Walks a composed node graph once per distinct node, counting what aliases add.

    PyYAML's composer gives an alias the very node its anchor names, so the
    graph is small; building data from it copies each alias in full, which is
    where 1 KB of aliases becomes gigabytes. Sizes are memoized per node, so
    this walk costs what the file holds, not what it expands to.
    """

    def __init__(self) -> None:
        self.sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, height)
        self.active: set[int] = set()
        self.added = 0  # nodes aliases add
        self.total = 0  # nodes the data will have

    def visit(self, node: yaml.Node, depth: int, site: yaml.Node) -> tuple[int, int]:
        key = id(node)
        if key in self.active:
            raise YamlLimit(site, "a YAML alias refers to a node that contains it (recursive)")
        if key in self.sizes:
            return self._alias(self.sizes[key], depth, site)
        if depth > MAX_DEPTH:
            raise YamlLimit(node, f"YAML nested deeper than {MAX_DEPTH} levels (the nesting limit)")
        self.active.add(key)
        size, height = 1, 0
        for child, child_site in _children(node):
            if type(child) is yaml.ScalarNode:  # most nodes: no need to remember them
                size, height = size + 1, max(height, 1)
                continue
            n, h = self.visit(child, depth + 1, child_site)
            size, height = size + n, max(height, h + 1)
        self.active.discard(key)
        self.sizes[key] = (size, height)
        self._count(size - self._inner(node), node)
        return size, height

    def _inner(self, node: yaml.Node) -> int:
        """Nodes of `node`'s collections, counted when each was visited."""
        return sum(self.sizes[id(c)][0] for c, _ in _children(node)
                   if type(c) is not yaml.ScalarNode)

    def _count(self, own: int, node: yaml.Node) -> None:
        self.total += own
        if self.total > MAX_NODES:
            raise YamlLimit(node, f"the file holds more than {MAX_NODES:,} YAML nodes, the limit "
                                  "per file")

    def _alias(self, measured: tuple[int, int], depth: int, site: yaml.Node) -> tuple[int, int]:
        size, height = measured
        self.added += size
        if self.added > MAX_ALIAS_NODES:
            raise YamlLimit(site, f"YAML aliases here expand past {MAX_ALIAS_NODES:,} nodes, the "
                                  "limit on alias expansion (an alias bomb, like CVE-2019-11253?)")
        if depth + height > MAX_DEPTH:
            raise YamlLimit(site, f"YAML aliases nest deeper than {MAX_DEPTH} levels "
                                  "(the nesting limit)")
        self._count(size, site)
        return measured


def _children(node: yaml.Node) -> list[tuple[yaml.Node, yaml.Node]]:
    """(child, where it is written): an alias's own mark is its anchor's, so a
    mapping value is pointed at by its key and a list item by its list."""
    if isinstance(node, yaml.MappingNode):
        return [pair for key, value in node.value for pair in ((key, key), (value, key))]
    if isinstance(node, yaml.SequenceNode):
        return [(item, node) for item in node.value]
    return []


def check_text(text: str) -> str:
    """Before composing (which costs per node): lines and commas past MAX_NODES mean
    more nodes than that, near enough. The problem, or ""."""
    separators = text.count("\n") + text.count(",")
    if separators <= MAX_NODES:
        return ""
    return (f"the file has {separators:,} lines and commas, more than the {MAX_NODES:,} YAML "
            "nodes a file may hold")


def check_yaml(node: yaml.Node) -> None:
    """Raise YamlLimit if the node graph nests too deep or its aliases expand too far."""
    if not _plainly_within(node):
        _Measure().visit(node, 0, node)  # the exact walk, which names the place


def _plainly_within(root: yaml.Node) -> bool:
    """True for a graph with no alias to a collection, within the depth and node limits:
    most files, checked by one flat walk. Anything else goes to _Measure."""
    seen: set[int] = set()
    total = 1
    scalar = yaml.ScalarNode
    stack = [(root, 0)] if type(root) is not scalar else []
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH or id(node) in seen:
            return False
        seen.add(id(node))
        if type(node) is not yaml.MappingNode:
            total += len(node.value)
            stack += [(child, depth + 1) for child in node.value if type(child) is not scalar]
            continue
        total += 2 * len(node.value)  # a pair at a time: this walk meets every node
        for key, value in node.value:
            if type(key) is not scalar:
                stack.append((key, depth + 1))
            if type(value) is not scalar:
                stack.append((value, depth + 1))
    return total <= MAX_NODES

