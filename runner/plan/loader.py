"""Stage 1: YAML text -> plain data plus the line:column of every node.

PyYAML's composer keeps a start mark on every node; constructing Python objects
throws them away. So we compose, then build the data ourselves and record each
node's mark under its path (`("steps", 2, "set_image", "image")`), which is the
same path jsonschema reports: every later stage can point at `file:line:col`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runner.errors import Location, PlanError, Problem
from runner.plan.limits import MAX_FILE_BYTES, MIB, YamlLimit, check_text, check_yaml

# libyaml's parser is ~10x faster and keeps marks; the constructors stay Python.
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR = "tag:yaml.org,2002:str"
_ScalarNode = yaml.ScalarNode


# The first characters some implicit resolver (int, bool, null, ...) may claim: a
# plain scalar starting with any other one is a string, as is every quoted one.
_CLAIMED = frozenset(first for first in _Base.yaml_implicit_resolvers if first)
_PLAIN = None not in _Base.yaml_implicit_resolvers and not _Base.yaml_path_resolvers


class _Loader(_Base):  # type: ignore[misc]
    """Remembers implicit tag resolution (a regex scan per scalar): plans repeat
    their keys and many values, and libyaml asks for every one of them."""

    _resolved: dict[tuple[Any, ...], str] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is _ScalarNode and _PLAIN and (
                not implicit[0] or (value and value[0] not in _CLAIMED)):
            return _STR  # what the resolvers would say, without asking them
        key = (kind, value, implicit)
        tag = self._resolved.get(key)
        if tag is None:
            tag = self._resolved[key] = super().resolve(kind, value, implicit)
        return tag


PathT = tuple[str | int, ...]

# Tags whose Python value would not survive JSON Schema or json.dumps: keep the text.
_KEEP_TEXT = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:binary"}


@dataclass
class Document:
    """A loaded YAML file: its data and where each node was written."""

    file: str
    data: Any
    # (line, column), 1-based, of each node and of each mapping key, by path.
    marks: dict[PathT, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[PathT, tuple[int, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # The file's text while only the marks of list items (steps) are recorded: what
    # a valid plan asks for. Any other mark is read from it then, all at once.
    text: str | None = field(default=None, repr=False)

    def location(self, path: PathT, key: bool = False) -> Location:
        """The mark of `path`, or of its nearest ancestor that has one.

        A mapping or list value is pointed at by its key (`steps:`), which a
        block collection's own mark (its first item, a line below) is not.
        """
        if self.text is not None:
            if path in self.marks and _item(path):  # a list item's mark is its own
                return Location(self.file, *self.marks[path])
            self._mark_all()
        # A list item (a step) has no key mark: no need to find its node first.
        at_key = path in self.key_marks and (
            key or isinstance(_node(self.data, path), (dict, list)))
        marks = self.key_marks if at_key else self.marks
        while path and path not in marks:
            path = path[:-1]
        return Location(self.file, *marks.get(path, (1, 1)))

    def problem(self, path: PathT, message: str, key: bool = False) -> Problem:
        return Problem(self.location(path, key), where(self.data, path), message)

    def _mark_all(self) -> None:
        """Every node's and key's mark, from the text (which loaded before, so it loads)."""
        text, self.text = self.text, None
        assert text is not None
        full = _parse(text, self.file, "", every_mark=True)
        self.marks, self.key_marks = full.marks, full.key_marks


def _item(path: PathT) -> bool:
    """The root or a list item: the paths whose marks a load always records."""
    return not path or isinstance(path[-1], int)


def where(data: Any, path: PathT) -> str:
    """`steps[2] (canary).set_image.image`: list items with an id show it."""
    out: list[str] = []
    node = data
    for part in path:
        node = _child(node, part)
        if isinstance(part, int):
            out.append(f"[{part}]")
            if isinstance(node, dict) and isinstance(node.get("id"), str):
                out.append(f" ({node['id']})")
        else:
            out.append(f".{part}" if out else str(part))
    return "".join(out)


def _node(data: Any, path: PathT) -> Any:
    for part in path:
        data = _child(data, part)
    return data


def _child(node: Any, part: str | int) -> Any:
    try:
        return node[part]
    except (KeyError, IndexError, TypeError):
        return None


def load_file(path: str | Path, what: str = "a plan") -> Document:
    """Read and parse one YAML file; unreadable or malformed -> PlanError."""
    name = str(path)
    try:
        text = read_bounded(Path(path)).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PlanError([Problem(Location(name), "", f"cannot read {what}: {reason}")]) from None
    except FileTooBig as exc:
        raise PlanError([Problem(Location(name, 1, 1), "", f"{what}: {exc}")]) from None
    return load_text(text, name, what)


class FileTooBig(Exception):
    """A file past MAX_FILE_BYTES (the message names the bound)."""


def read_bounded(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The file's bytes; FileTooBig past `limit` (read no further: /dev/zero ends too)."""
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise FileTooBig(f"the file is over {limit // MIB} MiB, the limit on plan, vars "
                         "and manifest files")
    return data


def load_text(text: str, file: str, what: str = "a plan") -> Document:
    """Parse YAML text. Malformed YAML raises; lesser problems (duplicate keys,
    non-string keys) land in `doc.problems` so they are reported with the rest.

    Only list items' marks are recorded (a fifth of the nodes): the others cost a
    sixth of a big plan's compile and most of its memory, and only problems need
    them (Document.location reads them then). A duplicate key needs them at once."""
    try:
        return _parse(text, file, what, every_mark=False)
    except _NeedMarks:
        return _parse(text, file, what, every_mark=True)


class _NeedMarks(Exception):
    """A duplicate key, loaded without every mark: its message names the first's line."""


def _parse(text: str, file: str, what: str, every_mark: bool) -> Document:
    doc = Document(file, None, text=None if every_mark else text)
    too_many = check_text(text)
    if too_many:
        raise PlanError([Problem(Location(file, 1, 1), "", too_many)])
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            empty = f"the file is empty: expected {what}"
            raise PlanError([Problem(Location(file, 1, 1), "", empty)])
        check_yaml(node)
        builder = _Builder(doc, loader, text, every_mark)
        doc.marks[()] = _mark(node)
        doc.data = builder.build(node, ())
    except yaml.MarkedYAMLError as exc:
        raise PlanError([_yaml_problem(file, exc, text)]) from None
    except YamlLimit as exc:
        raise PlanError([Problem(Location(file, *_mark(exc.node)), "", str(exc))]) from None
    finally:
        loader.dispose()
    doc.problems = [
        Problem(Location(file, *mark), where(doc.data, path), message)
        for mark, path, message in builder.pending
    ]
    return doc


def load_manifests(path: Path) -> list[Any]:
    """Every document of a manifest file as plain data, within the same bounds as
    a plan (file size, alias expansion, nesting). Raises OSError, FileTooBig,
    yaml.YAMLError or YamlLimit."""
    text = read_bounded(path).decode("utf-8")
    too_many = check_text(text)
    if too_many:
        raise FileTooBig(too_many)
    loader = _Base(text)
    try:
        docs = []
        while loader.check_node():
            node = loader.get_node()
            check_yaml(node)
            docs.append(loader.construct_document(node))
        return docs
    finally:
        loader.dispose()


def _yaml_problem(file: str, exc: yaml.MarkedYAMLError, text: str = "") -> Problem:
    """Where the parser noticed; with two marks (an unclosed `{`, a bad indent inside
    a mapping), the problem is told at the construct's start and names both places:
    `b.yaml:7:20: ... flow mapping opened here is not closed; found '-' at 8:3`."""
    begun, noticed = exc.context_mark, exc.problem_mark
    construct = re.sub(r"^while (parsing|scanning) (a |an |the )?", "", exc.context or "")
    if begun and noticed and (begun.line, begun.column) != (noticed.line, noticed.column) \
            and (construct in _UNCLOSED or construct in _BLOCKS):
        message = _two_places(exc, construct, text)
        return Problem(Location(file, begun.line + 1, begun.column + 1), "",
                       f"malformed YAML: {message}")
    mark = noticed or begun
    location = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
    message = " ".join(p for p in (exc.context, exc.problem) if p)
    if "tab" in message:
        message += " (YAML indents with spaces, not tabs)"
    return Problem(location, "", f"malformed YAML: {message}")


# `while parsing a flow mapping` -> what the message says about the place it began.
_UNCLOSED = {"flow mapping": "flow mapping opened here is not closed",
             "flow sequence": "flow sequence opened here is not closed",
             "quoted scalar": "quoted string opened here is not closed"}
_BLOCKS = {"block collection": "list", "block mapping": "mapping",
           "block sequence": "list"}


def _two_places(exc: yaml.MarkedYAMLError, construct: str, text: str) -> str:
    noticed = exc.problem_mark
    assert noticed is not None  # _yaml_problem checked
    lines = text.splitlines()
    # By line and column (characters), not `index`: libyaml may count bytes.
    line = lines[noticed.line] if noticed.line < len(lines) else ""
    char = line[noticed.column] if noticed.column < len(line) else ""
    found = f"found {char!r}" if char else (
        "found the end of the file" if noticed.line >= len(lines) else "found the line's end")
    place = f"{found} at {noticed.line + 1}:{noticed.column + 1}"
    if construct in _UNCLOSED:
        return f"{_UNCLOSED[construct]}; {place}"
    problem = exc.problem or "unexpected"
    hint = " (YAML indents with spaces, not tabs)" if "tab" in problem else (
        " (check the indentation)")
    return f"{_BLOCKS[construct]} started here; {place}: {problem}{hint}"


class _Builder:
    """Turns composed nodes into dicts, lists and scalars, recording marks."""

    def __init__(self, doc: Document, loader: Any, text: str, every_mark: bool) -> None:
        self.doc = doc
        self.marks, self.key_marks = doc.marks, doc.key_marks
        self.every_mark = every_mark  # else only list items' (load_text)
        self.loader = loader
        self.text = text
        self.merges = "<<" in text  # `<<: *anchor` merge keys need flattening
        # (location, path, message): turned into Problems once the data exists,
        # because a problem's `where` names step ids found in the data.
        self.pending: list[tuple[tuple[int, int], PathT, str]] = []

    # build() runs once per YAML node (97,000 in the 10,000-step plan): exact-type
    # tests first and marks inlined, as this is a large part of the compile's time.
    # The caller has recorded the node's mark (if it is to be).
    def build(self, node: yaml.Node, path: PathT) -> Any:
        if type(node) is _ScalarNode:
            return self._scalar(node, path)
        if isinstance(node, yaml.MappingNode):
            template = self._unquoted_template(node, path) if node.flow_style else None
            return template if template is not None else self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self._item(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _item(self, node: yaml.Node, path: PathT) -> Any:
        mark = node.start_mark
        self.marks[path] = (mark.line + 1, mark.column + 1)
        return self.build(node, path)

    def _scalar(self, node: yaml.Node, path: PathT) -> Any:
        if node.tag == _STR or node.tag in _KEEP_TEXT:
            return node.value
        return self.loader.construct_object(node)

    def _mapping(self, node: yaml.MappingNode, path: PathT) -> dict[str, Any]:
        if self.merges:
            self.loader.flatten_mapping(node)
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if type(key_node) is _ScalarNode and key_node.tag == _STR:
                key = key_node.value  # what _key says of a string key, without asking it
            else:
                key = self._key(key_node, path)
            if self.every_mark:
                out[key] = self._marked(out, key, key_node, value_node, path)
            elif key in out:
                raise _NeedMarks
            elif type(value_node) is _ScalarNode and value_node.tag == _STR:
                out[key] = value_node.value  # a string: no path needed, no mark kept
            else:
                out[key] = self.build(value_node, (*path, key))
        return out

    def _marked(self, out: dict[str, Any], key: str, key_node: yaml.Node,
                value_node: yaml.Node, path: PathT) -> Any:
        """A pair's value, with its own and its key's marks (and a duplicate reported)."""
        child = (*path, key)
        if key in out:
            first = self.key_marks[child]
            self._problem(key_node, path, f"duplicate key '{key}' (first at line {first[0]})")
        self.key_marks[child] = _mark(key_node)
        self.marks[child] = _mark(value_node)
        return self.build(value_node, child)

    def _unquoted_template(self, node: yaml.MappingNode, path: PathT) -> str | None:
        """`image: {{ image }}` is a mapping in YAML; take the text, and say to quote it."""
        pairs = node.value
        if not (node.flow_style and len(pairs) == 1 and isinstance(pairs[0][0], yaml.MappingNode)):
            return None
        text = self.text[node.start_mark.index:node.end_mark.index]
        message = f'YAML reads an unquoted {text} as a mapping: quote the template, "{text}"'
        self.pending.append((_mark(node), path, message))
        return text

    def _key(self, node: yaml.Node, path: PathT) -> str:
        key = self._scalar(node, path) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(key, str):
            return key
        if isinstance(key, bool):
            hint = " (YAML reads yes/no/on/off as booleans: quote the key)"
            self._problem(node, path, f"a key must be a string, got {key}{hint}")
        else:
            self._problem(node, path, f"a key must be a string, got {node.value or node.tag}")
        return str(node.value)

    def _problem(self, node: yaml.Node, path: PathT, message: str) -> None:
        self.pending.append((_mark(node), path, message))


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1
