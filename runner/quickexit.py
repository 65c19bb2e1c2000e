"""Leave without tearing the interpreter down, when nothing is left to do.

Freeing every module of the kubernetes client and pydantic at exit costs about
60 ms a process (measured: 0.42 s vs 0.33 s for the imports of a run), and
pipelines start runplan hundreds of times a day. What a normal exit does that
matters still happens first: the atexit handlers run (the kubernetes client
removes its temporary certificate files there, logging flushes) and the
standard streams are flushed. When a non-daemon thread is still alive, or a
stream cannot be flushed, the exit is the normal one: the interpreter joins
and reports as it always does.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading


def leave(code: int) -> int:
    """Exit the process with `code` at once if that is safe; else return `code`."""
    main = threading.main_thread()
    if any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate()):
        return code
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed or broken stream: let the normal exit report it
        return code
    os._exit(code)
