"""`--dry-run --output markdown`: the review as a pull-request comment, parsed back.

The comment is rendered from the same review as the text: its ```diff blocks,
read back with a Markdown parser, must say exactly what the text review's
change lines say, object by object.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import yaml
from markdown_it import MarkdownIt

from runner.errors import Forbidden
from runner.plan import compile_plan
from runner.report import markdown
from runner.report import review as offline_review
from runner.review.live import build
from runner.review.render import LiveReview, print_text
from tests.unit.test_review_live import FakeKube, workload

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJyZXZpZXcifQ.c2lnbmF0dXJl"
PLAN = {
    "apiVersion": "runplan/v1", "kind": "Plan", "metadata": {"name": "pr-review"},
    "vars": {"image": "nginx:1.26.1"},
    "steps": [
        {"id": "config", "apply": {"manifests": [
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
             "stringData": {"password": "hunter2-hunter2"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
             "data": {"mode": "canary", "DB_PASSWORD": "plain-hunter2"}}]}},
        {"id": "canary", "set_image": {"target": "statefulset/web", "container": "nginx",
                                       "image": "{{ image }}", "change_cause": JWT}},
        {"id": "canary-ready", "wait_ready": {"target": "statefulset/web"}},
        {"id": "wider", "scale": {"target": "statefulset/web", "replicas": 5}},
    ],
}


Key = tuple[str, str]  # (step id, kind/name)


def diff_blocks(comment: str) -> dict[Key, list[str]]:
    """Per <details> (`<code>kind/name</code>: update by <code>step</code>`), its ```diff
    lines, each `-`/`+` pair of one path folded back into the text review's `~ a -> b`."""
    found: dict[Key, list[str]] = {}
    key = ("", "")
    for token in MarkdownIt().parse(comment):
        if token.type == "html_block" and "<summary>" in token.content:
            title, step = re.findall(r"<code>([^<]+)</code>", token.content)[:2]
            key = (step, title)
        if token.type == "fence" and token.info == "diff":
            found[key] = fold(token.content.splitlines())
    return found


def fold(lines: list[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        path, _, value = line[2:].partition(": ")
        if line.startswith("+ ") and out and out[-1].startswith(f"- {path}: "):
            out[-1] = f"~ {path}: {out[-1][len(path) + 4:]} -> {value}"
        else:
            out.append(line)
    return out


def text_diffs(text: str) -> dict[Key, list[str]]:
    """Per step and object line of the text review (`     kind/name: update (...)`),
    its change lines."""
    found: dict[Key, list[str]] = {}
    step, key = "", ("", "")
    for line in text.splitlines():
        head = re.match(r"^ {5}([a-z]+/[^:\s]+): (create|update|unchanged) \(", line)
        number = re.match(r"^ *\d+\. (\S+) \(", line)
        if number:
            step = number.group(1)
        elif head:
            key = (step, head.group(1))
        elif re.match(r"^ {7}[-+~] ", line):
            found.setdefault(key, []).append(line.strip())
    return found


def _review(tmp_path: Path, refuse: type[Exception] | None = None) -> LiveReview:
    file = tmp_path / "pr.yaml"
    file.write_text(yaml.safe_dump(PLAN, sort_keys=False))
    plan = compile_plan(str(file), {})
    kube = FakeKube([workload("nginx:1.25.4")], refuse=refuse)
    return build(plan, kube, {s.id for s in plan.steps})  # type: ignore[arg-type]


def _text(review: LiveReview) -> str:
    out = io.StringIO()
    print_text(review, out, terminal=False)
    return out.getvalue()


def test_the_comment_s_diff_blocks_are_the_text_review_s_diffs(tmp_path: Path) -> None:
    review = _review(tmp_path)
    comment, text = markdown.live(review), _text(review)
    blocks = diff_blocks(comment)
    assert blocks == text_diffs(text)
    assert set(blocks) == {("config", "secret/db"), ("config", "configmap/settings"),
                           ("canary", "statefulset/web"), ("wider", "statefulset/web")}
    image = "~ spec.template.spec.containers[nginx].image: nginx:1.25.4 -> nginx:1.26.1"
    assert image in blocks[("canary", "statefulset/web")]
    assert blocks[("wider", "statefulset/web")] == ["~ spec.replicas: 3 -> 5"]
    assert comment.splitlines()[0] == "<!-- runplan-review: pr-review -->"
    assert "**✅ would change 3 object(s) in 3 step(s)**" in comment


def test_secrets_never_reach_the_comment_or_the_text(tmp_path: Path) -> None:
    review = _review(tmp_path)
    comment, text = markdown.live(review), _text(review)
    for shown in (comment, text):
        assert "hunter2" not in shown and JWT not in shown
    blocks = diff_blocks(comment)
    assert "+ stringData.password: <redacted>" in blocks[("config", "secret/db")]
    assert "+ data.DB_PASSWORD: <redacted>" in blocks[("config", "configmap/settings")]
    assert "+ data.mode: canary" in blocks[("config", "configmap/settings")]


def test_the_step_table_has_a_row_per_step_with_its_place(tmp_path: Path) -> None:
    review = _review(tmp_path)
    rows = [t for t in _table_rows(markdown.live(review))]
    assert [r[1] for r in rows] == ["`config`", "`canary`", "`canary-ready`", "`wider`"]
    assert all(re.fullmatch(r"`.*pr\.yaml:\d+:\d+`", r[3]) for r in rows)
    assert rows[1][5] == "update statefulset/web"
    expect = [s for s in review.steps if s.step.id == "canary-ready"][0].expect
    assert expect and f"- `canary-ready`: {expect[0]}" in markdown.live(review)


def _table_rows(comment: str) -> list[list[str]]:
    lines = [line for line in comment.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in lines[1:]]


def test_errors_come_first_and_make_the_verdict(tmp_path: Path) -> None:
    comment = markdown.live(_review(tmp_path, refuse=Forbidden))
    lines = comment.splitlines()
    assert lines[3].startswith("**❌ would fail: ")
    assert lines.index("#### Errors") < next(i for i, x in enumerate(lines) if x.startswith("| #"))
    assert "step canary (set_image): update refused" in comment
    assert "(and 1 more)" in lines[3]


def test_the_offline_comment_lists_the_steps_and_their_redacted_params(tmp_path: Path) -> None:
    file = tmp_path / "pr.yaml"
    file.write_text(yaml.safe_dump(PLAN, sort_keys=False))
    plan = compile_plan(str(file), {})
    selected = {s.id for s in plan.steps if s.id != "wider"}
    comment = markdown.offline(plan, selected)
    rows = _table_rows(comment)
    assert len(rows) == 4 and rows[3][5] == "skipped (--only/--from)"
    assert rows[1][5] == "changes the cluster"
    assert comment.startswith("<!-- runplan-review: pr-review -->\n")
    fences = [t for t in MarkdownIt().parse(comment) if t.type == "fence"]
    params: dict[str, Any] = yaml.safe_load(fences[0].content)
    assert params["canary"]["image"] == "nginx:1.26.1"
    assert params["canary"]["change_cause"] == "<redacted>"
    text = offline_review.text(plan, selected)
    assert JWT not in comment and JWT not in text and "hunter2" not in text


def test_cells_and_fences_survive_what_they_quote() -> None:
    assert markdown.cell("a | b\nc") == "a \\| b<br>c"
    from runner.review.diff import FieldChange
    from runner.review.preview import ObjectChange

    ticks = ObjectChange("configmap/x", "update", "merge patch",
                         (FieldChange("~", "data.md", "```", "````"),), {})
    lines = markdown.object_details("s", ticks)
    fence = next(line for line in lines if line.endswith("diff"))[:-4]
    assert fence == "`````" and lines[lines.index(f"{fence}diff") + 3] == fence
    blocks = diff_blocks("\n".join(lines))
    assert blocks == {("s", "configmap/x"): ["~ data.md: ``` -> ````"]}


def test_a_comment_too_long_leaves_out_the_last_diffs_and_says_so(tmp_path: Path) -> None:
    review = _review(tmp_path)
    whole = markdown.render(markdown.Comment(review.plan, review.steps, [], "here", True))
    cut = markdown.render(markdown.Comment(review.plan, review.steps, [], "here", True),
                          limit=len(whole) - 1)
    assert len(cut) < len(whole) and len(diff_blocks(cut)) == len(diff_blocks(whole)) - 1
    assert "_1 more changed object(s) not shown here" in cut
    assert diff_blocks(cut).items() <= diff_blocks(whole).items()


def test_the_offline_comment_says_what_the_offline_text_says(tmp_path: Path) -> None:
    file = tmp_path / "pr.yaml"
    file.write_text(yaml.safe_dump(PLAN, sort_keys=False))
    plan = compile_plan(str(file), {})
    selected = {s.id for s in plan.steps}
    text = offline_review.text(plan, selected).splitlines()
    heads = [(i, re.match(r"^ +\d+\. (\S+) \((\w+)\)$", line)) for i, line in enumerate(text)]
    said = [(m.group(1), m.group(2), text[i + 1].strip()) for i, m in heads if m]
    rows = _table_rows(markdown.offline(plan, selected))
    assert [(r[1].strip("`"), r[2], r[4].replace("\\|", "|")) for r in rows] == said
