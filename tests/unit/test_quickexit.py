"""runner.quickexit: the console scripts' exit skips the interpreter's teardown,
never what a normal exit does that matters (atexit handlers, flushed streams,
joining a thread that still works)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROGRAM = """
import atexit, sys, threading, time
from pathlib import Path
from runner.quickexit import leave
atexit.register(lambda: Path(sys.argv[1]).write_text("cleaned"))
if sys.argv[2] == "thread":
    threading.Thread(target=lambda: (time.sleep(0.3), print("thread done"))).start()
print("buffered line", end="")
sys.exit(leave(7) + 1)  # +1 only if leave() returned: a normal exit
"""


def _run(tmp_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    marker = tmp_path / "marker"
    done = subprocess.run([sys.executable, "-c", PROGRAM, str(marker), mode],
                          capture_output=True, text=True, timeout=30)
    assert marker.read_text() == "cleaned"  # atexit handlers ran either way
    return done


def test_a_quick_exit_runs_atexit_handlers_and_flushes_stdout(tmp_path: Path) -> None:
    done = _run(tmp_path, "alone")
    assert done.returncode == 7
    assert done.stdout == "buffered line"


def test_a_live_non_daemon_thread_gets_the_normal_exit(tmp_path: Path) -> None:
    done = _run(tmp_path, "thread")
    assert done.returncode == 8  # leave() returned: the interpreter joined the thread
    assert done.stdout == "buffered linethread done\n"
