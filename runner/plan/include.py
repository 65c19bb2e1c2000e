"""`include: {plan: FILE, vars: {...}}`: another plan file's steps as a group.

A `Source` is the file a container's steps were written in: the plan itself,
or an included plan together with the chain of includes that led to it. Every
problem found in an included file is reported at its own file:line and ends
with where it was included (`(included by plans/all.yaml:8:5, steps[0] (web))`).

Decisions (README, "Includes"):
- the included plan's `vars` are defaults, the include's `vars` override them,
  `-e` (and `--vars-file`) override both; names it does not define fall back to the including
  scope (its vars, `item` and `loop` of a loop over the include);
- its `defaults` and `namespace` act like fields of a group around its steps
  (the include step's own fields win; `-n` wins over its namespace);
- its `on_failure` is ignored (a note says so): the run's failure handling is
  the including plan's; its `metadata` only names it;
- a plan that includes itself, directly or not, is refused with the chain.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runner.errors import Location, PlanError, Problem
from runner.plan.loader import Document, PathT, load_file
from runner.plan.render import Collector, Renderer
from runner.plan.schema import validate_plan
from runner.plan.variables import RESERVED, VarSource, render_vars

# A group field or plan default: (raw value, its path, the file it was written in).
Inherited = dict[str, tuple[Any, PathT, "Source"]]


@dataclass(frozen=True, eq=False)
class Source:
    """A plan file as seen from one place in the expanded tree."""

    doc: Document
    bad: frozenset[PathT] = frozenset()
    note: str = ""                     # " (included by FILE:L:C, steps[0] (web))"
    prefix: str = ""                   # the include's expanded id: "web", "web[1]"
    chain: tuple[str, ...] = ()        # resolved files, from the root plan down

    def location(self, path: PathT) -> Location:
        return self.doc.location(path)

    def problem(self, path: PathT, message: str, key: bool = False) -> Problem:
        return self.own(self.doc.problem(path, message, key))

    def own(self, problem: Problem) -> Problem:
        """`problem` with the include chain appended."""
        return replace(problem, message=problem.message + self.note) if self.note else problem

    def local(self, full_id: str) -> str:
        """`web[1].ready` -> `ready`: the id as written in this file."""
        return full_id[len(self.prefix) + 1:] if self.prefix else full_id


@dataclass(frozen=True)
class Opened:
    """One run of an include: where its steps come from and what they see."""

    source: Source
    scope: dict[str, Any]
    inherited: Inherited
    steps: list[Any]


@dataclass
class _File:
    doc: Document
    problems: list[Problem]
    bad: frozenset[PathT]
    sha: str = ""  # of the text as read


@dataclass
class Includes:
    """Loads included files once each and opens them for each include site."""

    renderer: Renderer
    overrides: dict[str, Any]  # -e and --vars-file values, rendered: they win everywhere
    namespace_override: str | None
    files: dict[str, _File | Problem] = field(default_factory=dict)
    reported: set[tuple[str, str]] = field(default_factory=set)  # (file, note)
    notes: list[str] = field(default_factory=list)

    def open(self, outer: Source, path: PathT, site: str, run_id: str,
             scope: dict[str, Any], problems: list[Problem]) -> Opened | None:
        """The included plan for one run of the include step at `path` in `outer`."""
        spec = _node(outer.doc.data, (*path, "include"))
        name = spec.get("plan") if isinstance(spec, dict) else None
        if not isinstance(name, str):
            return None  # the schema stage reported it
        file = os.path.normpath(Path(outer.doc.file).parent / name)
        if file in outer.chain or os.path.abspath(file) in map(os.path.abspath, outer.chain):
            chain = " -> ".join([*outer.chain, file])
            problems.append(outer.problem((*path, "include", "plan"),
                                          f"include cycle: {chain}"))
            return None
        loaded = self._load(file, outer, path, problems)
        if loaded is None:
            return None
        here = outer.location(path)
        source = Source(loaded.doc, loaded.bad, f" (included by {here}, {site}){outer.note}",
                        run_id, (*outer.chain, file))
        if (file, source.note) not in self.reported:
            self.reported.add((file, source.note))
            problems += [source.own(p) for p in loaded.problems]
            self._note(loaded.doc)
        return self._opened(source, outer, path, scope, problems)

    def _load(self, file: str, outer: Source, path: PathT,
              problems: list[Problem]) -> _File | None:
        if file not in self.files:
            self.files[file] = _read(file)
        loaded = self.files[file]
        if isinstance(loaded, Problem):
            problems.append(outer.problem((*path, "include", "plan"), loaded.message))
            return None
        return loaded

    def _note(self, doc: Document) -> None:
        if isinstance(doc.data, dict) and "on_failure" in doc.data:
            line = doc.location(("on_failure",), key=True)
            self.notes.append(f"{line}: note: on_failure of an included plan is ignored; "
                              "the including plan's on_failure applies")

    def _opened(self, source: Source, outer: Source, path: PathT, scope: dict[str, Any],
                problems: list[Problem]) -> Opened:
        data = source.doc.data
        if "clusters" in data:
            problems.append(source.problem(("clusters",), "an included plan cannot declare "
                                           "clusters: the plan that runs names them", key=True))
        values = self._vars(source, outer, path, scope, problems)
        inner = {**scope, **values}
        inherited: Inherited = {key: (value, ("defaults", key), source)
                                for key, value in _mapping(data.get("defaults")).items()
                                if key in _GROUP_FIELDS}
        namespace = data.get("namespace")
        if isinstance(namespace, str) and self.namespace_override is None:
            inherited["namespace"] = (namespace, ("namespace",), source)
            inner["namespace"] = self._namespace(namespace, inner, source, problems)
        steps = data.get("steps")
        return Opened(source, inner, inherited, steps if isinstance(steps, list) else [])

    def _vars(self, source: Source, outer: Source, path: PathT, scope: dict[str, Any],
              problems: list[Problem]) -> dict[str, Any]:
        """Included defaults < the include's vars (rendered where it is written) < -e."""
        # -e / --vars-file values come rendered at the top: the same value in every file.
        given: dict[str, Any] = {}
        for name, value in _mapping(_node(outer.doc.data, (*path, "include", "vars"))).items():
            at = _at(outer, (*path, "include", "vars", name))
            out = Collector()
            given[name] = self.renderer.render(value, scope, out)
            problems.extend(at(message) for _, message in out.errors)
            if out.deferred:
                problems.append(at("include vars must be known before the run: "
                                   "they cannot read steps or run"))
            if name in RESERVED:
                problems.append(at(f"'{name}' is reserved: runplan sets it"))
        sources = {name: VarSource(value, _at(source, ("vars", name)))
                   for name, value in _mapping(source.doc.data.get("vars")).items()
                   if name not in given}
        problems += [sources[n].problem(f"'{n}' is reserved: runplan sets it")
                     for n in RESERVED if n in sources]
        given.update(self.overrides)
        sources = {name: s for name, s in sources.items() if name not in self.overrides}
        values, found = render_vars(self.renderer, sources, base=given)
        problems += found
        return values

    def _namespace(self, raw: str, scope: dict[str, Any], source: Source,
                   problems: list[Problem]) -> Any:
        out = Collector()
        value = self.renderer.render(raw, scope, out)
        problems += [source.problem(("namespace",), message) for _, message in out.errors]
        return value if not out.errors and not out.deferred else scope.get("namespace")

    def digests(self) -> dict[str, str]:
        """sha256 of each included file's text: what an approval also pins."""
        return {name: loaded.sha for name, loaded in sorted(self.files.items())
                if isinstance(loaded, _File)}


_GROUP_FIELDS = ("timeout", "retries", "retry_delay", "continue_on_error", "namespace")


def _read(file: str) -> _File | Problem:
    if not Path(file).is_file():
        return Problem(Location(file), "", f"the included plan {file} does not exist")
    try:
        sha = "sha256:" + hashlib.sha256(Path(file).read_bytes()).hexdigest()
        doc = load_file(file)
    except OSError as exc:
        return Problem(Location(file), "", f"cannot read the included plan {file}: {exc}")
    except PlanError as exc:
        return _File(Document(file, {}), exc.problems, frozenset(), sha)
    if not isinstance(doc.data, dict):
        top = "the top level of a plan is a mapping (apiVersion, kind, metadata, steps)"
        return _File(doc, [doc.problem((), top)], frozenset(), sha)
    schema_problems, bad = validate_plan(doc)
    return _File(doc, doc.problems + schema_problems, frozenset(bad), sha)


def _at(source: Source, path: PathT) -> Any:
    def problem(message: str) -> Problem:
        return source.problem(path, message)
    return problem


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _node(data: Any, path: PathT) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data
