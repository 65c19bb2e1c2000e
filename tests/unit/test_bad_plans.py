"""Every plan under bad_plans/ fails `runplan validate` with exit 2, naming the
file, the line and what is wrong. Each file says what it expects in its header:

    # expect: LINE: FRAGMENT
    # expect: included/x.yaml:LINE: FRAGMENT     (a problem inside an included file)

(one line per expected problem; all of them must be reported, at once). Files
under bad_plans/included/ are only included by the cases, not cases themselves.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from runner.cli import main

BAD = Path(__file__).parent / "bad_plans"
_EXPECT = re.compile(r"# expect: (?:(?P<file>[\w./-]+\.yaml):)?(?P<line>\d+): (?P<fragment>.+)")
CASES = sorted(BAD.glob("*.yaml"))


def expectations(path: Path) -> list[tuple[int, str]]:
    return [(line, fragment) for _, line, fragment in placed(path)]


def placed(path: Path) -> list[tuple[Path, int, str]]:
    """(file the problem is in, line, fragment) of each expectation."""
    found = [_EXPECT.match(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [(path.parent / m["file"] if m["file"] else path, int(m["line"]), m["fragment"])
            for m in found if m]


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 40
    assert all(expectations(path) for path in CASES), "every case states what it expects"


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_bad_plan(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    for file, line, fragment in placed(path):
        prefix = f"{file}:{line}:"
        hits = [text for text in lines if text.startswith(prefix) and fragment in text]
        assert hits, f"expected a line starting {prefix} containing {fragment!r}; got:\n{err}"


def test_all_files_are_reported_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    chosen = [BAD / "cycle.yaml", BAD / "unknown_step_kind.yaml", BAD / "bad_duration.yaml"]
    assert main(["validate", *map(str, chosen)]) == 2
    err = capsys.readouterr().err
    for path in chosen:
        assert f"{path}:" in err


def test_console_script_in_a_subprocess() -> None:
    """The installed entry point: exit 2 and a one-line reason, no traceback."""
    runplan = Path(sys.executable).with_name("runplan")
    path = BAD / "partition_on_deployment.yaml"
    result = subprocess.run([str(runplan), "validate", str(path)], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line, fragment), = expectations(path)
    assert f"{path}:{line}:" in result.stderr and fragment in result.stderr
