"""The compiler's shortcuts (issue 16, compile) give the answers of the long way."""

from __future__ import annotations

import random
import string
from pathlib import Path

import yaml

from runner.plan import compile_plan
from runner.plan.limits import _Measure, _plainly_within, check_yaml
from runner.plan.loader import _Loader, _parse, load_text
from runner.plan.model import Target
from runner.plan.render import Collector, Renderer
from runner.plan.values import parse_target

PLAN = """\
apiVersion: runplan/v1
kind: Plan
metadata: {name: caches}
vars: {image: "nginx:1.26", replicas: 2}
steps:
  - id: widen
    loop: [3, 2, 1, 0]
    steps:
      - id: move
        set_partition: {target: statefulset/web, partition: "{{ item }}"}
  - id: size
    scale: {target: statefulset/web, replicas: "{{ replicas + 1 }}"}
"""


def test_the_resolver_shortcut_tags_scalars_as_pyyaml_does() -> None:
    rng = random.Random(16)
    samples = ["", "a", "b12-image", "yes", "No", "~", "null", "1", "-1", ".5", "0x1f", "1e3",
               "2024-01-01", "=", "<<", "true", "on", "y", ".inf", "12:30", "0o17"]
    samples += ["".join(rng.choice(string.printable[:80]) for _ in range(rng.randint(1, 5)))
                for _ in range(2000)]
    ours, theirs = _Loader("x: 1"), yaml.SafeLoader("x: 1")
    for value in samples:
        for implicit in ((True, False), (False, True), (True, True), (False, False)):
            assert ours.resolve(yaml.ScalarNode, value, implicit) == theirs.resolve(
                yaml.ScalarNode, value, implicit), (value, implicit)


def test_a_loop_renders_each_iteration_with_its_own_item(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN)
    plan = compile_plan(path)
    partitions = [s.params["partition"] for s in plan.steps if s.kind == "set_partition"]
    assert partitions == [3, 2, 1, 0]
    assert [s.params["replicas"] for s in plan.steps if s.kind == "scale"] == [3]


def test_only_templates_of_names_alone_are_remembered() -> None:
    renderer = Renderer()
    pure = ["{{ image }}", "nginx:{{ version }}", "{{ replicas + 1 }}", "{{ a if b else c }}"]
    impure = ["{{ [1, 2, 3] | random }}", "{{ lipsum(1) }}", "{{ image.upper() }}",
              "{{ image.upper }}", "{{ range(3) | list }}", "{{ x is defined }}"]
    assert all(renderer.compile(t).pure for t in pure)
    assert not any(renderer.compile(t).pure for t in impure)
    # A remembered result is one of the same values: True and 1 stay apart.
    first = renderer.render("{{ flag }}", {"flag": True}, Collector())
    second = renderer.render("{{ flag }}", {"flag": 1}, Collector())
    assert (first, second) == (True, 1) and type(second) is int


def test_the_flat_yaml_walk_agrees_with_the_exact_one() -> None:
    flat = yaml.compose("a: [1, 2, {b: c}]\nd: {e: [f, g]}\n")
    assert _plainly_within(flat)
    _Measure().visit(flat, 0, flat)  # the exact walk accepts it too
    aliased = yaml.compose("a: &x [1, 2]\nb: *x\n")
    assert not _plainly_within(aliased)  # an alias to a collection: the exact walk decides
    check_yaml(aliased)


MARKED = """\
steps:
  - id: a
    needs: [b, c]
    set_image: {target: statefulset/web, image: "nginx:1"}
  - id: b
    steps:
      - id: c
        when: "{{ x }}"
        scale:
          target: deploy/api
          replicas: 3
vars: {x: 1, y: [1, {z: 2}]}
"""


def test_a_load_that_keeps_only_list_items_marks_points_where_every_mark_does() -> None:
    full = _parse(MARKED, "p.yaml", "", every_mark=True)
    paths = sorted({*full.marks, *full.key_marks, ("steps", 9), ("nowhere", 0, "x")}, key=str)
    items = [p for p in paths if not p or isinstance(p[-1], int)]
    lazy = load_text(MARKED, "p.yaml")
    assert lazy.data == full.data
    assert [lazy.location(p) for p in items if p in lazy.marks] == [
        full.location(p) for p in items if p in lazy.marks]
    assert lazy.text is not None  # steps' own marks: none other was needed
    for path in paths:
        for key in (False, True):
            fresh = load_text(MARKED, "p.yaml")
            assert fresh.location(path, key) == full.location(path, key), (path, key)


def test_a_duplicate_key_names_the_line_of_the_one_before() -> None:
    doc = load_text("a: 1\nb: 2\na: 3\na: 4\n", "d.yaml")
    assert [(p.location.line, p.message) for p in doc.problems] == [
        (3, "duplicate key 'a' (first at line 1)"), (4, "duplicate key 'a' (first at line 3)")]


def test_a_target_parsed_once_per_text_is_the_target_of_that_text() -> None:
    first = parse_target("sts/web", "blue")
    assert parse_target("sts/web", "blue") == first == Target("statefulset", "web", "blue")
    assert parse_target("sts/web", "green") == Target("statefulset", "web", "green")
    assert parse_target({"kind": "sts", "name": "web"}, "blue") == first
